// src/runtime.hpp - what a weft::scheduler owns: workers, the injection queue, the idle
// bookkeeping and the shutdown state. See scheduler.cpp for start-up, shutdown and the
// lock order.
#pragma once

#include "fiber_impl.hpp"
#include "idle.hpp"
#include "inspect.hpp"
#include "diag.hpp"
#include "trace.hpp"
#include "reactor.hpp"
#include "sched_fuzz.hpp"
#include "stack_arena.hpp"
#include "timers.hpp"

#include <weft/scheduler.hpp>

#include "peer_queue.hpp"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace weft::detail {

// Test seam: the (n+1)-th worker thread start from now on fails as pthread_create with
// EAGAIN would (n < 0: never). Only for tests (a worker thread that cannot start).
void thread_start_inject_failure_after(long n) noexcept;
// Test seam: worker `index`'s pin (hwloc bind) fails with EPERM, as under a cgroup cpuset
// that excludes its CPU (n < 0: never). Only for tests (a worker that cannot be pinned).
void pin_inject_failure_for_worker(int index) noexcept;
int pin_injected_failure(unsigned index) noexcept;  // EPERM for the injected worker, else 0
// Test seam (tests/lifetime_test.cpp): called first thing in runtime::notify_idle. For a
// wake from outside the workers (wake -> worker::push_remote) the fiber is queued, so it
// may already run, finish, and let its scheduler be destroyed, while the waker is here.
// Install it before the threads that wake start (nullptr: off).
void set_notify_idle_hook(void (*hook)() noexcept) noexcept;

class worker;
class blocking_pool_impl;

class runtime {
public:
  runtime(scheduler& owner, const scheduler::options& opts);
  ~runtime();

  // Any thread; not from one of this runtime's fibers.
  void shutdown() noexcept;
  // scheduler::shutdown(deadline); deadline in steady ns, timer_shard::none: none.
  bool shutdown_until(std::int64_t deadline) noexcept;
  // Outside spawn (not on one of our workers). Throws after shutdown began.
  void spawn_external(task* t);
  // Makes a suspended fiber runnable. Any thread. From outside the workers it is counted
  // in outside_wakes_ until its last touch of the runtime (scheduler.cpp shutdown step 4).
  void wake(fiber_impl* f) noexcept;
  // Appends items to the injection queue and runs the idle protocol's P2-P4.
  void inject(const item* items, std::size_t n) noexcept;
  // P2-P4 of idle.hpp: wakes a parked worker when nobody is searching.
  void notify_idle(int preferred) noexcept;
  // Every queue of every worker plus the injection queue (idle.hpp step C3).
  bool any_work_visible() const noexcept;

  scheduler& owner() noexcept { return owner_; }
  unsigned worker_count() const noexcept { return static_cast<unsigned>(workers_.size()); }
  worker& worker_at(unsigned i) noexcept { return *workers_[i]; }
  scheduler_stats stats() const;
  // Earliest next() over every worker's timer shard, or timer_shard::none (timers.hpp
  // steps 3 and 7: a parking worker's timeout, the watchdog's sleep). Relaxed hints.
  std::int64_t earliest_timer() const noexcept;
  // True in a child process forked after this runtime was created: none of its threads
  // exist here. spawns throw std::logic_error, shutdown does nothing.
  bool forked() const noexcept;

