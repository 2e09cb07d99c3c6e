// weft/fiber.hpp - spawn(), join_handle<T>, this_fiber, this_worker, fiber_local<T>.
//
// Thread-local hazard: a fiber may resume on a different worker thread after any
// suspension point (yield, join, a sync wait, I/O). A `thread_local` read before and after
// such a point may name two different threads' objects, and a compiler may even cache a
// thread_local's address across the call. Keep per-fiber state in weft::fiber_local<T>.
// Benchmark workloads cited here (W8): docs/benchmarks.md.
#pragma once

#include <weft/detail/task.hpp>
#include <weft/export.hpp>
#include <weft/timer.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>

namespace weft {

class scheduler;

// What join_until/join_for return: for join_handle<void>, true when the fiber finished
// (and was joined); otherwise an optional holding the result (a reference_wrapper for a
// reference result), empty when the deadline passed first.
template <class T>
using join_result_t = std::conditional_t<
    std::is_void_v<T>, bool,
    std::optional<std::conditional_t<std::is_reference_v<T>,
                                     std::reference_wrapper<std::remove_reference_t<T>>, T>>>;

class stop_token;
namespace detail {
stop_token make_stop_token(task* adopted) noexcept;  // takes over one reference
}

// A view of one fiber's stop state, shaped like std::stop_token (which C++17 lacks):
// copyable, readable from any thread, passable to other fibers (a child can watch its
// parent's). Keeps the fiber's task record (not the fiber) alive while it exists. A
// default-constructed token is never stopped.
class stop_token {
public:
  stop_token() noexcept = default;
  stop_token(const stop_token& o) noexcept : t_(o.t_) {
    if (t_) detail::task_add_ref(t_);
  }
  stop_token(stop_token&& o) noexcept : t_(std::exchange(o.t_, nullptr)) {}
  stop_token& operator=(stop_token o) noexcept {
    std::swap(t_, o.t_);
    return *this;
  }
  ~stop_token() {
    if (t_) detail::task_release(t_);
  }
  // True once a stop was requested (join_handle::request_stop) for that fiber.
  [[nodiscard]] bool stop_requested() const noexcept { return t_ && detail::task_stop_requested(t_); }
  // False for a default-constructed token.
  [[nodiscard]] bool stop_possible() const noexcept { return t_ != nullptr; }

private:
  friend stop_token detail::make_stop_token(detail::task* adopted) noexcept;
  explicit stop_token(detail::task* adopted) noexcept : t_(adopted) {}
  detail::task* t_ = nullptr;
};

inline stop_token detail::make_stop_token(task* adopted) noexcept { return stop_token(adopted); }

// Owns the right to join one fiber. Move-only. Destroying a joinable handle detaches the
// fiber (as Tokio's JoinHandle does; std::thread would terminate instead).
template <class T>
class join_handle {
public:
  join_handle() noexcept = default;
  explicit join_handle(detail::task_of<T>* t) noexcept : t_(t) {}
  join_handle(join_handle&& o) noexcept : t_(std::exchange(o.t_, nullptr)) {}
  join_handle& operator=(join_handle&& o) noexcept {
    if (this != &o) {
      reset();
      t_ = std::exchange(o.t_, nullptr);
    }
    return *this;
  }
  ~join_handle() { reset(); }

