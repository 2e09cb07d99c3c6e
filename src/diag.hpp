// src/diag.hpp - opt-in runtime diagnostics, run on the reactor thread (tested by
// tests/diag_test.cpp). Off unless the environment asks, read once when a scheduler starts:
//
//   WEFT_SCHEDTRACE=<ms>  every <ms>, one line on stderr: parked/searching workers, the
//                         injection queue, and per worker its ring, remote queue,
//                         pending timers, switches so far and whether it is parked
//                         (Go's GODEBUG=schedtrace).
//   WEFT_STALL_MS=<ms>    report one fiber that has run for <ms> or more without
//                         suspending, yielding or ending (a blocking call, or a long
//                         computation): "weft: stall: worker N has been running fiber #id
//                         "name" for X ms ...", once per stall, and when that fiber stops
//                         "weft: stall: fiber #id "name" on worker N ran for about Y ms"
//                         (the name: spawn_options::name, first 31 characters, when it
//                         has one).
//
// How a stall is seen: a worker publishes a slice counter, bumped each time the task it
// runs changes (worker::publish_diag, on every switch and at every task start and end,
// also where no switch happens: a fiber runs queued tasks back to back on its own stack,
// and a join runs an unstarted child inline). Every sample reads each worker's slice
// counter, whether its parker sleeps and which task it runs. A worker that is awake, in
// a task, and has not begun a slice across samples spanning the threshold is stuck in
// that one task. (Counting switches instead reported a worker running many short fibers
// back to back as stalled.) X is measured from the first sample that saw the slice, so
// it is a lower bound, short by up to one sample period; Y, from that same sample to the
// first that saw the slice end, is within one period either way. A worker in no task
// (starting, searching, between fibers) is never judged: its search spin lasts 50 us and
// it begins a slice as soon as it finds work, so only the OS can hold it there longer,
// and there is no fiber to name. Nor is a worker whose thread the OS kept off the CPUs:
// past the threshold, a stall is reported once the thread is blocked in a system call
// (the blocking call to report) or has computed for a quarter of the threshold since the
// slice began (its CPU clock, read at the slice's first sample and at each sample past
// the threshold). A thread preempted for long on a loaded machine (a TSan build under a
// parallel test run: a 2 ms fiber took 440 ms) is not reported for it; a computing fiber
// on a CPU shared with others is, once it has had that much of it. Samples run every min(trace period, stall threshold /
// 4). The counter, the task id and its name are published only when the detector is on
// (worker::diag_, relaxed: a report, not a synchronisation).
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
// judged once shutdown began (exited workers stop beginning slices without being stuck).
#pragma once

#include <cstdint>
#include <vector>

namespace weft::detail {

class runtime;
class worker;

// Asks worker w's thread to print its backtrace on stderr (the stall report's SIGURG
// handler, installed on first use unless the program handles SIGURG). False when it cannot.
bool send_backtrace_signal(worker& w) noexcept;

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
    std::uint64_t slice = 0;
    std::int64_t since = 0;  // first sample that saw this slice
    bool reported = false;
    std::int64_t cpu = -1;   // the worker thread's CPU time at `since` (-1: unknown)
    std::uint64_t task = 0;  // the reported task, for the line at its end
    char name[32] = {};
  };
  static void report_stall(worker& w, seen& s, std::int64_t now) noexcept;
  bool on_cpu_or_blocked(const worker& w, const seen& s) const noexcept;
  // WEFT_DEADLOCK_MS (inspect.hpp report_deadlock): every worker parked and nothing moved
  // (switches, spawns) for deadlock_ns_: inspect, and report if every fiber is blocked
  // for good. Once per quiet period.
  void check_deadlock(runtime& rt, std::int64_t now) noexcept;
  std::int64_t deadlock_ns_ = 0;
  std::uint64_t quiet_sig_ = 0;    // switches + spawns when the quiet period began
  std::int64_t quiet_since_ = 0;   // 0: not quiet
  bool quiet_checked_ = false;     // this quiet period was inspected already
  std::int64_t trace_ns_ = 0, stall_ns_ = 0, period_ns_ = 0;
  std::int64_t start_ns_ = 0, next_ns_ = 0, next_trace_ns_ = 0;
  std::vector<seen> seen_;
};

}  // namespace weft::detail
