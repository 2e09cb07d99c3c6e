// bench/tour/peer_weft.cpp - the tour's workloads on weft.
//
// One weft::scheduler per (workload, worker count), built in start() and destroyed in
// stop(); every repetition runs inside sched.block_on(), with the clock read inside the
// root fiber, so construction, worker start-up and shutdown are never timed.
#include "tour.hpp"

#include "../weft_skynet.hpp"

#if __has_include(<weft/weft.hpp>)
#include <weft/weft.hpp>
#else
#include <weft/fiber.hpp>
#include <weft/scheduler.hpp>
#endif

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <string>
#include <cstdio>
#include <optional>
#include <thread>

namespace tour {
namespace {


// W5: spawn fib(n-1), compute fib(n-2) on this fiber, join.
std::int64_t fib_fork(int n) {
  if (n < 2) return n;
  auto left = weft::spawn(fib_fork, n - 1);
  const std::int64_t right = fib_fork(n - 2);
  return left.join() + right;
}

// Lines of /proc/self/maps (one per mapping) and VmRSS in KiB, for W11's memory fields.
long proc_maps_lines() {
  std::ifstream in("/proc/self/maps");
  long n = 0;
  for (std::string line; std::getline(in, line);) ++n;
  return n;
}
long proc_rss_kib() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  return 0;
}

class weft_peer final : public peer {
public:
  const char* name() const noexcept override { return "weft"; }
  std::string describe() const override {
    weft::scheduler::options defaults;
    return "weft: scheduler::options defaults (stack " +
           std::to_string(defaults.stack_size / 1024) + " KiB, pin=" +
           (defaults.pin ? "true" : "false") + "), workers set per run";
  }
  bool supports(workload) const noexcept override { return true; }

  void start(unsigned workers) override {
    weft::scheduler::options opts;
    opts.workers = workers;
    sched_.emplace(opts);
    first_churn_.clear();
  }
  void stop() override { sched_.reset(); }

  std::string extra(workload w, const sizes& s) const override {
    if (w == workload::spawn_join) return "n=" + std::to_string(s.spawn_join_n);
    if (w == workload::churn_spawn_park || w == workload::churn_wake_finish)
      return "n=" + std::to_string(s.churn_n) + " first=" + first_churn_ + churn_memory_;
    return {};
  }

  double churn(std::size_t n, bool wake_finish) override {
    const bool first = first_churn_.empty();
    long maps0 = 0, maps1 = 0, rss0 = 0, rss1 = 0;
    const double ms = sched_->block_on([&, n, wake_finish] {
      // W11 (docs/benchmarks.md): every fiber reports that it is about to park, then
      // parks on one event; the root sets it once all n report, and waits for them all.
      weft::event go;
      weft::wait_group parked(static_cast<std::int64_t>(n)), done(static_cast<std::int64_t>(n));
      if (first) maps0 = proc_maps_lines(), rss0 = proc_rss_kib();
      const auto t0 = clock::now();
      for (std::size_t i = 0; i < n; ++i) {
        weft::spawn_detached([&] {
          parked.done();
          go.wait();
          done.done();
        });
      }
      parked.wait();
      const double park_ms = ns_since(t0) / 1e6;
      if (first) maps1 = proc_maps_lines(), rss1 = proc_rss_kib();
      const auto t1 = clock::now();
      go.set();
      done.wait();
      return wake_finish ? ns_since(t1) / 1e6 : park_ms;
    });
    // The first repetition of a scheduler maps and first-touches every stack; later ones
    // reuse them (until the depot's purge): RESULT says both.
    if (first) {
      // Memory of the first repetition, all n parked: /proc/self/maps lines added (flat
      // when guards cost no mapping) and RSS added per parked fiber (about one page).
      char buf[96];
      std::snprintf(buf, sizeof buf, "%.1f", ms);
      first_churn_ = buf;
      std::snprintf(buf, sizeof buf, " maps_added=%ld rss_per_parked_kib=%.2f", maps1 - maps0,
                    static_cast<double>(rss1 - rss0) / static_cast<double>(n));
      churn_memory_ = buf;
    }
    return ms;
  }

  double spawn_join(std::size_t n) override {
    return sched_->block_on([n] {
      // W1 (docs/benchmarks.md): every fiber only signals a completion counter (a
      // wait_group); the root waits for all of them. add(n) up front: one RMW, not n.
      weft::wait_group wg(static_cast<std::int64_t>(n));
      const auto t0 = clock::now();
      for (std::size_t i = 0; i < n; ++i) weft::spawn_detached([&wg] { wg.done(); });
      wg.wait();
      return ns_since(t0) / static_cast<double>(n);
    });
  }

  double skynet(std::int64_t leaves) override {
    std::int64_t total = 0;
    const double ms = sched_->block_on([&total, leaves] {
      const auto t0 = clock::now();
      total = weft_bench::skynet_node(0, leaves);
      return ms_since(t0);
    });
    verify("weft skynet", total, skynet_total(leaves));
    return ms;
  }

  double yield_pingpong(std::size_t yields) override {
    return sched_->block_on([yields] {
      auto player = [yields] {
        for (std::size_t i = 0; i < yields; ++i) weft::this_fiber::yield();
      };
      const auto t0 = clock::now();
      auto a = weft::spawn(player);
      auto b = weft::spawn(player);
      a.join();
      b.join();
      return ns_since(t0) / (2.0 * static_cast<double>(yields));
    });
  }

  double fib(int n) override {
    std::int64_t value = 0;
    const double ms = sched_->block_on([&value, n] {
      const auto t0 = clock::now();
      value = fib_fork(n);
      return ms_since(t0);
    });
    verify("weft fib", value, fib_value(n));
    return ms;
  }

  double idle(std::chrono::milliseconds d) override {
    // No work at all, as W9 asks (docs/benchmarks.md; the tour already waited 200 ms after
    // start-up). Running a fiber first would measure the 50 µs post-work spin instead.
    const double cpu0 = process_cpu_ms();
    std::this_thread::sleep_for(d);
    return process_cpu_ms() - cpu0;
  }

private:
  std::optional<weft::scheduler> sched_;
  std::string first_churn_;    // W11: this scheduler's first repetition, in ms
  std::string churn_memory_;  // W11: " maps_added=.. rss_per_parked_kib=.." of that one
};

}  // namespace

std::unique_ptr<peer> make_weft_peer() { return std::make_unique<weft_peer>(); }

}  // namespace tour
