// src/timers.hpp - per-worker timer shards: sleep_for/until and every timed wait (sync/,
// io). Each worker owns one shard (a timing wheel under a small lock) and fires its
// own timers from its scheduling loop, so a sleeping fiber is woken by the worker it
// slept on, straight into that worker's run queue: no reactor thread, no cross-thread
// queue, no futex in the common case (Go's per-P timers).
//
// Timer protocol:
//   1. A timer_entry lives inside its waiter (often on a suspended fiber's stack).
//      arm_timer() runs only on a worker thread (in a fiber, or in a post-switch action)
//      and inserts the entry into *that worker's* shard under the shard's lock, then
//      lowers the shard's next_ (earliest deadline). Only the owner arms into a shard.
//   2. The owner fires its due timers (pops every entry whose deadline has passed and
//      calls entry->fire under the lock) from its loop: every fairness tick, whenever its
//      queues are empty, and on every round of its search spin.
//   3. Before parking, a worker reads next_ of every shard *after* its own last arm
//      (program order on the owner: an owner can never miss its own timer) and parks
//      with a futex timeout at the earliest of them (parker::park_until). On timeout it
//      leaves the sleeper list (idle.hpp cancel_park) and searches again, which fires.
//   4. A searching worker also fires a peer's due timers (try_lock only), so a worker
//      stuck in one long-running fiber does not hold its timers hostage while another
//      worker idles. The fired fibers then run on the searching worker.
//   5. cancel_timer() takes the entry's shard lock: the entry is either still in the
//      wheel (removed; returns true: fire will never run) or fire has already returned
//      (false). Once cancel returns the shard no longer touches the entry, and its owner
//      may free it.
//   6. fire must be short and must not call arm/cancel (the shard lock is held): it
//      decides a race with a CAS on its waiter's state and calls wake(), which, on the
//      firing worker, queues the fiber on that worker's ring (worker::fire_timers
//      batches the idle notification: one per firing, not one per fiber).
//   7. Watchdog: a worker stuck in one fiber that never yields cannot fire its shard,
//      and a parked peer only knows the deadlines it read when it parked (step 3). So the
//      reactor thread sleeps at most watch_period (10 ms), or until the earliest deadline
//      of any shard plus watch_grace (1 ms), and fires every timer overdue by more than
//      watch_grace (try_lock); its wakes go to the injection queue, where any worker
//      takes them. With no timer anywhere it sleeps without a timeout: it first sets
//      unwatched_ (seq_cst fence), then looks at every shard's next_ again; an arm that
//      takes a shard from empty to non-empty stores next_, fences (seq_cst) and reads
//      unwatched_. One of the two sees the other (store-buffer pattern), so a first timer
//      is never left without a watchdog. Arms into a non-empty shard need no check: the
//      reactor saw that shard non-empty, or the arm that filled it saw the flag.
// So a timer fires late by more than ~1 ms only while every worker is busy; a
// cooperative scheduler cannot preempt the fiber that holds its worker anyway.
//
// Structure: a hierarchical timing wheel per shard (the Linux kernel's and Tokio's
// design): 6 levels of 64 slots, a tick of 2^16 ns (65.5 us); level L's slots span 64^L
// ticks, so level 0 covers ~4.2 ms ahead, level 5 ~52 days (later deadlines wait in the
// last slot and are re-filed when it comes up). A slot is an array of entry pointers in
// arm order plus a bit in its level's occupancy mask; cancel leaves a hole (nullptr) so it
// touches no other entry, and a slot that is mostly holes is compacted. arm and cancel are
// O(1) (amortised: an array may grow, under the lock; out of memory aborts with a
// message, as a lost timer would be a lost fiber); firing moves each entry down at most 5
// levels, then pops it. An entry fires once its deadline has passed: never early, and
// late only by the firing worker's own polling delay. Slots of past ticks fire whole; the
// current tick's slot is checked entry by entry (fire_current), and next_ is the exact
// earliest deadline of a level-0 slot (slot_min_), so a parked worker wakes at the
// deadline, not at the end of its tick. (Firing whole ticks only, a lone 300 us sleeper
// was 75-93 us late on average; now 32-38 us, the rest the futex wake of a parked
// worker. In W8 the partial firings re-read the current tick's survivors, which are hot
// by then: mean lateness 0.14-0.15 -> 0.10-0.12 ms in 6 of 8 quiet pairs.) (A binary heap here spent 14% of W8 in sifting: 10,000 timers, cache misses on
// every level. An intrusive linked list per slot then spent 18% in fire_due, 77% of it
// stalled on each next pointer: every entry is a cold line on its own fiber's stack. From
// an array the firing loop prefetches 8 entries ahead and the misses overlap: 3.7%.)
// Why 65.5 us and not finer: an entry lands on level 0 only when its tick and the wheel's
// position agree above the low 6 bits, so with a 16.4 us tick ~95% of 1 ms sleeps went to
// level 1 and were re-filed once (a second walk of a list of cold entries, each on its own
// fiber's stack); with 65.5 us ~24% are. W8 profile: fire_due 17.4% -> 13.4% of samples,
// re-filing 67% -> 26% of fire_due. Tokio's wheel ticks at 1 ms.
//
// Lock order: a sync primitive's spinlock -> timer_shard::lock_ (arm in post) ->
// idle::lock_ (a fire's wake may unpark a worker). Nothing takes a shard lock while
// holding idle::lock_ or a primitive's lock taken after it.
// Benchmark workloads cited here (W8): docs/benchmarks.md.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>

