// tests/sync_signal_test.cpp - weft::event, weft::wait_group, weft::counting_semaphore
// (used from fibers and plain threads; 1/2/4 workers, timeouts, misuse).
#include "weft_test.hpp"

#include <weft/sync.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

class SyncEvent : public weft_test {};
WEFT_INSTANTIATE(SyncEvent);

TEST_P(SyncEvent, ManualSetReleasesEveryWaiter) {
  weft::event ev;
  std::atomic<int> released{0};
  sched().block_on([&] {
    std::vector<weft::join_handle<void>> hs;
    for (int i = 0; i < 100; ++i)
      hs.push_back(weft::spawn([&] {
        ev.wait();
        released.fetch_add(1);
      }));
    weft::this_fiber::sleep_for(2ms);
    EXPECT_EQ(released.load(), 0);
    ev.set();
    for (auto& h : hs) h.join();
  });
  EXPECT_EQ(released.load(), 100);
  EXPECT_TRUE(ev.is_set());
  ev.wait();  // stays set: returns at once, also on a plain thread
  ev.reset();
  EXPECT_FALSE(ev.wait_for(1ms));
}

TEST_P(SyncEvent, SetBeforeWaitIsRemembered) {
  weft::event ev;
  ev.set();
  sched().block_on([&] { EXPECT_TRUE(ev.wait_for(0s)); });
  weft::event aut(weft::event::reset_mode::automatic);
  aut.set();
  sched().block_on([&] {
    EXPECT_TRUE(aut.wait_for(-1s));   // consumes it even with a past deadline
    EXPECT_FALSE(aut.wait_for(1ms));  // consumed
  });
}

TEST_P(SyncEvent, AutomaticResetReleasesOneAtATime) {
  weft::event ev(weft::event::reset_mode::automatic);
  std::atomic<int> released{0};
  sched().block_on([&] {
    std::vector<weft::join_handle<void>> hs;
    for (int i = 0; i < 10; ++i)
      hs.push_back(weft::spawn([&] {
        ev.wait();
        released.fetch_add(1);
      }));
    weft::this_fiber::sleep_for(2ms);
    for (int i = 1; i <= 10; ++i) {
      ev.set();
      while (released.load() < i) weft::this_fiber::yield();
      weft::this_fiber::sleep_for(1ms);
      EXPECT_EQ(released.load(), i);
    }
    for (auto& h : hs) h.join();
  });
  EXPECT_FALSE(ev.is_set());
}

TEST_P(SyncEvent, WaitForTimesOutThenSucceeds) {
  weft::event ev;
  sched().block_on([&] {
    auto t0 = weft::clock::now();
    EXPECT_FALSE(ev.wait_for(15ms));
    EXPECT_GE(weft::clock::now() - t0, 15ms);
    auto h = weft::spawn([&] { return ev.wait_for(10s); });
    weft::this_fiber::sleep_for(2ms);
    ev.set();
    EXPECT_TRUE(h.join());
  });
}

TEST_P(SyncEvent, ThreadWaitsFiberSets) {
  weft::event ev;
  int payload = 0;  // plain int: the event must order it (TSan checks)
  auto h = sched().spawn([&] {
    weft::this_fiber::sleep_for(3ms);
    payload = 42;
    ev.set();
  });
  ev.wait();
  EXPECT_EQ(payload, 42);
  h.join();
  // The thread sets once the fiber has really suspended (a remote wake, not a fast path).
  // The wait's 20 s deadline bounds a lost wake: it would end the wait (claimed by the
  // set(), so still `true`) only then, far beyond the generous 10 s allowed here.
  weft::event ev2;
  suspension_probe waiting;
  std::thread t([&] {
    EXPECT_TRUE(waiting.wait(sched())) << "the fiber never suspended";
    payload = 7;
    ev2.set();
  });
  sched().block_on([&] {
    const auto t0 = weft::clock::now();
    waiting.arm();
    EXPECT_TRUE(ev2.wait_for(20s));
    EXPECT_LT(weft::clock::now() - t0, 10s) << "the plain thread's set() did not wake the fiber";
    EXPECT_EQ(payload, 7);
  });
  t.join();
}

