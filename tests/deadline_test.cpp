// tests/deadline_test.cpp - the deadline on every wait: join_handle::wait_until/join_until
// (and _for), latch::wait_until, barrier::arrive_and_wait_until, run_blocking_until, from
// fibers and plain threads at 1, 2 and 4 workers; timeouts racing completions.
//
// A timeout is never forced by sleeping "long enough": what the wait is for is held back
// (an event the test sets only after the timed wait returned), so a wait that ignored its
// deadline would never return; the watchdog then ends the binary with a message instead of
// a hang.
#include "weft_test.hpp"
#include "watchdog.hpp"

#include <atomic>
#include <chrono>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;

class Deadline : public weft_test {};
WEFT_INSTANTIATE(Deadline);

// ---------------------------------------------------------------- join

// A timed join that starts as the fiber ends: the completer may set DONE between the
// joiner's check under the join lock and its JOIN_TIMED mark; the joiner must then see
// DONE in its own mark and not wait for a wake that will not come. Each round's deadline
// is an hour away (and max() for wait_until), so a lost wake hangs the round and the
// watchdog fails the test. Schedule fuzzing pauses the joiner in that window
// (deadline_test_seed1); mutation: ignore the mark's result in task_wait_until.
TEST_P(Deadline, TimedJoinRacingTheFibersEndIsNeverLost) {
  watchdog dog("TimedJoinRacingTheFibersEndIsNeverLost");
  constexpr int rounds = 400;
  int done = 0;
  sched().block_on([&] {
    for (int r = 0; r < rounds; ++r) {
      auto h = weft::spawn([r] { return r; });
      if (r % 3 == 1) weft::this_fiber::yield();
      if (r % 2 == 0) {
        EXPECT_TRUE(h.wait_until(weft::clock::time_point::max()));
        done += h.join() == r;
      } else {
        auto v = h.join_for(std::chrono::hours(1));
        done += v && *v == r;
      }
      if (r % 50 == 0) dog.kick("round " + std::to_string(r));
    }
  });
  EXPECT_EQ(done, rounds);
}

TEST_P(Deadline, JoinForTimesOutKeepsTheHandleAndJoinsLater) {
  watchdog dog("JoinForTimesOutKeepsTheHandleAndJoinsLater");
  sched().block_on([&] {
    weft::event gate;
    auto h = weft::spawn([&] {
      gate.wait();
      return 42;
    });
    std::optional<int> r = h.join_for(2ms);
    EXPECT_FALSE(r.has_value());
    EXPECT_TRUE(h.joinable());
    EXPECT_FALSE(h.wait_for(1ms));  // a second timed wait on the same handle
    EXPECT_TRUE(h.joinable());
    dog.kick("timed out twice");
    gate.set();
    r = h.join_for(std::chrono::hours(1));
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(*r, 42);
    EXPECT_FALSE(h.joinable());
  });
}

TEST_P(Deadline, JoinUntilThenPlainJoinAndVoidAndReferenceResults) {
  watchdog dog("JoinUntilThenPlainJoinAndVoidAndReferenceResults");
  sched().block_on([&] {
    weft::event gate;
    auto h = weft::spawn([&] { gate.wait(); });
    EXPECT_FALSE(h.join_until(weft::clock::now() + 1ms));  // join_handle<void>: bool
    gate.set();
    h.join();  // an untimed join after a timed one that timed out
    EXPECT_FALSE(h.joinable());

    static int target = 7;
    weft::event gate2;
    auto r = weft::spawn([&]() -> int& {
      gate2.wait();
      return target;
    });
    EXPECT_FALSE(r.join_for(1ms).has_value());
    gate2.set();
    auto ref = r.join_for(std::chrono::hours(1));
    ASSERT_TRUE(ref.has_value());
    EXPECT_EQ(&ref->get(), &target);
  });
}

