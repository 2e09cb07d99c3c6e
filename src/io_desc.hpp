// src/io_desc.hpp - per-fd descriptor: per direction an edge count, a waiter slot and a
// queue of further waiters; the in-flight op count, close state and the epoll generation
// tag. The core of the I/O layer (lock-free but for the 2nd+ waiters' queue); it depends
// on nothing but <atomic> and <mutex>, so it can be lifted into a model checker.
//
// I/O wait protocol (the slot is Go's netpoller pollDesc, src/runtime/netpoll.go,
// pdReady/pdWait. Go lets any number of goroutines block on one fd by queueing them on
// the fd's fdMutex, one waiter per pollDesc direction; here they queue on the descriptor):
//   0. Registration: the first wait on an fd adds it to its reactor's epoll set once,
//      EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET, with user data (fd << 32 | gen). Edge-triggered
//      and not one-shot: one epoll_ctl per fd lifetime instead of one EPOLL_CTL_MOD per
//      wait (a syscall per echoed message would cost ~10% of W7); the edge count below
//      keeps an edge that nobody waited for, so ET loses nothing. Rejected: level-
//      triggered (the reactor would re-report a readable fd nobody reads, busy loop);
//      EPOLLONESHOT (re-arm syscall per wait).
//   1. Per direction: an edge count (edges_, one 32-bit half per direction: every event
//      a poller takes for the fd adds one to the halves of the directions it reports); a
//      slot (rd_/wr_) for the first waiter: NIL, f|PENDING (claimed, not yet committed) or
//      f (committed), f the waiting fiber; and a queue of further waiters (io_waiter
//      nodes on the waiting fibers' stacks, linked under lock_) with its length in
//      queued_, which wakers read without the lock.
//   2. Every call samples the direction's edge count (edges()) before its syscall. On
//      EAGAIN it registers: claim_slot() CASes the slot NIL -> self|PENDING (the fast
//      path: one waiter per direction, the echo server's case); if the slot is taken,
//      enqueue() links a node (state self|PENDING) under lock_ and stores queued_ + 1.
//   3. Registered, it re-reads the edge count: changed means an edge was taken after its
//      sample, perhaps the one its EAGAIN raced with: it withdraws (step 6) and retries
//      the syscall. Then closing, cancellation and the deadline (step 7 makes these
//      re-checks sufficient). Then it arms its timer and suspends; in the post-switch
//      action (suspend.hpp rule 1) commit() CASes its word (the slot, or its node's
//      state) self|PENDING -> self. If the CAS fails, a waker ended the wait between the
//      registration and the commit and saw PENDING: the fiber wakes itself; nobody else
//      will.
//   4. Waking a direction (wake_all(): a poller after counting an edge - a worker or the
//      reactor thread, reactor.hpp -, close and shutdown's cancel): swap the slot to NIL;
//      if queued_ != 0, pop every node under lock_ and swap its state to NIL. Whoever
//      swaps a committed fiber out is the one waker of that suspension (suspend.hpp rule
//      2; a popped node's fiber is woken after lock_ is released); a PENDING one wakes
//      itself (step 3). So an edge wakes every waiter of its direction: each retries
//      the syscall, and those that find nothing (another waiter took it) get EAGAIN and
//      register again with a fresh sample, losing no later edge. Waking only one would
//      strand data: with ET, a woken waiter that does not consume everything (an
//      acceptor takes one connection, a reader one message) leaves the rest with no
//      edge to report it.
//   5. A timeout ends only its own wait: the timer CASes its word from self|PENDING or
//      self to NIL (end_own) and does nothing when the word holds anything else - the
//      wait was already ended, and the slot may belong to another waiter by now.
//   6. A waiter never writes the slot unless it holds it: withdrawing before sleeping is
//      end_own() on its own value; once resumed it no longer holds the slot (its waker
//      swapped it out). A queued waiter unlinks its node under lock_ if it is still
//      linked (withdrawn, or ended by its timer). Resumed, it cancels its timer (after
//      which no worker touches it, timers.hpp step 5) and unlinks: from then on nothing
//      refers to its stack. It decides by priority: closing -> bad_file_descriptor,
//      cancelled -> operation_canceled, edge count changed since the sample -> retry the
//      syscall, deadline passed -> timed_out, else retry.
//   7. Dekker pairs, all seq_cst: the waiter writes its registration (slot CAS, or the
//      queued_ store) and then reads the edge count, the closing flag and the cancel
//      flag; a poller adds to the count and then reads the slot and queued_; close and
//      cancel write their flag and then read them. Either the waiter sees the change and
//      does not sleep, or the waker sees the registration and ends it.
// Why a count and not a READY bit (the one-waiter design's): a bit consumed by one caller
// that then reads only part of the data would leave another caller, whose EAGAIN came
// before the same edge, asleep with data ready and no edge to come. With the count every
// caller whose syscall preceded a taken edge sees it changed. A 32-bit half wraps after
// 2^32 edges (the low half carries into the high one: one spurious retry); a caller
// would have to stall between its sample and its check for exactly that many edges.
// Fast-path cost against the one-waiter READY design: a load of the hot line per syscall
// (the sample); per wait the claim CAS, a load and the commit CAS (no swap of the slot
// after waking any more: one RMW fewer); per event one fetch_add for both directions,
// then a load of each reported direction's slot and queued_ and a swap only where a fiber
// waits (one RMW more when the event also reports a write side nobody waits on).
//
// Close protocol (refs_ word: bit 0 CLOSING, once set never cleared for this incarnation;
// bits 1.. count in-flight operations):
//   a. Every I/O call acquires a reference with a CAS that fails once CLOSING is set, so
//      after CLOSING the count only falls.
//   b. close() sets CLOSING (fetch_or) and wakes both directions (step 4): every waiter
//      wakes with bad_file_descriptor. If no operation was in flight, close() finishes
//      the close itself; otherwise the operation that drops the last reference does.
//      Exactly one party sees (CLOSING, 0 refs). So the fd number is not released while
//      an operation still uses it, and cannot be reused under it.
//   c. finish: EPOLL_CTL_DEL (before close(2): a dup of the fd would keep the
//      registration alive), gen_ += 1 (stale events already read by a poller are
//      dropped: their tag no longer matches), flags reset (slots and queues are
//      empty already: every waiter held a reference), refs_ = 0, and only then
//      close(2), so a new fd with the same number finds a clean descriptor.
//
// Caveat (as for Go's os.File): an fd that a weft I/O call has used must be closed with
// weft::io::close (or by tcp_stream/tcp_listener). A plain close(2) leaves the descriptor
// believing the number is registered and non-blocking; a later fd with that number would
// then never be woken.
// Benchmark workloads cited here (W7): docs/benchmarks.md.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>

