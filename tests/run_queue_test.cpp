// Unit tests for src/run_queue.hpp: order, wrap-around, spill, steal, and a
// concurrent exactly-once check (owner + 2 stealers) bounded by a deadline.
#include "run_queue.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace {

using weft::detail::run_queue;
using item = std::uintptr_t;

template <std::size_t N>
std::vector<item> drain(run_queue<N>& q) {
  std::vector<item> out;
  while (item x = q.pop()) out.push_back(x);
  return out;
}

TEST(RunQueue, PopsInFifoOrder) {
  run_queue<> q;
  item spill[run_queue<>::capacity / 2 + 1];
  for (item i = 1; i <= 100; ++i) ASSERT_EQ(q.push(i, spill), 0u);
  EXPECT_EQ(q.size(), 100u);
  for (item i = 1; i <= 100; ++i) ASSERT_EQ(q.pop(), i);
  EXPECT_TRUE(q.empty());
}

TEST(RunQueue, PopOnEmptyReturnsZero) {
  run_queue<4> q;
  EXPECT_EQ(q.pop(), 0u);
  item spill[3];
  ASSERT_EQ(q.push(7, spill), 0u);
  EXPECT_EQ(q.pop(), 7u);
  EXPECT_EQ(q.pop(), 0u);
}

TEST(RunQueue, WrapsAroundManyTimes) {
  run_queue<4> q;
  item spill[3];
  item next_in = 1, next_out = 1;
  for (int cycle = 0; cycle < 5000; ++cycle) {
    const int k = 1 + cycle % 4;  // fill to 1..4 items, then empty
    for (int i = 0; i < k; ++i) ASSERT_EQ(q.push(next_in++, spill), 0u);
    ASSERT_EQ(q.size(), static_cast<std::size_t>(k));
    for (int i = 0; i < k; ++i) ASSERT_EQ(q.pop(), next_out++);
    ASSERT_EQ(q.pop(), 0u);
  }
}

TEST(RunQueue, FullPushSpillsOldestHalfAndItem) {
  run_queue<4> q;
  item spill[3] = {};
  for (item i = 1; i <= 2; ++i) ASSERT_EQ(q.push(i, spill), 0u);
  EXPECT_EQ(q.pop(), 1u);
  EXPECT_EQ(q.pop(), 2u);
  for (item i = 3; i <= 6; ++i) ASSERT_EQ(q.push(i, spill), 0u);  // full, wrapped
  ASSERT_EQ(q.push(7, spill), 3u);
  EXPECT_EQ(spill[0], 3u);
  EXPECT_EQ(spill[1], 4u);
  EXPECT_EQ(spill[2], 7u);
  EXPECT_EQ(drain(q), (std::vector<item>{5, 6}));
}

TEST(RunQueue, PushBulkTakesWhatFitsInOrder) {
  run_queue<4> q;
  item spill[3];
  ASSERT_EQ(q.push(1, spill), 0u);
  const item more[] = {2, 3, 4, 5, 6};
  EXPECT_EQ(q.push_bulk(more, 5), 3u);  // room for three: 5 and 6 are the caller's
  EXPECT_EQ(q.size(), 4u);
  EXPECT_EQ(q.push_bulk(more, 1), 0u);  // full
  EXPECT_EQ(q.pop(), 1u);
  EXPECT_EQ(q.pop(), 2u);
  // Wraps around the end of the slots.
  const item wrap[] = {7, 8, 9};
  EXPECT_EQ(q.push_bulk(wrap, 3), 2u);
  EXPECT_EQ(drain(q), (std::vector<item>{3, 4, 7, 8}));
  EXPECT_EQ(q.push_bulk(wrap, 0), 0u);
  EXPECT_TRUE(q.empty());
}

TEST(RunQueue, StealTakesCeilHalfInOrder) {
  run_queue<8> src, dst;
  item spill[5];
  for (item i = 1; i <= 5; ++i) ASSERT_EQ(src.push(i, spill), 0u);
  std::size_t moved = 0;
  EXPECT_EQ(src.steal_into(dst, moved), 1u);  // ceil(5 / 2) = 3: items 1, 2, 3
  EXPECT_EQ(moved, 3u);
  EXPECT_EQ(drain(dst), (std::vector<item>{2, 3}));
  EXPECT_EQ(drain(src), (std::vector<item>{4, 5}));

  ASSERT_EQ(src.push(9, spill), 0u);  // one item: steal returns it, dst stays empty
  EXPECT_EQ(src.steal_into(dst, moved), 9u);
  EXPECT_EQ(moved, 1u);
  EXPECT_TRUE(dst.empty());
}

