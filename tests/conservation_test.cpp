// tests/conservation_test.cpp - work conservation (src/worker.hpp, "Work conservation"):
// while a worker is idle, a runnable fiber never waits for long behind a fiber that
// computes without suspending.
//
// Every scenario has the same shape: a fiber makes another one runnable (a wake from each
// primitive, a spawn, a yield, a timer, fd readiness) and then *computes*: it spins on an
// atomic flag that only the stranded fiber sets, never reaching a scheduling point. So
// the stranded fiber can only run if another worker takes it from the computing fiber's
// worker. The spin gives up after a watchdog (15 s), which fails the test with a message
// instead of hanging the suite; the stranded fiber then runs on its own worker, so every
// round still finishes and nothing is left waiting on a destroyed primitive.
//
// Workers 2 and 4 only: with one worker the computing fiber legitimately keeps it.
// Each test prints how long the stranded fiber waited, from the moment it became
// runnable to the moment it ran (median and maximum over its rounds).
#include "weft_test.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fcntl.h>
#include <optional>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

constexpr auto watchdog = 15s;
constexpr int rounds = 8;

class Conservation : public weft_test {
protected:
  // The waits measured so far (ns).
  std::vector<std::int64_t> waits_;

  void TearDown() override {
    if (!waits_.empty()) {
      std::sort(waits_.begin(), waits_.end());
      std::printf("[ wait     ] %s: stranded fiber ran after median %.1f us, max %.1f us "
                  "(%zu rounds)\n",
                  ::testing::UnitTest::GetInstance()->current_test_info()->name(),
                  waits_[waits_.size() / 2] / 1e3, waits_.back() / 1e3, waits_.size());
    }
    weft_test::TearDown();
  }

  // One measurement: the stranded fiber became runnable at `woke` and ran at `ran`.
  void record(std::int64_t woke, std::int64_t ran) {
    if (woke != 0 && ran != 0) waits_.push_back(std::max<std::int64_t>(0, ran - woke));
  }
};
INSTANTIATE_TEST_SUITE_P(workers, Conservation, ::testing::Values(2u, 4u),
                         [](const auto& info) { return "w" + std::to_string(info.param); });

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now().time_since_epoch())
      .count();
}

// The computing side: spins, never suspending, until `flag` is set; false when the
// watchdog expired first.
bool compute_until(const std::atomic<bool>& flag) {
  const auto give_up = steady::now() + watchdog;
  for (unsigned i = 0; !flag.load(std::memory_order_acquire); ++i)
    if (i % 1024 == 0 && steady::now() > give_up) return false;
  return true;
}

// A fiber that waits for `flag` while letting others run (sleeps, never spins).
void sleep_until_set(const std::atomic<bool>& flag) {
  while (!flag.load(std::memory_order_acquire)) weft::this_fiber::sleep_for(100us);
}

// Spins for d with nothing else runnable: meanwhile the other workers finish searching
// and park with no timer to wake them, the state in which nothing but the mechanism
// under test can bring them back.
void let_others_park(std::chrono::microseconds d = 500us) {
  const auto until = steady::now() + d;
  while (steady::now() < until) {
  }
}

// Shared state of one round: the stranded fiber sets `ran`; `waiting` tells the waker
// that the stranded fiber is about to block.
struct round_state {
  std::atomic<bool> waiting{false}, ran{false};
  std::atomic<std::int64_t> woke_at{0}, ran_at{0};
  std::atomic<bool> expired{false};

  // Stranded side, right after it resumed.
  void mark_ran() {
    ran_at.store(now_ns(), std::memory_order_relaxed);
    ran.store(true, std::memory_order_release);
  }
  // Waker side: wait until the other fiber blocks (it announced it, and 1 ms later it has
  // suspended), do `wake`, then compute until it ran.
  template <class F>
  void wake_then_compute(F&& wake) {
    sleep_until_set(waiting);
    weft::this_fiber::sleep_for(1ms);  // the other fiber has suspended
    let_others_park();
    wake();
    woke_at.store(now_ns(), std::memory_order_relaxed);
    if (!compute_until(ran)) expired.store(true);
  }
};

