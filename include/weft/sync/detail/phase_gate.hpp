// weft/sync/detail/phase_gate.hpp - the waiting half of weft::barrier: a phase number and
// the fibers and threads waiting for a phase to end. Not API: names here may change.
//
// A waiter released by open() returns without touching the gate (or the barrier around
// it) again, so the barrier may be destroyed as soon as any wait for the phase returns
// (src/sync/phase_gate.cpp).
#pragma once

#include <weft/export.hpp>
#include <weft/sync/detail/wait_queue.hpp>
#include <weft/timer.hpp>

#include <atomic>
#include <cstdint>

namespace weft {
class mutex;
}

namespace weft::detail {

class phase_gate {
public:
  phase_gate() noexcept = default;
  // Aborts (contract violation) if fibers or threads still wait on it.
  WEFT_API ~phase_gate();
  phase_gate(const phase_gate&) = delete;
  phase_gate& operator=(const phase_gate&) = delete;

  // Waits until phase p has ended. Fiber: suspends; plain thread: blocks. False only when
  // a stop request ended the wait (wait_list.hpp step 6).
  WEFT_API bool wait_past(std::uint64_t p) const;
  // The caller holds m, under which phases end, and p is the current phase: queues the
  // caller, releases m, and waits until phase p ended or `deadline` (max: none) or a stop
  // request of the calling fiber came first (the phase cannot end in between): true when
  // phase p ended. When the deadline or the request came first, it re-takes m and, if p is still the phase, calls
  // withdraw(ctx) under m (the barrier takes back the arrival) and returns false; if the
  // phase ended meanwhile it returns true. Returns with m released either way.
  WEFT_API bool unlock_and_wait_past_until(mutex& m, std::uint64_t p, clock::time_point deadline,
                                           void (*withdraw)(void*) noexcept, void* ctx) const;
  // Ends the current phase: `next` (the current one + 1) becomes the phase and every
  // waiter is released. Called under the mutex that unlock_and_wait_past_until() is given.
  WEFT_API void open(std::uint64_t next) noexcept;

private:
  // Written by open() under lock_ (release); read by the waiters' fast path (acquire).
  std::atomic<std::uint64_t> phase_{0};
  mutable spinlock lock_;
  mutable wait_queue queue_;  // guarded by lock_
};

}  // namespace weft::detail
