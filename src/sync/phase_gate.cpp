// src/sync/phase_gate.cpp - detail::phase_gate, the waiting half of weft::barrier.
//
// Protocol (wait_list.hpp steps; the lifetime rule is its step 5):
//   1. open() stores the new phase and pops and claims every queued node under lock_,
//      then resumes them after unlocking. Its caller holds the barrier's mutex, so phases
//      end in order and every queued node waits for the phase open() ends.
//   2. wait_past(p) checks the phase without the lock (fast path), then under lock_
//      before it links (wait_until_ready), so an open() either sees its node or happened
//      before its check.
//   3. unlock_and_wait_past(m, p) links its node under lock_ and only then releases m
//      (condition_variable's step 1): the phase cannot end before the node is linked, and
//      a waiter that open() released returns at once, touching neither the gate nor the
//      mutex (a condition variable would re-lock the mutex, which the last arriver may
//      already have destroyed with the barrier).
//   4. unlock_and_wait_past_until(m, p, deadline) queues as step 3 with a timed (racy)
//      waiter. When its timer wins the claim, it re-takes m (phases end only under m, so
//      the phase is fixed while it holds m): if p is still the phase, withdraw() takes the
//      arrival back under m; otherwise the phase ended and the call reports success. It
//      releases m and only then leaves the queue under lock_ (wait_list.hpp step 3): the
//      node is still linked, or an open() (this phase's, or, once m is released, the next
//      one's) popped it with a failed claim and counted it as an orphan. Lifetime: once the
//      phase ended the released participants may destroy the barrier. Its destructor takes
//      m (so it cannot pass while we hold m), then this gate's destructor waits while our
//      orphan remains, and m is destroyed after the gate: so m is alive for our m.lock()
//      and m.unlock(), and the gate for our leave(); lock_.unlock() is our last touch.
// Lock order: the barrier's mutex -> lock_ -> the mutex's internal lock (step 3 unlocks
// the mutex under lock_, which may take that lock to wake a waiter).
#include <weft/sync/detail/phase_gate.hpp>
#include <weft/sync/mutex.hpp>

#include "../assert.hpp"
#include "wait_list.hpp"

namespace weft::detail {

phase_gate::~phase_gate() {
  assert_no_waiters(lock_, queue_, "weft::barrier destroyed while fibers or threads wait on it");
}

bool phase_gate::wait_past(std::uint64_t p) const {
  // acquire: pairs with the release store in open(); the phase's completion is visible.
  return wait_until_ready(lock_, queue_, clock::time_point::max(), wait_kind::barrier, this,
                         [&] { return phase_.load(std::memory_order_acquire) > p; });
}

// Releases m, which the caller acquired, and re-takes it: beyond -Wthread-safety.
bool phase_gate::unlock_and_wait_past_until(mutex& m, std::uint64_t p, clock::time_point deadline,
                                            void (*withdraw)(void*) noexcept, void* ctx) const
    WEFT_NO_THREAD_SAFETY_ANALYSIS {
  waiter w(wait_kind::barrier, this);
  w.racy = true;  // open(), the timer and a stop request
  wait_node node;
  node.owner = &w;
  lock_.lock();
  // relaxed: phase_ changes only under m, which the caller holds.
  WEFT_DCHECK(phase_.load(std::memory_order_relaxed) == p, "the phase ended under its mutex");
  push_back(queue_, &node);
  m.unlock();  // step 3, under lock_
  if (kind_of(block(w, lock_, deadline)) != outcome_timeout) return true;  // as step 3
  // Step 4: the timer (or a stop request, wait_list.hpp step 6) won.
  m.lock();
  // relaxed: phase_ changes only under m, which we hold.
  const bool ended = phase_.load(std::memory_order_relaxed) > p;
  if (!ended) withdraw(ctx);
  m.unlock();
  unlink_locked(lock_, queue_, node);  // the last touch of the gate
  return ended;
}

void phase_gate::open(std::uint64_t next) noexcept {
  resume_chain chain;
  lock_.lock();
  // release: publishes the phase's arrivals and completion to the fast path's acquire.
  phase_.store(next, std::memory_order_release);
  release_window(this, release_point::published);
  chain.claim_all(queue_);
  lock_.unlock();
  chain.resume_all();
  // The gate's last touch; the barrier's mutex is still held (its destructor waits for it).
  release_window(this, release_point::done);
}

}  // namespace weft::detail
