// weft/stats.hpp - scheduler counters. Each worker writes only its own counters (relaxed),
// so keeping them on costs no shared cache-line traffic; a snapshot sums relaxed reads.
//
// Durations are sampled, not measured on every event (a clock read costs ~40 ns on the
// VM kind weft is measured on, half a channel round trip): a worker times one suspension
// in 64 and one wake in 64 of those made on it, a plain thread one wake in 64 of its own.
// The histograms therefore hold ~1/64 of the events.
#pragma once

#include <weft/export.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace weft {

// Durations in log2 buckets: count[k] holds samples in [2^k, 2^(k+1)) ns (count[0] also
// holds 0 ns, the last bucket everything from 2^(bucket_count-1) ns, ~9 minutes, up).
struct WEFT_API duration_histogram {
  static constexpr std::size_t bucket_count = 40;
  std::array<std::uint64_t, bucket_count> count{};

  // The bucket a duration of ns falls in.
  static std::size_t bucket_of(std::uint64_t ns) noexcept;
  // Number of samples.
  std::uint64_t samples() const noexcept;
  // The upper bound (exclusive, ns) of the bucket holding the q-quantile (0 <= q <= 1), so
  // at least a fraction q of the samples lie below it; 0 when there are no samples.
  std::uint64_t quantile_ns(double q) const noexcept;
  void merge(const duration_histogram& o) noexcept;
};

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
  std::uint64_t io_polls = 0;        // epoll_wait calls made by this worker (fd readiness)
  std::uint64_t io_ready = 0;        // fibers those polls woke
  // Wall time of the worker thread since it started, split in three: parked (asleep in
  // the kernel), searching (spinning for work to steal) and busy (everything else: fibers
  // and the scheduler's own work). busy_ns = uptime - parked - searching.
  std::uint64_t busy_ns = 0;
  std::uint64_t searching_ns = 0;
  std::uint64_t parked_ns = 0;
  // Gauges at the snapshot: fibers and tasks queued in the local run queue (ring) and in
  // the remote queue (wakes from other threads).
  std::uint64_t run_queue_depth = 0;
  std::uint64_t remote_queue_depth = 0;
  // Sampled (see above): runnable -> running, from a wake to the fiber's resumption (the
  // time a woken fiber waits in a queue); and how long a fiber stayed suspended, from its
  // suspension to its resumption (the wait itself plus that queueing). Recorded by the
  // worker that resumes the fiber.
  duration_histogram schedule_latency;
  duration_histogram wait_time;
};

struct WEFT_API scheduler_stats {
  std::vector<worker_stats> workers;
  std::uint64_t inject_queue_depth = 0;  // gauge: outside spawns and ring spills queued
  // Sum of the workers' counters, durations and gauges; histograms merged.
  worker_stats total() const;
};

enum class stats_format { text, json };

// Renders a snapshot: text is one line per worker and a total, each histogram as
// count/p50/p99/max; json an object with every field and each histogram's buckets. Any
// thread; allocates.
WEFT_API std::string format_stats(const scheduler_stats& s, stats_format f = stats_format::text);

}  // namespace weft
