// src/diag.cpp - see diag.hpp.
#include "diag.hpp"

#include "runtime.hpp"
#include "timers.hpp"
#include "worker.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace weft::detail {

namespace {
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

diagnostics::diagnostics()
    : trace_ns_(env_ms("WEFT_SCHEDTRACE")), stall_ns_(env_ms("WEFT_STALL_MS")) {
  // A stall is seen within a quarter of its threshold (at least every 1 ms).
  const std::int64_t stall_period = stall_ns_ ? std::max<std::int64_t>(stall_ns_ / 4, 1'000'000) : 0;
  period_ns_ = trace_ns_ && stall_period ? std::min(trace_ns_, stall_period)
                                         : (trace_ns_ ? trace_ns_ : stall_period);
  start_ns_ = steady_ns();
  next_ns_ = start_ns_ + period_ns_;
  next_trace_ns_ = start_ns_ + trace_ns_;
}

int diagnostics::cap_timeout(int ms, std::int64_t now) const noexcept {
  if (!enabled()) return ms;
  const std::int64_t left = std::max<std::int64_t>(next_ns_ - now, 0);
  const int d = ceil_ms(left);
  return ms < 0 ? d : std::min(ms, d);
}

void diagnostics::tick(runtime& rt, std::int64_t now) noexcept {
  if (!enabled() || now < next_ns_) return;
  next_ns_ = now + period_ns_;
  const unsigned n = rt.worker_count();
  if (seen_.size() != n) seen_.assign(n, seen{0, now, false});
  if (stall_ns_) {
    for (unsigned i = 0; i < n; ++i) {
      worker& w = rt.worker_at(i);
      const std::uint64_t sw = w.switch_count();
      seen& s = seen_[i];
      if (sw != s.switches || w.sleeping()) {
        s = seen{sw, now, false};
        continue;
      }
      if (!s.reported && now - s.since >= stall_ns_) {
        s.reported = true;
        std::fprintf(stderr,
                     "weft: stall: worker %u has been running fiber #%llu for %lld ms without "
                     "suspending or yielding (a blocking call or a long computation; fibers "
                     "queued on this worker wait)\n",
                     i, static_cast<unsigned long long>(w.diag_task()),
                     static_cast<long long>((now - s.since) / 1'000'000));
      }
    }
  }
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
