// src/sync/channel.cpp - the type-erased channel core and select.
//
// Protocol (wait_list.hpp steps; all channel state under chan_core::lock_):
//   1. Invariants at every lock_ boundary: receivers_ non-empty => count_ == 0 (receivers
//      wait only on an empty buffer, and a send serves a waiting receiver before the
//      buffer); senders_ non-empty => count_ == buf_cap_ (full; capacity 0 is always
//      full). Nodes of a select may sit in both queues of one channel.
//   2. send: closed -> `closed`. Else pop receivers until one claim succeeds (a failed
//      claim is a select that completed elsewhere or a timed-out waiter: drop the node),
//      move the value into its slot, resume it after unlocking. Else buffer it if there
//      is room (unbounded: grow). Else wait in senders_ with slot = the caller's value.
//   3. recv: buffered value -> take the head; then refill from the first claimable
//      waiting sender (its value goes to the tail, it is resumed). Else take directly from
//      a claimable waiting sender (capacity 0). Else closed -> `closed`. Else wait in
//      receivers_ with slot = the caller's raw storage.
//   4. close: set closed_, claim every waiting node with outcome_closed. Buffered values
//      stay for receivers to drain. A sender released by close still owns its value.
//   5. select: lock every distinct channel in address order (no lock-order cycle between
//      concurrent selects), poll the cases from a random start, complete the first ready
//      one; otherwise link one node per case, all owned by one waiter, and block: the
//      post-switch action releases every lock. The winner's claim CAS picks the case;
//      afterwards the select re-locks the channels and unlinks the other nodes, except
//      the winner's channel when no other case waits on it (its node was popped by the
//      claimer, and the claimer's side may already have destroyed that channel).
//   6. Allocation: only an unbounded channel's growth allocates under lock_ (step 2's
//      buffering; step 3's refill goes to a bounded channel's freed slot). grow()
//      allocates before it changes anything, so when it throws, send (or select) unlocks
//      and rethrows with the channel as it was and the caller's value untouched; no
//      receiver was claimed (a send claims one only instead of buffering). The buffer's
//      byte size is checked: capacity * sizeof(T) that overflows throws length_error.
//   7. Lifetimes (wait_list.hpp step 5): a released waiter returns without touching the
//      channel. A select that won on one channel still leaves the others under their
//      locks, and a close (or a partner) there may already have popped its node, the
//      claim failing, leaving that channel's queues empty so that its owner may destroy
//      it: such a node is an orphan of its queue until its select leave()s, and the
//      destructor waits for the orphans (as for a timed-out waiter, wait_list.hpp).
// Hand-off keeps partners together: resume() calls wake(), which on a worker puts the
// partner in that worker's runnext slot, so a ping-pong runs on one worker's cache.
#include <weft/sync/channel.hpp>
#include <weft/sync/select.hpp>

#include "../assert.hpp"
#include "wait_list.hpp"
#include "../sched_fuzz.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

