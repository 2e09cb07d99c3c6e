// src/reactor.hpp - fd readiness (epoll) for one runtime: an epoll set polled by the
// workers themselves while any of them is awake, and a reactor thread that watches it
// while they sleep. Neither ever runs user code in the poll: a poll only makes waiters
// runnable again (runtime::wake). Workers never *block* in epoll.
//
// I/O: fds are registered edge-triggered once (io_desc.hpp protocol step 0); an event's
// user data is (fd << 32 | generation), 0 is the wake eventfd. The reactor looks the fd's
// io_desc up, drops the event when the generation no longer matches (the fd was closed
// and perhaps reused: io_desc.hpp close step c), counts an edge for the read direction
// on IN/RDHUP/HUP/ERR and for the write direction on OUT/HUP/ERR, and wakes every waiter
// of those directions (step 4). HUP and ERR wake both directions so the syscall reports
// the error or EOF; no event is ever interpreted here.
//
// Poller hand-off protocol (Go's netpoll: awake Ps poll without blocking; only an idle
// runtime blocks on the set):
//   1. io_ep_ holds every registered fd (io_desc.hpp step 0). watch_ep_ holds io_ep_
//      itself (EPOLLIN | EPOLLONESHOT: it fires when io_ep_ has a ready fd) and the wake
//      eventfd. The reactor thread blocks only on watch_ep_.
//   2. An awake worker polls io_ep_ without blocking (poll_io(): epoll_wait timeout 0)
//      when its queues are empty, on every round of its search spin, and on fairness
//      ticks at most every poll_interval (20 us; 500 us while half its ring or more is
//      already queued: readiness would only queue behind that backlog, one epoll_wait
//      each time), and runs what it woke itself (its ring): on a busy server no event
//      costs a thread switch.
//   3. A worker about to sleep (after idle.hpp C1, announce_park) calls arm_watch():
//      watch_armed_.exchange(true) (seq_cst) and, if it was false, EPOLL_CTL_MOD re-arms
//      the one-shot. The kernel re-checks readiness on MOD, so an fd that became ready
//      after this worker's last poll fires the watch at once: nothing is lost between
//      the last poll and the sleep.
//   4. The watch fired (the kernel disarmed it): the reactor stores watch_armed_ = false
//      (seq_cst), polls io_ep_ and dispatches (wakes go to the injection queue, then
//      unpark a worker), and finally re-arms (as in 3) if any worker is still parked
//      (idle::parked(), seq_cst). Either a parking worker's exchange in 3 comes after
//      that store (it sees false and arms), or before it: then that worker's C1 came
//      before the reactor's parked() read, which sees it and re-arms. So while any
//      worker sleeps the watch is armed or a poll is about to run.
//   5. While every worker is awake and busy, nobody arms the watch: readiness waits for
//      a worker's next poll (step 2: at most poll_interval on a busy worker), and the
//      reactor thread sleeps instead of competing with them for the CPU.
//
// Wakes issued on the reactor thread while it dispatches epoll events (runtime::wake ->
// defer_wake) are collected and injected in one bulk afterwards: one queue operation and
// at most one unpark per batch instead of one per fiber.
//
// Timers are not here: each worker owns a timer shard and fires its own timers
// (timers.hpp), so a sleep costs no reactor round trip. The reactor sleeps in epoll_wait
// with no timeout; only an fd event or the eventfd (shutdown, cancel) wakes it.
#pragma once

#include <atomic>
#include <cstdint>
#include <system_error>
#include <thread>
#include <vector>

#include <sys/epoll.h>

namespace weft::detail {

class runtime;
struct io_desc;
struct fiber_impl;

class reactor {
public:
  explicit reactor(runtime& rt);
  ~reactor();  // stops and joins the thread
  reactor(const reactor&) = delete;
  reactor& operator=(const reactor&) = delete;

  // Called by runtime::wake() on any thread: true when the caller is rt's
  // reactor thread inside a dispatch batch (f is then queued and woken after it).
  static bool defer_wake(const runtime* rt, fiber_impl* f) noexcept;

  void wake() noexcept;  // interrupts epoll_wait (eventfd)

  // Protocol steps 2 and 4. A worker, or the reactor thread after the watch fired: polls
  // io_ep_ without blocking (again while the buffer comes back full) and wakes the
  // waiters of the ready fds (runtime::wake: into a worker's ring, or the reactor's
  // batch). Returns how many events. events: the caller's buffer (a worker's own, not
  // its possibly small fiber stack).
  int poll_io(epoll_event* events, int max_events) noexcept;
  // Step 2: true when some fd was ever registered (nothing to poll otherwise). relaxed:
  // a hint; a worker that misses the first registration still arms the watch to sleep.
  bool io_used() const noexcept { return io_used_.load(std::memory_order_relaxed); }
  // Step 3. A worker about to park, after announce_park. Any thread.
  void arm_watch() noexcept;

  // timers.hpp step 7. A shard went from empty to non-empty (after a seq_cst fence):
  // wakes the reactor if it sleeps with no timeout. Any worker thread.
  void timer_armed() noexcept {
    // relaxed load: the caller's fence orders it; exchange: one eventfd write per sleep.
    if (unwatched_.load(std::memory_order_relaxed) &&
        unwatched_.exchange(false, std::memory_order_relaxed))
      wake();
  }

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
  // seq_cst: the flag side of io_desc.hpp step 7, paired with the waiter's registration.
  bool io_cancelled() const noexcept { return io_cancelled_.load(std::memory_order_seq_cst); }

private:
  void run() noexcept;
  void dispatch_io(std::uint64_t tag, std::uint32_t events) noexcept;
  void wake_fiber(fiber_impl* f) noexcept;
  void flush_wakes() noexcept;  // inject the collected wakes
  int watch_timeout() noexcept;  // timers.hpp step 7: epoll timeout in ms, -1 for none
  void fire_overdue() noexcept;  // step 7: fire what the workers left overdue

  runtime& rt_;
  int epfd_ = -1;      // io_ep_ of the protocol: the registered fds
  int watch_fd_ = -1;  // watch_ep_: io_ep_ (one-shot) and evfd_
  int evfd_ = -1;
  std::atomic<bool> io_used_{false};
  alignas(64) std::atomic<bool> watch_armed_{false};  // step 3/4
  std::vector<std::uintptr_t> wakes_;  // reactor thread only: the dispatch batch
  std::atomic<bool> unwatched_{false};  // step 7: sleeping with no timeout
  std::atomic<bool> stop_{false};
  std::atomic<bool> io_cancelled_{false};  // set once by cancel_io(); see io_cancelled()
  std::thread thread_;
};

}  // namespace weft::detail
