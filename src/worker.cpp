// src/worker.cpp - the worker loop, the fiber loop and every context switch.
//
// Switch protocol (the one place fibers change hands; see also context.cpp):
//   1. The switching code records a post action (post_) and the target in this worker,
//      then calls switch_context. current_ names the fiber now running on this thread.
//   2. Whatever context lands (a resumed fiber, a fresh fiber's entry, the scheduler
//      context) immediately runs current_worker()->run_post(). The post action is what
//      makes the suspended fiber visible to others (requeue, join registration, a sync
//      primitive's waiter list, or returning a finished fiber to the pool). It runs after
//      the fiber's context is saved, so nobody can resume a fiber that is still running.
//   3. After a switch returns, `this` may name another thread's worker (the fiber
//      migrated): code after a switch re-reads current_worker().
//   4. The thread's C++ exception state (caught-exception stack, uncaught count) moves
//      with the fiber: switch_to saves it into the context left and installs the one
//      entered (context.hpp eh_state), so a fiber suspended inside a catch block or in a
//      destructor run by unwinding finds its own state wherever it resumes.
// Benchmark workloads cited here (W1, W3, W4, W7, W8, W9): docs/benchmarks.md; "idle.hpp W1-W4"
// (and a bare W1-W3 inside worker::sleep) are the watcher's steps, not workloads.
#include "worker.hpp"

#include "assert.hpp"
#include "context_switch.hpp"
#include "runtime.hpp"
#include "sanitizers.hpp"
#include "stack.hpp"
#include "topology.hpp"
#include "tsan_scope.hpp"

#include <weft/fiber.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <new>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <system_error>
#include <thread>
#include <unistd.h>

