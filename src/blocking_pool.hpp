// src/blocking_pool.hpp - the elastic thread pool behind weft::run_blocking.
//
// Growth and retirement (all under mu_):
//   1. submit() queues the job; if fewer threads are idle than jobs are queued and the
//      pool is below max_threads, it starts a thread, else it notifies an idle one.
//   2. A thread takes jobs FIFO; with none it waits on cv_ for idle_timeout, and retires
//      when that wait timed out and more than min_threads threads exist.
//   3. A retiring thread moves its own std::thread into finished_ (it cannot join
//      itself); submit() and the destructor join finished_ outside mu_.
//   4. The destructor sets stop_; threads drain the queue, retire, and are joined.
//   5. A constructor that cannot start its min_threads stops and joins the threads it
//      started (step 4) and rethrows.
//   6. submit() either queues the job and returns, or throws with nothing queued: the
//      job lives in the calling fiber's frame, which unwinds when submit() throws, and a
//      queued job would be run on that dead frame. A failed queue slot throws before
//      anything is queued; a thread start that fails (std::system_error, std::bad_alloc)
//      unqueues the job and rethrows when no thread exists, and otherwise leaves it for
//      the live threads (it runs when one is free). Nothing after the push may throw.
// A job's completion wakes its fiber with the join protocol of blocking.hpp (state_
// bits). The pool never runs fibers and never touches a job after completing it.
//   7. A timed call's job (blocking_job::pool_owned_, run_blocking_until) is owned by the
//      pool once submit() queued it: the thread invokes it (the call, then an event set
//      that the caller may or may not still wait on) and destroys it; state_ is unused.
//      A caller whose deadline passed has stopped waiting; the call holds its thread
//      until it returns, and the destructor (step 4) waits for it like any other.
//   8. The runtime's default pool counts its jobs in flight (runtime::blocking_jobs_) for
//      the deadlock report: +1 in submit() once the job is queued (under mu_, before a
//      thread can take it), -1 after complete() returned, i.e. after the job's wake of its
//      fiber (release: pairs with the report's acquire load, so a report that reads 0
//      sees that wake). A job whose caller stopped waiting (run_blocking_until's deadline,
//      a stop request) may still wake fibers through what it calls (an event it sets).
#pragma once

#include <weft/blocking.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <list>
#include <mutex>
#include <thread>
#include <vector>

namespace weft::detail {

class runtime;

class blocking_pool_impl {
public:
  // in_flight (the runtime's default pool only, else nullptr): counts the jobs submitted
  // and not yet completed (step 8).
  explicit blocking_pool_impl(const blocking_options& opts,
                              std::atomic<std::int64_t>* in_flight = nullptr);
  ~blocking_pool_impl();  // step 4
  blocking_pool_impl(const blocking_pool_impl&) = delete;
  blocking_pool_impl& operator=(const blocking_pool_impl&) = delete;

  // Any thread. Queues job, or throws with nothing queued (step 6): std::bad_alloc, or
  // std::system_error when no thread exists and none can be started.
  void submit(blocking_job* job);
  unsigned threads() const noexcept;
  std::size_t queued() const noexcept;  // jobs submitted and not yet taken by a thread

private:
  using thread_it = std::list<std::thread>::iterator;
  void start_thread();  // caller holds mu_
  void thread_main(thread_it self) noexcept;
  void join_finished(std::unique_lock<std::mutex>& lk) noexcept;
  void stop_and_join(std::unique_lock<std::mutex>& lk) noexcept;  // step 4

  const blocking_options opts_;
  mutable std::mutex mu_;
  std::condition_variable cv_;       // jobs queued or stop_
  std::condition_variable exit_cv_;  // a thread retired
  std::deque<blocking_job*> queue_;  // guarded by mu_
  std::list<std::thread> threads_;   // guarded by mu_: live threads
  std::vector<std::thread> finished_;  // guarded by mu_: retired, not yet joined
  unsigned idle_ = 0;                // guarded by mu_
  bool stop_ = false;                // guarded by mu_
  std::atomic<std::int64_t>* const in_flight_;  // step 8; nullptr for a user's pool
};

// Test seam (fault injection, tests/alloc_fault_test.cpp): after n more successful
// allocations in a pool (a queue slot in submit(), a thread start), the following ones
// throw std::bad_alloc as if memory had run out; n < 0 turns it off. Set it while no other
// thread submits or starts a pool.
void blocking_alloc_inject_failure_after(long n) noexcept;

// The runtime's default pool (run_blocking), created on first use.
blocking_pool_impl& default_blocking_pool(runtime& rt);

}  // namespace weft::detail