  // Fiber depot: the second level of stack reuse, shared by the workers (the protocol and
  // the purge policy: the comment above runtime::give_spare_fibers in scheduler.cpp; the
  // stack lifecycle: stack_arena.hpp). A worker whose pool is full gives its surplus
  // here, one whose pool is empty takes from here before carving a new stack. Only these
  // slow paths take spare_mu_, and they move a batch (worker::spare_batch) per lock, not
  // one fiber (docs/scaling.md, "Fiber spare list"). Any worker thread.
  // Moves fs[0, k) to the hot list, k = min(n, room left); returns k. Never allocates.
  std::size_t give_spare_fibers(fiber_impl* const* fs, std::size_t n) noexcept;
  // Moves up to n hot fibers to out, the most recently given first; returns how many.
  std::size_t take_spare_fibers(fiber_impl** out, std::size_t n) noexcept;
  // Moves up to n purged stacks (no fiber on them, pages returned) to out; returns how many.
  std::size_t take_purged_stacks(stack* out, std::size_t n) noexcept;
  // Step 1 of the stack lifecycle for a worker: up to n fresh stacks from the arenas, with
  // room reserved in the depot for all of them. Throws std::system_error / bad_alloc.
  std::size_t carve_stacks(stack* out, std::size_t n);
  // Purge tick (policy steps P3-P4): when due and the depot was not used for a whole
  // period, destroys its hot fibers beyond spare_keep_ and returns their pages.
  // Called by a worker about to park and, when due, by busy workers' fairness ticks.
  void purge_idle_stacks() noexcept;
  // steady ns of the next purge tick while the depot holds hot fibers beyond the
  // watermark, else timer_shard::none. A parking worker wakes then at the latest (P4).
  std::int64_t purge_deadline() const noexcept {
    return purge_at_.load(std::memory_order_relaxed);  // relaxed: a hint (purge_at_)
  }
  std::size_t spare_fiber_count() noexcept;   // hot fibers in the depot, for tests
  std::size_t purged_stack_count() noexcept;  // purged stacks in the depot, for tests
  std::vector<stack> purged_stacks() noexcept;  // a copy, for tests (mincore)
  stack_arenas& arenas() noexcept { return arenas_; }

  scheduler& owner_;
  const scheduler::options opts_;  // normalised: stack sizes rounded, workers resolved
  // Every fiber record (inspect.hpp). Before the workers and the depot: destroyed last.
  fiber_registry registry_{opts_.workers};
  std::size_t inline_reserve_;     // a join runs a child inline only with this much stack left
  const std::uint64_t fuzz_seed_;  // sched_fuzz.hpp; 0: off. Before the workers: they read it
  fuzz_windows_ref fuzz_windows_{fuzz_seed_ != 0};  // sched_fuzz.hpp choice 8
  idle idle_;
  // WEFT_SCHEDTRACE / WEFT_STALL_MS, read once (diag.hpp). Its sampling state is the
  // reactor thread's alone; workers only read the flags fixed at construction.
  diagnostics diag_;
  tracer tracer_;           // trace.hpp; sessions from trace_start or WEFT_TRACE
  std::string trace_path_;  // WEFT_TRACE: written by shutdown() when the session still runs
  peer_queue<item> inject_;
  // Items in inject_; see worker::remote_count_ for why a count is kept.
  alignas(64) std::atomic<std::int64_t> inject_count_{0};
  alignas(64) std::atomic<bool> closing_{false};  // set once by shutdown(); spawns check it
  std::atomic<bool> stop_{false};                 // set once every fiber finished
  std::atomic<std::uint64_t> external_spawned_{0};
  // Wakes from outside the workers still inside wake() (scheduler.cpp shutdown step 4).
  alignas(64) std::atomic<std::int64_t> outside_wakes_{0};
  std::atomic<std::uint64_t> id_source_{1};
  id_clock id_clock_;  // when each worker block of ids was taken (inspect.hpp step 6)
  // Inspections (inspect.hpp): the pause generation (0: no pause), read by every worker
  // at every landing and written only by inspections, so its line stays shared.
  alignas(64) std::atomic<std::uint32_t> pause_{0};
  std::uint32_t pause_gen_ = 0;  // guarded by inspect_mu_
  std::mutex inspect_mu_;        // one inspection at a time
  bool membarrier_ok_ = false;   // step 4's barrier is available (set at construction)
  // Live-fiber slots not held by any worker (max_fibers); unused when unlimited_.
  alignas(64) std::atomic<std::int64_t> budget_{0};
  std::unique_ptr<reactor> reactor_;  // I/O readiness; outlives the workers
  bool unlimited_ = true;
  std::int64_t budget_batch_ = 64;

