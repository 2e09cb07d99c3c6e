// src/sync/event.cpp - weft::event.
//
// Protocol: set_ and the queue change under lock_. A waiter checks set_ without the lock
// (fast path), then again under lock_ before it links and blocks (wait_list.hpp step 1),
// so a set() either sees its node or happened before its check.
//   manual set():    set_ = true, pop and claim every node, resume after lock_.
//   automatic set(): claim the first node whose claim succeeds (set_ stays false); with
//                    no such node, set_ = true for the next wait to consume.
// Invariant (automatic mode): set_ is never true while a node is linked (under lock_).
#include <weft/sync/event.hpp>

#include "../assert.hpp"
#include "wait_list.hpp"
#include "../sched_fuzz.hpp"

namespace weft {

using namespace detail;

event::~event() {
  assert_no_waiters(lock_, queue_, "weft::event destroyed while fibers or threads wait on it");
}

bool event::try_consume() noexcept {
  if (!auto_) {
    // acquire: pairs with the release store in set(); the setter's writes are visible.
    return set_.load(std::memory_order_acquire);
  }
  bool expected = true;
  // acquire: as above. relaxed pre-check: avoids a cache-line steal while clear.
  return set_.load(std::memory_order_relaxed) &&
         set_.compare_exchange_strong(expected, false, std::memory_order_acquire,
                                      std::memory_order_relaxed);
}

void event::set() noexcept {
  resume_chain chain;
  lock_.lock();
  if (auto_) {
    wait_node* claimed = nullptr;
    while (wait_node* n = pop_front(queue_))
      if (claim_popped(queue_, n, make_outcome(outcome_ok))) {
        claimed = n;
        break;
      }
    if (claimed) {
      chain.add(claimed);
    } else {
      set_.store(true, std::memory_order_release);  // release: pairs with try_consume()
      release_window(this, release_point::published);
    }
  } else {
    set_.store(true, std::memory_order_release);  // release: pairs with try_consume()
    release_window(this, release_point::published);
    chain.claim_all(queue_);
  }
  lock_.unlock();
  chain.resume_all();
  release_window(this, release_point::done);
  fuzz_point();  // sched_fuzz.hpp choice 2 (after the last touch of *this)
}

void event::reset() noexcept {
  lock_.lock();
  set_.store(false, std::memory_order_relaxed);  // relaxed: publishes nothing
  lock_.unlock();
}

bool event::is_set() const noexcept {
  // acquire: as try_consume() in manual mode.
  return set_.load(std::memory_order_acquire);
}

bool event::wait() { return wait_until(clock::time_point::max()); }

bool event::wait_until(clock::time_point deadline) {
  fuzz_point();  // sched_fuzz.hpp choice 2
  return wait_until_ready(lock_, queue_, deadline, wait_kind::event, this, [this] { return try_consume(); });
}

}  // namespace weft
