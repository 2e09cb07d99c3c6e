// weft/thread_annotations.hpp - Clang thread-safety analysis attributes (-Wthread-safety).
//
// weft::mutex is annotated as a capability, so code built with clang and -Wthread-safety
// can declare what it guards and have the compiler check it:
//
//   weft::mutex mu;
//   int balance WEFT_GUARDED_BY(mu);
//   void deposit(int n) { mu.lock(); balance += n; mu.unlock(); }  // checked
//   void oops(int n) { balance += n; }  // warning: writing 'balance' requires holding 'mu'
//
// The analysis sees through a guard only when the guard is annotated: libc++'s are with
// _LIBCPP_ENABLE_THREAD_SAFETY_ANNOTATIONS, libstdc++'s never are; otherwise call lock()
// and unlock() directly or write a small guard marked WEFT_SCOPED_CAPABILITY. The macros
// expand to nothing on compilers other than clang.
#pragma once

#if defined(__clang__) && !defined(SWIG)
#define WEFT_THREAD_ANNOTATION_(x) __attribute__((x))
#else
#define WEFT_THREAD_ANNOTATION_(x)
#endif

#define WEFT_CAPABILITY(x) WEFT_THREAD_ANNOTATION_(capability(x))
#define WEFT_SCOPED_CAPABILITY WEFT_THREAD_ANNOTATION_(scoped_lockable)
#define WEFT_GUARDED_BY(x) WEFT_THREAD_ANNOTATION_(guarded_by(x))
#define WEFT_PT_GUARDED_BY(x) WEFT_THREAD_ANNOTATION_(pt_guarded_by(x))
#define WEFT_REQUIRES(...) WEFT_THREAD_ANNOTATION_(requires_capability(__VA_ARGS__))
#define WEFT_EXCLUDES(...) WEFT_THREAD_ANNOTATION_(locks_excluded(__VA_ARGS__))
#define WEFT_ACQUIRE(...) WEFT_THREAD_ANNOTATION_(acquire_capability(__VA_ARGS__))
#define WEFT_RELEASE(...) WEFT_THREAD_ANNOTATION_(release_capability(__VA_ARGS__))
#define WEFT_TRY_ACQUIRE(...) WEFT_THREAD_ANNOTATION_(try_acquire_capability(__VA_ARGS__))
#define WEFT_NO_THREAD_SAFETY_ANALYSIS WEFT_THREAD_ANNOTATION_(no_thread_safety_analysis)