// The waiter's worker switches away from it (a wait that blocked or spun on the worker
// thread never would), at every worker count; then, with one worker, another fiber runs
// there. A failure ends the wait instead of hanging the test.
TEST_P(SyncEvent, BlockedFiberLeavesWorkerFree) {
  weft::event ev;
  suspension_probe waiting;
  auto waiter = sched().spawn([&] {
    waiting.arm();
    ev.wait();
  });
  const bool suspended = waiting.wait(sched());
  EXPECT_TRUE(suspended) << "the waiting fiber kept its worker";
  if (suspended) {
    EXPECT_EQ(sched().spawn([] { return 1; }).join(), 1);
  }
  ev.set();
  waiter.join();
}

// Each timed wait ends exactly once, with the outcome its timing allows:
//   expire:  deadlines of 0.2-2 ms, and set() only after every one of them returned: each
//            must time out, never before its deadline;
//   release: 20 s deadlines, set() while they wait: each must be released;
//   race:    deadlines of 0-1 ms around the set(): either outcome, but a release only
//            after set() began, and a timeout never before the deadline.
// The first two force both outcomes, so a timeout reported as a release (or a release
// lost to a timeout) fails here; counting `released + timed_out == n` could not see it.
TEST_P(SyncEvent, TimeoutsRacingSetsEachEndOnce) {
  constexpr int n_expire = 20, n_release = 20, n_race = 50;
  constexpr int n = n_expire + n_release + n_race;
  for (int round = 0; round < 5; ++round) {
    weft::event ev;
    std::atomic<bool> set_begun{false};
    std::vector<std::atomic<int>> ends(n), released(n), early(n), before_set(n);
    std::atomic<int> expired_done{0};
    auto waiter = [&](int i, std::chrono::microseconds d) {
      const auto deadline = weft::deadline_after(d);
      const bool got = ev.wait_until(deadline);
      ends[i].fetch_add(1);
      if (got) {
        released[i].store(1);
        if (!set_begun.load()) before_set[i].store(1);
      } else if (weft::clock::now() < deadline) {
        early[i].store(1);
      }
    };
    sched().block_on([&] {
      std::vector<weft::join_handle<void>> hs;
      for (int i = 0; i < n_release; ++i)
        hs.push_back(weft::spawn(waiter, n_expire + i, std::chrono::microseconds(20s)));
      for (int i = 0; i < n_expire; ++i)
        hs.push_back(weft::spawn([&, i] {
          waiter(i, std::chrono::microseconds(200 + 90 * i));
          expired_done.fetch_add(1);
        }));
      while (expired_done.load() < n_expire) weft::this_fiber::sleep_for(1ms);
      for (int i = 0; i < n_race; ++i)
        hs.push_back(
            weft::spawn(waiter, n_expire + n_release + i, std::chrono::microseconds(20 * i)));
      weft::this_fiber::sleep_for(std::chrono::microseconds(500));
      set_begun = true;
      ev.set();
      for (auto& h : hs) h.join();
    });
    for (int i = 0; i < n; ++i) {
      const char* group = i < n_expire ? "expire" : i < n_expire + n_release ? "release" : "race";
      EXPECT_EQ(ends[i].load(), 1) << group << " waiter " << i << ", round " << round;
      EXPECT_EQ(early[i].load(), 0) << group << " waiter " << i << " timed out early";
      EXPECT_EQ(before_set[i].load(), 0) << group << " waiter " << i << " released before set()";
      if (i < n_expire) {
        EXPECT_EQ(released[i].load(), 0) << "expire waiter " << i << " released, round " << round;
      } else if (i < n_expire + n_release) {
        EXPECT_EQ(released[i].load(), 1) << "release waiter " << i << " timed out, round " << round;
      }
    }
  }
}

class SyncWaitGroup : public weft_test {};
WEFT_INSTANTIATE(SyncWaitGroup);

TEST_P(SyncWaitGroup, WaitsForAllDetachedFibers) {
  weft::wait_group wg;
  std::atomic<int> done{0};
  int plain[64] = {};
  sched().block_on([&] {
    for (int i = 0; i < 64; ++i) {
      wg.add(1);
      weft::spawn([&, i] {
        if (i % 3 == 0) weft::this_fiber::yield();
        plain[i] = i;  // ordered by done() -> wait()
        done.fetch_add(1);
        wg.done();
      }).detach();
    }
    wg.wait();
    EXPECT_EQ(done.load(), 64);
    for (int i = 0; i < 64; ++i) EXPECT_EQ(plain[i], i);
  });
}