TEST(RunQueue, StealIsLimitedByDstRoom) {
  run_queue<4> src, dst;
  item spill[3];
  for (item i = 1; i <= 4; ++i) ASSERT_EQ(src.push(i, spill), 0u);
  for (item i = 11; i <= 14; ++i) ASSERT_EQ(dst.push(i, spill), 0u);  // dst full
  std::size_t moved = 0;
  EXPECT_EQ(src.steal_into(dst, moved), 1u);  // room 0: only the returned item
  EXPECT_EQ(moved, 1u);
  EXPECT_EQ(drain(dst), (std::vector<item>{11, 12, 13, 14}));
  EXPECT_EQ(drain(src), (std::vector<item>{2, 3, 4}));
}

TEST(RunQueue, StealFromEmptyReturnsZero) {
  run_queue<4> src, dst;
  std::size_t moved = 42;
  EXPECT_EQ(src.steal_into(dst, moved), 0u);
  EXPECT_EQ(moved, 0u);
  EXPECT_TRUE(dst.empty());
}

// Owner pushes items 1..count (popping in phases, spilling when full) while two
// stealers steal into their own queues and drain them. Each item must be seen once.
// `bulk`: the owner pushes runs of up to 3 items with push_bulk, the rest one by one.
template <std::size_t N>
void expect_exactly_once(std::size_t count, bool bulk = false) {
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + std::chrono::seconds(30);
  run_queue<N> q;
  auto seen = std::make_unique<std::atomic<unsigned>[]>(count + 1);  // zeroed
  auto mark = [&](item x) { seen[x].fetch_add(1, std::memory_order_relaxed); };
  std::mutex spilled_mu;
  std::vector<item> spilled;  // guarded by spilled_mu
  std::atomic<bool> owner_done{false};
  std::atomic<int> ready{0};  // stealers running; the owner waits for both
  std::atomic<bool> timed_out{false};

  auto stealer = [&] {
    run_queue<N> own;
    std::size_t moved = 0;
    ready.fetch_add(1, std::memory_order_relaxed);  // relaxed: a start signal, publishes nothing
    for (;;) {
      if (clock::now() > deadline) {
        timed_out.store(true, std::memory_order_relaxed);
        return;
      }
      // acquire: pairs with the release store below; after it q only shrinks.
      const bool last_round = owner_done.load(std::memory_order_acquire);
      const item x = q.steal_into(own, moved);
      if (x != 0) mark(x);
      while (item y = own.pop()) mark(y);
      if (x == 0 && last_round) return;
      if (x == 0) std::this_thread::yield();
    }
  };
  std::thread s1(stealer), s2(stealer);

  while (ready.load(std::memory_order_relaxed) < 2) std::this_thread::yield();  // see fetch_add
  item spill[N / 2 + 1];
  auto push_one = [&](item x) {
    if (const std::size_t n = q.push(x, spill)) {
      std::lock_guard<std::mutex> lock(spilled_mu);
      spilled.insert(spilled.end(), spill, spill + n);
    }
  };
  for (item i = 1; i <= count; ++i) {
    if (bulk && i % 3 == 1 && i + 2 <= count) {
      const item run[] = {i, i + 1, i + 2};
      for (std::size_t k = q.push_bulk(run, 3); k < 3; ++k) push_one(run[k]);
      i += 2;
    } else {
      push_one(i);
    }
    // Alternate 1024-item phases: pop 1 per 3 pushes (fills up, spills), then 2 per push
    // (near empty, so pop and steal race for the same last items).
    const int pops = (i / 1024) % 2 == 0 ? (i % 3 == 0 ? 1 : 0) : 2;
    for (int k = 0; k < pops; ++k)
      if (item x = q.pop()) mark(x);
  }
  while (item x = q.pop()) mark(x);
  owner_done.store(true, std::memory_order_release);
  s1.join();
  s2.join();

  ASSERT_FALSE(timed_out.load()) << "stealers passed the 30 s deadline";
  for (item x : spilled) mark(x);
  std::size_t bad = 0;
  for (std::size_t i = 1; i <= count; ++i)
    if (seen[i].load(std::memory_order_relaxed) != 1 && bad++ < 5)
      ADD_FAILURE() << "item " << i << " seen " << seen[i].load() << " times";
  EXPECT_EQ(bad, 0u);
  EXPECT_TRUE(q.empty());
}

TEST(RunQueue, ConcurrentStealTakesEachItemOnceSmallRing) { expect_exactly_once<4>(200000); }
TEST(RunQueue, ConcurrentStealTakesEachItemOnce) { expect_exactly_once<256>(200000); }
TEST(RunQueue, ConcurrentStealWithBulkPushesSmallRing) { expect_exactly_once<4>(200000, true); }
TEST(RunQueue, ConcurrentStealWithBulkPushes) { expect_exactly_once<256>(200000, true); }

}  // namespace
