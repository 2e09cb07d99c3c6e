// bench/tour/peer_boost_fiber.cpp - the tour's workloads on Boost.Fiber with
// boost::fibers::algo::work_stealing on every thread.
//
// Thread pool. Boost 1.74's work_stealing can be set up only once per process: its
// constructor takes a process-wide id from a static counter, sizes a static scheduler
// table once, and waits on a static barrier sized by the first caller. So the peer builds
// one pool for the whole tour: the tour's main thread (member 0) plus all_workers - 1
// helper threads, each calling use_scheduling_algorithm<work_stealing>(size). A run with w
// workers lets helpers 1 .. w-1 into their fiber schedulers; the other helpers stay
// parked in a plain std::condition_variable wait, where their (empty) schedulers neither
// run nor spin. Steps:
//   1. start(w): open_ = true, wake helpers 1..w-1; each leaves the plain wait and waits
//      on the fiber condition fcv_, which keeps its scheduler dispatching (and stealing).
//   2. workloads run as fibers spawned by the main thread, which joins them; the main
//      thread's scheduler dispatches while its main context waits.
//   3. stop(): open_ = false, notify fcv_; each helper's main context (pinned, never
//      stolen) resumes on its own thread and returns to the plain wait; stop() returns
//      once all helpers are back, so no helper spins during another peer's workload.
// work_stealing runs with suspend = false (Boost's default and the mode of its skynet
// examples): with suspend = true a sleeping thread is woken only for fibers made ready
// from another thread, never for fibers it could steal, so it would stop helping. The
// price shows in W9: idle threads spin.
//
// Stacks: boost::fibers::pooled_fixedsize_stack (64 KiB, as weft's default). Its
// boost::pool is not thread-safe, and a stolen fiber frees its stack on the thread that
// finished it, so the peer keeps one pool behind a mutex (locked_pooled_stack) for the
// whole process, so later repetitions reuse stacks whose pages are already faulted in (a
// first touch cost 1.5-3 us per page on the 2-core VM; a cold W1 repetition is ~10x slower).
//
// Smaller problems. Boost.Fiber allocates a fiber's stack when it is created and frees it
// only after the join, and its FIFO ready queue lets parents run on before their subtrees
// finish, so most of a fork-join tree is alive at once: full-size W5 (fib(30)) peaked at
// 8.9 GB RSS and took 3.6-24 s per repetition. So every workload except W3 and W9 runs at a
// tenth of the size (W1 n/10, W2 leaves/10, W5 fib(n-5)); extra() says so and
// work_factor() lets the table scale the time figures (W1's ns/fiber needs no scaling).
//
// W1 uses launch::post, as weft's spawn does (the spawner continues; every fiber, stack
// included, exists before it runs). W2 and W5 use launch::dispatch (the child runs at
// once, the parent becomes stealable), as Boost's own skynet benchmarks do; post's
// breadth-first order would keep every fiber of the tree alive.
// Benchmark workloads cited here (W1, W2, W3, W5, W9): docs/benchmarks.md.
#include "tour.hpp"

#include <boost/fiber/algo/work_stealing.hpp>
#include <boost/fiber/all.hpp>
#include <boost/version.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace tour {
namespace {

namespace bf = boost::fibers;

constexpr std::size_t kStackSize = 64 * 1024;

// The reduced sizes described at the top of the file.
std::size_t reduced_n(std::size_t n) { return n / 10; }
std::int64_t reduced_leaves(std::int64_t leaves) { return leaves / 10; }
int reduced_fib(int n) { return n - 5; }

// pooled_fixedsize_stack shared by every thread of a run; the mutex makes its
// boost::pool safe for a stack allocated on one thread and freed on another.
class locked_pooled_stack {
public:
  locked_pooled_stack() : s_(std::make_shared<state>()) {}
  boost::context::stack_context allocate() const {
    std::lock_guard<std::mutex> lk(s_->m);
    return s_->pool.allocate();
  }
  void deallocate(boost::context::stack_context& sc) const noexcept {
    std::lock_guard<std::mutex> lk(s_->m);
    s_->pool.deallocate(sc);
  }

private:
  struct state {
    std::mutex m;
    bf::pooled_fixedsize_stack pool{kStackSize};
  };
  std::shared_ptr<state> s_;
};

// The process-wide thread pool described at the top of the file.
class fiber_pool {
public:
  explicit fiber_pool(unsigned size) : size_(size) {
    for (unsigned i = 1; i < size_; ++i) helpers_.emplace_back([this, i] { helper_main(i); });
    // Last of the `size_` callers: work_stealing's constructor waits for all of them.
    bf::use_scheduling_algorithm<bf::algo::work_stealing>(size_);
  }
  ~fiber_pool() {
    {
      std::lock_guard<std::mutex> lk(m_);
      exit_ = true;
    }
    cv_.notify_all();
    for (auto& t : helpers_) t.join();
  }
  unsigned size() const noexcept { return size_; }

