// src/context.cpp - the only file that touches Boost.Context's fcontext.
//
// Why raw fcontext and not boost::context::fiber: the final switch of a finishing
// boost::context::fiber happens inside Boost where it cannot be annotated for TSan
// (docs/platform.md, TSan). Our fibers never return from their entry function: a finished
// fiber parks itself in its worker's pool and is destroyed while suspended.
//
// Switch protocol (both directions of every jump):
//   1. TSan: __tsan_switch_to_fiber(to, flags) immediately before the jump, in this frame.
//      Fiber mode (tsan_scope.hpp, the default): flags no_sync, so a switch orders
//      nothing, and the leaving side's internal scope is closed just before the switch and
//      the landing side's opened right after the jump (context_first_landing for a fresh
//      fiber), so that no suspended context holds an ignore. Checked mode: flags 0 makes
//      every switch a synchronisation point, and there are no scopes.
//   2. ASan: __sanitizer_start_switch_fiber(&from.fake, to.stack) before the jump and
//      __sanitizer_finish_switch_fiber(from.fake, &bottom, &size) right after landing; the
//      bounds returned are the previous context's stack, recorded so that a thread context
//      (whose bounds we do not know up front) can be switched back to.
//   3. jump_fcontext passes &from as data; the landing side stores the jumper's fcontext
//      into it. Only after that store may anyone resume the jumper, which is why wakers are
//      published by post-switch actions (worker.cpp), never before the jump.
//   4. The jump is entered with push + jmp, not `call` (jump(), x86-64): jump_fcontext
//      resumes the other side with `pop; jmp *reg`, never `ret`, so a `call` would leave one
//      entry on the CPU's return-stack predictor that no `ret` consumes. Every return the
//      resumed fiber then makes (switch_context, switch_to, suspend, block, recv ...) was
//      predicted one frame off and mispredicted; entering by jmp keeps the predictor in step,
//      and as every fiber suspends through the same call chain, those returns now hit.
//      Measured on the 2-vCPU VM: W4 channel ping-pong 104 -> 66 ns per round trip,
//      weft_yield 52 -> 41 ns.
// Benchmark workloads cited here (W4): docs/benchmarks.md.
#include "context.hpp"

#include "context_switch.hpp"
#include "sanitizers.hpp"
#include "tsan_scope.hpp"

#include <boost/context/detail/fcontext.hpp>

#include <cxxabi.h>

namespace weft::detail {

namespace bctx = boost::context::detail;

eh_state* thread_eh_state() noexcept {
  // The ABI's own accessor; its result is fixed for the thread, so a worker asks once.
  return reinterpret_cast<eh_state*>(abi::__cxa_get_globals());
}

void context_make(context& c, void* lo, std::size_t size, fiber_entry_fn entry) noexcept {
  c.stack_lo = lo;
  c.stack_size = size;
  // The entry trampoline receives the transfer and hands over to the typed entry.
  static_assert(sizeof(transfer) == sizeof(bctx::transfer_t) &&
                alignof(transfer) == alignof(bctx::transfer_t));
  c.fctx = bctx::make_fcontext(static_cast<char*>(lo) + size, size,
                               reinterpret_cast<void (*)(bctx::transfer_t)>(
                                   reinterpret_cast<void (*)()>(entry)));
#if defined(WEFT_TSAN)
  c.tsan_fiber = __tsan_create_fiber(0);
  c.owns_tsan_fiber = true;
#endif
}

void context_init_thread(context& c) noexcept {
  c = context{};
#if defined(WEFT_TSAN)
  c.tsan_fiber = __tsan_get_current_fiber();
#endif
}

void context_destroy(context& c) noexcept {
#if defined(WEFT_TSAN)
  if (c.owns_tsan_fiber) __tsan_destroy_fiber(c.tsan_fiber);
#endif
  c = context{};
}

context* context_first_landing(transfer first) noexcept {
  tsan_ignore_begin();  // step 1: a fresh fiber's internal scope (closed around its tasks)
  auto* prev = static_cast<context*>(first.data);
  prev->fctx = first.fctx;
#if defined(WEFT_ASAN)
  const void* lo = nullptr;
  std::size_t size = 0;
  __sanitizer_finish_switch_fiber(nullptr, &lo, &size);
  prev->stack_lo = lo;
  prev->stack_size = size;
#endif
  return prev;
}

}  // namespace weft::detail
