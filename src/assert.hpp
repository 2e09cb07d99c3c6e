// src/assert.hpp - contract checks. WEFT_ASSERT is always on: a broken contract that
// cannot be recovered prints what was violated and aborts (never UB, never a hang).
// WEFT_DCHECK compiles away in release builds (NDEBUG) and guards internal invariants.
#pragma once

namespace weft::detail {
[[noreturn]] void contract_violation(const char* what, const char* file, int line) noexcept;
}

#define WEFT_ASSERT(cond, what)                                                 \
  do {                                                                          \
    if (__builtin_expect(!(cond), 0))                                           \
      ::weft::detail::contract_violation((what), __FILE__, __LINE__);           \
  } while (0)

#ifdef NDEBUG
#define WEFT_DCHECK(cond, what) \
  do {                          \
  } while (0)
#else
#define WEFT_DCHECK(cond, what) WEFT_ASSERT(cond, what)
#endif
