// src/task_alloc.cpp - small-block allocator for task objects (spawn's one allocation).
//
// Why: a spawn allocates one task and, usually on another worker, frees it. With glibc,
// a free on another thread returns the block to the allocating thread's arena under that
// arena's lock, which the spawner holds for its own mallocs: in W1 (one fiber spawns a
// million) malloc/free were ~30% of the time. Here every thread keeps per-size-class
// free lists (LIFO, so a block freed hot is reused hot) and trades whole batches with a
// global depot under a mutex, so the common path takes no lock and no atomic.
//
//   1. task_alloc(n): n is rounded up to a class (64, 128, 192, 256 bytes); larger tasks
//      use ::operator new. Pop the calling thread's list; if empty, take one batch from
//      the depot, else carve a new 64 KiB chunk.
//   2. task_free(p, n): push on the calling thread's list; past 2 batches, hand one batch
//      to the depot. A thread's lists go to the depot when it exits.
//   3. Chunks are never returned to the OS: memory is bounded by the peak number of live
//      tasks (64 MiB for a million 64-byte tasks) and reused after that.
// Sanitizer builds use ::operator new directly, so ASan and TSan see every task's
// lifetime (use-after-free and races on freed tasks stay detectable).
#include "sanitizers.hpp"

#include <weft/detail/task.hpp>

#include <cstddef>
#include <cstdlib>
#include <mutex>
#include <new>
#include <vector>

namespace weft::detail {
namespace {

constexpr std::size_t class_size = 64, class_count = 4, batch = 64;
constexpr std::size_t chunk_bytes = 64 * 1024;

struct block {
  block* next;
};

struct batch_list {
  block* head = nullptr;
  std::size_t n = 0;
};

struct depot {
  std::mutex mu;
  std::vector<batch_list> batches[class_count];  // lists with their lengths
};
depot& the_depot() {
  static depot* d = new depot;  // never destroyed: threads may free tasks during exit
  return *d;
}

struct thread_cache {
  batch_list lists[class_count];
  ~thread_cache() {
    for (std::size_t c = 0; c < class_count; ++c) {
      while (lists[c].n >= batch) give_batch(c);
      if (lists[c].head) {  // the remainder goes over as a shorter list
        std::lock_guard<std::mutex> g(the_depot().mu);
        the_depot().batches[c].push_back(lists[c]);
        lists[c] = batch_list{};
      }
    }
  }
  void give_batch(std::size_t c) {
    batch_list& l = lists[c];
    block* head = l.head;
    block* tail = head;
    for (std::size_t i = 1; i < batch; ++i) tail = tail->next;
    l.head = tail->next;
    l.n -= batch;
    tail->next = nullptr;
    std::lock_guard<std::mutex> g(the_depot().mu);
    the_depot().batches[c].push_back(batch_list{head, batch});
  }
  void refill(std::size_t c) {
    batch_list& l = lists[c];
    {
      std::lock_guard<std::mutex> g(the_depot().mu);
      auto& v = the_depot().batches[c];
      if (!v.empty()) {
        l = v.back();  // the length travels with the list: no walk over cold blocks
        v.pop_back();
        return;
      }
    }
    const std::size_t size = class_size * (c + 1);
    auto* chunk = static_cast<char*>(::operator new(chunk_bytes));
    for (std::size_t off = 0; off + size <= chunk_bytes; off += size) {
      auto* b = reinterpret_cast<block*>(chunk + off);
      b->next = l.head;
      l.head = b;
      ++l.n;
    }
  }
};

__attribute__((tls_model("initial-exec"))) thread_local thread_cache cache;

}  // namespace

void* task_alloc(std::size_t n) {
#if defined(WEFT_ASAN) || defined(WEFT_TSAN)
  return ::operator new(n);
#else
  const std::size_t c = (n + class_size - 1) / class_size - 1;
  if (c >= class_count) return ::operator new(n);
  batch_list& l = cache.lists[c];
  if (!l.head) cache.refill(c);
  block* b = l.head;
  l.head = b->next;
  --l.n;
  // The list is a chain of blocks freed long ago (cold, often by another core): start
  // loading the next one now, for the next spawn, instead of missing on it then. Write
  // intent: the task's constructor writes it.
  __builtin_prefetch(l.head, 1);
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
  batch_list& l = cache.lists[c];
  auto* b = static_cast<block*>(p);
  b->next = l.head;
  l.head = b;
  if (++l.n >= 2 * batch) cache.give_batch(c);
#endif
}

}  // namespace weft::detail
