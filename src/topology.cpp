// topology.cpp - hwloc topology -> worker placement and steal tiers; thread pinning.
//
// plan_topology() steps (the rules and their reasons: docs/design.md, "Placement and
// steal order"):
//   1. Load a fresh hwloc topology (a few ms of sysfs reads; once per scheduler start, so
//      a cgroup cpuset changed since the last start is seen).
//   2. Usable PUs = calling thread's binding ∩ allowed cpuset (why the intersection and
//      why the thread binding: topology.hpp). Order them for placement: the first usable
//      PU of each core in logical order, then each core's second usable PU, and so on.
//      Hyperthread siblings share the core's L1/L2 and execution units, so a sibling is
//      used only once every core has a worker.
//   3. Place worker i on the i-th PU of that order, wrapping (oversubscription). The
//      default worker count is the number of cores with a usable PU.
//   4. For each pair of workers take the smallest CPU set both PUs share, in the chain
//      PU < core < L2 < L3 < NUMA node < package < machine (levels with the same CPUs
//      merged, absent ones skipped); that is the peer's steal tier.
// Any hwloc failure in 1-2 falls back to the affinity mask: unpinned, one flat tier.
// plan_described_topology() runs steps 2-4 on a synthetic topology (the test seam).
#include "topology.hpp"

#include <hwloc.h>
#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

namespace weft::detail {
namespace {

// errno after a failed call, or `fallback` when the callee did not set it (hwloc does
// not promise errno on every failure path). Callers clear errno before the call.
int errno_or(int fallback) noexcept { return errno != 0 ? errno : fallback; }

std::string errno_text(int err) { return std::system_category().message(err); }

// Owns one loaded hwloc topology. A load failure is recorded, not thrown: each user has
// a fallback (plan_topology) or an error code to return (pin_this_thread). After load
// the topology is only read, and hwloc allows concurrent readers of a loaded topology
// (hwloc.h, hwloc_topology_refresh: "multiple threads may concurrently consult").
class topology_holder {
 public:
  // This machine's topology (or whatever HWLOC_SYNTHETIC/HWLOC_XMLFILE describe).
  topology_holder() noexcept : topology_holder(nullptr) {}
  // `synthetic`: an hwloc synthetic description to load instead; nullptr for this machine.
  explicit topology_holder(const char* synthetic) noexcept {
    errno = 0;
    if (hwloc_topology_init(&topo_) != 0) {
      topo_ = nullptr;
      error_ = errno_or(ENOMEM);
      return;
    }
    errno = 0;
    if ((synthetic != nullptr && hwloc_topology_set_synthetic(topo_, synthetic) != 0) ||
        hwloc_topology_load(topo_) != 0) {
      error_ = errno_or(EINVAL);
      hwloc_topology_destroy(topo_);
      topo_ = nullptr;
    }
  }
  ~topology_holder() {
    if (topo_ != nullptr) hwloc_topology_destroy(topo_);
  }
  topology_holder(const topology_holder&) = delete;
  topology_holder& operator=(const topology_holder&) = delete;

  // The loaded topology, or nullptr when loading failed (see error()).
  hwloc_topology_t get() const noexcept { return topo_; }
  // errno of the failed init/load; 0 when get() != nullptr.
  int error() const noexcept { return error_; }

