// weft/stats.hpp - scheduler counters. Each worker writes only its own counters (relaxed),
// so keeping them on costs no shared cache-line traffic; a snapshot sums relaxed reads.
#pragma once

#include <cstdint>
#include <vector>

namespace weft {

struct worker_stats {
  std::uint64_t fibers_run = 0;      // tasks started on this worker (inline joins included)
  std::uint64_t inline_runs = 0;     // tasks run inline by a joining fiber
  std::uint64_t switches = 0;        // context switches performed by this worker
  std::uint64_t steals = 0;          // successful steals (each moves a batch)
  std::uint64_t stolen = 0;          // items moved by those steals
  std::uint64_t steal_attempts = 0;  // victims probed
  std::uint64_t parks = 0;           // times the worker thread parked
  std::uint64_t injected = 0;        // items taken from the outside injection queue
  std::uint64_t remote_wakes = 0;    // fibers received through this worker's remote queue
  std::uint64_t timers_fired = 0;    // timers (sleeps, timeouts) this worker fired
};

struct scheduler_stats {
  std::vector<worker_stats> workers;
  worker_stats total() const {
    worker_stats s;
    for (const auto& w : workers) {
      s.fibers_run += w.fibers_run;
      s.inline_runs += w.inline_runs;
      s.switches += w.switches;
      s.steals += w.steals;
      s.stolen += w.stolen;
      s.steal_attempts += w.steal_attempts;
      s.parks += w.parks;
      s.injected += w.injected;
      s.remote_wakes += w.remote_wakes;
      s.timers_fired += w.timers_fired;
    }
    return s;
  }
};

}  // namespace weft
