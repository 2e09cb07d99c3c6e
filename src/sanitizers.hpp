// src/sanitizers.hpp - detects ASan/TSan (g++ defines __SANITIZE_*__, clang 14 only answers
// __has_feature) and pulls in their fiber interfaces. context.cpp is the only user of the
// switch hooks; stack.cpp uses the ASan poisoning calls.
#pragma once

#if defined(__SANITIZE_ADDRESS__)
#define WEFT_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define WEFT_TSAN 1
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer) && !defined(WEFT_ASAN)
#define WEFT_ASAN 1
#endif
#if __has_feature(thread_sanitizer) && !defined(WEFT_TSAN)
#define WEFT_TSAN 1
#endif
#endif

#if defined(WEFT_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(WEFT_TSAN)
#include <sanitizer/tsan_interface.h>
#endif

namespace weft::detail {
// Sanitizers use far more stack per frame: stacks are multiplied by this (folly does too).
#if defined(WEFT_ASAN) || defined(WEFT_TSAN)
inline constexpr unsigned sanitizer_stack_multiplier = 4;
#else
inline constexpr unsigned sanitizer_stack_multiplier = 1;
#endif
}  // namespace weft::detail