namespace weft::detail {

namespace {
// Test seam (chan_alloc_inject_failure_after): allocations left before they fail, or -1.
// relaxed: tests set it while no other thread allocates a channel buffer.
std::atomic<long> alloc_countdown{-1};
}  // namespace

void chan_alloc_inject_failure_after(long n) noexcept {
  alloc_countdown.store(n, std::memory_order_relaxed);
}

struct chan_ops {
  static unsigned char* slot(chan_core& c, std::size_t i) noexcept {
    return c.buf_ + ((c.head_ + i) % c.buf_cap_) * c.vt_.size;
  }
  static bool has_room(chan_core& c) noexcept {
    if (c.cap_ == chan_core::unbounded) return true;
    return c.count_ < c.cap_;
  }
  // Throws std::length_error when n slots are more than any allocation can hold (n * size
  // overflows, or exceeds PTRDIFF_MAX bytes), std::bad_alloc when memory is out.
  static unsigned char* allocate(chan_core& c, std::size_t n) {
    const std::size_t max_slots = static_cast<std::size_t>(PTRDIFF_MAX) / c.vt_.size;
    if (n > max_slots)
      throw std::length_error("weft::channel: " + std::to_string(n) + " slots of " +
                              std::to_string(c.vt_.size) +
                              " bytes exceed the largest possible allocation");
    if (long k = alloc_countdown.load(std::memory_order_relaxed); __builtin_expect(k >= 0, 0)) {
      if (k == 0) throw std::bad_alloc();
      alloc_countdown.store(k - 1, std::memory_order_relaxed);
    }
    return static_cast<unsigned char*>(
        ::operator new(n * c.vt_.size, std::align_val_t(std::max(c.vt_.align, sizeof(void*)))));
  }
  static void deallocate(chan_core& c, unsigned char* p) noexcept {
    ::operator delete(p, std::align_val_t(std::max(c.vt_.align, sizeof(void*))));
  }
  // Unbounded channels only; under lock_. Doubles the ring, keeping FIFO order. Throws
  // (std::bad_alloc, std::length_error) before changing anything: the values stay where
  // they are, and send() releases lock_ on the way out (step 6).
  static void grow(chan_core& c) {
    std::size_t n = 16;
    if (c.buf_cap_ != 0) n = c.buf_cap_ <= SIZE_MAX / 2 ? c.buf_cap_ * 2 : SIZE_MAX;  // refused

    unsigned char* fresh = allocate(c, n);
    for (std::size_t i = 0; i < c.count_; ++i) {
      unsigned char* from = slot(c, i);
      c.vt_.move_construct(fresh + i * c.vt_.size, from);
      c.vt_.destroy(from);
    }
    if (c.buf_) deallocate(c, c.buf_);
    c.buf_ = fresh;
    c.buf_cap_ = n;
    c.head_ = 0;
  }
  static void push(chan_core& c, void* src) {
    if (c.count_ == c.buf_cap_) grow(c);
    c.vt_.move_construct(slot(c, c.count_), src);
    ++c.count_;
  }
  static void pop(chan_core& c, void* dst) noexcept {
    unsigned char* s = slot(c, 0);
    c.vt_.move_construct(dst, s);
    c.vt_.destroy(s);
    c.head_ = (c.head_ + 1) % c.buf_cap_;
    --c.count_;
  }
  static wait_node* claim_first(wait_queue& q, outcome_kind k) noexcept {
    while (wait_node* n = pop_front(q))
      if (claim_popped(q, n, make_outcome(k, n->index))) return n;
    return nullptr;
  }

  // Step 2 under lock_. ok / closed / full; *partner: resume after unlocking.
  static channel_status try_send(chan_core& c, void* src, wait_node** partner) {
    if (c.closed_) return channel_status::closed;
    if (wait_node* r = claim_first(c.receivers_, outcome_ok)) {
      c.vt_.move_construct(r->slot, src);
      *partner = r;
      return channel_status::ok;
    }
    if (!has_room(c)) return channel_status::full;
    push(c, src);
    return channel_status::ok;
  }
  // Step 3 under lock_. ok / closed / empty.
  static channel_status try_recv(chan_core& c, void* dst, wait_node** partner) {
    if (c.count_ > 0) {
      pop(c, dst);
      if (wait_node* s = claim_first(c.senders_, outcome_ok)) {
        push(c, s->slot);  // bounded: the slot just freed; never allocates
        *partner = s;
      }
      return channel_status::ok;
    }
    if (wait_node* s = claim_first(c.senders_, outcome_ok)) {
      c.vt_.move_construct(dst, s->slot);
      *partner = s;
      return channel_status::ok;
    }
    return c.closed_ ? channel_status::closed : channel_status::empty;
  }

  [[gnu::always_inline]] static channel_status wait(chan_core& c, wait_queue& q, void* slot,
                                                    clock::time_point deadline) {
    if (deadline != clock::time_point::max() && deadline <= clock::now()) {
      c.lock_.unlock();
      return channel_status::timeout;
    }
    waiter w(&q == &c.senders_ ? wait_kind::channel_send : wait_kind::channel_recv, &c);
    w.racy = deadline != clock::time_point::max();  // a timer may claim too
    wait_node node;
    node.owner = &w;
    node.slot = slot;
    push_back(q, &node);
    const std::uint32_t out = block(w, c.lock_, deadline);
    switch (kind_of(out)) {
      case outcome_ok:
        return channel_status::ok;
      case outcome_closed:
        return channel_status::closed;
      default:  // the timer, or a stop request (wait_list.hpp step 6)
        unlink_locked(c.lock_, q, node);
        return deadline == clock::time_point::max() ? channel_status::canceled
                                                    : channel_status::timeout;
    }
  }

