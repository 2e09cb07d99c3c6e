// src/blocking_pool.cpp - see the protocol in blocking_pool.hpp.
#include "blocking_pool.hpp"

#include "runtime.hpp"
#include "suspend.hpp"
#include "tsan_scope.hpp"
#include "worker.hpp"

#include <atomic>
#include <new>
#include <pthread.h>
#include <system_error>

namespace weft {
namespace detail {

namespace {
constexpr std::uint32_t job_done = 1;     // set by the pool thread after invoke()
constexpr std::uint32_t job_waiting = 2;  // set by the fiber's post-switch action

// Called inside the pool thread's internal scope; the call itself runs outside it
// (tsan_scope.hpp step 3, run_blocking).
void complete(blocking_job* job) noexcept {
  if (job->pool_owned_) {  // a timed call: invoke() signals its caller; nobody waits on us
    tsan_user_scope user;
    tsan_acquire(job);  // the caller's history to the call: released in submit_owned_job
    job->invoke();
    job->destroy();
    return;
  }
  void* fiber;
  {
    tsan_user_scope user;
    tsan_acquire(job);  // the caller's history to the call: released in run_blocking_job
    job->invoke();
    fiber = job->fiber_;  // read before DONE: afterwards the job may be gone
    // The call's effects and every touch of the job above, to the caller: acquired once it
    // resumes, whether this thread wakes it or it sees DONE and wakes itself.
    tsan_release(job);
  }
  // acq_rel: release publishes invoke()'s effects to the fiber; acquire pairs with the
  // fiber's release of WAITING (its context is saved, it may be resumed now).
  if (job->state_.fetch_or(job_done, std::memory_order_acq_rel) & job_waiting)
    wake(static_cast<fiber_impl*>(fiber));
}

// Test seam (blocking_alloc_inject_failure_after): allocations left before they fail, or -1.
// relaxed: tests set it while no other thread submits.
std::atomic<long> alloc_countdown{-1};

// Where the pool allocates: the seam's failure point.
void allocation_point() {
  if (long k = alloc_countdown.load(std::memory_order_relaxed); __builtin_expect(k >= 0, 0)) {
    if (k == 0) throw std::bad_alloc();
    alloc_countdown.store(k - 1, std::memory_order_relaxed);
  }
}

void post_wait(fiber_impl* from, void* arg) noexcept {
  auto* job = static_cast<blocking_job*>(arg);
  // acq_rel: release publishes the saved context; acquire sees the job's effects when
  // DONE is already set, and then nobody else will wake us.
  if (job->state_.fetch_or(job_waiting, std::memory_order_acq_rel) & job_done)
    current_worker()->wake_local(from);
}
}  // namespace

blocking_pool_impl::blocking_pool_impl(const blocking_options& opts,
                                       std::atomic<std::int64_t>* in_flight)
    : opts_(opts), in_flight_(in_flight) {
  if (opts_.max_threads == 0 || opts_.min_threads > opts_.max_threads)
    throw std::invalid_argument("weft::blocking_options: need 0 <= min_threads <= max_threads, "
                                "max_threads >= 1");
  std::unique_lock<std::mutex> lk(mu_);
  try {
    for (unsigned i = 0; i < opts_.min_threads; ++i) start_thread();
  } catch (...) {
    // Step 5: the threads started so far run thread_main on *this; the destructor will
    // not run, so stop and join them before the members die (a joinable std::thread
    // destroyed with the list would call std::terminate).
    stop_and_join(lk);
    throw;
  }
}

blocking_pool_impl::~blocking_pool_impl() {
  std::unique_lock<std::mutex> lk(mu_);
  stop_and_join(lk);
}

void blocking_pool_impl::stop_and_join(std::unique_lock<std::mutex>& lk) noexcept {
  stop_ = true;
  cv_.notify_all();
  exit_cv_.wait(lk, [&] { return threads_.empty(); });
  join_finished(lk);
}

void blocking_alloc_inject_failure_after(long n) noexcept {
  alloc_countdown.store(n, std::memory_order_relaxed);
}

void blocking_pool_impl::start_thread() {
  allocation_point();  // the list node and the thread's state below
  threads_.emplace_back();
  auto it = std::prev(threads_.end());
  try {
    // The thread reads `it` only under mu_, which we hold until after this assignment.
    *it = std::thread([this, it] { thread_main(it); });
  } catch (...) {
    threads_.erase(it);
    throw;
  }
}

void blocking_pool_impl::submit(blocking_job* job) {
  std::unique_lock<std::mutex> lk(mu_);
  allocation_point();  // the queue slot
  queue_.push_back(job);  // strong guarantee: when it throws, nothing was queued
  if (idle_ < queue_.size() && threads_.size() < opts_.max_threads) {
    try {
      start_thread();
    } catch (...) {  // step 6: std::system_error from the OS, std::bad_alloc, ...
      if (threads_.empty()) {  // nobody would ever run it: unqueue, the call fails
        queue_.pop_back();
        throw;
      }
      cv_.notify_one();  // a live thread runs it; an idle one may be waiting
    }
  } else {
    cv_.notify_one();
  }
  // Step 8: queued for good (nothing below throws), and no thread can take it before we
  // unlock. relaxed: the count's readers order themselves on the decrement (release).
  if (in_flight_) in_flight_->fetch_add(1, std::memory_order_relaxed);
  join_finished(lk);
}

void blocking_pool_impl::join_finished(std::unique_lock<std::mutex>& lk) noexcept {
  if (finished_.empty()) return;
  std::vector<std::thread> done;
  done.swap(finished_);
  lk.unlock();
  // join() throws only for a thread that is not joinable or is the caller: a retired
  // pool thread is neither. noexcept: submit() must not fail after queuing (step 6).
  for (auto& t : done) t.join();
  lk.lock();
}

void blocking_pool_impl::thread_main(thread_it self) noexcept {
  pthread_setname_np(pthread_self(), "weft-blocking");
  tsan_internal_scope internal;  // the pool's own bookkeeping orders no jobs (tsan_scope.hpp)
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    if (!queue_.empty()) {
      blocking_job* job = queue_.front();
      queue_.pop_front();
      lk.unlock();
      complete(job);
      // Step 8. release: the job's wake (in complete) before a reader's acquire of the count.
      if (in_flight_) in_flight_->fetch_sub(1, std::memory_order_release);
      lk.lock();
      continue;
    }
    if (stop_) break;
    ++idle_;
    const bool woken = cv_.wait_for(lk, opts_.idle_timeout, [&] { return stop_ || !queue_.empty(); });
    --idle_;
    if (!woken && threads_.size() > opts_.min_threads) break;  // step 2: retire
  }
  finished_.push_back(std::move(*self));  // step 3
  threads_.erase(self);
  exit_cv_.notify_all();
}

unsigned blocking_pool_impl::threads() const noexcept {
  std::lock_guard<std::mutex> g(mu_);
  return static_cast<unsigned>(threads_.size());
}

std::size_t blocking_pool_impl::queued() const noexcept {
  std::lock_guard<std::mutex> g(mu_);
  return queue_.size();
}

blocking_pool_impl& default_blocking_pool(runtime& rt) {
  std::call_once(rt.blocking_once_, [&] { rt.blocking_ = std::make_unique<blocking_pool_impl>(blocking_options{}, &rt.blocking_jobs_);
  });
  return *rt.blocking_;
}

void run_blocking_job(blocking_pool_impl* pool, blocking_job& job) {
  fiber_impl* self = current_fiber();
  if (!self) {  // a plain thread may block: run it here
    job.invoke();
    return;
  }
  tsan_release(&job);  // the caller's history to the call (acquired in complete())
  {
    tsan_internal_scope internal;
    if (!pool) pool = &default_blocking_pool(*self->rt);
    job.fiber_ = self;
    pool->submit(&job);
  }
  note_wait(self, wait_kind::blocking, &job);
  suspend_current(post_wait, &job);
  tsan_acquire(&job);  // the call's effects, whether the pool thread or we woke us
}

bool submit_owned_job(blocking_pool_impl* pool, blocking_job* job) {
  fiber_impl* self = current_fiber();
  if (!self) return false;  // a plain thread runs it itself
  tsan_release(job);  // the caller's history to the call (acquired in complete())
  tsan_internal_scope internal;
  if (!pool) pool = &default_blocking_pool(*self->rt);
  pool->submit(job);
  return true;
}

}  // namespace detail

blocking_pool::blocking_pool(const blocking_options& opts)
    : impl_(std::make_unique<detail::blocking_pool_impl>(opts)) {}
blocking_pool::~blocking_pool() = default;
unsigned blocking_pool::threads() const noexcept { return impl_->threads(); }

}  // namespace weft
