// src/suspend.hpp - the seam every blocking primitive (join, sleep, sync/, io) builds on.
//
//   fiber_impl* self = current_fiber();            // nullptr on a plain thread
//   ... record self in the primitive's waiter list (under the primitive's lock) ...
//   suspend_current(post, arg);                    // post(self, arg) runs after the switch
//   ... resumed: someone called wake(self) exactly once ...
//
// Rules (the wakeup protocol of every primitive):
//   1. A fiber becomes visible to wakers only in `post`, which runs on the next context
//      after the suspended fiber's registers and stack are saved. Typical posts: release
//      the primitive's spinlock/mutex, arm a timer, set a JOIN_WAIT bit. A waker that
//      finds the fiber may therefore resume it at once, on any worker.
//   2. Each suspension is ended by exactly one wake(). When two parties may race to wake
//      the same suspension (a notify and a timeout, a close and a send), they decide with
//      a CAS on a per-wait state word; the loser does nothing.
//   3. `post` runs on a worker thread in whatever context comes next; it must not block
//      or suspend, and must not touch the suspended fiber's stack after publishing it.
//   4. Plain threads block on a futex word instead (parker.hpp: futex_wait/futex_wake).
#pragma once

#include "fiber_impl.hpp"
#include "tsan_scope.hpp"
#include "worker.hpp"

namespace weft::detail {

class reactor;

// The fiber running on this thread, or nullptr (plain thread, or a worker's scheduler
// context). Re-read after every suspension point.
inline fiber_impl* current_fiber() noexcept {
  worker* w = current_worker();
  return w ? w->current() : nullptr;
}

// Fiber context only (asserts). Suspends the calling fiber; see the rules above.
void suspend_current(post_fn post, void* arg) noexcept;

// Any thread. Makes a suspended fiber runnable again (rule 2: once per suspension).
// Inline for the commonest case, a fiber woken by another fiber of its own runtime on a
// worker whose runnext slot is free (channel and mutex hand-offs): it becomes runnext
// with no call; and a fiber woken by a timer its worker is firing (queued FIFO without a
// look at its cold record). Everything else goes through runtime::wake (wake_slow).
// TSan's fiber mode: the waker's history goes to the woken fiber (wake -> resume, acquired
// in worker::suspend); the queueing is internal (tsan_scope.hpp steps 2 and 3).
void wake_slow(fiber_impl* f) noexcept;
inline void wake(fiber_impl* f) noexcept {
  tsan_release(f);
  tsan_internal_scope internal;
  worker* w = current_worker();
  if (w) {
    // stats.hpp schedule_latency (one wake in 64), trace.hpp (every wake while tracing).
    if (__builtin_expect(w->wake_due(), 0)) w->wake_hook(f);
    if (w->try_wake_local(f)) return;
  }
  wake_slow(f);
}

// The reactor (fd readiness) of the runtime that owns fiber f.
reactor& reactor_of(fiber_impl* f) noexcept;

}  // namespace weft::detail
