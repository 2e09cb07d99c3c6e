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
#pragma once

#include <weft/export.hpp>

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
struct blocking_job {
  virtual void invoke() noexcept = 0;
  std::atomic<std::uint32_t> state_{0};
  void* fiber_ = nullptr;  // detail::fiber_impl* of the caller

protected:
  ~blocking_job() = default;
};

// Runs job on pool (nullptr: the calling fiber's scheduler's pool) and suspends until it
// finished; from a plain thread it invokes the job inline. Throws std::system_error when
// the pool has no thread and cannot start one.
WEFT_API void run_blocking_job(blocking_pool_impl* pool, blocking_job& job);

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

}  // namespace weft
