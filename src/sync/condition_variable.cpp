// src/sync/condition_variable.cpp - weft::condition_variable.
//
// Protocol (wait_list.hpp steps, plus the mutex hand-over):
//   1. wait: take lock_, link the node, release the user's mutex *while holding lock_*,
//      then block (lock_ released in the post-switch action, or before the futex sleep).
//      A notifier needs lock_ to pop the node, so a notify issued after the mutex was
//      released (by someone who then locked it) cannot miss this waiter.
//   2. notify: take lock_, pop nodes and claim them (outcome_ok); a node whose claim fails
//      belongs to a waiter whose timer won, skip it. Resume the claimed ones after lock_.
//   3. timeout: unlink under lock_ (if still linked), then re-lock the mutex.
// Lock order: condition_variable::lock_ -> mutex::lock_ (step 1 unlocks the mutex, which
// may take its lock_ to wake a waiter). A mutex never takes a condition variable's lock.
#include <weft/sync/condition_variable.hpp>

#include "../assert.hpp"
#include "wait_list.hpp"
#include "../sched_fuzz.hpp"

namespace weft {

using namespace detail;

condition_variable::~condition_variable() {
  assert_no_waiters(lock_, queue_,
                    "weft::condition_variable destroyed while fibers or threads wait on it");
}

void condition_variable::wait(std::unique_lock<mutex>& lk) {
  (void)wait_until(lk, clock::time_point::max());
}

std::cv_status condition_variable::wait_until(std::unique_lock<mutex>& lk,
                                              clock::time_point deadline) {
  WEFT_ASSERT(lk.owns_lock() && lk.mutex()->held_by_caller(),
              "weft::condition_variable::wait: the caller does not hold the mutex");
  if (deadline <= clock::now()) {
    // The mutex is released and re-acquired, as a wait that timed out at once would.
    lk.unlock();
    lk.lock();
    return std::cv_status::timeout;
  }
  waiter w(wait_kind::condition_variable, this);
  w.racy = deadline != clock::time_point::max();  // a timer may claim too
  wait_node node;
  node.owner = &w;
  lock_.lock();
  push_back(queue_, &node);
  lk.mutex()->unlock();  // step 1, under lock_
  const std::uint32_t out = block(w, lock_, deadline);
  if (kind_of(out) == outcome_timeout) unlink_locked(lock_, queue_, node);
  lk.mutex()->lock();
  return kind_of(out) == outcome_timeout ? std::cv_status::timeout : std::cv_status::no_timeout;
}

void condition_variable::notify_one() noexcept {
  lock_.lock();
  wait_node* claimed = nullptr;
  while (wait_node* n = pop_front(queue_))
    if (claim_popped(queue_, n, make_outcome(outcome_ok))) {
      claimed = n;
      break;
    }
  lock_.unlock();
  if (claimed) resume(claimed->owner);
  release_window(this, release_point::done);
  fuzz_point();  // sched_fuzz.hpp choice 2
}

void condition_variable::notify_all() noexcept {
  resume_chain chain;
  lock_.lock();
  chain.claim_all(queue_);
  lock_.unlock();
  chain.resume_all();
  release_window(this, release_point::done);
  fuzz_point();  // sched_fuzz.hpp choice 2
}

}  // namespace weft
