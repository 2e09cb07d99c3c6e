// src/sync/mutex.cpp - weft::mutex.
//
// Protocol (state_ bits in mutex.hpp; the queue and the `waiters` bit change under lock_):
//   1. lock(): CAS 0 -> locked. Otherwise the slow path takes lock_, sets
//      `waiters` (fetch_or) and tries once more to take a free mutex; if that fails it
//      queues its node (at the head when it was woken before) and blocks; lock_ is
//      released in the post-switch action.
//   2. unlock(): a CAS clears `locked` when nobody needs waking (no `waiters`, or a
//      `woken` waiter is already on its way). Otherwise it takes lock_ and pops the head
//      waiter h:
//        - h has waited >= 1 ms: hand-off. `locked` stays set, h is claimed with
//          outcome_ok and owns the mutex when it runs (it sets owner_ itself).
//        - else: clear `locked`, set `woken`, claim h with the "retry" outcome
//          (outcome_closed here); h clears `woken` and competes again (step 1).
//      `waiters` is cleared when the queue becomes empty.
//   3. A timed waiter whose timer wins unlinks itself under lock_ and clears `waiters`
//      when it leaves the queue empty. Since the unlocker pops under lock_, and the
//      locker sets `waiters` before its last try under lock_, no unlock can miss a
//      queued waiter: an unlock that saw no `waiters` bit released before that last try.
// Rejected: strict FIFO hand-off on every unlock (each contended unlock becomes a context
// switch; a lock convoy), and waking a waiter per unlock (Go's mutexWoken avoids it too).
// Benchmark workloads cited here (W6): docs/benchmarks.md.
#include <weft/sync/mutex.hpp>

#include "../assert.hpp"
#include "wait_list.hpp"
#include "../sched_fuzz.hpp"

