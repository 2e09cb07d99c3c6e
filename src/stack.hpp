// src/stack.hpp - guarded, mmap'd fiber stacks and the stack-overflow report.
//
//   high  +---------------------------+ <- base + map_size
//         | fiber record (fiber_impl) |   placed by the worker at the top
//         | usable stack, grows down  |
//   lo -> +---------------------------+
//         | guard: no access          |   guard_size bytes (whole pages)
//   base->+---------------------------+
//
// Guard pages are installed with madvise(MADV_GUARD_INSTALL) where the kernel has it
// (Linux 6.13+: no extra VMA, so adjacent stacks stay one mapping), else with mprotect,
// which splits the mapping: each stack then costs 2 VMAs and vm.max_map_count (65530 by
// default) caps the process near 32K stacks (docs/platform.md, guard pages).
#pragma once

#include <cstddef>
#include <cstdint>

namespace weft::detail {

struct stack {
  void* base = nullptr;       // start of the mapping (= start of the guard)
  std::size_t map_size = 0;   // guard + usable
  void* lo = nullptr;         // lowest usable byte (just above the guard)
  std::size_t size = 0;       // usable bytes
  bool in_arena = false;      // carved from a stack_arenas mapping: never unmapped alone
  std::uintptr_t guard_lo() const noexcept { return reinterpret_cast<std::uintptr_t>(base); }
  std::uintptr_t guard_hi() const noexcept { return reinterpret_cast<std::uintptr_t>(lo); }
};

// Smallest usable stack accepted by scheduler::options.
inline constexpr std::size_t min_stack_size = 16 * 1024;

std::size_t page_size() noexcept;
std::size_t round_to_pages(std::size_t n) noexcept;

// Maps a stack with `usable` bytes (already rounded) above a `guard`-byte guard. Throws
// std::system_error whose message names the failing call and, when the mapping limit is
// the likely cause, vm.max_map_count and the current map count.
stack stack_allocate(std::size_t usable, std::size_t guard);
// Test seam (fault injection): after `n` more successful allocations, the following ones
// fail with ENOMEM as if mmap had failed; n < 0 turns it off. Any thread.
void stack_inject_failure_after(long n) noexcept;
// Unmaps it (unpoisons it first under ASan so reused addresses start clean). A stack
// carved from an arena (in_arena) is only unpoisoned: its arena unmaps it
// (stack_arena.hpp). Any thread.
void stack_release(const stack& s) noexcept;
// Installs `guard` bytes of guard at base (MADV_GUARD_INSTALL, else mprotect PROT_NONE);
// false with errno set when it fails. Any thread.
bool stack_install_guard(void* base, std::size_t guard) noexcept;
// Installs the guards of n stacks at first, first + stride, ...: one process_madvise call
// for the lot where the kernel takes MADV_GUARD_INSTALL through it (Linux 6.14+), else
// stack_install_guard each. Returns how many stacks from the first have their guard; when
// fewer than n, errno is the failure's. Any thread.
std::size_t stack_install_guards(char* first, std::size_t stride, std::size_t guard,
                                 std::size_t n) noexcept;
// Fault injection for carved stacks (stack_inject_failure_after): how many of n new
// stacks may still be created (n when off); consumes them. Any thread.
std::size_t stack_injection_allows(std::size_t n) noexcept;
// Throws the std::system_error stack_allocate throws for a failed `call` with errno err.
[[noreturn]] void throw_stack_error(const char* call, int err);
// True when guards are installed with MADV_GUARD_INSTALL (probed once).
bool guard_without_vma() noexcept;
// How many more guarded stacks the VMA limit allows, with a reserve left for threads and
// malloc; SIZE_MAX when guards cost no VMA.
std::size_t stack_cap_from_map_count() noexcept;

// Installs the process-wide SIGSEGV handler once (chaining to the previous one) and an
// alternate signal stack for the calling thread. Call on every worker thread.
void install_overflow_handler_for_this_thread();
// Frees the calling thread's alternate signal stack (before the thread exits).
void remove_overflow_handler_for_this_thread() noexcept;

// Implemented by the worker: if the calling thread is running a fiber, fills the guard
// range, usable size and fiber id of that fiber's stack. Async-signal-safe.
bool current_fiber_guard(std::uintptr_t& guard_lo, std::uintptr_t& guard_hi,
                         std::size_t& usable, std::uint64_t& fiber_id) noexcept;

}  // namespace weft::detail
