// weft/sync/latch.hpp - weft::latch: a single-use countdown, std::latch's interface, for
// fibers (which suspend) and plain threads (which block).
//
//   weft::latch ready(workers);
//   ... each worker: ready.count_down(); ...
//   ready.wait();                                   // until all have counted down
//
// A thin layer over wait_group (the same counter and waiter queue, without add()).
//
// Memory ordering: every count_down() happens-before the return of a wait() or a true
// try_wait() that observes the count at zero (as std::latch).
//
// Lifetime: a waiter may destroy the latch as soon as its wait (or arrive_and_wait)
// returns, even while the count_down() or arrive_and_wait() that released it is still
// running (src/sync/wait_group.cpp).
#pragma once

#include <weft/sync/wait_group.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstdio>

namespace weft {

class latch {
public:
  // Precondition (checked, aborts): expected >= 0.
  explicit latch(std::ptrdiff_t expected) noexcept : wg_(checked(expected)) {}
  latch(const latch&) = delete;
  latch& operator=(const latch&) = delete;

  // Decrements the count by n; reaching zero releases every waiter. Precondition
  // (checked by wait_group, aborts): the count does not go below zero.
  void count_down(std::ptrdiff_t n = 1) noexcept { wg_.add(-static_cast<std::int64_t>(n)); }
  // True when the count is zero. Never blocks.
  [[nodiscard]] bool try_wait() const noexcept { return wg_.reached_zero(); }
  // Waits until the count is zero. True when it is; false only when the calling fiber
  // was asked to stop (join_handle::request_stop; "Cancellation" in README.md).
  bool wait() const { return wg_.wait(); }
  // As wait(), giving up at the deadline (steady_clock), as event::wait_until does: true
  // when the count reached zero, false when the deadline passed first (nothing changes:
  // wait again, or try_wait). A deadline in the past only checks.
  [[nodiscard]] bool wait_until(clock::time_point deadline) const { return wg_.wait_until(deadline); }
  template <class Duration>
  [[nodiscard]] bool wait_until(const std::chrono::time_point<clock, Duration>& tp) const {
    return wait_until(to_deadline(tp));
  }
  template <class Rep, class Period>
  [[nodiscard]] bool wait_for(const std::chrono::duration<Rep, Period>& d) const {
    return wait_until(deadline_after(d));
  }
  // count_down(n) and wait() in one step: the arriver that makes the zero does not wait,
  // and the others count down and queue in one lock hold, so no arriver touches the latch
  // once the zero is made (the waiters it releases may destroy it at once).
  // False when a stop request ended the wait (the count_down stays done).
  bool arrive_and_wait(std::ptrdiff_t n = 1) { return wg_.arrive_and_wait(static_cast<std::int64_t>(n)); }
  static constexpr std::ptrdiff_t max() noexcept { return PTRDIFF_MAX; }

private:
  static std::int64_t checked(std::ptrdiff_t expected) noexcept {
    if (expected < 0) {
      std::fprintf(stderr, "weft: contract violation: latch constructed with a negative count\n");
      std::abort();
    }
    return static_cast<std::int64_t>(expected);
  }
  mutable wait_group wg_;
};

}  // namespace weft
