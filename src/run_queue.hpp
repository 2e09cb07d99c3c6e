// run_queue: a worker's local run queue. A bounded ring with one owner (the
// worker that pushes and pops) and any number of stealers (searching workers
// that take half of it). Items are opaque non-zero words (fiber pointers).
//
// Run queue protocol
// ------------------
// Indices head_ and tail_ are 64-bit counters that only grow; slot of index i
// is slots_[i % N]. Items live in [head_, tail_).
// Invariant: 0 <= tail_ - head_ <= N, at every moment, for the real values.
//
//  1. push (owner). Read tail_ (own), acquire head_. If tail - head < N, write
//     the slot of tail, then store-release tail + 1: the item is published.
//  1b. push_bulk (owner). As 1 for n items at once: read tail_, acquire head_,
//     write the slots of [tail, tail + k) for the k = min(n, free) first items,
//     then one store-release of tail + k publishes them all. The caller pushes
//     the n - k that did not fit with step 1 (the first of them spills, 2).
//  2. spill (owner, push into a full ring). Read the N/2 oldest slots into
//     the caller's buffer, CAS head_ from head to head + N/2. On success add x
//     and hand the N/2 + 1 items to the caller (peer queue). On failure a
//     stealer took items, so there is room: go back to 1.
//  3. pop (owner). Read the slot of head, CAS head_ to head + 1. A failed CAS
//     means a stealer took that item; retry with the head the CAS returned.
//  4. steal (a worker that owns dst). Acquire head_, then tail_; take
//     n = ceil((tail - head) / 2), at most dst's free space + 1; read the n
//     slots (the first is returned, the rest are copied past dst's tail,
//     where nobody may consume them yet), then CAS head_ from head to
//     head + n. Only a successful CAS makes the copy valid: head_ did not
//     move, so no one else took those items and the owner did not reuse their
//     slots (it only writes the slot of an index t with t - head_ < N). Then
//     store-release dst's tail.
//
// Every consumer (pop, spill, steal) claims items with one CAS on head_, so
// each item is taken exactly once and steal is linearizable with pop.
// A stealer may read a slot the owner is overwriting: slots are atomics read
// relaxed, so this is a stale value, not a data race, and the CAS discards it.
//
// ABA: a CAS from h succeeds only if head_ equals h. head_ is 64-bit and only
// grows, so equal means unchanged: wrapping takes 2^64 items (584 years at
// one per nanosecond). Go keeps 32-bit wrapping counters (wrap-safe unsigned
// differences); there ABA needs a stealer stalled between its load and CAS
// while exactly 2^32 items pass, which is unlikely but not impossible.
//
// Rejected alternatives:
//  - Chase-Lev deque: the owner end is LIFO, but yield needs FIFO (a yielding
//    fiber would run again at once), and its pop needs a seq_cst fence.
//  - Tokio's packed (steal, real) head pair: lets the owner keep popping while
//    a stealer copies. Our copy is at most N/2 relaxed loads, so a stealer
//    that loses the CAS just retries; one head word is simpler to check.
//  - An unbounded queue or a mutex: overflow to the shared peer queue bounds
//    memory and spreads work; a mutex would block the owner behind stealers.
// Reference: Go src/runtime/proc.go (runqput, runqputslow, runqget, runqgrab,
// runqsteal); tokio runtime/scheduler/multi_thread/queue.rs.
// Benchmark workloads cited here (W1): docs/benchmarks.md.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace weft::detail {

// 64 on x86-64 and most aarch64. Not std::hardware_destructive_interference_size:
// GCC warns that its value may differ between compiler flags (-Winterference-size).
inline constexpr std::size_t cache_line_size = 64;

template <std::size_t N = 256>
class alignas(cache_line_size) run_queue {
  static_assert(N >= 2 && (N & (N - 1)) == 0, "run_queue capacity must be a power of two >= 2");

 public:
  using item = std::uintptr_t;  // never 0; 0 means "no item"
  using index = std::uint64_t;
  static constexpr std::size_t capacity = N;

  run_queue() noexcept = default;
  run_queue(const run_queue&) = delete;
  run_queue& operator=(const run_queue&) = delete;

  // Owner thread only. Appends x (non-zero); never blocks. When the ring is full, moves the
  // N/2 oldest items, in order, then x into spill (room for N/2 + 1 items) and returns
  // N/2 + 1; the caller hands them to the peer queue. Returns 0 when x was pushed.
  std::size_t push(item x, item* spill) noexcept;
  // Owner thread only. Appends xs[0, k) in order, for the largest k <= n that fits, with
  // one publication (protocol step 1b); returns k. Never spills: the caller pushes
  // xs[k, n) with push() (a batch costs one tail_ store instead of one per item, W1).
  std::size_t push_bulk(const item* xs, std::size_t n) noexcept;

  // Owner thread only. Removes and returns the oldest item, or 0 when empty.
  item pop() noexcept;

