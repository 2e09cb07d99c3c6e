// src/scheduler.cpp - construction, orderly shutdown, outside spawns and wakes.
//
// Shutdown protocol:
//   1. closing_ is set (seq_cst). An outside spawn increments external_spawned_ (seq_cst)
//      and then reads closing_; shutdown sets closing_ and then reads the counters. With
//      both seq_cst, either the spawn sees closing_ (it undoes its increment and throws)
//      or shutdown sees its increment (and waits for that fiber).
//   2. Fibers of this scheduler may still spawn while it drains; their spawns are counted
//      in their worker's spawned_ before the child is published.
//   3. Quiescence: sum(completed) is read first (acquire), then sum(spawned) +
//      external_spawned_. A completion observed implies its spawn's increment is visible
//      (spawn -> publish -> run -> complete is a happens-before chain), so the sums can be
//      equal only when every fiber ever spawned has finished; nothing can spawn after
//      that (only running fibers and outside threads can, and the latter are refused).
//   4. Outside wakers: a wake from outside the workers (runtime::wake from a plain thread,
//      a blocking-pool thread, another scheduler's worker) makes its fiber runnable in
//      worker::push_remote and then still touches the runtime (remote count, idle
//      bookkeeping, unpark), so the fiber may run and finish, and step 3 pass, while the
//      waker is still inside. Such wakes are counted in outside_wakes_ around
//      push_remote, and shutdown waits for the count to drain after step 3: the runtime
//      is freed only after shutdown returned (the lifetime rule of wait_list.hpp step 5,
//      applied to the scheduler). A counted wake's increment is ordered before its
//      fiber's completion (the queue's hand-over, then the completion counter that step
//      3 reads with acquire), so step 3's quiescence implies the increment is visible.
//      Wakes from the workers and the reactor thread are not counted: shutdown and
//      ~runtime join those threads before anything is freed.
//   5. stop_ is set (release) and every worker unparked; a worker exits when it finds no
//      work and sees stop_. Workers destroy their pooled fibers on their own threads.
// A fiber blocked forever (a user deadlock) keeps shutdown waiting; every 5 s shutdown
// prints how many fibers it is waiting for, so the hang is diagnosable, not silent.
//
// Lock order: runtime::shutdown_mu_ is held only by shutdown(), which may take idle::lock_
// under it; nothing else is taken under idle::lock_. runtime::spare_mu_ is a leaf (taken
// alone, on the fiber-pool slow paths), and so is stack_arenas::mu_ (carve_stacks takes
// them one after the other, never nested). timer_shard::lock_ -> idle::lock_ (see timers.hpp).
// Benchmark workloads cited here (W8): docs/benchmarks.md.
#include "runtime.hpp"

#include "assert.hpp"
#include "blocking_pool.hpp"
#include "sched_fuzz.hpp"
#include "sanitizers.hpp"
#include "stack.hpp"
#include "topology.hpp"
#include "tsan_scope.hpp"
#include "worker.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <pthread.h>
#include <stdexcept>
#include <string>
#include <system_error>