  // Step 1: lets helpers 1 .. workers-1 run their schedulers. Main thread only.
  void open(unsigned workers) {
    {
      std::lock_guard<bf::mutex> lk(fm_);
      open_ = true;
    }
    std::lock_guard<std::mutex> lk(m_);
    active_ = std::min(workers, size_);
    ++epoch_;
    cv_.notify_all();
  }
  // Step 3: returns once every helper is parked again. Main thread only.
  void close() {
    {
      std::lock_guard<bf::mutex> lk(fm_);
      open_ = false;
    }
    fcv_.notify_all();
    std::unique_lock<std::mutex> lk(m_);
    back_cv_.wait(lk, [this] { return dispatching_ == 0; });
  }

private:
  void helper_main(unsigned index) {
    bf::use_scheduling_algorithm<bf::algo::work_stealing>(size_);
    std::uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, [&] { return exit_ || (epoch_ != seen && index < active_); });
        if (exit_) return;
        seen = epoch_;
        ++dispatching_;
      }
      {
        std::unique_lock<bf::mutex> lk(fm_);
        fcv_.wait(lk, [this] { return !open_; });
      }
      std::lock_guard<std::mutex> lk(m_);
      --dispatching_;
      back_cv_.notify_one();
    }
  }

  const unsigned size_;
  std::vector<std::thread> helpers_;
  // Plain side: parks helper threads outright. Guarded by m_.
  std::mutex m_;
  std::condition_variable cv_, back_cv_;
  unsigned active_ = 1;        // helpers with index < active_ take part in this run
  std::uint64_t epoch_ = 0;    // bumped by open(): one wake-up per run
  unsigned dispatching_ = 0;   // helpers between the plain wait and their return to it
  bool exit_ = false;
  // Fiber side: a helper waiting here keeps dispatching fibers. open_ guarded by fm_.
  bf::mutex fm_;
  bf::condition_variable fcv_;
  bool open_ = false;
};

std::int64_t skynet_node(const locked_pooled_stack& salloc, std::int64_t num,
                         std::int64_t size) {
  if (size == 1) return num;
  const std::int64_t child = size / 10;
  std::int64_t sums[10];
  bf::fiber kids[10];
  for (int i = 0; i < 10; ++i) {
    kids[i] = bf::fiber(bf::launch::dispatch, std::allocator_arg, salloc,
                        [&salloc, &sums, i, num, child] {
                          sums[i] = skynet_node(salloc, num + i * child, child);
                        });
  }
  std::int64_t sum = 0;
  for (int i = 0; i < 10; ++i) {
    kids[i].join();
    sum += sums[i];
  }
  return sum;
}

std::int64_t fib_fork(const locked_pooled_stack& salloc, int n) {
  if (n < 2) return n;
  std::int64_t left = 0;
  bf::fiber kid(bf::launch::dispatch, std::allocator_arg, salloc,
                [&salloc, &left, n] { left = fib_fork(salloc, n - 1); });
  const std::int64_t right = fib_fork(salloc, n - 2);
  kid.join();
  return left + right;
}

class boost_fiber_peer final : public peer {
public:
  explicit boost_fiber_peer(unsigned all_workers) : pool_(std::max(2u, all_workers)) {}
  // (work_stealing with one thread would spin forever looking for a victim other than
  // itself, hence at least two members; on a one-core machine member 1 is never opened.)

  const char* name() const noexcept override { return "boost_fiber"; }
  std::string describe() const override {
    return "boost_fiber: Boost " + std::to_string(BOOST_VERSION / 100000) + "." +
           std::to_string(BOOST_VERSION / 100 % 1000) +
           ", algo::work_stealing(" + std::to_string(pool_.size()) +
           ", suspend=false) on every thread, pooled_fixedsize_stack 64 KiB behind a mutex";
  }
  bool supports(workload w) const noexcept override {
    return w != workload::churn_spawn_park && w != workload::churn_wake_finish;
  }