 private:
  hwloc_topology_t topo_ = nullptr;
  int error_ = 0;
};

struct bitmap_deleter {
  void operator()(hwloc_bitmap_s* set) const noexcept { hwloc_bitmap_free(set); }
};
using bitmap_ptr = std::unique_ptr<hwloc_bitmap_s, bitmap_deleter>;

bitmap_ptr make_bitmap() {
  bitmap_ptr set(hwloc_bitmap_alloc());
  if (set == nullptr) throw std::bad_alloc();
  return set;
}

// The usable PUs in placement order (step 2 of the top comment): the first usable PU of
// every core in logical order, then the second usable PU of every core that has one, and
// so on. `cores` is the length of the first round.
struct usable_pus {
  std::vector<hwloc_obj_t> order;  // empty on failure
  unsigned cores = 0;
  std::string failure;  // why `order` is empty
};

// Step 2 on an explicit usable cpuset.
usable_pus order_usable_pus(hwloc_topology_t topo, hwloc_const_cpuset_t usable) {
  // Usable PUs grouped by core, cores in logical order. Without Core objects (some
  // platforms have none) each PU stands for its own core.
  std::vector<std::pair<hwloc_obj_t, std::vector<hwloc_obj_t>>> by_core;
  for (hwloc_obj_t pu = hwloc_get_next_obj_inside_cpuset_by_type(topo, usable, HWLOC_OBJ_PU, nullptr);
       pu != nullptr; pu = hwloc_get_next_obj_inside_cpuset_by_type(topo, usable, HWLOC_OBJ_PU, pu)) {
    hwloc_obj_t core = hwloc_get_ancestor_obj_by_type(topo, HWLOC_OBJ_CORE, pu);
    if (core == nullptr) core = pu;
    auto it = std::find_if(by_core.begin(), by_core.end(),
                           [&](const auto& entry) { return entry.first == core; });
    if (it == by_core.end()) it = by_core.insert(by_core.end(), {core, {}});
    it->second.push_back(pu);
  }
  usable_pus result;
  result.cores = static_cast<unsigned>(by_core.size());
  for (std::size_t round = 0;; ++round) {
    const std::size_t before = result.order.size();
    for (const auto& entry : by_core) {
      if (round < entry.second.size()) result.order.push_back(entry.second[round]);
    }
    if (result.order.size() == before) break;
  }
  if (result.order.empty()) {
    result.failure = "this thread's CPU binding shares no CPU with hwloc's allowed cpuset";
  }
  return result;
}

// Step 2: usable = this thread's binding ∩ allowed cpuset.
usable_pus find_usable_pus(hwloc_topology_t topo) {
  bitmap_ptr usable = make_bitmap();
  errno = 0;
  if (hwloc_get_cpubind(topo, usable.get(), HWLOC_CPUBIND_THREAD) != 0) {
    usable_pus result;
    result.failure =
        "hwloc could not read this thread's CPU binding: " + errno_text(errno_or(EINVAL));
    return result;
  }
  if (hwloc_bitmap_and(usable.get(), usable.get(), hwloc_topology_get_allowed_cpuset(topo)) != 0) {
    throw std::bad_alloc();
  }
  return order_usable_pus(topo, usable.get());
}

// NUMA nodes are memory children in hwloc 2, never ancestors of a PU, so find the first
// node whose cpuset covers the PU.
hwloc_obj_t numa_node_of(hwloc_topology_t topo, hwloc_obj_t pu) noexcept {
  for (hwloc_obj_t node = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_NUMANODE, nullptr);
       node != nullptr; node = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_NUMANODE, node)) {
    if (node->cpuset != nullptr && hwloc_bitmap_isset(node->cpuset, pu->os_index)) return node;
  }
  return nullptr;
}

// Step 4: the distinct CPU sets around `pu`, smallest first: the PU, its core (with the
// caches private to it), then each wider cache, die, group, NUMA node and package, up to
// the whole machine. Two levels with the same CPUs are one domain (a per-core L2 is the
// core's; a NUMA node per package is the package's). Ancestors nest, and a NUMA node's
// CPUs are those of the object it hangs from, so sorting by size orders the chain.
std::vector<hwloc_const_cpuset_t> domains_of(hwloc_topology_t topo, hwloc_obj_t pu) {
  std::vector<hwloc_const_cpuset_t> sets;
  for (hwloc_obj_t obj = pu; obj != nullptr; obj = obj->parent) {
    if (obj->cpuset != nullptr) sets.push_back(obj->cpuset);
  }
  if (hwloc_obj_t node = numa_node_of(topo, pu)) sets.push_back(node->cpuset);
  std::stable_sort(sets.begin(), sets.end(), [](hwloc_const_cpuset_t a, hwloc_const_cpuset_t b) {
    return hwloc_bitmap_weight(a) < hwloc_bitmap_weight(b);
  });
  auto same_set = [](hwloc_const_cpuset_t a, hwloc_const_cpuset_t b) {
    return hwloc_bitmap_isequal(a, b) != 0;
  };
  sets.erase(std::unique(sets.begin(), sets.end(), same_set), sets.end());
  return sets;
}