  // Owner thread only, and only while no stealer exists (a scheduler with one worker):
  // pop() without the CAS, which nothing can race with then.
  // `after` receives the item prefetch_distance places behind the one returned (0 if the
  // queue is shorter), for prefetching: the same loads pop() needed.
  item pop_unshared(item& after) noexcept {
    // relaxed: the owner is the only writer of tail_ and, with no stealers, of head_.
    const index h = head_.load(std::memory_order_relaxed);
    const index t = tail_.load(std::memory_order_relaxed);
    if (h == t) return 0;
    const item x = slots_[h & mask_].load(std::memory_order_relaxed);
    after = t - h > prefetch_distance ? slots_[(h + prefetch_distance) & mask_].load(std::memory_order_relaxed) : 0;
    // release: as pop()'s CAS; keeps size() readers (the idle re-check) consistent.
    head_.store(h + 1, std::memory_order_release);
    return x;
  }
  // Owner thread with no stealers: the item k places behind the oldest, or 0.
  item peek_unshared(index k) const noexcept {
    const index h = head_.load(std::memory_order_relaxed);
    if (tail_.load(std::memory_order_relaxed) - h <= k) return 0;
    return slots_[(h + k) & mask_].load(std::memory_order_relaxed);
  }
  item pop_unshared() noexcept {
    item after;
    return pop_unshared(after);
  }

  // Owner thread only. The item prefetch_distance - 1 places behind the oldest (the one
  // that will run prefetch_distance pops from now, as seen before this pop), or 0; may
  // be stale (a stealer may take it at any moment): a hint for prefetching, never for
  // running.
  item peek_ahead() const noexcept {
    // relaxed: a hint; see above.
    const index h = head_.load(std::memory_order_relaxed);
    if (tail_.load(std::memory_order_relaxed) - h < prefetch_distance) return 0;
    return slots_[(h + prefetch_distance - 1) & mask_].load(std::memory_order_relaxed);
  }
  // How far ahead the owner's pops prefetch. Queued tasks were usually made long before
  // they run, often on another core (stolen): a miss of ~100+ ns each, longer than a
  // small task runs, so one item ahead left most of it exposed (W1: 89% of run_task's
  // samples on the task's first load).
  static constexpr std::uint64_t prefetch_distance = 4;

  // Any thread except the owner of *this; dst must be the caller's own queue. Takes
  // ceil(half) of this queue's items, but no more than dst's free space + 1. Returns the
  // oldest taken item, to run now; the others go to dst in order. `moved` receives the
  // count taken, including the returned one. Returns 0 (moved = 0) if nothing was taken.
  item steal_into(run_queue& dst, std::size_t& moved) noexcept;

  // Any thread. Approximate; exact for the owner when no steal races.
  std::size_t size() const noexcept;
  bool empty() const noexcept { return size() == 0; }

 private:
  static_assert(std::atomic<index>::is_always_lock_free);
  static constexpr index mask_ = N - 1;

  // Next index to consume. Written by CAS only, by the owner (pop, spill) and stealers.
  // Each successful CAS is a release (see the CAS sites); its readers acquire it.
  alignas(cache_line_size) std::atomic<index> head_{0};
  // Next index to fill. Written only by the owner, store-release: publishes the slots
  // below it; stealers acquire it before reading slots.
  alignas(cache_line_size) std::atomic<index> tail_{0};
  // Item of index i at [i & mask_]. Written only by the owner, relaxed (tail_ publishes);
  // read relaxed, and a reader's CAS on head_ decides whether what it read is valid.
  alignas(cache_line_size) std::array<std::atomic<item>, N> slots_{};
};

// ---------------------------------------------------------------------------

// Always inlined: with push_bulk's callers added, GCC stopped inlining it into
// worker::push_ring, and the yield path (W3) paid a call per switch (callgrind).
template <std::size_t N>
__attribute__((always_inline)) inline std::size_t run_queue<N>::push(item x, item* spill) noexcept {
  // relaxed: the owner is the only writer of tail_.
  const index t = tail_.load(std::memory_order_relaxed);
  for (;;) {
    // acquire: the slot we overwrite was last read by a consumer before its CAS moved
    // head_ past it; pairs with the release CAS in steal_into(), so that read happens
    // before our store (it cannot see the new item). Protocol step 1.
    index h = head_.load(std::memory_order_acquire);
    if (t - h < N) {
      // relaxed: published by the tail_ store below.
      slots_[t & mask_].store(x, std::memory_order_relaxed);
      // release: publishes the slot of t to stealers;
      // pairs with the acquire of tail_ in steal_into().
      tail_.store(t + 1, std::memory_order_release);
      return 0;
    }
    // Full: protocol step 2 (spill). relaxed: the owner wrote these slots itself.
    for (std::size_t i = 0; i < N / 2; ++i)
      spill[i] = slots_[(h + i) & mask_].load(std::memory_order_relaxed);
    // release: publishes our tail_ stores with the new head, so a stealer that acquires
    // head_ then reads a tail_ no older; pairs with the acquire of head_ in steal_into().
    // relaxed on failure: we retry from a fresh acquire load of head_.
    if (head_.compare_exchange_strong(h, h + N / 2, std::memory_order_release,
                                      std::memory_order_relaxed)) {
      spill[N / 2] = x;
      return N / 2 + 1;
    }
  }
}

