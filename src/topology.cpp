// topology.cpp - hwloc topology -> worker placement and steal tiers; thread pinning.
//
// plan_topology() steps:
//   1. Load a fresh hwloc topology (a few ms of sysfs reads; once per scheduler start, so
//      a cgroup cpuset changed since the last start is seen).
//   2. Usable PUs = calling thread's binding ∩ allowed cpuset (why the intersection and
//      why the thread binding: topology.hpp). Walk them in logical order and keep the
//      first usable PU of each core: one worker per core, as hyperthread siblings share
//      the core's L1/L2 and would compete for it.
//   3. Place worker i on core i % cores (round-robin when oversubscribed).
//   4. For each pair of workers take the nearest level their cores share (core/L2,
//      L3/package, NUMA node, nothing); that is the peer's steal tier.
// Any hwloc failure in 1-2 falls back to the affinity mask: unpinned, one flat tier.
#include "topology.hpp"

#include <hwloc.h>
#include <sched.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <memory>
#include <new>
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
  topology_holder() noexcept {
    errno = 0;
    if (hwloc_topology_init(&topo_) != 0) {
      topo_ = nullptr;
      error_ = errno_or(ENOMEM);
      return;
    }
    errno = 0;
    if (hwloc_topology_load(topo_) != 0) {
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

// One usable core: the PU a worker placed there pins to, and the objects that decide
// the steal tier between two cores. A missing level (no L3, no Core objects) is nullptr.
struct core_slot {
  hwloc_obj_t pu = nullptr;
  hwloc_obj_t core = nullptr;
  hwloc_obj_t l2 = nullptr;
  hwloc_obj_t l3 = nullptr;
  hwloc_obj_t package = nullptr;
  hwloc_obj_t numa = nullptr;
};

// NUMA nodes are memory children in hwloc 2, never ancestors of a PU, so find the first
// node whose cpuset covers the PU.
hwloc_obj_t numa_node_of(hwloc_topology_t topo, hwloc_obj_t pu) noexcept {
  for (hwloc_obj_t node = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_NUMANODE, nullptr);
       node != nullptr; node = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_NUMANODE, node)) {
    if (node->cpuset != nullptr && hwloc_bitmap_isset(node->cpuset, pu->os_index)) return node;
  }
  return nullptr;
}

core_slot describe(hwloc_topology_t topo, hwloc_obj_t pu) noexcept {
  core_slot slot;
  slot.pu = pu;
  slot.core = hwloc_get_ancestor_obj_by_type(topo, HWLOC_OBJ_CORE, pu);
  slot.l2 = hwloc_get_ancestor_obj_by_type(topo, HWLOC_OBJ_L2CACHE, pu);
  slot.l3 = hwloc_get_ancestor_obj_by_type(topo, HWLOC_OBJ_L3CACHE, pu);
  slot.package = hwloc_get_ancestor_obj_by_type(topo, HWLOC_OBJ_PACKAGE, pu);
  slot.numa = numa_node_of(topo, pu);
  return slot;
}

struct usable_cores {
  std::vector<core_slot> cores;  // logical order; empty on failure
  std::string failure;           // why `cores` is empty
};

// Step 2 of the top comment.
usable_cores find_usable_cores(hwloc_topology_t topo) {
  usable_cores result;
  bitmap_ptr usable = make_bitmap();
  errno = 0;
  if (hwloc_get_cpubind(topo, usable.get(), HWLOC_CPUBIND_THREAD) != 0) {
    result.failure =
        "hwloc could not read this thread's CPU binding: " + errno_text(errno_or(EINVAL));
    return result;
  }
  if (hwloc_bitmap_and(usable.get(), usable.get(), hwloc_topology_get_allowed_cpuset(topo)) != 0) {
    throw std::bad_alloc();
  }
  const hwloc_const_cpuset_t set = usable.get();
  for (hwloc_obj_t pu = hwloc_get_next_obj_inside_cpuset_by_type(topo, set, HWLOC_OBJ_PU, nullptr);
       pu != nullptr; pu = hwloc_get_next_obj_inside_cpuset_by_type(topo, set, HWLOC_OBJ_PU, pu)) {
    const core_slot slot = describe(topo, pu);
    // Without Core objects (some platforms have none) each PU stands for its own core.
    const bool core_taken = slot.core != nullptr &&
        std::any_of(result.cores.begin(), result.cores.end(),
                    [&](const core_slot& c) { return c.core == slot.core; });
    if (!core_taken) result.cores.push_back(slot);
  }
  if (result.cores.empty()) {
    result.failure = "this thread's CPU binding shares no CPU with hwloc's allowed cpuset";
  }
  return result;
}

bool same(hwloc_obj_t a, hwloc_obj_t b) noexcept { return a != nullptr && a == b; }

constexpr unsigned tier_count = 4;

// Step 4: 0 core or L2, 1 L3 or package, 2 NUMA node, 3 nothing shared. Two workers on
// the same PU (oversubscription) share the core.
unsigned tier_between(const core_slot& a, const core_slot& b) noexcept {
  if (a.pu == b.pu || same(a.core, b.core) || same(a.l2, b.l2)) return 0;
  if (same(a.l3, b.l3) || same(a.package, b.package)) return 1;
  if (same(a.numa, b.numa)) return 2;
  return 3;
}

// Groups every other worker by tier_of(w, v) < tier_count, dropping empty tiers. Peers
// are visited from w + 1 onwards (wrapping) so that within a tier the workers do not
// all try the same victim first.
template <class TierOf>
std::vector<std::vector<std::vector<unsigned>>> build_steal_tiers(unsigned workers,
                                                                  TierOf tier_of) {
  std::vector<std::vector<std::vector<unsigned>>> tiers(workers);
  for (unsigned w = 0; w < workers; ++w) {
    std::array<std::vector<unsigned>, tier_count> buckets;
    for (unsigned k = 1; k < workers; ++k) {
      const unsigned v = (w + k) % workers;
      buckets[tier_of(w, v)].push_back(v);
    }
    for (auto& bucket : buckets) {
      if (!bucket.empty()) tiers[w].push_back(std::move(bucket));
    }
  }
  return tiers;
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
  const usable_cores usable = find_usable_cores(holder.get());
  if (usable.cores.empty()) return fallback_plan(requested, pin, usable.failure);

  const std::vector<core_slot>& cores = usable.cores;
  const auto core_count = static_cast<unsigned>(cores.size());
  const unsigned workers = requested != 0 ? requested : core_count;
  const bool pinned = pin && can_bind_threads(holder.get());
  topology_plan plan;
  plan.workers.resize(workers);
  for (unsigned w = 0; w < workers; ++w) {
    if (pinned) plan.workers[w].os_cpu = static_cast<int>(cores[w % core_count].pu->os_index);
  }
  plan.steal_tiers = build_steal_tiers(workers, [&](unsigned w, unsigned v) {
    return tier_between(cores[w % core_count], cores[v % core_count]);
  });
  if (pin && !pinned) {
    plan.warning = "workers run unpinned: hwloc cannot bind threads on this system";
  }
  return plan;
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
    const usable_cores usable = find_usable_cores(holder.get());
    if (!usable.cores.empty()) return static_cast<unsigned>(usable.cores.size());
  }
  return affinity_cpu_count();
}

}  // namespace weft::detail
