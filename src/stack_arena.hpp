// src/stack_arena.hpp - fiber stacks carved from large mappings (arenas), so that a
// million short-lived fibers cost a few hundred mmaps, not a million mmap/munmap pairs.
//
//   arena (one mmap, stacks_per_arena slots, carved bottom up, never unmapped alone)
//   +-------+-----------------+-------+-----------------+----   ----+----------------+
//   | guard | usable, slot 0  | guard | usable, slot 1  |   ...     | not carved yet |
//   +-------+-----------------+-------+-----------------+----   ----+----------------+
//   ^ base                                                 next_ -> ^
//
// Stack lifecycle (the protocol; runtime.hpp "Fiber depot" and worker.cpp fiber_for hold
// the other half):
//   1. carve: a worker whose pool and the depot are empty takes up to a batch of slots
//      from the current arena under mu_ (a bump pointer: one lock per batch, not per
//      stack) and installs the slots' guards after unlocking (one process_madvise for
//      the batch where the kernel allows it: stack_install_guards). A full arena is
//      followed by a new mapping, taken under the same lock (once per stacks_per_arena
//      stacks).
//   2. use: the worker builds a fiber record at the top of the slot (first touch: one
//      page of RSS per parked fiber, as with one mapping per stack).
//   3. recycle: a finished fiber stays suspended in its worker's pool, or moves to the
//      runtime's depot in batches. No syscall: the stack keeps its pages.
//   4. purge: idle depot stacks beyond the policy's watermark lose their fiber record and
//      their pages (madvise(MADV_DONTNEED), adjacent stacks coalesced into one call); the
//      slot stays carved, its guard stays installed (guard markers survive
//      MADV_DONTNEED; an mprotect guard is a protection, which madvise does not change),
//      and step 2 runs again on reuse.
//   5. release: ~stack_arenas unmaps every arena once no fiber can run (after the workers
//      were joined and the depot's fibers destroyed).
// Invariants: a slot is carved at most once; carved() only grows; every carved slot is in
// exactly one of: a live fiber, a worker's pool or fresh list, the depot (hot or purged),
// or lost (its guard could not be installed: address space only, never touched).
//
// Guards: MADV_GUARD_INSTALL (Linux 6.13+) adds no VMA, so a 10^6-stack process keeps a
// flat /proc/self/maps. The mprotect fallback splits the arena at every guard: each
// carved stack costs 2 VMAs exactly as a mapping per stack did, and the live-fiber cap
// from vm.max_map_count (stack_cap_from_map_count) stays the limit (docs/platform.md,
// guard pages).
//
// Rejected: a mapping per stack (mmap + guard + munmap per fiber beyond the cache: 10^6
// parked fibers took 14.6 s to spawn and 13.1 s to finish, each munmap a TLB shootdown);
// munmap of a whole arena when all its slots are idle (needs per-arena counts on the
// recycle path; purging returns the memory, only address space is kept).
#pragma once

#include "stack.hpp"

#include <atomic>
#include <cstddef>
#include <mutex>
#include <vector>

namespace weft::detail {

class stack_arenas {
public:
  // Slots of `usable` bytes (page multiple) above `guard` bytes (page multiple).
  stack_arenas(std::size_t usable, std::size_t guard) noexcept;
  // Unmaps every arena. No stack carved from them may be in use any more.
  ~stack_arenas();
  stack_arenas(const stack_arenas&) = delete;
  stack_arenas& operator=(const stack_arenas&) = delete;

  // Step 1: up to n fresh guarded stacks into out; returns how many (>= 1). Throws
  // std::system_error naming the failing call (mmap, or the guard's madvise/mprotect with
  // the VMA count when that is the likely cause). Any thread.
  std::size_t carve(stack* out, std::size_t n);
  // Stacks carved so far. Any thread; relaxed (a size for reservations and tests).
  std::size_t carved() const noexcept { return carved_.load(std::memory_order_relaxed); }
  std::size_t arena_count() noexcept;  // for tests and benchmarks
  std::size_t stacks_per_arena() const noexcept { return per_arena_; }

private:
  struct arena {
    char* base;
    std::size_t bytes;
  };
  const std::size_t usable_, guard_, slot_, per_arena_;
  std::mutex mu_;
  std::vector<arena> arenas_;  // guarded by mu_
  char* next_ = nullptr;       // guarded by mu_: the current arena's first uncarved slot
  std::size_t left_ = 0;       // guarded by mu_: uncarved slots in the current arena
  // Written under mu_ by carve, read anywhere. relaxed: a count; nothing is published.
  std::atomic<std::size_t> carved_{0};
};

// Step 4: returns the pages of n idle stacks to the OS (madvise MADV_DONTNEED over each
// usable range; ranges that touch are merged into one call). Under ASan the ranges are
// unpoisoned first. The caller has destroyed whatever lived on them. Any thread.
void stacks_purge(stack* s, std::size_t n) noexcept;

}  // namespace weft::detail
