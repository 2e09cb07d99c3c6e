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

// Per thread, on the heap: only a pointer is in (initial-exec) TLS, so a dlopen'ed
// libweft does not eat the static TLS surplus. Class k's free blocks are p[k][0, n[k]);
// the counts are apart from the arrays so that a class's array is at a power-of-two
// offset (a shift, not a multiply, on every call).
struct class_stacks {
  std::size_t n[class_count] = {};
  void* p[class_count][stack_cap];

  void give_batch(std::size_t k, std::size_t from, std::size_t count) {
    batch_of_blocks b;
    std::copy(p[k] + from, p[k] + from + count, b.p);
    b.n = count;
    std::lock_guard<std::mutex> g(the_depot().mu);
    the_depot().batches[k].push_back(b);
  }
  void refill(std::size_t k) {
    {
      std::lock_guard<std::mutex> g(the_depot().mu);
      auto& v = the_depot().batches[k];
      if (!v.empty()) {
        const batch_of_blocks& b = v.back();
        n[k] = std::copy(b.p, b.p + b.n, p[k]) - p[k];
        v.pop_back();
        return;
      }
    }
    const std::size_t size = class_size * (k + 1);
    auto* chunk = static_cast<char*>(::operator new(chunk_bytes));
    // A batch at a time; the rest of the chunk goes to the depot for later refills.
    std::size_t off = 0;
    for (; off + size <= chunk_bytes && n[k] < batch; off += size) p[k][n[k]++] = chunk + off;
    std::lock_guard<std::mutex> g(the_depot().mu);
    while (off + size <= chunk_bytes) {
      batch_of_blocks b;
      b.n = 0;
      for (; off + size <= chunk_bytes && b.n < batch; off += size) b.p[b.n++] = chunk + off;
      the_depot().batches[k].push_back(b);
    }
  }
};

// The calling thread's stacks, or nullptr before its first task_alloc/task_free. A plain
// pointer, so that the hot path reads it with one %fs-relative load: a thread_local with
// a destructor is reached through its initialization guard (a second TLS access and a
// branch on every call, W1's two calls per spawn).
__attribute__((tls_model("initial-exec"))) thread_local class_stacks* tls_stacks = nullptr;

// Hands the thread's blocks to the depot when the thread exits. Constructed by
// make_stacks(), the first time the thread needs its stacks (that registers the
// destructor), and never touched on the hot path.
struct thread_cache {
  ~thread_cache() {
    class_stacks* s = tls_stacks;
    if (!s) return;
    for (std::size_t k = 0; k < class_count; ++k)
      for (std::size_t from = 0; from < s->n[k]; from += batch)
        s->give_batch(k, from, std::min(batch, s->n[k] - from));
    delete s;
    tls_stacks = nullptr;
  }
};

[[maybe_unused]] __attribute__((noinline, cold)) class_stacks* make_stacks() {
  static thread_local thread_cache owner;  // registers the exit hand-over
  (void)owner;
  tls_stacks = new class_stacks;
  return tls_stacks;
}

// Test seam (task_alloc_inject_failure_after): allocations left before they fail, or -1.
// relaxed: tests set it while no other thread spawns.
std::atomic<long> inject_countdown{-1};

// The paths below are out of line so that task_alloc's and task_free's common paths save
// and restore no registers (W1: two calls per fiber).
[[maybe_unused]] __attribute__((noinline)) void* alloc_slow(std::size_t k) {
  class_stacks* cs = tls_stacks ? tls_stacks : make_stacks();
  if (cs->n[k] == 0) cs->refill(k);
  return cs->p[k][--cs->n[k]];
}

[[maybe_unused]] __attribute__((noinline)) void free_slow(void* b, std::size_t k) noexcept {
  class_stacks* cs = tls_stacks ? tls_stacks : make_stacks();  // a thread that only frees
  if (cs->n[k] == stack_cap) {
    // Full: the older half goes to the depot, the recently freed (hot) half stays.
    cs->give_batch(k, 0, batch);
    std::copy(cs->p[k] + batch, cs->p[k] + stack_cap, cs->p[k]);
    cs->n[k] = stack_cap - batch;
  }
  cs->p[k][cs->n[k]++] = b;
}

}  // namespace

void task_alloc_inject_failure_after(long n) noexcept {
  inject_countdown.store(n, std::memory_order_relaxed);
}

namespace {
inline void* alloc_block(std::size_t n) {
#if defined(WEFT_ASAN) || defined(WEFT_TSAN)
  return ::operator new(n);
#else
  const std::size_t k = (n + class_size - 1) / class_size - 1;
  if (k >= class_count) return ::operator new(n);
  class_stacks* cs = tls_stacks;
  if (__builtin_expect(!cs || cs->n[k] == 0, 0)) return alloc_slow(k);
  const std::size_t left = --cs->n[k];
  // Start loading the block handed out prefetch_distance spawns from now (write intent:
  // the task's constructor writes it).
  if (left >= prefetch_distance) __builtin_prefetch(cs->p[k][left - prefetch_distance], 1);
  return cs->p[k][left];
#endif
}

__attribute__((noinline, cold)) void* alloc_counted(std::size_t n, long c) {
  if (c == 0) throw std::bad_alloc();
  inject_countdown.store(c - 1, std::memory_order_relaxed);
  return alloc_block(n);
}
}  // namespace

void* task_alloc(std::size_t n) {
  // The test seam, counting down (tail calls: the common path saves no register).
  if (long c = inject_countdown.load(std::memory_order_relaxed); __builtin_expect(c >= 0, 0))
    return alloc_counted(n, c);
  return alloc_block(n);
}

void task_free(void* p, std::size_t n) noexcept {
#if defined(WEFT_ASAN) || defined(WEFT_TSAN)
  (void)n;
  ::operator delete(p);  // unsized: clang does not declare sized delete by default
#else
  const std::size_t k = (n + class_size - 1) / class_size - 1;
  if (k >= class_count) {
    ::operator delete(p);  // unsized: clang does not declare sized delete by default
    return;
  }
  class_stacks* cs = tls_stacks;
  if (__builtin_expect(!cs || cs->n[k] == stack_cap, 0)) return free_slow(p, k);
  cs->p[k][cs->n[k]++] = p;
#endif
}

}  // namespace weft::detail