TEST_P(Deadline, JoinForRethrowsAndPastDeadlineOnlyChecks) {
  sched().block_on([&] {
    auto h = weft::spawn([]() -> int { throw std::runtime_error("boom"); });
    EXPECT_THROW((void)h.join_for(std::chrono::hours(1)), std::runtime_error);
    EXPECT_FALSE(h.joinable());

    weft::event gate;
    auto g = weft::spawn([&] { gate.wait(); });
    EXPECT_FALSE(g.wait_until(weft::clock::now() - 1s));  // past: only checks
    EXPECT_FALSE(g.join_for(-1s));
    gate.set();
    g.join();
    weft::join_handle<int> none;
    EXPECT_THROW((void)none.join_for(1ms), std::logic_error);
  });
}

TEST_P(Deadline, JoinForFromAPlainThread) {
  watchdog dog("JoinForFromAPlainThread");
  weft::event gate;
  auto h = sched().spawn([&] {
    gate.wait();
    return std::string("done");
  });
  EXPECT_FALSE(h.join_for(2ms).has_value());
  EXPECT_TRUE(h.joinable());
  gate.set();
  auto r = h.join_for(std::chrono::hours(1));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, "done");
}

// Completion racing the timer: every child finishes while its joiner retries with tiny
// deadlines, sometimes switching to an untimed join. Each result must arrive exactly once
// and no joiner may hang (a lost wake-up) or read a dead waiter (ASan/TSan builds).
TEST_P(Deadline, JoinTimeoutRacesCompletion) {
  watchdog dog("JoinTimeoutRacesCompletion");
  constexpr int joiners = 8, rounds = 150;
  std::atomic<long> sum{0};
  sched().block_on([&] {
    std::vector<weft::join_handle<void>> js;
    for (int j = 0; j < joiners; ++j)
      js.push_back(weft::spawn([&, j] {
        std::minstd_rand rng(static_cast<unsigned>(j) + 1);
        for (int i = 0; i < rounds; ++i) {
          const int spins = static_cast<int>(rng() % 8);
          auto h = weft::spawn([spins, i] {
            for (int k = 0; k < spins; ++k) weft::this_fiber::yield();
            return i;
          });
          std::optional<int> r;
          int tries = 0;
          while (!(r = h.join_for(std::chrono::microseconds(rng() % 50)))) {
            if (++tries == 20) {  // and sometimes finish with an untimed join
              r = h.join();
              break;
            }
          }
          EXPECT_EQ(*r, i);
          sum.fetch_add(*r, std::memory_order_relaxed);
        }
        dog.kick("joiner " + std::to_string(j));
      }));
    for (auto& h : js) h.join();
  });
  EXPECT_EQ(sum.load(), long{joiners} * rounds * (rounds - 1) / 2);
}

TEST_P(Deadline, PlainThreadJoinTimeoutRacesCompletion) {
  watchdog dog("PlainThreadJoinTimeoutRacesCompletion");
  constexpr int rounds = 200;
  std::minstd_rand rng(3);
  for (int i = 0; i < rounds; ++i) {
    const int spins = static_cast<int>(rng() % 8);
    auto h = sched().spawn([spins, i] {
      for (int k = 0; k < spins; ++k) weft::this_fiber::yield();
      return i;
    });
    std::optional<int> r;
    while (!(r = h.join_for(std::chrono::microseconds(rng() % 30)))) {
    }
    EXPECT_EQ(*r, i);
    if (i % 50 == 0) dog.kick("round " + std::to_string(i));
  }
}

// ---------------------------------------------------------------- latch

TEST_P(Deadline, LatchWaitForTimesOutThenSucceeds) {
  watchdog dog("LatchWaitForTimesOutThenSucceeds");
  weft::latch l(2);
  sched().block_on([&] {
    EXPECT_FALSE(l.wait_for(2ms));
    EXPECT_FALSE(l.wait_until(weft::clock::now() - 1s));  // past: only checks
    l.count_down();
    EXPECT_FALSE(l.wait_for(1ms));  // still one short
    auto h = weft::spawn([&] { return l.wait_for(std::chrono::hours(1)); });
    l.count_down();
    EXPECT_TRUE(h.join());
    EXPECT_TRUE(l.wait_for(0s));
  });
  weft::latch t(1);  // a plain thread
  EXPECT_FALSE(t.wait_for(2ms));
  t.count_down();
  EXPECT_TRUE(t.wait_for(1ms));
}

