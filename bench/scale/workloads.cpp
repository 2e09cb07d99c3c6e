// bench/scale/workloads.cpp - W2, W5, W4 (independent pairs) and W6 (sharded) for
// weft_scale. Each runs inside sched.block_on() with the clock read in the root fiber.
// Why these four, and why W4 and W6 are reshaped: docs/scaling.md, "The scaling benchmark".
#include "workloads.hpp"

#include "../weft_skynet.hpp"

#include <weft/fiber.hpp>
#include <weft/sync/channel.hpp>
#include <weft/sync/mutex.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <vector>

namespace scale {
namespace {

using clock = std::chrono::steady_clock;

double seconds_since(clock::time_point t0) {
  return std::chrono::duration<double>(clock::now() - t0).count();
}

void verify(const char* what, std::int64_t got, std::int64_t want) {
  if (got != want) {
    fail(std::string(what) + ": wrong result " + std::to_string(got) + ", expected " +
         std::to_string(want));
  }
}


sample skynet(weft::scheduler& sched, const sizes& s) {
  std::int64_t total = 0;
  const double secs = sched.block_on([&] {
    const auto t0 = clock::now();
    total = weft_bench::skynet_node(0, s.skynet_leaves);
    return seconds_since(t0);
  });
  verify("W2 skynet", total, s.skynet_leaves * (s.skynet_leaves - 1) / 2);
  // Every node but the root is spawned: 10 + 100 + ... + leaves.
  return {static_cast<double>((10 * s.skynet_leaves - 10) / 9), secs};
}

// ---- W5 fib: spawn fib(n-1), compute fib(n-2) on this fiber, join.
std::int64_t fib_fork(int n) {
  if (n < 2) return n;
  auto left = weft::spawn(fib_fork, n - 1);
  const std::int64_t right = fib_fork(n - 2);
  return left.join() + right;
}

std::int64_t fib_value(int n) {
  std::int64_t a = 0, b = 1;
  for (int i = 0; i < n; ++i) {
    const std::int64_t c = a + b;
    a = b;
    b = c;
  }
  return a;
}

sample fib(weft::scheduler& sched, const sizes& s) {
  std::int64_t value = 0;
  const double secs = sched.block_on([&] {
    const auto t0 = clock::now();
    value = fib_fork(s.fib_n);
    return seconds_since(t0);
  });
  verify("W5 fib", value, fib_value(s.fib_n));
  // fib(n) makes fib(n+1) - 1 spawns.
  return {static_cast<double>(fib_value(s.fib_n + 1) - 1), secs};
}

// ---- W4 with independent pairs: each pair is W4's shape (a token back and forth through
// two capacity-1 channels); the pairs share nothing, so a perfect scheduler runs one pair
// per worker at a time with no cross-worker traffic.
struct pair_channels {
  weft::channel<std::int64_t> ping{1}, pong{1};
  std::int64_t sum = 0;  // written by the pair's pinger only, read after its join
};

void pinger(pair_channels& p, std::int64_t trips) {
  for (std::int64_t i = 0; i < trips; ++i) {
    if (p.ping.send(std::int64_t{i}) != weft::channel_status::ok) fail("W4 pairs: send on an open channel failed");
    const auto back = p.pong.recv();
    if (!back) fail("W4 pairs: the ponger's channel closed early");
    p.sum += *back;
  }
  p.ping.close();
}

void ponger(pair_channels& p) {
  while (auto v = p.ping.recv()) {
    if (p.pong.send(*v + 1) != weft::channel_status::ok) fail("W4 pairs: send on an open channel failed");
  }
}

sample chan_pairs(weft::scheduler& sched, const sizes& s) {
  const std::int64_t trips = s.round_trips / s.pairs;
  std::vector<std::unique_ptr<pair_channels>> pairs;
  for (unsigned i = 0; i < s.pairs; ++i) pairs.push_back(std::make_unique<pair_channels>());
  const double secs = sched.block_on([&] {
    std::vector<weft::join_handle<void>> fibers;
    fibers.reserve(2 * pairs.size());
    const auto t0 = clock::now();
    for (auto& p : pairs) {
      fibers.push_back(weft::spawn([&pc = *p] { ponger(pc); }));
      fibers.push_back(weft::spawn([&pc = *p, trips] { pinger(pc, trips); }));
    }
    for (auto& f : fibers) f.join();
    return seconds_since(t0);
  });
  // The ponger answers i with i + 1: a pair's sum is 1 + 2 + ... + trips.
  for (const auto& p : pairs) verify("W4 pairs", p->sum, trips * (trips + 1) / 2);
  return {static_cast<double>(trips) * static_cast<double>(s.pairs), secs};
}

// ---- W6 sharded: W6's fibers and iterations, but one mutex and counter per worker. Each
// shard has a root fiber that spawns the shard's fibers (fiber f belongs to shard
// f % shards) and joins them: weft cannot bind a fiber to a worker, but a spawn goes to the
// spawning worker's queue, so once the stealers have taken the shard roots, a shard's
// fibers mostly run on the worker its root landed on. Sharding divides the contention on
// each mutex; what is left is the cross-worker traffic of fibers that were stolen.
struct alignas(64) shard {  // one cache line each: neighbours must not false-share
  weft::mutex mu;
  std::int64_t counter = 0;  // guarded by mu
};

// The shard's fibers: f = first, first + shards, ... below fibers.
void run_shard(shard& sh, int first, int shards, const sizes& s) {
  std::vector<weft::join_handle<void>> fibers;
  for (int f = first; f < s.mutex_fibers; f += shards) {
    fibers.push_back(weft::spawn([&sh, iters = s.mutex_iters] {
      for (int i = 0; i < iters; ++i) {
        std::lock_guard<weft::mutex> lock(sh.mu);
        ++sh.counter;
      }
    }));
  }
  for (auto& f : fibers) f.join();
}

sample mutex_sharded(weft::scheduler& sched, const sizes& s) {
  const int shards = static_cast<int>(std::min<unsigned>(sched.worker_count(),
                                                         static_cast<unsigned>(s.mutex_fibers)));
  std::unique_ptr<shard[]> table(new shard[static_cast<std::size_t>(shards)]);
  const double secs = sched.block_on([&] {
    std::vector<weft::join_handle<void>> roots;
    const auto t0 = clock::now();
    for (int sh = 0; sh < shards; ++sh) {
      roots.push_back(weft::spawn([&table, &s, sh, shards] { run_shard(table[sh], sh, shards, s); }));
    }
    for (auto& r : roots) r.join();
    return seconds_since(t0);
  });
  for (int sh = 0; sh < shards; ++sh) {
    // Shards below fibers % shards have one fiber more than the others.
    const int fibers = s.mutex_fibers / shards + (sh < s.mutex_fibers % shards ? 1 : 0);
    verify("W6 sharded", table[sh].counter, std::int64_t{fibers} * s.mutex_iters);
  }
  return {static_cast<double>(s.mutex_fibers) * s.mutex_iters, secs};
}

const workload kWorkloads[] = {
    {"W2", "scale_W2_skynet", "Mspawns/s", "spawn", skynet},
    {"W5", "scale_W5_fib", "Mspawns/s", "spawn", fib},
    {"W4", "scale_W4_chan_pairs", "Mround_trips/s", "round trip", chan_pairs},
    {"W6", "scale_W6_mutex_sharded", "Mlocks/s", "lock/unlock", mutex_sharded},
};

}  // namespace

sizes quick(sizes s) {
  s.skynet_leaves /= 10;
  s.fib_n -= 5;  // fib(25): 121,392 spawns instead of 1,346,268
  s.round_trips /= 10;
  s.mutex_iters /= 10;
  return s;
}

sizes big(sizes s) {
  s.skynet_leaves *= 10;
  s.fib_n += 5;  // fib(35): 14.9 million spawns
  s.round_trips *= 10;
  s.mutex_iters *= 10;
  return s;
}

const workload* workloads() { return kWorkloads; }
int workload_count() { return static_cast<int>(sizeof kWorkloads / sizeof kWorkloads[0]); }

void fail(const std::string& what) {
  std::fflush(stdout);
  std::fprintf(stderr, "weft_scale: %s\n", what.c_str());
  std::abort();
}

}  // namespace scale
