// weft/sync/detail/wait_queue.hpp - the two pieces of every sync primitive's layout that
// public classes must hold by value: a small spinlock and an intrusive FIFO of waiter
// nodes. The nodes themselves, and the suspend/block protocol, live in src/sync/wait_list.hpp.
// Not API: names here may change.
#pragma once

#include <weft/export.hpp>

#include <atomic>
#include <cstdint>

namespace weft::detail {

// Test-and-test-and-set lock for a primitive's internal state. Held only for a few dozen
// instructions and never across a suspension: a fiber that waits releases it in its
// post-switch action (src/sync/wait_list.hpp). Any thread.
class spinlock {
public:
  void lock() noexcept {
    // acquire: pairs with the release store in unlock(); the previous holder's writes to
    // the primitive's state are visible to us.
    if (locked_.exchange(true, std::memory_order_acquire)) lock_slow();
  }
  bool try_lock() noexcept {
    // relaxed pre-check: only avoids a cache-line steal; the exchange decides (acquire,
    // partner as in lock()).
    return !locked_.load(std::memory_order_relaxed) &&
           !locked_.exchange(true, std::memory_order_acquire);
  }
  void unlock() noexcept {
    // release: publishes the primitive's state to the next holder (its acquire exchange).
    locked_.store(false, std::memory_order_release);
  }

private:
  WEFT_API void lock_slow() noexcept;
  std::atomic<bool> locked_{false};
};

struct wait_node;

// Intrusive doubly linked FIFO of wait_node (src/sync/wait_list.hpp). Every member is guarded
// by the owning primitive's spinlock.
struct wait_queue {
  wait_node* head = nullptr;
  wait_node* tail = nullptr;
  // Nodes popped by a claim that failed (their wait had already ended: a timer, or a
  // select that won elsewhere) whose waiters have not yet come back under the lock to
  // leave; the destructor waits for them (src/sync/wait_list.hpp step 5).
  std::uint32_t orphans = 0;
  bool empty() const noexcept { return head == nullptr; }
};

}  // namespace weft::detail
