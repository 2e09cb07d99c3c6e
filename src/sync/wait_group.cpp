// src/sync/wait_group.cpp - weft::wait_group.
//
// Protocol: add() changes count_ without the lock; the add that reaches zero takes lock_
// and releases every queued node. wait() checks count_ under lock_ before it links (a
// zero reached before that check is seen; one reached after it finds the node). A count
// that goes 0 -> n -> 0 again simply releases the waiters queued in between.
#include <weft/sync/wait_group.hpp>

#include "../assert.hpp"
#include "../wait_list.hpp"

namespace weft {

using namespace detail;

wait_group::~wait_group() {
  assert_no_waiters(lock_, queue_, "weft::wait_group destroyed while fibers or threads wait on it");
}

void wait_group::add(std::int64_t delta) noexcept {
  // acq_rel: release publishes this caller's work; acquire (for the add that reaches
  // zero) collects every earlier add's work through the release sequence, and wake()
  // hands it on to the waiters. Pairs with the acquire loads in wait_until().
  const std::int64_t now = count_.fetch_add(delta, std::memory_order_acq_rel) + delta;
  WEFT_ASSERT(now >= 0, "weft::wait_group: the count became negative (more done() than add())");
  if (now != 0 || delta >= 0) return;
  release_window(this, release_point::published);
  resume_chain chain;
  lock_.lock();
  while (wait_node* n = pop_front(queue_))
    if (try_claim(n->owner, make_outcome(outcome_ok))) chain.add(n);
  lock_.unlock();
  chain.resume_all();
  release_window(this, release_point::done);
}

void wait_group::wait() { (void)wait_until(clock::time_point::max()); }

bool wait_group::wait_until(clock::time_point deadline) {
  // acquire: pairs with the acq_rel fetch_add in add().
  return wait_until_ready(lock_, queue_, deadline,
                          [this] { return count_.load(std::memory_order_acquire) == 0; });
}

}  // namespace weft