// Runs the body (which fills the round_state `st`) in block_on `rounds` times; fails (and
// stops) at the first round whose computing fiber had to give up.
#define CONSERVATION_ROUNDS(...)                                                         \
  for (int round = 0; round < rounds; ++round) {                                         \
    round_state st;                                                                      \
    sched().block_on([&] { __VA_ARGS__; });                                              \
    record(st.woke_at.load(), st.ran_at.load());                                         \
    ASSERT_FALSE(st.expired.load())                                                      \
        << "round " << round << ": the runnable fiber was not run by an idle worker within " \
        << std::chrono::duration_cast<std::chrono::seconds>(watchdog).count()            \
        << " s while its worker computed";                                               \
  }

TEST_P(Conservation, EventWakeThenCompute) {
  CONSERVATION_ROUNDS({
    weft::event e;
    auto p = weft::spawn([&] {
      st.waiting = true;
      e.wait();
      st.mark_ran();
    });
    auto q = weft::spawn([&] { st.wake_then_compute([&] { e.set(); }); });
    q.join();
    p.join();
  });
}

TEST_P(Conservation, ChannelRecvWokenBySenderThatComputes) {
  CONSERVATION_ROUNDS({
    weft::channel<int> ch(0);
    auto p = weft::spawn([&] {
      st.waiting = true;
      EXPECT_EQ(ch.recv().value_or(-1), 1);
      st.mark_ran();
    });
    auto q = weft::spawn([&] { st.wake_then_compute([&] { (void)ch.send(1); }); });
    q.join();
    p.join();
  });
}

TEST_P(Conservation, FullChannelSenderReleasedByReceiverThatComputes) {
  CONSERVATION_ROUNDS({
    weft::channel<int> ch(1);
    auto s = weft::spawn([&] {
      EXPECT_EQ(ch.send(1), weft::channel_status::ok);  // fills the buffer
      st.waiting = true;
      EXPECT_EQ(ch.send(2), weft::channel_status::ok);  // blocks: full
      st.mark_ran();
    });
    auto r = weft::spawn([&] {
      st.wake_then_compute([&] { EXPECT_EQ(ch.recv().value_or(-1), 1); });
      EXPECT_EQ(ch.recv().value_or(-1), 2);
    });
    r.join();
    s.join();
  });
}

TEST_P(Conservation, MutexUnlockThenCompute) {
  CONSERVATION_ROUNDS({
    weft::mutex m;
    std::atomic<bool> locked{false};
    // The unlock happens in a callback: beyond clang's -Wthread-safety.
    auto q = weft::spawn([&]() WEFT_NO_THREAD_SAFETY_ANALYSIS {
      m.lock();
      locked = true;
      st.wake_then_compute([&] { m.unlock(); });
    });
    auto p = weft::spawn([&] {
      sleep_until_set(locked);
      st.waiting = true;
      m.lock();
      st.mark_ran();
      m.unlock();
    });
    q.join();
    p.join();
  });
}

TEST_P(Conservation, SemaphoreReleaseThenCompute) {
  CONSERVATION_ROUNDS({
    weft::counting_semaphore sem(0);
    auto p = weft::spawn([&] {
      st.waiting = true;
      sem.acquire();
      st.mark_ran();
    });
    auto q = weft::spawn([&] { st.wake_then_compute([&] { sem.release(); }); });
    q.join();
    p.join();
  });
}

TEST_P(Conservation, WaitGroupDoneThenCompute) {
  CONSERVATION_ROUNDS({
    weft::wait_group wg(1);
    auto p = weft::spawn([&] {
      st.waiting = true;
      wg.wait();
      st.mark_ran();
    });
    auto q = weft::spawn([&] { st.wake_then_compute([&] { wg.done(); }); });
    q.join();
    p.join();
  });
}

// A yield puts the yielding fiber behind the local queue; the fiber it yields to then
// computes. Here S wakes Y (Y becomes S's worker's next fiber) and yields: Y runs, S waits
// in that worker's run queue, and Y computes until S is back.
TEST_P(Conservation, YieldBehindAFiberThatComputes) {
  CONSERVATION_ROUNDS({
    weft::event go;
    auto y = weft::spawn([&] {
      st.waiting = true;
      go.wait();
      if (!compute_until(st.ran)) st.expired = true;
    });
    auto s = weft::spawn([&] {
      sleep_until_set(st.waiting);
      weft::this_fiber::sleep_for(1ms);  // y has suspended
      let_others_park();
      go.set();
      st.woke_at = now_ns();
      weft::this_fiber::yield();  // y runs here next; this fiber queues behind it
      st.mark_ran();
    });
    s.join();
    y.join();
  });
}

