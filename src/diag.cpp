// src/diag.cpp - see diag.hpp.
#include "diag.hpp"
#include "inspect.hpp"

#include "runtime.hpp"
#include "timers.hpp"
#include "worker.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <execinfo.h>
#include <mutex>
#include <cstring>
#include <string>
#include <unistd.h>

namespace weft::detail {

namespace {
constexpr int backtrace_signal = SIGURG;
std::atomic<bool> backtrace_handler_installed{false};

// Async-signal-safe: write(2), backtrace (pre-loaded), backtrace_symbols_fd.
void put(const char* s) noexcept {
  std::size_t n = 0;
  while (s[n]) ++n;
  while (n > 0) {
    const ssize_t w = ::write(2, s, n);
    if (w <= 0) return;
    s += w;
    n -= static_cast<std::size_t>(w);
  }
}
void put_number(unsigned long long v) noexcept {
  char buf[24];
  char* p = buf + sizeof buf;
  *--p = '\0';
  do *--p = static_cast<char>('0' + v % 10); while ((v /= 10) != 0);
  put(p);
}

void backtrace_handler(int) {
  const int saved = errno;
  if (worker* w = current_worker()) {
    void* frames[64];
    const int n = ::backtrace(frames, 64);
    put("weft: stall: backtrace of worker ");
    put_number(w->index());
    put(" (fiber #");
    put_number(w->diag_task());
    put("):\n");
    ::backtrace_symbols_fd(frames, n, 2);
  }
  errno = saved;
}

// Installs the handler unless the program handles SIGURG itself. Once per process.
bool install_backtrace_handler() noexcept {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction old {};
    if (::sigaction(backtrace_signal, nullptr, &old) != 0) return;
    if ((old.sa_flags & SA_SIGINFO) || (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN)) {
      std::fprintf(stderr, "weft: WEFT_STALL_MS: SIGURG has a handler of the program's; stall "
                           "reports come without a backtrace\n");
      return;
    }
    void* warm[4];
    (void)::backtrace(warm, 4);  // loads the unwinder now, not inside the handler
    struct sigaction sa {};
    sa.sa_handler = backtrace_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART | SA_ONSTACK;
    // release: report() sends the signal only after seeing the handler in place.
    if (::sigaction(backtrace_signal, &sa, nullptr) == 0)
      backtrace_handler_installed.store(true, std::memory_order_release);
  });
  return backtrace_handler_installed.load(std::memory_order_acquire);
}

// True while SIGURG still runs our handler (installed and not replaced since).
bool backtrace_handler_is_ours() noexcept {
  // acquire: pairs with the handler's installation (release).
  if (!backtrace_handler_installed.load(std::memory_order_acquire)) return false;
  struct sigaction cur {};
  return ::sigaction(backtrace_signal, nullptr, &cur) == 0 && !(cur.sa_flags & SA_SIGINFO) &&
         cur.sa_handler == backtrace_handler;
}

std::int64_t env_ms(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return 0;
  char* end = nullptr;
  const long long ms = std::strtoll(v, &end, 10);
  if (*end != '\0' || ms <= 0) {
    std::fprintf(stderr, "weft: ignoring %s=%s (expected a positive number of milliseconds)\n",
                 name, v);
    return 0;
  }
  return ms * 1'000'000;
}
}  // namespace

bool send_backtrace_signal(worker& w) noexcept {
  return install_backtrace_handler() && backtrace_handler_is_ours() && w.signal_thread(backtrace_signal);
}

diagnostics::diagnostics()
    : deadlock_ns_(env_ms("WEFT_DEADLOCK_MS")),
      trace_ns_(env_ms("WEFT_SCHEDTRACE")),
      stall_ns_(env_ms("WEFT_STALL_MS")) {
  // A stall (and a deadlock) is seen within a quarter of its threshold (at least every 1 ms).
  const std::int64_t stall_period = stall_ns_ ? std::max<std::int64_t>(stall_ns_ / 4, 1'000'000) : 0;
  period_ns_ = trace_ns_ && stall_period ? std::min(trace_ns_, stall_period)
                                         : (trace_ns_ ? trace_ns_ : stall_period);
  if (deadlock_ns_) {
    const std::int64_t p = std::max<std::int64_t>(deadlock_ns_ / 4, 1'000'000);
    period_ns_ = period_ns_ ? std::min(period_ns_, p) : p;
  }
  if (stall_ns_) install_backtrace_handler();
  start_ns_ = steady_ns();
  next_ns_ = start_ns_ + period_ns_;
  next_trace_ns_ = start_ns_ + trace_ns_;
}

// Whether the stuck slice is the fiber's doing (diag.hpp, "How a stall is seen"): its
// thread is blocked in a system call, or computed for a quarter of the threshold at least.
bool diagnostics::on_cpu_or_blocked(const worker& w, const seen& s) const noexcept {
  if (s.cpu < 0) return true;  // no CPU clock: judge by the slice alone
  const std::int64_t cpu = w.thread_cpu_ns();
  if (cpu < 0 || 4 * (cpu - s.cpu) >= stall_ns_) return true;
  return w.thread_asleep();
}

// The first line of a stall; remembers the task for the line at its end.
void diagnostics::report_stall(worker& w, seen& s, std::int64_t now) noexcept {
  s.reported = true;
  s.task = w.diag_task();
  char name[worker::diag_name_words * 8];
  static_assert(sizeof name == sizeof s.name);
  w.diag_name(name);
  std::memcpy(s.name, name, sizeof name);
  std::fprintf(stderr,
               "weft: stall: worker %u has been running fiber #%llu%s%s%s for %lld ms without "
               "suspending or yielding (a blocking call or a long computation; fibers queued on "
               "this worker wait)\n",
               w.index(), static_cast<unsigned long long>(s.task), name[0] ? " \"" : "", name,
               name[0] ? "\"" : "", static_cast<long long>((now - s.since) / 1'000'000));
}

