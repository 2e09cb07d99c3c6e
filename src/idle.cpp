// src/idle.cpp - see the protocol at the top of idle.hpp.
#include "idle.hpp"

#include <algorithm>

namespace weft::detail {

idle::idle(unsigned workers)
    : workers_(workers), state_(static_cast<std::uint64_t>(workers) << 32) {
  sleepers_.reserve(workers);
}

int idle::notify_one(int preferred) noexcept {
  // P2: orders the caller's publication (P1) before the load below; the other side of
  // this StoreLoad is the fence after announce_park() (C2).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  std::uint64_t s = state_.load(std::memory_order_seq_cst);
  if ((s & 0xffffffffu) != 0 || (s >> 32) >= workers_) return -1;
  std::lock_guard<std::mutex> g(lock_);
  // Re-check under the lock: a worker may have started searching meanwhile.
  s = state_.load(std::memory_order_relaxed);
  if ((s & 0xffffffffu) != 0 || sleepers_.empty()) return -1;
  unsigned w = sleepers_.back();
  auto it = std::find(sleepers_.begin(), sleepers_.end(), static_cast<unsigned>(preferred));
  if (preferred >= 0 && it != sleepers_.end()) {
    w = *it;
    *it = sleepers_.back();
  }
  sleepers_.pop_back();
  // seq_cst: part of the total order the protocol reasons about (P4).
  state_.fetch_add(one_unparked | one_searching, std::memory_order_seq_cst);
  return static_cast<int>(w);
}

bool idle::try_enter_searching() noexcept {
  std::uint64_t s = state_.load(std::memory_order_relaxed);
  for (;;) {
    std::uint64_t searching = s & 0xffffffffu, unparked = s >> 32;
    if (2 * searching >= unparked) return false;
    // seq_cst: a producer that reads this increment skips waking a sleeper (P3); the
    // searcher's later give-up (C1) is then ordered after that read.
    if (state_.compare_exchange_weak(s, s + one_searching, std::memory_order_seq_cst,
                                     std::memory_order_relaxed))
      return true;
  }
}

bool idle::leave_searching() noexcept {
  // seq_cst: see try_enter_searching.
  std::uint64_t prev = state_.fetch_sub(one_searching, std::memory_order_seq_cst);
  return (prev & 0xffffffffu) == 1;
}

void idle::announce_park(unsigned worker, bool searching) noexcept {
  std::lock_guard<std::mutex> g(lock_);
  sleepers_.push_back(worker);
  // C1, seq_cst: see the protocol.
  state_.fetch_sub(one_unparked | (searching ? one_searching : 0), std::memory_order_seq_cst);
}

bool idle::cancel_park(unsigned worker) noexcept {
  std::lock_guard<std::mutex> g(lock_);
  auto it = std::find(sleepers_.begin(), sleepers_.end(), worker);
  if (it == sleepers_.end()) return false;
  *it = sleepers_.back();
  sleepers_.pop_back();
  state_.fetch_add(one_unparked | one_searching, std::memory_order_seq_cst);
  return true;
}

bool idle::try_claim_watch(unsigned worker) noexcept {
  // seq_cst: W4's argument orders claims, releases and C1/P4's updates of state_ in one
  // total order.
  const std::uint64_t s = state_.load(std::memory_order_seq_cst);
  // Nobody works (every unparked worker searches, and a searcher holds nothing): no watch.
  if ((s >> 32) <= (s & 0xffffffffu)) return false;
  int expected = -1;
  return watcher_.compare_exchange_strong(expected, static_cast<int>(worker),
                                          std::memory_order_seq_cst, std::memory_order_relaxed);
}

void idle::release_watch(unsigned worker) noexcept {
  // seq_cst: see try_claim_watch. A CAS, so that only the holder can clear it.
  int expected = static_cast<int>(worker);
  (void)watcher_.compare_exchange_strong(expected, -1, std::memory_order_seq_cst,
                                         std::memory_order_relaxed);
}

std::vector<unsigned> idle::take_all_sleepers() noexcept {
  std::lock_guard<std::mutex> g(lock_);
  std::vector<unsigned> all;
  all.swap(sleepers_);
  state_.fetch_add(static_cast<std::uint64_t>(all.size()) * (one_unparked | one_searching),
                   std::memory_order_seq_cst);
  return all;
}

}  // namespace weft::detail