// Occupies every worker with one fiber each, all spinning until all run; then runs
// `first` on fiber 0 while fibers 1..n-1 run `others`. Spawns made by fiber 0 while every
// worker is busy stay in its worker's private list (worker.hpp, "Private spawns").
// False when the fibers could not all be running at once within a few seconds (then
// the round proves nothing and is skipped).
// The barrier leans on the mechanism under test too: fillers spawned while no worker
// looked idle stay private to the spawner's worker, whose fiber then spins here.
// With more workers than cores the fillers are time-sliced and may see the spawn only
// milliseconds later: a round's wait is counted from the moment a worker went idle
// (`first_idle`, the earliest filler to finish) when that is after the spawn.
void note_idle(std::atomic<std::int64_t>& first_idle) {
  const std::int64_t t = now_ns();
  std::int64_t cur = first_idle.load();
  while (t < cur && !first_idle.compare_exchange_weak(cur, t)) {
  }
}

template <class First, class Others>
bool on_all_workers(unsigned n, First&& first, Others&& others) {
  std::atomic<unsigned> started{0};
  std::atomic<bool> all{true};
  std::vector<weft::join_handle<void>> hs;
  for (unsigned i = 0; i < n; ++i)
    hs.push_back(weft::spawn([&, i] {
      started.fetch_add(1);
      const auto give_up = steady::now() + 5s;
      while (started.load() < n && all.load())
        if (steady::now() > give_up) all = false;
      if (!all.load()) return;
      if (i == 0)
        first();
      else
        others(i);
    }));
  for (auto& h : hs) h.join();
  return all.load();
}

TEST_P(Conservation, SpawnFromAFiberThatComputes) {
  int conclusive = 0;
  for (int round = 0; round < rounds; ++round) {
    round_state st;
    std::atomic<bool> spawned{false};
    std::atomic<std::int64_t> first_idle{INT64_MAX};
    const bool ok = sched().block_on([&] {
      return on_all_workers(
          workers(),
          [&] {
            auto child = weft::spawn([&] { st.mark_ran(); });  // every worker is busy
            spawned = true;
            st.woke_at = now_ns();
            if (!compute_until(st.ran)) st.expired = true;
            child.join();
          },
          [&](unsigned) {
            // Busy (not suspended) until the spawn, so that no worker is idle then; then
            // their workers go idle.
            // Bounded: if fiber 0 gave up waiting for the others (oversubscribed and
            // slow), nothing will set `spawned`.
            const auto give_up = steady::now() + watchdog;
            while (!spawned.load() && steady::now() < give_up) {
            }
            note_idle(first_idle);
          });
    });
    if (!ok) continue;
    ++conclusive;
    record(std::max(st.woke_at.load(), first_idle.load()), st.ran_at.load());
    ASSERT_FALSE(st.expired.load()) << "round " << round
                                    << ": a child spawned by a computing fiber never ran";
  }
  EXPECT_GT(conclusive, 0);
}

// P blocks joining a child that its spawner (computing, on a busy worker) never published.
TEST_P(Conservation, JoinOfAChildHeldByAFiberThatComputes) {
  int conclusive = 0;
  for (int round = 0; round < rounds; ++round) {
    round_state st;
    std::optional<weft::join_handle<void>> handle;
    std::atomic<bool> handed{false};
    std::atomic<std::int64_t> first_idle{INT64_MAX};
    const bool ok = sched().block_on([&] {
      return on_all_workers(
          workers(),
          [&] {
            handle.emplace(weft::spawn([] {}));  // every worker is busy: stays private
            handed = true;
            st.woke_at = now_ns();
            if (!compute_until(st.ran)) st.expired = true;
          },
          [&](unsigned i) {
            while (!handed.load()) {  // busy until the spawn: no worker is idle then
            }
            note_idle(first_idle);
            if (i != 1) return;
            handle->join();  // the child is on fiber 0's worker: this fiber suspends
            st.mark_ran();
          });
    });
    if (!ok) continue;
    ++conclusive;
    record(std::max(st.woke_at.load(), first_idle.load()), st.ran_at.load());
    ASSERT_FALSE(st.expired.load()) << "round " << round
                                    << ": a joined child held by a computing fiber never ran";
  }
  EXPECT_GT(conclusive, 0);
}

