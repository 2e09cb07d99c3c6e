// weft/scheduler.hpp - the work-stealing fiber scheduler.
//
//   weft::scheduler sched({.workers = 0, .pin = true});   // one pinned worker per allowed core
//   auto h = sched.spawn([] { return 6 * 7; });            // any thread
//   int v = h.join();                                      // blocks this plain thread
//   int w = sched.block_on([] { return weft::spawn(fib, 20).join(); });
//
// Workers are OS threads, one per core of (process CPU binding ∩ allowed cpuset), pinned
// with hwloc. Each runs fibers from its local run queue, takes outside submissions from an
// injection queue, and steals from its peers when idle; an idle worker parks (no CPU).
#pragma once

#include <weft/detail/task.hpp>
#include <weft/export.hpp>
#include <weft/stats.hpp>

#include <weft/timer.hpp>

#include <chrono>
#include <string>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>

namespace weft {

template <class T>
class join_handle;

namespace detail {
class runtime;
}

// WEFT_API: exported from a shared libweft.so (tests/api_check.cpp checks every member).
class WEFT_API scheduler {
public:
  // Aggregate: designated initializers work in this member order.
  struct options {
    unsigned workers = 0;                 // 0: one per core of the allowed cpuset
    bool pin = true;                      // pin worker i to the i-th allowed core (hwloc)
    std::size_t stack_size = 64 * 1024;   // usable bytes per fiber stack; >= 16 KiB, rounded
                                          // up to pages; multiplied under ASan/TSan builds
    std::size_t stack_cache = 64;         // idle fiber stacks kept per worker for reuse;
                                          // the shared depot keeps more until it has been
                                          // idle 500 ms, then stack_cache x workers
                                          // (docs/design.md)
    std::size_t guard_size = 4096;        // PROT_NONE bytes below each stack, rounded to pages
    std::size_t max_fibers = 0;           // live-fiber cap; 0: derived from vm.max_map_count
                                          // when guard pages cost a mapping, else unlimited
    bool pin_strict = false;              // with pin: a worker that cannot be pinned fails
                                          // the constructor (std::system_error naming the
                                          // worker and CPU) instead of a warning on stderr
                                          // and an unpinned run
    std::uint64_t schedule_seed = 0;      // != 0: seeded schedule fuzzing (random choices
                                          // among runnable fibers, injected yields, forced
                                          // migration, shuffled timers; README "Schedule
                                          // fuzzing"). 0: off, unless WEFT_SCHED_SEED is set
    std::chrono::milliseconds shutdown_grace{-1};  // >= 0: the destructor shuts down with
                                          // shutdown_for(shutdown_grace) (fibers still
                                          // waiting then are asked to stop); < 0: it
                                          // waits for every fiber, as shutdown()
  };

  // Starts the workers. Throws std::invalid_argument for bad options, std::system_error
  // when threads or the topology cannot be set up.
  scheduler();
  explicit scheduler(const options& opts);
  // Waits for every fiber, detached ones too, then stops the workers (see shutdown()).
  // fork(): in a child process the scheduler's threads do not exist; there spawn and
  // block_on throw std::logic_error, and shutdown()/the destructor return at once (the
  // child's copy is leaked, not torn down). As with any multi-threaded parent, the child
  // should exec (or exit) rather than start a new scheduler: a lock a parent thread held
  // at the fork stays held in the child.
  ~scheduler();
  scheduler(const scheduler&) = delete;
  scheduler& operator=(const scheduler&) = delete;

  // Runs f(args...) as a new fiber. Any thread. Throws std::runtime_error once shutdown has
  // begun (fibers of this scheduler may still spawn while it drains), std::system_error
  // when the live-fiber cap is reached, std::invalid_argument for a null callable.
  template <class F, class... Args,
            class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, spawn_options>>>
  join_handle<detail::spawn_result_t<F, Args...>> spawn(F&& f, Args&&... args);
  // spawn() with per-fiber options (weft::spawn_options); std::invalid_argument for a bad one.
  template <class F, class... Args>
  join_handle<detail::spawn_result_t<F, Args...>> spawn(const spawn_options& o, F&& f, Args&&... args);

  // spawn(f, args...).detach() in one step (see weft::spawn_detached). Any thread.
  template <class F, class... Args>
  void spawn_detached(F&& f, Args&&... args);

  // Runs f as a fiber and returns its result (or rethrows its exception). From a plain
  // thread it blocks the thread; from a fiber of this scheduler it suspends the fiber.
  template <class F>
  detail::spawn_result_t<F> block_on(F&& f);

