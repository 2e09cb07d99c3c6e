// src/reactor.hpp - the shared reactor thread of one runtime: timers and fd readiness
// (epoll). It never runs user code: it only makes waiters runnable again (runtime::wake /
// thread futex), from timer callbacks and epoll events. Workers never call epoll_wait.
//
// I/O: fds are registered edge-triggered once (io_desc.hpp protocol step 0); an event's
// user data is (fd << 32 | generation), 0 is the wake eventfd. The reactor looks the fd's
// io_desc up, drops the event when the generation no longer matches (the fd was closed
// and perhaps reused: io_desc.hpp close step c), and unblocks the read slot on
// IN/RDHUP/HUP/ERR and the write slot on OUT/HUP/ERR (step 4). HUP and ERR wake both
// directions so the syscall reports the error or EOF; no event is ever interpreted here.
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
//   5. Wakes issued on the reactor thread while it fires timers or dispatches epoll events
//      (runtime::wake -> defer_wake) are collected and injected in one bulk after lock_
//      is released: one queue operation and at most one unpark per batch instead of one
//      per fiber, and lock_ is held only for heap work. Deferring is safe because a fiber
//      cannot resume before its wake, and fire no longer touches the entry after it
//      returns (step 3 is unchanged).
// Cost: arm O(log n), cancel O(log n) via the stored heap index; one lock per runtime,
// taken only by timed waits, never by the scheduling fast paths. Heap nodes carry their
// key (deadline, seq) inline, so sifting compares within the heap array and never reads
// the entries, which live on thousands of different fiber stacks (cache misses: W8 spent
// most of its reactor time there).
//
// Lock order: reactor::lock_ -> idle::lock_ (fire wakes fibers, which may unpark a
// worker). Nothing takes reactor::lock_ while holding idle::lock_.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include <sys/epoll.h>
#include <time.h>

namespace weft::detail {

class runtime;
struct io_desc;
struct fiber_impl;

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
  // Protocol step 5. Called by runtime::wake() on any thread: true when the caller is rt's
  // reactor thread inside a firing/dispatch batch (f is then queued and woken after it).
  static bool defer_wake(const runtime* rt, fiber_impl* f) noexcept;

  int epoll_fd() const noexcept { return epfd_; }
  void wake() noexcept;  // interrupts epoll_pwait2 (eventfd)

  // ---- I/O (io_desc.hpp). Any thread.
  // Protocol step 0: adds d's fd to this epoll set once (idempotent). Returns the
  // epoll_ctl error (EBADF closed fd, EPERM regular file, EINVAL the epoll fd itself,
  // ENOSPC watch limit), or invalid_argument when another live reactor owns the fd.
  std::error_code register_fd(io_desc& d) noexcept;
  // Close step c: EPOLL_CTL_DEL. Caller holds d.lock_ and d.owner_ == this.
  void unregister_fd(io_desc& d) noexcept;
  // Shutdown hook (scheduler.cpp step 1): from now on every I/O wait of this reactor's
  // fibers ends with operation_canceled; current waiters are woken. Idempotent.
  void cancel_io() noexcept;
  // seq_cst: the flag side of io_desc.hpp step 6, paired with the slot RMW in prepare().
  bool io_cancelled() const noexcept { return io_cancelled_.load(std::memory_order_seq_cst); }

private:
  void run() noexcept;
  int wait_events(epoll_event* events, int max_events, const timespec* tsp) noexcept;
  void dispatch_io(std::uint64_t tag, std::uint32_t events) noexcept;
  void wake_fiber(fiber_impl* f) noexcept;
  std::int64_t fire_expired() noexcept;  // pops and fires due timers; next deadline
  void flush_wakes() noexcept;            // step 5: inject the collected wakes
  struct heap_node {
    std::int64_t when;  // deadline, steady_clock ticks
    std::uint64_t seq;  // arm order: ties fire first-armed first
    timer_entry* e;
    bool operator<(const heap_node& o) const noexcept {
      return when < o.when || (when == o.when && seq < o.seq);
    }
  };
  void place(std::size_t i, const heap_node& n) noexcept {
    heap_[i] = n;
    n.e->heap_index = i;
  }
  void heap_up(std::size_t i, heap_node n) noexcept;
  void heap_down(std::size_t i, heap_node n) noexcept;
  void heap_remove(std::size_t i) noexcept;

  runtime& rt_;
  int epfd_ = -1;
  int evfd_ = -1;
  mutable std::mutex lock_;
  std::vector<heap_node> heap_;     // guarded by lock_
  std::vector<std::uintptr_t> wakes_;  // reactor thread only: step 5's batch
  std::uint64_t seq_ = 0;           // guarded by lock_
  // The deadline the reactor is sleeping towards (time_since_epoch count; max = none).
  // Written by the reactor before sleeping (seq_cst), read by arm() after inserting
  // (seq_cst): an arm that sees a later or equal sleep deadline need not wake it.
  std::atomic<std::int64_t> sleeping_until_{INT64_MAX};
  std::atomic<bool> stop_{false};
  std::atomic<bool> io_cancelled_{false};  // set once by cancel_io(); see io_cancelled()
  std::thread thread_;
};

}  // namespace weft::detail
