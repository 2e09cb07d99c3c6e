// src/tsan_scope.hpp - how ThreadSanitizer sees fibers (docs/tsan.md is the user's side).
// Everything here compiles to nothing outside TSan builds, and in the tsan-checked mode.
//
// Two modes (CMake WEFT_TSAN_FIBERS, the WEFT_TSAN_FIBERS=0|1 define):
//   checked (0): every switch synchronises (__tsan_switch_to_fiber flags 0): everything a
//     worker ran before a switch happens-before everything after it. weft's own internals
//     stay fully checked (the tsan-checked preset); but two fibers that share a worker are
//     ordered by their switches, so a race between them is invisible.
//   fiber (1, the default): every fiber is a TSan thread of its own, as Go's race detector
//     sees goroutines; only real hand-offs order fibers. The protocol:
//
//   1. A switch creates no happens-before edge (__tsan_switch_to_fiber_no_sync, in
//      switch_context, context_switch.hpp).
//   2. weft's internals run inside an *internal scope* of whichever context runs them: TSan
//      ignores their reads and writes (__tsan_ignore_thread_begin/end) and their
//      synchronisation (AnnotateIgnoreSyncBegin/End: atomics, mutexes, futexes, eventfd
//      and epoll create no edge). So fibers sharing a worker do not race on its fields, and
//      the scheduler's queues, locks and counters order nothing. Internal: the body of
//      worker::suspend/yield around the switch, run_post and the post actions, next_local /
//      find_work and the whole scheduler context (worker::thread_main), fiber_main outside
//      the task's callable, wake(), spawn's bookkeeping (spawn_here, spawn_on), join's
//      inline run and requeue, arm_timer/cancel_timer and every timer firing, the reactor
//      thread, run_blocking's pool (outside the call it runs), shutdown's cancel_io, and
//      the creation of fibers (fiber_for), so TSan's creator -> new fiber edge is not made.
//      Ignore counts are per TSan fiber (its ThreadState), so a scope opened by a fiber
//      before it suspends is closed by that same fiber when it resumes, wherever it resumes.
//      A suspended context holds no ignore: switch_context closes the leaving side's scope
//      right before the jump and opens the landing side's right after it (a first landing:
//      context_first_landing), with nothing instrumented in between. TSan refuses to
//      destroy a fiber with ignores still enabled ("finished with ignores enabled"), and
//      pooled fibers are destroyed while suspended.
//   3. Each real hand-off adds exactly one edge, outside the scopes (__tsan_release/acquire
//      on an address):
//        spawn -> start       release(task) in spawn_here/spawn_on, from a fiber or a plain
//                             thread; acquire(task) in worker::run_task before the callable.
//        finish -> join       release(task) in run_task after the callable returned, its
//                             result or exception was stored and its fiber_locals were
//                             destroyed; acquire(task) in task_wait once DONE is seen (fiber
//                             join, plain-thread join, block_on), in task_detach when it
//                             sees DONE (it reads the error), and in task_release before it
//                             deletes the task (the other reference may have been dropped
//                             inside a scope).
//        finish -> shutdown   release(runtime) in run_task; acquire(runtime) in
//                             runtime::shutdown once every fiber finished (detached ones too).
//        wake -> resume       release(fiber) in wake() before its internal scope; acquire
//                             (fiber) in worker::suspend after its scope closed. A wake made
//                             inside a scope (a timer firing, the reactor or a worker
//                             polling fds, a join completion) releases nothing: the woken
//                             fiber's own history is all it needs, and join has its own edge.
//        stop request         release(hook) by a cancellable wait before it suspends,
//                             acquire(hook) by the requester before calling it (task.cpp
//                             cancellation C4: the hook's registration is internal).
//        run_blocking         release(job) by the fiber before submitting, acquire(job) by
//                             the pool thread before the call; release(job) after the call,
//                             acquire(job) by the fiber once resumed (whoever woke it).
//      The sync primitives' own spinlocks and atomics run in the calling fiber's identity,
//      outside the scopes, and give unlock -> lock, send -> recv, set -> wait, notify ->
//      wait exactly as between threads; I/O readiness is ordered by TSan's own file
//      descriptor model (write(2) -> read(2) interceptors).
//   4. Publication of a waiter: a fiber links its wait node under a primitive's spinlock and
//      suspends; the unlock is its post action, which runs in the *next* context's internal
//      scope and so releases nothing. The suspending fiber therefore releases on each lock
//      the post action will unlock (block, block_untimed) before it suspends, so whoever
//      takes that lock next sees the node it linked.
//   5. Thread-local storage: the fibers of a worker share its thread's TLS, which TSan
//      treats as written by that thread when it started. The worker releases on itself at
//      the start of thread_main, and a fiber acquires its current worker whenever it lands
//      (a task starts in run_task, a suspension or a yield returns): a fiber's reads of its
//      worker's thread_locals are ordered after their initialisation (a by-product edge
//      that carries only the worker's start-up). errno, which every syscall rewrites and
//      which any fiber may read or (in instrumented code) write, is marked benign per
//      worker thread. Other thread_locals written by one fiber and read by another are
//      reported, as fiber.hpp's thread-local hazard says they should be.
// Not seen (docs/tsan.md): a task inherits the TSan identity of the fiber stack it runs on,
// so two tasks that run one after the other on one pooled fiber (or a child joined inline)
// are ordered; the unhandled-exception handler runs inside the scope.
#pragma once