// A select loop whose closed input is always ready never suspends; each value it takes
// from another input wakes that input's producer onto the loop's worker. Two producers
// can displace each other from there (a displaced one is queued where idle workers see
// it); once the one with fewer values is done, the other has nobody to displace it.
TEST_P(Conservation, SelectLoopWithAClosedInputDoesNotStarveProducers) {
  for (int round = 0; round < rounds; ++round) {
    constexpr int from_a = 30, from_b = 5;
    std::atomic<bool> gave_up{false};
    std::atomic<std::int64_t> started{0}, finished{0};
    sched().block_on([&] {
      weft::channel<int> a(0), b(0), closed(0);
      closed.close();
      auto producer = [](weft::channel<int>& ch, int n) {
        for (int i = 0; i < n; ++i) EXPECT_EQ(ch.send(i), weft::channel_status::ok);
      };
      auto pa = weft::spawn([&] { producer(a, from_a); });
      auto pb = weft::spawn([&] { producer(b, from_b); });
      auto loop = weft::spawn([&] {
        weft::this_fiber::sleep_for(1ms);  // the producers are blocked in send
        let_others_park();
        started = now_ns();
        int got = 0;
        const auto give_up = steady::now() + watchdog;
        while (got < from_a + from_b) {
          (void)weft::select(weft::recv_case(a, [&](std::optional<int> v) { got += v ? 1 : 0; }),
                             weft::recv_case(b, [&](std::optional<int> v) { got += v ? 1 : 0; }),
                             weft::recv_case(closed, [](std::optional<int> v) { EXPECT_FALSE(v); }));
          if (steady::now() > give_up) {
            gave_up = true;
            // Let the producers finish so that the round ends: drain without computing.
            while (got < from_a + from_b) {
              weft::this_fiber::yield();
              while (a.try_recv()) ++got;
              while (b.try_recv()) ++got;
            }
          }
        }
        finished = now_ns();
      });
      loop.join();
      pa.join();
      pb.join();
    });
    ASSERT_FALSE(gave_up.load()) << "round " << round
                                 << ": the select loop starved its producers for "
                                 << std::chrono::duration_cast<std::chrono::seconds>(watchdog).count()
                                 << " s";
    // The figure for this test: the mean time per value received.
    waits_.push_back((finished.load() - started.load()) / (from_a + from_b));
  }
}

// T's timer is armed on a worker that then runs a fiber that computes until T woke up.
TEST_P(Conservation, TimerOfAWorkerThatComputes) {
  CONSERVATION_ROUNDS({
    weft::event go;
    std::atomic<std::int64_t> deadline{0};
    auto c = weft::spawn([&] {
      st.waiting = true;
      go.wait();  // woken by T just before T sleeps: runs next on T's worker
      if (!compute_until(st.ran)) st.expired = true;
    });
    auto t = weft::spawn([&] {
      sleep_until_set(st.waiting);
      weft::this_fiber::sleep_for(1ms);  // c has suspended
      let_others_park();
      go.set();
      deadline = now_ns() + 1'000'000;
      weft::this_fiber::sleep_for(1ms);
      st.mark_ran();
    });
    t.join();
    c.join();
    st.woke_at = deadline.load();  // runnable once the deadline passed
  });
}

// R waits to read a pipe; Q writes to it and then computes until R read.
TEST_P(Conservation, FdReadinessThenCompute) {
  CONSERVATION_ROUNDS({
    int fds[2];
    ASSERT_EQ(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
    auto r = weft::spawn([&] {
      char c = 0;
      st.waiting = true;
      auto n = weft::io::read(fds[0], &c, 1);
      EXPECT_TRUE(n && *n == 1);
      st.mark_ran();
    });
    auto q = weft::spawn([&] {
      st.wake_then_compute([&] { EXPECT_TRUE(weft::io::write(fds[1], "x", 1)); });
    });
    q.join();
    r.join();
    EXPECT_TRUE(weft::io::close(fds[0]));
    EXPECT_TRUE(weft::io::close(fds[1]));
  });
}

}  // namespace