namespace weft {
namespace detail {

namespace {

scheduler::options normalise(scheduler::options o, unsigned workers) {
  constexpr std::size_t max_stack = std::size_t{1} << 30;
  if (o.stack_size < min_stack_size)
    throw std::invalid_argument("weft::scheduler::options::stack_size: " +
                                std::to_string(o.stack_size) + " bytes is below the minimum of " +
                                std::to_string(min_stack_size));
  if (o.stack_size > max_stack)
    throw std::invalid_argument("weft::scheduler::options::stack_size: " +
                                std::to_string(o.stack_size) + " bytes is above the maximum of " +
                                std::to_string(max_stack));
  if (o.guard_size == 0 || o.guard_size > max_stack)
    throw std::invalid_argument("weft::scheduler::options::guard_size: must be between 1 byte "
                                "(rounded up to a page) and 1 GiB, got " +
                                std::to_string(o.guard_size));
  if (o.workers > 4096)
    throw std::invalid_argument("weft::scheduler::options::workers: " + std::to_string(o.workers) +
                                " is above the maximum of 4096");
  o.workers = workers;
  o.stack_size = round_to_pages(o.stack_size * sanitizer_stack_multiplier);
  o.guard_size = round_to_pages(o.guard_size);
  return o;
}

std::once_flag pin_warning_once;

// fork(): the child has none of the parent's worker, reactor or pool threads. A child
// handler counts forks; a runtime created before the last fork is a copy whose threads
// do not exist here (relaxed: the child runs this with a single thread).
std::atomic<unsigned> fork_generation{0};
// Test seam (thread_start_inject_failure_after): fail the start of the n-th worker thread.
std::atomic<long> thread_start_failures_after{-1};
std::once_flag atfork_once;
void note_fork_in_child() noexcept { fork_generation.fetch_add(1, std::memory_order_relaxed); }

}  // namespace

runtime::runtime(scheduler& owner, const scheduler::options& opts)
    : owner_(owner),
      opts_(normalise(opts, opts.workers ? opts.workers : default_worker_count())),
      inline_reserve_(std::max<std::size_t>(opts_.stack_size / 4, 8 * 1024)),
      fuzz_seed_(resolve_schedule_seed(opts.schedule_seed)),
      idle_(opts_.workers),
      arenas_(opts_.stack_size, opts_.guard_size) {
  std::call_once(atfork_once, [] { pthread_atfork(nullptr, nullptr, note_fork_in_child); });
  fork_gen_ = fork_generation.load(std::memory_order_relaxed);
  membarrier_ok_ = membarrier_register();  // inspect.hpp step 4
  topology_plan plan = plan_topology(opts_.workers, opts_.pin);
  if (!plan.warning.empty() && opts_.pin && opts_.pin_strict)
    throw std::system_error(ENOTSUP, std::generic_category(),
                            "weft::scheduler: options::pin_strict: " + plan.warning);
  if (!plan.warning.empty())
    std::call_once(pin_warning_once, [&] {
      std::fprintf(stderr, "weft: %s; workers run unpinned\n", plan.warning.c_str());
    });
  const std::size_t cap = opts_.max_fibers ? opts_.max_fibers : stack_cap_from_map_count();
  unlimited_ = cap == SIZE_MAX;
  if (!unlimited_) {
    budget_.store(static_cast<std::int64_t>(cap), std::memory_order_relaxed);
    budget_batch_ = std::clamp<std::int64_t>(static_cast<std::int64_t>(cap / (8 * opts_.workers)),
                                             1, 64);
  }
  // The depot keeps this many hot fibers through a purge (P3): as many as the workers'
  // pools hold together, so a burst twice the pools' size is still served warm.
  spare_keep_ = opts_.stack_cache * opts_.workers;
  workers_.reserve(opts_.workers);
  for (unsigned i = 0; i < opts_.workers; ++i) workers_.push_back(std::make_unique<worker>(*this, i));
  // After the workers: its thread reads their timer shards (timers.hpp step 7) at once.
  reactor_ = std::make_unique<reactor>(*this);
  for (auto& w : workers_) w->timers().set_watchdog(reactor_.get());
  threads_.reserve(opts_.workers);
  pins_.resize(opts_.workers);
  for (unsigned i = 0; i < opts_.workers; ++i) {
    try {
      // relaxed: a test seam, set before the scheduler is created.
      if (thread_start_failures_after.load(std::memory_order_relaxed) >= 0 &&
          thread_start_failures_after.fetch_sub(1, std::memory_order_relaxed) == 0)
        throw std::system_error(EAGAIN, std::generic_category(), "pthread_create (injected)");
      threads_.emplace_back(&worker::thread_main, workers_[i].get(), plan.workers[i].os_cpu,
                            std::move(plan.steal_tiers[i]));
    } catch (const std::system_error& e) {
      abandon_start();
      throw std::system_error(e.code(), "weft::scheduler: cannot start worker thread " +
                                            std::to_string(i) + " of " +
                                            std::to_string(opts_.workers) + " (" + e.what() +
                                            "); RLIMIT_NPROC or memory may be exhausted");
    }
  }
  // WEFT_TRACE=path: a trace session from the start, written at shutdown (trace.hpp).
  if (const char* p = std::getenv("WEFT_TRACE"); p && *p) {
    trace_path_ = p;
    tracer_.start(*this, tracer::default_events);
  }
  if (opts_.pin && opts_.pin_strict) {
    // Each worker pins itself first thing (worker::thread_main) and reports; a failure
    // fails the constructor rather than leaving a worker on the wrong CPU.
    std::unique_lock<std::mutex> g(start_mu_);
    start_cv_.wait(g, [&] { return pins_reported_ == opts_.workers; });
    for (unsigned i = 0; i < opts_.workers; ++i) {
      if (pins_[i].err == 0) continue;
      const pin_report r = pins_[i];
      g.unlock();
      abandon_start();
      throw std::system_error(r.err, std::generic_category(),
                              "weft::scheduler: options::pin_strict: cannot pin worker " +
                                  std::to_string(i) + " to CPU " + std::to_string(r.os_cpu));
    }
  }
  dump_signal_join(*this);  // WEFT_DUMP_SIGNAL (inspect.hpp): last, once nothing can throw
}

void runtime::abandon_start() noexcept {
  // Workers already started are stopped and joined (none has work: nothing was spawned
  // yet); the rest is torn down by the members' destructors.
  stop_.store(true, std::memory_order_release);
  for (auto& w : workers_) w->unpark();
  for (auto& t : threads_) t.join();
  // The reactor thread reads the workers' timer shards: stop it before the members'
  // destructors free the workers (they run in reverse declaration order, workers_
  // first). Found by startup_test (a worker thread that cannot start): a use-after-free,
  // then a hang in ~reactor.
  reactor_.reset();
}

void runtime::report_pin(unsigned index, int os_cpu, int err) noexcept {
  {
    std::lock_guard<std::mutex> g(start_mu_);
    pins_[index] = pin_report{os_cpu, err};
    ++pins_reported_;
  }
  start_cv_.notify_all();
}

void thread_start_inject_failure_after(long n) noexcept {
  thread_start_failures_after.store(n, std::memory_order_relaxed);
}

namespace {
std::atomic<int> pin_failure_worker{-1};  // test seam; relaxed: set before the scheduler
}  // namespace

void pin_inject_failure_for_worker(int index) noexcept {
  pin_failure_worker.store(index, std::memory_order_relaxed);
}

int pin_injected_failure(unsigned index) noexcept {
  return pin_failure_worker.load(std::memory_order_relaxed) == static_cast<int>(index) ? EPERM : 0;
}


// Fiber depot protocol (the second level of stack reuse; stack_arena.hpp has a stack's
// whole lifecycle, worker::fiber_for the first level):
//   D1. A worker's pool (worker::pool_, at most options::stack_cache suspended fibers) is
//       the hot path: no lock, no syscall. Its surplus moves here a batch per lock
//       (give_spare_fibers); an empty pool refills a batch per lock (take_spare_fibers),
//       then from purged stacks (take_purged_stacks), then from the arenas (carve_stacks).
//       spare_mu_ is taken once per batch (32 fibers with the defaults): with 64 workers
//       churning at ~1 µs per fiber that is ~2M acquisitions a second spread over 64
//       threads, short (a memcpy of 32 pointers); the per-worker pools absorb steady
//       state. (Rejected: a lock-free stack of batches: ABA and a reclamation scheme
//       for a path that is not hot.)
//   D2. give never allocates (it runs in noexcept post actions): carve_stacks reserves
//       room in spare_ and purged_ for every carved stack before handing them out, and
//       every default-size stack is in at most one place, so size() <= depot_room_.
// Purge policy (when idle stacks give their memory back, and who does it):
//   P1. Nothing is purged from the workers' pools: stack_cache x workers stacks stay warm.
//   P2. The depot notes whether the current purge period (purge_period_ns) took from it
//       or gave to it (period_took_, period_gave_).
//   P3. A tick at the end of a period in which nobody took or gave keeps spare_keep_ hot
//       fibers and purges the rest, oldest first (the front of spare_): their fibers are
//       destroyed, their stacks' pages returned with batched madvise(MADV_DONTNEED)
//       calls outside the lock (stacks_purge), and the stacks filed in purged_ (reused
//       without a syscall: a fiber record is rebuilt on them). A tick after a period in
//       which the depot was used purges nothing. So an idle depot returns its memory
//       between one and two periods (0.5-1 s) after its last use, and a wave that drains
//       or refills it, however long (10^6 fibers take 15 s on a loaded 2-vCPU VM), keeps
//       every stack it will reach.
//       Rejected: a low-water mark of the hot list (purge what no take reached in a
//       period), and a demand window (keep the peak of stacks in use over the last two
//       periods): waves longer than the window had their not-yet-reached stacks purged,
//       and the next wave of 10^6 fibers faulted up to every page back in. The cost of
//       this rule: a workload that touches the depot in every period (a steady server
//       whose fibers outnumber the pools) keeps its peak's stacks warm until it idles.
//   P4. Who: a worker about to park runs the tick if due, and sleeps no later than
//       purge_at_ (so an idle process returns a burst's memory with no work to wake it);
//       a busy worker's fairness tick runs it when purge_at_ has passed, from its
//       scheduler context only (never on a fiber's stack). purge_at_ is a
//       relaxed hint: a stale none delays the tick until the next store of it, which
//       every give makes; a stale time only runs a tick that finds nothing due.
namespace {
// P2-P3's period. Idle depot stacks keep their pages for one to two periods after the
// depot's last use: long enough that bursts less than half a second apart (W8's and
// W11's repetitions) reuse warm stacks, short enough that a process returns a burst's
// memory within a second.
constexpr std::int64_t purge_period_ns = 500'000'000;
}  // namespace

std::size_t runtime::give_spare_fibers(fiber_impl* const* fs, std::size_t n) noexcept {
  std::lock_guard<std::mutex> g(spare_mu_);
  const std::size_t k = std::min(n, depot_room_ - spare_.size());  // D2: k == n
  if (k == 0) return 0;
  spare_.insert(spare_.end(), fs, fs + k);  // within the reserved capacity: no allocation
  period_gave_ = true;  // P2
  spare_n_.store(spare_.size() + purged_.size(), std::memory_order_relaxed);  // hint
  if (spare_.size() > spare_keep_ && purge_at_.load(std::memory_order_relaxed) == timer_shard::none)
    purge_at_.store(steady_ns() + purge_period_ns, std::memory_order_relaxed);  // P4 hint
  return k;
}

std::size_t runtime::take_spare_fibers(fiber_impl** out, std::size_t n) noexcept {
  if (spare_n_.load(std::memory_order_relaxed) == 0) return 0;  // relaxed: see spare_n_
  std::lock_guard<std::mutex> g(spare_mu_);
  const std::size_t k = std::min(n, spare_.size());
  if (k == 0) return 0;
  for (std::size_t i = 0; i < k; ++i) out[i] = spare_[spare_.size() - 1 - i];
  spare_.resize(spare_.size() - k);
  period_took_ = true;  // P2
  spare_n_.store(spare_.size() + purged_.size(), std::memory_order_relaxed);  // hint
  return k;
}

std::size_t runtime::take_purged_stacks(stack* out, std::size_t n) noexcept {
  if (spare_n_.load(std::memory_order_relaxed) == 0) return 0;  // relaxed: see spare_n_
  std::lock_guard<std::mutex> g(spare_mu_);
  const std::size_t k = std::min(n, purged_.size());
  std::copy(purged_.end() - static_cast<std::ptrdiff_t>(k), purged_.end(), out);
  purged_.resize(purged_.size() - k);
  period_took_ = true;  // P2
  spare_n_.store(spare_.size() + purged_.size(), std::memory_order_relaxed);  // hint
  return k;
}

std::size_t runtime::carve_stacks(stack* out, std::size_t n) {
  {
    // D2: room for every stack carved so far plus this batch, doubling (amortised).
    std::lock_guard<std::mutex> g(spare_mu_);
    const std::size_t need = arenas_.carved() + n;
    if (need > depot_room_) {
      const std::size_t room = std::max(need, 2 * depot_room_);
      spare_.reserve(room);
      purged_.reserve(room);
      depot_room_ = room;
    }
  }
  return arenas_.carve(out, n);
}

void runtime::purge_idle_stacks() noexcept {
  const std::int64_t now = steady_ns();
  if (purge_at_.load(std::memory_order_relaxed) > now) return;  // relaxed: P4
  std::vector<fiber_impl*> victims;
  {
    std::lock_guard<std::mutex> g(spare_mu_);
    if (purge_at_.load(std::memory_order_relaxed) > now) return;  // another worker ticked
    // P3: only after a period in which the depot was not used.
    const bool used = period_took_ || period_gave_;
    period_took_ = period_gave_ = false;
    const std::size_t left = !used && spare_.size() > spare_keep_ ? spare_.size() - spare_keep_ : 0;
    try {
      // The oldest `left` leave the hot list now (one copy and one shift of the rest per
      // tick); destroying them and the madvise calls happen outside the lock.
      victims.assign(spare_.begin(), spare_.begin() + static_cast<std::ptrdiff_t>(left));
    } catch (...) {
      purge_at_.store(now + purge_period_ns, std::memory_order_relaxed);  // retry next tick
      return;
    }
    spare_.erase(spare_.begin(), spare_.begin() + static_cast<std::ptrdiff_t>(left));
    purge_at_.store(spare_.size() > spare_keep_ ? now + purge_period_ns : timer_shard::none,
                    std::memory_order_relaxed);  // relaxed: P4
    spare_n_.store(spare_.size() + purged_.size(), std::memory_order_relaxed);  // hint
  }
  // P3 in chunks: the fibers' records go, then their pages (neighbours in one madvise),
  // then the stacks join purged_ (room reserved: D2).
  constexpr std::size_t chunk = 64;  // 2.5 KiB of stack; one madvise per 64 neighbours
  stack stacks[chunk];
  for (std::size_t i = 0; i < victims.size(); i += chunk) {
    const std::size_t m = std::min(chunk, victims.size() - i);
    for (std::size_t j = 0; j < m; ++j) stacks[j] = retire_fiber(victims[i + j]);
    stacks_purge(stacks, m);
    std::lock_guard<std::mutex> g(spare_mu_);
    purged_.insert(purged_.end(), stacks, stacks + m);
    spare_n_.store(spare_.size() + purged_.size(), std::memory_order_relaxed);  // hint
  }
}




std::size_t runtime::spare_fiber_count() noexcept {
  std::lock_guard<std::mutex> g(spare_mu_);
  return spare_.size();
}

std::size_t runtime::purged_stack_count() noexcept {
  std::lock_guard<std::mutex> g(spare_mu_);
  return purged_.size();
}

std::vector<stack> runtime::purged_stacks() noexcept {
  std::lock_guard<std::mutex> g(spare_mu_);
  return purged_;  // a test accessor: an allocation failure here ends the test
}

runtime::~runtime() {
  dump_signal_leave(*this);  // waits for a dump of this runtime in progress
  shutdown();
  for (fiber_impl* f : spare_) destroy_fiber(f);  // workers are joined: no other user
  spare_.clear();
  purged_.clear();  // no fibers on them; arenas_, a member, unmaps every stack after this
  reactor_.reset();  // after the workers: no fiber waits on an fd any more
}

namespace {
bool quiescent(const std::vector<std::unique_ptr<worker>>& ws,
               const std::atomic<std::uint64_t>& external) {
  std::uint64_t done = 0, spawned = 0;
  for (const auto& w : ws) done += w->completed();  // first: step 3
  for (const auto& w : ws) spawned += w->spawned();
  spawned += external.load(std::memory_order_seq_cst);
  return done == spawned;
}
}  // namespace

std::int64_t runtime::earliest_timer() const noexcept {
  std::int64_t t = timer_shard::none;
  for (const auto& w : workers_) t = std::min(t, w->timers().next());
  return t;
}

void check_not_forked(scheduler& s) {
  if (s.runtime_().forked())
    throw std::logic_error("weft::scheduler::spawn: the scheduler was created before fork(); "
                           "in the child process its worker threads do not exist (exec, or "
                           "create schedulers only in the process that runs them)");
}

bool runtime::forked() const noexcept {
  return fork_generation.load(std::memory_order_relaxed) != fork_gen_;
}

std::size_t runtime::stop_waiting_fibers() noexcept {
  try {
    // inspect.hpp: a short bound for workers that compute; their fibers are named later.
    inspection in = inspect(*this, inspect_retain, 10'000'000);
    std::size_t n = 0;
    for (fiber_view& v : in.fibers) {
      if (!v.retained) continue;
      // TSan: the walk ran in an internal scope, which orders nothing; the spawn's
      // release on the task (tsan_scope.hpp step 3, spawn -> start) orders its creation
      // before this request.
      tsan_acquire(v.retained);
      if (task_request_stop(v.retained)) ++n;
    }
    release_retained(in);
    return n;
  } catch (...) {  // out of memory for the walk: try again at the next one
    return 0;
  }
}

void runtime::report_unfinished(std::int64_t late_ns) noexcept {
  try {
    inspection in = inspect(*this, inspect_backtraces, 100'000'000);
    char title[96];
    std::snprintf(title, sizeof title, "shutdown: still unfinished %.0f ms after the deadline",
                  static_cast<double>(late_ns) / 1e6);
    write_dump(stderr, in, title);
    for (unsigned w : in.unpaused) (void)send_backtrace_signal(worker_at(w));
  } catch (...) {
    std::fprintf(stderr, "weft: shutdown: out of memory for the report of unfinished fibers\n");
  }
}

void runtime::shutdown() noexcept { (void)shutdown_until(timer_shard::none); }

bool runtime::shutdown_until(std::int64_t deadline) noexcept {
  if (forked()) return true;  // a child's copy: there is nothing to stop (scheduler::~scheduler)
  // Bounded shutdown: this call's deadline counts for whichever call drains, this one or
  // one already under way (shutdown_deadline_). relaxed: see the member.
  for (std::int64_t cur = shutdown_deadline_.load(std::memory_order_relaxed);
       deadline < cur && !shutdown_deadline_.compare_exchange_weak(
                             cur, deadline, std::memory_order_relaxed, std::memory_order_relaxed);) {
  }
  std::unique_lock<std::mutex> g(shutdown_mu_, std::try_to_lock);
  if (!g.owns_lock()) {
    g.lock();  // a concurrent call drains: wait for it (our deadline now bounds it)
    // True when that drain asked nobody to stop (every fiber finished by itself).
    if (shut_down_.load(std::memory_order_relaxed)) return !stop_walked_;
  }
  if (shut_down_.load(std::memory_order_relaxed)) return true;  // a call after shutdown
  worker* w = current_worker();
  WEFT_ASSERT(!(w && &w->rt() == this),
              "weft::scheduler::shutdown() (or its destructor) called from one of its own "
              "fibers: it would wait for itself");
  closing_.store(true, std::memory_order_seq_cst);  // step 1
  {
    tsan_internal_scope internal;  // its wakes are internal (tsan_scope.hpp step 2)
    reactor_->cancel_io();  // pending and later I/O waits end with operation_canceled
  }
  auto pause = std::chrono::microseconds(20);
  auto next_report = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  // Bounded shutdown (README "Cancellation and deadlines"): from the deadline on, every
  // fiber found waiting is asked to stop, by a walk every stop_walk_ns (fibers that start
  // waiting later, children of stopped fibers, tasks that had not started); a fiber still
  // unfinished report_after_ns past the deadline is named once, with backtraces. The
  // deadline is the earliest of every call's (shutdown_deadline_), re-read each round: a
  // bounded call made while this drain runs shortens it (it waits for shutdown_mu_).
  constexpr std::int64_t stop_walk_ns = 10'000'000, report_after_ns = 1'000'000'000;
  std::int64_t last_walk = 0;  // steady ns of the last walk, 0: none yet
  bool reported = false;
  while (!quiescent(workers_, external_spawned_)) {
    std::this_thread::sleep_for(pause);
    pause = std::min<std::chrono::microseconds>(pause * 2, std::chrono::milliseconds(1));
    const std::int64_t dl = shutdown_deadline_.load(std::memory_order_relaxed);
    if (dl != timer_shard::none) {
      const std::int64_t now = steady_ns();
      if (now >= dl && (last_walk == 0 || now >= last_walk + stop_walk_ns)) {
        stop_walked_ = true;
        (void)stop_waiting_fibers();
        last_walk = now;
        // The walk may have ended every wait: look again at once, not a backed-off pause.
        pause = std::chrono::microseconds(20);
      }
      if (!reported && now >= dl + report_after_ns) {
        reported = true;
        report_unfinished(now - dl);
      }
    }
    if (std::chrono::steady_clock::now() > next_report) {
      std::uint64_t done = 0, spawned = external_spawned_.load();
      for (auto& x : workers_) done += x->completed(), spawned += x->spawned();
      std::fprintf(stderr, "weft: shutdown is waiting for %llu unfinished fiber(s)\n",
                   static_cast<unsigned long long>(spawned - done));
      next_report += std::chrono::seconds(5);
    }
  }
  // Step 4. acquire: pairs with the waker's release decrement; everything it did to the
  // runtime happens before the runtime is freed. The window is a few instructions long.
  while (outside_wakes_.load(std::memory_order_acquire) != 0) std::this_thread::yield();
  tsan_acquire(this);  // finish -> shutdown, from every fiber (tsan_scope.hpp step 3)
  // release: pairs with the acquire loads of stop_ in worker::find_work/park (step 5).
  stop_.store(true, std::memory_order_release);
  (void)idle_.take_all_sleepers();  // they exit; keep the counts consistent anyway
  for (auto& x : workers_) x->unpark();
  for (auto& t : threads_) t.join();
  if (!trace_path_.empty() && tracer_.running()) {  // WEFT_TRACE's session
    try {
      write_trace_file(trace_path_, tracer_.stop(*this));
      std::fprintf(stderr, "weft: WEFT_TRACE: trace written to %s\n", trace_path_.c_str());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "weft: WEFT_TRACE: %s\n", e.what());
    }
  }
  shut_down_.store(true, std::memory_order_relaxed);
  return !stop_walked_;
}

void runtime::spawn_external(task* t) {
  // seq_cst: shutdown step 1.
  external_spawned_.fetch_add(1, std::memory_order_seq_cst);
  if (closing_.load(std::memory_order_seq_cst)) {
    external_spawned_.fetch_sub(1, std::memory_order_seq_cst);
    throw std::runtime_error("weft::scheduler::spawn: the scheduler is shutting down");
  }
  if (!unlimited_) {
    // relaxed: a counter of slots, nothing is published through it.
    if (budget_.fetch_sub(1, std::memory_order_relaxed) <= 0) {
      budget_.fetch_add(1, std::memory_order_relaxed);
      external_spawned_.fetch_sub(1, std::memory_order_seq_cst);
      throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again),
                              "weft::scheduler::spawn: the live-fiber cap "
                              "(scheduler::options::max_fibers, or the vm.max_map_count-derived "
                              "limit) is reached");
    }
  }
  // relaxed: uniqueness only.
  t->id_ = id_source_.fetch_add(1, std::memory_order_relaxed);
  if (!inject_.enqueue(as_item(t))) {  // moodycamel could not allocate: nothing published
    if (!unlimited_) budget_.fetch_add(1, std::memory_order_relaxed);
    external_spawned_.fetch_sub(1, std::memory_order_seq_cst);
    throw std::bad_alloc();
  }
  inject_count_.fetch_add(1, std::memory_order_seq_cst);  // P1, as in inject()
  notify_idle(-1);
}

