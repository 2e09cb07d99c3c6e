// Unit tests for src/topology.hpp: default and oversubscribed plans stay inside the
// affinity mask, steal tiers partition the peers, pinning lands on the CPU, and a
// restricted affinity (what `taskset -c N` does) yields exactly one worker on N.
#include "topology.hpp"

#include <gtest/gtest.h>

#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <thread>
#include <vector>

namespace {

using weft::detail::default_worker_count;
using weft::detail::pin_this_thread;
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
  const unsigned cores = default_worker_count();
  const topology_plan plan = plan_topology(4, true);
  EXPECT_TRUE(plan.warning.empty()) << plan.warning;
  ASSERT_EQ(plan.workers.size(), 4U);
  const std::vector<int> allowed = affinity_cpus();
  for (unsigned w = 0; w < 4; ++w) {
    EXPECT_TRUE(contains(allowed, plan.workers[w].os_cpu)) << "cpu " << plan.workers[w].os_cpu;
    EXPECT_EQ(plan.workers[w].os_cpu, plan.workers[w % cores].os_cpu) << "worker " << w;
  }
  expect_valid_tiers(plan);
  // Workers sharing a CPU share a core: each is in the other's nearest tier.
  for (unsigned w = 0; w < 4; ++w) {
    for (unsigned v = 0; v < 4; ++v) {
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

}  // namespace
