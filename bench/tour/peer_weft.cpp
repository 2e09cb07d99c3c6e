// bench/tour/peer_weft.cpp - the tour's workloads on weft.
//
// One weft::scheduler per (workload, worker count), built in start() and destroyed in
// stop(); every repetition runs inside sched.block_on(), with the clock read inside the
// root fiber, so construction, worker start-up and shutdown are never timed.
#include "tour.hpp"

#if __has_include(<weft/weft.hpp>)
#include <weft/weft.hpp>
#else
#include <weft/fiber.hpp>
#include <weft/scheduler.hpp>
#endif

#include <atomic>
#include <optional>
#include <thread>

namespace tour {
namespace {

// W2: a node of `size` leaves starting at ordinal `num`; children joined in order.
std::int64_t skynet_node(std::int64_t num, std::int64_t size) {
  if (size == 1) return num;
  const std::int64_t child = size / 10;
  weft::join_handle<std::int64_t> kids[10];
  for (int i = 0; i < 10; ++i) kids[i] = weft::spawn(skynet_node, num + i * child, child);
  std::int64_t sum = 0;
  for (auto& k : kids) sum += k.join();
  return sum;
}

// W5: spawn fib(n-1), compute fib(n-2) on this fiber, join.
std::int64_t fib_fork(int n) {
  if (n < 2) return n;
  auto left = weft::spawn(fib_fork, n - 1);
  const std::int64_t right = fib_fork(n - 2);
  return left.join() + right;
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
  }
  void stop() override { sched_.reset(); }

  std::string extra(workload w, const sizes& s) const override {
    if (w == workload::spawn_join) return "n=" + std::to_string(s.spawn_join_n);
    return {};
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
      total = skynet_node(0, leaves);
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
};

}  // namespace

std::unique_ptr<peer> make_weft_peer() { return std::make_unique<weft_peer>(); }

}  // namespace tour