namespace weft::detail {

class reactor;
struct fiber_impl;

enum class io_dir : unsigned { read = 0, write = 1 };

// A queued waiter (protocol steps 1, 2, 6): the second and later waiters of a direction.
// Lives on the waiting fiber's stack; prev/next/linked are guarded by the io_desc's lock_.
struct io_waiter {
  explicit io_waiter(fiber_impl* f) noexcept;
  fiber_impl* const fiber;
  std::atomic<std::uintptr_t> state;  // f|PENDING, f, or NIL once ended (step 1)
  io_waiter* prev = nullptr;
  io_waiter* next = nullptr;  // also chains popped nodes in wake_queue (theirs till woken)
  bool linked = false;
};

struct alignas(64) io_desc {
  static constexpr std::uintptr_t slot_nil = 0;
  static constexpr std::uintptr_t pending_bit = 1;  // claimed, commit pending (step 3)
  static constexpr std::uint32_t closing_bit = 1;   // refs_ bit 0: set once per incarnation
  static constexpr std::uint32_t ref_one = 2;       // refs_ bits 1..: in-flight operations

  static std::uintptr_t pending(fiber_impl* f) noexcept {
    return reinterpret_cast<std::uintptr_t>(f) | pending_bit;
  }
  static std::uintptr_t committed(fiber_impl* f) noexcept {
    return reinterpret_cast<std::uintptr_t>(f);
  }

  std::atomic<std::uintptr_t>& slot(io_dir d) noexcept { return d == io_dir::read ? rd_ : wr_; }
  std::atomic<std::uint32_t>& queued(io_dir d) noexcept {
    return queued_[static_cast<unsigned>(d)];
  }

  // --- protocol steps 2-5 (any thread; seq_cst where step 7 says so).
  // Step 2's sample, taken before each syscall. acquire (seq_cst in step 3's re-check):
  // a plain load here, ordered before the syscall that follows.
  std::uint32_t edges(io_dir d,
                      std::memory_order o = std::memory_order_acquire) const noexcept {
    return static_cast<std::uint32_t>(edges_.load(o) >> (32 * static_cast<unsigned>(d)));
  }
  // Step 4, a poller: one RMW for both directions of an event. seq_cst: step 7.
  void count_edge(bool rd, bool wr) noexcept {
    edges_.fetch_add((rd ? 1u : 0u) + (wr ? std::uint64_t{1} << 32 : 0u),
                     std::memory_order_seq_cst);
  }
  // Step 2, fast path. seq_cst: step 7.
  bool claim_slot(io_dir d, fiber_impl* self) noexcept {
    std::uintptr_t expected = slot_nil;
    return slot(d).compare_exchange_strong(expected, pending(self), std::memory_order_seq_cst);
  }
  // Step 2, slow path: n.state is self|PENDING. The queued_ store is seq_cst: step 7.
  void enqueue(io_dir d, io_waiter& n) noexcept {
    std::lock_guard<std::mutex> g(lock_);
    io_waiter*& head = queue_[static_cast<unsigned>(d)];
    n.prev = nullptr;
    n.next = head;
    if (head) head->prev = &n;
    head = &n;
    n.linked = true;
    queued(d).store(queued(d).load(std::memory_order_relaxed) + 1, std::memory_order_seq_cst);
  }
  // Step 6: unlinks n if no waker popped it. Its owner only.
  void dequeue(io_dir d, io_waiter& n) noexcept {
    std::lock_guard<std::mutex> g(lock_);
    if (!n.linked) return;
    unlink(d, n);
  }