#include <weft/sync/detail/wait_queue.hpp>  // detail::spinlock

namespace weft::detail {

class timer_shard;
class reactor;

struct timer_entry {
  std::chrono::steady_clock::time_point deadline{};
  void (*fire)(timer_entry*) noexcept = nullptr;  // firing worker, under the shard lock
  timer_shard* shard = nullptr;                    // set by arm_timer
  // Optional, set before arming: where the woken side will resume (a suspended fiber's
  // saved context). fire_due prefetches it a few entries ahead, while the entry itself is
  // in cache: after ~1 ms asleep it is cold, and the switch back would miss on it.
  const void* warm = nullptr;
  // Guarded by shard->lock_: which slot holds it (not armed or fired: npos) and where in
  // that slot's array.
  std::int64_t when_tick = 0;
  std::uint32_t index = 0;
  std::uint16_t slot = npos;
  static constexpr std::uint16_t npos = 0xffff;
};

// Protocol step 1. Worker thread only (asserts): arms e on the calling worker's shard.
// e->deadline and e->fire must be set. A deadline already passed fires at the worker's
// next scheduling point (never inline in the caller).
void arm_timer(timer_entry* e) noexcept;
// Step 5. Any thread. True when the timer was removed before firing.
bool cancel_timer(timer_entry* e) noexcept;

// steady_clock now, in ns (its tick on libstdc++; spelled out so it stays ns anyway).
inline std::int64_t steady_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch()).count();
}