// ---------------------------------------------------------------- barrier

// The timed-out arrival is withdrawn: a lone other arrival must not complete the phase.
TEST_P(Deadline, BarrierTimeoutWithdrawsTheArrival) {
  watchdog dog("BarrierTimeoutWithdrawsTheArrival");
  std::atomic<int> phases{0};
  auto on_phase = [&]() noexcept { phases.fetch_add(1); };
  weft::barrier<decltype(on_phase)> b(2, on_phase);
  sched().block_on([&] {
    EXPECT_FALSE(b.arrive_and_wait_for(2ms));
    EXPECT_EQ(phases.load(), 0);
    EXPECT_FALSE(b.arrive_and_wait_until(weft::clock::now() - 1s));  // past: withdraws at once
    auto token = b.arrive();  // one arrival of two: the phase must stay open
    EXPECT_EQ(phases.load(), 0);
    EXPECT_TRUE(b.arrive_and_wait_for(std::chrono::hours(1)));  // completes it, no wait
    EXPECT_EQ(phases.load(), 1);
    b.wait(std::move(token));
    // Next phase: a timed waiter released by the other participant in time.
    auto h = weft::spawn([&] { return b.arrive_and_wait_for(std::chrono::hours(1)); });
    b.arrive_and_wait();
    EXPECT_TRUE(h.join());
    EXPECT_EQ(phases.load(), 2);
  });
  // A plain thread's timed-out arrival is withdrawn too.
  EXPECT_FALSE(b.arrive_and_wait_for(2ms));
  (void)b.arrive();
  EXPECT_EQ(phases.load(), 2);
  EXPECT_TRUE(b.arrive_and_wait_for(std::chrono::hours(1)));
  EXPECT_EQ(phases.load(), 3);
}

// Participants retry timed arrivals with tiny deadlines while the phases complete,
// whether the timer or the completion wins each race. A participant released from phase r
// must see exactly r + 1 completed phases: phase r + 1 needs its own arrival, so a count
// ahead of that means a timed-out arrival was counted (not withdrawn) and a phase
// completed short of a participant.
TEST_P(Deadline, BarrierTimeoutsRacePhaseCompletion) {
  watchdog dog("BarrierTimeoutsRacePhaseCompletion");
  constexpr int parties = 4, rounds = 100;
  std::atomic<int> phases{0};
  auto on_phase = [&]() noexcept { phases.fetch_add(1, std::memory_order_relaxed); };
  weft::barrier<decltype(on_phase)> b(parties, on_phase);
  sched().block_on([&] {
    std::vector<weft::join_handle<void>> hs;
    for (int i = 0; i < parties; ++i)
      hs.push_back(weft::spawn([&, i] {
        std::minstd_rand rng(static_cast<unsigned>(i) + 11);
        for (int r = 0; r < rounds; ++r) {
          while (!b.arrive_and_wait_for(std::chrono::microseconds(rng() % 40))) {
          }
          // relaxed: the completion ran before our release (the barrier orders it).
          EXPECT_EQ(phases.load(std::memory_order_relaxed), r + 1);
          if (r % 20 == 0) dog.kick("party " + std::to_string(i));
        }
      }));
    for (auto& h : hs) h.join();
  });
  EXPECT_EQ(phases.load(), rounds);
}

// ---------------------------------------------------------------- run_blocking