  // Refuses further outside spawns, waits until every fiber has finished, stops and joins
  // the workers. Idempotent. Must not be called from one of this scheduler's fibers
  // (aborts with a message: it would wait for itself).
  void shutdown() noexcept;
  // Bounded shutdown (README "Cancellation and deadlines"): as shutdown(), and from
  // `deadline` on every fiber that waits is asked to stop, as join_handle::request_stop
  // does (its current and later waits end: sleeps, events, channels, I/O, ...), again every
  // 10 ms for fibers that start waiting later. A fiber that neither finishes nor waits
  // (it computes, or holds a mutex another waits on, or waits without cancellation: a
  // mutex, an untimed join, run_blocking) keeps shutdown waiting: 1 s after the deadline
  // every unfinished fiber is named on stderr, with backtraces. Returns true when every
  // fiber had finished before the deadline (nothing was asked to stop). Same callers as
  // shutdown(); a call after shutdown() returned returns true at once. A call made while
  // another shutdown (bounded or not: the destructor, shutdown()) is still draining
  // brings its deadline to that drain (the earliest deadline of all calls applies) and
  // returns when it is done: true when nothing had to be asked to stop.
  bool shutdown(std::chrono::steady_clock::time_point deadline) noexcept;
  template <class Rep, class Period>
  bool shutdown_for(const std::chrono::duration<Rep, Period>& grace) noexcept {
    return shutdown(deadline_after(grace));
  }

  // Number of worker threads.
  unsigned worker_count() const noexcept;
  // The schedule fuzzing seed in force (options::schedule_seed or WEFT_SCHED_SEED), 0 when
  // fuzzing is off. Print it with a failure: the same seed replays the schedule.
  std::uint64_t schedule_seed() const noexcept;
  // A snapshot of the per-worker counters (relaxed reads; cheap, may be slightly stale).
  scheduler_stats stats() const;
  // Event tracing (README "Diagnostics"; or on from the start with WEFT_TRACE=path): each
  // worker records its scheduler events (fiber runs, suspensions and why, wakes and their
  // waker, spawns, steals, parks, timers and fd polls) in a ring keeping its last
  // events_per_worker (rounded up to a power of two, 32 bytes each). Any thread. A session
  // already running is restarted (its events are dropped). Throws std::invalid_argument
  // for events_per_worker 0 or above 2^26. Off, each event site costs one branch.
  void trace_start(std::size_t events_per_worker = 65536);
  // Ends the session and returns its events as Chrome trace-event JSON (open it in
  // ui.perfetto.dev or chrome://tracing): one track per worker, a flow arrow from each
  // wake to the run it caused. "" when no session runs. Any thread; allocates (from a
  // fiber it blocks its worker while it renders: tens of ms for full rings).
  std::string trace_stop();
  // trace_stop(), written to the file at path (created or truncated). Throws
  // std::system_error naming the path when it cannot be written (the events are lost).
  void trace_stop(const std::string& path);
  // Fiber dump (README "Diagnostics"): writes every live fiber to out: its id and name,
  // whether it runs (and on which worker), is runnable, or waits (on what: the primitive's
  // kind and address, the fd, the joined fiber; its deadline; for how long, as far as
  // earlier dumps saw), its stack use, and a backtrace of each suspended fiber (a
  // frame-pointer walk of its own stack). Workers are held at their next scheduling point
  // while the fibers are read (about 1 us per fiber); a worker whose fiber computes is
  // waited for at most 100 ms and its fiber reported as running. Any thread, fibers too.
  // Throws std::invalid_argument for a null out.
  void dump(std::FILE* out) const;
  // The scheduler whose fiber or worker is calling, or nullptr on any other thread.
  static scheduler* current() noexcept;

  detail::runtime& runtime_() noexcept { return *rt_; }

private:
  std::unique_ptr<detail::runtime> rt_;
};

}  // namespace weft

#include <weft/fiber.hpp>

namespace weft {

template <class F, class... Args, class>
join_handle<detail::spawn_result_t<F, Args...>> scheduler::spawn(F&& f, Args&&... args) {
  detail::check_not_forked(*this);
  auto* t = detail::make_task(std::forward<F>(f), std::forward<Args>(args)...);
  detail::publish_new_task(t, nullptr, [this](detail::task* n) { detail::spawn_on(*this, n); });
  return join_handle<detail::spawn_result_t<F, Args...>>(t);
}

template <class F, class... Args>
join_handle<detail::spawn_result_t<F, Args...>> scheduler::spawn(const spawn_options& o, F&& f,
                                                                 Args&&... args) {
  detail::check_not_forked(*this);
  auto* t = detail::make_task(std::forward<F>(f), std::forward<Args>(args)...);
  detail::publish_new_task(t, &o, [this](detail::task* n) { detail::spawn_on(*this, n); });
  return join_handle<detail::spawn_result_t<F, Args...>>(t);
}

template <class F, class... Args>
void scheduler::spawn_detached(F&& f, Args&&... args) {
  detail::check_not_forked(*this);
  auto* t = detail::make_task(std::forward<F>(f), std::forward<Args>(args)...);
  detail::make_detached(t);
  try {
    detail::spawn_on(*this, t);
  } catch (...) {
    detail::task_release(t);  // never published: ours alone
    throw;
  }
}

template <class F>
detail::spawn_result_t<F> scheduler::block_on(F&& f) {
  return spawn(std::forward<F>(f)).join();
}

}  // namespace weft