// A steady_clock deadline in ns since the clock's epoch, as steady_ns() counts.
inline std::int64_t steady_ns_of(std::chrono::steady_clock::time_point t) noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// ns -> whole milliseconds, rounded up (epoll timeouts: a sleep is never cut short).
inline int ceil_ms(std::int64_t ns) noexcept { return static_cast<int>((ns + 999'999) / 1'000'000); }

class timer_shard {
public:
  static constexpr std::int64_t none = INT64_MAX;
  timer_shard() = default;
  timer_shard(const timer_shard&) = delete;
  timer_shard& operator=(const timer_shard&) = delete;
  ~timer_shard();
  static constexpr int tick_shift = 16;  // 65,536 ns
  static constexpr int levels = 6, slots = 64, slot_bits = 6;

  // Before the worker threads start (they are the only readers): step 7's reactor.
  void set_watchdog(reactor* r) noexcept { watchdog_ = r; }

  void arm(timer_entry* e) noexcept;     // owner thread (step 1)
  bool cancel(timer_entry* e) noexcept;  // any thread (step 5)
  // Step 2/4: fires every entry due at `now` (steady ns); returns how many fired. With
  // try_only the call gives up (returns 0) when the lock is busy.
  std::size_t fire_due(std::int64_t now, bool try_only) noexcept;
  // When the shard next needs firing (steady ns; an over-estimate never: it may be early
  // by a cascade that fires nothing) or none. relaxed: exact for the owner (it wrote it,
  // or a firer/canceller only made it later); a hint for peers (step 3's limits).
  std::int64_t next() const noexcept { return next_.load(std::memory_order_relaxed); }
  std::size_t size() const noexcept;

private:
  static constexpr std::uint16_t due_slot = levels * slots;  // the "already due" slot
  // A slot: the pointers to its entries in arm order. cancel() leaves a hole (nullptr), so
  // it touches no other entry; holes go when the slot empties, fires, or is compacted.
  struct slot_array {
    timer_entry** data = nullptr;
    std::uint32_t size = 0;  // used, holes included
    std::uint32_t cap = 0;
    std::uint32_t live = 0;  // entries (size minus holes)
  };
  static int level_for(std::int64_t elapsed, std::int64_t when) noexcept;
  void link(timer_entry* e) noexcept;    // files e by e->when_tick relative to elapsed_
  void unlink(timer_entry* e) noexcept;
  void push(std::uint16_t id, timer_entry* e) noexcept;
  // Empties slot id and returns its array (the caller hands it back with give_back).
  slot_array take(std::uint16_t id) noexcept;
  void give_back(std::uint16_t id, slot_array a) noexcept;
  static constexpr std::uint32_t prefetch_distance = 8;
  // An emptied slot keeps its array up to 8 KiB (385 slots: 3 MiB per worker at worst).
  static constexpr std::uint32_t keep_cap = 1024;
  static void prefetch_ahead(const slot_array& a, std::uint32_t i, bool firing) noexcept;
  static std::int64_t deadline_ns(const timer_entry* e) noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(e->deadline.time_since_epoch()).count();
  }
  // Marks e fired and calls its fire (the entry is already out of its slot's array).
  void fire_entry(timer_entry* e) noexcept;
  // Fires the entries of level-0 slot id (the current tick's) whose deadline is <= now.
  std::size_t fire_current(std::uint16_t id, std::int64_t now) noexcept;
  static void compact_if_holey(slot_array& a) noexcept;
  void clear_occupied(std::uint16_t id) noexcept {
    if (id != due_slot) occupied_[id / slots] &= ~(std::uint64_t{1} << (id % slots));
  }
  bool next_expiration(std::int64_t& tick, int& level, int& slot) const noexcept;
  void publish_next() noexcept;

  reactor* watchdog_ = nullptr;  // step 7: told when this shard goes from empty to non-empty
  // A spinlock (spins, then yields): held for a few dozen instructions, or for one firing
  // batch; a std::mutex cost ~40 instructions a lock/unlock pair here (W8: 2 per sleep).
  mutable spinlock lock_;
  // Guarded by lock_. slot_[levels * slots] is the due slot: entries armed with a deadline
  // in a tick that has already passed, fired by the next fire_due.
  slot_array slot_[levels * slots + 1] = {};
  // Per level-0 slot, while it holds entries: their earliest deadline (steady ns), exact
  // after arms and fire_current, a lower bound after cancels. next_ uses it.
  std::int64_t slot_min_[slots] = {};
  std::uint64_t occupied_[levels] = {};
  std::int64_t elapsed_ = 0;  // every entry with when_tick < elapsed_ is in the due list
  std::size_t count_ = 0;
  std::atomic<std::int64_t> next_{none};  // written under lock_
};

}  // namespace weft::detail