void runtime::inject(const item* items, std::size_t n) noexcept {
  // A runnable item that cannot be queued would be lost: an unrecoverable state.
  const bool queued = inject_.enqueue_bulk(items, n);
  WEFT_ASSERT(queued, "out of memory while queuing runnable fibers (injection queue)");
  // seq_cst: P1 of the idle protocol; C3 reads it after the C2 fence.
  inject_count_.fetch_add(static_cast<std::int64_t>(n), std::memory_order_seq_cst);
  notify_idle(-1);
}

namespace {
std::atomic<void (*)() noexcept> notify_idle_hook{nullptr};  // relaxed: set before use
}  // namespace

void set_notify_idle_hook(void (*hook)() noexcept) noexcept {
  notify_idle_hook.store(hook, std::memory_order_relaxed);
}

void runtime::notify_idle(int preferred) noexcept {
  auto hook = notify_idle_hook.load(std::memory_order_relaxed);  // relaxed: set before use
  if (__builtin_expect(hook != nullptr, 0)) hook();
  int w = idle_.notify_one(preferred);
  if (w >= 0) workers_[static_cast<unsigned>(w)]->unpark();
}

void runtime::wake(fiber_impl* f) noexcept {
  worker* w = current_worker();
  if (!w) {  // stats.hpp schedule_latency: a plain thread samples one wake in 64 of its own
    thread_local std::uint32_t outside_wakes = 0;
    if ((++outside_wakes & worker::sample_mask) == 0) f->woke_at = steady_ns();
  }
  if (w && &w->rt() == this) {
    if (__builtin_expect(w->fuzz().on(), 0) && w->fuzz_migrate(f)) return;  // sched_fuzz.hpp 4
    w->wake_local(f);  // runs next on the waker's worker (warm cache, no futex)
    return;
  }
  if (reactor::defer_wake(this, f)) return;  // the reactor thread batches its dispatch
                                             // (reactor.hpp)
  // Shutdown step 4. relaxed: shutdown needs this increment only once f has finished,
  // which the queue's hand-over and the completion counter order after it.
  outside_wakes_.fetch_add(1, std::memory_order_relaxed);
  f->home->push_remote(as_item(f));  // from here f may run, finish, and shutdown begin
  // release: the last touch of *this; pairs with shutdown's acquire load (step 4).
  outside_wakes_.fetch_sub(1, std::memory_order_release);
}

