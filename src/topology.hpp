// topology.hpp - which cores the workers use, whom each worker steals from first, and
// pinning a worker thread to its core.
//
// The only code that includes hwloc. When hwloc cannot load a topology the
// plan falls back to the calling thread's affinity mask (no pinning, one flat
// steal tier) and says so in topology_plan::warning; the scheduler decides
// whether that warning is fatal (strict pinning) or only reported.
//
// Which CPUs count: the calling thread's CPU binding (sched_getaffinity(0),
// what `nproc` reports) intersected with hwloc's allowed cpuset (cgroup
// cpuset). hwloc's own topology and allowed cpuset ignore `taskset` (measured:
// docs/platform.md, hwloc), so without the intersection a scheduler started under
// `taskset -c 0` would pin a worker to CPU 1 and escape the restriction.
// Rejected: hwloc_get_cpubind(HWLOC_CPUBIND_PROCESS), which on Linux is the
// union over every thread of the process: a program that restricts only its
// own thread (sched_setaffinity(0, ...)) would be escaped through any thread
// started earlier, e.g. a sanitizer's background thread.
// Rejected: HWLOC_TOPOLOGY_FLAG_RESTRICT_TO_CPUBINDING, which needs
// IS_THISSYSTEM as well and shrinks the topology itself, losing the cache
// and package structure the steal tiers are built from.
#pragma once

#include <string>
#include <vector>

namespace weft::detail {

// Where one worker runs.
struct worker_placement {
  int os_cpu = -1;  // OS CPU index (hwloc PU os_index) to pin to; -1 = unpinned
};

// The result of plan_topology(): placements and steal order for every worker.
struct topology_plan {
  // One entry per worker; size() is the worker count.
  std::vector<worker_placement> workers;
  // steal_tiers[w]: the other workers grouped by distance from w, nearest first: the
  // smallest CPU set w's PU shares with theirs, in the chain PU (oversubscription),
  // core (SMT siblings), L2, L3, NUMA node, package, machine; levels holding the same
  // CPUs are one tier, empty tiers are omitted. Every other worker index appears
  // exactly once across w's tiers. Within a tier the order starts after w (w+1, w+2,
  // ... wrapping), so workers do not all try the same victim first.
  std::vector<std::vector<std::vector<unsigned>>> steal_tiers;
  // Non-empty when pinning was requested but cannot be honoured (hwloc
  // failed to load, no thread binding support); the workers are unpinned.
  std::string warning;
};

// Plans `requested` workers (0: one per usable core, see default_worker_count()).
// Worker i gets the i-th usable PU in this order: the first usable PU of every core
// (hwloc logical order), then the second PU of every core that has one (SMT siblings
// only once every core has a worker), and so on; with more workers than usable PUs the
// order wraps (oversubscription). pin == false: every os_cpu is -1, steal tiers still
// follow the placement. Any thread; does not block beyond reading sysfs (hwloc load, a
// few milliseconds). Throws only std::bad_alloc.
topology_plan plan_topology(unsigned requested, bool pin);

// Pins the calling thread to OS CPU `os_cpu` (strict thread binding to that
// one PU). os_cpu == -1 is a no-op. Any thread; the first call loads a
// process-wide hwloc topology. Returns 0, or an errno value (EINVAL for a CPU
// hwloc does not know, ENOSYS when hwloc could not load, ...). Never throws.
int pin_this_thread(int os_cpu) noexcept;

// Worker count of plan_topology(0, ...): cores with at least one PU in
// (calling thread's binding ∩ allowed cpuset); >= 1. Any thread.
unsigned default_worker_count();

// Test seam: plan_topology's placement and steal tiers on a described machine instead
// of this one. `synthetic` is an hwloc synthetic topology description (hwloc_topology_
// set_synthetic), e.g. "pack:2 l3:1 core:32 pu:2(indexes=2*64:1*2)"; `usable_cpus`
// lists the OS CPU indexes the process may use (thread binding ∩ allowed cpuset), empty
// for all. Every os_cpu is the planned one; nothing is pinned, warning stays empty.
// Any thread. Throws std::invalid_argument when hwloc rejects the description or a
// listed CPU is not in it.
topology_plan plan_described_topology(const std::string& synthetic,
                                      const std::vector<int>& usable_cpus, unsigned requested);

}  // namespace weft::detail
