// src/diag.hpp - opt-in runtime diagnostics, run on the reactor thread (tested by
// tests/diag_test.cpp). Off unless the environment asks, read once when a scheduler starts:
//
//   WEFT_SCHEDTRACE=<ms>  every <ms>, one line on stderr: parked/searching workers, the
//                         injection queue, and per worker its ring, remote queue,
//                         pending timers, switches so far and whether it is parked
//                         (Go's GODEBUG=schedtrace).
//   WEFT_STALL_MS=<ms>    report a worker that has run one fiber for <ms> or more
//                         without switching (a blocking call, or a long computation
//                         that never yields): "weft: stall: worker N has been running
//                         fiber #id "name" for X ms ...", once per stall (the name:
//                         spawn_options::name, first 31 characters, when it has one).
//
// How a stall is seen: every sample reads each worker's switch counter, whether its
// parker sleeps and which fiber it runs. A worker that is awake, in a fiber, and has not
// switched across samples spanning the threshold is stuck in that fiber. A worker in no
// fiber (starting, searching, between fibers) is never judged: its search spin lasts
// 50 us and it switches as soon as it finds work, so only the OS can hold it there
// longer, and there is no fiber to name. Samples run every min(trace period, stall
// threshold / 4). The fiber id is published by the worker on each switch only when the
// detector is on (worker::diag_task_, relaxed: a report, not a synchronisation).
//
// Backtrace: with the report, the reactor sends SIGURG to the stuck worker's thread; its
// handler (installed only when WEFT_STALL_MS is set and SIGURG has no handler of the
// program's own; SA_RESTART, on the worker's alternate signal stack) writes the thread's
// backtrace with backtrace_symbols_fd, which allocates nothing. backtrace() is called
// once at set-up so that its lazy load of the unwinder does not happen in the handler.
// Frames are printed as module(+offset) (names only for exported symbols): feed them to
// addr2line -e <module>. A system call the stuck fiber is in that does not restart
// (nanosleep, poll...) returns EINTR, as with any signal. The signal goes only to a
// thread inside worker::thread_main (worker::signal_thread holds a lock across the
// pthread_kill, so a joined thread's reused id is never signalled), only while the
// handler is still ours (re-read with sigaction before each send), and no stall is
// judged once shutdown began (exited workers stop switching without being stuck).
#pragma once

#include <cstdint>
#include <vector>

namespace weft::detail {

class runtime;

class diagnostics {
public:
  diagnostics();  // reads the environment
  bool enabled() const noexcept { return period_ns_ > 0; }
  bool stall_detection() const noexcept { return stall_ns_ > 0; }
  // The epoll timeout (ms) until the next sample, given the caller's own (-1: none).
  int cap_timeout(int ms, std::int64_t now) const noexcept;
  // Samples when due. Reactor thread.
  void tick(runtime& rt, std::int64_t now) noexcept;

private:
  struct seen {
    std::uint64_t switches = 0;
    std::int64_t since = 0;
    bool reported = false;
  };
  std::int64_t trace_ns_ = 0, stall_ns_ = 0, period_ns_ = 0;
  std::int64_t start_ns_ = 0, next_ns_ = 0, next_trace_ns_ = 0;
  std::vector<seen> seen_;
};

}  // namespace weft::detail
