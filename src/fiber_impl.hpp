// src/fiber_impl.hpp - the physical fiber (context + stack) and the task state word.
//
// A task (include/weft/detail/task.hpp) is the logical unit of work; a fiber_impl is a
// stack with a saved context that runs tasks. A fiber runs its tasks back to back: when
// one finishes and the next local item is an unstarted task, it runs it on the same stack
// with no switch at all. Idle fibers wait, suspended at the top of their loop, in their
// worker's pool; a task first gets a fiber when it first runs, so queued tasks cost no
// stack. A fiber can also run a child task *inline* when it joins one that has not
// started (as TBB and Cilk do): then `current` names the child until it returns.
//
// Queue items are tagged words: a task* (bit 0 clear: not started yet) or a
// fiber_impl* | 1 (a suspended fiber to resume).
#pragma once

#include "context.hpp"
#include "stack.hpp"

#include <weft/detail/task.hpp>

#include <atomic>
#include <cstdint>

namespace weft::detail {

class worker;
class runtime;

// Task state bits (task::state_). Each is set once and never cleared, except JOIN_TIMED,
// which a timed joiner clears again when its deadline passes (task.cpp join step 7).
enum task_state : std::uint32_t {
  task_done = 1,       // finished; result or error_ is written (release) before it is set
  task_join_wait = 2,  // a joiner registered in joiner_ and is suspended/blocked
  task_detached = task_detached_bit,  // no handle (given up, or never made); a stored
                                      // error goes to the unhandled-exception handler
  task_join_timed = 8,  // a timed joiner's waiter is in joiner_; set and cleared under
                        // task::join_lock_ (task.cpp join step 7)
  // Children spawned with spawn_options::stop_with_parent are listed for it (task.cpp,
  // stop links). Bits [8, 16) hold the stack size class.
  task_stop_linked = 1u << 16,
};

// What a suspended fiber waits on, for the fiber dump and the deadlock report
// (src/inspect.hpp). Each suspension path writes its kind before it suspends.
enum class wait_kind : std::uint8_t {
  none = 0,       // never suspended yet (or a new fiber about to start its task)
  yield,          // runnable: it yielded (or was preempted by the schedule fuzzer)
  sleep,          // this_fiber::sleep_for / sleep_until
  io,             // readiness of an fd (obj: the fd number, not an address)
  join,           // join of another fiber (obj: its task)
  blocking,       // run_blocking: a pool thread runs its job
  mutex, condition_variable, event, semaphore, wait_group, latch, barrier,
  channel_send, channel_recv, select,
};
const char* wait_kind_name(wait_kind k) noexcept;  // inspect.cpp

struct wait_desc {
  const void* obj = nullptr;  // the primitive (the fd number for io)
  // For waits on a wait_list.hpp waiter: its claim word, on the fiber's own stack (live
  // while the fiber stays suspended). Claimed (!= outcome_waiting): woken, runnable.
  const std::atomic<std::uint32_t>* claim = nullptr;
  std::int64_t deadline = 0;  // steady ns, 0: none
  wait_kind kind = wait_kind::none;
};

struct fiber_impl {
  context ctx;                // must stay first: switch_context passes &ctx around
  stack stk;
  runtime* rt = nullptr;
  worker* home = nullptr;     // worker that last resumed it; remote wakes are sent there
  task* root = nullptr;       // task to run when (re)started from the pool
  task* current = nullptr;    // logical task running now (an inline child while it runs)
  // current's id (0: none), for an inspection of a fiber that may be running
  // (src/inspect.hpp step 4). relaxed: a report; the task itself is never reached from it.
  std::atomic<std::uint64_t> current_id{0};
  // Last stopped by a wait (worker::suspend), not by a yield: its stack has likely gone
  // cold, so a solo worker warms it before resuming it (worker::warm_fiber). Written
  // only by the fiber's own thread while it runs; read by that worker (solo) later, and
  // by the worker that resumes it while tracing (src/trace.hpp, wait numbers).
  bool waited = false;
  // Its stack's size class (task_stack_class): 0 for the scheduler's stack_size. Set when
  // the stack is mapped; a fiber runs only tasks of its own class (worker::fiber_for).
  std::uint8_t stack_class = 0;
  // steady ns of a sampled wake (stats.hpp schedule_latency), 0 when not sampled. Written
  // by the waker before it queues the fiber, read and cleared by the fiber once resumed
  // (ordered by the queue's hand-over, as the rest of the suspended state).
  std::int64_t woke_at = 0;
  // Written by the fiber itself before each suspension (plain stores, on the line that
  // `waited` shares); read only by an inspection while the fiber is held still (the pause
  // protocol in src/inspect.hpp).
  wait_desc wait;
  // The runtime's fiber registry (src/inspect.hpp): every fiber record from make_fiber to
  // retire_fiber is on one shard's list. Guarded by that shard's mutex.
  fiber_impl* reg_prev = nullptr;
  fiber_impl* reg_next = nullptr;
  unsigned reg_shard = 0;
  // Inspections only (under the shard's mutex): the wait sequence the last inspection
  // saw, and when it first saw the fiber suspended in that wait (steady ns). A wait's
  // duration is known from there on, at no cost to the wait itself.
  std::uint64_t seen_waits = 0;
  std::int64_t seen_since = 0;
  // Suspensions so far (owner writes, before suspending; inspections read). While
  // tracing, also read by its waker and by the worker that resumes it (src/trace.hpp,
  // wait numbers: the number names the suspension that one wake ends).
  std::uint64_t waits = 0;
};

// Records what f (the calling fiber) is about to wait on (src/inspect.hpp). `deadline`:
// steady ns (0: none). A few plain stores to f's record, which the wait touches anyway.
inline void note_wait(fiber_impl* f, wait_kind k, const void* obj, std::int64_t deadline = 0,
                      const std::atomic<std::uint32_t>* claim = nullptr) noexcept {
  f->wait.obj = obj;
  f->wait.claim = claim;
  f->wait.deadline = deadline;
  f->wait.kind = k;
  ++f->waits;
}

// The stack size class a task asked for (spawn_options::stack_size; 0: the default).
// relaxed: written before the task was published, never changed.
inline unsigned task_stack_class(const task* t) noexcept {
  return (t->state_.load(std::memory_order_relaxed) >> task_stack_class_shift) & 0xffu;
}
// Usable bytes (before the sanitizer multiplier) of stack class c >= 1: 16 KiB << (c - 1).
inline std::size_t stack_class_bytes(unsigned c) noexcept { return std::size_t{16 * 1024} << (c - 1); }
inline constexpr unsigned max_stack_class = 17;  // 1 GiB

using item = std::uintptr_t;
inline item as_item(task* t) noexcept { return reinterpret_cast<item>(t); }
inline item as_item(fiber_impl* f) noexcept { return reinterpret_cast<item>(f) | 1u; }
inline bool is_fiber(item i) noexcept { return (i & 1u) != 0; }
inline fiber_impl* as_fiber(item i) noexcept { return reinterpret_cast<fiber_impl*>(i & ~item{1}); }
inline task* as_task(item i) noexcept { return reinterpret_cast<task*>(i); }

}  // namespace weft::detail

namespace weft::detail {
// task.cpp: sets task_done, wakes the joiner, reports a detached task's exception.
void task_complete(task* t) noexcept;
// task.cpp: destroys t's fiber-local storage (before task_complete).
void fls_destroy(task* t) noexcept;
// Cancellation (task.cpp, steps C1-C5): the stop_ word's bits, and the hook a cancellable
// wait registers there. A hook is at least 4-aligned (its address shares the word).
inline constexpr std::uintptr_t stop_bit = 1, stop_busy_bit = 2, stop_flag_mask = 3;
struct alignas(8) cancel_hook {
  // Called by the requester (any thread) while it holds BUSY: ends the wait if it can.
  void (*cancel)(cancel_hook*) noexcept = nullptr;
};
// C1: false when STOP is already set (the wait must end itself). Post-switch action.
bool cancel_register(task* t, cancel_hook* hook) noexcept;
// C3: after the wait was resumed; returns once no requester touches the hook.
void cancel_deregister(task* t, cancel_hook* hook) noexcept;
// task.cpp: t's name (spawn_options::name), or nullptr. Only by whoever runs or is about
// to run t (it lives in t's fiber-local table, destroyed by fls_destroy).
const char* task_name(const task* t) noexcept;
}  // namespace weft::detail
