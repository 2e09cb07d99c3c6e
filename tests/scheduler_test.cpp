// tests/scheduler_test.cpp - spawn, join, results, exceptions, migration, outside spawns.
#include "weft_test.hpp"

#include <atomic>
#include <chrono>
#include <mutex>
#include <stdexcept>
#include <vector>

namespace {

class Scheduler : public weft_test {};
WEFT_INSTANTIATE(Scheduler);

TEST_P(Scheduler, SpawnFromOutsideReturnsResult) {
  auto h = sched().spawn([](int a, int b) { return a * b; }, 6, 7);
  EXPECT_EQ(h.join(), 42);
}

TEST_P(Scheduler, BlockOnRunsInAFiber) {
  int v = sched().block_on([] {
    EXPECT_TRUE(weft::this_fiber::in_fiber());
    EXPECT_NE(weft::this_fiber::id(), 0u);
    EXPECT_GE(weft::this_worker::index(), 0);
    return 5;
  });
  EXPECT_EQ(v, 5);
  EXPECT_FALSE(weft::this_fiber::in_fiber());
  EXPECT_EQ(weft::this_worker::index(), -1);
}

int fib(int n) {
  if (n < 2) return n;
  auto h = weft::spawn(fib, n - 1);
  int b = fib(n - 2);
  return h.join() + b;
}

TEST_P(Scheduler, ForkJoinFib) { EXPECT_EQ(sched().block_on([] { return fib(20); }), 6765); }

TEST_P(Scheduler, HundredThousandFibersJoined) {
  constexpr int n = 100000;
  long long sum = sched().block_on([] {
    std::vector<weft::join_handle<int>> hs;
    hs.reserve(n);
    for (int i = 0; i < n; ++i) hs.push_back(weft::spawn([i] { return i; }));
    long long s = 0;
    for (auto& h : hs) s += h.join();
    return s;
  });
  EXPECT_EQ(sum, static_cast<long long>(n) * (n - 1) / 2);
}

TEST_P(Scheduler, ExceptionCrossesJoin) {
  auto h = sched().spawn([]() -> int { throw std::runtime_error("boom"); });
  EXPECT_THROW(
      {
        try {
          h.join();
        } catch (const std::runtime_error& e) {
          EXPECT_STREQ(e.what(), "boom");
          throw;
        }
      },
      std::runtime_error);
}

TEST_P(Scheduler, YieldInterleaves) {
  std::atomic<int> turns{0};
  sched().block_on([&] {
    auto a = weft::spawn([&] {
      for (int i = 0; i < 1000; ++i) {
        turns.fetch_add(1);
        weft::this_fiber::yield();
      }
    });
    auto b = weft::spawn([&] {
      for (int i = 0; i < 1000; ++i) {
        turns.fetch_add(1);
        weft::this_fiber::yield();
      }
    });
    a.join();
    b.join();
  });
  EXPECT_EQ(turns.load(), 2000);
}

}  // namespace

namespace {

class Sleep : public weft_test {};
WEFT_INSTANTIATE(Sleep);

TEST_P(Sleep, SleepForWaitsAtLeastTheDuration) {
  auto elapsed = sched().block_on([] {
    auto t0 = std::chrono::steady_clock::now();
    weft::this_fiber::sleep_for(std::chrono::milliseconds(20));
    return std::chrono::steady_clock::now() - t0;
  });
  EXPECT_GE(elapsed, std::chrono::milliseconds(20));
}

TEST_P(Sleep, ZeroNegativeAndPastDeadlinesReturnAtOnce) {
  sched().block_on([] {
    weft::this_fiber::sleep_for(std::chrono::milliseconds(0));
    weft::this_fiber::sleep_for(std::chrono::milliseconds(-5));
    weft::this_fiber::sleep_until(std::chrono::steady_clock::now() - std::chrono::seconds(1));
    weft::this_fiber::sleep_until(std::chrono::steady_clock::time_point::min());
  });
  SUCCEED();
}

TEST_P(Sleep, TimersFireInDeadlineOrderAndNeverEarly) {
  // Every sleeper wakes no earlier than its deadline. With one worker the fibers also run
  // in deadline order (wakes are queued FIFO); with more, a preempted worker thread may
  // legitimately run a later fiber first, so only the deadlines are checked there.
  std::vector<int> order;
  std::mutex mu;
  std::atomic<int> early{0};
  sched().block_on([&] {
    std::vector<weft::join_handle<void>> hs;
    for (int i = 9; i >= 0; --i)
      hs.push_back(weft::spawn([&, i] {
        auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(5 * i + 1);
        weft::this_fiber::sleep_until(deadline);
        if (std::chrono::steady_clock::now() < deadline) early.fetch_add(1);
        std::lock_guard<std::mutex> g(mu);
        order.push_back(i);
      }));
    for (auto& h : hs) h.join();
  });
  EXPECT_EQ(early.load(), 0);
  ASSERT_EQ(order.size(), 10u);
  if (workers() == 1) {
    for (int i = 0; i < 10; ++i) EXPECT_EQ(order[i], i);
  }
}

TEST_P(Sleep, SleepingFiberDoesNotBlockItsWorker) {
  std::atomic<bool> other_ran{false};
  sched().block_on([&] {
    auto sleeper = weft::spawn([] { weft::this_fiber::sleep_for(std::chrono::milliseconds(50)); });
    auto other = weft::spawn([&] { other_ran = true; });
    other.join();
    EXPECT_TRUE(other_ran.load());
    sleeper.join();
  });
}

}  // namespace
