// weft/sync/event.hpp - weft::event: a flag that fibers and threads wait for.
//
//   weft::event ready;                                   // manual reset, initially clear
//   weft::spawn([&] { load(); ready.set(); });
//   ready.wait();                                        // suspends until set()
//
// Manual reset: set() releases every waiter and later waits return at once until reset().
// Automatic reset: set() releases exactly one waiter (or, with none waiting, the next
// wait), and the event is clear again afterwards. A waiting fiber costs no CPU.
//
// Memory ordering: set() happens-before the return of every wait it releases, and of
// every wait that finds the event set (or, in automatic mode, consumes it).
#pragma once

#include <weft/export.hpp>
#include <weft/sync/detail/wait_queue.hpp>
#include <weft/timer.hpp>

#include <atomic>
#include <chrono>

namespace weft {

class event {
public:
  enum class reset_mode { manual, automatic };

  explicit event(reset_mode mode = reset_mode::manual, bool initially_set = false) noexcept
      : set_(initially_set), auto_(mode == reset_mode::automatic) {}
  // Aborts (contract violation) if fibers or threads still wait on it.
  WEFT_API ~event();
  event(const event&) = delete;
  event& operator=(const event&) = delete;

  // Sets the event (see the modes above). Any fiber or thread; never blocks.
  WEFT_API void set() noexcept;
  // Clears the event. Any fiber or thread.
  WEFT_API void reset() noexcept;
  // True when set (a snapshot). Any fiber or thread.
  [[nodiscard]] WEFT_API bool is_set() const noexcept;

  // Waits until set. Fiber: suspends; plain thread: blocks. True when set (consumed, in
  // automatic mode); false only when the calling fiber was asked to stop
  // (join_handle::request_stop: see "Cancellation" in README.md).
  WEFT_API bool wait();
  // As wait(), giving up at the deadline; true when the event was set (consumed, in
  // automatic mode). A deadline in the past only checks.
  [[nodiscard]] WEFT_API bool wait_until(clock::time_point deadline);
  template <class Duration>
  [[nodiscard]] bool wait_until(const std::chrono::time_point<clock, Duration>& tp) {
    return wait_until(to_deadline(tp));
  }
  template <class Rep, class Period>
  [[nodiscard]] bool wait_for(const std::chrono::duration<Rep, Period>& d) {
    return wait_until(deadline_after(d));
  }

private:
  bool try_consume() noexcept;

  // Written under lock_; read without it by the fast paths. release/acquire pairs are
  // documented at each use in src/sync/event.cpp.
  std::atomic<bool> set_;
  const bool auto_;
  detail::spinlock lock_;
  detail::wait_queue queue_;  // guarded by lock_
};

}  // namespace weft
