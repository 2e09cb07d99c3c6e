// src/peer_queue.hpp - the cross-thread queue behind the injection queue (outside spawns,
// ring spills) and each worker's remote queue (fibers woken from other threads).
//
// Normally moodycamel::ConcurrentQueue. Built with WEFT_CHECKED_QUEUE it is a mutex and a
// deque instead: moodycamel's std::atomic_thread_fence sites are invisible to TSan, which
// forces the one suppression in tsan.supp; the checked queue lets a TSan build run with no
// suppression at all (the `tsan-checked` preset), so that suppression cannot hide a race
// of ours. Same contract either way: not linearizable from the idle protocol's point of
// view (an empty try_dequeue_bulk never justifies parking; the counts in worker/runtime
// do), and enqueue reports allocation failure instead of throwing.
#pragma once

#include <cstddef>

#if defined(WEFT_CHECKED_QUEUE)
#include <deque>
#include <mutex>
#include <new>
#else
#include <concurrentqueue/concurrentqueue.h>
#endif

namespace weft::detail {

#if defined(WEFT_CHECKED_QUEUE)

template <class T>
class peer_queue {
public:
  explicit peer_queue(std::size_t = 0) {}
  // Any thread. False when memory ran out (nothing was queued).
  bool enqueue(T v) noexcept { return enqueue_bulk(&v, 1); }
  bool enqueue_bulk(const T* v, std::size_t n) noexcept {
    try {
      std::lock_guard<std::mutex> g(mu_);
      q_.insert(q_.end(), v, v + n);
      return true;
    } catch (...) {
      return false;
    }
  }
  // Any thread. Moves up to max items to out; returns how many.
  std::size_t try_dequeue_bulk(T* out, std::size_t max) noexcept {
    std::lock_guard<std::mutex> g(mu_);
    std::size_t n = 0;
    for (; n < max && !q_.empty(); ++n) {
      out[n] = q_.front();
      q_.pop_front();
    }
    return n;
  }

private:
  std::mutex mu_;
  std::deque<T> q_;  // guarded by mu_
};

#else

template <class T>
class peer_queue {
public:
  explicit peer_queue(std::size_t initial = 64) : q_(initial) {}
  bool enqueue(T v) noexcept { return q_.enqueue(v); }
  bool enqueue_bulk(const T* v, std::size_t n) noexcept { return q_.enqueue_bulk(v, n); }
  std::size_t try_dequeue_bulk(T* out, std::size_t max) noexcept {
    return q_.try_dequeue_bulk(out, max);
  }

private:
  moodycamel::ConcurrentQueue<T> q_;
};

#endif

}  // namespace weft::detail