TEST_P(SyncWaitGroup, ZeroCountReturnsAtOnceAndTimedWait) {
  weft::wait_group wg;
  wg.wait();  // plain thread, zero
  wg.add(2);
  EXPECT_EQ(wg.count(), 2);
  EXPECT_FALSE(wg.wait_for(5ms));
  EXPECT_FALSE(wg.wait_for(-5ms));
  auto h = sched().spawn([&] {
    EXPECT_FALSE(wg.wait_for(2ms));
    wg.done();
    wg.done();
    EXPECT_TRUE(wg.wait_for(0s));
  });
  h.join();
  wg.wait();
}

TEST_P(SyncWaitGroup, ThreadWaitsForFibers) {
  weft::wait_group wg(8);
  for (int i = 0; i < 8; ++i)
    sched().spawn([&] {
      weft::this_fiber::sleep_for(1ms);
      wg.done();
    }).detach();
  wg.wait();
  EXPECT_EQ(wg.count(), 0);
}

class SyncSemaphore : public weft_test {};
WEFT_INSTANTIATE(SyncSemaphore);

TEST_P(SyncSemaphore, BoundsConcurrency) {
  weft::counting_semaphore sem(3);
  std::atomic<int> inside{0}, peak{0};
  sched().block_on([&] {
    std::vector<weft::join_handle<void>> hs;
    for (int i = 0; i < 60; ++i)
      hs.push_back(weft::spawn([&] {
        sem.acquire();
        int now = inside.fetch_add(1) + 1;
        int p = peak.load();
        while (now > p && !peak.compare_exchange_weak(p, now)) {}
        weft::this_fiber::yield();
        inside.fetch_sub(1);
        sem.release();
      }));
    for (auto& h : hs) h.join();
  });
  EXPECT_LE(peak.load(), 3);
  EXPECT_GE(peak.load(), 1);
  EXPECT_EQ(sem.available(), 3);
}

TEST_P(SyncSemaphore, TryAcquireVariants) {
  weft::counting_semaphore sem(1);
  EXPECT_TRUE(sem.try_acquire());
  EXPECT_FALSE(sem.try_acquire());
  EXPECT_FALSE(sem.try_acquire_for(-1ms));
  sched().block_on([&] {
    EXPECT_FALSE(sem.try_acquire_for(5ms));
    auto h = weft::spawn([&] { return sem.try_acquire_for(10s); });
    weft::this_fiber::sleep_for(2ms);
    sem.release();
    EXPECT_TRUE(h.join());
  });
  EXPECT_EQ(sem.available(), 0);
  sem.release(5);
  EXPECT_EQ(sem.available(), 5);
}

TEST_P(SyncSemaphore, ThreadsAndFibersHandPermits) {
  weft::counting_semaphore items(0);
  std::atomic<long> got{0};
  std::thread producer([&] {
    for (int i = 0; i < 2000; ++i) items.release();
  });
  sched().block_on([&] {
    std::vector<weft::join_handle<void>> hs;
    for (int c = 0; c < 4; ++c)
      hs.push_back(weft::spawn([&] {
        for (int i = 0; i < 500; ++i) {
          items.acquire();
          got.fetch_add(1);
        }
      }));
    for (auto& h : hs) h.join();
  });
  producer.join();
  EXPECT_EQ(got.load(), 2000);
  EXPECT_EQ(items.available(), 0);
}

TEST(SyncSignalDeathTest, Misuse) {
  EXPECT_DEATH(
      {
        weft::wait_group wg;
        wg.done();
      },
      "count became negative");
  EXPECT_DEATH(
      {
        weft::scheduler s(weft::scheduler::options{.workers = 1});
        auto* ev = new weft::event;
        suspension_probe waiting;
        auto h = s.spawn([ev, &waiting] {
          waiting.arm();
          ev->wait();
        });
        if (!waiting.wait(s)) {
          std::fputs("the waiter never suspended\n", stderr);
          std::abort();
        }
        delete ev;
        std::_Exit(0);  // not aborted: fail now, not wait forever for a fiber nobody wakes
      },
      "destroyed while");
  EXPECT_DEATH({ weft::counting_semaphore s(-1); }, "negative initial");
}

}  // namespace
