// src/worker.hpp - one pinned worker thread: its queues, its fiber pool, its loop.
//
// Where a worker looks for its next item (next_local(), then find_work()):
//   1. every 61st pick: the injection queue, then its remote queue (fairness: outside
//      submissions and remote wakes are never starved by a busy local queue);
//   2. private_: tasks spawned by the running fiber and not yet published (see below);
//   3. runnext_: the fiber this worker woke last (Go's runnext, Tokio's LIFO slot), so a
//      woken partner runs next on the waker's warm cache;
//   4. ring_: the local run queue (FIFO; stealers take half of it);
//   5. remote_: fibers woken from other threads, moved into ring_ in batches;
//   6. the runtime's injection queue (outside spawns and ring spills), in batches;
//   7. searching: steal half of a peer's ring, or take from its remote queue, visiting
//      peers nearest first (topology tiers), from a random start in each tier; from a
//      peer that is stalled (work conservation 1), its runnext_ or a private_ task;
//   8. park (idle.hpp protocol), with a timeout at the earliest timer of any worker, and
//      as the watcher (idle.hpp W1-W4) at most watch_period apart.
// Timers (timers.hpp) are fired into ring_ at every fairness tick, when the queues above
// are empty, and while searching (a peer's due timers too). Ready fds (reactor.hpp step
// 2) are polled into ring_ when the queues are empty, while searching, and on fairness
// ticks at most every 20 µs.
//
// Private spawns (lazy publication): a spawn from a fiber goes to private_, a small
// LIFO that only the owner pushes to. A join of a child still in private_ removes it and
// runs it inline on the joiner's stack, with no queue traffic, no new fiber and no
// switch, which is what makes fork-join (fib, skynet) cheap. private_ is published to the
// ring (oldest first, one publication per batch: run_queue.hpp step 1b) when it is full,
// on a spawn while some worker is idle (searching or parked) and the ring is empty (the
// spawned task then goes with them; while the ring holds items, the idle worker has
// those), and whenever the running fiber stops running (suspends or finishes).
//
// Work conservation. Invariant: while any worker is idle (searching or parked), a
// runnable item held by a busy worker becomes visible to an idle one within a bounded
// time, however it became runnable: spawn, a wake from any primitive, a timer, I/O, a
// yield, a spill. A fiber that computes without suspending keeps its own worker (we
// cannot preempt it), but not the items queued behind it.
//   1. Where a runnable item can wait, and who may take it:
//       - ring_, remote_, the injection queue: anyone, at any time (run_queue.hpp,
//         peer_queue.hpp); the producer runs idle.hpp P1-P4 when it may have been the
//         first item (spill, publication, batch wakes, remote wakes, outside spawns),
//         but not on a yield's requeue (the yielder's worker is busy by definition);
//       - runnext_ and private_: the owner, and a thief, but the thief only when the
//         owner's running fiber strands them (look_at()): the owner's progress_
//         (scheduling points passed: next_local calls) has not moved for stall_grace,
//         and its thread computes (its CPU clock advances between two reads) or sleeps
//         in a syscall. Not while its thread waits for a CPU: the OS runs it again soon,
//         and taking its runnext_ then only moved ping-pong pairs from core to core
//         (after stall_limit without a move, the thief takes them anyway). An owner that
//         passes a scheduling point takes runnext_ and publishes private_ itself, so a
//         thief only takes what its owner cannot reach, and a ping-pong pair is never
//         split (Go's runqgrab gives the owner ~3 us the same way). Both are atomics:
//         the owner stores with release (a plain mov on x86) and takes with exchange (its
//         one RMW, as ring_.pop()'s CAS); a thief takes with a CAS from the value it read
//         (ABA is harmless: whatever the slot holds when the CAS succeeds is runnable,
//         and the CAS acquires the owner's store of it). With one worker (solo_) nobody
//         steals and the owner uses plain loads and stores.
//       - fired_spill_ (timers fired into a full ring) and batch_: flushed to the
//         injection queue before the batch that filled them returns; never held across
//         user code.
//   2. Who notices: a searching worker (find_work's spin) looks at every peer's ring_,
//      remote_ and, through look_at(), its runnext_ and private_. A parked worker cannot
//      look, and the owner does not wake anyone when it fills runnext_ or private_ (a
//      futex wake costs 24-64 us here, on every hand-off of a ping-pong: Tokio 1.51 lost
//      ~30% throughput that way). Instead, while any worker works, one parked worker,
//      the *watcher* (idle.hpp W1-W4), parks with a timeout and, on each timeout, looks
//      at every peer: visible work (idle.hpp step C3: a yield's requeue is one), a due
//      timer of any worker, or a peer that strands what it holds makes it leave its park
//      and search, and its search takes the item.
//   3. The bound: the watcher looks again after watch_period_min (50 us) while some awake
//      peer stands still and is not known to wait for a CPU (it computes: it may strand
//      something any moment), and backs off, doubling up to watch_period_max (1 ms),
//      while every awake peer keeps moving, waits for a CPU, or has computed for more
//      than long_compute (10 ms). look_at() needs two reads of a peer's CPU clock: a
//      fiber that has computed since before the watcher's last look is taken at the next
//      look (<= 50 us, plus the time to leave a timed futex wait: tens of us on an idle
//      vCPU here); one that passed its last scheduling point just before, after one or
//      two more looks; either waits up to ~1.1 ms when the watcher had backed off (its
//      peers kept moving, or one had computed for 10 ms already). A searching worker
//      takes it after stall_grace (20 us). conservation_test and
//      stress/conservation_stress print the waits.
//   4. Cost: the owner's side is one exchange per runnext_ take and per private_ join or
//      publication, on lines of its own (W4, two takes per round trip: +3-5 ns of CPU
//      per round trip). An asymmetric fence (membarrier) that let owners take with
//      plain stores measured no better, and was dropped. The watcher's look reads one
//      line per peer (progress_, runnext_, private count) plus what idle.hpp step C3
//      reads, and one CPU clock (a ~2 us syscall) per peer that stands still:
//      O(workers) every 50 us to 1 ms, only while some worker is working and another
//      parked. A timed wake costs ~16-35 us of CPU on this VM kind: ~20% of the
//      watcher's core during the first 10 ms of a computation, 3-4% over a 2 s one, a
//      few % while peers keep moving. No global counter or lock is touched on the hot
//      path.
// Benchmark workloads cited here (W1, W3, W4, W8): docs/benchmarks.md; "idle.hpp W1-W4"
// (and a bare W1-W3 inside worker::sleep) are the watcher's steps, not workloads.
#pragma once

