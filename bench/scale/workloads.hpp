// bench/scale/workloads.hpp - the scaling benchmark's workloads (weft_scale): W2, W5, W4
// with many independent pairs, and W6 sharded, each written so that the same problem can
// run at any worker count and its result is checked (docs/scaling.md, "The scaling
// benchmark"; workload definitions: docs/benchmarks.md).
#pragma once

#include <weft/scheduler.hpp>

#include <cstdint>
#include <string>

namespace scale {

// Problem sizes. The same at every worker count of one run (strong scaling), so that
// throughput(n) / throughput(1) is the speedup. --quick divides them by ten (fib: n - 5),
// --big multiplies them by ten (fib: n + 5), for machines where the default problem is
// over in a few milliseconds at the top count.
struct sizes {
  std::int64_t skynet_leaves = 1'000'000;  // W2 leaves; a power of ten
  int fib_n = 30;                          // W5
  std::int64_t round_trips = 1'000'000;    // W4, over all pairs
  unsigned pairs = 64;                     // W4 pairs; main.cpp raises it to 4 x the top count
  int mutex_fibers = 1000;                 // W6
  int mutex_iters = 1000;                  // W6, per fiber
};
sizes quick(sizes s);
sizes big(sizes s);

// One timed repetition: what was done and how long it took (measured inside the root
// fiber, so scheduler start-up and shutdown are not in it).
struct sample {
  double items = 0;    // operations completed: spawns, round trips, lock/unlock pairs
  double seconds = 0;  // wall time of the workload alone
};

// A workload of the benchmark. run() executes one repetition on `sched` (whose worker
// count is the one measured), checks its result and aborts naming the workload when it is
// wrong, and returns the sample.
struct workload {
  const char* id;        // "W2", the --only key
  const char* name;      // RESULT workload field: "scale_W2_skynet"
  const char* unit;      // RESULT unit: "Mspawns/s"
  const char* per_item;  // what one item is, for the '#' lines: "spawn"
  sample (*run)(weft::scheduler& sched, const sizes& s);
};

// The four workloads, in the order they run; count() of them.
const workload* workloads();
int workload_count();

// Prints "weft_scale: <what>" on stderr and aborts: a workload computed a wrong result.
[[noreturn]] void fail(const std::string& what);

}  // namespace scale
