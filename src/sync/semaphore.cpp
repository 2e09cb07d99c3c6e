// src/sync/semaphore.cpp - weft::counting_semaphore.
//
// Protocol: a waiter re-tries try_acquire() under lock_ before it links, and release()
// serves linked waiters (claim with outcome_ok = "a permit is yours") before adding to
// count_, under lock_. Invariant at every lock_ boundary: queue non-empty => count_ == 0.
// So a permit is never left in count_ while a waiter sleeps.
#include <weft/sync/semaphore.hpp>

#include "../assert.hpp"
#include "wait_list.hpp"
#include "../sched_fuzz.hpp"

namespace weft {

using namespace detail;

counting_semaphore::counting_semaphore(std::ptrdiff_t initial) : count_(initial) {
  WEFT_ASSERT(initial >= 0, "weft::counting_semaphore: negative initial count");
}

counting_semaphore::~counting_semaphore() {
  assert_no_waiters(lock_, queue_,
                    "weft::counting_semaphore destroyed while fibers or threads wait on it");
}

bool counting_semaphore::try_acquire() noexcept {
  // relaxed: the CAS decides.
  std::ptrdiff_t c = count_.load(std::memory_order_relaxed);
  while (c > 0) {
    // acquire: pairs with the release fetch_add in release().
    if (count_.compare_exchange_weak(c, c - 1, std::memory_order_acquire,
                                     std::memory_order_relaxed))
      return true;
  }
  return false;
}

void counting_semaphore::release(std::ptrdiff_t n) noexcept {
  WEFT_ASSERT(n >= 0, "weft::counting_semaphore::release: negative count");
  resume_chain chain;
  lock_.lock();
  while (n > 0) {
    wait_node* w = pop_front(queue_);
    if (!w) break;
    if (claim_popped(queue_, w, make_outcome(outcome_ok))) {
      chain.add(w);
      --n;
    }
  }
  // release: publishes the releaser's writes to a later try_acquire (its acquire CAS).
  if (n > 0) {
    count_.fetch_add(n, std::memory_order_release);
    release_window(this, release_point::published);
  }
  lock_.unlock();
  chain.resume_all();
  release_window(this, release_point::done);
  fuzz_point();  // sched_fuzz.hpp choice 2
}

bool counting_semaphore::acquire() { return try_acquire_until(clock::time_point::max()); }

bool counting_semaphore::try_acquire_until(clock::time_point deadline) {
  fuzz_point();  // sched_fuzz.hpp choice 2
  return wait_until_ready(lock_, queue_, deadline, wait_kind::semaphore, this, [this] { return try_acquire(); });
}

}  // namespace weft
