// weft/blocking.hpp - run_blocking(f): runs a blocking call (file I/O, DNS, a legacy
// library) on a bounded, elastic pool of plain threads and suspends only the calling
// fiber until it returns.
//
//   addrinfo* ai = weft::run_blocking([&] { getaddrinfo(host, "80", &hints, &out); return out; });
//   std::string text = pool.run([&] { return read_whole_file(path); });   // own pool
//
// The pool starts min_threads threads, adds one per submission while every thread is busy
// (up to max_threads; beyond that calls queue, FIFO), and retires a thread that stayed
// idle for idle_timeout while more than min_threads exist. weft::run_blocking uses the
// calling fiber's scheduler's pool (created on first use with blocking_options{}); build a
// blocking_pool yourself for other limits or to isolate a slow dependency.
//
// Memory ordering: everything f's thread did happens-before run_blocking returns (or
// rethrows), and everything the caller did before the call happens-before f starts.
//
// Deadlines: run_blocking_until/for (and blocking_pool::run_until/for) stop *waiting* at
// the deadline; they cannot stop the call. The call runs on to its end on its pool thread
// (it keeps that thread, and counts against max_threads, until it returns) and its result,
// or exception, is then destroyed unobserved. So the callable is moved (or copied) into
// the job rather than referenced, and whatever it captures by reference must outlive
// the call itself, not just the run_blocking_until that started it.
#pragma once

#include <weft/export.hpp>
#include <weft/sync/event.hpp>
#include <weft/timer.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

namespace weft {

struct blocking_options {
  unsigned min_threads = 0;                              // kept even when idle
  unsigned max_threads = 64;                             // >= 1; further calls queue
  std::chrono::milliseconds idle_timeout{10000};         // idle threads above min retire
};

namespace detail {
class blocking_pool_impl;

// A submitted call. Lives on the calling fiber's stack. state_ bits (each set once):
// DONE by the pool thread after invoke(); WAITING by the fiber's post-switch action.
// Whoever sets its bit second wakes the fiber (the join protocol of src/task.cpp).
// A timed call's job (pool_owned_) is on the heap instead and nobody waits on state_: the
// pool thread invokes it (which signals the caller through the shared state) and then
// destroys it.
struct blocking_job {
  virtual void invoke() noexcept = 0;
  virtual void destroy() noexcept {}  // pool_owned_ jobs: called by the pool after invoke()
  std::atomic<std::uint32_t> state_{0};
  void* fiber_ = nullptr;  // detail::fiber_impl* of the caller
  bool pool_owned_ = false;

protected:
  ~blocking_job() = default;
};

// Runs job on pool (nullptr: the calling fiber's scheduler's pool) and suspends until it
// finished; from a plain thread it invokes the job inline. Throws std::system_error when
// the pool has no thread and cannot start one.
WEFT_API void run_blocking_job(blocking_pool_impl* pool, blocking_job& job);

// Queues a pool_owned_ job on pool (nullptr: the calling fiber's scheduler's pool) and
// returns at once; the pool invokes and then destroys it. False, with nothing queued,
// when called from a plain thread (which has no scheduler: the caller runs the call
// itself). Throws as run_blocking_job, with nothing queued (the caller still owns job).
WEFT_API bool submit_owned_job(blocking_pool_impl* pool, blocking_job* job);

// What a timed blocking call returns: true for a void call that finished, else an
// optional holding the result; empty (false) when the deadline passed first.
template <class R>
using blocking_result_t = std::conditional_t<std::is_void_v<R>, bool, std::optional<R>>;

template <class F>
class blocking_call final : public blocking_job {
public:
  using value_type = std::invoke_result_t<F&>;
  explicit blocking_call(F& f) : f_(f) {}
  void invoke() noexcept override {
    try {
      if constexpr (std::is_void_v<value_type>) {
        f_();
      } else {
        value_.emplace(f_());
      }
    } catch (...) {
      error_ = std::current_exception();
    }
  }
  value_type take() {
    if (error_) std::rethrow_exception(error_);
    if constexpr (std::is_void_v<value_type>) {
      return;
    } else {
      return std::move(*value_);
    }
  }

private:
  F& f_;
  std::conditional_t<std::is_void_v<value_type>, char, std::optional<value_type>> value_{};
  std::exception_ptr error_;
};

// A timed call: the callable, its outcome and the completion event, shared by the caller
// and the pool's job, so whichever of the two lets go last frees it.
template <class F>
struct blocking_shared {
  using value_type = std::invoke_result_t<F&>;
  template <class G>
  explicit blocking_shared(G&& g) : f(std::forward<G>(g)) {}
  F f;
  std::conditional_t<std::is_void_v<value_type>, char, std::optional<value_type>> value{};
  std::exception_ptr error;
  event done;  // set by the pool thread after the call: publishes value and error