template <std::size_t N>
std::size_t run_queue<N>::push_bulk(const item* xs, std::size_t n) noexcept {
  // relaxed: the owner is the only writer of tail_.
  const index t = tail_.load(std::memory_order_relaxed);
  // acquire: as in push() (protocol step 1): the consumers' reads of the slots we
  // overwrite happen before our stores; pairs with the release CAS of head_ in pop(),
  // push() (spill) and steal_into(). A stale head only understates the free space.
  const index h = head_.load(std::memory_order_acquire);
  const std::size_t room = static_cast<std::size_t>(N - (t - h));
  const std::size_t k = n < room ? n : room;
  // relaxed: published by the tail_ store below.
  for (std::size_t i = 0; i < k; ++i) slots_[(t + i) & mask_].store(xs[i], std::memory_order_relaxed);
  // release: publishes slots [t, t + k) to stealers (step 1b);
  // pairs with the acquire of tail_ in steal_into().
  if (k) tail_.store(t + k, std::memory_order_release);
  return k;
}

template <std::size_t N>
typename run_queue<N>::item run_queue<N>::pop() noexcept {
  // relaxed: the owner is the only writer of tail_.
  const index t = tail_.load(std::memory_order_relaxed);
  // relaxed: the owner reads only slots it wrote itself, and the CAS below decides
  // whether the item is still ours; later slot writes acquire head_ in push().
  index h = head_.load(std::memory_order_relaxed);
  while (h != t) {
    const item x = slots_[h & mask_].load(std::memory_order_relaxed);  // owner wrote it
    // release: as in push()'s spill CAS, publishes our tail_ stores with the new head;
    // pairs with the acquire of head_ in steal_into(). Protocol step 3.
    // relaxed on failure: h gets the current head; a stealer took the item at h.
    if (head_.compare_exchange_weak(h, h + 1, std::memory_order_release,
                                    std::memory_order_relaxed))
      return x;
  }
  return 0;
}

template <std::size_t N>
typename run_queue<N>::item run_queue<N>::steal_into(run_queue& dst,
                                                     std::size_t& moved) noexcept {
  moved = 0;
  // relaxed: the caller owns dst and is the only writer of dst.tail_.
  const index dt = dst.tail_.load(std::memory_order_relaxed);
  // acquire: as in push(), orders the reads of dst's stealers before our slot writes;
  // pairs with the release CAS on dst.head_ in steal_into(). A stale head only
  // understates the free space.
  const index room = N - (dt - dst.head_.load(std::memory_order_acquire));
  for (;;) {
    // acquire: pairs with the release CAS in pop(), push() (spill) and steal_into(); the
    // tail_ stores behind that CAS become visible, so the tail_ read below is >= h.
    index h = head_.load(std::memory_order_acquire);
    // acquire: pairs with the release store of tail_ in push(); makes slots [h, t) visible.
    const index t = tail_.load(std::memory_order_acquire);
    const index avail = t - h;
    if (avail > N) continue;  // we stalled between the loads and the ring moved on: retry
    index n = avail - avail / 2;
    if (n == 0) return 0;
    if (n > room + 1) n = room + 1;
    // relaxed: valid only if the CAS below succeeds (protocol step 4); tail_ published them.
    const item first = slots_[h & mask_].load(std::memory_order_relaxed);
    for (index i = 1; i < n; ++i) {
      const item x = slots_[(h + i) & mask_].load(std::memory_order_relaxed);
      // relaxed: beyond dst.tail_, so invisible until the release store of dst.tail_.
      dst.slots_[(dt + i - 1) & mask_].store(x, std::memory_order_relaxed);
    }
    // release: our slot reads happen before the owner's next writes to those slots;
    // pairs with the acquire of head_ in push(). Also carries the tail_ value we read to
    // other stealers (the acquire of head_ above). relaxed on failure: we reload head_.
    if (head_.compare_exchange_strong(h, h + n, std::memory_order_release,
                                      std::memory_order_relaxed)) {
      // release: publishes dst slots [dt, dt + n - 1) to dst's stealers;
      // pairs with the acquire of tail_ in their steal_into().
      if (n > 1) dst.tail_.store(dt + n - 1, std::memory_order_release);
      moved = static_cast<std::size_t>(n);
      return first;
    }
  }
}

template <std::size_t N>
std::size_t run_queue<N>::size() const noexcept {
  // relaxed: statistic only; a torn pair of loads is clamped to [0, N].
  const index h = head_.load(std::memory_order_relaxed);
  const index t = tail_.load(std::memory_order_relaxed);
  const index n = t - h;
  if (n > N) return static_cast<std::int64_t>(n) < 0 ? 0 : N;
  return static_cast<std::size_t>(n);
}

}  // namespace weft::detail
