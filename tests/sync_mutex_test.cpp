// tests/sync_mutex_test.cpp - weft::mutex and weft::condition_variable:
// from fibers and plain threads, at 1, 2 and 4 workers; timeouts; contract violations.
#include "weft_test.hpp"

#include <weft/sync.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
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

// As SyncEvent.BlockedFiberLeavesWorkerFree: the contended locker's worker switches away
// from it (at every worker count), and with one worker another fiber runs there.
TEST_P(SyncMutex, ContendedFiberDoesNotBlockItsWorker) {
  weft::mutex m;
  std::atomic<bool> progressed{false};
  m.lock();  // held by this plain thread
  suspension_probe waiting;
  auto waiter = sched().spawn([&] {
    waiting.arm();
    std::lock_guard g(m);
  });
  const bool suspended = waiting.wait(sched());
  EXPECT_TRUE(suspended) << "the contended fiber kept its worker";
  if (suspended) {
    sched().spawn([&] { progressed = true; }).join();
    EXPECT_TRUE(progressed);
  }
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
  // And the other way round: a fiber waits, a plain thread notifies once it has really
  // suspended (else the predicate alone could end the wait). A lost wake would end the
  // wait only at its 20 s deadline, far beyond the generous 10 s allowed.
  ready = false;
  suspension_probe waiting;
  auto w = sched().spawn([&] {
    std::unique_lock lk(m);
    const auto t0 = weft::clock::now();
    waiting.arm();
    EXPECT_TRUE(cv.wait_for(lk, 20s, [&] { return ready; }));
    EXPECT_LT(weft::clock::now() - t0, 10s) << "the plain thread's notify did not wake the fiber";
  });
  EXPECT_TRUE(waiting.wait(sched())) << "the fiber never suspended";
  {
    std::lock_guard g(m);
    ready = true;
  }
  cv.notify_all();
  w.join();
}

// Each timed wait ends exactly once, with the outcome its timing allows (this
// implementation never wakes a waiter spuriously, see condition_variable.hpp):
//   expire:  deadlines of 0.2-2 ms and no notify until every one of them returned: each
//            times out, never before its deadline;
//   release: 20 s deadlines; once all of them are queued (each counted itself under the
//            mutex, which the wait gives up only once queued), `k` notify_one calls
//            release exactly k of them, and a notify_all the rest;
//   race:    deadlines of 0-2 ms around a notify_all: either outcome, but a notified
//            return only after the notify began and a timeout never before the deadline.
// A timeout reported as a notify, a notify_one that releases more than one waiter, or a
// notify lost to a timeout fails here; `notified + timed_out == n` could see none of them.
TEST_P(SyncCondvar, TimeoutsRacingNotifiesEachEndOnce) {
  constexpr int n_expire = 20, n_release = 20, n_race = 60, k = n_release / 2;
  constexpr int n = n_expire + n_release + n_race;
  weft::mutex m;
  weft::condition_variable cv;
  int queued = 0;  // release waiters inside wait_for; guarded by m
  std::atomic<bool> notify_begun{false};
  std::vector<std::atomic<int>> ends(n), notified(n), early(n), before_notify(n);
  std::atomic<int> expired_done{0}, released{0};
  auto waiter = [&](int i, std::chrono::microseconds d, bool counted) {
    std::unique_lock lk(m);
    if (counted) ++queued;
    const auto deadline = weft::deadline_after(d);
    const bool got = cv.wait_until(lk, deadline) == std::cv_status::no_timeout;
    ends[i].fetch_add(1);
    if (got) {
      notified[i].store(1);
      if (!notify_begun.load()) before_notify[i].store(1);
    } else if (weft::clock::now() < deadline) {
      early[i].store(1);
    }
  };
  // Polls `cond` with short sleeps, for up to 20 s.
  auto eventually = [](auto cond) {
    const auto give_up = weft::clock::now() + 20s;
    while (!cond() && weft::clock::now() < give_up) weft::this_fiber::sleep_for(200us);
    return cond();
  };
  sched().block_on([&] {
    std::vector<weft::join_handle<void>> hs;
    for (int i = 0; i < n_expire; ++i)
      hs.push_back(weft::spawn([&, i] {
        waiter(i, std::chrono::microseconds(200 + 90 * i), false);
        expired_done.fetch_add(1);
      }));
    EXPECT_TRUE(eventually([&] { return expired_done.load() == n_expire; }));
    for (int i = 0; i < n_release; ++i)
      hs.push_back(weft::spawn([&, i] {
        waiter(n_expire + i, 20s, true);
        released.fetch_add(1);
      }));
    EXPECT_TRUE(eventually([&] {
      std::lock_guard g(m);
      return queued == n_release;
    }));
    notify_begun = true;
    for (int i = 0; i < k; ++i) cv.notify_one();
    EXPECT_TRUE(eventually([&] { return released.load() >= k; }));
    // Give any extra release time to show: on one worker, every fiber a notify made
    // runnable has run once this sleep returns.
    weft::this_fiber::sleep_for(5ms);
    EXPECT_EQ(released.load(), k) << "notify_one released more than one waiter";
    cv.notify_all();
    EXPECT_TRUE(eventually([&] { return released.load() == n_release; }));
    notify_begun = false;
    for (int i = 0; i < n_race; ++i)
      hs.push_back(weft::spawn(waiter, n_expire + n_release + i,
                               std::chrono::microseconds(35 * i), false));
    weft::this_fiber::sleep_for(1ms);
    notify_begun = true;
    cv.notify_all();
    for (auto& h : hs) h.join();
  });
  for (int i = 0; i < n; ++i) {
    const char* group = i < n_expire ? "expire" : i < n_expire + n_release ? "release" : "race";
    EXPECT_EQ(ends[i].load(), 1) << group << " waiter " << i;
    EXPECT_EQ(early[i].load(), 0) << group << " waiter " << i << " timed out early";
    EXPECT_EQ(before_notify[i].load(), 0)
        << group << " waiter " << i << " notified before a notify";
    if (i < n_expire) {
      EXPECT_EQ(notified[i].load(), 0) << "expire waiter " << i << " reported a notify";
    } else if (i < n_expire + n_release) {
      EXPECT_EQ(notified[i].load(), 1) << "release waiter " << i << " timed out";
    }
  }
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
        suspension_probe waiting;
        auto h = s.spawn([m, &waiting] {
          waiting.arm();
          m->lock();
        });
        if (!waiting.wait(s)) {
          std::fputs("the locker never suspended\n", stderr);
          std::abort();
        }
        delete m;
        std::_Exit(0);  // not aborted: fail now, not wait forever for a fiber nobody wakes
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