  // True until join() or detach().
  bool joinable() const noexcept { return t_ != nullptr; }
  // Waits for the fiber and returns its result, or rethrows its exception. From a fiber it
  // suspends only that fiber; from a plain thread it blocks the thread. Throws
  // std::logic_error when not joinable.
  T join() {
    if (!t_) throw std::logic_error("weft::join_handle::join: handle is not joinable");
    detail::task_of<T>* t = std::exchange(t_, nullptr);
    struct release_on_exit {
      detail::task* t;
      ~release_on_exit() { detail::task_release(t); }
    } guard{t};
    detail::task_wait(t);  // rethrows the fiber's exception
    return t->take_result();
  }
  // Waits until the fiber finished or `deadline` (steady_clock) passed, as the other timed
  // waits do (event::wait_until): true when it finished, false at the deadline. Does not
  // join: the handle stays joinable either way, and after true join() returns at once.
  // A deadline in the past only checks. Throws std::logic_error when not joinable.
  [[nodiscard]] bool wait_until(clock::time_point deadline) const {
    if (!t_) throw std::logic_error("weft::join_handle::wait_until: handle is not joinable");
    return detail::task_wait_until(t_, deadline);
  }
  template <class Duration>
  [[nodiscard]] bool wait_until(const std::chrono::time_point<clock, Duration>& tp) const {
    return wait_until(to_deadline(tp));
  }
  template <class Rep, class Period>
  [[nodiscard]] bool wait_for(const std::chrono::duration<Rep, Period>& d) const {
    return wait_until(deadline_after(d));
  }
  // join() with a deadline: when the fiber finished in time, joins it and returns its
  // result (join_result_t<T>: the value, or true for void) or rethrows its exception;
  // when the deadline passed first, returns an empty result (false for void) and the
  // handle stays joinable (join again, wait again, or detach). Throws std::logic_error
  // when not joinable.
  [[nodiscard]] join_result_t<T> join_until(clock::time_point deadline) {
    if (!wait_until(deadline)) return join_result_t<T>{};
    if constexpr (std::is_void_v<T>) {
      join();
      return true;
    } else if constexpr (std::is_reference_v<T>) {
      return join_result_t<T>(std::ref(join()));
    } else {
      return join_result_t<T>(join());
    }
  }
  template <class Duration>
  [[nodiscard]] join_result_t<T> join_until(const std::chrono::time_point<clock, Duration>& tp) {
    return join_until(to_deadline(tp));
  }
  template <class Rep, class Period>
  [[nodiscard]] join_result_t<T> join_for(const std::chrono::duration<Rep, Period>& d) {
    return join_until(deadline_after(d));
  }
  // Asks the fiber to stop (cooperative cancellation; see "Cancellation" in README.md):
  // this_fiber::stop_requested() and its stop tokens turn true, and its current and later
  // sleeps, waits and fd waits end early, each reporting it (mutex locks and untimed joins
  // excepted). True when this call made the request, false when one was made
  // before (or the handle is not joinable). The handle stays joinable. Any thread.
  bool request_stop() noexcept { return t_ && detail::task_request_stop(t_); }
  // A token for the fiber's stop state (never stopped when not joinable).
  [[nodiscard]] stop_token get_stop_token() const noexcept {
    if (!t_) return stop_token();
    detail::task_add_ref(t_);
    return detail::make_stop_token(t_);
  }
  // Lets the fiber run on unobserved. Throws std::logic_error when not joinable.
  void detach() {
    if (!t_) throw std::logic_error("weft::join_handle::detach: handle is not joinable");
    detail::task_detach(std::exchange(t_, nullptr));
  }
  // The fiber's id (0 when not joinable).
  std::uint64_t id() const noexcept { return t_ ? t_->id_ : 0; }

private:
  void reset() noexcept {
    if (t_) detail::task_detach(std::exchange(t_, nullptr));
  }
  detail::task_of<T>* t_ = nullptr;
};

// Spawns f(args...) on the scheduler running the calling fiber; the child goes to this
// worker's local run queue. Fiber context only: throws std::logic_error elsewhere (use
// scheduler::spawn from plain threads).
template <class F, class... Args,
          class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, spawn_options>>>
join_handle<detail::spawn_result_t<F, Args...>> spawn(F&& f, Args&&... args) {
  auto* t = detail::make_task(std::forward<F>(f), std::forward<Args>(args)...);
  detail::publish_new_task(t, nullptr, [](detail::task* n) { detail::spawn_here(n); });
  return join_handle<detail::spawn_result_t<F, Args...>>(t);
}

// spawn() with per-fiber options (a name, a stack size: see weft::spawn_options).
// Throws std::invalid_argument for a bad option, with nothing spawned.
template <class F, class... Args>
join_handle<detail::spawn_result_t<F, Args...>> spawn(const spawn_options& o, F&& f, Args&&... args) {
  auto* t = detail::make_task(std::forward<F>(f), std::forward<Args>(args)...);
  detail::publish_new_task(t, &o, [](detail::task* n) { detail::spawn_here(n); });
  return join_handle<detail::spawn_result_t<F, Args...>>(t);
}

// spawn(f, args...).detach() in one step, for fire-and-forget fibers: no join_handle is
// made, so the spawner never touches the task again after publishing it (detach() would,
// possibly while another worker is already running it: a cache line bouncing between
// cores on every spawn). Fiber context only, like spawn.
template <class F, class... Args>
void spawn_detached(F&& f, Args&&... args) {
  auto* t = detail::make_task(std::forward<F>(f), std::forward<Args>(args)...);
  detail::make_detached(t);
  try {
    detail::spawn_here(t);
  } catch (...) {
    detail::task_release(t);  // never published: ours alone
    throw;
  }
}

// Called with the exception of a detached fiber that threw. Must not return normally
// into the runtime by throwing. The default prints the fiber id and what() on stderr and
// calls std::terminate, as an exception escaping a std::thread does.
using unhandled_exception_handler = void (*)(std::uint64_t fiber_id, std::exception_ptr) noexcept;
// Installs h (nullptr restores the default) and returns the previous one. Any thread.
WEFT_API unhandled_exception_handler set_unhandled_exception_handler(
    unhandled_exception_handler h) noexcept;

namespace this_fiber {
// Lets the other runnable fibers of this worker run; the caller goes to the back of the
// local run queue. On a plain thread: std::this_thread::yield().
WEFT_API void yield() noexcept;
// The calling fiber's id (unique per scheduler process, never 0), or 0 on a plain thread.
WEFT_API std::uint64_t id() noexcept;
// True when called from a fiber.
WEFT_API bool in_fiber() noexcept;
// True once a stop was requested for the calling fiber (join_handle::request_stop);
// false on a plain thread.
WEFT_API bool stop_requested() noexcept;
// The calling fiber's stop token (a never-stopped one on a plain thread).
inline stop_token get_stop_token() noexcept;
// The calling fiber's name (spawn_options::name), "" when it has none or on a plain
// thread. Valid until the fiber finishes.
WEFT_API std::string_view name() noexcept;

}  // namespace this_fiber
namespace detail {
// sleep_until without its "already past?" clock read: sleep_for's deadline, computed from
// a clock read an instant ago, is later than that read. (A clock read costs ~27 ns on
// the 2-vCPU VM, a tenth of a W8 sleep cycle.) A deadline that has passed by the time the
// timer is armed fires at the next timer poll, as any due timer does.
WEFT_API void sleep_until_after_now(clock::time_point deadline) noexcept;
}  // namespace detail
namespace this_fiber {

// Suspends the calling fiber until `deadline` (steady_clock); other fibers run meanwhile.
// A deadline in the past returns at once; time_point::max() never returns (until the
// scheduler is destroyed, which waits for it: avoid) unless the fiber is asked to stop.
// A stop request (join_handle::request_stop) ends it early, and a fiber whose stop was
// requested does not sleep at all; check this_fiber::stop_requested() after it. On a
// plain thread: sleeps the thread.
WEFT_API void sleep_until(clock::time_point deadline) noexcept;
template <class Duration>
void sleep_until(const std::chrono::time_point<clock, Duration>& tp) noexcept {
  sleep_until(to_deadline(tp));
}
// Suspends the calling fiber for at least d (zero or negative: returns at once). Any
// positive d suspends, however small (the fiber may resume on another worker).
template <class Rep, class Period>
void sleep_for(const std::chrono::duration<Rep, Period>& d) noexcept {
  if (d <= d.zero()) return;
  detail::sleep_until_after_now(deadline_after(d));
}
}  // namespace this_fiber

namespace this_fiber {
inline stop_token get_stop_token() noexcept { return detail::make_stop_token(detail::current_task_ref()); }
}  // namespace this_fiber

namespace detail {
WEFT_API void* no_suspend_enter() noexcept;
WEFT_API void no_suspend_leave(void* w) noexcept;
}  // namespace detail

namespace this_fiber {
// A region in which the calling fiber must not suspend. While one is open, a suspension
// of the fiber (any yield; a sleep, join, wait on a primitive, channel or select, I/O wait
// or run_blocking that has to wait) is a contract violation: it aborts, naming the fiber
// and the scope, at the suspension itself rather than later on another worker. A blocking
// call that did not have to wait (an event already set, a channel with a value) is not a
// suspension and passes: run such code under load, or schedule fuzzing, to exercise it. Put it around code that holds a
// `thread_local`, a pointer into one, or any other per-thread resource (a lock owned by the
// thread, a per-thread cache or arena) that a suspension would let another fiber of the
// worker touch, or leave behind when the fiber resumes on another worker. A fiber that
// finishes with a scope open (a leaked scope) aborts likewise. Nests; may not be moved
// between fibers. On a plain thread it does nothing. Schedule fuzzing injects no yield
// inside one. Cost: two relaxed read-modify-writes per scope, nothing on any other path.
class no_suspend_scope {
public:
  no_suspend_scope() noexcept : w_(detail::no_suspend_enter()) {}
  ~no_suspend_scope() { detail::no_suspend_leave(w_); }
  no_suspend_scope(const no_suspend_scope&) = delete;
  no_suspend_scope& operator=(const no_suspend_scope&) = delete;

private:
  void* w_;
};
}  // namespace this_fiber

namespace this_worker {
// Index of the worker running the caller, in [0, worker_count), or -1 on a plain thread.
// A fiber may see different values before and after a suspension point.
WEFT_API int index() noexcept;
}  // namespace this_worker

namespace detail {
// Fiber-local storage slot `key` of the current task, created with make() on first use.
// Fiber context only (aborts elsewhere).
WEFT_API void* fls_get(std::size_t key, void* (*make)(), void (*destroy)(void*));
WEFT_API std::size_t fls_new_key() noexcept;
}  // namespace detail

// One T per fiber, default-constructed on first access from that fiber and destroyed when
// the fiber finishes. Stays with the fiber when it migrates between workers. Access from a
// plain thread aborts with a message. Declare it at namespace or static scope.
template <class T>
class fiber_local {
public:
  fiber_local() : key_(detail::fls_new_key()) {}
  T& get() {
    return *static_cast<T*>(detail::fls_get(
        key_, +[]() -> void* { return new T(); }, +[](void* p) { delete static_cast<T*>(p); }));
  }
  T& operator*() { return get(); }
  T* operator->() { return &get(); }

private:
  std::size_t key_;
};

}  // namespace weft
