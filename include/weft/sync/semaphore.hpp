// weft/sync/semaphore.hpp - weft::counting_semaphore: a pool of permits.
//
//   weft::counting_semaphore slots(8);                  // at most 8 requests in flight
//   slots.acquire();  serve();  slots.release();
//
// release() hands permits to queued waiters first, in FIFO order; an acquire() that finds
// a permit free takes it at once, even if others are queued (they are queued only while
// no permit is free, so this cannot starve them for long: every release serves the queue
// before the count). Not a template (std's LeastMaxValue is not needed): the count is a
// std::ptrdiff_t.
//
// Memory ordering: a release() happens-before the acquire (or successful try_acquire*)
// that obtains one of the permits it released.
#pragma once

#include <weft/export.hpp>
#include <weft/sync/detail/wait_queue.hpp>
#include <weft/timer.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>

namespace weft {

class counting_semaphore {
public:
  // Precondition (checked, aborts): initial >= 0.
  WEFT_API explicit counting_semaphore(std::ptrdiff_t initial);
  // Aborts (contract violation) if fibers or threads still wait on it.
  WEFT_API ~counting_semaphore();
  counting_semaphore(const counting_semaphore&) = delete;
  counting_semaphore& operator=(const counting_semaphore&) = delete;

  // Adds n permits (n >= 0, checked); waiters are served first. Any fiber or thread.
  WEFT_API void release(std::ptrdiff_t n = 1) noexcept;
  // Takes a permit, waiting while none is free. Fiber: suspends; plain thread: blocks.
  // True when taken; false (no permit taken) only when the calling fiber was asked to stop
  // (join_handle::request_stop; "Cancellation" in README.md).
  WEFT_API bool acquire();
  // Takes a permit if one is free now. Never waits.
  [[nodiscard]] WEFT_API bool try_acquire() noexcept;
  // As acquire(), giving up at the deadline; true when a permit was taken.
  [[nodiscard]] WEFT_API bool try_acquire_until(clock::time_point deadline);
  template <class Rep, class Period>
  [[nodiscard]] bool try_acquire_for(const std::chrono::duration<Rep, Period>& d) {
    return try_acquire() || try_acquire_until(deadline_after(d));
  }
  // Free permits now (a snapshot).
  [[nodiscard]] std::ptrdiff_t available() const noexcept {
    return count_.load(std::memory_order_relaxed);  // relaxed: a snapshot, no ordering
  }

private:
  // Free permits. Decreased by try_acquire's CAS (any thread); increased only under
  // lock_, by release(), and only when no waiter is queued. Orders in semaphore.cpp.
  std::atomic<std::ptrdiff_t> count_;
  detail::spinlock lock_;
  detail::wait_queue queue_;  // guarded by lock_
};

}  // namespace weft
