// src/sync/wait_group.cpp - weft::wait_group (and weft::latch, built on it).
//
// Protocol (wait_list.hpp steps; the lifetime rule is its step 5):
//   1. add() changes count_ without the lock, except a decrement that brings it to zero:
//      that one takes lock_ first, makes the zero under lock_ and releases every queued
//      node before unlocking. So every transition to zero happens under lock_, and the
//      releaser's last touch of the object is lock_.unlock(): a waiter that sees the zero
//      on its fast path may return and destroy the wait_group at once, but the destructor
//      takes lock_ (assert_no_waiters) and so waits for that unlock. (A decrement that
//      published the zero first and took lock_ afterwards let the waiter free the object
//      before that lock.)
//   2. wait() checks count_ under lock_ before it links (a zero reached before that check
//      is seen; one reached after it finds the node). A count that goes 0 -> n -> 0 again
//      simply releases the waiters queued in between.
//   3. arrive_and_wait() (latch) decrements and, unless it made the zero, links its node
//      in one lock_ hold: a released arriver returns without touching the object again,
//      and the last arriver never waits (it would read the object after releasing the
//      others, who may have destroyed it).
// Benchmark workloads cited here (W1): docs/benchmarks.md.
#include <weft/sync/wait_group.hpp>

#include "../assert.hpp"
#include "wait_list.hpp"
#include "../sched_fuzz.hpp"

namespace weft {

using namespace detail;

wait_group::~wait_group() {
  assert_no_waiters(lock_, queue_, "weft::wait_group destroyed while fibers or threads wait on it");
}

namespace {
void check_not_negative(std::int64_t now) noexcept {
  WEFT_ASSERT(now >= 0, "weft::wait_group: the count became negative (more done() than add())");
}
}  // namespace

// Step 1, under lock_: applies delta and, when that makes the zero, claims every queued
// node into chain (resumed by the caller after unlocking). True when it made the zero.
bool wait_group::add_locked(std::int64_t delta, resume_chain& chain) noexcept {
  // acq_rel: release publishes this caller's work; acquire (for the add that reaches
  // zero) collects every earlier add's work through the release sequence, and the
  // claims/resume hand it on to the waiters. Pairs with the acquire loads in wait_until().
  const std::int64_t now = count_.fetch_add(delta, std::memory_order_acq_rel) + delta;
  check_not_negative(now);
  if (now != 0) return false;
  release_window(this, release_point::published);
  chain.claim_all(queue_);
  return true;
}

void wait_group::add(std::int64_t delta) noexcept {
  if (delta >= 0) {
    // release: publishes this caller's work to the add that reaches zero (acq_rel, a
    // later element of the release sequence). Never makes a zero from a valid count.
    check_not_negative(count_.fetch_add(delta, std::memory_order_release) + delta);
    return;
  }
  // Step 1: decrements that leave a non-zero count need no lock. relaxed: the CAS decides.
  std::int64_t c = count_.load(std::memory_order_relaxed);
  while (c + delta != 0) {
    check_not_negative(c + delta);
    // release: as above. Failure: relaxed, retried with the fresh value.
    if (count_.compare_exchange_weak(c, c + delta, std::memory_order_release,
                                     std::memory_order_relaxed))
      return;
  }
  add_to_zero(delta);
}

// Out of line: the lock-free decrement above then saves no registers (W1: every fiber's
// done() takes it, ~10 instructions fewer).
__attribute__((noinline)) void wait_group::add_to_zero(std::int64_t delta) noexcept {
  resume_chain chain;
  lock_.lock();
  const bool zero = add_locked(delta, chain);
  lock_.unlock();  // the last touch of *this (step 1)
  chain.resume_all();
  if (zero) release_window(this, release_point::done);
  fuzz_point();  // sched_fuzz.hpp choice 2: the released waiters may run first
}

bool wait_group::arrive_and_wait(std::int64_t n) {
  resume_chain chain;
  lock_.lock();
  if (add_locked(-n, chain)) {  // the last arriver: release the others, never wait
    lock_.unlock();
    chain.resume_all();
    release_window(this, release_point::done);
    return true;
  }
  // Step 3: linked before lock_ is released, so the zero cannot pass us by; once resumed
  // by the zero we return without touching *this. A stop request (wait_list.hpp step 6)
  // ends the wait as a timeout would: we leave the queue under lock_.
  waiter w(wait_kind::wait_group, this);
  wait_node node;
  node.owner = &w;
  push_back(queue_, &node);
  if (kind_of(block(w, lock_, clock::time_point::max())) != outcome_timeout) return true;
  unlink_locked(lock_, queue_, node);
  return false;
}

bool wait_group::wait() { return wait_until(clock::time_point::max()); }

bool wait_group::wait_until(clock::time_point deadline) {
  // acquire: pairs with the acq_rel fetch_add in add_locked().
  return wait_until_ready(lock_, queue_, deadline, wait_kind::wait_group, this,
                          [this] { return count_.load(std::memory_order_acquire) == 0; });
}

}  // namespace weft