  blocking_result_t<value_type> take() {
    if (error) std::rethrow_exception(error);
    if constexpr (std::is_void_v<value_type>) {
      return true;
    } else {
      return blocking_result_t<value_type>(std::move(*value));
    }
  }
};

template <class F>
class owned_blocking_call final : public blocking_job {
public:
  explicit owned_blocking_call(std::shared_ptr<blocking_shared<F>> s) : s_(std::move(s)) {
    pool_owned_ = true;
  }
  void invoke() noexcept override {
    blocking_shared<F>& s = *s_;
    try {
      if constexpr (std::is_void_v<typename blocking_shared<F>::value_type>) {
        s.f();
      } else {
        s.value.emplace(s.f());
      }
    } catch (...) {
      s.error = std::current_exception();
    }
    s.done.set();
  }
  void destroy() noexcept override { delete this; }

private:
  std::shared_ptr<blocking_shared<F>> s_;
};

template <class F>
blocking_result_t<std::invoke_result_t<std::decay_t<F>&>> run_blocking_until(
    blocking_pool_impl* pool, clock::time_point deadline, F&& f) {
  using G = std::decay_t<F>;
  auto s = std::make_shared<blocking_shared<G>>(std::forward<F>(f));
  auto* job = new owned_blocking_call<G>(s);
  bool queued;
  try {
    queued = submit_owned_job(pool, job);
  } catch (...) {
    delete job;
    throw;
  }
  if (!queued) {  // a plain thread: run it here, as run_blocking does
    job->invoke();
    delete job;
    return s->take();
  }
  if (!s->done.wait_until(deadline)) return {};  // the job runs on; it owns s too
  return s->take();
}
}  // namespace detail

// A pool of plain threads for blocking calls. Destruction waits for running calls and
// joins the threads. Any thread may construct, use and destroy it (not from its own calls).
class WEFT_API blocking_pool {
public:
  explicit blocking_pool(const blocking_options& opts = {});
  ~blocking_pool();
  blocking_pool(const blocking_pool&) = delete;
  blocking_pool& operator=(const blocking_pool&) = delete;

  // Runs f() on a pool thread; suspends the calling fiber (a plain thread simply calls
  // f() itself). Returns f's result or rethrows its exception.
  template <class F>
  std::invoke_result_t<F&> run(F&& f) {
    detail::blocking_call<std::remove_reference_t<F>> call(f);
    detail::run_blocking_job(impl_.get(), call);
    return call.take();
  }
  // run() with a deadline (see Deadlines above): f's result (true for a void f) when it
  // returned in time, or its exception rethrown; empty (false) when the deadline passed
  // first, and then f runs on and its result is discarded. f is moved or copied into the
  // job. A plain thread calls f() itself, as run() does, and the deadline does not apply.
  template <class F>
  detail::blocking_result_t<std::invoke_result_t<std::decay_t<F>&>> run_until(
      clock::time_point deadline, F&& f) {
    return detail::run_blocking_until(impl_.get(), deadline, std::forward<F>(f));
  }
  template <class Rep, class Period, class F>
  detail::blocking_result_t<std::invoke_result_t<std::decay_t<F>&>> run_for(
      const std::chrono::duration<Rep, Period>& d, F&& f) {
    return run_until(deadline_after(d), std::forward<F>(f));
  }
  // Threads alive now (idle or busy).
  unsigned threads() const noexcept;

private:
  std::unique_ptr<detail::blocking_pool_impl> impl_;
};

// run() on the calling fiber's scheduler's pool. From a plain thread: calls f() directly.
template <class F>
std::invoke_result_t<F&> run_blocking(F&& f) {
  detail::blocking_call<std::remove_reference_t<F>> call(f);
  detail::run_blocking_job(nullptr, call);
  return call.take();
}

// run_until()/run_for() on the calling fiber's scheduler's pool (see Deadlines above).
template <class F>
detail::blocking_result_t<std::invoke_result_t<std::decay_t<F>&>> run_blocking_until(
    clock::time_point deadline, F&& f) {
  return detail::run_blocking_until(nullptr, deadline, std::forward<F>(f));
}
template <class Rep, class Period, class F>
detail::blocking_result_t<std::invoke_result_t<std::decay_t<F>&>> run_blocking_for(
    const std::chrono::duration<Rep, Period>& d, F&& f) {
  return detail::run_blocking_until(nullptr, deadline_after(d), std::forward<F>(f));
}

}  // namespace weft
