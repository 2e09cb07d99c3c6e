// src/context.hpp - the fiber switch seam. Only context.cpp and context_switch.hpp (the
// inline switch) include Boost.Context.
//
// A context is either a fiber's (its own stack) or a worker thread's scheduler context
// (the thread's stack). switch_context() saves the running context and resumes another;
// when the caller is resumed later, it returns the context that switched back to it, whose
// saved state it has already recorded. Sanitizer annotations (TSan fiber switch, ASan
// start/finish_switch_fiber) are done here, in the same frame as the jump
// (docs/platform.md, TSan: a separate instrumented helper corrupts TSan's shadow stack).
#pragma once

#include <cstddef>

namespace weft::detail {

// The C++ runtime's per-thread exception state (Itanium C++ ABI __cxa_eh_globals: the
// stack of exceptions being handled and the count of exceptions being thrown, which is
// what std::current_exception(), `throw;` and std::uncaught_exceptions() read). The ABI
// keeps it per thread; a fiber that suspends inside a catch block (or in a destructor run
// by unwinding) must not share it with the next fiber its thread runs, so every switch
// saves the thread's copy into the context switched away from and installs the one
// switched to (worker::switch_to). Layout of __cxa_eh_globals on x86-64, in libsupc++ and
// libc++abi alike: { __cxa_exception* caughtExceptions; unsigned uncaughtExceptions; }.
struct eh_state {
  void* caught = nullptr;
  unsigned uncaught = 0;
};
// This thread's exception state (__cxa_get_globals); constant for the thread's life.
eh_state* thread_eh_state() noexcept;

struct context {
  void* fctx = nullptr;              // saved fcontext_t while not running
  eh_state eh;                       // exception state while not running (see eh_state)
  void* tsan_fiber = nullptr;        // TSan fiber handle (TSan builds only)
  void* asan_fake_stack = nullptr;   // ASan fake-stack save slot (ASan builds only)
  const void* stack_lo = nullptr;    // lowest usable stack address (ASan bounds)
  std::size_t stack_size = 0;
  bool owns_tsan_fiber = false;
};

// What a fiber's entry function receives on its first landing; layout-identical to
// Boost's transfer_t (two pointers, passed in registers), checked in context.cpp.
struct transfer {
  void* fctx;
  void* data;
};
// Never returns: a fiber ends by being destroyed while suspended.
using fiber_entry_fn = void (*)(transfer first);

// Prepares `c` to start in entry(from) on the stack [lo, lo + size) when first switched to.
void context_make(context& c, void* lo, std::size_t size, fiber_entry_fn entry) noexcept;
// Makes `c` describe the calling thread's own (scheduler) context.
void context_init_thread(context& c) noexcept;
// Releases sanitizer state of a fiber context that will never run again. Never the
// running one.
void context_destroy(context& c) noexcept;
// switch_context(from, to) (context_switch.hpp, inline): saves the running context into
// `from`, resumes `to`. Returns, once `from` is resumed, the context that resumed it.
// noexcept: nothing may unwind across a switch.
// Must be the first call in a fiber's entry function: records the resumer's state and
// returns it (what switch_context returns, for the first landing). In TSan's fiber mode it
// also opens the fiber's internal scope (tsan_scope.hpp step 2).
context* context_first_landing(transfer first) noexcept;

}  // namespace weft::detail
