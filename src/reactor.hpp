// src/reactor.hpp - the shared reactor thread of one runtime: fd readiness (epoll). It
// never runs user code: it only makes waiters runnable again (runtime::wake) from epoll
// events. Workers never call epoll_wait.
//
// I/O: fds are registered edge-triggered once (io_desc.hpp protocol step 0); an event's
// user data is (fd << 32 | generation), 0 is the wake eventfd. The reactor looks the fd's
// io_desc up, drops the event when the generation no longer matches (the fd was closed
// and perhaps reused: io_desc.hpp close step c), and unblocks the read slot on
// IN/RDHUP/HUP/ERR and the write slot on OUT/HUP/ERR (step 4). HUP and ERR wake both
// directions so the syscall reports the error or EOF; no event is ever interpreted here.
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

  int epoll_fd() const noexcept { return epfd_; }
  void wake() noexcept;  // interrupts epoll_wait (eventfd)

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
  // seq_cst: the flag side of io_desc.hpp step 6, paired with the slot RMW in prepare().
  bool io_cancelled() const noexcept { return io_cancelled_.load(std::memory_order_seq_cst); }

private:
  void run() noexcept;
  void dispatch_io(std::uint64_t tag, std::uint32_t events) noexcept;
  void wake_fiber(fiber_impl* f) noexcept;
  void flush_wakes() noexcept;  // inject the collected wakes
  int watch_timeout() noexcept;  // timers.hpp step 7: epoll timeout in ms, -1 for none
  void fire_overdue() noexcept;  // step 7: fire what the workers left overdue

  runtime& rt_;
  int epfd_ = -1;
  int evfd_ = -1;
  std::vector<std::uintptr_t> wakes_;  // reactor thread only: the dispatch batch
  std::atomic<bool> unwatched_{false};  // step 7: sleeping with no timeout
  std::atomic<bool> stop_{false};
  std::atomic<bool> io_cancelled_{false};  // set once by cancel_io(); see io_cancelled()
  std::thread thread_;
};

}  // namespace weft::detail
