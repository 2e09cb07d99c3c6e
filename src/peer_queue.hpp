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
//
// Fairness between producers: a plain moodycamel dequeue scans its producer list from
// the same end every time, so one busy producer (the reactor injecting wakes) could
// starve another's items (a worker's ring spill of fresh spawns) indefinitely; W8 saw
// new fibers start 45 ms late that way. Consumers therefore dequeue through a
// `consumer` token, which moves on to the next producer after `rotate_after` items:
// an item waits behind at most rotate_after items of each other producer.
// Benchmark workloads cited here (W8): docs/benchmarks.md.
#pragma once

#include <cstddef>
#include <cstdint>

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
  struct consumer {  // FIFO over all producers already: nothing to rotate
    explicit consumer(peer_queue&) noexcept {}
  };
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
  std::size_t try_dequeue_bulk(consumer&, T* out, std::size_t max) noexcept {
    return try_dequeue_bulk(out, max);
  }

private:
  std::mutex mu_;
  std::deque<T> q_;  // guarded by mu_
};

#else

struct peer_queue_traits : moodycamel::ConcurrentQueueDefaultTraits {
  // One dequeue batch (worker::batch_) per producer, then the next producer's turn.
  static const std::uint32_t EXPLICIT_CONSUMER_CONSUMPTION_QUOTA_BEFORE_ROTATE = 64;
};

template <class T>
class peer_queue {
  using queue = moodycamel::ConcurrentQueue<T, peer_queue_traits>;

public:
  static constexpr std::size_t rotate_after =
      peer_queue_traits::EXPLICIT_CONSUMER_CONSUMPTION_QUOTA_BEFORE_ROTATE;
  class consumer {
  public:
    explicit consumer(peer_queue& q) : tok_(q.q_) {}

  private:
    friend class peer_queue;
    moodycamel::ConsumerToken tok_;
  };
  explicit peer_queue(std::size_t initial = 64) : q_(initial) {}
  bool enqueue(T v) noexcept { return q_.enqueue(v); }
  bool enqueue_bulk(const T* v, std::size_t n) noexcept { return q_.enqueue_bulk(v, n); }
  std::size_t try_dequeue_bulk(T* out, std::size_t max) noexcept {
    return q_.try_dequeue_bulk(out, max);
  }
  std::size_t try_dequeue_bulk(consumer& c, T* out, std::size_t max) noexcept {
    return q_.try_dequeue_bulk(c.tok_, out, max);
  }

private:
  queue q_;
};

#endif

}  // namespace weft::detail
