// weft/sync/barrier.hpp - weft::barrier: a reusable phase barrier with std::barrier's
// interface, for fibers (which suspend) and plain threads (which block).
//
//   weft::barrier sync(workers, [&]() noexcept { ++generation; });
//   ... each worker, per step: compute(); sync.arrive_and_wait(); ...
//
// Each phase completes when `expected` arrivals have been counted; the last arriver runs
// the completion function (under the barrier's lock: it must not call into this barrier)
// and then releases every waiter of the phase. arrive_and_drop() also lowers `expected`
// for the following phases. Built on weft::mutex and weft::condition_variable.
//
// Memory ordering: every arrival of a phase happens-before the completion function of
// that phase, which happens-before the return of every wait for that phase (all go
// through the barrier's mutex).
#pragma once

#include <weft/sync/condition_variable.hpp>
#include <weft/sync/mutex.hpp>

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
  barrier(const barrier&) = delete;
  barrier& operator=(const barrier&) = delete;

  // Counts n arrivals in the current phase. Precondition (checked, aborts): n > 0 and no
  // more than the arrivals the phase still expects.
  [[nodiscard]] arrival_token arrive(std::ptrdiff_t n = 1) {
    std::unique_lock<mutex> lk(mu_);
    return arrive_locked(lk, n);
  }
  // Waits until the phase the token was taken in has completed.
  void wait(arrival_token&& t) const {
    std::unique_lock<mutex> lk(mu_);
    cv_.wait(lk, [&] { return phase_ != t.phase_; });
  }
  void arrive_and_wait() { wait(arrive()); }
  // Arrives, and takes this participant out of every later phase.
  void arrive_and_drop() {
    std::unique_lock<mutex> lk(mu_);
    if (expected_ == 0) violation("barrier::arrive_and_drop with no participant left");
    --expected_;
    (void)arrive_locked(lk, 1);
  }
  static constexpr std::ptrdiff_t max() noexcept { return PTRDIFF_MAX; }

private:
  [[noreturn]] static void violation(const char* what) noexcept {
    std::fprintf(stderr, "weft: contract violation: %s\n", what);
    std::abort();
  }
  arrival_token arrive_locked(std::unique_lock<mutex>&, std::ptrdiff_t n) {
    if (n <= 0 || n > remaining_) violation("barrier::arrive: more arrivals than the phase expects");
    arrival_token t(phase_);
    remaining_ -= n;
    if (remaining_ == 0) {
      f_();
      ++phase_;
      remaining_ = expected_;
      cv_.notify_all();
    }
    return t;
  }

  mutable mutex mu_;
  mutable condition_variable cv_;
  std::ptrdiff_t expected_;   // guarded by mu_
  std::ptrdiff_t remaining_;  // guarded by mu_: arrivals still missing in this phase
  std::uint64_t phase_ = 0;   // guarded by mu_
  CompletionFunction f_;
};

}  // namespace weft