// Step 4: index of the smallest of `domains` (domains_of) that holds `peer`; a PU outside
// all of them (cannot happen: the machine holds every PU) goes after the last.
unsigned tier_between(const std::vector<hwloc_const_cpuset_t>& domains, hwloc_obj_t peer) noexcept {
  unsigned i = 0;
  while (i < domains.size() && hwloc_bitmap_isset(domains[i], peer->os_index) == 0) ++i;
  return i;
}

// Groups every other worker by tier_of(w, v), nearest first, dropping empty tiers. Peers
// are visited from w + 1 onwards (wrapping) so that within a tier the workers do not
// all try the same victim first.
template <class TierOf>
std::vector<std::vector<std::vector<unsigned>>> build_steal_tiers(unsigned workers,
                                                                  TierOf tier_of) {
  std::vector<std::vector<std::vector<unsigned>>> tiers(workers);
  for (unsigned w = 0; w < workers; ++w) {
    std::vector<std::vector<unsigned>> buckets;
    for (unsigned k = 1; k < workers; ++k) {
      const unsigned v = (w + k) % workers;
      const unsigned t = tier_of(w, v);
      if (t >= buckets.size()) buckets.resize(t + 1);
      buckets[t].push_back(v);
    }
    for (auto& bucket : buckets) {
      if (!bucket.empty()) tiers[w].push_back(std::move(bucket));
    }
  }
  return tiers;
}

// Steps 3-4 on a loaded topology: every worker's planned os_cpu (pinning or not is the
// caller's business) and its steal tiers. `usable.order` is not empty.
topology_plan plan_on(hwloc_topology_t topo, const usable_pus& usable, unsigned requested) {
  const std::vector<hwloc_obj_t>& pus = usable.order;
  const auto pu_count = static_cast<unsigned>(pus.size());
  const unsigned workers = requested != 0 ? requested : usable.cores;
  const unsigned placed = std::min(workers, pu_count);  // distinct PUs in use
  std::vector<std::vector<hwloc_const_cpuset_t>> domains;
  domains.reserve(placed);
  for (unsigned i = 0; i < placed; ++i) domains.push_back(domains_of(topo, pus[i]));
  topology_plan plan;
  plan.workers.resize(workers);
  for (unsigned w = 0; w < workers; ++w) {
    plan.workers[w].os_cpu = static_cast<int>(pus[w % pu_count]->os_index);
  }
  plan.steal_tiers = build_steal_tiers(workers, [&](unsigned w, unsigned v) {
    return tier_between(domains[w % pu_count], pus[v % pu_count]);
  });
  return plan;
}

// CPUs in the calling thread's affinity mask; hardware_concurrency() if that cannot be
// read (more than CPU_SETSIZE CPUs); at least 1. Counts PUs, not cores: without hwloc
// the core structure is unknown.
unsigned affinity_cpu_count() noexcept {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) {
    return static_cast<unsigned>(CPU_COUNT(&set));
  }
  return std::max(1U, std::thread::hardware_concurrency());
}

// The plan without hwloc: unpinned workers, one flat steal tier.
topology_plan fallback_plan(unsigned requested, bool pin, const std::string& reason) {
  topology_plan plan;
  const unsigned workers = requested != 0 ? requested : affinity_cpu_count();
  plan.workers.resize(workers);
  plan.steal_tiers = build_steal_tiers(workers, [](unsigned, unsigned) { return 0U; });
  if (pin) plan.warning = "workers run unpinned: " + reason;
  return plan;
}

