// tests/sync_mutex_test.cpp - weft::mutex and weft::condition_variable (catalogue U6):
// from fibers and plain threads, at 1, 2 and 4 workers; timeouts; contract violations.
#include "weft_test.hpp"

#include <weft/sync.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

class SyncMutex : public weft_test {};
WEFT_INSTANTIATE(SyncMutex);

TEST_P(SyncMutex, CounterFromManyFibers) {
  weft::mutex m;
  long counter = 0;
  sched().block_on([&] {
    std::vector<weft::join_handle<void>> hs;
    for (int f = 0; f < 200; ++f)
      hs.push_back(weft::spawn([&] {
        for (int i = 0; i < 500; ++i) {
          std::scoped_lock g(m);
          long v = counter;
          if (i % 50 == 0) weft::this_fiber::yield();  // hold it across a switch
          counter = v + 1;
        }
      }));
    for (auto& h : hs) h.join();
  });
  EXPECT_EQ(counter, 200 * 500);
}

TEST_P(SyncMutex, FibersAndThreadsShareIt) {
  weft::mutex m;
  long counter = 0;
  std::vector<std::thread> ts;
  for (int t = 0; t < 2; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) {
        std::lock_guard g(m);
        ++counter;
      }
    });
  sched().block_on([&] {
    std::vector<weft::join_handle<void>> hs;
    for (int f = 0; f < 8; ++f)
      hs.push_back(weft::spawn([&] {
        for (int i = 0; i < 5000; ++i) {
          std::lock_guard g(m);
          ++counter;
          if (i % 1000 == 0) weft::this_fiber::yield();
        }
      }));
    for (auto& h : hs) h.join();
  });
  for (auto& t : ts) t.join();
  EXPECT_EQ(counter, 2 * 20000 + 8 * 5000);
}

TEST_P(SyncMutex, TryLockAndTimedLock) {
  weft::mutex m;
  sched().block_on([&] {
    ASSERT_TRUE(m.try_lock());
    auto h = weft::spawn([&] {
      EXPECT_FALSE(m.try_lock());
      EXPECT_FALSE(m.try_lock_for(-1s));  // past deadline: at once
      const auto t0 = weft::clock::now();
      EXPECT_FALSE(m.try_lock_for(20ms));
      EXPECT_GE(weft::clock::now() - t0, 20ms);
      EXPECT_TRUE(m.try_lock_for(10s));  // unlocked meanwhile
      m.unlock();
    });
    weft::this_fiber::sleep_for(60ms);
    m.unlock();
    h.join();
  });
  std::unique_lock lk(m, std::defer_lock);  // plain thread: timed lock of a free mutex
  EXPECT_TRUE(lk.try_lock_for(1ms));
}

TEST_P(SyncMutex, ContendedFiberDoesNotBlockItsWorker) {
  weft::mutex m;
  std::atomic<bool> progressed{false};
  m.lock();  // held by this plain thread
  auto waiter = sched().spawn([&] { std::lock_guard g(m); });
  auto other = sched().spawn([&] { progressed = true; });
  other.join();  // with one worker this needs the waiter to be suspended, not spinning
  EXPECT_TRUE(progressed);
  m.unlock();
  waiter.join();
}

TEST_P(SyncMutex, StarvingWaiterGetsHandOff) {
  // One fiber re-locks in a tight loop; a waiter must still get in (1 ms bound + hand-off).
  weft::mutex m;
  std::atomic<bool> stop{false};
  sched().block_on([&] {
    auto hog = weft::spawn([&] {
      while (!stop.load()) {
        std::lock_guard g(m);
        weft::this_fiber::yield();  // holds it while others run
      }
    });
    auto t0 = weft::clock::now();
    {
      std::lock_guard g(m);
      EXPECT_LT(weft::clock::now() - t0, 2s);
    }
    stop = true;
    hog.join();
  });
}

class SyncCondvar : public weft_test {};
WEFT_INSTANTIATE(SyncCondvar);

TEST_P(SyncCondvar, PredicateWaitFromFibers) {
  weft::mutex m;
  weft::condition_variable cv;
  int stage = 0;
  sched().block_on([&] {
    std::vector<weft::join_handle<void>> hs;
    for (int i = 0; i < 50; ++i)
      hs.push_back(weft::spawn([&] {
        std::unique_lock lk(m);
        cv.wait(lk, [&] { return stage >= 1; });
        ++stage;
        if (stage == 51) cv.notify_all();
      }));
    weft::this_fiber::yield();
    {
      std::lock_guard g(m);
      stage = 1;
    }
    cv.notify_all();
    std::unique_lock lk(m);
    cv.wait(lk, [&] { return stage == 51; });
    lk.unlock();
    for (auto& h : hs) h.join();
  });
  EXPECT_EQ(stage, 51);
}

