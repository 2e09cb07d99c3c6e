// weft/sync/wait_group.hpp - weft::wait_group: wait for a counted set of work to finish.
//
//   weft::wait_group wg;
//   for (auto& job : jobs) {
//     wg.add(1);
//     weft::spawn([&] { run(job); wg.done(); }).detach();
//   }
//   wg.wait();                                           // suspends until the count is 0
//
// Memory ordering: every done() (and add() with a negative delta) happens-before the
// return of a wait() that observes the count at zero.
//
// Lifetime: a waiter may destroy the wait_group as soon as its wait returns, even while
// the done() that released it is still running (src/sync/wait_group.cpp step 1).
#pragma once

#include <weft/export.hpp>
#include <weft/sync/detail/wait_queue.hpp>
#include <weft/timer.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>

namespace weft {

class latch;
namespace detail {
struct resume_chain;
}

class wait_group {
public:
  explicit wait_group(std::int64_t initial = 0) noexcept : count_(initial) {}
  // Aborts (contract violation) if fibers or threads still wait on it.
  WEFT_API ~wait_group();
  wait_group(const wait_group&) = delete;
  wait_group& operator=(const wait_group&) = delete;

  // Adds delta to the count; reaching zero releases every waiter. Any fiber or thread.
  // Precondition (checked, aborts): the count never becomes negative.
  WEFT_API void add(std::int64_t delta) noexcept;
  // add(-1).
  void done() noexcept { add(-1); }
  // The count now (a snapshot). Any fiber or thread.
  [[nodiscard]] std::int64_t count() const noexcept {
    return count_.load(std::memory_order_relaxed);  // relaxed: a snapshot, no ordering
  }
  // True when the count is zero. acquire: pairs with add()'s acq_rel RMWs, so every
  // add() that brought it there happens-before (latch::try_wait builds on this).
  [[nodiscard]] bool reached_zero() const noexcept {
    return count_.load(std::memory_order_acquire) == 0;
  }
  // Waits until the count is zero. Fiber: suspends; plain thread: blocks. True when it
  // reached zero; false only when the calling fiber was asked to stop
  // (join_handle::request_stop; "Cancellation" in README.md).
  WEFT_API bool wait();
  // As wait(), giving up at the deadline; true when the count reached zero.
  [[nodiscard]] WEFT_API bool wait_until(clock::time_point deadline);
  template <class Rep, class Period>
  [[nodiscard]] bool wait_for(const std::chrono::duration<Rep, Period>& d) {
    return wait_until(deadline_after(d));
  }

private:
  friend class latch;
  // Applies a delta under lock_; when it makes the zero, claims the waiters into chain.
  bool add_locked(std::int64_t delta, detail::resume_chain& chain) noexcept;
  // add()'s decrement that may make the zero: takes lock_ (step 1), resumes the waiters.
  void add_to_zero(std::int64_t delta) noexcept;
  // Counts n down and, unless that made the zero, waits, in one lock_ hold (latch).
  // True when the zero was reached; false when a stop request ended the wait (the
  // arrival stays counted).
  WEFT_API bool arrive_and_wait(std::int64_t n);

  // The count: changed by add() with RMWs, each a release (a release sequence, so the
  // acq_rel RMW that makes the zero, under lock_, carries every earlier one); read with
  // acquire by wait().
  std::atomic<std::int64_t> count_;
  detail::spinlock lock_;
  detail::wait_queue queue_;  // guarded by lock_
};

}  // namespace weft
