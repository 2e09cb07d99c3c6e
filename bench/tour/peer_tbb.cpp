// bench/tour/peer_tbb.cpp - the tour's workloads on oneTBB (tasks, not fibers).
//
// start(w) limits the process to w threads with tbb::global_control and builds a
// task_arena(w) whose one reserved slot is the tour's main thread; every repetition runs in
// arena.execute(). TBB tasks have no stacks of their own: task_group::wait() runs other
// tasks on the waiting thread's stack, so W1/W2/W5 here are the "no fiber" reference.
// TBB has no yield between tasks, so W3 is not run.
// Benchmark workloads cited here (W1, W2, W3, W5): docs/benchmarks.md.
#include "tour.hpp"

#include <tbb/global_control.h>
#include <tbb/task_arena.h>
#include <tbb/task_group.h>
#include <tbb/version.h>

#include <atomic>
#include <optional>
#include <thread>

namespace tour {
namespace {

std::int64_t skynet_node(std::int64_t num, std::int64_t size) {
  if (size == 1) return num;
  const std::int64_t child = size / 10;
  std::int64_t sums[10];
  tbb::task_group g;
  for (int i = 0; i < 10; ++i) {
    g.run([&sums, i, num, child] { sums[i] = skynet_node(num + i * child, child); });
  }
  g.wait();
  std::int64_t sum = 0;
  for (auto s : sums) sum += s;
  return sum;
}

std::int64_t fib_fork(int n) {
  if (n < 2) return n;
  std::int64_t left = 0;
  tbb::task_group g;
  g.run([&left, n] { left = fib_fork(n - 1); });
  const std::int64_t right = fib_fork(n - 2);
  g.wait();
  return left + right;
}

class tbb_peer final : public peer {
public:
  const char* name() const noexcept override { return "tbb"; }
  std::string describe() const override {
    return std::string("tbb: oneTBB ") + TBB_VERSION_STRING +
           ", task_group in task_arena(w), global_control max_allowed_parallelism=w";
  }
  bool supports(workload w) const noexcept override {
    return w != workload::yield_pingpong && w != workload::churn_spawn_park &&
           w != workload::churn_wake_finish;
  }

  void start(unsigned workers) override {
    limit_.emplace(tbb::global_control::max_allowed_parallelism, workers);
    arena_.emplace(static_cast<int>(workers));
    arena_->initialize();
    // Wake the arena's worker threads once, so thread creation is not in the first figure.
    arena_->execute([workers] {
      tbb::task_group g;
      for (unsigned i = 0; i < 4 * workers; ++i) {
        g.run([] { std::this_thread::sleep_for(std::chrono::milliseconds(1)); });
      }
      g.wait();
    });
  }
  void stop() override {
    arena_.reset();
    limit_.reset();
  }

  std::string extra(workload w, const sizes& s) const override {
    if (w == workload::spawn_join) return "n=" + std::to_string(s.spawn_join_n) + " model=tasks";
    if (w == workload::skynet || w == workload::fib) return "model=tasks";
    return {};
  }

  double spawn_join(std::size_t n) override {
    double ns = 0;
    arena_->execute([&ns, n] {
      // relaxed: task_group::wait() already orders every task before its return.
      std::atomic<std::size_t> done{0};
      const auto t0 = clock::now();
      tbb::task_group g;
      for (std::size_t i = 0; i < n; ++i) {
        g.run([&done] { done.fetch_add(1, std::memory_order_relaxed); });
      }
      g.wait();
      ns = ns_since(t0) / static_cast<double>(n);
      verify("tbb spawn_join", static_cast<std::int64_t>(done.load(std::memory_order_relaxed)),
             static_cast<std::int64_t>(n));
    });
    return ns;
  }

  double skynet(std::int64_t leaves) override {
    std::int64_t total = 0;
    double ms = 0;
    arena_->execute([&] {
      const auto t0 = clock::now();
      total = skynet_node(0, leaves);
      ms = ms_since(t0);
    });
    verify("tbb skynet", total, skynet_total(leaves));
    return ms;
  }

  double fib(int n) override {
    std::int64_t value = 0;
    double ms = 0;
    arena_->execute([&] {
      const auto t0 = clock::now();
      value = fib_fork(n);
      ms = ms_since(t0);
    });
    verify("tbb fib", value, fib_value(n));
    return ms;
  }

  double idle(std::chrono::milliseconds d) override {
    const double cpu0 = process_cpu_ms();
    std::this_thread::sleep_for(d);
    return process_cpu_ms() - cpu0;
  }

private:
  std::optional<tbb::global_control> limit_;
  std::optional<tbb::task_arena> arena_;
};

}  // namespace

std::unique_ptr<peer> make_tbb_peer() { return std::make_unique<tbb_peer>(); }

}  // namespace tour