TEST_P(SyncCondvar, NotifyBeforeWaitIsNotRemembered) {
  weft::mutex m;
  weft::condition_variable cv;
  cv.notify_one();
  cv.notify_all();
  sched().block_on([&] {
    std::unique_lock lk(m);
    EXPECT_EQ(cv.wait_for(lk, 10ms), std::cv_status::timeout);
    EXPECT_TRUE(lk.owns_lock());
    EXPECT_FALSE(cv.wait_for(lk, -5ms, [] { return false; }));
  });
}

TEST_P(SyncCondvar, ThreadWaitsFiberNotifies) {
  weft::mutex m;
  weft::condition_variable cv;
  bool ready = false;
  auto h = sched().spawn([&] {
    weft::this_fiber::sleep_for(5ms);
    std::lock_guard g(m);
    ready = true;
    cv.notify_one();
  });
  {
    std::unique_lock lk(m);
    EXPECT_TRUE(cv.wait_for(lk, 10s, [&] { return ready; }));
  }
  h.join();
  // And the other way round: a fiber waits, a plain thread notifies.
  ready = false;
  auto w = sched().spawn([&] {
    std::unique_lock lk(m);
    cv.wait(lk, [&] { return ready; });
  });
  std::this_thread::sleep_for(5ms);
  {
    std::lock_guard g(m);
    ready = true;
  }
  cv.notify_all();
  w.join();
}

TEST_P(SyncCondvar, TimeoutsRacingNotifiesEachEndOnce) {
  // Exactly one of {notified, timed out} per wait; the notified count never exceeds the
  // number of notify_one calls that found a waiter.
  weft::mutex m;
  weft::condition_variable cv;
  std::atomic<int> notified{0}, timed_out{0};
  constexpr int n = 200;
  sched().block_on([&] {
    std::vector<weft::join_handle<void>> hs;
    for (int i = 0; i < n; ++i)
      hs.push_back(weft::spawn([&, i] {
        std::unique_lock lk(m);
        if (cv.wait_for(lk, std::chrono::microseconds(50 * (i % 40))) == std::cv_status::timeout)
          timed_out.fetch_add(1);
        else
          notified.fetch_add(1);
      }));
    for (int i = 0; i < 300; ++i) {
      cv.notify_one();
      if (i % 4 == 0) weft::this_fiber::yield();
    }
    for (auto& h : hs) h.join();
  });
  EXPECT_EQ(notified + timed_out, n);
}

// ---- contract violations (death tests: fork, run, expect the message and an abort)

TEST(SyncDeathTest, UnlockByNonOwnerAborts) {
  EXPECT_DEATH(
      {
        weft::mutex m;
        m.unlock();
      },
      "does not hold the mutex");
  EXPECT_DEATH(
      {
        weft::scheduler s(weft::scheduler::options{.workers = 1});
        weft::mutex m;
        m.lock();
        s.block_on([&] { m.unlock(); });  // a fiber unlocking the thread's mutex
      },
      "does not hold the mutex");
}

TEST(SyncDeathTest, RecursiveLockAborts) {
  EXPECT_DEATH(
      {
        weft::mutex m;
        m.lock();
        m.lock();
      },
      "already holds");
}

TEST(SyncDeathTest, DestroyingMutexWithWaitersAborts) {
  EXPECT_DEATH(
      {
        weft::scheduler s(weft::scheduler::options{.workers = 1});
        auto* m = new weft::mutex;
        m->lock();
        std::atomic<bool> started{false};
        auto h = s.spawn([m, &started] {
          started.store(true);
          m->lock();
        });
        // A new worker thread may take tens of ms to run its first fiber on a loaded
        // machine (TSan builds): wait for the fiber, then give it time to queue.
        for (int i = 0; i < 10'000 && !started.load(); ++i) std::this_thread::sleep_for(1ms);
        std::this_thread::sleep_for(50ms);  // the fiber is queued by now
        delete m;
      },
      "destroyed while");
}

TEST(SyncDeathTest, CondvarWaitWithoutTheLockAborts) {
  EXPECT_DEATH(
      {
        weft::mutex m;
        weft::condition_variable cv;
        std::unique_lock lk(m, std::defer_lock);
        cv.wait(lk);
      },
      "does not hold the mutex");
}

}  // namespace
