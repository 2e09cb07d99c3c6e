// weft/sync/barrier.hpp - weft::barrier: a reusable phase barrier with std::barrier's
// interface, for fibers (which suspend) and plain threads (which block).
//
//   weft::barrier sync(workers, [&]() noexcept { ++generation; });
//   ... each worker, per step: compute(); sync.arrive_and_wait(); ...
//
// Each phase completes when `expected` arrivals have been counted; the last arriver runs
// the completion function (under the barrier's lock: it must not call into this barrier)
// and then releases every waiter of the phase. arrive_and_drop() also lowers `expected`
// for the following phases. Built on weft::mutex (the counts) and a phase gate (the
// waiters, weft/sync/detail/phase_gate.hpp).
//
// Memory ordering: every arrival of a phase happens-before the completion function of
// that phase, which happens-before the return of every wait for that phase (arrivals and
// completion under the mutex; the gate's phase store publishes them to the waiters).
//
// Lifetime (as std::barrier): the barrier may be destroyed as soon as every participant's
// last wait has been released, even before all of those calls have returned: a released
// waiter touches nothing of the barrier, the last arriver of arrive_and_wait() does not
// wait, and the destructor first takes the mutex, so the arrival that ended the phase has
// released it. A timed arrival whose deadline passed re-takes the mutex to withdraw (see
// arrive_and_wait_until); the phase gate's destructor waits for it to have left
// (src/sync/phase_gate.cpp step 4), so that, too, is safe when the phase ended meanwhile.
//
// Timeouts: arrive_and_wait_until/for withdraw the arrival when the deadline passes before
// the phase completes: the barrier is then exactly as if this participant had not arrived
// (the phase still expects it, so it may arrive again; no phase ever completes short of an
// arrival). When the phase completes before the withdrawal could be made, the call
// reports success, as if it had been released in time.
#pragma once

#include <weft/sync/detail/phase_gate.hpp>
#include <weft/sync/mutex.hpp>
#include <weft/thread_annotations.hpp>
#include <weft/timer.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <utility>

namespace weft {

namespace detail {
struct barrier_no_completion {
  void operator()() noexcept {}
};
}  // namespace detail

template <class CompletionFunction = detail::barrier_no_completion>
class barrier {
public:
  class arrival_token {
  public:
    arrival_token(arrival_token&&) noexcept = default;
    arrival_token& operator=(arrival_token&&) noexcept = default;

  private:
    friend class barrier;
    explicit arrival_token(std::uint64_t phase) noexcept : phase_(phase) {}
    std::uint64_t phase_;
  };

  // Precondition (checked, aborts): expected >= 0.
  explicit barrier(std::ptrdiff_t expected, CompletionFunction f = CompletionFunction())
      : expected_(expected), remaining_(expected), f_(std::move(f)) {
    if (expected < 0) violation("barrier constructed with a negative count");
  }
  // Waits for the arrival that ended the last phase to release the mutex (see Lifetime).
  ~barrier() { std::lock_guard<mutex> g(mu_); }
  barrier(const barrier&) = delete;
  barrier& operator=(const barrier&) = delete;

  // Counts n arrivals in the current phase. Precondition (checked, aborts): n > 0 and no
  // more than the arrivals the phase still expects.
  [[nodiscard]] arrival_token arrive(std::ptrdiff_t n = 1) {
    std::lock_guard<mutex> lk(mu_);
    arrival_token t(phase_);
    (void)arrive_locked(n);
    return t;
  }
  // Waits until the phase the token was taken in has completed. True when it has; false
  // only when the calling fiber was asked to stop ("Cancellation" in README.md; the
  // arrival stays counted: it was made by arrive()).
  bool wait(arrival_token&& t) const { return gate_.wait_past(t.phase_); }
  // arrive() and wait() in one step: the arrival that ends the phase does not wait, and
  // the others are queued before the mutex is released, so no participant touches the
  // barrier after the phase ended (see Lifetime).
  // True when the phase completed; false only when the calling fiber was asked to stop
  // ("Cancellation" in README.md): the arrival is then withdrawn, as after a timeout below.
  bool arrive_and_wait() { return arrive_and_wait_until(clock::time_point::max()); }
  // arrive_and_wait() with a deadline (steady_clock): true when the phase completed (this
  // arrival may have completed it), false when the deadline passed first, and then the
  // arrival was withdrawn (see Timeouts above): the participant has not arrived in this
  // phase and should arrive again (or arrive_and_drop) for the phase to complete. A
  // deadline in the past withdraws at once unless this arrival completes the phase.
  [[nodiscard]] bool arrive_and_wait_until(clock::time_point deadline)
      WEFT_NO_THREAD_SAFETY_ANALYSIS {
    std::unique_lock<mutex> lk(mu_);
    const std::uint64_t phase = phase_;
    if (arrive_locked(1)) return true;  // ended the phase; unlocking is the last touch
    lk.release();
    return gate_.unlock_and_wait_past_until(mu_, phase, deadline, &barrier::withdraw, this);
  }
  template <class Duration>
  [[nodiscard]] bool arrive_and_wait_until(const std::chrono::time_point<clock, Duration>& tp) {
    return arrive_and_wait_until(to_deadline(tp));
  }
  template <class Rep, class Period>
  [[nodiscard]] bool arrive_and_wait_for(const std::chrono::duration<Rep, Period>& d) {
    return arrive_and_wait_until(deadline_after(d));
  }
  // Arrives, and takes this participant out of every later phase.
  void arrive_and_drop() {
    std::lock_guard<mutex> lk(mu_);
    if (expected_ == 0) violation("barrier::arrive_and_drop with no participant left");
    --expected_;
    (void)arrive_locked(1);
  }
  static constexpr std::ptrdiff_t max() noexcept { return PTRDIFF_MAX; }

private:
  [[noreturn]] static void violation(const char* what) noexcept {
    std::fprintf(stderr, "weft: contract violation: %s\n", what);
    std::abort();
  }
  // Under mu_. True when these arrivals ended the phase (and released its waiters).
  bool arrive_locked(std::ptrdiff_t n) {
    if (n <= 0 || n > remaining_) violation("barrier::arrive: more arrivals than the phase expects");
    remaining_ -= n;
    if (remaining_ != 0) return false;
    f_();
    ++phase_;
    remaining_ = expected_;
    gate_.open(phase_);
    return true;
  }

  // Under mu_, the phase not yet complete: takes back one timed-out arrival.
  static void withdraw(void* self) noexcept WEFT_NO_THREAD_SAFETY_ANALYSIS {
    ++static_cast<barrier*>(self)->remaining_;
  }

  mutable mutex mu_;
  detail::phase_gate gate_;   // its phase follows phase_ (opened under mu_)
  std::ptrdiff_t expected_;   // guarded by mu_
  std::ptrdiff_t remaining_;  // guarded by mu_: arrivals still missing in this phase
  std::uint64_t phase_ = 0;   // guarded by mu_
  CompletionFunction f_;
};

}  // namespace weft