namespace weft {

using namespace detail;

namespace {
constexpr std::int64_t starve_ns = 1'000'000;  // 1 ms, as Go's starvationThresholdNs
}  // namespace

mutex::~mutex() {
  assert_no_waiters(lock_, queue_, "weft::mutex destroyed while fibers or threads wait for it");
}

void mutex::set_owner() noexcept {
  // relaxed: see owner_ in mutex.hpp.
  owner_.store(caller_token(), std::memory_order_relaxed);
}

bool mutex::held_by_caller() const noexcept {
  // relaxed: only the holder can read its own token here (see owner_).
  return owner_.load(std::memory_order_relaxed) == caller_token();
}

bool mutex::try_lock() noexcept {
  // relaxed: the CAS below decides.
  std::uint32_t s = state_.load(std::memory_order_relaxed);
  while (!(s & locked)) {
    // acquire: pairs with the release in unlock() (step 2).
    if (state_.compare_exchange_weak(s, s | locked, std::memory_order_acquire,
                                     std::memory_order_relaxed)) {
      set_owner();
      return true;
    }
  }
  return false;
}

void mutex::lock_slow() {
  // One more try before the queueing path: lock()'s CAS failed because the holder had the
  // line, and by the time that miss resolved the holder (a few-ns critical section) has
  // usually unlocked. The queueing path costs four RMWs on this line (spinlock, waiters
  // bit, CAS, spinlock release) while the next holder needs it. W6 (1000 fibers, 2
  // workers), A/B 4 x 5 reps: 21.0-21.7 -> 13.2-15.0 ns/lock; 3 tries: 15.6-17.3; a
  // 32-try spin with pause: 37-68 (below).
  fuzz_point();  // sched_fuzz.hpp choice 2 (contended locks only: lock()'s fast path is inline)
  if (try_lock()) return;
  const bool got = lock_until(clock::time_point::max());
  WEFT_ASSERT(got, "weft::mutex::lock: an untimed wait ended without the mutex");
}

bool mutex::lock_until(clock::time_point deadline) {
  WEFT_ASSERT(!held_by_caller(), "weft::mutex::lock: the caller already holds this mutex");
  // No spin phase beyond lock_slow's single retry. W6 (bench/sync, 1000 fibers, 2 workers)
  // with a 32-try spin (pause + test-and-try_lock) before queueing: 37-68 ns/lock, against
  // 21-25 without: a spinning contender keeps both workers on the lock's cache line, where
  // queueing it lets the other worker run alone. A test-and-test-and-set load in lock()
  // made no difference.
  waiter w(wait_kind::mutex, this);
  w.racy = deadline != clock::time_point::max();  // a timer may claim too
  wait_node node;
  node.owner = &w;
  bool was_woken = false;
  for (;;) {
    lock_.lock();
    // acq_rel: acquire as in try_lock (we may take the mutex below); release is not
    // needed but harmless; the bit is only read under lock_ or by unlock's CAS.
    std::uint32_t s = state_.fetch_or(waiters, std::memory_order_acq_rel) | waiters;
    if (was_woken) {
      s = state_.fetch_and(~woken, std::memory_order_relaxed) & ~woken;  // relaxed: lock_
      was_woken = false;
    }
    while (!(s & locked)) {
      std::uint32_t next = s | locked;
      if (queue_.empty()) next &= ~waiters;
      // acquire: pairs with the release in unlock().
      if (state_.compare_exchange_weak(s, next, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
        lock_.unlock();
        set_owner();
        return true;
      }
    }
    if (deadline != clock::time_point::max() && deadline <= clock::now()) {
      if (queue_.empty()) state_.fetch_and(~waiters, std::memory_order_relaxed);  // lock_
      lock_.unlock();
      return false;
    }
    if (w.since == 0) w.since = steady_ns();
    w.cancellable = false;  // a lock is not cancellable (wait_list.hpp step 6; mutex.hpp)
    w.rearm();
    if (node.front) push_front(queue_, &node); else push_back(queue_, &node);
    const std::uint32_t out = block(w, lock_, deadline);
    switch (kind_of(out)) {
      case outcome_ok:  // step 2, hand-off: `locked` was kept set for us
        set_owner();
        return true;
      case outcome_closed:  // step 2, retry
        was_woken = true;
        node.front = true;
        continue;
      default:  // step 3
        release_window(&queue_, release_point::leaving);
        lock_.lock();
        leave(queue_, &node);
        if (queue_.empty()) state_.fetch_and(~waiters, std::memory_order_relaxed);  // lock_
        lock_.unlock();
        return false;
    }
  }
}

void mutex::unlock() noexcept {
  WEFT_ASSERT(held_by_caller(), "weft::mutex::unlock: the caller does not hold the mutex");
  owner_.store(0, std::memory_order_relaxed);  // relaxed: see owner_
  std::uint32_t s = locked;
  // release: publishes the critical section to the next acquirer (lock/try_lock CAS).
  if (state_.compare_exchange_strong(s, 0, std::memory_order_release,
                                     std::memory_order_relaxed)) {
    release_window(this, release_point::done);
    return;
  }
  while (!(s & waiters) || (s & woken)) {  // step 2, nobody to wake
    if (state_.compare_exchange_weak(s, s & ~locked, std::memory_order_release,
                                     std::memory_order_relaxed)) {
      release_window(this, release_point::done);
      return;
    }
  }
  lock_.lock();
  wait_node* h = nullptr;
  bool handoff = false;
  while ((h = pop_front(queue_)) != nullptr) {
    // Starved for starve_ns: hand the lock over. Under schedule fuzzing a draw decides
    // instead (sched_fuzz.hpp choice 6), so that a seed replays whatever the clock says.
    const int drawn = fuzz_one_in(4);
    handoff = drawn >= 0 ? drawn == 1 : steady_ns() - h->owner->since >= starve_ns;
    if (claim_popped(queue_, h, make_outcome(handoff ? outcome_ok : outcome_closed))) break;
  }
  s = state_.load(std::memory_order_relaxed);
  for (;;) {
    std::uint32_t next = s;
    if (queue_.empty()) next &= ~waiters;
    if (!h || !handoff) next &= ~locked;
    if (h && !handoff) next |= woken;
    // release: as above (when `locked` is cleared); with a hand-off the wake carries it.
    if (state_.compare_exchange_weak(s, next, std::memory_order_release,
                                     std::memory_order_relaxed))
      break;
  }
  lock_.unlock();
  if (h) resume(h->owner);
  release_window(this, release_point::done);
}

}  // namespace weft
