// Unit tests for src/topology.hpp: default and oversubscribed plans stay inside the
// affinity mask, steal tiers partition the peers, pinning lands on the CPU, and a
// restricted affinity (what `taskset -c N` does) yields exactly one worker on N.
// Described machines (hwloc synthetic topologies, plan_described_topology): placement
// and steal order on a 2-socket SMT server, an EPYC-like socket with 4 NUMA nodes and
// an L3 per 8 cores, a 16-core desktop, and an allowed cpuset with holes; the rules
// are in docs/design.md, "Placement and steal order".
#include "topology.hpp"

#include <gtest/gtest.h>

#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using weft::detail::default_worker_count;
using weft::detail::pin_this_thread;
using weft::detail::plan_described_topology;
using weft::detail::plan_topology;
using weft::detail::topology_plan;

// CPUs in the calling thread's affinity mask, ascending.
std::vector<int> affinity_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  EXPECT_EQ(sched_getaffinity(0, sizeof set, &set), 0);
  std::vector<int> cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  }
  return cpus;
}

bool contains(const std::vector<int>& cpus, int cpu) {
  return std::find(cpus.begin(), cpus.end(), cpu) != cpus.end();
}

// Every worker's tiers are non-empty and hold each other worker exactly once.
void expect_valid_tiers(const topology_plan& plan) {
  const auto workers = static_cast<unsigned>(plan.workers.size());
  ASSERT_EQ(plan.steal_tiers.size(), workers);
  for (unsigned w = 0; w < workers; ++w) {
    std::multiset<unsigned> seen;
    for (const auto& tier : plan.steal_tiers[w]) {
      EXPECT_FALSE(tier.empty()) << "worker " << w;
      seen.insert(tier.begin(), tier.end());
    }
    std::multiset<unsigned> expected;
    for (unsigned v = 0; v < workers; ++v) {
      if (v != w) expected.insert(v);
    }
    EXPECT_EQ(seen, expected) << "worker " << w;
  }
}

TEST(Topology, DefaultPlanOnePinnedWorkerPerCore) {
  const topology_plan plan = plan_topology(0, true);
  EXPECT_TRUE(plan.warning.empty()) << plan.warning;
  ASSERT_GE(plan.workers.size(), 1U);
  EXPECT_EQ(plan.workers.size(), default_worker_count());
  const std::vector<int> allowed = affinity_cpus();
  std::set<int> used;
  for (const auto& worker : plan.workers) {
    EXPECT_TRUE(contains(allowed, worker.os_cpu)) << "cpu " << worker.os_cpu;
    EXPECT_TRUE(used.insert(worker.os_cpu).second) << "cpu " << worker.os_cpu << " twice";
  }
  expect_valid_tiers(plan);
}

TEST(Topology, OversubscribedPlanIsRoundRobin) {
  // Every usable PU once (cores first, then SMT siblings), then round again. Usable PUs
  // are the affinity mask here (no cgroup cpuset narrower than it).
  const std::vector<int> allowed = affinity_cpus();
  const auto pus = static_cast<unsigned>(allowed.size());
  const unsigned n = 2 * pus;
  const topology_plan plan = plan_topology(n, true);
  EXPECT_TRUE(plan.warning.empty()) << plan.warning;
  ASSERT_EQ(plan.workers.size(), n);
  std::set<int> first_round;
  for (unsigned w = 0; w < n; ++w) {
    EXPECT_TRUE(contains(allowed, plan.workers[w].os_cpu)) << "cpu " << plan.workers[w].os_cpu;
    EXPECT_EQ(plan.workers[w].os_cpu, plan.workers[w % pus].os_cpu) << "worker " << w;
    if (w < pus) first_round.insert(plan.workers[w].os_cpu);
  }
  EXPECT_EQ(first_round.size(), pus);
  expect_valid_tiers(plan);
  // Workers sharing a CPU share a core: each is in the other's nearest tier.
  for (unsigned w = 0; w < n; ++w) {
    for (unsigned v = 0; v < n; ++v) {
      if (v == w || plan.workers[v].os_cpu != plan.workers[w].os_cpu) continue;
      const auto& nearest = plan.steal_tiers[w].front();
      EXPECT_NE(std::find(nearest.begin(), nearest.end(), v), nearest.end()) << w << " " << v;
    }
  }
}

