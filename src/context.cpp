// src/context.cpp - the only file that touches Boost.Context's fcontext.
//
// Why raw fcontext and not boost::context::fiber: the final switch of a finishing
// boost::context::fiber happens inside Boost where it cannot be annotated for TSan
// (platform-facts.md 3.1). Our fibers never return from their entry function: a finished
// fiber parks itself in its worker's pool and is destroyed while suspended.
//
// Switch protocol (both directions of every jump):
//   1. TSan: __tsan_switch_to_fiber(to, 0) immediately before the jump, in this frame;
//      flags 0 makes every switch a synchronisation point (no false reports on handoffs).
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
#include "context.hpp"

#include "sanitizers.hpp"

#include <boost/context/detail/fcontext.hpp>

namespace weft::detail {

namespace bctx = boost::context::detail;

namespace {

// Switch protocol step 4. Equivalent to bctx::jump_fcontext(to, data): the return address
// is pushed by hand and jump_fcontext is entered with jmp, so it saves and restores exactly
// the frame a call would have made (return address at 0x38 above its save area).
inline bctx::transfer_t jump(bctx::fcontext_t to, void* data) noexcept {
// Not with AVX-512 code generation (zmm16-31 and k1-k7 are caller-saved too and are not
// in the clobber list below) nor with CET shadow stacks (the hand-made return address
// would not be on the shadow stack): those builds keep the plain call.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__AVX512F__) && \
    !(defined(__CET__) && (__CET__ & 2))
  void* rdi = to;    // in: target context; clobbered
  void* rsi = data;  // in: handed to the resumed side; clobbered
  void* fctx;        // out (rax): the context that resumed us
  void* vp;          // out (rdx): the data it passed
  asm volatile(
      "lea -128(%%rsp), %%rsp\n\t"  // step over the red zone: a leaf may keep data there
      "lea 1f(%%rip), %%rax\n\t"
      "push %%rax\n\t"              // our return address, where call would put it
      "jmp jump_fcontext@PLT\n\t"
      "1:\n\t"                        // resumed here by jump_fcontext's jmp *%r8
      "lea 128(%%rsp), %%rsp\n\t"
      : "=a"(fctx), "=d"(vp), "+D"(rdi), "+S"(rsi)
      :
      // Everything the SysV ABI lets a called function change (jump_fcontext restores the
      // callee-saved registers, MXCSR and the x87 control word of the resumed side).
      : "rcx", "r8", "r9", "r10", "r11", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5",
        "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14",
        "xmm15", "st", "st(1)", "st(2)", "st(3)", "st(4)", "st(5)", "st(6)", "st(7)",
        "memory", "cc");
  return bctx::transfer_t{fctx, vp};
#else
  return bctx::jump_fcontext(to, data);
#endif
}

}  // namespace

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

context* switch_context(context& from, context& to) noexcept {
#if defined(WEFT_ASAN)
  __sanitizer_start_switch_fiber(&from.asan_fake_stack, to.stack_lo, to.stack_size);
#endif
#if defined(WEFT_TSAN)
  __tsan_switch_to_fiber(to.tsan_fiber, 0);
#endif
  bctx::transfer_t t = jump(to.fctx, &from);
  auto* prev = static_cast<context*>(t.data);
  prev->fctx = t.fctx;
#if defined(WEFT_ASAN)
  const void* lo = nullptr;
  std::size_t size = 0;
  __sanitizer_finish_switch_fiber(from.asan_fake_stack, &lo, &size);
  prev->stack_lo = lo;
  prev->stack_size = size;
#endif
  return prev;
}

context* context_first_landing(transfer first) noexcept {
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
