// weft/detail/task.hpp - the type-erased task box behind spawn() and join_handle<T>.
//
// Only what the public templates must see lives here. A task is the *logical* unit of
// work (callable, result slot, join state); the *physical* fiber (context and stack) it
// runs on is private to src/ and is attached only when the task first runs, so a task that
// is still queued costs one heap block and no stack.
//
// Lifetime: a task is reference counted. spawn() creates it with two references, one owned
// by the run queue entry (dropped by whoever claims and runs it, or by whoever pops a stale
// entry) and one owned by the join_handle (dropped by join() or detach()).
#pragma once

#include <weft/export.hpp>
#include <weft/sync/detail/wait_queue.hpp>
#include <weft/timer.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <new>
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <utility>

namespace weft {
class scheduler;

// Per-fiber options for weft::spawn(options, f, args...) and scheduler::spawn(options, ...).
// Aggregate: weft::spawn(weft::spawn_options{.name = "conn-42", .stack_size = 256 << 10}, f).
struct spawn_options {
  // Copied at spawn. Returned by this_fiber::name() and printed by the diagnostics (the
  // stall report, WEFT_STALL_MS) next to the fiber id. nullptr or "": unnamed.
  const char* name = nullptr;
  // Usable stack bytes for this fiber; 0: the scheduler's options::stack_size. Otherwise
  // between 16 KiB and 1 GiB (else std::invalid_argument), rounded up to a power of two
  // (the stack pools are kept per size class), and multiplied as options::stack_size is
  // under ASan/TSan. A fiber with its own stack size is never run inline by a join.
  std::size_t stack_size = 0;
  // Stop with the parent: a stop request of the spawning fiber (join_handle::request_stop,
  // task_group, or one inherited this way) is passed on to this fiber, and from it to its
  // own children spawned with this flag, while the parent runs. A request made before the
  // spawn reaches the child at once. Only from a fiber (else std::invalid_argument: a
  // plain thread has no stop state to follow).
  bool stop_with_parent = false;
};

namespace detail {

// Small-block allocation for tasks (src/task_alloc.cpp): per-thread free lists, no lock
// on the common path. Any thread.
WEFT_API void* task_alloc(std::size_t n);
WEFT_API void task_free(void* p, std::size_t n) noexcept;
// Test seam (fault injection: spawn's allocation fails): after n more successful task_alloc
// calls, the following ones throw std::bad_alloc as if memory had run out; n < 0 turns it
// off. Set it while no other thread spawns.
WEFT_API void task_alloc_inject_failure_after(long n) noexcept;

// task::state_ bit set when no join_handle exists (see src/fiber_impl.hpp task_state).
inline constexpr std::uint32_t task_detached_bit = 4;
// task::state_ bits [8, 16): the task's stack size class (0: the scheduler's default),
// written before the task is published and never changed (the RMWs touch only low bits).
inline constexpr unsigned task_stack_class_shift = 8;

class task {
public:
  static void* operator new(std::size_t n) { return task_alloc(n); }
  static void operator delete(void* p, std::size_t n) noexcept { task_free(p, n); }

  task() = default;
  task(const task&) = delete;
  task& operator=(const task&) = delete;

  // Runs the callable and stores its result. May throw: the runtime catches the exception
  // at the entry point and stores it in error_ (nothing unwinds across a switch).
  virtual void invoke() = 0;