  // Worker thread i, once it tried to pin itself (0 or an errno; os_cpu < 0: 0). Any
  // thread; the constructor waits for every worker's report under options::pin_strict.
  void report_pin(unsigned index, int os_cpu, int err) noexcept;

private:
  // Bounded shutdown: asks every fiber an inspection finds suspended to stop (returns
  // how many it asked first), and names what is left once (scheduler.cpp).
  std::size_t stop_waiting_fibers() noexcept;
  void report_unfinished(std::int64_t late_ns) noexcept;
  // Stops and joins the worker threads started so far and the reactor, for a constructor
  // that throws (nothing was spawned yet).
  void abandon_start() noexcept;

  std::vector<std::unique_ptr<worker>> workers_;
  std::vector<std::thread> threads_;
  struct pin_report {
    int os_cpu = -1;
    int err = 0;
  };
  std::mutex start_mu_;
  std::condition_variable start_cv_;
  std::vector<pin_report> pins_;  // guarded by start_mu_; filled by report_pin
  unsigned pins_reported_ = 0;    // guarded by start_mu_
  std::mutex shutdown_mu_;
  // The earliest deadline (steady ns; timer_shard::none: none) of every shutdown_until
  // call so far. A call lowers it *before* it waits for shutdown_mu_, and the call that
  // drains reads it on every round: a bounded call made while an unbounded one (the
  // destructor, shutdown()) drains brings its deadline to that drain instead of waiting
  // behind it forever. relaxed: a value read again each round; nothing is published
  // through it.
  std::atomic<std::int64_t> shutdown_deadline_{timer_shard::none};
  bool stop_walked_ = false;  // guarded by shutdown_mu_: the drain asked fibers to stop
  // Before the depot: destroyed (unmapped) after the depot's fibers (~runtime).
  stack_arenas arenas_;
  std::mutex spare_mu_;
  std::vector<fiber_impl*> spare_;  // guarded by spare_mu_: hot list, LIFO (back = warmest)
  std::vector<stack> purged_;       // guarded by spare_mu_: purged stacks, LIFO
  // guarded by spare_mu_: whether the current purge period took from / gave to the depot
  // (purge policy P2).
  bool period_took_ = false;
  bool period_gave_ = false;
  // guarded by spare_mu_: capacity reserved in spare_ and purged_ (>= every carved stack
  // of the default size, so that give never allocates: carve_stacks keeps it so).
  std::size_t depot_room_ = 0;
  std::size_t spare_keep_ = 0;  // hot fibers a purge leaves in the depot (P3); const
  // spare_.size() + purged_.size(), stored under spare_mu_ after each change. relaxed: a
  // hint that lets take_* skip the lock when the depot is empty (a stale 0 only carves a
  // new stack).
  std::atomic<std::size_t> spare_n_{0};
  // steady ns of the next purge tick, or timer_shard::none when the hot list holds no more
  // than spare_keep_. Stored under spare_mu_; read without it. relaxed: a hint (P4 says
  // why a stale value is harmless).
  alignas(64) std::atomic<std::int64_t> purge_at_{timer_shard::none};
  std::atomic<bool> shut_down_{false};
  unsigned fork_gen_ = 0;  // fork count when created (scheduler.cpp); see forked()

public:
  // Jobs of the pool below submitted and not yet completed (blocking_pool.hpp step 8), for
  // the deadlock report. Before the pool: it outlives the pool's threads.
  std::atomic<std::int64_t> blocking_jobs_{0};
  // run_blocking's pool, created on first use (blocking_pool.cpp). Last member: destroyed
  // (threads joined) first, before the workers and idle_ its completions wake fibers on.
  std::once_flag blocking_once_;
  std::unique_ptr<blocking_pool_impl> blocking_;
};

}  // namespace weft::detail
