// src/parker.hpp - per-worker park/unpark with std::thread::park semantics.
//
// Protocol (a one-token semaphore on a futex word):
//   1. state_ is EMPTY (0), NOTIFIED (1) or PARKED (-1).
//   2. park(): fetch_sub(1). From NOTIFIED this consumes the token (-> EMPTY) and returns at
//      once; from EMPTY it becomes PARKED and the thread futex-waits while the word is PARKED.
//   3. unpark(): exchange(NOTIFIED). Only when the previous value was PARKED is a FUTEX_WAKE
//      needed; otherwise the token is left for the next park() to consume.
//   4. After waking, park() CASes NOTIFIED -> EMPTY; a spurious futex return (the word is
//      still PARKED) loops back to waiting. An unpark() can therefore never be lost: either
//      it lands before the fetch_sub (token consumed at step 2) or after it (it sees PARKED
//      and wakes the futex, or the futex_wait sees NOTIFIED and returns EAGAIN).
#pragma once

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <ctime>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace weft::detail {

inline long futex_wait(std::atomic<std::int32_t>* w, std::int32_t expected,
                       const timespec* rel = nullptr) noexcept {
  return syscall(SYS_futex, reinterpret_cast<std::int32_t*>(w), FUTEX_WAIT_PRIVATE, expected, rel,
                 nullptr, 0);
}
inline void futex_wake(std::atomic<std::int32_t>* w, int n) noexcept {
  syscall(SYS_futex, reinterpret_cast<std::int32_t*>(w), FUTEX_WAKE_PRIVATE, n, nullptr, nullptr, 0);
}

class parker {
public:
  static constexpr std::int32_t empty = 0, notified = 1, parked = -1;

  // Owner thread only. Returns after an unpark() (possibly one that happened earlier).
  void park() noexcept {
    // acquire: when consuming a token, pairs with the release exchange in unpark(), so what
    // the unparker published before unpark() is visible here.
    if (state_.fetch_sub(1, std::memory_order_acquire) == notified) return;
    for (;;) {
      futex_wait(&state_, parked);
      std::int32_t n = notified;
      // acquire: pairs with the release exchange in unpark().
      if (state_.compare_exchange_strong(n, empty, std::memory_order_acquire,
                                         std::memory_order_relaxed))
        return;
    }
  }

  // Owner thread only. Like park(), but gives up at deadline_ns (CLOCK_MONOTONIC, i.e.
  // steady_clock, absolute): true after an unpark, false when the deadline passed first
  // (no token consumed; a later unpark leaves one for the next park).
  bool park_until(std::int64_t deadline_ns) noexcept {
    // acquire: as in park().
    if (state_.fetch_sub(1, std::memory_order_acquire) == notified) return true;
    const timespec abs{static_cast<time_t>(deadline_ns / 1000000000),
                       static_cast<long>(deadline_ns % 1000000000)};
    for (;;) {
      // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time: EINTR and spurious
      // returns retry without recomputing anything.
      const long r = syscall(SYS_futex, reinterpret_cast<std::int32_t*>(&state_),
                             FUTEX_WAIT_BITSET_PRIVATE, parked, &abs, nullptr,
                             FUTEX_BITSET_MATCH_ANY);
      const bool timed_out = r != 0 && errno == ETIMEDOUT;
      std::int32_t n = notified;
      // acquire: pairs with the release exchange in unpark().
      if (state_.compare_exchange_strong(n, empty, std::memory_order_acquire,
                                         std::memory_order_relaxed))
        return true;
      std::int32_t p = parked;
      // relaxed: taking back our own PARKED mark publishes nothing. Fails only when an
      // unpark() landed just now: the next round consumes its token (futex_wait returns
      // at once, the word is no longer PARKED).
      if (timed_out && state_.compare_exchange_strong(p, empty, std::memory_order_relaxed,
                                                      std::memory_order_relaxed))
        return false;
    }
  }

  // Any thread. True while the owner sleeps in park (diagnostics only: relaxed, a hint).
  bool sleeping() const noexcept { return state_.load(std::memory_order_relaxed) == parked; }

  // Any thread. Wakes the owner or leaves it a token.
  void unpark() noexcept {
    // release: publishes the unparker's writes (queued work, idle bookkeeping) to the
    // parked thread; pairs with the acquire in park().
    if (state_.exchange(notified, std::memory_order_release) == parked) futex_wake(&state_, 1);
  }

private:
  std::atomic<std::int32_t> state_{empty};
};

}  // namespace weft::detail
