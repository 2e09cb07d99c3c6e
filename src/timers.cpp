// src/timers.cpp - see the protocol in timers.hpp.
#include "timers.hpp"

#include "assert.hpp"
#include "reactor.hpp"
#include "worker.hpp"

namespace weft::detail {

void arm_timer(timer_entry* e) noexcept {
  worker* w = current_worker();
  WEFT_ASSERT(w != nullptr, "weft: internal: a timer armed off a worker thread");
  w->timers().arm(e);
}

bool cancel_timer(timer_entry* e) noexcept { return e->shard->cancel(e); }

void timer_shard::arm(timer_entry* e) noexcept {
  // Copied before the lock is released: from then on the timer may fire (on a peer,
  // step 4) and its owner free the entry.
  const std::int64_t when = e->deadline.time_since_epoch().count();
  bool first;
  {
    std::lock_guard<std::mutex> g(lock_);
    first = heap_.empty();
    e->shard = this;
    e->seq = seq_++;
    heap_.push_back({});
    up(heap_.size() - 1, node{when, e->seq, e});
    if (e->heap_index == 0) next_.store(when, std::memory_order_relaxed);  // step 1
  }
  if (first && watchdog_) {
    // Step 7, seq_cst: orders the next_ store above before the flag read in
    // timer_armed(); the reactor's fence orders its flag store before its next_ reads.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    watchdog_->timer_armed();
  }
}

bool timer_shard::cancel(timer_entry* e) noexcept {
  std::lock_guard<std::mutex> g(lock_);
  if (e->heap_index == timer_entry::npos) return false;  // fired (fire has returned)
  remove(e->heap_index);
  return true;
}

std::size_t timer_shard::fire_due(std::int64_t now, bool try_only) noexcept {
  std::unique_lock<std::mutex> g(lock_, std::defer_lock);
  if (try_only) {
    if (!g.try_lock()) return 0;
  } else {
    g.lock();
  }
  std::size_t n = 0;
  while (!heap_.empty() && heap_.front().when <= now) {
    timer_entry* e = heap_.front().e;
    remove(0);
    e->fire(e);  // under lock_: step 5
    ++n;
  }
  return n;
}

std::size_t timer_shard::size() const noexcept {
  std::lock_guard<std::mutex> g(lock_);
  return heap_.size();
}

void timer_shard::up(std::size_t i, node n) noexcept {
  while (i > 0) {
    std::size_t p = (i - 1) / 2;
    if (!(n < heap_[p])) break;
    place(i, heap_[p]);
    i = p;
  }
  place(i, n);
}

void timer_shard::down(std::size_t i, node n) noexcept {
  const std::size_t size = heap_.size();
  for (;;) {
    std::size_t c = 2 * i + 1;
    if (c >= size) break;
    if (c + 1 < size && heap_[c + 1] < heap_[c]) ++c;
    if (!(heap_[c] < n)) break;
    place(i, heap_[c]);
    i = c;
  }
  place(i, n);
}

void timer_shard::remove(std::size_t i) noexcept {
  heap_[i].e->heap_index = timer_entry::npos;
  node last = heap_.back();
  heap_.pop_back();
  if (i < heap_.size()) {  // not the last node: move `last` into the hole
    if (i > 0 && last < heap_[(i - 1) / 2])
      up(i, last);
    else
      down(i, last);
  }
  if (i == 0) publish_next();
}

}  // namespace weft::detail