int diagnostics::cap_timeout(int ms, std::int64_t now) const noexcept {
  if (!enabled()) return ms;
  const std::int64_t left = std::max<std::int64_t>(next_ns_ - now, 0);
  const int d = ceil_ms(left);
  return ms < 0 ? d : std::min(ms, d);
}

// A deadlock is reported when, for deadlock_ns_, every worker stayed parked and no
// switch or spawn happened (so no fiber ran: outside wakes and spawns would have made
// one run), and an inspection then finds every fiber blocked without a deadline on a weft
// primitive. Plain threads are outside weft's sight: one of them may still be about to
// wake a fiber, and the threshold is the time it is given (docs/diagnostics.md).
void diagnostics::check_deadlock(runtime& rt, std::int64_t now) noexcept {
  const unsigned n = rt.worker_count();
  std::uint64_t sig = rt.external_spawned_.load(std::memory_order_relaxed);
  bool all_parked = true;
  for (unsigned i = 0; i < n; ++i) {
    worker& w = rt.worker_at(i);
    all_parked = all_parked && w.sleeping();
    sig += w.switch_count() + w.spawned();
  }
  // A run_blocking job in flight (blocking_pool.hpp step 8) may still wake a fiber: its
  // caller's wait (a run_blocking, or the event of a run_blocking_until without a
  // deadline), or anything the job sets after its caller stopped waiting. No quiet
  // period while one runs. acquire: pairs with the pool thread's release after the job's
  // wake, so the inspection below sees the woken fiber as runnable.
  all_parked = all_parked && rt.blocking_jobs_.load(std::memory_order_acquire) == 0;
  if (!all_parked || sig != quiet_sig_ || quiet_since_ == 0) {
    quiet_sig_ = sig;
    quiet_since_ = all_parked ? now : 0;
    quiet_checked_ = false;
    return;
  }
  if (quiet_checked_ || now - quiet_since_ < deadlock_ns_) return;
  quiet_checked_ = true;  // once per quiet period, reported or not
  (void)report_deadlock(rt, now - quiet_since_);
}

void diagnostics::tick(runtime& rt, std::int64_t now) noexcept {
  if (!enabled() || now < next_ns_) return;
  next_ns_ = now + period_ns_;
  const unsigned n = rt.worker_count();
  if (seen_.size() != n) {
    seen fresh;
    fresh.since = now;
    seen_.assign(n, fresh);
  }
  // Not once shutdown began: workers leave their loops then (an exited worker's slice
  // counter stands still, it is not stalled), and the reactor ticks on until ~runtime.
  // acquire: pairs with the release that sets stop_.
  if (stall_ns_ && !rt.stop_.load(std::memory_order_acquire)) {
    for (unsigned i = 0; i < n; ++i) {
      worker& w = rt.worker_at(i);
      const std::uint64_t slice = w.diag_slice();
      seen& s = seen_[i];
      // Only a worker inside a task can be stalled by one. Outside (diag_task 0: its thread
      // still starting, searching, between fibers, leaving) what holds the thread is the
      // scheduler's own code or the OS (a thread start under TSan on a loaded machine takes
      // over 50 ms), and there is no fiber to name: such a report read "fiber #0".
      if (slice != s.slice || w.sleeping() || w.diag_task() == 0) {
        if (s.reported)
          std::fprintf(stderr, "weft: stall: fiber #%llu%s%s%s on worker %u ran for about %lld ms\n",
                       static_cast<unsigned long long>(s.task), s.name[0] ? " \"" : "", s.name,
                       s.name[0] ? "\"" : "", i, static_cast<long long>((now - s.since) / 1'000'000));
        s = seen{};
        s.slice = slice;
        s.since = now;
        s.cpu = w.diag_task() != 0 ? w.thread_cpu_ns() : -1;
        continue;
      }
      if (!s.reported && now - s.since >= stall_ns_ && on_cpu_or_blocked(w, s)) {
        report_stall(w, s, now);
        // The backtrace only while the handler is still ours: the program may have
        // installed its own SIGURG handler since (we must not trigger it out of the blue).
        if (backtrace_handler_is_ours()) (void)w.signal_thread(backtrace_signal);
      }
    }
  }
  if (deadlock_ns_ && !rt.closing_.load(std::memory_order_relaxed)) check_deadlock(rt, now);
  if (trace_ns_ && now >= next_trace_ns_) {
    next_trace_ns_ = now + trace_ns_;
    std::string line = "weft schedtrace: " + std::to_string((now - start_ns_) / 1'000'000) +
                       "ms workers=" + std::to_string(n) +
                       " parked=" + std::to_string(rt.idle_.parked()) +
                       " searching=" + std::to_string(rt.idle_.searching()) +
                       " inject=" + std::to_string(rt.inject_count_.load(std::memory_order_relaxed));
    for (unsigned i = 0; i < n; ++i) {
      worker& w = rt.worker_at(i);
      line += " | w" + std::to_string(i) + " ring=" + std::to_string(w.ring_size()) +
              " remote=" + std::to_string(w.remote_size()) +
              " timers=" + std::to_string(w.timers().size()) +
              " switches=" + std::to_string(w.switch_count()) + (w.sleeping() ? " parked" : "");
    }
    line += '\n';
    std::fputs(line.c_str(), stderr);
  }
}

}  // namespace weft::detail