// Binding to a PU means something only for the running system with thread binding.
// With HWLOC_XMLFILE/synthetic topologies hwloc "binds" successfully doing nothing.
bool can_bind_threads(hwloc_topology_t topo) noexcept {
  const hwloc_topology_support* support = hwloc_topology_get_support(topo);
  return hwloc_topology_is_thissystem(topo) != 0 && support != nullptr &&
         support->cpubind != nullptr && support->cpubind->set_thisthread_cpubind != 0;
}

// The topology pin_this_thread() binds with, loaded on first use (the static's
// initialization is thread-safe) and never destroyed: a worker may still be starting
// and pin itself while static destructors run at exit. nullptr if out of memory.
const topology_holder* process_topology() noexcept {
  static const topology_holder* const topo = new (std::nothrow) topology_holder();
  return topo;
}

}  // namespace

topology_plan plan_topology(unsigned requested, bool pin) {
  const topology_holder holder;
  if (holder.get() == nullptr) {
    return fallback_plan(requested, pin,
                         "hwloc could not load the topology: " + errno_text(holder.error()));
  }
  const usable_pus usable = find_usable_pus(holder.get());
  if (usable.order.empty()) return fallback_plan(requested, pin, usable.failure);
  topology_plan plan = plan_on(holder.get(), usable, requested);
  const bool pinned = pin && can_bind_threads(holder.get());
  if (!pinned) {
    for (auto& worker : plan.workers) worker.os_cpu = -1;
  }
  if (pin && !pinned) {
    plan.warning = "workers run unpinned: hwloc cannot bind threads on this system";
  }
  return plan;
}

topology_plan plan_described_topology(const std::string& synthetic,
                                      const std::vector<int>& usable_cpus, unsigned requested) {
  const topology_holder holder(synthetic.c_str());
  if (holder.get() == nullptr) {
    throw std::invalid_argument("plan_described_topology: hwloc rejects the synthetic topology \"" +
                                synthetic + "\": " + errno_text(holder.error()));
  }
  bitmap_ptr usable = make_bitmap();
  if (usable_cpus.empty()) {
    if (hwloc_bitmap_copy(usable.get(), hwloc_topology_get_allowed_cpuset(holder.get())) != 0) {
      throw std::bad_alloc();
    }
  }
  for (int cpu : usable_cpus) {
    if (cpu < 0 || hwloc_bitmap_isset(hwloc_topology_get_complete_cpuset(holder.get()),
                                      static_cast<unsigned>(cpu)) == 0) {
      throw std::invalid_argument("plan_described_topology: no CPU " + std::to_string(cpu) +
                                  " in \"" + synthetic + "\"");
    }
    if (hwloc_bitmap_set(usable.get(), static_cast<unsigned>(cpu)) != 0) throw std::bad_alloc();
  }
  const usable_pus pus = order_usable_pus(holder.get(), usable.get());
  if (pus.order.empty()) throw std::invalid_argument("plan_described_topology: no usable CPU");
  return plan_on(holder.get(), pus, requested);
}

int pin_this_thread(int os_cpu) noexcept {
  if (os_cpu == -1) return 0;
  if (os_cpu < 0) return EINVAL;
  const topology_holder* topo = process_topology();
  if (topo == nullptr) return ENOMEM;
  if (topo->get() == nullptr) return ENOSYS;
  const bitmap_ptr set(hwloc_bitmap_alloc());
  if (set == nullptr || hwloc_bitmap_only(set.get(), static_cast<unsigned>(os_cpu)) != 0) {
    return ENOMEM;
  }
  // STRICT: the thread must run on exactly this PU, not merely prefer it.
  errno = 0;
  const int flags = HWLOC_CPUBIND_THREAD | HWLOC_CPUBIND_STRICT;
  return hwloc_set_cpubind(topo->get(), set.get(), flags) == 0 ? 0 : errno_or(EINVAL);
}

unsigned default_worker_count() {
  const topology_holder holder;
  if (holder.get() != nullptr) {
    const usable_pus usable = find_usable_pus(holder.get());
    if (!usable.order.empty()) return usable.cores;
  }
  return affinity_cpu_count();
}

}  // namespace weft::detail