  static select_outcome select(select_case* cases, std::size_t n, clock::time_point deadline,
                               bool has_default);
};

chan_core::chan_core(std::size_t capacity, const chan_vtable& vt) : vt_(vt), cap_(capacity) {
  if (cap_ != unbounded && cap_ > 0) {
    buf_ = chan_ops::allocate(*this, cap_);
    buf_cap_ = cap_;
  }
}

chan_core::~chan_core() {
  wait_queue* queues[] = {&senders_, &receivers_};  // step 7
  await_orphans_then_assert_idle(lock_, queues, 2,
                                 "weft::channel destroyed while fibers or threads wait on it");
  for (std::size_t i = 0; i < count_; ++i) vt_.destroy(chan_ops::slot(*this, i));
  if (buf_) chan_ops::deallocate(*this, buf_);
}

channel_status chan_core::send(void* src, clock::time_point deadline, bool block) {
  fuzz_point();  // sched_fuzz.hpp choice 2
  wait_node* partner = nullptr;
  lock_.lock();
  channel_status st;
  try {
    st = chan_ops::try_send(*this, src, &partner);
  } catch (...) {  // step 6: the growth failed; nothing changed, *src is untouched
    lock_.unlock();
    throw;
  }
  if (st != channel_status::full || !block) {
    lock_.unlock();
    if (partner) resume(partner->owner);
    release_window(this, release_point::done);
    return st;
  }
  return chan_ops::wait(*this, senders_, src, deadline);  // releases lock_
}

channel_status chan_core::recv(void* dst, clock::time_point deadline, bool block) {
  fuzz_point();  // sched_fuzz.hpp choice 2
  wait_node* partner = nullptr;
  lock_.lock();
  channel_status st = chan_ops::try_recv(*this, dst, &partner);
  if (st != channel_status::empty || !block) {
    lock_.unlock();
    if (partner) resume(partner->owner);
    release_window(this, release_point::done);
    return st;
  }
  return chan_ops::wait(*this, receivers_, dst, deadline);  // releases lock_
}

bool chan_core::close() noexcept {
  resume_chain chain;
  lock_.lock();
  if (closed_) {
    lock_.unlock();
    return false;
  }
  closed_ = true;
  while (wait_node* n = chan_ops::claim_first(receivers_, outcome_closed)) chain.add(n);
  while (wait_node* n = chan_ops::claim_first(senders_, outcome_closed)) chain.add(n);
  lock_.unlock();
  chain.resume_all();
  release_window(this, release_point::done);
  return true;
}

bool chan_core::is_closed() const noexcept {
  lock_.lock();
  const bool c = closed_;
  lock_.unlock();
  return c;
}

std::size_t chan_core::size() const noexcept {
  lock_.lock();
  const std::size_t n = count_;
  lock_.unlock();
  return n;
}

// ---------------------------------------------------------------- select (step 5)

namespace {

std::uint32_t next_random() noexcept {
  // xorshift32 per thread: only picks the poll order, never held across a suspension.
  // Internal (tsan_scope.hpp step 2): every fiber of a worker shares it.
  tsan_internal_scope internal;
  thread_local std::uint32_t x = 0;
  if (x == 0)
    x = 0x9e3779b9u ^ static_cast<std::uint32_t>(reinterpret_cast<std::uintptr_t>(&x) >> 4) ^
        static_cast<std::uint32_t>(steady_ns());
  if (x == 0) x = 1;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return x;
}

// The distinct locks of a select's channels, in address order (the global lock order
// among channel locks).
struct lock_set {
  spinlock* locks[max_block_locks];
  std::size_t n = 0;
  void lock() noexcept {
    for (std::size_t i = 0; i < n; ++i) locks[i]->lock();
  }
  void unlock() noexcept {
    for (std::size_t i = n; i-- > 0;) locks[i]->unlock();
  }
};

}  // namespace

select_outcome chan_ops::select(select_case* cases, std::size_t n, clock::time_point deadline,
                                bool has_default) {
  constexpr std::size_t none = static_cast<std::size_t>(-1);
  WEFT_ASSERT(n <= max_block_locks, "weft::select: at most 32 channel cases");
  if (n == 0) return {none, has_default ? channel_status::empty : channel_status::timeout};
  lock_set ls;
  for (std::size_t i = 0; i < n; ++i) ls.locks[ls.n++] = &cases[i].ch->lock_;
  std::sort(ls.locks, ls.locks + ls.n);
  ls.n = static_cast<std::size_t>(std::unique(ls.locks, ls.locks + ls.n) - ls.locks);

  ls.lock();
  const std::size_t start = next_random() % n;
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t i = (start + k) % n;
    select_case& c = cases[i];
    wait_node* partner = nullptr;
    channel_status st;
    try {
      st = c.send ? try_send(*c.ch, c.slot, &partner) : try_recv(*c.ch, c.slot, &partner);
    } catch (...) {  // step 6, for a send case: release every lock, nothing happened
      ls.unlock();
      throw;
    }
    if (st == channel_status::ok || st == channel_status::closed) {
      ls.unlock();
      if (partner) resume(partner->owner);
      release_window(c.ch, release_point::done);
      return {i, st};
    }
  }
  if (has_default || (deadline != clock::time_point::max() && deadline <= clock::now())) {
    ls.unlock();
    return {none, has_default ? channel_status::empty : channel_status::timeout};
  }
  waiter w(wait_kind::select, nullptr);
  w.racy = true;  // several nodes, and maybe a timer
  wait_node nodes[max_block_locks];
  for (std::size_t i = 0; i < n; ++i) {
    nodes[i].owner = &w;
    nodes[i].slot = cases[i].slot;
    nodes[i].index = static_cast<std::uint32_t>(i);
    push_back(cases[i].send ? cases[i].ch->senders_ : cases[i].ch->receivers_, &nodes[i]);
  }
  const std::uint32_t out = block(w, ls.locks, ls.n, deadline);
  // Unlink the cases that did not happen (step 5), but leave the winner's channel alone
  // unless another case waits on it too: its claimer popped the winner's node before
  // resuming us, and the claimer's side may destroy that channel as soon as its own
  // operation returned (wait_list.hpp step 5). A timeout has no winner: all are re-locked.
  const std::size_t won = kind_of(out) == outcome_timeout ? none : index_of(out);
  chan_core* spared = won == none ? nullptr : cases[won].ch;
  for (std::size_t i = 0; i < n && spared; ++i)
    if (i != won && cases[i].ch == spared) spared = nullptr;
  lock_set rest;  // still in address order
  for (std::size_t i = 0; i < ls.n; ++i)
    if (!spared || ls.locks[i] != &spared->lock_) rest.locks[rest.n++] = ls.locks[i];
  for (std::size_t i = 0; i < n; ++i)
    if (i != won && cases[i].ch != spared)
      release_window(cases[i].send ? &cases[i].ch->senders_ : &cases[i].ch->receivers_,
                     release_point::leaving);
  rest.lock();
  for (std::size_t i = 0; i < n; ++i) {
    if (i == won || cases[i].ch == spared) continue;  // popped by its (successful) claimer
    leave(cases[i].send ? cases[i].ch->senders_ : cases[i].ch->receivers_, &nodes[i]);
  }
  rest.unlock();
  switch (kind_of(out)) {
    case outcome_ok:
      return {index_of(out), channel_status::ok};
    case outcome_closed:
      return {index_of(out), channel_status::closed};
    default:
      return {none, channel_status::timeout};
  }
}

select_outcome select_wait(select_case* cases, std::size_t n, clock::time_point deadline,
                           bool has_default) {
  return chan_ops::select(cases, n, deadline, has_default);
}

}  // namespace weft::detail
