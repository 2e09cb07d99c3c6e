// tests/sync_phase_test.cpp - weft::latch and weft::barrier from fibers and plain threads
// at 1, 2 and 4 workers: release only at zero / at the end of each phase, the
// happens-before edges they promise, arrive_and_drop, the split arrive()/wait(token),
// and contract violations.
#include "weft_test.hpp"

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;

class SyncPhase : public weft_test {};
WEFT_INSTANTIATE(SyncPhase);

TEST_P(SyncPhase, LatchReleasesWaitersOnlyAtZeroAndPublishesTheWrites) {
  constexpr int fibers = 16, threads = 2;
  weft::latch done(fibers + threads);
  std::vector<int> data(fibers + threads, 0);
  std::atomic<int> released{0};
  EXPECT_FALSE(done.try_wait());
  std::thread waiter([&] {  // a plain-thread waiter
    done.wait();
    for (int v : data) EXPECT_EQ(v, 1);
    released.fetch_add(1);
  });
  std::vector<std::thread> ts;
  sched().block_on([&] {
    std::vector<weft::join_handle<void>> hs;
    for (int i = 0; i < 4; ++i)  // fiber waiters
      hs.push_back(weft::spawn([&] {
        done.wait();
        for (int v : data) EXPECT_EQ(v, 1);  // plain reads: the latch orders them
        released.fetch_add(1);
      }));
    weft::this_fiber::sleep_for(2ms);
    EXPECT_EQ(released.load(), 0);
    for (int i = 0; i < fibers; ++i)
      hs.push_back(weft::spawn([&, i] {
        data[i] = 1;
        done.count_down();
      }));
    for (int i = 0; i < threads; ++i)
      ts.emplace_back([&, i] {
        data[fibers + i] = 1;
        done.count_down();
      });
    for (auto& h : hs) h.join();
  });
  for (auto& t : ts) t.join();
  waiter.join();
  EXPECT_TRUE(done.try_wait());
  EXPECT_EQ(released.load(), 5);
  done.wait();  // already zero: returns at once
}

TEST_P(SyncPhase, LatchArriveAndWaitAndCountDownByN) {
  weft::latch l(6);
  sched().block_on([&] {
    auto a = weft::spawn([&] { l.arrive_and_wait(2); });
    auto b = weft::spawn([&] { l.arrive_and_wait(3); });
    weft::this_fiber::sleep_for(1ms);
    EXPECT_FALSE(l.try_wait());
    l.count_down();
    a.join();
    b.join();
  });
  EXPECT_TRUE(l.try_wait());
}

TEST_P(SyncPhase, BarrierPhasesFromFibersAndAThread) {
  constexpr int fibers = 7, phases = 50;
  constexpr int parties = fibers + 1;
  std::vector<int> slot(parties, -1);
  int completions = 0;
  bool completion_saw_all = true;
  weft::barrier b(parties, [&]() noexcept {
    for (int v : slot) completion_saw_all &= v == completions;  // every arrival of the phase
    ++completions;
  });
  auto participant = [&](int me) {
    for (int p = 0; p < phases; ++p) {
      slot[me] = p;
      b.arrive_and_wait();
      // The phase's completion ran before any wait returned (and the next one cannot run
      // before this participant arrives again), so this read races with nothing.
      EXPECT_EQ(completions, p + 1);
    }
  };
  std::thread t([&] { participant(fibers); });
  sched().block_on([&] {
    std::vector<weft::join_handle<void>> hs;
    for (int i = 0; i < fibers; ++i) hs.push_back(weft::spawn(participant, i));
    for (auto& h : hs) h.join();
  });
  t.join();
  EXPECT_EQ(completions, phases);
  EXPECT_TRUE(completion_saw_all);
}

TEST_P(SyncPhase, BarrierArriveAndDropAndSplitArrival) {
  std::atomic<int> phase_count{0};
  weft::barrier b(3, [&]() noexcept { phase_count.fetch_add(1); });
  sched().block_on([&] {
    auto dropper = weft::spawn([&] {
      b.arrive_and_wait();  // phase 0
      b.arrive_and_drop();  // phase 1, then gone: later phases need 2
    });
    auto stayer = weft::spawn([&] {
      for (int p = 0; p < 4; ++p) b.arrive_and_wait();
    });
    for (int p = 0; p < 4; ++p) {
      auto token = b.arrive();  // split: arrive, do other work, then wait
      weft::this_fiber::yield();
      b.wait(std::move(token));
    }
    dropper.join();
    stayer.join();
  });
  EXPECT_EQ(phase_count.load(), 4);
}

TEST(SyncPhaseDeath, ContractViolationsAbortWithAMessage) {
  EXPECT_DEATH({ weft::latch l(-1); }, "latch constructed with a negative count");
  EXPECT_DEATH(
      {
        weft::barrier b(2);
        (void)b.arrive(3);
      },
      "more arrivals than the phase expects");
  EXPECT_DEATH(
      {
        weft::latch l(1);
        l.count_down(2);
      },
      "");
}

}  // namespace
