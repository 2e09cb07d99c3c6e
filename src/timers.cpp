// src/timers.cpp - see the protocol in timers.hpp.
// Benchmark workloads cited here (W8): docs/benchmarks.md.
#include "timers.hpp"

#include "assert.hpp"
#include "reactor.hpp"
#include "tsan_scope.hpp"
#include "worker.hpp"

#include <cstdlib>

namespace weft::detail {

// Both are internal (tsan_scope.hpp step 2): a shard's lock orders nothing between the
// fibers that arm and cancel on it.
void arm_timer(timer_entry* e) noexcept {
  tsan_internal_scope internal;
  worker* w = current_worker();
  WEFT_ASSERT(w != nullptr, "weft: internal: a timer armed off a worker thread");
  if (__builtin_expect(w->fuzz().on(), 0)) {
    // sched_fuzz.hpp choice 5: later by a random amount, never earlier.
    const auto jitter = std::chrono::nanoseconds(w->fuzz().below(timer_jitter_ns));
    if (e->deadline < std::chrono::steady_clock::time_point::max() - jitter) e->deadline += jitter;
  }
  w->timers().arm(e);
}

bool cancel_timer(timer_entry* e) noexcept {
  tsan_internal_scope internal;
  return e->shard->cancel(e);
}

namespace {
std::int64_t tick_of(std::int64_t ns) noexcept { return ns >> timer_shard::tick_shift; }
}  // namespace

void timer_shard::prefetch_ahead(const slot_array& a, std::uint32_t i, bool firing) noexcept {
  // Entries live in their waiters, usually on suspended fibers' stacks: one cold line
  // (and page) each. Walking a linked list of them stalled on every next pointer (77% of
  // fire_due's W8 samples); from an array, the loads of the next entries overlap.
  if (i + prefetch_distance < a.size)
    if (timer_entry* p = a.data[i + prefetch_distance]) __builtin_prefetch(p, 1);
  // Half as far ahead the entry is in cache (prefetched above, earlier): its `warm` hint
  // can be read, and the fiber's saved context (64 bytes, and the frames just above it)
  // loaded before the fiber runs. Armed entries are alive: reading them is safe here.
  if (firing && i + prefetch_distance / 2 < a.size)
    if (const timer_entry* p = a.data[i + prefetch_distance / 2]; p && p->warm) {
      const char* w = static_cast<const char*>(p->warm);
      __builtin_prefetch(w);
      __builtin_prefetch(w + 64);
      __builtin_prefetch(w + 128);
    }
}

void timer_shard::arm(timer_entry* e) noexcept {
  // Computed before the lock is released: from then on the timer may fire (on a peer,
  // step 4) and its owner free the entry.
  const std::int64_t when = tick_of(e->deadline.time_since_epoch().count());
  bool first;
  {
    std::lock_guard<spinlock> g(lock_);
    first = count_ == 0;
    if (first) elapsed_ = std::min(when, tick_of(steady_ns()));  // an empty wheel restarts now
    e->shard = this;
    e->when_tick = when;
    link(e);
    ++count_;
    // Step 1: next_ only moves earlier, to when this entry can fire (no wheel scan): its
    // deadline (by then fire_due re-files it from a higher level and fires it).
    const std::int64_t fire_at = e->slot == due_slot ? 0 : deadline_ns(e);
    if (fire_at < next_.load(std::memory_order_relaxed)) next_.store(fire_at, std::memory_order_relaxed);
  }
  if (first && watchdog_) {
    // Step 7, seq_cst: orders the next_ store above before the flag read in
    // timer_armed(); the reactor's fence orders its flag store before its next_ reads.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    watchdog_->timer_armed();
  }
}

bool timer_shard::cancel(timer_entry* e) noexcept {
  std::lock_guard<spinlock> g(lock_);
  if (e->slot == timer_entry::npos) return false;  // fired (fire has returned)
  unlink(e);
  --count_;
  publish_next();  // only ever later than before: peers' hints stay safe (step 3)
  return true;
}

std::size_t timer_shard::fire_due(std::int64_t now, bool try_only) noexcept {
  std::unique_lock<spinlock> g(lock_, std::defer_lock);
  if (try_only) {
    if (!g.try_lock()) return 0;
  } else {
    g.lock();
  }
  const std::int64_t now_tick = tick_of(now);
  std::size_t fired = 0;
  auto fire_slot = [&](std::uint16_t id) {  // detaches the whole slot, then fires it
    slot_array a = take(id);
    for (std::uint32_t i = 0; i < a.size; ++i) {
      prefetch_ahead(a, i, true);
      timer_entry* e = a.data[i];
      if (!e) continue;  // cancelled
      fire_entry(e);
      ++fired;
    }
    give_back(id, a);
  };
  fire_slot(due_slot);
  std::int64_t tick;
  int level, slot;
  // A level-0 slot whose tick has passed fires whole; the current tick's slot fires only
  // the entries whose deadline has passed (exact deadlines: not up to a tick late). A
  // higher-level slot is re-filed (cascaded) once its first tick has come.
  while (count_ && next_expiration(tick, level, slot) && tick <= now_tick) {
    const auto id = static_cast<std::uint16_t>(level * slots + slot);
    if (level == 0 && tick == now_tick) {
      if (slot_min_[slot] <= now) fired += fire_current(id, now);
      break;  // every later slot is a later tick
    }
    elapsed_ = tick;
    if (level == 0) {
      fire_slot(id);
    } else {
      slot_array a = take(id);
      for (std::uint32_t i = 0; i < a.size; ++i) {
        prefetch_ahead(a, i, false);
        if (timer_entry* e = a.data[i]) link(e);  // lands on a lower level, or in the due slot
      }
      give_back(id, a);
      fire_slot(due_slot);
    }
  }
  if (count_ == 0 || elapsed_ < now_tick) elapsed_ = std::max(elapsed_, now_tick);
  publish_next();
  return fired;
}

void timer_shard::fire_entry(timer_entry* e) noexcept {
  e->slot = timer_entry::npos;  // cancel() now returns false (step 5)
  --count_;
  e->fire(e);  // under lock_; a woken sleeper's entry may die with it: not touched again
}

std::size_t timer_shard::fire_current(std::uint16_t id, std::int64_t now) noexcept {
  // In place: a fire never arms or cancels (step 6), so nothing else changes the array.
  slot_array& a = slot_[id];
  std::int64_t earliest = none;
  std::size_t fired = 0;
  for (std::uint32_t i = 0; i < a.size; ++i) {
    prefetch_ahead(a, i, true);
    timer_entry* e = a.data[i];
    if (!e) continue;
    const std::int64_t d = deadline_ns(e);
    if (d > now) {
      earliest = std::min(earliest, d);
      continue;
    }
    a.data[i] = nullptr;  // a hole, as a cancel leaves
    --a.live;
    fire_entry(e);
    ++fired;
  }
  if (a.live == 0) {
    give_back(id, take(id));
  } else {
    slot_min_[id] = earliest;  // exact again (cancels had made it a lower bound)
    compact_if_holey(a);
  }
  return fired;
}

std::size_t timer_shard::size() const noexcept {
  std::lock_guard<spinlock> g(lock_);
  return count_;
}

int timer_shard::level_for(std::int64_t elapsed, std::int64_t when) noexcept {
  // The highest 6-bit group in which `when` differs from `elapsed` picks the level: the
  // entry is then within the current rotation of that level's wheel.
  const auto masked = static_cast<std::uint64_t>(elapsed ^ when) | (slots - 1);
  const int significant = 63 - __builtin_clzll(masked);
  return std::min(significant / slot_bits, levels - 1);
}

void timer_shard::link(timer_entry* e) noexcept {
  std::uint16_t id;
  if (e->when_tick < elapsed_) {
    id = due_slot;
  } else {
    const int level = level_for(elapsed_, e->when_tick);
    const int shift = slot_bits * level;
    int slot = static_cast<int>((e->when_tick >> shift) & (slots - 1));
    if (level == levels - 1 && (static_cast<std::uint64_t>(elapsed_ ^ e->when_tick) >> (shift + slot_bits))) {
      // Beyond the top level's current rotation. A slot before elapsed_'s position
      // means the next rotation, which is right; at or after it would come up too early
      // (or at once, forever): wait in the slot that comes up last, which starts before
      // the deadline, and be re-filed from there.
      const int pos = static_cast<int>((elapsed_ >> shift) & (slots - 1));
      if (slot >= pos) slot = (pos + slots - 1) & (slots - 1);
    }
    id = static_cast<std::uint16_t>(level * slots + slot);
  }
  push(id, e);
}

void timer_shard::push(std::uint16_t id, timer_entry* e) noexcept {
  slot_array& a = slot_[id];
  if (a.size == a.cap) {
    // Grows under lock_ (arm runs in post-switch actions: no exception can leave).
    const std::uint32_t cap = a.cap ? a.cap * 2 : 16;
    void* p = std::realloc(a.data, sizeof(timer_entry*) * cap);
    WEFT_ASSERT(p != nullptr && cap > a.cap, "out of memory while arming a timer");
    a.data = static_cast<timer_entry**>(p);
    a.cap = cap;
  }
  if (id < slots) {  // level 0: the slot's earliest deadline (a lower bound after cancels)
    const std::int64_t d = deadline_ns(e);
    slot_min_[id] = a.live == 0 ? d : std::min(slot_min_[id], d);
  }
  e->slot = id;
  e->index = a.size;
  a.data[a.size++] = e;
  ++a.live;
  if (id != due_slot) occupied_[id / slots] |= std::uint64_t{1} << (id % slots);
}

void timer_shard::unlink(timer_entry* e) noexcept {
  const std::uint16_t id = e->slot;
  slot_array& a = slot_[id];
  a.data[e->index] = nullptr;
  e->slot = timer_entry::npos;
  if (--a.live == 0) {
    give_back(id, take(id));  // all holes: empty it (and free a burst's large array)
  } else {
    compact_if_holey(a);
  }
}

void timer_shard::compact_if_holey(slot_array& a) noexcept {
  // Mostly holes (timeouts armed and cancelled while the slot waits to come up, or the
  // current tick's slot firing piecemeal): compact, keeping arm order. Amortised O(1):
  // over three quarters of the slot are holes, each made since the last compaction.
  if (a.size < 64 || a.live >= a.size / 4) return;
  std::uint32_t n = 0;
  for (std::uint32_t i = 0; i < a.size; ++i)
    if (timer_entry* x = a.data[i]) {
      x->index = n;
      a.data[n++] = x;
    }
  a.size = n;
}

timer_shard::slot_array timer_shard::take(std::uint16_t id) noexcept {
  slot_array a = slot_[id];
  slot_[id] = {};
  clear_occupied(id);
  return a;
}

void timer_shard::give_back(std::uint16_t id, slot_array a) noexcept {
  // Keeps the array for the slot's next turn unless another one was grown meanwhile (a
  // firing never refills the slot it fires, but keep this safe) or it is large: a burst's
  // array is freed rather than kept for good.
  if (slot_[id].data == nullptr && a.cap <= keep_cap) {
    slot_[id].data = a.data;
    slot_[id].cap = a.cap;
  } else {
    std::free(a.data);
  }
}

timer_shard::~timer_shard() {
  for (slot_array& a : slot_) std::free(a.data);
}

bool timer_shard::next_expiration(std::int64_t& tick, int& level, int& slot) const noexcept {
  for (int l = 0; l < levels; ++l) {
    if (!occupied_[l]) continue;
    const int shift = slot_bits * l;
    const int pos = static_cast<int>((elapsed_ >> shift) & (slots - 1));
    // Slots at or after elapsed_'s own position in this level's rotation come first.
    const std::uint64_t rotated = (occupied_[l] >> pos) | (pos ? occupied_[l] << (slots - pos) : 0);
    const int ahead = __builtin_ctzll(rotated);
    slot = (pos + ahead) & (slots - 1);
    level = l;
    const std::int64_t level_span = std::int64_t{1} << (shift + slot_bits);
    const std::int64_t base = elapsed_ & ~(level_span - 1);  // start of this rotation
    tick = base + (static_cast<std::int64_t>(pos + ahead) << shift);
    if (l > 0 && tick < elapsed_) tick = elapsed_;  // elapsed_'s own slot: due now
    return true;
  }
  return false;
}

void timer_shard::publish_next() noexcept {
  std::int64_t t = none;
  if (slot_[due_slot].live) {
    t = 0;
  } else if (count_) {
    std::int64_t tick;
    int level, slot;
    if (next_expiration(tick, level, slot))
      t = level == 0 ? slot_min_[slot] : tick << tick_shift;
  }
  next_.store(t, std::memory_order_relaxed);
}

}  // namespace weft::detail
