// weft/sync/condition_variable.hpp - a condition variable for weft::mutex, usable from
// fibers and plain threads alike.
//
//   std::unique_lock lk(m);
//   cv.wait(lk, [&] { return ready; });            // suspends the fiber, not the worker
//
// Waits may wake spuriously only in the sense std allows (use the predicate forms); this
// implementation itself never resumes a waiter without a notify or its deadline.
//
// Memory ordering: a notify_one()/notify_all() happens-before the return of every wait
// it ends. Since a waiter re-acquires the mutex before returning, the usual pattern
// (change the state under the mutex, then notify) needs nothing more. A wait that times
// out is ordered only by the mutex.
#pragma once

#include <weft/export.hpp>
#include <weft/sync/detail/wait_queue.hpp>
#include <weft/sync/mutex.hpp>
#include <weft/timer.hpp>

#include <chrono>
#include <condition_variable>  // std::cv_status
#include <mutex>               // std::unique_lock

namespace weft {

class condition_variable {
public:
  condition_variable() noexcept = default;
  // Aborts (contract violation) if fibers or threads still wait on it.
  WEFT_API ~condition_variable();
  condition_variable(const condition_variable&) = delete;
  condition_variable& operator=(const condition_variable&) = delete;

  // Releases lk's mutex, waits for a notify, re-acquires the mutex. A stop request of the
  // calling fiber ends it too, as a spurious wake-up would. Fiber: suspends;
  // plain thread: blocks. Precondition (checked, aborts): lk owns its mutex and the
  // caller holds it.
  WEFT_API void wait(std::unique_lock<mutex>& lk);
  // Predicate form: true once pred() holds; false when the calling fiber was asked to stop
  // ("Cancellation" in README.md) before it did (then pred() is false; the mutex is held).
  template <class Pred>
  bool wait(std::unique_lock<mutex>& lk, Pred pred) {
    while (!pred())
      if (wait_until(lk, clock::time_point::max()) == std::cv_status::timeout) return pred();
    return true;
  }
  // As wait(), giving up at the deadline (steady_clock). Returns cv_status::timeout when
  // the deadline ended the wait (a deadline in the past: at once, after re-locking).
  // (Unlocks and relocks through lk.mutex(), which clang's analysis cannot follow.)
  WEFT_API std::cv_status wait_until(std::unique_lock<mutex>& lk, clock::time_point deadline)
      WEFT_NO_THREAD_SAFETY_ANALYSIS;
  template <class Duration>
  std::cv_status wait_until(std::unique_lock<mutex>& lk,
                            const std::chrono::time_point<clock, Duration>& tp) {
    return wait_until(lk, to_deadline(tp));
  }
  template <class Rep, class Period>
  std::cv_status wait_for(std::unique_lock<mutex>& lk, const std::chrono::duration<Rep, Period>& d) {
    return wait_until(lk, deadline_after(d));
  }
  // Predicate forms: return pred() after the last wake-up (false: timed out unsatisfied).
  template <class Duration, class Pred>
  bool wait_until(std::unique_lock<mutex>& lk, const std::chrono::time_point<clock, Duration>& tp,
                  Pred pred) {
    const clock::time_point deadline = to_deadline(tp);
    while (!pred())
      if (wait_until(lk, deadline) == std::cv_status::timeout) return pred();
    return true;
  }
  template <class Rep, class Period, class Pred>
  bool wait_for(std::unique_lock<mutex>& lk, const std::chrono::duration<Rep, Period>& d,
                Pred pred) {
    return wait_until(lk, deadline_after(d), std::move(pred));
  }

  // Wakes one waiter / every waiter. Any fiber or thread; holding the mutex is optional.
  // Never blocks.
  WEFT_API void notify_one() noexcept;
  WEFT_API void notify_all() noexcept;

private:
  detail::spinlock lock_;
  detail::wait_queue queue_;  // guarded by lock_
};

}  // namespace weft
