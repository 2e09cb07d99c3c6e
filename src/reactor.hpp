// src/reactor.hpp - the shared reactor thread of one runtime: timers now, fd readiness
// (epoll) as the I/O layer lands. It never runs user code: it only makes waiters
// runnable again (runtime::wake / thread futex), from timer callbacks.
//
// Timer protocol:
//   1. A timer_entry lives inside its waiter (often on a suspended fiber's stack). arm()
//      inserts it into a binary min-heap keyed by (deadline, seq) under lock_ and wakes
//      the reactor (eventfd) when it became the earliest deadline.
//   2. The reactor sleeps in epoll_pwait2 (nanosecond timeout) until the earliest
//      deadline or an eventfd write; it pops every expired entry and calls entry->fire
//      *while holding lock_*.
//   3. cancel() takes lock_: the entry is either still in the heap (removed; returns true:
//      fire will never run) or fire has already returned (false). So once cancel()
//      returns, the reactor no longer touches the entry and its owner may free it.
//   4. fire must be short and must not call arm/cancel (lock_ is held): it decides a
//      race with a CAS on its waiter's state and wakes the waiter.
// Cost: arm O(log n), cancel O(log n) via the stored heap index; one lock per runtime,
// taken only by timed waits, never by the scheduling fast paths.
//
// Lock order: reactor::lock_ -> idle::lock_ (fire wakes fibers, which may unpark a
// worker). Nothing takes reactor::lock_ while holding idle::lock_.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace weft::detail {

class runtime;

struct timer_entry {
  std::chrono::steady_clock::time_point deadline{};
  void (*fire)(timer_entry*) noexcept = nullptr;  // reactor thread, under lock_
  std::size_t heap_index = npos;                   // guarded by reactor::lock_
  std::uint64_t seq = 0;                           // ties fire in arm order
  static constexpr std::size_t npos = ~std::size_t{0};
};

class reactor {
public:
  explicit reactor(runtime& rt);
  ~reactor();  // stops and joins the thread
  reactor(const reactor&) = delete;
  reactor& operator=(const reactor&) = delete;

  // Any thread. e->deadline and e->fire must be set. A deadline already passed fires on
  // the reactor thread promptly (never inline in the caller).
  void arm(timer_entry* e) noexcept;
  // Any thread. True when the timer was removed before firing (see protocol step 3).
  bool cancel(timer_entry* e) noexcept;
  // Number of armed timers (tests, stats).
  std::size_t pending() const noexcept;

  int epoll_fd() const noexcept { return epfd_; }
  void wake() noexcept;  // interrupts epoll_pwait2 (eventfd)

private:
  void run() noexcept;
  void heap_up(std::size_t i) noexcept;
  void heap_down(std::size_t i) noexcept;
  void heap_remove(std::size_t i) noexcept;
  bool before(const timer_entry* a, const timer_entry* b) const noexcept {
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
  }

  runtime& rt_;
  int epfd_ = -1;
  int evfd_ = -1;
  mutable std::mutex lock_;
  std::vector<timer_entry*> heap_;  // guarded by lock_
  std::uint64_t seq_ = 0;           // guarded by lock_
  // The deadline the reactor is sleeping towards (time_since_epoch count; max = none).
  // Written by the reactor before sleeping (seq_cst), read by arm() after inserting
  // (seq_cst): an arm that sees a later or equal sleep deadline need not wake it.
  std::atomic<std::int64_t> sleeping_until_{INT64_MAX};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace weft::detail
