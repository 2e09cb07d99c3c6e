// src/stack_arena.cpp - see stack_arena.hpp for the layout and the stack lifecycle.
#include "stack_arena.hpp"

#include "sanitizers.hpp"

#include <algorithm>
#include <cerrno>
#include <sys/mman.h>

namespace weft::detail {

namespace {

// Address space per arena. Slots are reserved, not committed (MAP_NORESERVE; RSS is only
// what fibers touch), so the size only trades mmaps against address space a small
// scheduler never uses: 64 MiB is ~960 default stacks (64 KiB + a 4 KiB guard), so 10^6
// fibers need ~1,050 mmaps; an idle scheduler reserves 64 MiB of its 128 TiB.
constexpr std::size_t arena_bytes = std::size_t{64} << 20;
constexpr std::size_t min_per_arena = 8;

}  // namespace

stack_arenas::stack_arenas(std::size_t usable, std::size_t guard) noexcept
    : usable_(usable), guard_(guard), slot_(usable + guard),
      per_arena_(std::max(min_per_arena, arena_bytes / (usable + guard))) {}

stack_arenas::~stack_arenas() {
  for (const arena& a : arenas_) {
#if defined(WEFT_ASAN)
    // Frames of fibers destroyed while suspended stay poisoned; a later mapping at these
    // addresses must start clean (docs/platform.md, ASan).
    ASAN_UNPOISON_MEMORY_REGION(a.base, a.bytes);
#endif
    munmap(a.base, a.bytes);
  }
}

std::size_t stack_arenas::arena_count() noexcept {
  std::lock_guard<std::mutex> g(mu_);
  return arenas_.size();
}

std::size_t stack_arenas::carve(stack* out, std::size_t n) {
  n = stack_injection_allows(n);
  if (n == 0) throw_stack_error("mmap", ENOMEM);  // as a failed arena mapping would
  char* first = nullptr;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (left_ == 0) {
      const std::size_t bytes = slot_ * per_arena_;
      arenas_.reserve(arenas_.size() + 1);  // may throw: before the mapping, which would leak
      void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
      if (p == MAP_FAILED) throw_stack_error("mmap", errno);
      arenas_.push_back({static_cast<char*>(p), bytes});
      next_ = static_cast<char*>(p);
      left_ = per_arena_;
    }
    n = std::min(n, left_);
    first = next_;
    next_ += n * slot_;
    left_ -= n;
    carved_.store(carved_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  // Step 1, outside the lock: the guards, one syscall for the batch where the kernel
  // allows it (stack_install_guards).
  const std::size_t k = stack_install_guards(first, slot_, guard_, n);
  if (k == 0)
    throw_stack_error(guard_without_vma() ? "madvise (guard page)" : "mprotect (guard page)",
                      errno);
  // Stacks from k on are lost when k < n: these k are fine (header).
  for (std::size_t i = 0; i < k; ++i) {
    char* base = first + i * slot_;
    stack& s = out[i];
    s.base = base;
    s.map_size = slot_;
    s.lo = base + guard_;
    s.size = usable_;
    s.in_arena = true;
  }
  return k;
}

void stacks_purge(stack* s, std::size_t n) noexcept {
  if (n == 0) return;
  std::sort(s, s + n, [](const stack& a, const stack& b) { return a.base < b.base; });
  char* lo = static_cast<char*>(s[0].lo);
  char* hi = lo + s[0].size;
  for (std::size_t i = 0; i <= n; ++i) {
    if (i < n) {
#if defined(WEFT_ASAN)
      ASAN_UNPOISON_MEMORY_REGION(s[i].lo, s[i].size);
#endif
      // Neighbours in one arena: the guard between them goes into the same call (guard
      // markers and PROT_NONE survive MADV_DONTNEED; the guard has no pages to drop).
      if (i > 0 && static_cast<char*>(s[i].base) == hi) {
        hi = static_cast<char*>(s[i].lo) + s[i].size;
        continue;
      }
      if (i == 0) continue;
    }
    // Best effort: a failure (none is expected on a private anonymous range) only keeps RSS.
    (void)madvise(lo, static_cast<std::size_t>(hi - lo), MADV_DONTNEED);
    if (i < n) {
      lo = static_cast<char*>(s[i].lo);
      hi = lo + s[i].size;
    }
  }
}

}  // namespace weft::detail
