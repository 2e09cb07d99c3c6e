// Unit tests for src/timers.hpp's timer_shard (the hierarchical wheel), driven with a
// synthetic clock: random arms, cancels and firings against a reference model. Checked:
// no entry ever fires before its deadline, after fire_due(now) no entry whose deadline
// has passed is left (exact, not tick-rounded), every entry fires or is cancelled exactly
// once, and next() never lies past the earliest pending deadline.
#include "timers.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

namespace {

using weft::detail::steady_ns;
using weft::detail::timer_entry;
using weft::detail::timer_shard;

struct probe : timer_entry {
  std::int64_t deadline_ns = 0;
  std::int64_t fired_at = -1;  // the `now` of the fire_due that fired it
  int fires = 0;
  bool armed = false;
  int seq_no = 0;
  static inline std::int64_t now = 0;
};

void on_fire(timer_entry* e) noexcept {
  auto* p = static_cast<probe*>(e);
  ++p->fires;
  p->fired_at = probe::now;
}

constexpr std::int64_t tick_ns = std::int64_t{1} << timer_shard::tick_shift;

// The synthetic clock starts an hour ahead of the real one: the shard reads the real
// clock only to restart an empty wheel (min(deadline, now)), which must not move it past
// a synthetic deadline.
std::int64_t synthetic_start() { return steady_ns() + 3600LL * 1000000000LL; }

void arm(timer_shard& s, probe& p, std::int64_t deadline) {
  p.deadline_ns = deadline;
  p.deadline = std::chrono::steady_clock::time_point(std::chrono::nanoseconds(deadline));
  p.fire = on_fire;
  p.armed = true;
  s.arm(&p);
}

// Fires at `now` and checks the two timing properties against every probe.
void fire_and_check(timer_shard& s, std::vector<std::unique_ptr<probe>>& ps, std::int64_t now) {
  probe::now = now;
  s.fire_due(now, false);
  const std::int64_t now_tick = now >> timer_shard::tick_shift;
  std::int64_t earliest = timer_shard::none;
  for (auto& p : ps) {
    if (!p->armed) continue;
    if (p->fires) {
      ASSERT_EQ(p->fires, 1);
      ASSERT_GE(p->fired_at, p->deadline_ns) << "fired early";
      p->armed = false;
      continue;
    }
    ASSERT_GT(p->deadline_ns, now) << "left pending although its deadline has passed (deadline "
                                   << p->deadline_ns << ", now " << now << ", tick " << now_tick << ")";
    earliest = std::min(earliest, p->deadline_ns);
  }
  // next() may be early (a cascade, a cancelled entry), never later than the earliest
  // pending deadline.
  if (earliest != timer_shard::none) {
    ASSERT_LE(s.next(), earliest);
  }
}

TEST(TimerWheel, RandomArmsCancelsAndFiresMatchTheModel) {
  std::mt19937_64 rng(42);
  for (int run = 0; run < 20; ++run) {
    timer_shard s;
    std::vector<std::unique_ptr<probe>> ps;
    std::int64_t now = synthetic_start() + static_cast<std::int64_t>(rng() % (1LL << 40));
    // Offsets from 0 to ~30 days, weighted towards the near future.
    auto offset = [&]() -> std::int64_t {
      switch (rng() % 6) {
        case 0: return static_cast<std::int64_t>(rng() % (2 * tick_ns));          // this tick
        case 1: return static_cast<std::int64_t>(rng() % 2'000'000);              // ~1 ms
        case 2: return static_cast<std::int64_t>(rng() % 300'000'000);            // 0.3 s
        case 3: return static_cast<std::int64_t>(rng() % 60'000'000'000LL);       // a minute
        case 4: return static_cast<std::int64_t>(rng() % (6LL * 3600'000'000'000LL));   // 6 h
        default: return static_cast<std::int64_t>(rng() % (30LL * 86400'000'000'000LL));  // 30 d
      }
    };
    for (int step = 0; step < 3000; ++step) {
      const auto r = rng() % 10;
      if (r < 5) {
        ps.push_back(std::make_unique<probe>());
        arm(s, *ps.back(), now + offset() - (rng() % 8 == 0 ? 50'000 : 0));  // some past
      } else if (r < 7 && !ps.empty()) {
        probe& p = *ps[rng() % ps.size()];
        const bool removed = s.cancel(&p);
        if (p.armed && !p.fires) {
          EXPECT_TRUE(removed);
          p.armed = false;
        } else {
          EXPECT_FALSE(removed);
        }
      } else {
        now += (rng() % 4 == 0) ? offset() : static_cast<std::int64_t>(rng() % (4 * tick_ns));
        fire_and_check(s, ps, now);
        if (HasFatalFailure()) return;
      }
    }
    // Drain: jump far ahead; everything left fires, in one go or in steps.
    now += 40LL * 86400'000'000'000LL;
    fire_and_check(s, ps, now);
    EXPECT_EQ(s.size(), 0u);
    EXPECT_EQ(s.next(), timer_shard::none);
    for (auto& p : ps) EXPECT_LE(p->fires, 1);
  }
}

TEST(TimerWheel, FiresInDeadlineOrderAcrossLevelsAndArmOrderWithinATick) {
  timer_shard s;
  const std::int64_t t0 = synthetic_start();
  std::vector<std::unique_ptr<probe>> ps;
  static std::vector<int> order;
  order.clear();
  static std::vector<int>* sink;
  sink = &order;
  // Deadlines spread over the levels (65.5 us ticks: 100 us and 2 ms on level 0 or 1 by
  // the wheel's position, 0.3 s on 2, 70 s on 3, 5 h on 4), armed in reverse; two share a
  // tick (arm order).
  const std::int64_t offs[] = {5LL * 3600'000'000'000LL, 70'000'000'000LL, 300'000'000,
                               2'000'000, 100'000, 100'001};
  for (int i = 0; i < 6; ++i) {
    ps.push_back(std::make_unique<probe>());
    arm(s, *ps.back(), t0 + offs[i]);
    ps.back()->fire = [](timer_entry* e) noexcept {
      sink->push_back(static_cast<int>(static_cast<probe*>(e)->seq_no));
    };
    ps.back()->seq_no = i;
  }
  EXPECT_EQ(s.size(), 6u);
  for (std::int64_t now = t0; now < t0 + 6LL * 3600'000'000'000LL; now += 1'000'000'000) s.fire_due(now, false);
  // Fired ascending by deadline (probes 4 and 5 share a tick: arm order), although
  // each firing step covered a whole second.
  EXPECT_EQ(order, (std::vector<int>{4, 5, 3, 2, 1, 0}));
  EXPECT_EQ(s.size(), 0u);
}

TEST(TimerWheel, CancelAfterFireReportsFalseAndEmptyWheelRestarts) {
  timer_shard s;
  const std::int64_t t0 = synthetic_start();
  probe a, b;
  arm(s, a, t0 + 1'000'000);
  EXPECT_LE(s.next(), t0 + 1'000'000 + tick_ns);
  EXPECT_TRUE(s.cancel(&a));
  EXPECT_FALSE(s.cancel(&a));
  EXPECT_EQ(s.next(), timer_shard::none);
  arm(s, b, t0 + 2'000'000);
  probe::now = t0 + 1'999'000;
  EXPECT_EQ(s.fire_due(probe::now, false), 0u);  // not yet
  probe::now = t0 + 2'000'000 + 2 * tick_ns;
  EXPECT_EQ(s.fire_due(probe::now, false), 1u);
  EXPECT_EQ(b.fires, 1);
  EXPECT_FALSE(s.cancel(&b));
  // A long-idle empty wheel takes a new, much later deadline without walking the gap.
  probe c;
  const std::int64_t later = t0 + 10LL * 86400'000'000'000LL;
  arm(s, c, later);
  probe::now = later + tick_ns;
  EXPECT_EQ(s.fire_due(probe::now, false), 1u);
  EXPECT_EQ(c.fires, 1);
}

TEST(TimerWheel, CancelHolesAndCompactionKeepArmOrderAndExactlyOnce) {
  // One crowded slot per level (the same deadline tick): timeouts armed and mostly
  // cancelled leave holes, and the slot is compacted under later cancels. What is left
  // fires exactly once, in arm order, and a slot emptied by cancels is no longer due.
  static std::vector<int> order;
  static std::vector<int>* sink;
  sink = &order;
  std::mt19937_64 rng(7);
  for (const std::int64_t ahead : {1'000'000LL, 300'000'000LL, 70'000'000'000LL}) {
    order.clear();
    timer_shard s;
    const std::int64_t t0 = synthetic_start();
    constexpr int n = 5000;
    std::vector<std::unique_ptr<probe>> ps;
    auto arm_one = [&](int seq) {
      ps.push_back(std::make_unique<probe>());
      arm(s, *ps.back(), t0 + ahead);
      ps.back()->seq_no = seq;
      ps.back()->fire = [](timer_entry* e) noexcept {
        ++static_cast<probe*>(e)->fires;
        sink->push_back(static_cast<probe*>(e)->seq_no);
      };
    };
    for (int i = 0; i < n; ++i) arm_one(i);
    std::vector<int> idx(n);
    for (int i = 0; i < n; ++i) idx[i] = i;
    std::shuffle(idx.begin(), idx.end(), rng);
    std::vector<bool> cancelled(n + 100, false);
    for (int k = 0; k < n * 9 / 10; ++k) {  // 90% cancelled, in random order
      ASSERT_TRUE(s.cancel(ps[idx[k]].get()));
      cancelled[idx[k]] = true;
      if (k == n / 2)  // more arms into the holey slot, between cancels
        for (int j = 0; j < 100; ++j) arm_one(n + j);
    }
    EXPECT_EQ(s.size(), static_cast<std::size_t>(n - n * 9 / 10 + 100));
    for (int k = 0; k < n * 9 / 10; ++k) EXPECT_FALSE(s.cancel(ps[idx[k]].get()));
    for (std::int64_t now = t0; now <= t0 + ahead + 4 * tick_ns; now += ahead / 8 + 1) s.fire_due(now, false);
    s.fire_due(t0 + ahead + 4 * tick_ns, false);
    std::vector<int> expected;
    for (int i = 0; i < n + 100; ++i)
      if (!cancelled[i]) expected.push_back(i);
    EXPECT_EQ(order, expected) << "ahead " << ahead;
    for (int i = 0; i < n + 100; ++i) EXPECT_EQ(ps[i]->fires, cancelled[i] ? 0 : 1) << i;
    EXPECT_EQ(s.size(), 0u);
    EXPECT_EQ(s.next(), timer_shard::none);
    // A crowded slot emptied by cancels alone: nothing due any more.
    probe a, b;
    arm(s, a, t0 + 2 * ahead);
    arm(s, b, t0 + 2 * ahead);
    EXPECT_TRUE(s.cancel(&b));
    EXPECT_TRUE(s.cancel(&a));
    EXPECT_EQ(s.next(), timer_shard::none);
    EXPECT_EQ(s.fire_due(t0 + 3 * ahead, false), 0u);
  }
}

}  // namespace