namespace weft::detail {

// initial-exec: one %fs-relative load. The library is built position-independent, where
// the default (global-dynamic) model calls __tls_get_addr on every access: that was 17% of
// a yield round trip. initial-exec works for an executable and for a shared library loaded
// at start-up (not for a late dlopen of libweft.so, which we do not support).
#if defined(__x86_64__) && defined(__LP64__) && defined(__GNUC__)
__thread worker* tls_worker_ = nullptr;  // worker.hpp declares it: asm name, TLS model
#else
namespace {
__attribute__((tls_model("initial-exec"))) thread_local worker* tls_worker_ = nullptr;
}  // namespace
#endif

namespace {

// Searching workers spin this long before parking. A futex wake round trip between cores
// costs ~45 µs on this VM kind (docs/platform.md), so a shorter spin turns every short gap
// in the work into that latency; a longer one burns CPU in idle phases (W9 measures it).
constexpr std::int64_t spin_for_ns = 50'000;

// Work conservation (worker.hpp, steps 1-4). A thief takes a peer's runnext_ or private_
// tasks only when the peer's progress_ has stood still for stall_grace and its thread
// computes (its CPU clock advanced by a quarter of the time between two reads, at least
// probe_ns apart) or sleeps in a syscall; not while it waits for a CPU (preempted: the OS
// runs it again soon; taking them then moved W4's pair from core to core, and W4 on a
// loaded 2-vCPU VM ran at ~half speed). After stall_limit without a move it takes them
// whatever the thread does.
constexpr std::int64_t stall_grace_ns = 20'000;
constexpr std::int64_t probe_ns = 10'000;
constexpr std::int64_t stall_limit_ns = 50'000'000;
// The watcher's looks (idle.hpp W2, worker.hpp step 3): watch_period_min apart while some
// awake peer stands still and may be computing (for less than long_compute so far),
// doubling up to watch_period_max while every awake peer keeps moving, waits for a CPU,
// or has computed for longer. Each look costs a timed futex wake (~16-20 us of CPU on
// this VM kind) and O(workers) loads: looks 50 us apart cost the watcher's core ~20%,
// and W4 ~40% on a loaded 2-vCPU VM.
constexpr std::int64_t watch_period_min_ns = 50'000;
constexpr std::int64_t watch_period_max_ns = 1'000'000;
constexpr std::int64_t long_compute_ns = 10'000'000;

// A busy worker polls the fds (reactor.hpp step 2) at most this often on fairness ticks:
// an epoll_wait costs ~0.5 µs, a tick comes every 61 picks.
constexpr std::int64_t io_poll_interval_ns = 20'000;
constexpr std::int64_t io_poll_backlogged_ns = 500'000;

constexpr unsigned long worker_timer_slack_ns = 1'000;

// Schedule fuzzing's forced migration: how long the migrating worker leaves the fiber to
// its target before it may steal it back (a parked target wakes in 25-65 us here).
constexpr std::int64_t migrate_wait_ns = 2'000'000;

// warm_fiber: how many lines of a fiber's stack above its saved context are prefetched
// (the switch frame and the ~5 frames of a typical suspension path: io::read -> wait ->
// suspend -> switch_to ~ 380 bytes), and how far ahead the fiber record is.
constexpr int warm_stack_lines = 6;
// warm_below: how many lines below a queued fiber's record (the top of its stack) a
// worker with peers prefetches (warm_below: the first frames the fiber returns through;
// 8 lines measured as well as reading the saved context on W11).
constexpr int warm_below_lines = 8;
constexpr std::uint64_t run_queue_prefetch_far = 8;

inline void cpu_relax() noexcept { __builtin_ia32_pause(); }

// A fiber landed on the worker running it: tsan_scope.hpp step 5. (Nothing at all outside
// the fiber mode: current_worker() is a volatile asm load the compiler would keep.)
inline void tsan_landed() noexcept {
#if defined(WEFT_TSAN_FIBER_MODE)
  tsan_acquire(current_worker());
#endif
}
}  // namespace

__attribute__((noinline)) worker* current_worker_noinline() noexcept {
  return tls_worker_;
}

bool current_fiber_guard(std::uintptr_t& guard_lo, std::uintptr_t& guard_hi, std::size_t& usable,
                         std::uint64_t& fiber_id) noexcept {
  worker* w = tls_worker_;
  if (!w || !w->current()) return false;
  fiber_impl* f = w->current();
  guard_lo = f->stk.guard_lo();
  guard_hi = f->stk.guard_hi();
  usable = f->stk.size;
  fiber_id = f->current ? f->current->id_ : 0;
  return true;
}

worker::worker(runtime& rt, unsigned index)
    : rt_(rt), index_(index), solo_(rt.opts_.workers == 1), unlimited_(rt.unlimited_), diag_(rt.diag_.stall_detection()),
      rng_(0x9e3779b9u * (index + 1)), fuzz_(rt.fuzz_seed_, index), seen_(rt.opts_.workers),
      inject_tok_(rt.inject_), remote_(64) {
  pool_.reserve(rt.opts_.stack_cache);
  sized_pool_.reserve(sized_cache_cap);
  if (diag_) hooks_.store(hook_diag, std::memory_order_relaxed);  // before the thread starts
}

worker::~worker() {
  // After the thread was joined: no thief reads it any more.
  if (const int fd = stat_fd_.load(std::memory_order_relaxed); fd >= 0) ::close(fd);
}

// ---------------------------------------------------------------- the worker thread

void worker::thread_main(int os_cpu, std::vector<std::vector<unsigned>> steal_tiers) {
  tls_worker_ = this;
  started_at_.store(steady_ns(), std::memory_order_relaxed);  // relaxed: statistics
  static_assert(sizeof(pthread_t) == sizeof(unsigned long));
  {
    std::lock_guard lock(thread_mu_);  // signal_thread: see thread_handle_
    thread_handle_ = static_cast<unsigned long>(pthread_self());
  }
  tiers_ = std::move(steal_tiers);
  int pin_err = 0;
  if (os_cpu >= 0) {
    pin_err = pin_injected_failure(index_);
    if (pin_err == 0) pin_err = pin_this_thread(os_cpu);
    // Under pin_strict the constructor reports it (and stops this worker) instead.
    if (pin_err != 0 && !rt_.opts_.pin_strict)
      std::fprintf(stderr, "weft: worker %u: cannot pin to CPU %d (%s); running unpinned\n",
                   index_, os_cpu, std::generic_category().message(pin_err).c_str());
  }
  rt_.report_pin(index_, os_cpu, pin_err);
  // A parked worker with armed timers sleeps until the earliest (park_until, a futex
  // timeout), and the kernel may stretch a normal thread's timeouts by its timer slack,
  // 50 us by default: most of a 65.5 us wheel tick, added to every sleep that wakes an
  // idle worker. 1 us keeps the kernel's batching without the lateness. Best effort.
  (void)prctl(PR_SET_TIMERSLACK, worker_timer_slack_ns, 0, 0, 0);
  install_overflow_handler_for_this_thread();
  tsan_release(this);  // this thread's start (and its TLS) to the fibers landing here
  tsan_benign(&errno, sizeof errno, "errno of a worker thread, shared by its fibers");
  tsan_internal_scope internal;  // the scheduler context runs only internals (tsan_scope.hpp)
  eh_ = thread_eh_state();
  {
    // Work conservation 1: what thieves read to tell a computing thread from a preempted
    // or blocked one. Missing: they judge by progress_ alone.
    clockid_t clock;
    if (::pthread_getcpuclockid(::pthread_self(), &clock) == 0) {
      cpu_clock_ = clock;
      // release: publishes cpu_clock_; pairs with the acquire load in thread_cpu_ns().
      cpu_clock_ok_.store(true, std::memory_order_release);
    }
    char path[64];
    std::snprintf(path, sizeof path, "/proc/self/task/%ld/stat",
                  static_cast<long>(::syscall(SYS_gettid)));
    // release: pairs with the acquire load in thread_asleep().
    stat_fd_.store(::open(path, O_RDONLY | O_CLOEXEC), std::memory_order_release);
  }
  context_init_thread(sched_ctx_);
  while (item it = find_work()) dispatch(it);
  for (fiber_impl* f : pool_) destroy_fiber(f);
  pool_.clear();
  for (fiber_impl* f : sized_pool_) destroy_fiber(f);
  sized_pool_.clear();
  remove_overflow_handler_for_this_thread();
  {
    std::lock_guard lock(thread_mu_);  // no signal after this: the thread is about to end
    thread_handle_ = 0;
  }
  ended_at_.store(steady_ns(), std::memory_order_relaxed);  // relaxed: statistics
  tls_worker_ = nullptr;
}

bool worker::signal_thread(int sig) noexcept {
  std::lock_guard lock(thread_mu_);
  return thread_handle_ != 0 && ::pthread_kill(static_cast<pthread_t>(thread_handle_), sig) == 0;
}

void worker::dispatch(item it) noexcept {
  had_work_ = true;
  fiber_impl* to = is_fiber(it) ? as_fiber(it) : fiber_for(as_task(it));
  if (to) switch_to(nullptr, to, nullptr, nullptr);
}

void worker::stop_searching() noexcept {
  if (!searching_) return;
  searching_ = false;
  // The last searcher to find work wakes another, so a burst ramps up (idle.hpp).
  if (rt_.idle_.leave_searching()) rt_.notify_idle(-1);
}

item worker::find_work() noexcept {
  for (;;) {
    // After park() we are counted as searching: every exit with work must uncount us, or
    // producers would believe somebody is still searching and never wake a sleeper.
    if (item it = next_local()) {
      stop_searching();
      return it;
    }
    // Idle: how many picks the idle loop makes depends on timing, so under schedule
    // fuzzing the fairness tick restarts here, and a seed replays the same schedule on one
    // worker after each idle period (sched_fuzz.hpp, "Replay").
    if (__builtin_expect(fuzz_.on(), 0)) fairness_countdown_ = fairness_interval;
    // A worker that never had work parks at once: a scheduler that is started and left
    // idle costs no spinning at all (W9). After the first item it spins before parking.
    if (!searching_ && had_work_) searching_ = rt_.idle_.try_enter_searching();
    if (searching_) {
      std::int64_t now = steady_ns();
      const std::int64_t began = now;
      const std::int64_t until = now + spin_for_ns;
      do {
        item it = try_steal(now);
        if (!it) it = next_local();  // fires this worker's due timers too
        if (it) {
          searching_ns_.add(static_cast<std::uint64_t>(now - began));  // to the last clock read
          stop_searching();
          return it;
        }
        for (int i = 0; i < 32; ++i) cpu_relax();
        now = steady_ns();
        if (steal_timers(now)) {  // timers.hpp step 4: the fired fibers are in our ring
          if (item fired = next_local()) {
            searching_ns_.add(static_cast<std::uint64_t>(now - began));
            stop_searching();
            return fired;
          }
        }
      } while (now < until);
      searching_ns_.add(static_cast<std::uint64_t>(now - began));
    }
    // acquire: pairs with the release store in runtime::shutdown(); everything was done.
    if (rt_.stop_.load(std::memory_order_acquire)) return 0;
    // inspect.hpp step 2, idle: an inspector unparks us to hear this.
    if (__builtin_expect(rt_.pause_.load(std::memory_order_acquire) != 0, 0)) pause_here();  // as in run_post
    park();
  }
}

// idle.hpp steps C1-C4.
void worker::park() noexcept {
  rt_.idle_.announce_park(index_, searching_);
  searching_ = false;
  // C2: orders announce_park's update before the re-check below; the other side of this
  // StoreLoad is the fence in idle::notify_one (P2).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  // timers.hpp step 3: read after this worker's own last arm (program order).
  const std::int64_t deadline = rt_.earliest_timer();
  if (rt_.any_work_visible() || rt_.stop_.load(std::memory_order_acquire) ||
      (deadline != timer_shard::none && deadline <= steady_ns())) {
    // Not on the list any more means a producer popped us and its unpark is pending.
    if (!rt_.idle_.cancel_park(index_)) parker_.park();
  } else {
    parks_.add();
    rt_.purge_idle_stacks();  // idle anyway: the depot's purge tick, if due (P4)
    // ... and wake for the next tick while the depot holds more than it keeps.
    std::int64_t wake_at = deadline;
    if (const std::int64_t trim_at = rt_.purge_deadline();
        trim_at != timer_shard::none && (wake_at == timer_shard::none || trim_at < wake_at))
      wake_at = trim_at;
    rt_.reactor_->arm_watch();  // reactor.hpp step 3: after C1, before sleeping
    const std::int64_t parked_at = steady_ns();
    park_since_.store(parked_at, std::memory_order_relaxed);  // relaxed: statistics
    if (tracing()) trace_emit(trace_kind::park, 0, 0);
    sleep(wake_at);
    if (tracing()) trace_emit(trace_kind::unpark, 0, 0);
    parked_ns_.add(static_cast<std::uint64_t>(steady_ns() - parked_at));
    park_since_.store(0, std::memory_order_relaxed);
  }
  searching_ = true;  // cancel_park, or the producer that popped us, counted us searching
}

// idle.hpp W1-W4. Returns unparked, or off the sleeper list (counted searching).
void worker::sleep(std::int64_t wake_at) noexcept {
  std::int64_t period = watch_period_min_ns;
  for (;;) {
    // W1: while some worker is awake, one sleeper watches it.
    const bool watching = rt_.idle_.try_claim_watch(index_);
    std::int64_t until = wake_at;
    if (watching) until = std::min(until, steady_ns() + period);
    if (until == timer_shard::none) {
      parker_.park();
      return;
    }
    const bool unparked = parker_.park_until(until);
    if (watching) rt_.idle_.release_watch(index_);  // W3
    if (unparked) return;
    // Timed out with no unpark. W2: the watcher looks at its peers.
    const std::int64_t now = steady_ns();
    bool calm = false;
    if (now >= wake_at || rt_.stop_.load(std::memory_order_acquire) ||
        (watching && watch_tick(now, calm))) {
      // Leave the sleeper list like C3's cancel_park; if a producer popped us
      // meanwhile, its unpark is pending (consume it).
      if (!rt_.idle_.cancel_park(index_)) parker_.park();
      return;
    }
    // Work conservation 3: back off while every awake peer keeps moving.
    period = calm ? std::min(2 * period, watch_period_max_ns) : watch_period_min_ns;
    // Timers armed since we parked may be due sooner (timers.hpp step 3).
    wake_at = std::min(wake_at, rt_.earliest_timer());
  }
}

bool worker::watch_tick(std::int64_t now, bool& calm) noexcept {
  // seq_cst loads (any_work_visible): C3's reads again. Items queued without a notify (a
  // yield's requeue) and due timers of any worker are found here.
  if (rt_.any_work_visible() || rt_.earliest_timer() <= now) return true;
  bool found = false;
  calm = true;
  for (unsigned i = 0, n = rt_.worker_count(); i < n; ++i) {
    worker& v = rt_.worker_at(i);
    if (&v == this) continue;
    // relaxed: hints (parker state, slots); the search's CAS decides what is taken.
    const bool hidden = v.runnext_.load(std::memory_order_relaxed) != 0 ||
                        v.private_n_.load(std::memory_order_relaxed) != 0;
    switch (look_at(v, now, hidden)) {
      case peer_state::moved:
        break;
      case peer_state::waiting:  // preempted (or parked): the OS, not us, must run it
        break;
      case peer_state::unknown:
      case peer_state::computing:
        // It may hide something any moment: look again soon, unless it has computed for
        // long already (then a long computation it likely is, and looks back off).
        if (!v.parker_.sleeping() && now - seen_[i].since < long_compute_ns) calm = false;
        break;
      case peer_state::stranding:
        found = true;
        break;
    }
  }
  return found;
}

bool worker::observe(worker& v, std::int64_t now) noexcept {
  // relaxed: a hint; the owner's stores of runnext_/private_ are acquired by the CAS.
  const std::uint64_t p = v.progress_.load(std::memory_order_relaxed);
  seen_progress& s = seen_[v.index_];
  if (p == s.progress) return false;
  s = seen_progress{};
  s.progress = p;
  s.since = now;
  return true;
}

std::int64_t worker::thread_cpu_ns() const noexcept {
  // acquire: pairs with the release store in thread_main (cpu_clock_ is set before).
  if (!cpu_clock_ok_.load(std::memory_order_acquire)) return -1;
  timespec ts;
  // The clock of a running thread includes its current slice (the kernel updates it).
  if (::clock_gettime(cpu_clock_, &ts) != 0) return -1;
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

bool worker::thread_asleep() const noexcept {
  // acquire: pairs with the release store in thread_main.
  const int fd = stat_fd_.load(std::memory_order_acquire);
  if (fd < 0) return true;  // unknown: progress_ and the CPU clock alone decide
  char buf[256];
  const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return true;
  buf[n] = '\0';
  // "<tid> (<comm>) <state> ...": the comm may contain ") ", so take the last ')'.
  const char* close = std::strrchr(buf, ')');
  if (!close || close[1] != ' ') return true;
  return close[2] == 'S' || close[2] == 'D';  // 'R': running, or waiting for a CPU
}

worker::peer_state worker::look_at(worker& v, std::int64_t now, bool hidden) noexcept {
  if (observe(v, now)) return peer_state::moved;
  seen_progress& s = seen_[v.index_];
  if (hidden && now - s.since >= stall_limit_ns) return peer_state::stranding;
  // Its CPU clock is read (a syscall of ~2 us) once per probe_ns at most: a searcher
  // calls this on every pass of its spin. In between, the last finding stands.
  if (s.cpu_at == 0 || now - s.cpu_at >= probe_ns) {
    const std::int64_t cpu = v.thread_cpu_ns();
    if (cpu < 0) {
      s.last = peer_state::computing;  // no CPU clock: progress_ alone decides
    } else {
      // Ran for a quarter of the interval at least (other processes may share its CPU).
      const bool running = s.cpu_at != 0 && 4 * (cpu - s.cpu) >= now - s.cpu_at;
      const bool first = s.cpu_at == 0;
      s.cpu = cpu;
      s.cpu_at = now;
      if (observe(v, now)) return peer_state::moved;  // got its CPU back meanwhile
      if (first)
        s.last = peer_state::unknown;
      else if (running)
        s.last = peer_state::computing;
      else  // blocked in a syscall, or waiting for a CPU: only the first is ours to fix
        s.last = hidden && v.thread_asleep() ? peer_state::stranding : peer_state::waiting;
    }
  }
  if (s.last == peer_state::computing && hidden && now - s.since >= stall_grace_ns)
    return peer_state::stranding;
  if (s.last == peer_state::stranding && !hidden) return peer_state::waiting;
  return s.last;
}

item worker::steal_hidden(worker& v, std::int64_t now) noexcept {
  const bool hidden = v.runnext_.load(std::memory_order_relaxed) != 0 ||
                      v.private_n_.load(std::memory_order_relaxed) != 0;
  if (!hidden) {
    observe(v, now);  // keeps seen_ current for when it hides something
    return 0;
  }
  if (look_at(v, now, true) != peer_state::stranding) return 0;
  // acquire (CAS): pairs with the owner's release store of the slot (try_wake_local,
  // wake_local, spawn_local, publish_private), so the item's state is visible here.
  item r = v.runnext_.load(std::memory_order_relaxed);
  if (r && v.runnext_.compare_exchange_strong(r, 0, std::memory_order_acquire,
                                              std::memory_order_relaxed))
    return r;
  // Oldest first, as publication would.
  const std::size_t n = std::min(v.private_n_.load(std::memory_order_acquire), private_cap);
  for (std::size_t i = 0; i < n; ++i) {
    task* t = v.private_[i].load(std::memory_order_relaxed);
    if (t && v.private_[i].compare_exchange_strong(t, nullptr, std::memory_order_acquire,
                                                   std::memory_order_relaxed))
      return as_item(t);
  }
  return 0;
}

item worker::next_local() noexcept {
  // relaxed: only this thread writes it (a plain increment); peers read it as a hint.
  const std::uint64_t tick = progress_.load(std::memory_order_relaxed) + 1;
  progress_.store(tick, std::memory_order_relaxed);
  if (--fairness_countdown_ == 0) {  // every fairness_interval-th call (no division)
    fairness_countdown_ = fairness_interval;
    // A batch, not one item: the injection queue holds ring spills (a burst of spawns)
    // and outside spawns, older than what the ring holds. One item per tick let a ring
    // kept full by timer wakes starve them (W8: the last new fiber started 55 ms late).
    // Only what the ring has room for, taken before the timers fire into it.
    const std::size_t room = decltype(ring_)::capacity - ring_.size();
    const item injected = poll_inject(std::max<std::size_t>(1, std::min(room, batch_.size())));
    poll_timers();  // into the ring's back (or the injection queue's): FIFO
    // The depot's purge tick when due (scheduler.cpp P4): also while no worker parks. Only
    // from the scheduler context (current_ null): not on a fiber's stack (it may be small)
    // nor inside a fiber's suspend (a tick may destroy thousands of fibers).
    if (const std::int64_t at = rt_.purge_deadline();
        current_ == nullptr && at != timer_shard::none && steady_ns() >= at)
      rt_.purge_idle_stacks();
    if (rt_.reactor_->io_used()) {  // reactor.hpp step 2, at most every io_poll_interval
      const std::int64_t now = steady_ns();
      if (now >= next_io_poll_) {
        // A backlog of runnable fibers already queued here: more readiness would only
        // queue behind it, at an epoll_wait each time. Poll every io_poll_backlogged_ns
        // until it drains (an empty queue polls at once, below), but do poll: the
        // backlog may never drain (fibers that keep yielding), and while every worker is
        // awake nobody else watches the fds (reactor.hpp step 5).
        if (ring_.size() < decltype(ring_)::capacity / 2 ||
            now - last_io_poll_ >= io_poll_backlogged_ns)
          poll_io(now);
        else
          next_io_poll_ = last_io_poll_ + io_poll_backlogged_ns;
      }
    }
    if (injected) return injected;
    if (item it = poll_remote()) return it;
  }
  // relaxed: the owner's own count.
  if (const std::size_t n = private_n_.load(std::memory_order_relaxed))
    publish_private(n);  // the running fiber stopped running
  if (item it = take_runnext()) {
    // Two fibers waking each other could monopolise runnext; after 3 in a row the woken
    // one queues behind the ring like everybody else (Tokio's LIFO slot budget). The
    // schedule fuzzer skips the slot at random (sched_fuzz.hpp choice 1).
    if ((++runnext_streak_ <= 3 || ring_.empty()) && !(fuzz_.on() && fuzz_.one_in(2)))
      return it;
    push_ring(it);
  }
  runnext_streak_ = 0;
  if (__builtin_expect(fuzz_.on(), 0)) {
    if (item it = fuzz_pick()) return it;
  }
  // With one worker nobody steals, so the owner's pop needs no CAS (W3: ~5 ns a switch).
  // Queued tasks were usually created long before they run (cold in cache): start loading
  // the header of the one that runs prefetch_distance pops from now (run_queue.hpp). A
  // stale hint costs nothing.
  item next = 0;
  if (item it = solo_ ? ring_.pop_unshared(next) : ring_.pop()) {
    if (!solo_) next = ring_.peek_ahead();
    if (solo_ && is_fiber(next) && as_fiber(next)->waited) {
      warm_fiber(as_fiber(next));
    } else if (next) {
      __builtin_prefetch(reinterpret_cast<void*>(next & ~item{1}));
      // With peers, `next` may be stolen and run (even end, its record destroyed) before
      // we pop it, so it is not read, only prefetched around: a fiber record sits at
      // the top of its stack, and the frames just below it are the first a resumed
      // fiber returns through. A prefetch never faults and is no access, so a stale
      // `next` costs wasted lines, nothing else. W11 wake+finish, 10^5 fibers at 2
      // workers: 114-133 ms -> 78-97 ms (a parked fiber's stack page is cold).
      if (is_fiber(next)) warm_below(as_fiber(next));
    }
    return it;
  }
  if (poll_timers()) return pop_ring();
  if (item it = poll_remote()) return it;
  if (item it = poll_inject(batch_.size())) return it;
  if (rt_.reactor_->io_used() && poll_io(steady_ns())) return pop_ring();
  return 0;
}

// sched_fuzz.hpp choice 1: rotates the local queue by a random few items, then pops, so
// the next fiber is a random one of the first eight runnable here. 0: the ring is empty.
item worker::fuzz_pick() noexcept {
  const std::size_t n = ring_.size();
  if (n == 0) return 0;
  for (std::uint64_t k = fuzz_.below(n < 8 ? n : 8); k > 0; --k) {
    item it = pop_ring();
    if (!it) return 0;  // stolen meanwhile
    push_ring(it);
  }
  return pop_ring();
}

// sched_fuzz.hpp choice 4: queues f on a random worker's remote queue (perhaps this one's:
// that still reorders it behind the local queue) instead of here, half of the time.
// Choice 7: one time in four, when f went to another worker, the waker lingers until that
// worker has taken its remote queue's items and switched twice since (into a fiber, out
// of it: most often f, run until it suspended or ended), at most linger_ns: whatever the
// waker does next then happens after f ran, as when the OS preempts a thread right after
// a wake. Hints, not proof (other items may run first): the bound keeps it cheap.
bool worker::fuzz_migrate(fiber_impl* f) noexcept {
  if (!fuzz_.one_in(2)) return false;
  worker& target = rt_.worker_at(static_cast<unsigned>(fuzz_.below(rt_.worker_count())));
  const bool linger = &target != this && fuzz_.one_in(4);
  // relaxed: progress hints only (the queue hands the item over).
  const std::int64_t queued = target.remote_count_.load(std::memory_order_relaxed);
  const std::uint64_t switches = target.switch_count();
  target.push_remote(as_item(f));
  if (linger) {
    const std::int64_t until = steady_ns() + linger_ns;
    while ((target.remote_count_.load(std::memory_order_relaxed) > queued ||
            target.switch_count() < switches + 2) &&
           steady_ns() < until)
      for (int i = 0; i < 32; ++i) cpu_relax();
  }
  return true;
}

// A suspended fiber resumes through its frames from the saved context upwards: each
// return after the switch mispredicts (the return stack buffer holds another fiber's
// addresses) and waits for its frame's line, so on a cold stack the misses are taken one
// after another (W7 at 1,024 connections: ~30% of weft's user time was the resume path:
// jump_fcontext, wait_ready and io::read each stalled on their frame). Here, 4 pops
// before it runs, the saved context and the frames above it are prefetched, with the
// line of its task where a fiber's captured state sits; the record (at the top of the
// stack) was prefetched 4 pops earlier still, so reading ctx.fctx rarely waits long.
// Solo workers only: with stealers the fiber might be running elsewhere (or be
// destroyed) while we read its record.
// Tried: records on the heap (dense, so the record read never walks a page). W7 gained
// nothing over this, and W8 (2 workers, 10,000 small-frame fibers whose record and
// frames shared a page) lost: 6 of 9 pairs slower, up to 2x in slow phases.
void worker::warm_fiber(fiber_impl* f) noexcept {
  if (item far = ring_.peek_unshared(run_queue_prefetch_far - 1))
    __builtin_prefetch(reinterpret_cast<void*>(far & ~item{1}));
  if (task* t = f->current) __builtin_prefetch(reinterpret_cast<char*>(t) + 64);
  const char* sp = static_cast<const char*>(f->ctx.fctx);
  for (int i = 0; i < warm_stack_lines; ++i) __builtin_prefetch(sp + 64 * i);
}

inline void worker::warm_below(const fiber_impl* f) noexcept {
  const char* top = reinterpret_cast<const char*>(f);
  for (int i = 1; i <= warm_below_lines; ++i) __builtin_prefetch(top - 64 * i);
}

template <class F>
std::size_t worker::batch_wakes(F&& wake_some) noexcept {
  firing_ = true;
  const std::size_t n = wake_some();
  firing_ = false;
  flush_fired();
  if (n) rt_.notify_idle(-1);  // P2-P4 of idle.hpp, once per batch: the ring may have been empty
  return n;
}

bool worker::poll_io(std::int64_t now) noexcept {
  last_io_poll_ = now;
  next_io_poll_ = now + io_poll_interval_ns;
  io_polls_.add();
  const std::size_t woke = batch_wakes([&] {
    const int n = rt_.reactor_->poll_io(io_events_.data(), static_cast<int>(io_events_.size()));
    return static_cast<std::size_t>(n > 0 ? n : 0);
  });
  io_ready_.add(woke);
  if (woke && tracing()) trace_emit(trace_kind::io, woke, 0);
  return woke != 0;
}

bool worker::poll_timers() noexcept {
  const std::int64_t next = timers_.next();
  if (next == timer_shard::none) return false;  // no clock read when nothing is armed
  const std::int64_t now = steady_ns();
  return next <= now && fire_timers(timers_, now, false);
}

bool worker::steal_timers(std::int64_t now) noexcept {
  bool fired = false;
  for (unsigned i = 0, n = rt_.worker_count(); i < n; ++i) {
    worker& v = rt_.worker_at(i);
    if (&v != this && v.timers_.next() <= now) fired |= fire_timers(v.timers_, now, true);
  }
  return fired;
}

bool worker::fire_timers(timer_shard& s, std::int64_t now, bool try_only) noexcept {
  const std::size_t n = batch_wakes([&] { return s.fire_due(now, try_only); });
  timers_fired_.add(n);
  if (n && tracing()) trace_emit(trace_kind::timers, n, 0);
  return n != 0;
}

item worker::poll_remote() noexcept {
  // relaxed: a hint; C3 and the fairness tick make sure nothing is left behind.
  if (remote_count_.load(std::memory_order_relaxed) <= 0) return 0;
  std::size_t n = remote_.try_dequeue_bulk(batch_.data(), batch_.size());
  if (n == 0) return 0;
  // relaxed: the count only tells parkers to look again; the items are handed over by
  // the queue itself (its release/acquire), not by the count.
  remote_count_.fetch_sub(static_cast<std::int64_t>(n), std::memory_order_relaxed);
  remote_wakes_.add(n);
  spread_batch(n);
  return batch_[0];
}

item worker::poll_inject(std::size_t max) noexcept {
  // relaxed: as in poll_remote.
  if (rt_.inject_count_.load(std::memory_order_relaxed) <= 0) return 0;
  std::size_t n = rt_.inject_.try_dequeue_bulk(inject_tok_, batch_.data(), std::min(max, batch_.size()));
  if (n == 0) return 0;
  rt_.inject_count_.fetch_sub(static_cast<std::int64_t>(n), std::memory_order_relaxed);
  injected_.add(n);
  spread_batch(n);
  return batch_[0];
}

item worker::try_steal(std::int64_t now) noexcept {
  for (const auto& tier : tiers_) {
    const std::size_t k = tier.size();
    const std::size_t start = fuzz_.on() ? fuzz_.below(k) : rng_() % k;  // fuzz choice 3
    for (std::size_t j = 0; j < k; ++j) {
      worker& v = rt_.worker_at(tier[(start + j) % k]);
      steal_attempts_.add();
      std::size_t moved = 0;
      if (item it = v.ring_.steal_into(ring_, moved)) {
        steals_.add();
        stolen_.add(moved);
        if (tracing()) trace_emit(trace_kind::steal, v.index_, moved);
        return it;
      }
      // A busy victim's remote wakes are fair game too (moodycamel is MPMC).
      if (v.remote_count_.load(std::memory_order_relaxed) > 0) {
        std::size_t n = v.remote_.try_dequeue_bulk(batch_.data(), batch_.size());
        if (n) {
          v.remote_count_.fetch_sub(static_cast<std::int64_t>(n), std::memory_order_relaxed);
          steals_.add();
          stolen_.add(n);
          if (tracing()) trace_emit(trace_kind::steal, v.index_, n);
          spread_batch(n);
          return batch_[0];
        }
      }
      // Work conservation 1: what a stalled victim's running fiber keeps from it.
      if (item it = steal_hidden(v, now)) {
        steals_.add();
        stolen_.add();
        if (tracing()) trace_emit(trace_kind::steal, v.index_, 1);
        return it;
      }
    }
  }
  return poll_inject(batch_.size());
}

bool worker::has_visible_work() const noexcept {
  // seq_cst loads: step C3 of the idle protocol, after the C2 fence.
  return ring_.size() != 0 || remote_count_.load(std::memory_order_seq_cst) > 0;
}

// ---------------------------------------------------------------- queues

// batch_[1..n) go to the ring; batch_[0] is run now. The ring just became non-empty while
// this worker is about to run something that may not yield for a long time: other
// workers must hear of it (P2-P4 of idle.hpp), or a parked one would sleep next to work.
void worker::spread_batch(std::size_t n) noexcept {
  if (n < 2) return;
  push_items(batch_.data() + 1, n - 1);
}

// One publication for a batch (run_queue.hpp step 1b) instead of one push per item.
// What the ring has no room for: a big rest (a quarter of private_ or more) goes to the
// injection queue as one batch, behind what is queued there; a small one is pushed one
// at a time as before, the first such push spilling the ring's older half to the
// injection queue (step 2) and so making room for the rest (n <= private_cap + 1 <=
// N / 2). Either way a full ring costs one injection per batch of at least
// private_cap / 4 items, never one per item (a moodycamel enqueue looks its producer up
// on each call). Then P2-P4 once for all of them.
void worker::push_items(const item* xs, std::size_t n) noexcept {
  std::size_t k = ring_.push_bulk(xs, n);
  if (n - k >= private_cap / 4) {
    rt_.inject(xs + k, n - k);  // P1 for the rest, then P2-P4 (covers the ring's part)
    return;
  }
  bool notified = false;
  for (; k < n; ++k) {
    if (std::size_t s = ring_.push(xs[k], spill_.data())) {
      rt_.inject(spill_.data(), s);  // P1 for the spill, then P2-P4 (covers the ring's part)
      notified = true;
    }
  }
  if (!notified) rt_.notify_idle(-1);  // P2-P4: the ring may have gone from empty to non-empty
}

void worker::flush_fired() noexcept {
  if (fired_n_) rt_.inject(fired_spill_.data(), fired_n_);
  fired_n_ = 0;
}

// Out of line, with the ring push inlined in it: run_post (the yield path, W3) then ends
// in a tail jump here instead of a call that keeps its frame (measured by callgrind).
__attribute__((noinline)) void worker::push_ring(item it) noexcept {
  if (std::size_t n = ring_.push(it, spill_.data())) rt_.inject(spill_.data(), n);
}

inline task* worker::take_private_slot(std::size_t i) noexcept {
  // relaxed: we stored these tasks ourselves; the exchange decides against thieves.
  if (solo_) {
    task* t = private_[i].load(std::memory_order_relaxed);
    private_[i].store(nullptr, std::memory_order_relaxed);
    return t;
  }
  if (!private_[i].load(std::memory_order_relaxed)) return nullptr;  // a hole: no RMW
  return private_[i].exchange(nullptr, std::memory_order_relaxed);
}

// Publishes the tasks of slots [0, k) (holes left by joins and thieves are skipped),
// then `extra` (a task that never went to private_) if non-zero, and moves the rest down.
// The tasks taken out are ours alone (take_private_slot) until push_items queues them.
void worker::publish_private(std::size_t k, item extra) noexcept {
  const std::size_t n = private_n_.load(std::memory_order_relaxed);
  std::size_t kept = 0, m = 0;
  for (std::size_t i = 0; i < n; ++i) {
    task* t = take_private_slot(i);
    if (!t) continue;
    if (i < k)
      publish_buf_[m++] = as_item(t);
    else  // release: as in spawn_local. Slot kept <= i was emptied above.
      private_[kept++].store(t, std::memory_order_release);
  }
  if (extra) publish_buf_[m++] = extra;
  private_n_.store(kept, std::memory_order_release);
  push_items(publish_buf_.data(), m);  // P1-P4 (idle.hpp), even for m == 0 as before
}

// spawn_local's paths: each uncommon case ends in a tail call, so the common one (store
// into private_) saves and restores no register (W1: one per spawn).
void worker::spawn_local(task* t) {
  if (__builtin_expect(id_next_ == id_end_, 0)) return spawn_id_block(t);
  t->id_ = id_next_++;
  if (__builtin_expect(tracing(), 0)) return spawn_traced(t);
  queue_spawn(t);
}

// Out of spawn_local's body (a tail call, as its other uncommon paths): a call there would
// cost every spawn a saved register (W1, callgrind: +4 instructions per spawn).
__attribute__((noinline, cold)) void worker::spawn_id_block(task* t) noexcept {
  // relaxed: uniqueness only needs the atomicity of fetch_add.
  id_next_ = rt_.id_source_.fetch_add(id_clock::block, std::memory_order_relaxed);
  id_end_ = id_next_ + id_clock::block;
  rt_.id_clock_.note(id_next_, index_);  // before the block's first id is handed out
  spawn_local(t);
}

__attribute__((noinline, cold)) void worker::spawn_traced(task* t) noexcept {
  const task* parent = current_ ? current_->current : nullptr;
  trace_emit(trace_kind::spawn, t->id_, parent ? parent->id_ : 0);
  queue_spawn(t);
}

inline void worker::queue_spawn(task* t) noexcept {
  spawned_.add_release();  // before publication: shutdown counts completions against it
  const std::size_t n = private_n_.load(std::memory_order_relaxed);
  // Somebody is idle and our ring is empty: let them see it now rather than when this
  // fiber stops running. t goes straight to the ring with the rest, not through a
  // private_ slot. While the ring holds items the idle worker has those to take (it was
  // told when the ring went non-empty: idle.hpp P1-P4), so private_ fills as usual and is
  // published a batch at a time: one P2 fence per batch, not one per spawn while a peer
  // searches (W1 at 2 workers). Both reads are hints (relaxed); the watcher covers what
  // stays in private_ (work conservation 1-2).
  if (rt_.idle_.has_idle() && ring_.empty()) return publish_private(n, as_item(t));
  if (__builtin_expect(n == private_cap, 0)) return spawn_full(t);
  // release: a thief's CAS (acquire) on the slot then sees the task (work conservation 1).
  private_[n].store(t, std::memory_order_release);
  private_n_.store(n + 1, std::memory_order_release);
}

// private_ is full: publish its older half, then queue t in the freed slot.
__attribute__((noinline)) void worker::spawn_full(task* t) noexcept {
  publish_private(private_cap / 2);
  const std::size_t n = private_n_.load(std::memory_order_relaxed);
  // release: as in queue_spawn.
  private_[n].store(t, std::memory_order_release);
  private_n_.store(n + 1, std::memory_order_release);
}

void worker::requeue_task(task* t) noexcept {
  push_ring(as_item(t));
  rt_.notify_idle(-1);
}

bool worker::take_private(task* t) noexcept {
  std::size_t n = private_n_.load(std::memory_order_relaxed);
  for (std::size_t i = n; i-- > 0;) {
    if (private_[i].load(std::memory_order_relaxed) != t) continue;
    if (take_private_slot(i) != t) return false;  // a thief took it: it runs elsewhere
    // Drop the holes at the top (this one, earlier joins', thieves'); fork-join joins
    // the newest child first, so the list usually empties as it filled.
    while (n > 0 && !private_[n - 1].load(std::memory_order_relaxed)) --n;
    private_n_.store(n, std::memory_order_relaxed);
    return true;
  }
  return false;
}

void worker::wake_local(fiber_impl* f) noexcept {
  if (firing_) {  // timers.hpp step 6: FIFO; fire_timers notifies once for the batch
    // A full ring would spill its oldest half behind the injection queue; the fibers
    // that just woke go there instead, behind everything queued before them.
    if (ring_.size() < decltype(ring_)::capacity) {
      push_ring(as_item(f));
    } else {
      fired_spill_[fired_n_++] = as_item(f);
      if (fired_n_ == fired_spill_.size()) flush_fired();
    }
    return;
  }
  // relaxed load: only the owner fills the slot. release: as in try_wake_local.
  item prev = runnext_.load(std::memory_order_relaxed);
  if (prev && !solo_)
    prev = runnext_.exchange(as_item(f), std::memory_order_release);  // 0: a thief took it
  else
    runnext_.store(as_item(f), std::memory_order_release);
  if (prev) {
    push_ring(prev);
    rt_.notify_idle(-1);
  }
}

void worker::push_remote(item it) noexcept {
  // A woken fiber that cannot be queued would be lost: an unrecoverable state.
  const bool queued = remote_.enqueue(it);
  WEFT_ASSERT(queued, "out of memory while queuing a woken fiber (remote queue)");
  // seq_cst: P1 of the idle protocol (paired with C3's seq_cst read in has_visible_work).
  remote_count_.fetch_add(1, std::memory_order_seq_cst);
  rt_.notify_idle(static_cast<int>(index_));
}

// ---------------------------------------------------------------- fibers

void worker::switch_to(fiber_impl* from, fiber_impl* to, post_fn post, void* arg) noexcept {
  post_ = post_action{post, arg, from};
  context& from_ctx = from ? from->ctx : sched_ctx_;
  context& to_ctx = to ? to->ctx : sched_ctx_;
  current_ = to;
  if (to) to->home = this;
  // diag.hpp, trace.hpp: one load and branch for both while both are off.
  if (__builtin_expect(hooks_.load(std::memory_order_relaxed) != 0, 0)) switch_hook(from, to, post);
  switches_.add();
  // Exception state is the fiber's (context.hpp eh_state): park the leaving context's,
  // install the arriving one's. 32 bytes moved, no call (eh_ is cached per worker).
  from_ctx.eh = *eh_;
  *eh_ = to_ctx.eh;
  switch_context(from_ctx, to_ctx);
  // Resumed, perhaps on another worker: `this` is stale from here on (protocol step 3).
  current_worker()->run_post();
}

void worker::record_resume(fiber_impl* self, std::int64_t suspended_at) noexcept {
  const std::int64_t now = steady_ns();
  if (suspended_at) record(wait_time_, now - suspended_at);
  if (self->woke_at) {
    record(sched_latency_, now - self->woke_at);
    self->woke_at = 0;
  }
}

void worker::run_post() noexcept {
  // inspect.hpp step 2. release: what this worker did before (the leaving fiber's saved
  // context among it) is visible to an inspector that reads the store.
  running_.store(current_, std::memory_order_release);
  // acquire (a plain mov on x86): reading the inspector's release of 0 orders its reads of
  // the records (a task's name) before whatever this worker does to them next (step 5).
  if (__builtin_expect(rt_.pause_.load(std::memory_order_acquire) != 0, 0)) pause_here();
  post_action p = post_;
  post_.fn = nullptr;  // arg and from are read only together with a non-null fn
  if (p.fn == &worker::post_requeue) {
    // yield's action, without the indirect call (or the fuzzer's migration, choice 4)
    if (!(__builtin_expect(fuzz_.on(), 0) && fuzz_migrate(p.from))) push_ring(as_item(p.from));
  } else if (p.fn)
    p.fn(p.from, p.arg);
}

void worker::suspend(fiber_impl* self, post_fn post, void* arg) noexcept {
  {
    tsan_internal_scope internal;
    self->waited = true;
    // stats.hpp: one suspension in 64 is timed.
    const std::int64_t suspended_at =
        __builtin_expect(--suspend_countdown_ == 0, 0) ? suspend_sample() : 0;
    item next = next_local();
    fiber_impl* to = nullptr;
    if (next) to = is_fiber(next) ? as_fiber(next) : fiber_for(as_task(next));
    switch_to(self, to, post, arg);
    if (__builtin_expect((suspended_at | self->woke_at) != 0, 0))
      current_worker()->record_resume(self, suspended_at);  // we may have migrated
  }
  tsan_acquire(self);  // wake -> resume (tsan_scope.hpp step 3): released by wake()
  tsan_landed();
}

void worker::yield(fiber_impl* self) noexcept {
  {
    tsan_internal_scope internal;  // a yield orders nothing (tsan_scope.hpp step 1)
    self->waited = false;
    self->wait.kind = wait_kind::yield;  // inspections read nothing else of a yield's
    item next = next_local();
    if (!next) {  // nothing else is runnable here: go on, unless the fuzzer moves us
      // A yield is a suspension point even when nothing else is runnable (the next one may
      // switch): no_suspend_scope traps it here too, not only when it happens to switch.
      if (__builtin_expect(no_suspend_ != 0, 0)) no_suspend_violation(self->current, false);
      if (!(__builtin_expect(fuzz_.on(), 0) && rt_.worker_count() > 1 && fuzz_.one_in(2)))
        return;
      switch_to(self, nullptr, post_migrate, nullptr);  // sched_fuzz.hpp choice 4
    } else {
      fiber_impl* to = is_fiber(next) ? as_fiber(next) : fiber_for(as_task(next));
      switch_to(self, to, post_requeue, nullptr);
    }
  }
  tsan_landed();
}

}  // namespace weft::detail

namespace weft::this_fiber {
// Here, not in task.cpp, so that worker::yield is inlined into it: one call fewer per
// switch on the W3 path.
void yield() noexcept {
  detail::worker* w = detail::current_worker();
  if (!w || !w->current()) {
    std::this_thread::yield();
    return;
  }
  w->yield(w->current());
}
}  // namespace weft::this_fiber

namespace weft::detail {

void worker::post_requeue(fiber_impl* from, void*) noexcept {
  current_worker()->push_ring(as_item(from));
}

// sched_fuzz.hpp choice 4 for a fiber that yielded with nothing else runnable: it goes to
// another worker's remote queue (run from the scheduler context, after the switch). This
// worker, idle now, would steal it straight back from there (a victim's remote queue is
// fair game, and the target's wake-up takes tens of microseconds), so it waits up to
// migrate_wait_ns for the target to take it first. Only under fuzzing.
void worker::post_migrate(fiber_impl* from, void*) noexcept {
  worker* w = current_worker();
  const unsigned n = w->rt_.worker_count();
  worker& target = w->rt_.worker_at((w->index_ + 1 + static_cast<unsigned>(w->fuzz_.below(n - 1))) % n);
  // relaxed: a progress hint only; the queue hands the item over.
  const std::int64_t before = target.remote_count_.load(std::memory_order_relaxed);
  target.push_remote(as_item(from));
  const std::int64_t until = steady_ns() + migrate_wait_ns;
  while (target.remote_count_.load(std::memory_order_relaxed) > before && steady_ns() < until)
    for (int i = 0; i < 32; ++i) cpu_relax();
}

// ---------------------------------------------------------------- tracing (trace.hpp)

namespace {
std::uint64_t running_task_id(const fiber_impl* f) noexcept {
  return f && f->current ? f->current->id_ : 0;
}
// trace.hpp, "Wait numbers": what a switch records of the fiber it resumes: its wait
// number when it resumes from a wait (its suspension's one resume), 0 otherwise (a yield,
// a fresh fiber, the scheduler context). Plain reads: the fiber wrote both before it
// suspended, and the queue that handed it to us ordered that.
std::uint64_t resume_wait_number(const fiber_impl* f) noexcept {
  return f && f->waited ? f->waits : 0;
}
}  // namespace

void worker::trace_emit(trace_kind k, std::uint64_t a, std::uint64_t b) noexcept {
  // acquire: pairs with set_trace's release. Reloaded: the tracer may have cleared it since
  // the site's check (trace.hpp step 4); a ring, once set, outlives every such writer.
  if (trace_ring* r = trace_.load(std::memory_order_acquire)) r->emit(k, a, b);
}

void worker::wake_hook(fiber_impl* f) noexcept {
  trace_ring* r = trace_.load(std::memory_order_acquire);  // pairs with set_trace
  // f is suspended and ours to wake (suspend.hpp rule 2): its running task and its wait
  // number (trace.hpp) cannot change under us. No clock read: the export bounds the
  // wake's time by its neighbours and matches it to its run by the wait number.
  if (r) r->emit_untimed(trace_kind::wake, f->waits, running_task_id(f), running_task_id(current_));
  // stats.hpp schedule_latency: one wake in 64 (all come here while tracing). A plain
  // field: f is ours to wake (suspend.hpp rule 2); the queue hands it over.
  if (!r || (++traced_wakes_ & sample_mask) == 0) f->woke_at = steady_ns();
  wake_countdown_ = r ? 1 : sample_mask + 1;
}

std::int64_t worker::suspend_sample() noexcept {
  suspend_countdown_ = sample_mask + 1;
  return steady_ns();
}

void worker::set_trace(trace_ring* r) noexcept {
  trace_.store(r, std::memory_order_release);  // trace.hpp step 1
  // relaxed: a hint for the owner's sites, which then load trace_ (acquire).
  if (r)
    hooks_.fetch_or(hook_trace, std::memory_order_relaxed);
  else
    hooks_.fetch_and(static_cast<std::uint8_t>(~hook_trace), std::memory_order_relaxed);
}

void worker::no_suspend_enter() noexcept {
  // relaxed, as set_trace's: a hint for this worker's own switch_to; the tracer may
  // fetch_or/fetch_and its own bit concurrently, hence the read-modify-write.
  if (no_suspend_++ == 0) hooks_.fetch_or(hook_no_suspend, std::memory_order_relaxed);
}

void worker::no_suspend_leave() noexcept {
  WEFT_ASSERT(no_suspend_ != 0, "this_fiber::no_suspend_scope closed more often than opened");
  if (--no_suspend_ == 0)
    hooks_.fetch_and(static_cast<std::uint8_t>(~hook_no_suspend), std::memory_order_relaxed);
}

void worker::no_suspend_violation(const task* t, bool finished) noexcept {
  const char* name = t ? task_name(t) : nullptr;
  std::fprintf(stderr, "weft: fiber #%llu%s%s%s on worker %u %s inside a this_fiber::no_suspend_scope\n",
               static_cast<unsigned long long>(t ? t->id_ : 0), name ? " (" : "", name ? name : "",
               name ? ")" : "", index_,
               finished ? "finished" : "suspended (a wait, yield, sleep, join or I/O)");
  contract_violation(finished ? "a fiber finished with a this_fiber::no_suspend_scope still open"
                              : "a fiber suspended inside a this_fiber::no_suspend_scope",
                     __FILE__, __LINE__);
}

void worker::switch_hook(fiber_impl* from, fiber_impl* to, post_fn post) noexcept {
  // Only a fiber can open a scope, and it runs until it switches out: `from` is that fiber.
  if (__builtin_expect(no_suspend_ != 0, 0))
    no_suspend_violation(from ? (from->current ? from->current : from->root) : nullptr,
                         post == &worker::post_recycle);
  if (diag_) publish_diag(to ? (to->current ? to->current : to->root) : nullptr);
  // acquire: pairs with set_trace's release. One load, no further call: this runs on every
  // switch while tracing (W3/W4 pay it twice per round trip).
  if (trace_ring* r = trace_.load(std::memory_order_acquire)) {
    // Why `from` leaves, from the action that publishes it (switch protocol 1).
    trace_kind k = trace_kind::switch_wait;
    if (!post)
      k = trace_kind::switch_none;  // dispatch: from the scheduler context
    else if (post == &worker::post_requeue || post == &worker::post_migrate)
      k = trace_kind::switch_yield;
    else if (post == &worker::post_recycle)
      k = trace_kind::switch_end;
    r->emit(k, resume_wait_number(to), running_task_id(to));
  }
}

void worker::task_hook(trace_kind k, const task* now, const task* t, const task* outer) noexcept {
  // A fiber's task that ends with a scope open leaked it (the fiber may take the next task
  // without a switch, which would then run inside it). Not a child that ran inline (outer
  // set): the open scope may be the joiner's, which goes on; a scope the child leaked is
  // caught when the joiner suspends or ends.
  if (__builtin_expect(k == trace_kind::end && !outer && no_suspend_ != 0, 0))
    no_suspend_violation(t, true);
  if (diag_) publish_diag(now);
  if (tracing()) trace_emit(k, t->id_, outer ? outer->id_ : 0);
}

void worker::publish_diag(const task* t) noexcept {
  diag_slice_.store(diag_slice_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  diag_task_.store(t ? t->id_ : 0, std::memory_order_relaxed);
  // The name, word by word (relaxed: a report; a reader may see a torn mix of two names
  // next to either id, never a torn word or a read past the buffer).
  char buf[diag_name_words * 8] = {};
  if (const char* n = t ? task_name(t) : nullptr) std::strncpy(buf, n, sizeof buf - 1);
  for (std::size_t i = 0; i < diag_name_words; ++i) {
    std::uint64_t word;
    std::memcpy(&word, buf + 8 * i, 8);
    diag_name_[i].store(word, std::memory_order_relaxed);
  }
}

void worker::diag_name(char (&out)[diag_name_words * 8]) const noexcept {
  for (std::size_t i = 0; i < diag_name_words; ++i) {
    const std::uint64_t word = diag_name_[i].load(std::memory_order_relaxed);
    std::memcpy(out + 8 * i, &word, 8);
  }
  out[sizeof out - 1] = '\0';
}

void worker::pause_here() noexcept {
  // inspect.hpp step 3. acquire: pairs with the inspector's seq_cst store of g.
  const std::uint32_t g = rt_.pause_.load(std::memory_order_acquire);
  if (g == 0) return;
  pause_fp_.store(reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0)),
                  std::memory_order_relaxed);  // relaxed: published by the release below
  // release: everything this worker did, and the frame pointer, to the inspector.
  pause_ack_.store(g, std::memory_order_release);
  // acquire: pairs with the inspector's release of 0 (what it changed, e.g. the records'
  // seen_* fields, is then ordered before we run the fibers again).
  while (rt_.pause_.load(std::memory_order_acquire) == g) rt_.pause_.wait(g, std::memory_order_acquire);
}

void worker::post_recycle(fiber_impl* from, void*) noexcept {
  current_worker()->recycle(from);
}

void worker::fiber_main(transfer first) {
  context_first_landing(first);
  worker* w = current_worker();
  fiber_impl* self = w->current_;
  w->run_post();
  for (;;) {
    task* t = self->root;
    self->root = nullptr;
    w->run_task(self, t);
    w = current_worker();  // the task may have migrated us
    item next = w->next_local();
    fiber_impl* to = nullptr;
    if (next && !is_fiber(next)) {
      if (__builtin_expect(task_stack_class(as_task(next)) == self->stack_class, 1)) {
        self->root = as_task(next);  // run it on this stack: no switch, no new fiber
        continue;
      }
      to = w->fiber_for(as_task(next));  // it needs a stack of another size
    } else if (next) {
      to = as_fiber(next);
    }
    w->switch_to(self, to, post_recycle, nullptr);
    w = current_worker();  // taken from a pool again, with root set
  }
}

void worker::run_task(fiber_impl* self, task* t) noexcept {
  task* outer = self->current;
  self->current = t;
  self->current_id.store(t->id_, std::memory_order_relaxed);  // relaxed: inspect.hpp
  if (__builtin_expect(hooks_.load(std::memory_order_relaxed) != 0, 0))  // diag.hpp, trace.hpp
    task_hook(trace_kind::start, t, t, outer);
  fibers_run_.add();
  if (outer) inline_runs_.add();
  {
    tsan_user_scope user;  // the task's own code (tsan_scope.hpp step 3)
    tsan_acquire(t);       // spawn -> start: released by spawn_here / spawn_on
    tsan_acquire(this);    // tsan_scope.hpp step 5 (this is the current worker here)
    try {
      t->invoke();
    } catch (...) {
      t->error_ = std::current_exception();
    }
    // Most fibers never touch a fiber_local: no call for them.
    if (__builtin_expect(t->fls_ != nullptr, 0)) fls_destroy(t);
    tsan_release(t);     // finish -> join: acquired by task_wait / task_detach
    tsan_release(&rt_);  // finish -> shutdown: acquired by runtime::shutdown
  }
  self->current = outer;
  self->current_id.store(outer ? outer->id_ : 0, std::memory_order_relaxed);
  worker* w = current_worker();  // invoke() may have migrated us
  if (__builtin_expect(w->hooks_.load(std::memory_order_relaxed) != 0, 0))
    w->task_hook(trace_kind::end, outer, t, outer);
  task_complete(t);
  task_release(t);  // the queue's reference
  w->release_fiber_slot();
  w->completed_.add_release();  // last: shutdown may proceed once every spawn is matched
}

// Stack lifecycle steps 1-3 (stack_arena.hpp) and depot step D1 (scheduler.cpp): the
// pool, then a batch of the depot's hot fibers, then a fiber built on a fresh stack
// (fresh_: purged stacks from the depot, else stacks carved from the arenas, a batch at
// a time). Only the last two cost anything: a page fault for the new record and, for a
// carved stack, its guard's madvise.
fiber_impl* worker::fiber_for(task* t) noexcept {
  if (__builtin_expect(task_stack_class(t) != 0, 0)) return sized_fiber_for(t);
  fiber_impl* f = nullptr;
  if (!pool_.empty()) {
    f = pool_.back();
    pool_.pop_back();
    // The next spawn's fiber: its record and the frame it resumes in have gone cold in
    // the pool (a wave of parked fibers is 4 KiB each). One spawn of lead time.
    if (!pool_.empty()) warm_below(pool_.back());
  } else if ((f = take_spare()) != nullptr) {
    // other workers' surplus (fibers finish where they were stolen to, or a wave of
    // fibers outgrew the pools)
  } else if ((f = fresh_fiber(t)) == nullptr) {
    return nullptr;
  }
  f->root = t;
  return f;
}

fiber_impl* worker::fresh_fiber(task* t) noexcept {
  try {
    if (fresh_n_ == 0) {
      fresh_n_ = rt_.take_purged_stacks(fresh_.data(), spare_batch());
      if (fresh_n_ == 0) fresh_n_ = rt_.carve_stacks(fresh_.data(), spare_batch());
    }
    return make_fiber(fresh_[--fresh_n_], 0);
  } catch (...) {
    fail_to_start(t);
    return nullptr;
  }
}

fiber_impl* worker::make_fiber(const stack& s, unsigned stack_class) noexcept {
  const std::size_t record = (sizeof(fiber_impl) + 63) & ~std::size_t{63};
  auto* f = ::new (static_cast<char*>(s.lo) + s.size - record) fiber_impl{};
  f->stk = s;
  f->rt = &rt_;
  f->stack_class = static_cast<std::uint8_t>(stack_class);
  context_make(f->ctx, s.lo, s.size - record, &worker::fiber_main);
  rt_.registry_.add(f, index_);  // inspect.hpp: every record, until retire_fiber
  return f;
}

void worker::fail_to_start(task* t) noexcept {
  // No stack: the task fails to start; join() rethrows the std::system_error.
  t->error_ = std::current_exception();
  task_complete(t);
  task_release(t);
  release_fiber_slot();
  completed_.add_release();
}

fiber_impl* worker::map_fiber(task* t, std::size_t usable, unsigned stack_class) noexcept {
  try {
    return make_fiber(stack_allocate(usable, rt_.opts_.guard_size), stack_class);
  } catch (...) {
    fail_to_start(t);
    return nullptr;
  }
}

// fiber_for() for a task with a stack size of its own (spawn_options::stack_size): from
// sized_pool_ (a few fibers, any class, matched exactly), else a new mapping of that
// class's size. Such fibers never go to pool_ or the runtime's spare list.
fiber_impl* worker::sized_fiber_for(task* t) noexcept {
  const unsigned c = task_stack_class(t);
  fiber_impl* f = nullptr;
  for (std::size_t i = sized_pool_.size(); i-- > 0;) {
    if (sized_pool_[i]->stack_class == c) {
      f = sized_pool_[i];
      sized_pool_.erase(sized_pool_.begin() + static_cast<std::ptrdiff_t>(i));
      break;
    }
  }
  if (!f) {
    f = map_fiber(t, round_to_pages(stack_class_bytes(c) * sanitizer_stack_multiplier), c);
    if (!f) return nullptr;
  }
  f->root = t;
  return f;
}

void worker::recycle(fiber_impl* f) noexcept {
  if (__builtin_expect(f->stack_class != 0, 0)) {
    if (sized_pool_.size() < sized_cache_cap)
      sized_pool_.push_back(f);  // reserved: never allocates here
    else
      destroy_fiber(f);
    return;
  }
  if (pool_.size() < rt_.opts_.stack_cache) {
    pool_.push_back(f);  // LIFO: the stack freed hot is the next one reused
    return;
  }
  // Full: the oldest (coldest) fibers of the pool go to the spare list, a batch per lock;
  // f, freed hot, stays. With stack_cache 0 the pool is empty and f itself goes.
  const bool alone = pool_.empty();
  const std::size_t moved =
      alone ? rt_.give_spare_fibers(&f, 1)
            : rt_.give_spare_fibers(pool_.data(), std::min(spare_batch(), pool_.size()));
  if (moved == 0) {  // unreachable for arena stacks (depot D2); drop f
    destroy_fiber(f);
    return;
  }
  if (alone) return;
  pool_.erase(pool_.begin(), pool_.begin() + static_cast<std::ptrdiff_t>(moved));
  pool_.push_back(f);  // within the reserved capacity: moved >= 1 slots were freed
}

std::size_t worker::spare_batch() const noexcept {
  return std::clamp<std::size_t>(rt_.opts_.stack_cache / 2, 1, spare_batch_max);
}

fiber_impl* worker::take_spare() noexcept {
  fiber_impl* got[spare_batch_max];
  const std::size_t n = rt_.take_spare_fibers(got, spare_batch());
  if (n == 0) return nullptr;
  // got[0] was given last (the warmest): it runs now. The rest go to the pool so that
  // got[1] is popped next; n - 1 < stack_cache / 2 + 1 fits the reserved capacity.
  for (std::size_t i = n; i-- > 1;) pool_.push_back(got[i]);
  return got[0];
}

stack retire_fiber(fiber_impl* f) noexcept {
  f->rt->registry_.remove(f);
  context_destroy(f->ctx);
  stack s = f->stk;
  f->~fiber_impl();
  return s;
}

void destroy_fiber(fiber_impl* f) noexcept {
  // An arena stack stays mapped (its arena is unmapped with the runtime); any other is
  // unmapped here.
  stack_release(retire_fiber(f));
}

// ---------------------------------------------------------------- accounting

bool worker::reserve_limited_slot() noexcept {
  if (budget_ > 0) {
    --budget_;
    return true;
  }
  // relaxed: the budget is a counter of slots; nothing is published through it.
  std::int64_t avail = rt_.budget_.load(std::memory_order_relaxed);
  while (avail > 0) {
    std::int64_t take = std::min(avail, rt_.budget_batch_);
    if (rt_.budget_.compare_exchange_weak(avail, avail - take, std::memory_order_relaxed)) {
      budget_ = take - 1;
      return true;
    }
  }
  return false;
}

void worker::release_limited_slot() noexcept {
  if (++budget_ > 2 * rt_.budget_batch_) {
    rt_.budget_.fetch_add(rt_.budget_batch_, std::memory_order_relaxed);
    budget_ -= rt_.budget_batch_;
  }
}

worker_stats worker::stats() const noexcept {
  worker_stats s;
  s.fibers_run = fibers_run_.get();
  s.inline_runs = inline_runs_.get();
  s.switches = switches_.get();
  s.steals = steals_.get();
  s.stolen = stolen_.get();
  s.steal_attempts = steal_attempts_.get();
  s.parks = parks_.get();
  s.injected = injected_.get();
  s.remote_wakes = remote_wakes_.get();
  s.timers_fired = timers_fired_.get();
  s.io_polls = io_polls_.get();
  s.io_ready = io_ready_.get();
  // relaxed: statistics (a snapshot may be a few ns inconsistent).
  const std::int64_t started = started_at_.load(std::memory_order_relaxed);
  const std::int64_t ended = ended_at_.load(std::memory_order_relaxed);
  const std::int64_t now = ended ? ended : steady_ns();
  std::int64_t parked = static_cast<std::int64_t>(parked_ns_.get());
  if (const std::int64_t since = park_since_.load(std::memory_order_relaxed); since && !ended)
    parked += std::max<std::int64_t>(now - since, 0);  // the park under way
  const auto searching = static_cast<std::int64_t>(searching_ns_.get());
  s.parked_ns = static_cast<std::uint64_t>(parked);
  s.searching_ns = static_cast<std::uint64_t>(searching);
  s.busy_ns = started ? static_cast<std::uint64_t>(std::max<std::int64_t>(now - started - parked - searching, 0)) : 0;
  s.run_queue_depth = ring_.size();
  s.remote_queue_depth =
      static_cast<std::uint64_t>(std::max<std::int64_t>(remote_count_.load(std::memory_order_relaxed), 0));
  for (std::size_t k = 0; k < duration_histogram::bucket_count; ++k) {
    s.schedule_latency.count[k] = sched_latency_[k].get();
    s.wait_time.count[k] = wait_time_[k].get();
  }
  return s;
}

}  // namespace weft::detail
