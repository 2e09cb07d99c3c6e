// src/io_desc.hpp - per-fd descriptor: read/write waiter slots, in-flight op count,
// close state and the epoll generation tag. The lock-free core of the I/O layer; it
// depends on nothing but <atomic>, so it can be lifted into a model checker.
//
// I/O wait protocol (Go's netpoller pollDesc, src/runtime/netpoll.go, pdReady/pdWait):
//   0. Registration: the first wait on an fd adds it to its reactor's epoll set once,
//      EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET, with user data (fd << 32 | gen). Edge-triggered
//      and not one-shot: one epoll_ctl per fd lifetime instead of one EPOLL_CTL_MOD per
//      wait (a syscall per echoed message would cost ~10% of W7); the READY state below
//      keeps an edge that nobody waited for, so ET loses nothing. Rejected: level-
//      triggered (the reactor would re-report a readable fd nobody reads, busy loop);
//      EPOLLONESHOT (re-arm syscall per wait).
//   1. A slot (rd_ or wr_) is NIL, READY, WAIT or a fiber_impl* (the one waiter).
//   2. A fiber whose syscall got EAGAIN calls prepare(): READY -> NIL returns "retry the
//      syscall" (an edge arrived since the last wait), NIL -> WAIT claims the slot, and
//      anything else means another fiber waits in this direction: busy (one reader and
//      one writer at a time per fd are supported; a second concurrent one gets
//      device_or_resource_busy).
//   3. With WAIT published it re-checks closing, cancellation and the deadline (step 6
//      makes that re-check sufficient), arms its timer, and suspends. In the post-switch
//      action (suspend.hpp rule 1) commit() CASes WAIT -> fiber. If the CAS fails the slot
//      became READY or NIL meanwhile (readiness, timeout, close or cancel ran between the
//      publish and the commit): the fiber wakes itself; nobody else will.
//   4. unblock(ready) - a poller on an edge (a worker or the reactor thread, reactor.hpp),
//      the timer on expiry, close and shutdown with ready=false - swaps the slot: ->READY (an edge) or ->NIL (others). Whoever
//      swaps a fiber pointer out is the one waker of that suspension (suspend.hpp rule 2):
//      the CAS on the slot is the per-wait state word.
//   5. Resumed, the fiber exchanges the slot to NIL, cancels its timer (after which the
//      no worker touches it any more, timers.hpp step 5) and decides by priority:
//      closing -> bad_file_descriptor, cancelled -> operation_canceled, old READY -> retry
//      the syscall, deadline passed -> timed_out, else retry.
//   6. The closing/cancelled flags and the slot form a Dekker pair: the waiter writes the
//      slot (seq_cst RMW) then reads the flag (seq_cst); close/cancel write the flag
//      (seq_cst RMW/store) then unblock the slot (seq_cst RMW). Either the waiter sees the
//      flag before suspending, or the closer sees WAIT/fiber and unblocks it.
//
// Close protocol (refs_ word: bit 0 CLOSING, once set never cleared for this incarnation;
// bits 1.. count in-flight operations):
//   a. Every I/O call acquires a reference with a CAS that fails once CLOSING is set, so
//      after CLOSING the count only falls.
//   b. close() sets CLOSING (fetch_or) and unblocks both slots: waiters wake with
//      bad_file_descriptor. If no operation was in flight, close() finishes the close
//      itself; otherwise the operation that drops the last reference does. Exactly one
//      party sees (CLOSING, 0 refs). So the fd number is not released while an operation
//      still uses it, and cannot be reused under it (test-catalogue U8).
//   c. finish: EPOLL_CTL_DEL (before close(2): a dup of the fd would keep the
//      registration alive), gen_ += 1 (stale events already read by a poller are
//      dropped: their tag no longer matches, U9), slots and flags reset, refs_ = 0, and
//      only then close(2), so a new fd with the same number finds a clean descriptor.
//
// Caveat (as for Go's os.File): an fd that a weft I/O call has used must be closed with
// weft::io::close (or by tcp_stream/tcp_listener). A plain close(2) leaves the descriptor
// believing the number is registered and non-blocking; a later fd with that number would
// then never be woken.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>

namespace weft::detail {

class reactor;
struct fiber_impl;

enum class io_dir : unsigned { read = 0, write = 1 };

// Outcome of prepare(): see protocol step 2.
enum class [[nodiscard]] prepare_result { retry, claimed, busy };

struct alignas(64) io_desc {
  static constexpr std::uintptr_t slot_nil = 0;
  static constexpr std::uintptr_t slot_ready = 1;  // an edge arrived, nobody consumed it
  static constexpr std::uintptr_t slot_wait = 2;   // claimed, commit pending (step 3)
  static constexpr std::uint32_t closing_bit = 1;  // refs_ bit 0: set once per incarnation
  static constexpr std::uint32_t ref_one = 2;      // refs_ bits 1..: in-flight operations

  // --- protocol steps 2, 3, 4 (any thread; seq_cst: step 6's Dekker pair).
  std::atomic<std::uintptr_t>& slot(io_dir d) noexcept { return d == io_dir::read ? rd_ : wr_; }

  prepare_result prepare(io_dir d) noexcept {
    auto& s = slot(d);
    for (;;) {
      std::uintptr_t v = s.load(std::memory_order_seq_cst);
      if (v == slot_ready) {
        if (s.compare_exchange_weak(v, slot_nil, std::memory_order_seq_cst)) return prepare_result::retry;
      } else if (v == slot_nil) {
        if (s.compare_exchange_weak(v, slot_wait, std::memory_order_seq_cst)) return prepare_result::claimed;
      } else {
        return prepare_result::busy;
      }
    }
  }