  void start(unsigned workers) override { pool_.open(workers); }
  void stop() override { pool_.close(); }

  std::string extra(workload w, const sizes& s) const override {
    switch (w) {
      case workload::spawn_join:
        return "n=" + std::to_string(reduced_n(s.spawn_join_n)) + " launch=post";
      case workload::skynet:
        return "leaves=" + std::to_string(reduced_leaves(s.skynet_leaves)) + " launch=dispatch";
      case workload::fib:
        return "fib=" + std::to_string(reduced_fib(s.fib_n)) + " launch=dispatch";
      case workload::idle:
        return "suspend=false";
      default:
        return {};
    }
  }
  double work_factor(workload w, const sizes& s) const override {
    if (w == workload::skynet) {
      return static_cast<double>(skynet_spawns(s.skynet_leaves)) /
             static_cast<double>(skynet_spawns(reduced_leaves(s.skynet_leaves)));
    }
    if (w == workload::fib) {
      return static_cast<double>(fib_spawns(s.fib_n)) /
             static_cast<double>(fib_spawns(reduced_fib(s.fib_n)));
    }
    return 1.0;
  }

  // The harness passes the spec sizes; these run the reduced ones (see the file comment).
  double spawn_join(std::size_t requested) override {
    const std::size_t n = reduced_n(requested);
    // acq_rel: each fiber's increment is ordered before the last one's, whose notify under
    // m pairs with the waiter's predicate check under m (no lost wake-up); the acquire
    // load then sees all n increments.
    std::atomic<std::size_t> done{0};
    bf::mutex m;
    bf::condition_variable cv;
    const auto t0 = clock::now();
    for (std::size_t i = 0; i < n; ++i) {
      bf::fiber(bf::launch::post, std::allocator_arg, salloc_, [&] {
        if (done.fetch_add(1, std::memory_order_acq_rel) + 1 == n) {
          std::lock_guard<bf::mutex> lk(m);
          cv.notify_one();
        }
      }).detach();
    }
    {
      std::unique_lock<bf::mutex> lk(m);
      cv.wait(lk, [&] { return done.load(std::memory_order_acquire) == n; });
    }
    return ns_since(t0) / static_cast<double>(n);
  }

  double skynet(std::int64_t requested) override {
    const std::int64_t leaves = reduced_leaves(requested);
    std::int64_t total = 0;
    const auto t0 = clock::now();
    // The root is a fiber too, so it can migrate like every other node.
    bf::fiber(bf::launch::post, std::allocator_arg, salloc_, [&] {
      total = skynet_node(salloc_, 0, leaves);
    }).join();
    const double ms = ms_since(t0);
    verify("boost_fiber skynet", total, skynet_total(leaves));
    return ms;
  }

  double yield_pingpong(std::size_t yields) override {
    auto player = [yields] {
      for (std::size_t i = 0; i < yields; ++i) boost::this_fiber::yield();
    };
    const auto t0 = clock::now();
    bf::fiber a(bf::launch::post, std::allocator_arg, salloc_, player);
    bf::fiber b(bf::launch::post, std::allocator_arg, salloc_, player);
    a.join();
    b.join();
    return ns_since(t0) / (2.0 * static_cast<double>(yields));
  }

  double fib(int requested) override {
    const int n = reduced_fib(requested);
    std::int64_t value = 0;
    const auto t0 = clock::now();
    bf::fiber(bf::launch::post, std::allocator_arg, salloc_, [&] {
      value = fib_fork(salloc_, n);
    }).join();
    const double ms = ms_since(t0);
    verify("boost_fiber fib", value, fib_value(n));
    return ms;
  }

  double idle(std::chrono::milliseconds d) override {
    const double cpu0 = process_cpu_ms();
    // The main thread's scheduler dispatches (and, with suspend=false, spins) meanwhile.
    boost::this_fiber::sleep_for(d);
    return process_cpu_ms() - cpu0;
  }

private:
  fiber_pool pool_;
  locked_pooled_stack salloc_;
};

}  // namespace

std::unique_ptr<peer> make_boost_fiber_peer(unsigned all_workers) {
  return std::make_unique<boost_fiber_peer>(all_workers);
}

}  // namespace tour
