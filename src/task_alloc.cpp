// src/task_alloc.cpp - small-block allocator for task objects (spawn's one allocation).
//
// Why: a spawn allocates one task and, usually on another worker, frees it. With glibc,
// a free on another thread returns the block to the allocating thread's arena under that
// arena's lock, which the spawner holds for its own mallocs: in W1 (one fiber spawns a
// million) malloc/free were ~30% of the time. Here every thread keeps per-size-class
// free lists (LIFO, so a block freed hot is reused hot) and trades whole batches with a
// global depot under a mutex, so the common path takes no lock and no atomic.
//
//   1. task_alloc(n): n is rounded up to a class (32, 64, 96, ... 256 bytes); larger
//      tasks use ::operator new. Pop the calling thread's stack of free blocks; if empty, take
//      one batch from the depot, else carve a new 64 KiB chunk.
//   2. task_free(p, n): push on the calling thread's stack; when it is full, hand the
//      older half to the depot as one batch. A thread's blocks go to the depot when it
//      exits.
//   3. Chunks are never returned to the OS: memory is bounded by the peak number of live
//      tasks (96 MiB for a million 96-byte tasks) and reused after that.
// Classes are 32 bytes apart, not 64: a task is its 64-byte header (task.hpp) plus the
// callable, its arguments and the result slot, so the common small tasks are 72-104
// bytes (W1's 88, a skynet node's 104). With 64-byte steps an 88-byte task took 128;
// with 32-byte steps 96, a quarter less memory for W1's million live tasks. Measured on
// W1 at 1 worker (1,000,000 spawns, 7 repetitions, 5 interleaved runs on a loaded
// 2-vCPU VM): worker-thread CPU 67.5 -> 57.1 ns per spawn (medians of the runs), wall
// 131 -> 118 ns, together with the two call-site checks in spawn_here and run_task;
// those alone: 67.5 -> 65.1 ns. At 2 workers, wall 240 -> 218 ns. callgrind (100,000
// spawns): L1 data misses -20% (read and write).

// The free blocks are kept as arrays of pointers, not as a list through the blocks: the
// blocks are cold (freed long ago, often by another core, W1's stolen children), and a
// list made every pop wait for the previous block's next pointer (task_alloc was 27% of
// W1's samples, 55% of it on that load). From an array, the pop prefetches the block it
// will hand out a few spawns later, so those misses overlap.
// Sanitizer builds use ::operator new directly, so ASan and TSan see every task's
// lifetime (use-after-free and races on freed tasks stay detectable).
// Benchmark workloads cited here (W1): docs/benchmarks.md.
#include "sanitizers.hpp"

#include <weft/detail/task.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <mutex>
#include <new>
#include <vector>

namespace weft::detail {
namespace {

constexpr std::size_t class_size = 32, class_count = 8;
constexpr std::size_t batch = 64, stack_cap = 2 * batch;  // a thread keeps up to 2 batches
[[maybe_unused]] constexpr std::size_t prefetch_distance = 4;  // not in sanitizer builds
constexpr std::size_t chunk_bytes = 64 * 1024;

struct batch_of_blocks {
  void* p[batch];
  std::size_t n;
};

struct depot {
  std::mutex mu;
  std::vector<batch_of_blocks> batches[class_count];
};
depot& the_depot() {
  static depot* d = new depot;  // never destroyed: threads may free tasks during exit
  return *d;
}

struct free_stack {
  void* p[stack_cap];
  std::size_t n = 0;
};

// Per thread, on the heap: only a pointer is in (initial-exec) TLS, so a dlopen'ed
// libweft does not eat the static TLS surplus.
struct class_stacks {
  free_stack c[class_count];