  // Post-switch action of the suspending fiber. True: published (someone will wake it).
  // release: publishes the fiber's saved context; pairs with the acquire in unblock().
  static bool commit(std::atomic<std::uintptr_t>& s, fiber_impl* f) noexcept {
    std::uintptr_t expected = slot_wait;
    return s.compare_exchange_strong(expected, reinterpret_cast<std::uintptr_t>(f),
                                     std::memory_order_seq_cst);
  }

  // Returns the fiber to wake (the caller wakes it), or nullptr. ready: an epoll edge.
  static fiber_impl* unblock(std::atomic<std::uintptr_t>& s, bool ready) noexcept {
    const std::uintptr_t to = ready ? slot_ready : slot_nil;
    std::uintptr_t v = s.load(std::memory_order_seq_cst);
    for (;;) {
      if (v == slot_ready || (v == slot_nil && !ready)) return nullptr;
      // acquire (part of seq_cst): sees the committing fiber's saved context.
      if (s.compare_exchange_weak(v, to, std::memory_order_seq_cst))
        return v > slot_wait ? reinterpret_cast<fiber_impl*>(v) : nullptr;
    }
  }

  // --- close protocol (any thread).
  // Step a. False once CLOSING is set.
  bool acquire_ref() noexcept {
    std::uint32_t v = refs_.load(std::memory_order_relaxed);
    do {
      if (v & closing_bit) return false;
      // acquire: sees the previous incarnation's finish (refs_ = 0 store-release).
    } while (!refs_.compare_exchange_weak(v, v + ref_one, std::memory_order_acquire,
                                          std::memory_order_relaxed));
    return true;
  }
  // Step b. True when the caller must finish the close (last reference, CLOSING set).
  // acq_rel: the finisher sees every other operation's effects on the descriptor.
  [[nodiscard]] bool release_ref() noexcept {
    return refs_.fetch_sub(ref_one, std::memory_order_acq_rel) == (ref_one | closing_bit);
  }
  enum class [[nodiscard]] close_result { finish_now, deferred, already_closing };
  // seq_cst: step 6 (the flag side of the Dekker pair).
  close_result mark_closing() noexcept {
    std::uint32_t prev = refs_.fetch_or(closing_bit, std::memory_order_seq_cst);
    if (prev & closing_bit) return close_result::already_closing;
    return prev == 0 ? close_result::finish_now : close_result::deferred;
  }
  bool closing() const noexcept {
    return (refs_.load(std::memory_order_seq_cst) & closing_bit) != 0;
  }

  // Fields. fd_ is constant (the table index). gen_: written under lock_ by finish
  // (release), read by pollers (acquire) to filter stale events; never 0 (0 tags the
  // reactor's eventfd). owner_: the reactor whose epoll set holds the fd, written under
  // lock_, read lock-free by the registration fast path (acquire; pairs with the release
  // store after EPOLL_CTL_ADD). nonblock_: O_NONBLOCK was ensured (0 unknown, 1 set);
  // socket_: 0 unknown, 1 socket, 2 not a socket; both relaxed: a cache, a racing
  // duplicate check gives the same answer.
  //
  // Layout: everything an event or an I/O call touches shares the first cache line; the
  // mutex (cold: registration and close only) comes after. Unaligned, the 88-byte
  // descriptors straddled lines, so a dispatch (gen_, rd_, wr_) or a call (refs_,
  // nonblock_, owner_, a slot) often missed twice.
  int fd_ = -1;
  std::atomic<std::uint32_t> gen_{1};
  std::atomic<std::uint32_t> refs_{0};
  std::atomic<std::uint8_t> nonblock_{0}, socket_{0};
  std::atomic<reactor*> owner_{nullptr};
  std::atomic<std::uintptr_t> rd_{slot_nil}, wr_{slot_nil};
  alignas(64) std::mutex lock_;  // registration and finish
};

// Process-wide table fd -> io_desc (fd numbers are process-wide). Chunks are allocated on
// first use and never freed, so an io_desc* stays valid for the process lifetime: the
// poller may look a descriptor up after the fd was closed and only the generation
// decides whether the event is stale.
class desc_table {
public:
  static constexpr int chunk_bits = 12;
  static constexpr int chunk_size = 1 << chunk_bits;
  static constexpr int max_chunks = 1024;  // 4M fds, above any RLIMIT_NOFILE seen here

  // nullptr when fd < 0 or beyond the table. Allocates the chunk on first use.
  io_desc* get(int fd);
  // Like get() but never allocates (nullptr when the chunk does not exist).
  io_desc* find(int fd) const noexcept;
  // Calls f(io_desc&) for every descriptor in allocated chunks below the high-water mark.
  template <class F>
  void for_each(F&& f) const {
    const int hi = high_.load(std::memory_order_acquire);
    for (int c = 0; c < max_chunks && c * chunk_size < hi; ++c) {
      io_desc* chunk = chunks_[c].load(std::memory_order_acquire);
      if (!chunk) continue;
      for (int i = 0; i < chunk_size; ++i) f(chunk[i]);
    }
  }

private:
  std::atomic<io_desc*> chunks_[max_chunks] = {};
  std::atomic<int> high_{0};  // 1 + largest fd whose chunk exists
};

// The process's table (created on first use, intentionally never destroyed).
desc_table& descs() noexcept;

}  // namespace weft::detail
