// src/context_switch.hpp - switch_context, inline so that the worker's switch_to (the
// only caller) makes no extra call per switch (W3 yield: ~10 instructions of a ~140 per
// switch). The protocol it follows is written at the top of context.cpp; the TSan and ASan
// hooks stay in the same frame as the jump, as docs/platform.md (TSan) requires.
// Benchmark workloads cited here (W3): docs/benchmarks.md.
#pragma once

#include "context.hpp"
#include "sanitizers.hpp"
#include "tsan_scope.hpp"

#include <boost/context/detail/fcontext.hpp>

namespace weft::detail {

namespace bctx = boost::context::detail;

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

inline context* switch_context(context& from, context& to) noexcept {
#if defined(WEFT_ASAN)
  __sanitizer_start_switch_fiber(&from.asan_fake_stack, to.stack_lo, to.stack_size);
#endif
  void* const target = to.fctx;
#if defined(WEFT_TSAN)
  void* const target_fiber = to.tsan_fiber;
  // Step 1: both reads above are the leaving side's; from here to the jump, and from the
  // landing to tsan_ignore_begin(), nothing is instrumented (tsan_scope.hpp step 2).
  tsan_ignore_end();
  __tsan_switch_to_fiber(target_fiber, tsan_switch_flags);
#endif
  bctx::transfer_t t = jump(target, &from);
#if defined(WEFT_TSAN)
  tsan_ignore_begin();
#endif
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

}  // namespace weft::detail
