// src/trace.hpp - the event trace (scheduler::trace_start/trace_stop, WEFT_TRACE=path):
// per-worker rings of scheduler events, exported as Chrome trace-event JSON (Perfetto UI
// and chrome://tracing open it). Tested by tests/trace_test.cpp.
//
// Recording:
//   1. trace_start allocates one ring per worker (or reuses the last session's), notes
//      each ring's head as the session's first event, reads the clocks, then publishes
//      each ring in its worker's trace_ pointer (release).
//   2. Every event site in the worker is `if (worker::tracing()) ...`: one load of the
//      worker's own trace_ (acquire; pairs with step 1) and one branch, predicted not
//      taken while tracing is off. The recording itself is out of line (worker::trace_*).
//   3. Only the worker's thread writes its ring (single writer): each event is one slot
//      of four atomic words, its first word (the timestamp; for a wake, which reads no
//      clock, the woken fiber's wait number instead) first, then the payload, then the
//      slot's sequence number (release), then the ring's head (release). A full ring
//      overwrites its oldest events: the export keeps the last `capacity` of each worker.
//   4. trace_stop clears the trace_ pointers, reads the clocks again, then reads each ring
//      from the session's first event to its head (acquire; pairs with step 3). A slot
//      whose sequence number is not the expected one was overwritten meanwhile and is
//      skipped. A worker that loaded its trace_ just before the clear may still write one
//      event after it: it lands past the head read, or, in a full ring, over the oldest
//      slot, which the sequence check then skips. The rings stay allocated until the
//      scheduler is destroyed (such a late writer may still hold one).
//
// Events (what each site records; ids are fiber ids, this_fiber::id()):
//   switch  worker::switch_to: why the fiber leaving left (wait: suspended; yield; end: its
//           task finished; none: it is the scheduler context), the fiber entering (0: the
//           scheduler context, or a fresh fiber: its task's `start` follows) and, when it
//           resumes from a wait, its wait number (below; 0 otherwise). The fiber leaving is
//           not recorded: it is the slice open on that worker's track (the fiber of the
//           last switch, start or end).
//   start   run_task: a task starts (b: the task it runs inline in, joined by it, or 0).
//   end     run_task: a task ends (b: the task that resumes on this stack, or 0).
//   wake    wake() on a worker: the fiber woken, its wait number, and the waker (the task
//           running here, 0 for the scheduler context: a timer, ready fds). No timestamp:
//           the export places it between its ring's neighbouring events (below). Wakes
//           from plain threads and the reactor thread are not recorded (they have no ring).
//   spawn   spawn_local (from a fiber): the new fiber and its parent. Spawns from plain
//           threads are not recorded.
//   steal   a successful steal: the victim worker and the number of items moved.
//   park / unpark   the worker thread's sleep (worker::park).
//   timers  timers fired (count); io: fibers woken by an fd poll (count).
//
// Wait numbers: fiber_impl::waits, which each fiber counts up before every suspension
// that a wake ends (note_wait: joins, sleeps, I/O, every sync/ wait; not yields), always,
// traced or not. A suspended fiber's count names its suspension, and each suspension is
// ended by exactly one wake (suspend.hpp rule 2) and one resume, so a wake (fiber, n) and
// the switch that resumed that fiber with wait number n are each other's, exactly: no
// clock, no counter maintained only while tracing, and no ambiguity between several wakes
// of one fiber in one slice of its waker. The waker reads it while it owns the suspended
// fiber (rule 2), the resuming worker after the queue handed the fiber over; both are
// plain reads of what the fiber wrote before suspending. A resume after a yield records 0
// (fiber_impl::waited is clear), so it never matches. 56 bits are kept: no fiber waits
// 2^56 times.
//
// Export (trace.cpp): one track per worker ("worker N"); each run of a fiber is a slice
// named "fiber #id"; parks are slices named "parked"; spawn, steal, timers and io are
// instant events. A wake is a short slice "wake #id" inside the waker's slice, with a flow
// arrow to the run it caused: the run that the switch resuming that fiber with the wake's
// wait number opened. No arrow when that switch was not recorded (it came after
// trace_stop, was overwritten, or its worker did not trace yet); a run whose wake was not
// recorded (a plain thread's, an overwritten one, one before the session) has none either.
// A wake's time is only bounded: after its ring's previous timestamped event; before the
// next one, before the run it caused, and before the wakes after it in its ring. It is
// drawn at the earliest of those upper bounds (its ring's previous timestamp when it has
// none), never before that previous timestamp; its arrow starts there too, or at the run's
// start if that is earlier (TSCs of two cores disagreeing), never after its end.
//
// Timestamps: the TSC (rdtsc, 11-17 ns here against ~43 ns for clock_gettime) on x86-64,
// converted to steady_clock time with the two clock pairs read at start and stop; elsewhere
// steady_clock itself. The export's ts are microseconds since trace_start.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

