// tests/blocking_test.cpp - run_blocking / blocking_pool: results, exceptions, only the
// calling fiber suspends, growth to max_threads, idle retirement, plain-thread fallback.
#include "weft_test.hpp"

#include <weft/blocking.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;

class Blocking : public weft_test {};
WEFT_INSTANTIATE(Blocking);

TEST_P(Blocking, ReturnsValueAndMoveOnlyResults) {
  auto v = sched().block_on([] {
    auto p = weft::run_blocking([] { return std::make_unique<int>(41); });
    weft::run_blocking([&] { ++*p; });  // void
    return *p;
  });
  EXPECT_EQ(v, 42);
}

TEST_P(Blocking, PropagatesExceptions) {
  sched().block_on([] {
    EXPECT_THROW(weft::run_blocking([]() -> int { throw std::runtime_error("boom"); }),
                 std::runtime_error);
  });
}

TEST_P(Blocking, RunsOnAnotherThreadAndSuspendsOnlyTheCaller) {
  sched().block_on([] {
    std::atomic<bool> other_ran{false};
    auto other = weft::spawn([&] { other_ran.store(true); });
    std::thread::id caller = std::this_thread::get_id();
    std::thread::id ran_on = weft::run_blocking([&] {
      // The other fiber runs meanwhile, even with a single worker.
      for (int i = 0; i < 2000 && !other_ran.load(); ++i) std::this_thread::sleep_for(1ms);
      return std::this_thread::get_id();
    });
    EXPECT_NE(ran_on, caller);
    EXPECT_TRUE(other_ran.load());
    other.join();
  });
}

TEST_P(Blocking, ManyConcurrentCallsGrowToMaxThenQueue) {
  weft::blocking_pool pool({.min_threads = 0, .max_threads = 4, .idle_timeout = 50ms});
  std::atomic<int> running{0}, peak{0};
  sched().block_on([&] {
    std::vector<weft::join_handle<int>> hs;
    for (int i = 0; i < 32; ++i)
      hs.push_back(weft::spawn([&, i] {
        return pool.run([&, i] {
          int now = running.fetch_add(1) + 1;
          int p = peak.load();
          while (now > p && !peak.compare_exchange_weak(p, now)) {
          }
          std::this_thread::sleep_for(2ms);
          running.fetch_sub(1);
          return i;
        });
      }));
    for (int i = 0; i < 32; ++i) EXPECT_EQ(hs[i].join(), i);
  });
  EXPECT_LE(peak.load(), 4);
  EXPECT_GE(peak.load(), 2);
  EXPECT_LE(pool.threads(), 4u);
  // Idle threads above min_threads retire after idle_timeout.
  for (int i = 0; i < 200 && pool.threads() > 0; ++i) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(pool.threads(), 0u);
  // ...and the pool grows again afterwards.
  EXPECT_EQ(sched().block_on([&] { return pool.run([] { return 7; }); }), 7);
}

TEST_P(Blocking, PlainThreadCallsInline) {
  auto id = weft::run_blocking([] { return std::this_thread::get_id(); });
  EXPECT_EQ(id, std::this_thread::get_id());
}

TEST_P(Blocking, BadOptionsThrow) {
  EXPECT_THROW(weft::blocking_pool({.min_threads = 0, .max_threads = 0}), std::invalid_argument);
  EXPECT_THROW(weft::blocking_pool({.min_threads = 5, .max_threads = 2}), std::invalid_argument);
}

TEST_P(Blocking, MinThreadsStayAndShutdownJoinsPool) {
  weft::blocking_pool pool({.min_threads = 2, .max_threads = 2, .idle_timeout = 1ms});
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(pool.threads(), 2u);
  std::atomic<int> n{0};
  {
    weft::scheduler s({.workers = workers()});
    for (int i = 0; i < 100; ++i)
      s.spawn([&] {
         weft::run_blocking([&] { n.fetch_add(1); });  // the default pool
       }).detach();
  }  // shutdown waits for the fibers, then joins the default pool
  EXPECT_EQ(n.load(), 100);
}

}  // namespace