#include "sanitizers.hpp"

#include <cstddef>

#if defined(WEFT_TSAN) && (!defined(WEFT_TSAN_FIBERS) || WEFT_TSAN_FIBERS)
#define WEFT_TSAN_FIBER_MODE 1
#endif

#if defined(WEFT_TSAN_FIBER_MODE)
// Exported by clang's and g++'s TSan runtimes; not declared in <sanitizer/tsan_interface.h>.
extern "C" {
void __tsan_ignore_thread_begin();
void __tsan_ignore_thread_end();
void AnnotateIgnoreSyncBegin(const char* file, int line);
void AnnotateIgnoreSyncEnd(const char* file, int line);
void AnnotateBenignRaceSized(const char* file, int line, const volatile void* mem,
                             std::size_t size, const char* description);
}
#endif

namespace weft::detail {

#if defined(WEFT_TSAN_FIBER_MODE)
inline constexpr unsigned tsan_switch_flags = __tsan_switch_to_fiber_no_sync;  // step 1
[[gnu::always_inline]] inline void tsan_ignore_begin() noexcept {
  __tsan_ignore_thread_begin();
  AnnotateIgnoreSyncBegin(__FILE__, __LINE__);
}
[[gnu::always_inline]] inline void tsan_ignore_end() noexcept {
  AnnotateIgnoreSyncEnd(__FILE__, __LINE__);
  __tsan_ignore_thread_end();
}
// Step 3: one end of a happens-before edge (outside the internal scope, or a no-op).
[[gnu::always_inline]] inline void tsan_release(const void* addr) noexcept {
  __tsan_release(const_cast<void*>(addr));
}
[[gnu::always_inline]] inline void tsan_acquire(const void* addr) noexcept {
  __tsan_acquire(const_cast<void*>(addr));
}
// Step 5: races on [addr, addr + size) are not reported.
inline void tsan_benign(const void* addr, std::size_t size, const char* why) noexcept {
  AnnotateBenignRaceSized(__FILE__, __LINE__, addr, size, why);
}
#else
#if defined(WEFT_TSAN)
inline constexpr unsigned tsan_switch_flags = 0;  // checked mode: every switch synchronises
#endif
inline void tsan_ignore_begin() noexcept {}
inline void tsan_ignore_end() noexcept {}
inline void tsan_release(const void*) noexcept {}
inline void tsan_acquire(const void*) noexcept {}
inline void tsan_benign(const void*, std::size_t, const char*) noexcept {}
#endif

// Step 2: weft internals from here to the end of the enclosing block.
class tsan_internal_scope {
public:
  tsan_internal_scope() noexcept { tsan_ignore_begin(); }
  ~tsan_internal_scope() { tsan_ignore_end(); }
  tsan_internal_scope(const tsan_internal_scope&) = delete;
  tsan_internal_scope& operator=(const tsan_internal_scope&) = delete;
};

// Inside an internal scope: user code (a task's callable, a blocking call) from here to the
// end of the enclosing block, which then returns to the internal scope.
class tsan_user_scope {
public:
  tsan_user_scope() noexcept { tsan_ignore_end(); }
  ~tsan_user_scope() { tsan_ignore_begin(); }
  tsan_user_scope(const tsan_user_scope&) = delete;
  tsan_user_scope& operator=(const tsan_user_scope&) = delete;
};

}  // namespace weft::detail