  // Runtime-owned fields. Touched only by src/ (task.cpp, worker.cpp); see the state word
  // description in src/task_state.hpp.
  std::atomic<std::uint32_t> state_{0};
  std::atomic<std::uint32_t> refs_{2};
  void* joiner_ = nullptr;       // waiter to wake on completion; written before JOIN_WAIT is set
                                 // (a timed join's waiter: under join_lock_, with JOIN_TIMED)
  void* fls_ = nullptr;          // fiber-local storage slots, created on first use
  std::uint64_t id_ = 0;         // unique, non-zero; assigned by spawn
  std::exception_ptr error_;     // set when invoke() threw; read by join after DONE (acquire)
  spinlock join_lock_;           // timed joins only (src/task.cpp join step 7)
  // Cancellation word (src/task.cpp, cancellation steps): STOP and BUSY bits and the
  // cancel hook of the wait the fiber is in, if that wait can be cancelled.
  std::atomic<std::uintptr_t> stop_{0};

protected:
  virtual ~task() = default;
  friend WEFT_API void task_release(task* t) noexcept;
};

// Drops one reference; the last one deletes the task. Any thread.
WEFT_API void task_release(task* t) noexcept;
// Waits until t completed: suspends the calling fiber, or blocks the calling plain thread.
// A task that has not started yet may be run inline on the caller's fiber stack. Then
// rethrows the task's exception, if it stored one. Does not drop the handle's reference.
WEFT_API void task_wait(task* t);
// As task_wait, giving up at `deadline`: true when t completed (then task_wait returns at
// once), false when the deadline passed first; t stays joinable either way. Never runs t
// inline. Does not rethrow. Fiber or plain thread.
WEFT_API bool task_wait_until(task* t, clock::time_point deadline);
// Cancellation (src/task.cpp, cancellation steps). Any thread; t is kept alive by the
// caller's reference. True when this call made the request (the first one).
WEFT_API bool task_request_stop(task* t) noexcept;
inline bool task_stop_requested(const task* t) noexcept {
  // acquire: pairs with the requester's release RMW; what it did before is visible.
  return (t->stop_.load(std::memory_order_acquire) & 1u) != 0;
}
// Another reference for a holder of one (stop_token copies). relaxed: a holder's own.
inline void task_add_ref(task* t) noexcept { t->refs_.fetch_add(1, std::memory_order_relaxed); }
// The calling fiber's task with a new reference, or nullptr on a plain thread.
WEFT_API task* current_task_ref() noexcept;

// Applies spawn_options to t before it is published: throws std::invalid_argument for a
// bad stack size, std::bad_alloc; t is then still unpublished (the caller frees it).
// Returns a prepared stop link (spawn_options::stop_with_parent) for commit_stop_link()
// once t is published, or nullptr.
WEFT_API void* apply_spawn_options(task* t, const spawn_options& o);
// Links the published child to the parent the link was prepared for (noexcept: the
// memory was reserved by apply_spawn_options) and passes on a stop already requested.
WEFT_API void commit_stop_link(void* link, task* child) noexcept;
// Gives up the handle's reference; a detached task that throws calls the unhandled
// exception handler. Any thread.
WEFT_API void task_detach(task* t) noexcept;
// Spawns onto the scheduler running the calling fiber. Throws std::logic_error outside a fiber.
WEFT_API void spawn_here(task* t);
// Spawns onto sched from any thread (inside one of its fibers this is spawn_here).
WEFT_API void spawn_on(scheduler& sched, task* t);
// Throws std::logic_error when sched was created before a fork() and this is the child.
// Called before anything is allocated: a lock held by a parent thread at the fork would
// never be released in the child.
WEFT_API void check_not_forked(scheduler& sched);

// Storage for R, including void and references (kept as pointers).
template <class R>
struct result_slot {
  using stored = std::conditional_t<std::is_reference_v<R>, std::remove_reference_t<R>*, R>;
  alignas(stored) unsigned char buf_[sizeof(stored)];
  bool has_ = false;
  template <class F>
  void fill(F&& f) {
    if constexpr (std::is_reference_v<R>) {
      ::new (static_cast<void*>(buf_)) stored(&std::forward<F>(f)());
    } else {
      ::new (static_cast<void*>(buf_)) stored(std::forward<F>(f)());
    }
    has_ = true;
  }
  R take() {
    stored* p = std::launder(reinterpret_cast<stored*>(buf_));
    if constexpr (std::is_reference_v<R>) {
      return static_cast<R>(**p);
    } else {
      return std::move(*p);
    }
  }
  ~result_slot() {
    if (has_) std::launder(reinterpret_cast<stored*>(buf_))->~stored();
  }
};

template <>
struct result_slot<void> {
  template <class F>
  void fill(F&& f) {
    std::forward<F>(f)();
  }
  void take() {}
};

template <class R>
class task_of : public task {
public:
  R take_result() { return slot_.take(); }

protected:
  result_slot<R> slot_;
};

template <class R, class F, class... Args>
class task_impl final : public task_of<R> {
public:
  template <class G, class... A>
  explicit task_impl(G&& g, A&&... a) : fn_(std::forward<G>(g)), args_(std::forward<A>(a)...) {}
  void invoke() override {
    this->slot_.fill([this]() -> R { return std::apply(std::move(fn_), std::move(args_)); });
  }

private:
  F fn_;
  std::tuple<Args...> args_;
};

// Marks a task made by make_task() as born detached: one reference (the run queue's),
// no handle. Before it is published only.
inline void make_detached(task* t) noexcept {
  t->refs_.store(1, std::memory_order_relaxed);                   // relaxed: unpublished
  t->state_.store(task_detached_bit, std::memory_order_relaxed);  // relaxed: unpublished
}

template <class T, class = void>
struct has_explicit_bool : std::false_type {};
template <class T>
struct has_explicit_bool<T, std::void_t<decltype(&T::operator bool)>> : std::true_type {};

template <class F, class... Args>
using spawn_result_t = std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>;

template <class F, class... Args>
task_of<spawn_result_t<F, Args...>>* make_task(F&& f, Args&&... args) {
  using R = spawn_result_t<F, Args...>;
  static_assert(std::is_invocable_v<std::decay_t<F>, std::decay_t<Args>...>,
                "weft::spawn: callable is not invocable with the given arguments");
  // A function (not a pointer to one) cannot be null; pointers and member pointers can.
  if constexpr (std::is_pointer_v<std::remove_cv_t<std::remove_reference_t<F>>> ||
                std::is_member_pointer_v<std::decay_t<F>>) {
    if (f == nullptr) throw std::invalid_argument("weft::spawn: null fiber entry");
  } else if constexpr (has_explicit_bool<std::decay_t<F>>::value) {
    // std::function and similar: an empty one is a null entry.
    if (!static_cast<bool>(f)) throw std::invalid_argument("weft::spawn: null fiber entry");
  }
  return new task_impl<R, std::decay_t<F>, std::decay_t<Args>...>(std::forward<F>(f),
                                                                    std::forward<Args>(args)...);
}

// Publishes a task just made by make_task() with `publish` (spawn_here or spawn_on), after
// applying o when given. On a throw the task was never published: its only reference is
// ours, dropped here, and the exception goes on to the caller.
template <class Publish>
void publish_new_task(task* t, const spawn_options* o, Publish&& publish) {
  void* link = nullptr;
  try {
    if (o) link = apply_spawn_options(t, *o);
    publish(t);
  } catch (...) {
    t->refs_.store(1, std::memory_order_relaxed);  // relaxed: unpublished, only ours
    task_release(t);
    throw;  // a prepared link holds nothing: it stays an unused reservation
  }
  if (link) commit_stop_link(link, t);  // t is alive: the handle's reference is not given out yet
}

}  // namespace detail
}  // namespace weft