#include "context.hpp"
#include "fiber_impl.hpp"
#include "parker.hpp"
#include "peer_queue.hpp"
#include "run_queue.hpp"
#include "sched_fuzz.hpp"
#include "timers.hpp"
#include "trace.hpp"

#include <weft/stats.hpp>


#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <random>
#include <sys/epoll.h>
#include <ctime>
#include <vector>

namespace weft::detail {

class runtime;
class worker;

// The worker running the calling thread (worker.cpp's thread_local), or nullptr.
// Re-read after every suspension point: a fiber may come back on another thread (see
// fiber.hpp's hazard note). A plain thread_local read is not safe for that: the compiler
// may keep the thread pointer (%fs:0) or the value in a register across the call that
// switches. Hence, on x86-64, one volatile asm load (initial-exec: the TLS offset from the
// GOT, relaxed to an immediate by the linker in an executable), with a memory clobber so
// that it stays after the switch; elsewhere a call that is never inlined. The asm saves
// the call and return of the noinline function: 4-6 of them per channel round trip.
worker* current_worker_noinline() noexcept;
#if defined(__x86_64__) && defined(__LP64__) && defined(__GNUC__)
extern __thread worker* tls_worker_ __asm__("weft_detail_tls_worker")
    __attribute__((tls_model("initial-exec"), visibility("hidden")));
inline worker* current_worker() noexcept {
  worker* w;
  asm volatile(
      "movq weft_detail_tls_worker@gottpoff(%%rip), %0\n\t"
      "movq %%fs:(%0), %0"
      : "=r"(w)
      :
      : "memory");
  return w;
}
#else
inline worker* current_worker() noexcept { return current_worker_noinline(); }
#endif

// Runs on the context switched to, right after the switch, with the fiber that switched
// away (nullptr for the scheduler context). This is where a suspending fiber is published
// to wakers: only after its context was saved (switch_context) may anyone resume it.
using post_fn = void (*)(fiber_impl* from, void* arg) noexcept;

// Unmaps an idle fiber (never the running one). Any thread.
void destroy_fiber(fiber_impl* f) noexcept;
// Ends a suspended fiber (its context and record) and returns its stack, still mapped
// and with its pages, for the caller to purge or release. Any thread, f not running.
stack retire_fiber(fiber_impl* f) noexcept;

// A counter written only by its worker (plain load+store, no RMW) and read by stats().
struct counter {
  std::atomic<std::uint64_t> v{0};
  // relaxed: statistic only; single writer, so load+store cannot lose an increment.
  void add(std::uint64_t n = 1) noexcept {
    v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  // release: for the shutdown counts (spawned_, completed_); pairs with the acquire loads
  // in spawned()/completed(), read by runtime::quiescent().
  void add_release() noexcept {
    v.store(v.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  }
  std::uint64_t get() const noexcept { return v.load(std::memory_order_relaxed); }
};

class alignas(64) worker {
public:
  static constexpr std::size_t private_cap = 64;
  static constexpr unsigned fairness_interval = 61;  // Go's schedtick % 61

  worker(runtime& rt, unsigned index);
  ~worker();
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;

  // The worker thread's body: pins, installs the overflow handler, runs the loop.
  void thread_main(int os_cpu, std::vector<std::vector<unsigned>> steal_tiers);

  // ---- Fiber context only; the calling fiber runs on this worker.
  void spawn_local(task* t);
  // Removes t from private_ if it is still there (a join may then run it inline).
  bool take_private(task* t) noexcept;
  // Switches away from self to the next runnable item; post(self, arg) runs after the
  // switch. Returns when self is resumed (perhaps on another worker).
  void suspend(fiber_impl* self, post_fn post, void* arg) noexcept;
  // Back of the local queue, unless nothing else is runnable here.
  void yield(fiber_impl* self) noexcept;
  // Puts a task taken from private_ back where any worker can run it.
  void requeue_task(task* t) noexcept;
  // Runs task t on the calling fiber (join of an unstarted child, or a fiber's loop).
  // Called inside a TSan internal scope; t's own code runs outside it (tsan_scope.hpp).
  void run_task(fiber_impl* self, task* t) noexcept;
  // The fiber's loop: run root, then more local tasks, then return to the pool.
  [[noreturn]] static void fiber_main(transfer first);

  // ---- This worker's thread (fiber or scheduler context).
  void wake_local(fiber_impl* f) noexcept;
  // wake_local's cases that need no runtime lookup, inline (suspend.hpp wake). False: take
  // the general path.
  //  - A firing batch is open: the wake comes from a timer of this runtime's shards (a
  //    timer is armed on a worker of its fiber's runtime, and a worker fires only its own
  //    runtime's shards; poll_io wakes through runtime::wake). f->rt is not read: f is a
  //    sleeper woken after ~1 ms, and its record is a cold line (W8: 42% of the fire
  //    callback's samples sat on that load).
  //  - Otherwise f must belong to this worker's runtime, and runnext be free.
  bool try_wake_local(fiber_impl* f) noexcept {
    if (fuzz_.on()) return false;  // runtime::wake makes the fuzzer's choice 4
    if (firing_) {
      wake_local(f);
      return true;
    }
    // relaxed: only the owner fills the slot; a thief only empties it, so 0 stays 0.
    if (runnext_.load(std::memory_order_relaxed) || f->rt != &rt_) return false;
    // release: a thief's CAS (acquire) takes f; f's saved state reached us through the
    // primitive that woke it (work conservation 1).
    runnext_.store(as_item(f), std::memory_order_release);
    return true;
  }
  // Reserves a live-fiber slot (max_fibers); false when the cap is reached. Inline: without
  // a cap (the common case) each is one test of a field of this worker (W1 spawns).
  bool reserve_fiber_slot() noexcept { return unlimited_ || reserve_limited_slot(); }
  void release_fiber_slot() noexcept {
    if (!unlimited_) release_limited_slot();
  }
  // spawn_local's slow path: takes a block of task ids from id_source_ (inspect.hpp step 6).
  void spawn_id_block(task* t) noexcept;

  // Statistics sampling (stats.hpp): one suspension in 64, and one wake in 64 made on this
  // worker, are timed. Two countdowns: one shared by both, or the switch counter, aliases
  // with periodic schedules (a ping-pong wakes and suspends once per slice, a sleep loop
  // switches twice per sleep) and then samples only one kind, or none.
  static constexpr std::uint32_t sample_mask = 63;
  // wake() calls wake_hook when the countdown expires: every 64th wake, and every wake
  // while tracing (the countdown is then 1; a session that starts sees this worker's wakes
  // from its next expiry on, at most 64 wakes later). Samples, traces, rearms. Owner.
  bool wake_due() noexcept { return --wake_countdown_ == 0; }
  __attribute__((cold, noinline)) void wake_hook(fiber_impl* f) noexcept;

  // Tracing (trace.hpp step 2): true while a session records this worker's events. The
  // trace_* calls record one event; each site calls them only when tracing() (the one
  // branch a site costs while tracing is off). Owner thread.
  bool tracing() const noexcept {
    // acquire: pairs with set_trace's release (the ring's slots are then visible).
    return trace_.load(std::memory_order_acquire) != nullptr;
  }
  __attribute__((cold, noinline)) void trace_emit(trace_kind k, std::uint64_t a, std::uint64_t b) noexcept;
  // Any thread (tracer, under its mutex).
  void set_trace(trace_ring* r) noexcept;

  // this_fiber::no_suspend_scope (owner thread, from the running fiber): open and close
  // one region; suspension_forbidden() is what fuzz_point asks before injecting a yield.
  void no_suspend_enter() noexcept;
  void no_suspend_leave() noexcept;
  bool suspension_forbidden() const noexcept { return no_suspend_ != 0; }

  // ---- Any thread.
  void push_remote(item it) noexcept;
  void unpark() noexcept { parker_.unpark(); }
  bool has_visible_work() const noexcept;  // idle.hpp step C3, for this worker's queues
  worker_stats stats() const noexcept;
  std::uint64_t spawned() const noexcept { return spawned_.v.load(std::memory_order_acquire); }
  std::uint64_t completed() const noexcept {
    return completed_.v.load(std::memory_order_acquire);
  }

  fiber_impl* current() const noexcept { return current_; }
  // Inspections (inspect.hpp steps 2-4), any thread. acquire: pairs with the worker's
  // release stores.
  fiber_impl* running() const noexcept { return running_.load(std::memory_order_acquire); }
  std::uint32_t pause_ack() const noexcept { return pause_ack_.load(std::memory_order_acquire); }
  // relaxed: read after pause_ack() returned the generation (its acquire orders it).
  std::uintptr_t pause_fp() const noexcept { return pause_fp_.load(std::memory_order_relaxed); }
  // thread_main runs (relaxed: a hint; a worker that is not live is not waited for).
  bool thread_live() const noexcept {
    return started_at_.load(std::memory_order_relaxed) != 0 &&
           ended_at_.load(std::memory_order_relaxed) == 0;
  }
  unsigned index() const noexcept { return index_; }
  runtime& rt() const noexcept { return rt_; }
  sched_fuzz& fuzz() noexcept { return fuzz_; }  // owner thread only
  std::size_t ring_size() const noexcept { return ring_.size(); }
  timer_shard& timers() noexcept { return timers_; }
  const timer_shard& timers() const noexcept { return timers_; }
  // Diagnostics (diag.hpp), any thread, relaxed snapshots.
  std::uint64_t switch_count() const noexcept { return switches_.get(); }
  bool sleeping() const noexcept { return parker_.sleeping(); }
  std::int64_t remote_size() const noexcept { return remote_count_.load(std::memory_order_relaxed); }
  std::uint64_t diag_task() const noexcept { return diag_task_.load(std::memory_order_relaxed); }
  // Slices begun here (diag.hpp): one more each time the running task changes, switch or
  // not (a fiber runs queued tasks back to back on its stack, and joins inline).
  std::uint64_t diag_slice() const noexcept { return diag_slice_.load(std::memory_order_relaxed); }
  // The running task's name (spawn_options::name; "" when unnamed), for the stall report.
  static constexpr std::size_t diag_name_words = 4;  // up to 31 characters
  void diag_name(char (&out)[diag_name_words * 8]) const noexcept;
  // This worker's thread: its CPU time in ns (-1: unknown), and whether it sleeps in the
  // kernel (blocked in a syscall; true when unknown). Any thread; syscalls of ~2 us.
  std::int64_t thread_cpu_ns() const noexcept;
  bool thread_asleep() const noexcept;
  // Sends sig to the worker's thread while thread_main runs (from its first line to its
  // last); false when the thread has not started or has left thread_main (a joined
  // thread's pthread_t may name another thread by now). Any thread.
  bool signal_thread(int sig) noexcept;

private:
  struct post_action {
    post_fn fn = nullptr;
    void* arg = nullptr;
    fiber_impl* from = nullptr;
  };

  item next_local() noexcept;
  item fuzz_pick() noexcept;
public:
  // Schedule fuzzing (sched_fuzz.hpp choice 4): true when f was queued elsewhere. Owner
  // thread; only when fuzz().on().
  bool fuzz_migrate(fiber_impl* f) noexcept;
private:
  bool reserve_limited_slot() noexcept;  // reserve_fiber_slot under a cap
  void release_limited_slot() noexcept;
  item find_work() noexcept;
  item try_steal(std::int64_t now) noexcept;
  // Owner: takes runnext_ (0 when empty or taken by a thief). Inline: next_local runs it
  // on every switch (an out-of-line call cost W3 ~1 ns of its ~13).
  item take_runnext() noexcept {
    // relaxed: only the owner fills the slot.
    item it = runnext_.load(std::memory_order_relaxed);
    if (!it) return 0;
    if (solo_) {  // nobody steals: no RMW (W3, W4 with one worker)
      runnext_.store(0, std::memory_order_relaxed);
      return it;
    }
    // relaxed: we stored the item ourselves; the exchange only decides who has it (a
    // thief's CAS or us). Work conservation 1.
    return runnext_.exchange(0, std::memory_order_relaxed);
  }
  // Owner: empties private_ slot i and returns what it held (nullptr: a thief took it).
  task* take_private_slot(std::size_t i) noexcept;
  // Thief, on a victim: its runnext_ or its oldest private_ task, if the victim's running
  // fiber strands them (work conservation 1); 0 otherwise.
  item steal_hidden(worker& v, std::int64_t now) noexcept;
  // Records v's progress_ in seen_; true when it moved since the last look.
  bool observe(worker& v, std::int64_t now) noexcept;
  // What a look at peer v finds (work conservation 1): it moved (passed a scheduling
  // point) since the last look; it stands still and its thread waits for a CPU (or
  // sleeps, with nothing hidden); not known yet (one read of its CPU clock so far); its
  // thread computes; or its running fiber strands what v holds (`hidden`: runnext_ or
  // private_ filled): no scheduling point for stall_grace and computing, or blocked in a
  // syscall, or none for stall_limit whatever the thread does.
  enum class peer_state : std::uint8_t { moved, waiting, unknown, computing, stranding };
  peer_state look_at(worker& v, std::int64_t now, bool hidden) noexcept;
  // The watcher's look at the peers (idle.hpp W2): true when one has work to take.
  // `calm`: every awake peer moved since the previous look.
  bool watch_tick(std::int64_t now, bool& calm) noexcept;
  // park()'s sleep after C3 found nothing: as the watcher or not (idle.hpp W1-W4).
  void sleep(std::int64_t wake_at) noexcept;
  item poll_remote() noexcept;
  item poll_inject(std::size_t max) noexcept;
  void push_ring(item it) noexcept;
  void spread_batch(std::size_t n) noexcept;
  void publish_private(std::size_t k, item extra = 0) noexcept;
  void queue_spawn(task* t) noexcept;   // spawn_local after the id and the trace event
  void spawn_traced(task* t) noexcept;  // spawn_local while tracing
  void spawn_full(task* t) noexcept;    // queue_spawn when private_ is full
  // Queues xs[0, n) here (ring_, the overflow to the injection queue), then P2-P4.
  void push_items(const item* xs, std::size_t n) noexcept;
  void dispatch(item it) noexcept;
  // Switches from `from` (nullptr: scheduler context) to `to` (nullptr: scheduler
  // context); post runs on the other side. Returns when `from` is resumed.
  void switch_to(fiber_impl* from, fiber_impl* to, post_fn post, void* arg) noexcept;
  void run_post() noexcept;
  fiber_impl* fiber_for(task* t) noexcept;  // pooled or new; nullptr when t failed
  fiber_impl* sized_fiber_for(task* t) noexcept;  // fiber_for for a stack class != 0
  // A new mapping of `usable` bytes (its record at the top) for t; nullptr, with t failed
  // (join() rethrows the std::system_error), when the stack cannot be mapped.
  fiber_impl* map_fiber(task* t, std::size_t usable, unsigned stack_class) noexcept;
  // A fiber on a stack from fresh_ (refilled from the depot's purged stacks, else carved);
  // nullptr with t failed as map_fiber's.
  fiber_impl* fresh_fiber(task* t) noexcept;
  // Builds a fiber record at the top of s (first touch of its top page).
  fiber_impl* make_fiber(const stack& s, unsigned stack_class) noexcept;
  void fail_to_start(task* t) noexcept;  // t ends with the current exception
  void recycle(fiber_impl* f) noexcept;
  // Fibers moved between pool_ and the runtime's spare list per lock: half the pool,
  // 1 to spare_batch_max. 32 is half the default stack_cache; it also bounds the array
  // take_spare keeps on the stack. One lock per 32 fibers left the spare list at ~6
  // acquisitions per 1,000 sleeps in docs/scaling.md's sleep workload (387 before).
  static constexpr std::size_t spare_batch_max = 32;
  std::size_t spare_batch() const noexcept;
  fiber_impl* take_spare() noexcept;  // a batch from the spare list; nullptr when empty
  void publish_diag(const task* t) noexcept;  // diag_task_ and diag_name_ (diag_ only)
  void park() noexcept;
  // timers.hpp step 2: fires this worker's due timers; true when any fired.
  bool poll_timers() noexcept;
  // Step 4: fires peers' due timers (try_lock); true when any fired.
  bool steal_timers(std::int64_t now) noexcept;
  bool fire_timers(timer_shard& s, std::int64_t now, bool try_only) noexcept;
  // Runs wake_some() with wake_local queuing FIFO (timers.hpp step 6), then flushes the
  // overflow and notifies idle workers once if it woke anything. Returns its count.
  template <class F>
  std::size_t batch_wakes(F&& wake_some) noexcept;
  void flush_fired() noexcept;  // fired_spill_ -> injection queue
  void warm_fiber(fiber_impl* f) noexcept;  // solo: prefetch what resuming f will touch
  // With peers: prefetch the stack lines below f's record without reading f.
  static void warm_below(const fiber_impl* f) noexcept;
  item pop_ring() noexcept { return solo_ ? ring_.pop_unshared() : ring_.pop(); }
  // reactor.hpp step 2: polls the fds, waking their fibers into this worker's ring.
  bool poll_io(std::int64_t now) noexcept;
  void stop_searching() noexcept;
  // Records a resumed fiber's sampled wait and schedule latency (stats.hpp). Owner.
  __attribute__((cold, noinline)) void record_resume(fiber_impl* self, std::int64_t suspended_at) noexcept;
  template <std::size_t N>
  static void record(std::array<counter, N>& h, std::int64_t ns) noexcept {
    h[duration_histogram::bucket_of(ns > 0 ? static_cast<std::uint64_t>(ns) : 0)].add();
  }
  // What switch_to and run_task do while hooks_ is non-zero: publish_diag, trace events.
  // task_hook: publishes `now`, records k for t (start: inline in outer; end: outer resumes).
  __attribute__((cold, noinline)) void switch_hook(fiber_impl* from, fiber_impl* to, post_fn post) noexcept;
  [[noreturn]] __attribute__((cold, noinline)) void no_suspend_violation(const task* t,
                                                                         bool finished) noexcept;
  __attribute__((cold, noinline)) void task_hook(trace_kind k, const task* now, const task* t,
                                                 const task* outer) noexcept;
  __attribute__((cold, noinline)) std::int64_t suspend_sample() noexcept;  // rearms, reads the clock
  static void post_recycle(fiber_impl* from, void* arg) noexcept;
  // inspect.hpp step 3: acknowledges the inspector's pause and waits for its end.
  __attribute__((cold, noinline)) void pause_here() noexcept;
  static void post_requeue(fiber_impl* from, void* arg) noexcept;
  static void post_migrate(fiber_impl* from, void* arg) noexcept;

  runtime& rt_;
  const unsigned index_;
  const bool solo_;  // the only worker: nobody steals from ring_
  const bool unlimited_;  // runtime::unlimited_ (no live-fiber cap), copied at construction

  // Owner-only state (this worker's thread).
  context sched_ctx_;
  eh_state* eh_ = nullptr;  // this thread's C++ exception state (context.hpp eh_state)
  fiber_impl* current_ = nullptr;
  post_action post_;
  unsigned runnext_streak_ = 0;
  // Owner-only countdowns to the next sampled suspension and wake (stats.hpp, wake_due()),
  // and the wakes seen while tracing (wake_hook samples one in 64 of them).
  std::uint32_t suspend_countdown_ = sample_mask + 1, wake_countdown_ = sample_mask + 1;
  std::uint32_t traced_wakes_ = 0;
  bool searching_ = false;
  bool had_work_ = false;  // see find_work()
  const bool diag_;         // the stall detector is on: publish diag_task_ on each switch
  // The trace session's ring for this worker, nullptr while tracing is off (trace.hpp steps
  // 1-4). Written by the tracer (any thread, rarely), read by the owner at each event site.
  std::atomic<trace_ring*> trace_{nullptr};
  // Per-switch and per-task work beyond the plain path, one bit each: hook_diag (the stall
  // detector, set at construction), hook_trace (set_trace). One relaxed load and branch
  // in switch_to and run_task while it is 0; the hooks themselves read diag_ and trace_.
  // hook_no_suspend: a this_fiber::no_suspend_scope is open on this worker.
  static constexpr std::uint8_t hook_diag = 1, hook_trace = 2, hook_no_suspend = 4;
  std::atomic<std::uint8_t> hooks_{0};
  // Open this_fiber::no_suspend_scope regions of the running fiber (owner only). While it
  // is non-zero the running fiber cannot have switched out (switch_hook aborts first), so
  // a per-worker count is the fiber's own.
  std::uint32_t no_suspend_ = 0;
  bool firing_ = false;    // inside fire_timers/poll_io: wake_local queues FIFO (timers.hpp step 6)
  std::int64_t next_io_poll_ = 0;  // steady ns: the fairness tick's next fd poll
  std::int64_t last_io_poll_ = 0;  // steady ns of this worker's last poll_io
  // poll_io's buffer: here, not on the stack poll_io runs on (often a fiber's). As many
  // as a raw epoll loop takes per call: fewer calls when many fds are ready at once.
  std::array<epoll_event, 256> io_events_{};
  std::vector<fiber_impl*> pool_;
  // Default-size stacks with no fiber on them yet (carved, or purged in the depot), taken
  // a batch at a time: fresh_[0, fresh_n_). Left over at exit: unmapped with the arenas.
  std::array<stack, spare_batch_max> fresh_;
  std::size_t fresh_n_ = 0;
  // Idle fibers whose stacks have a size class of their own (spawn_options::stack_size),
  // any mix of classes, at most sized_cache_cap: fiber_for matches the class exactly.
  static constexpr std::size_t sized_cache_cap = 16;
  std::vector<fiber_impl*> sized_pool_;
  std::vector<std::vector<unsigned>> tiers_;
  std::minstd_rand rng_;
  sched_fuzz fuzz_;  // sched_fuzz.hpp; off unless the runtime has a seed
  // next_local() calls left until the fairness tick. Under fuzzing it restarts when this
  // worker goes idle, so the idle loop's timing-dependent picks do not shift it.
  unsigned fairness_countdown_ = fairness_interval;
  // Per peer (look_at()): the last progress_ value seen and when it was first seen; its
  // thread's CPU time at cpu_at (0: not read since it moved) and what that read found.
  struct seen_progress {
    std::uint64_t progress = ~std::uint64_t{0};
    std::int64_t since = 0;
    std::int64_t cpu = 0;
    std::int64_t cpu_at = 0;
    peer_state last = peer_state::moved;
  };
  std::vector<seen_progress> seen_;
  std::int64_t budget_ = 0;
  std::uint64_t id_next_ = 0, id_end_ = 0;
  std::array<item, 64> batch_{};
  std::array<item, 256 / 2 + 1> spill_{};
  std::array<item, private_cap + 1> publish_buf_{};  // publish_private's batch (owner)
  std::array<item, 64> fired_spill_{};  // timers fired while the ring was full
  std::size_t fired_n_ = 0;
  // This worker's turn-taking over the injection queue's producers (peer_queue.hpp): an
  // outside spawn or a ring spill is never starved by a busy reactor, nor the reverse.
  peer_queue<item>::consumer inject_tok_;

  // Shared with stealers and wakers.
  // What thieves read of a busy owner (work conservation 1), one line: written by the
  // owner at scheduling points and hand-offs, read by peers only while they search or
  // watch. progress_ counts next_local() calls (fairness_countdown_ times the fairness
  // tick); relaxed: a hint for "stalled", never used to claim anything.
  alignas(64) std::atomic<std::uint64_t> progress_{0};
  // The context this worker landed in last (nullptr: its scheduler context), stored at
  // every landing (inspect.hpp step 2). Here: a line the owner writes at every
  // scheduling point anyway.
  std::atomic<fiber_impl*> running_{nullptr};
  std::atomic<item> runnext_{0};
  // Slots [0, private_n_) of private_ may hold tasks (holes are nullptr). release store /
  // acquire load: a thief that reads n then sees the slots' tasks (their CAS acquires
  // each one anyway).
  std::atomic<std::size_t> private_n_{0};
  alignas(64) std::array<std::atomic<task*>, private_cap> private_{};
  run_queue<256> ring_;
  alignas(64) peer_queue<item> remote_;
  // Items in remote_: incremented (seq_cst) after enqueue, decremented after dequeue;
  // what the idle protocol's C3 reads (an empty try_dequeue proves nothing).
  alignas(64) std::atomic<std::int64_t> remote_count_{0};
  alignas(64) parker parker_;
  // inspect.hpp step 3: the generation acknowledged last, and the frame pointer of the
  // pause (the landed fiber's backtrace starts there). Written only when paused.
  std::atomic<std::uint32_t> pause_ack_{0};
  std::atomic<std::uintptr_t> pause_fp_{0};
  // Timers armed by fibers running here (timers.hpp). Locked by the owner to arm and fire,
  // by any thread to cancel, by searching peers (try_lock) to fire.
  alignas(64) timer_shard timers_;
  // The task running here (0: none), for the stall report only. relaxed: read by the
  // reactor thread's diagnostics, which order nothing by it.
  std::atomic<std::uint64_t> diag_task_{0};
  // Bumped by publish_diag (owner only: load + store), same use as diag_task_.
  std::atomic<std::uint64_t> diag_slice_{0};
  // Its name, NUL-padded, in relaxed words (publish_diag); same use as diag_task_.
  std::array<std::atomic<std::uint64_t>, diag_name_words> diag_name_{};
  // pthread_self() of the worker thread while thread_main runs, 0 before and after, for
  // the stall report's backtrace signal. A mutex, not an atomic: signal_thread holds it
  // across pthread_kill, so the thread cannot leave thread_main (and be joined, its id
  // reused) between the check and the send. Taken twice per thread and per stall report.
  std::mutex thread_mu_;
  unsigned long thread_handle_ = 0;
  // This thread's CPU clock and /proc/self/task/<tid>/stat (or -1), for thieves
  // (thread_cpu_ns(), thread_asleep()). Set once by thread_main; the fd is closed by the
  // destructor.
  clockid_t cpu_clock_{};
  std::atomic<bool> cpu_clock_ok_{false};
  std::atomic<int> stat_fd_{-1};

  // Statistics and shutdown accounting, written only by this worker.
  alignas(64) counter spawned_, completed_;
  counter fibers_run_, inline_runs_, switches_, steals_, stolen_, steal_attempts_, parks_,
      injected_, remote_wakes_, timers_fired_, io_polls_, io_ready_, searching_ns_, parked_ns_;
  // Sampled durations (stats.hpp): histogram buckets, each a single-writer counter.
  using histogram = std::array<counter, duration_histogram::bucket_count>;
  histogram sched_latency_, wait_time_;
  // steady ns: when thread_main started (0: not yet), and when the current park began (0:
  // not parked), and when it ended, for busy_ns. Written by the owner only; relaxed: statistics.
  std::atomic<std::int64_t> started_at_{0}, ended_at_{0}, park_since_{0};
};

}  // namespace weft::detail