struct counted {
  static std::atomic<int> alive;
  int v;
  explicit counted(int x) : v(x) { alive.fetch_add(1); }
  counted(counted&& o) noexcept : v(o.v) { alive.fetch_add(1); }
  ~counted() { alive.fetch_sub(1); }
};
std::atomic<int> counted::alive{0};

TEST_P(Deadline, RunBlockingForStopsWaitingAndDiscardsTheLateResult) {
  watchdog dog("RunBlockingForStopsWaitingAndDiscardsTheLateResult");
  auto release = std::make_shared<std::atomic<bool>>(false);
  auto ran_to_end = std::make_shared<std::atomic<bool>>(false);
  sched().block_on([&] {
    auto r = weft::run_blocking_for(2ms, [release, ran_to_end] {
      while (!release->load()) std::this_thread::sleep_for(100us);  // a stuck call
      ran_to_end->store(true);
      return counted(5);
    });
    EXPECT_FALSE(r.has_value());  // the fiber stopped waiting; the call runs on
    dog.kick("timed out");
    release->store(true);
    // In time: the value (and a void call reports true).
    auto ok = weft::run_blocking_for(std::chrono::hours(1), [] { return counted(6); });
    ASSERT_TRUE(ok.has_value());
    EXPECT_EQ(ok->v, 6);
    EXPECT_TRUE(weft::run_blocking_until(weft::clock::time_point::max(), [] {}));
    EXPECT_THROW((void)weft::run_blocking_for(std::chrono::hours(1),
                                              []() -> int { throw std::runtime_error("x"); }),
                 std::runtime_error);
  });
  // The late call ends on its own; its result is destroyed with the job.
  while (!ran_to_end->load()) std::this_thread::sleep_for(1ms);
  while (counted::alive.load() != 0) std::this_thread::sleep_for(1ms);  // watchdog bounds it
  EXPECT_EQ(counted::alive.load(), 0);
}

TEST_P(Deadline, BlockingPoolRunForAndPlainThreadRunsInline) {
  watchdog dog("BlockingPoolRunForAndPlainThreadRunsInline");
  weft::blocking_pool pool(weft::blocking_options{.min_threads = 0, .max_threads = 2});
  auto release = std::make_shared<std::atomic<bool>>(false);
  sched().block_on([&] {
    auto r = pool.run_for(2ms, [release] {
      while (!release->load()) std::this_thread::sleep_for(100us);
      return 1;
    });
    EXPECT_FALSE(r.has_value());
    release->store(true);
    auto ok = pool.run_for(std::chrono::hours(1), [] { return 2; });
    ASSERT_TRUE(ok.has_value());
    EXPECT_EQ(*ok, 2);
  });
  // A plain thread calls it itself (there is no fiber to suspend): no deadline applies.
  const auto me = std::this_thread::get_id();
  auto r = pool.run_for(1ms, [me] { return std::this_thread::get_id() == me; });
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(*r);
}  // the pool's destructor waits for the late call (released above)

// Timeouts racing the calls' completions: every call either delivers its value once or is
// discarded, and the pool's jobs are all freed (ASan's leak check; the counter here).
TEST_P(Deadline, RunBlockingTimeoutRacesCompletion) {
  watchdog dog("RunBlockingTimeoutRacesCompletion");
  sched().block_on([&] {
    std::vector<weft::join_handle<void>> hs;
    for (int j = 0; j < 4; ++j)
      hs.push_back(weft::spawn([&, j] {
        std::minstd_rand rng(static_cast<unsigned>(j) + 5);
        for (int i = 0; i < 60; ++i) {
          auto r = weft::run_blocking_for(std::chrono::microseconds(rng() % 200),
                                          [i] { return counted(i); });
          if (r) {
            EXPECT_EQ(r->v, i);
          }
        }
        dog.kick("caller " + std::to_string(j));
      }));
    for (auto& h : hs) h.join();
  });
  // The late calls end on their own and their results die with their jobs (watchdog-bounded).
  while (counted::alive.load() != 0) std::this_thread::sleep_for(1ms);
}

}  // namespace