TEST(Topology, UnpinnedPlanHasNoCpusButTiers) {
  for (unsigned requested : {0U, 1U, 3U}) {
    const topology_plan plan = plan_topology(requested, false);
    EXPECT_TRUE(plan.warning.empty()) << plan.warning;
    EXPECT_EQ(plan.workers.size(), requested != 0 ? requested : default_worker_count());
    for (const auto& worker : plan.workers) EXPECT_EQ(worker.os_cpu, -1);
    expect_valid_tiers(plan);
  }
}

TEST(Topology, PinThisThreadRunsThere) {
  for (int cpu : affinity_cpus()) {
    int rc = -1;
    int ran_on = -1;
    std::thread t([&] {
      rc = pin_this_thread(cpu);
      ran_on = sched_getcpu();
    });
    t.join();
    EXPECT_EQ(rc, 0) << "cpu " << cpu;
    EXPECT_EQ(ran_on, cpu);
  }
}

TEST(Topology, PinThisThreadReportsErrors) {
  std::thread t([] {
    EXPECT_EQ(pin_this_thread(-1), 0);               // unpinned: no-op
    EXPECT_NE(pin_this_thread(1 << 20), 0);          // no such CPU
    EXPECT_NE(pin_this_thread(-5), 0);
  });
  t.join();
}

// What the child reports through its exit code.
enum child_status : int { ok = 0, setaffinity_failed, wrong_count, wrong_cpu, warned };

child_status plan_under_single_cpu(int cpu) {
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  if (sched_setaffinity(0, sizeof one, &one) != 0) return setaffinity_failed;
  const topology_plan plan = plan_topology(0, true);
  if (!plan.warning.empty()) return warned;
  if (plan.workers.size() != 1 || default_worker_count() != 1) return wrong_count;
  if (plan.workers[0].os_cpu != cpu) return wrong_cpu;
  // Oversubscribed: both workers stay on the one CPU instead of escaping to another.
  const topology_plan two = plan_topology(2, true);
  if (two.workers.size() != 2) return wrong_count;
  if (two.workers[0].os_cpu != cpu || two.workers[1].os_cpu != cpu) return wrong_cpu;
  return ok;
}

// hwloc's topology and allowed cpuset ignore `taskset` (docs/platform.md, hwloc); the plan
// must not. Restricting the affinity in a forked child keeps the test process intact.
TEST(Topology, RestrictedAffinityGetsOneWorker) {
  const std::vector<int> cpus = affinity_cpus();
  ASSERT_FALSE(cpus.empty());
  // The last CPU: CPU 0 would also pass with a plan that ignores the restriction.
  const int cpu = cpus.back();
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) _exit(plan_under_single_cpu(cpu));  // _exit: no gtest or atexit teardown
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_EQ(WEXITSTATUS(status), ok) << "see child_status";
}

// ------------------------------------------------------------ described machines

// Linux numbers SMT siblings far apart (CPU c and c + cores); `indexes=2*N:1*2` makes
// hwloc's synthetic PUs do the same: core c holds P#c and P#(c + N).
// 2 sockets x 32 cores x 2 PUs; one L3 and one NUMA node per socket, an L2 per core.
const std::string two_socket_smt = "pack:2 [numa] l3:1 l2:32 core:1 pu:2(indexes=2*64:1*2)";
// EPYC-like: 2 sockets, 4 NUMA nodes per socket, 2 L3s per node (8 cores each), SMT.
const std::string epyc_like = "pack:2 numa:4 l3:2 core:8 pu:2(indexes=2*128:1*2)";
// One socket, 16 cores, no SMT, a shared L3.
const std::string desktop16 = "pack:1 [numa] l3:1 core:16 pu:1";
// One socket, 16 cores with SMT (sibling of c is c + 16), L2 shared by core pairs.
const std::string desktop16_smt = "pack:1 [numa] l3:1 l2:8 core:2 pu:2(indexes=2*16:1*2)";

std::vector<unsigned> range(unsigned first, unsigned last) {  // [first, last)
  std::vector<unsigned> v;
  for (unsigned i = first; i < last; ++i) v.push_back(i);
  return v;
}