  void give_batch(std::size_t k, std::size_t from, std::size_t n) {
    batch_of_blocks b;
    std::copy(c[k].p + from, c[k].p + from + n, b.p);
    b.n = n;
    std::lock_guard<std::mutex> g(the_depot().mu);
    the_depot().batches[k].push_back(b);
  }
  void refill(std::size_t k) {
    free_stack& s = c[k];
    {
      std::lock_guard<std::mutex> g(the_depot().mu);
      auto& v = the_depot().batches[k];
      if (!v.empty()) {
        const batch_of_blocks& b = v.back();
        s.n = std::copy(b.p, b.p + b.n, s.p) - s.p;
        v.pop_back();
        return;
      }
    }
    const std::size_t size = class_size * (k + 1);
    auto* chunk = static_cast<char*>(::operator new(chunk_bytes));
    // A batch at a time; the rest of the chunk goes to the depot for later refills.
    std::size_t off = 0;
    for (; off + size <= chunk_bytes && s.n < batch; off += size) s.p[s.n++] = chunk + off;
    std::lock_guard<std::mutex> g(the_depot().mu);
    while (off + size <= chunk_bytes) {
      batch_of_blocks b;
      b.n = 0;
      for (; off + size <= chunk_bytes && b.n < batch; off += size) b.p[b.n++] = chunk + off;
      the_depot().batches[k].push_back(b);
    }
  }
};

struct thread_cache {
  class_stacks* s = nullptr;
  ~thread_cache() {
    if (!s) return;
    for (std::size_t k = 0; k < class_count; ++k)
      for (std::size_t from = 0; from < s->c[k].n; from += batch)
        s->give_batch(k, from, std::min(batch, s->c[k].n - from));
    delete s;
    s = nullptr;
  }
};

__attribute__((tls_model("initial-exec"))) thread_local thread_cache cache;

// Test seam (task_alloc_inject_failure_after): allocations left before they fail, or -1.
// relaxed: tests set it while no other thread spawns.
std::atomic<long> inject_countdown{-1};

}  // namespace

void task_alloc_inject_failure_after(long n) noexcept {
  inject_countdown.store(n, std::memory_order_relaxed);
}

void* task_alloc(std::size_t n) {
  if (long c = inject_countdown.load(std::memory_order_relaxed); __builtin_expect(c >= 0, 0)) {
    if (c == 0) throw std::bad_alloc();
    inject_countdown.store(c - 1, std::memory_order_relaxed);
  }
#if defined(WEFT_ASAN) || defined(WEFT_TSAN)
  return ::operator new(n);
#else
  const std::size_t c = (n + class_size - 1) / class_size - 1;
  if (c >= class_count) return ::operator new(n);
  if (__builtin_expect(!cache.s, 0)) cache.s = new class_stacks;
  free_stack& st = cache.s->c[c];
  if (st.n == 0) cache.s->refill(c);
  void* b = st.p[--st.n];
  // Start loading the block handed out prefetch_distance spawns from now (write intent:
  // the task's constructor writes it).
  if (st.n >= prefetch_distance) __builtin_prefetch(st.p[st.n - prefetch_distance], 1);
  return b;
#endif
}

void task_free(void* p, std::size_t n) noexcept {
#if defined(WEFT_ASAN) || defined(WEFT_TSAN)
  (void)n;
  ::operator delete(p);  // unsized: clang does not declare sized delete by default
#else
  const std::size_t c = (n + class_size - 1) / class_size - 1;
  if (c >= class_count) {
    ::operator delete(p);  // unsized: clang does not declare sized delete by default
    return;
  }
  if (__builtin_expect(!cache.s, 0)) cache.s = new class_stacks;  // a thread that only frees
  free_stack& st = cache.s->c[c];
  if (st.n == stack_cap) {
    // Full: the older half goes to the depot, the recently freed (hot) half stays.
    cache.s->give_batch(c, 0, batch);
    std::copy(st.p + batch, st.p + stack_cap, st.p);
    st.n = stack_cap - batch;
  }
  st.p[st.n++] = p;
#endif
}

}  // namespace weft::detail