bool runtime::any_work_visible() const noexcept {
  if (inject_count_.load(std::memory_order_seq_cst) > 0) return true;
  for (const auto& w : workers_)
    if (w->has_visible_work()) return true;
  return false;
}

scheduler_stats runtime::stats() const {
  scheduler_stats s;
  for (const auto& w : workers_) s.workers.push_back(w->stats());
  // relaxed: a gauge (producers count up after enqueueing, so it may be briefly negative).
  s.inject_queue_depth =
      static_cast<std::uint64_t>(std::max<std::int64_t>(inject_count_.load(std::memory_order_relaxed), 0));
  return s;
}

}  // namespace detail

scheduler::scheduler() : scheduler(options{}) {}
scheduler::scheduler(const options& opts) : rt_(std::make_unique<detail::runtime>(*this, opts)) {}
scheduler::~scheduler() {
  if (rt_->forked()) {
    // In a fork child the threads this runtime would join do not exist, and its memory
    // may be in any state the parent's threads left it in: leak it rather than hang or
    // crash in a destructor (the child usually execs or exits anyway).
    (void)rt_.release();
    return;
  }
  if (rt_->opts_.shutdown_grace.count() >= 0)
    (void)shutdown_for(rt_->opts_.shutdown_grace);
  else
    rt_->shutdown();
}
void scheduler::shutdown() noexcept { rt_->shutdown(); }
bool scheduler::shutdown(std::chrono::steady_clock::time_point deadline) noexcept {
  return rt_->shutdown_until(std::max<std::int64_t>(detail::steady_ns_of(deadline), 1));
}
unsigned scheduler::worker_count() const noexcept { return rt_->worker_count(); }
std::uint64_t scheduler::schedule_seed() const noexcept { return rt_->fuzz_seed_; }
scheduler_stats scheduler::stats() const { return rt_->stats(); }
void scheduler::trace_start(std::size_t events_per_worker) {
  rt_->tracer_.start(*rt_, events_per_worker);
}
std::string scheduler::trace_stop() { return rt_->tracer_.stop(*rt_); }
void scheduler::trace_stop(const std::string& path) {
  detail::write_trace_file(path, rt_->tracer_.stop(*rt_));
}
scheduler* scheduler::current() noexcept {
  detail::worker* w = detail::current_worker();
  return w ? &w->rt().owner() : nullptr;
}

}  // namespace weft