namespace weft::detail {

class runtime;

enum class trace_kind : std::uint8_t {
  switch_wait = 1, switch_yield, switch_end, switch_none,  // switch, by why the leaver left
  start, end, wake, spawn, steal, park, unpark, timers, io,
};

std::int64_t steady_now_ns() noexcept;

inline std::uint64_t trace_clock() noexcept {
#if defined(__x86_64__)
  return __rdtsc();
#else
  return static_cast<std::uint64_t>(steady_now_ns());
#endif
}

class trace_ring {
public:
  explicit trace_ring(std::size_t capacity);  // a power of two
  std::size_t capacity() const noexcept { return mask_ + 1; }

  // Owner thread only (step 3). a: 56 bits. An event stamped with the clock.
  void emit(trace_kind k, std::uint64_t a, std::uint64_t b) noexcept {
    put(k, trace_clock(), a, b);
  }
  // An event without a clock read (a wake): `w` takes the timestamp's word.
  void emit_untimed(trace_kind k, std::uint64_t w, std::uint64_t a, std::uint64_t b) noexcept {
    put(k, w, a, b);
  }

  // An event as read back. ts: its first word, the clock's reading (for a wake, which
  // emit_untimed records, the woken fiber's wait number).
  struct event {
    std::uint64_t ts;
    trace_kind kind;
    std::uint64_t a, b;
  };
  static constexpr std::uint64_t a_mask = (std::uint64_t{1} << 56) - 1;
  std::uint64_t head() const noexcept { return head_.load(std::memory_order_acquire); }
  // Event i (i < head()); false when it was overwritten. Any thread (step 4).
  bool read(std::uint64_t i, event& out) const noexcept;

private:
  void put(trace_kind k, std::uint64_t w, std::uint64_t a, std::uint64_t b) noexcept {
    // relaxed: we are the only writer.
    const std::uint64_t i = head_.load(std::memory_order_relaxed);
    slot& s = slots_[i & mask_];
    // relaxed: published by the seq store below.
    s.ts.store(w, std::memory_order_relaxed);
    s.a.store(static_cast<std::uint64_t>(k) << 56 | (a & a_mask), std::memory_order_relaxed);
    s.b.store(b, std::memory_order_relaxed);
    // release: publishes ts, a and b; pairs with the acquire load in read().
    s.seq.store(i + 1, std::memory_order_release);
    // release: pairs with the acquire load of head() in tracer::stop.
    head_.store(i + 1, std::memory_order_release);
  }

  struct slot {
    std::atomic<std::uint64_t> seq{0}, ts{0}, a{0}, b{0};
  };
  std::unique_ptr<slot[]> slots_;
  std::uint64_t mask_;
  std::atomic<std::uint64_t> head_{0};
};

// A runtime's trace sessions: start, stop and export. Any thread; start and stop are
// serialised by a mutex.
class tracer {
public:
  static constexpr std::size_t default_events = std::size_t{1} << 16;
  static constexpr std::size_t max_events = std::size_t{1} << 26;

  // Step 1. Throws std::invalid_argument for a capacity of 0 or above max_events.
  void start(runtime& rt, std::size_t events_per_worker);
  // Step 4, then the JSON ("" when no session is running).
  std::string stop(runtime& rt);
  bool running() const;

private:
  mutable std::mutex mu_;
  bool running_ = false;  // guarded by mu_
  std::vector<std::unique_ptr<trace_ring>> rings_;    // guarded by mu_; one per worker
  std::vector<std::unique_ptr<trace_ring>> retired_;  // guarded by mu_; see step 4
  std::vector<std::uint64_t> first_;                  // guarded by mu_; per ring
  std::uint64_t tsc0_ = 0;                            // guarded by mu_
  std::int64_t ns0_ = 0;                              // guarded by mu_
};

// Writes the JSON to path; throws std::system_error naming the path when it cannot.
void write_trace_file(const std::string& path, const std::string& json);

}  // namespace weft::detail