std::vector<unsigned> join(std::vector<unsigned> a, const std::vector<unsigned>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::vector<unsigned> without(std::vector<unsigned> a, const std::set<unsigned>& drop) {
  const auto dropped = [&](unsigned v) { return drop.count(v) != 0; };
  a.erase(std::remove_if(a.begin(), a.end(), dropped), a.end());
  return a;
}

std::vector<int> os_cpus(const topology_plan& plan) {
  std::vector<int> cpus;
  for (const auto& worker : plan.workers) cpus.push_back(worker.os_cpu);
  return cpus;
}

std::vector<int> iota_cpus(int first, int last) {  // [first, last)
  std::vector<int> v;
  for (int i = first; i < last; ++i) v.push_back(i);
  return v;
}

// w's tiers, each compared as a set (the order inside a tier is a rotation).
void expect_tiers(const topology_plan& plan, unsigned w,
                  const std::vector<std::vector<unsigned>>& expected) {
  ASSERT_LT(w, plan.steal_tiers.size());
  std::vector<std::set<unsigned>> got;
  for (const auto& tier : plan.steal_tiers[w]) got.emplace_back(tier.begin(), tier.end());
  std::vector<std::set<unsigned>> want;
  for (const auto& tier : expected) want.emplace_back(tier.begin(), tier.end());
  EXPECT_EQ(got, want) << "worker " << w;
}

TEST(TopologyDescribed, TwoSocketSmtOneWorkerPerCoreByDefault) {
  const topology_plan plan = plan_described_topology(two_socket_smt, {}, 0);
  EXPECT_TRUE(plan.warning.empty());
  // 64 cores: one worker each, on the first PU (CPUs 0-63); no SMT sibling used.
  EXPECT_EQ(os_cpus(plan), iota_cpus(0, 64));
  expect_valid_tiers(plan);
  // Socket peers (shared L3 and NUMA node) first, then the other socket.
  expect_tiers(plan, 0, {range(1, 32), range(32, 64)});
  expect_tiers(plan, 40, {join(range(32, 40), range(41, 64)), range(0, 32)});
}

TEST(TopologyDescribed, TwoSocketSmtSiblingsOnlyAfterEveryCore) {
  // 128 workers fill every PU once: workers 64-127 on the siblings (CPUs 64-127).
  const topology_plan plan = plan_described_topology(two_socket_smt, {}, 128);
  EXPECT_EQ(os_cpus(plan), iota_cpus(0, 128));
  expect_valid_tiers(plan);
  // The SMT sibling first, then the socket, then the other socket.
  expect_tiers(plan, 0,
               {{64}, join(range(1, 32), range(65, 96)), join(range(32, 64), range(96, 128))});
  expect_tiers(plan, 97, {{33}, without(join(range(32, 64), range(96, 128)), {33, 97}),
                          join(range(0, 32), range(64, 96))});
  // 80 workers: 64 cores, then siblings of cores 0-15 only; nobody shares a PU.
  const topology_plan partial = plan_described_topology(two_socket_smt, {}, 80);
  EXPECT_EQ(os_cpus(partial), iota_cpus(0, 80));
}

TEST(TopologyDescribed, TwoSocketSmtOversubscribedWrapsOverAllPus) {
  const topology_plan plan = plan_described_topology(two_socket_smt, {}, 130);
  ASSERT_EQ(plan.workers.size(), 130U);
  for (unsigned w = 0; w < 130; ++w) EXPECT_EQ(plan.workers[w].os_cpu, static_cast<int>(w % 128));
  expect_valid_tiers(plan);
  // Worker 128 shares worker 0's PU: nearest of all, before the SMT sibling.
  expect_tiers(plan, 0, {{128}, {64},
                         join(join(range(1, 32), range(65, 96)), {129}),
                         join(range(32, 64), range(96, 128))});
}

TEST(TopologyDescribed, EpycLikeStealsFromL3ThenNumaThenSocketThenRemote) {
  const topology_plan plan = plan_described_topology(epyc_like, {}, 0);
  EXPECT_EQ(os_cpus(plan), iota_cpus(0, 128));
  expect_valid_tiers(plan);
  expect_tiers(plan, 0, {range(1, 8), range(8, 16), range(16, 64), range(64, 128)});
  // Worker 21: L3 of cores 16-23, NUMA node of 16-31, socket 0-63.
  expect_tiers(plan, 21, {join(range(16, 21), range(22, 24)), range(24, 32),
                          join(range(0, 16), range(32, 64)), range(64, 128)});
  // With SMT siblings in use, the sibling comes before the L3 peers.
  const topology_plan full = plan_described_topology(epyc_like, {}, 256);
  EXPECT_EQ(os_cpus(full), iota_cpus(0, 256));
  expect_tiers(full, 0,
               {{128}, join(range(1, 8), range(129, 136)), join(range(8, 16), range(136, 144)),
                join(range(16, 64), range(144, 192)), join(range(64, 128), range(192, 256))});
}

TEST(TopologyDescribed, Desktop16) {
  const topology_plan plan = plan_described_topology(desktop16, {}, 0);
  EXPECT_EQ(os_cpus(plan), iota_cpus(0, 16));
  expect_tiers(plan, 5, {join(range(6, 16), range(0, 5))});
  // Fewer workers than cores: the first cores, one each.
  EXPECT_EQ(os_cpus(plan_described_topology(desktop16, {}, 4)), iota_cpus(0, 4));
  // Twice oversubscribed: worker w + 16 shares w's CPU and is its nearest peer.
  const topology_plan over = plan_described_topology(desktop16, {}, 32);
  for (unsigned w = 0; w < 32; ++w) EXPECT_EQ(over.workers[w].os_cpu, static_cast<int>(w % 16));
  expect_tiers(over, 3, {{19}, without(range(0, 32), {3, 19})});
}

TEST(TopologyDescribed, SharedL2IsATierOfItsOwn) {
  // Cores 2k and 2k+1 share an L2: after the SMT sibling, before the rest of the L3.
  const topology_plan plan = plan_described_topology(desktop16_smt, {}, 32);
  EXPECT_EQ(os_cpus(plan), iota_cpus(0, 32));
  expect_tiers(plan, 4, {{20}, {5, 21}, without(range(0, 32), {4, 5, 20, 21})});
}

TEST(TopologyDescribed, AllowedCpusetWithHolesIsRespected) {
  // desktop16_smt without cores 3 and 9 (CPUs 3, 19, 9, 25) and without CPU 5 (core 5
  // keeps only its sibling, CPU 21).
  std::vector<int> allowed;
  for (int cpu = 0; cpu < 32; ++cpu) {
    if (cpu != 3 && cpu != 19 && cpu != 9 && cpu != 25 && cpu != 5) allowed.push_back(cpu);
  }
  const topology_plan plan = plan_described_topology(desktop16_smt, allowed, 0);
  // One worker per core that has a usable PU: 14, core 5 on its sibling.
  EXPECT_EQ(os_cpus(plan), (std::vector<int>{0, 1, 2, 4, 21, 6, 7, 8, 10, 11, 12, 13, 14, 15}));
  expect_valid_tiers(plan);
  // All 27 usable PUs, cores before siblings, then wrap; never a CPU outside the set.
  const topology_plan all = plan_described_topology(desktop16_smt, allowed, 28);
  const std::vector<int> second_round{16, 17, 18, 20, 22, 23, 24, 26, 27, 28, 29, 30, 31};
  std::vector<int> expected = os_cpus(plan);
  expected.insert(expected.end(), second_round.begin(), second_round.end());
  expected.push_back(0);
  EXPECT_EQ(os_cpus(all), expected);
  for (int cpu : os_cpus(all)) EXPECT_TRUE(contains(allowed, cpu)) << "cpu " << cpu;
  expect_valid_tiers(all);
}

TEST(TopologyDescribed, BadDescriptionsAreRejected) {
  EXPECT_THROW(plan_described_topology("pack:two core:banana", {}, 0), std::invalid_argument);
  EXPECT_THROW(plan_described_topology(desktop16, {16}, 0), std::invalid_argument);
  EXPECT_THROW(plan_described_topology(desktop16, {-1}, 0), std::invalid_argument);
}

}  // namespace
