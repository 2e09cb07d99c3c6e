// src/sync/wait_list.cpp - spinlock slow path and block(): wait_list.hpp's protocol step 1
// for fibers (post-switch publication) and plain threads (futex).
#include "wait_list.hpp"

#include <weft/fiber.hpp>

#include "../assert.hpp"
#include "../parker.hpp"
#include "../fiber_impl.hpp"

#include <cerrno>
#include <sched.h>

namespace weft::detail {

void spinlock::lock_slow() noexcept {
  // Critical sections are a few dozen instructions, but a holder can be preempted (more
  // workers than cores, or plain threads): after a short spin, give the CPU away.
  for (unsigned spins = 0;; ++spins) {
    // relaxed: a read-only wait for the line to look free; the exchange below decides.
    while (locked_.load(std::memory_order_relaxed)) {
      if (spins < 64) {
        __builtin_ia32_pause();
        ++spins;
      } else {
        sched_yield();
      }
    }
    // acquire: pairs with unlock()'s release store.
    if (!locked_.exchange(true, std::memory_order_acquire)) return;
  }
}

namespace {

// Step 6: a cancellable wait's hook, on block()'s frame.
struct cancel_link : cancel_hook {
  waiter* w = nullptr;
  task* owner = nullptr;  // whose stop word it is registered on
};

struct block_args {
  waiter* w;
  spinlock* const* locks;
  std::size_t n;
  bool timed;
  cancel_link* link;  // nullptr: not cancellable
};

void fire_timeout(timer_entry* e) noexcept {
  auto* w = static_cast<waiter*>(e);
  if (try_claim(w, make_outcome(outcome_timeout))) resume(w);
}

// Step 6, on the requester's thread (it holds the stop word's BUSY bit): as the timer.
void cancel_wait(cancel_hook* h) noexcept {
  waiter* w = static_cast<cancel_link*>(h)->w;
  if (try_claim(w, make_outcome(outcome_timeout))) resume(w);
}

// Step 1, fiber side of block_untimed(): the lock is the whole argument, so nothing is
// read from the suspended fiber's frame.
void post_unlock(fiber_impl*, void* lock) noexcept { static_cast<spinlock*>(lock)->unlock(); }

// Step 1 and 6 for block_untimed() of a cancellable fiber wait: copy out, register the
// hook (a stopped fiber's wait ends at once, claimed as a timeout), then unlock.
struct untimed_args {
  waiter* w;
  spinlock* lock;
  cancel_link* link;
};
void post_untimed(fiber_impl*, void* arg) noexcept {
  auto* a = static_cast<untimed_args*>(arg);
  waiter* w = a->w;
  spinlock* lock = a->lock;
  cancel_link* link = a->link;
  if (!cancel_register(link->owner, link) && try_claim(w, make_outcome(outcome_timeout)))
    resume(w);
  lock->unlock();
}

// Step 1, fiber side: runs on the next context after the waiter's context is saved.
void post_block(fiber_impl*, void* arg) noexcept {
  // Copy everything out of the suspended fiber's frame first: once the first lock is
  // released (or the timer armed) the fiber may be resumed and that frame reused.
  auto* a = static_cast<block_args*>(arg);
  if (a->n == 1 && !a->timed && !a->link) {  // one lock, no timer, not cancellable
    a->locks[0]->unlock();
    return;
  }
  waiter* w = a->w;
  const std::size_t n = a->n;
  const bool timed = a->timed;
  cancel_link* link = a->link;
  spinlock* locks[max_block_locks];
  for (std::size_t i = 0; i < n; ++i) locks[i] = a->locks[i];
  if (timed) arm_timer(w);  // before unlocking: see protocol step 1
  // Step 6, before unlocking: the stop already requested, the wait ends as a timeout.
  if (link && !cancel_register(link->owner, link) &&
      try_claim(w, make_outcome(outcome_timeout)))
    resume(w);
  for (std::size_t i = 0; i < n; ++i) locks[i]->unlock();
}

std::uint32_t block_thread(waiter& w, spinlock* const* locks, std::size_t n,
                           clock::time_point deadline) noexcept {
  for (std::size_t i = 0; i < n; ++i) locks[i]->unlock();
  const bool timed = deadline != clock::time_point::max();
  for (;;) {
    // acquire: pairs with resume()'s release store; the outcome and slot are visible.
    if (w.flag.load(std::memory_order_acquire) != 0) break;
    if (!timed) {
      futex_wait(&w.flag, 0);
      continue;
    }
    const auto left = deadline - clock::now();
    if (left <= clock::duration::zero()) {
      if (try_claim(&w, make_outcome(outcome_timeout))) break;
      // A notifier won the race: its resume() is imminent; wait for it (untimed).
      while (w.flag.load(std::memory_order_acquire) == 0) futex_wait(&w.flag, 0);
      break;
    }
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
    timespec ts{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
    futex_wait(&w.flag, 0, &ts);
  }
  // acquire: the claim CAS (acq_rel) is ordered before the flag store we synchronised
  // with, or it is our own timeout claim.
  return w.state.load(std::memory_order_acquire);
}

}  // namespace

std::uint32_t block(waiter& w, spinlock* const* locks, std::size_t n,
                    clock::time_point deadline) noexcept {
  WEFT_ASSERT(n <= max_block_locks, "weft: a wait may hold at most 32 locks (select cases)");
  const bool timed = deadline != clock::time_point::max();
  WEFT_DCHECK(!timed || w.racy, "a timed wait must be marked racy before it is linked");
  if (!w.fiber) return block_thread(w, locks, n, deadline);
  note_wait(w.fiber, w.kind, w.obj, timed ? steady_ns_of(deadline) : 0, &w.state);
  cancel_link link;
  if (timed) {
    w.deadline = deadline;
    w.fire = fire_timeout;
  }
  if (w.cancellable && w.fiber->current) {  // step 6
    link.cancel = cancel_wait;
    link.w = &w;
    link.owner = w.fiber->current;
    // The request claims without the locks: every claimer must CAS. We still hold the
    // locks, and notifiers read racy only under them (waiter::racy).
    w.racy = true;
  }
  block_args a{&w, locks, n, timed, link.owner ? &link : nullptr};
  // TSan: post_block unlocks inside the next context's internal scope; publish the linked
  // node(s) to the locks' next holders from here (tsan_scope.hpp step 4).
  for (std::size_t i = 0; i < n; ++i) tsan_release(locks[i]);
  if (link.owner) tsan_release(static_cast<cancel_hook*>(&link));  // task.cpp C4
  suspend_current(post_block, &a);
  // Resumed exactly once (protocol step 2). Once cancel_timer() returns, no worker
  // touches the entry (timers.hpp step 5): whether it was removed or fired and lost.
  if (timed) (void)cancel_timer(&w);
  // acquire: pairs with the claim CAS; the wake's queue handover already orders it.
  const std::uint32_t out = w.state.load(std::memory_order_acquire);
  if (link.owner) {  // step 6
    if (kind_of(out) == outcome_timeout) {  // claimed without the locks: let the post finish
      locks[0]->lock();
      locks[0]->unlock();
    }
    cancel_deregister(link.owner, &link);
  }
  return out;
}

std::uint32_t block_untimed(waiter& w, spinlock& lock) noexcept {
  if (!w.fiber) {
    spinlock* l = &lock;
    return block_thread(w, &l, 1, clock::time_point::max());
  }
  // w.fiber is the calling fiber (read in the waiter's constructor, on this worker):
  // suspend it directly, without suspend_current()'s second lookup.
  note_wait(w.fiber, w.kind, w.obj, 0, &w.state);
  if (!w.cancellable || !w.fiber->current) {  // a mutex lock, or no task to stop
    tsan_release(&lock);  // as in block(): post_unlock's unlock releases nothing
    current_worker()->suspend(w.fiber, post_unlock, &lock);
    // acquire: pairs with the claim CAS; the wake's queue handover already orders it.
    return w.state.load(std::memory_order_acquire);
  }
  // Step 6, as block() does it, without the lock array and the timer.
  cancel_link link;
  link.cancel = cancel_wait;
  link.w = &w;
  link.owner = w.fiber->current;
  w.racy = true;  // the request claims without the lock (we still hold it)
  untimed_args a{&w, &lock, &link};
  // TSan, after every write the lock's next holder reads (racy above): the post's unlock
  // releases nothing (tsan_scope.hpp step 4).
  tsan_release(&lock);
  tsan_release(static_cast<cancel_hook*>(&link));  // task.cpp C4
  current_worker()->suspend(w.fiber, post_untimed, &a);
  // acquire: as above.
  const std::uint32_t out = w.state.load(std::memory_order_acquire);
  if (kind_of(out) == outcome_timeout) {  // the request's claim: let the post finish
    lock.lock();
    lock.unlock();
  }
  cancel_deregister(link.owner, &link);
  return out;
}

void await_orphans_then_assert_idle(spinlock& lock, wait_queue* const* qs, std::size_t n,
                                    const char* what) noexcept {
  lock.lock();
  for (;;) {
    bool idle = true, orphans = false;
    for (std::size_t i = 0; i < n; ++i) {
      idle = idle && qs[i]->empty();
      orphans = orphans || qs[i]->orphans != 0;
    }
    if (!idle || !orphans) {
      lock.unlock();
      WEFT_ASSERT(idle, what);
      return;
    }
    // An orphan's waiter is between its wait's end and its leave(), a few instructions
    // (or, for a fiber, until its worker runs it: yield lets this worker do so).
    lock.unlock();
    this_fiber::yield();
    lock.lock();
  }
}

namespace {
thread_local char thread_token_anchor;
}

std::atomic<release_hook> release_hook_now{nullptr};

void set_release_hook(release_hook h) noexcept {
  // relaxed: see release_window().
  release_hook_now.store(h, std::memory_order_relaxed);
}

std::uintptr_t caller_token() noexcept {
  if (fiber_impl* f = current_fiber(); f && f->current)
    return reinterpret_cast<std::uintptr_t>(f->current);
  return reinterpret_cast<std::uintptr_t>(&thread_token_anchor) | 1u;
}

}  // namespace weft::detail
