// weft/sync/mutex.hpp - weft::mutex: a mutual-exclusion lock for fibers and plain threads.
//
//   weft::mutex m;
//   { std::scoped_lock g(m); ++shared; }          // or std::unique_lock, lock_guard
//
// A contended fiber suspends (its worker runs other fibers); a contended plain thread
// blocks on a futex. Not recursive: locking a mutex the caller already holds aborts.
//
// Fairness: new lockers may take a free mutex ahead of queued waiters (barging keeps the
// uncontended path at one CAS and avoids lock convoys). A queued waiter that has waited
// 1 ms or more is handed the mutex directly at the next unlock, with no barging window,
// so no waiter starves; waiters are queued FIFO, and a woken waiter that loses a race
// re-queues at the head. (Go's sync.Mutex "starvation mode", same 1 ms bound.)
//
// Cancellation: a stop request (join_handle::request_stop) does not end a lock() or a
// try_lock_for/until of the stopped fiber, unlike every other timed wait: critical sections
// are short, and the code that holds or wants a lock is typically the cleanup that runs
// *after* a stop (and a lock() has no way to report that it did not lock).
//
// Memory ordering: unlock() happens-before the lock() or successful try_lock*() that
// next acquires the mutex, on any thread or worker: everything written while holding the
// mutex is visible to the next holder. A failed try_lock*() gives no ordering.
#pragma once

#include <weft/export.hpp>
#include <weft/sync/detail/wait_queue.hpp>
#include <weft/thread_annotations.hpp>
#include <weft/timer.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>

namespace weft {

class condition_variable;
namespace detail {
struct mutex_peek;  // src/inspect.cpp: the deadlock report reads the holder
}

// A capability for clang's -Wthread-safety (weft/thread_annotations.hpp).
class WEFT_CAPABILITY("mutex") mutex {
public:
  mutex() noexcept = default;
  // Aborts (contract violation) if fibers or threads are waiting for the mutex.
  WEFT_API ~mutex();
  mutex(const mutex&) = delete;
  mutex& operator=(const mutex&) = delete;

  // Acquires the mutex; suspends the calling fiber (or blocks the calling plain thread)
  // while another holds it. Any fiber or thread. Aborts if the caller already holds it.
  void lock() WEFT_ACQUIRE() WEFT_NO_THREAD_SAFETY_ANALYSIS {
    std::uint32_t expected = 0;
    // acquire: pairs with the release in unlock(); the previous holder's writes are
    // visible. Failure: relaxed, the slow path re-reads.
    if (!state_.compare_exchange_strong(expected, locked, std::memory_order_acquire,
                                        std::memory_order_relaxed))
      lock_slow();
    else
      set_owner();
  }
  // Acquires the mutex if it is free right now; never waits. Any fiber or thread.
  [[nodiscard]] WEFT_API bool try_lock() noexcept WEFT_TRY_ACQUIRE(true);
  // Like lock(), giving up at the deadline (steady_clock); true when acquired. A deadline
  // in the past makes it a try_lock().
  template <class Rep, class Period>
  [[nodiscard]] bool try_lock_for(const std::chrono::duration<Rep, Period>& d)
      WEFT_TRY_ACQUIRE(true) WEFT_NO_THREAD_SAFETY_ANALYSIS {
    return try_lock() || lock_until(deadline_after(d));
  }
  template <class Duration>
  [[nodiscard]] bool try_lock_until(const std::chrono::time_point<clock, Duration>& tp)
      WEFT_TRY_ACQUIRE(true) WEFT_NO_THREAD_SAFETY_ANALYSIS {
    return try_lock() || lock_until(to_deadline(tp));
  }
  // Releases the mutex. Precondition (checked, aborts): the caller holds it: the same
  // fiber (task) or plain thread that locked it. Never blocks.
  WEFT_API void unlock() noexcept WEFT_RELEASE();

private:
  friend class condition_variable;
  friend struct detail::mutex_peek;
  // state_ bits.
  static constexpr std::uint32_t locked = 1;   // held; set by lock, cleared by unlock
  static constexpr std::uint32_t waiters = 2;  // queue non-empty; changed under lock_ only
  static constexpr std::uint32_t woken = 4;    // a waiter was resumed to retry and has not
                                               // retried yet: unlock need not wake another
  // The body's try_lock-then-wait paths are beyond clang's analysis (lock() is annotated).
  WEFT_API void lock_slow() WEFT_NO_THREAD_SAFETY_ANALYSIS;
  WEFT_API bool lock_until(clock::time_point deadline);
  WEFT_API void set_owner() noexcept;
  WEFT_API bool held_by_caller() const noexcept;

  // Lock word; see the bits above and the protocol in src/sync/mutex.cpp.
  std::atomic<std::uint32_t> state_{0};
  // caller_token() of the holder, 0 when free. Written by the holder only (relaxed: read
  // for contract checks by the holder itself, or racily by lock() to detect recursion,
  // where only equality with the reader's own token matters).
  std::atomic<std::uintptr_t> owner_{0};
  detail::spinlock lock_;
  detail::wait_queue queue_;  // guarded by lock_
};

}  // namespace weft