  // Step 3's commit, in the post-switch action. True: published (someone will wake it).
  // release (part of seq_cst): publishes the saved context; pairs with the waker's swap.
  static bool commit(std::atomic<std::uintptr_t>& w, fiber_impl* f) noexcept {
    std::uintptr_t expected = pending(f);
    return w.compare_exchange_strong(expected, committed(f), std::memory_order_seq_cst);
  }
  // Step 5 (a timer) and step 6 (withdrawal): ends f's own wait on word w, if w still
  // holds it. Returns f when the caller must wake it (it had committed).
  static fiber_impl* end_own(std::atomic<std::uintptr_t>& w, fiber_impl* f) noexcept {
    std::uintptr_t v = w.load(std::memory_order_seq_cst);
    while (v == pending(f) || v == committed(f)) {
      // acquire (part of seq_cst): sees the committing fiber's saved context.
      if (w.compare_exchange_weak(v, slot_nil, std::memory_order_seq_cst))
        return v == committed(f) ? f : nullptr;
    }
    return nullptr;
  }
  // Step 4: ends every wait of direction d; calls wake(f) for each committed fiber.
  // Any thread; never blocks except on lock_, and only when waiters are queued. Inlined
  // into the pollers' dispatch (a call per direction per event was measurable there);
  // the queue part is not.
  template <class Wake>
  [[gnu::always_inline]] void wake_all(io_dir d, Wake&& wake) noexcept {
    std::atomic<std::uintptr_t>& s = slot(d);
    // seq_cst: step 7 (after the caller's edge count or flag RMW). The load first: a
    // direction nobody waits on (usually the write side) costs no RMW.
    if (s.load(std::memory_order_seq_cst) != slot_nil) {
      // acquire (part of seq_cst): sees the committing fiber's saved context.
      const std::uintptr_t v = s.exchange(slot_nil, std::memory_order_seq_cst);
      if (v != slot_nil && !(v & pending_bit)) wake(reinterpret_cast<fiber_impl*>(v));
    }
    if (queued(d).load(std::memory_order_seq_cst) != 0) wake_queue(d, wake);
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
  // seq_cst: step 7 (the flag side of the Dekker pair).
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
  // duplicate check gives the same answer. edges_, rd_/wr_, queued_: the wait protocol
  // (step 1); queued_ is written under lock_. edges_ is never reset: a new incarnation
  // continues the count (its callers sample before their syscalls all the same).
  //
  // Layout: everything an event or an I/O call touches shares the first cache line (56
  // bytes); the mutex and the queue heads (cold: registration, close, 2nd+ waiters) come
  // after. Unaligned, the 88-byte descriptors straddled lines, so a dispatch (gen_,
  // rd_, wr_) or a call (refs_, nonblock_, owner_, a slot) often missed twice.
  int fd_ = -1;
  std::atomic<std::uint32_t> gen_{1};
  std::atomic<std::uint32_t> refs_{0};
  std::atomic<std::uint8_t> nonblock_{0}, socket_{0};
  std::atomic<reactor*> owner_{nullptr};
  std::atomic<std::uintptr_t> rd_{slot_nil}, wr_{slot_nil};
  std::atomic<std::uint64_t> edges_{0};
  std::atomic<std::uint32_t> queued_[2] = {};
  alignas(64) std::mutex lock_;  // registration, finish, the queues
  io_waiter* queue_[2] = {};     // per direction, guarded by lock_

private:
  void unlink(io_dir d, io_waiter& n) noexcept {  // lock_ held, n linked
    if (n.prev) n.prev->next = n.next; else queue_[static_cast<unsigned>(d)] = n.next;
    if (n.next) n.next->prev = n.prev;
    n.prev = n.next = nullptr;
    n.linked = false;
    queued(d).store(queued(d).load(std::memory_order_relaxed) - 1, std::memory_order_seq_cst);
  }
  // Step 4's queue part. A popped node whose fiber had committed is ours until we wake it
  // (nobody else can end that wait: its word is NIL now), so it is chained through next
  // and woken after lock_ is released; any other popped node is never touched again.
  template <class Wake>
  [[gnu::noinline]] void wake_queue(io_dir d, Wake& wake) noexcept {
    io_waiter* chain = nullptr;
    {
      std::lock_guard<std::mutex> g(lock_);
      while (io_waiter* n = queue_[static_cast<unsigned>(d)]) {
        unlink(d, *n);
        // acquire (part of seq_cst): sees the committing fiber's saved context.
        const std::uintptr_t v = n->state.exchange(slot_nil, std::memory_order_seq_cst);
        if (v != slot_nil && !(v & pending_bit)) {
          n->next = chain;
          chain = n;
        }
      }
    }
    while (chain) {
      io_waiter* next = chain->next;  // read before the wake: the node dies with its waiter
      wake(chain->fiber);
      chain = next;
    }
  }
};

inline io_waiter::io_waiter(fiber_impl* f) noexcept
    : fiber(f), state(io_desc::pending(f)) {}

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
