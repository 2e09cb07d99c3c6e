// src/sync/wait_list.hpp - waiters and the blocking protocol that all of sync/ builds on.
//
// Vocabulary: a *waiter* is one blocking call (one fiber or one plain thread, on its own
// stack); a *wait_node* is that call's membership in one primitive's wait_queue. A plain
// wait has one node; a select has one node per case, all sharing one waiter.
//
// Wake-up protocol (suspend.hpp's rules, made concrete):
//   1. The waiting side takes the primitive's spinlock, finds it must wait, links its
//      node(s) and calls block() with the lock(s) still held. A fiber releases them in its
//      post-switch action, after its context is saved (rule 1); a timed fiber wait arms
//      its timer in that action *before* unlocking, so the timer exists before anybody
//      can resume the fiber and a resumed fiber's cancel_timer() always finds it
//      armed or fired (TSan's fiber mode: the fiber first releases on each lock itself,
//      tsan_scope.hpp step 4). A plain thread releases the locks and sleeps on waiter::flag.
//   2. Every party that may end the wait (a notifier, a partner channel operation, close,
//      the timer) first calls try_claim(): one CAS of waiter::state from `waiting` to an
//      outcome. Exactly one CAS succeeds (rule 2); the winner may write the node's slot
//      (a channel value) and then calls resume() exactly once; a loser does nothing.
//   3. Notifiers pop nodes under the primitive's lock (node->linked = false). A waiter
//      ended by its timer (or a select, by another case) comes back under the lock to
//      leave() before returning, unlinking its node if it is still linked. So nobody
//      touches a node after its waiter returned: a popped node whose claim failed is never
//      touched again, a claimed one is touched only before resume(). A node popped with
//      a failed claim is counted as an orphan of its queue (claim_popped) until its
//      waiter's leave(): the queue looks empty, but that waiter still takes the lock.
//   4. resume() is the last touch of a waiter by the winner: for a fiber it calls wake()
//      (reads w->fiber first); for a plain thread it stores flag = 1 (release) and
//      futex-wakes the word. After that store only the word's address is used: the waiter
//      may have returned and reused the stack slot, and a wake on it is at worst a
//      spurious wake of whatever futex lives there now; every futex wait in weft
//      re-checks its word in a loop (block_thread, parker, join), as glibc's do.
//   5. Lifetimes: a waiter may destroy the object as soon as its wait returns, while the
//      party that released it is still inside the releasing call (set, done, release,
//      unlock, notify, send, close). The rule: the releasing party's last touch of the
//      object precedes the store that lets the waiter return; after it only stack copies
//      (and claimed waiters, step 4) are used. A store made under the primitive's lock
//      counts as made at the unlock: every destructor first takes the lock
//      (assert_no_waiters), so it cannot free the object under a releaser that still
//      holds it, and it waits while the queue has orphans (step 3): a timed-out waiter
//      whose node a release popped, or a select that won elsewhere, is about to take the
//      lock to leave, and the releaser, seeing an empty queue, may destroy the object
//      at once. Hence: state that a waiter reads without the lock (a fast path) is
//      changed only under the lock, and a releasing call touches nothing of the object
//      after its unlock. A released waiter returns without touching the object either
//      (it never re-checks after a successful claim), and a call that both releases and
//      waits (latch and barrier arrive_and_wait) queues itself in the same lock hold as
//      its arrival, or does not wait at all when it is the releaser. Re-locking after a
//      release (a condition variable's wait) is therefore not an option for a primitive
//      the released waiter may destroy: barrier waits on a phase gate instead. The
//      same rule holds for the scheduler a woken fiber belongs to: a wake from outside
//      its workers keeps it alive until the waker's last touch (scheduler.cpp, shutdown
//      step 4).
//   6. Cancellation (task.cpp steps C1-C5): a timed fiber wait (w.cancellable) registers a
//      cancel hook on its task's stop word in its post-switch action, after arming its
//      timer and before releasing the locks. The hook does exactly what the timer does:
//      try_claim(timeout) and resume() when that won, so a stop request ends the wait as
//      its timeout would (the caller reports timeout/false and leaves the queue as after
//      a timeout; it reads this_fiber::stop_requested() to tell them apart), one claim
//      CAS decides between it, the timer and the notifiers, and a stopped fiber's later
//      timed waits end at once (the registration fails and the post claims the wait
//      itself). After it is resumed, block() deregisters the hook; when the outcome is a
//      timeout (the timer's or the request's claim, made without the locks) the post
//      action may still be running, so block() first takes and releases locks[0], which
//      the post releases only after registering: the node is still linked or counted as
//      an orphan then, so the primitive is alive (step 5). A notifier's claim is made
//      under the locks, after the post released them. Untimed fiber waits register the
//      same hook (block_untimed() then takes block()'s path, and the waiter becomes racy
//      there, under the locks): the request's timeout outcome is their only way to end
//      short of a notifier, and the caller leaves the queue and reports "stopped" (false,
//      channel_status::canceled, ...). A stopped fiber's wait still suspends and is
//      resumed by its own post action (a wake, queued like any other), never returns
//      without passing through the scheduler: code that ignores the result
//      (`for (;;) ev.wait();`) burns CPU but cannot hold its worker from other fibers. Plain threads, mutex locks
//      (cancellable = false) and joins are not cancellable.
// Lock order: a primitive's spinlock -> timer_shard::lock_ (arm in post) -> idle::lock_.
// condition_variable (and barrier's phase gate) additionally takes its own lock before its
// mutex's lock. select takes channel locks in address order. Nothing takes a primitive
// lock while holding a timer shard's lock (timer callbacks only CAS and wake).
#pragma once

#include "../assert.hpp"

#include "../timers.hpp"
#include "../suspend.hpp"

#include <weft/sync/detail/wait_queue.hpp>
#include <weft/timer.hpp>

#include <atomic>
#include <cstdint>

namespace weft::detail {

// Outcome word: 0 while waiting; otherwise (case index << 2) | kind, written once.
enum outcome_kind : std::uint32_t {
  outcome_waiting = 0,
  outcome_ok = 1,       // notified / value transferred / permit or lock granted
  outcome_closed = 2,   // channel closed, or mutex "retry" (see mutex.cpp)
  outcome_timeout = 3,  // the timer won
};
constexpr std::uint32_t make_outcome(outcome_kind k, std::uint32_t index = 0) noexcept {
  return (index << 2) | k;
}
constexpr outcome_kind kind_of(std::uint32_t o) noexcept { return outcome_kind(o & 3u); }
constexpr std::uint32_t index_of(std::uint32_t o) noexcept { return o >> 2; }

struct waiter : timer_entry {
  // kind and obj: what a fiber's wait is recorded as (fiber_impl::wait, src/inspect.hpp).
  waiter(wait_kind k, const void* o) noexcept : fiber(current_fiber()), obj(o), kind(k) {}
  waiter(const waiter&) = delete;
  waiter& operator=(const waiter&) = delete;

  // Written once by the claim CAS (try_claim); read by the waiter after it is resumed.
  std::atomic<std::uint32_t> state{outcome_waiting};
  fiber_impl* const fiber;             // nullptr: a plain thread, which sleeps on flag
  std::atomic<std::int32_t> flag{0};   // plain threads: 1 once resumed (futex word)
  std::int64_t since = 0;              // mutex: when it first queued (steady ns)
  const void* const obj;               // the primitive waited on (for inspections)
  const wait_kind kind;
  // More than one party may try to end this wait (a timer, or several select nodes).
  // Set by the waiting side before its first node is linked; read by claimers under the
  // primitive's lock. When false, the one claimer is whoever pops the node under the
  // lock, so try_claim() needs no CAS.
  bool racy = false;
  // A fiber wait also ends, as a timeout would, when its fiber is asked to stop (step 6).
  // weft::mutex clears it: a lock is not cancellable.
  bool cancellable = true;

  // Before waiting again with the same waiter (mutex retry). Waiting side only, before
  // its node is linked again; the previous claimer finished with it in resume().
  void rearm() noexcept {
    state.store(outcome_waiting, std::memory_order_relaxed);  // relaxed: unpublished
    flag.store(0, std::memory_order_relaxed);                 // relaxed: unpublished
  }
};

struct wait_node {
  wait_node* prev = nullptr;  // all four: guarded by the owning primitive's lock
  wait_node* next = nullptr;
  bool linked = false;
  bool front = false;         // mutex: a woken waiter re-queues at the head
  waiter* owner = nullptr;
  void* slot = nullptr;       // channel: send source (T*) or receive target (raw storage)
  std::uint32_t index = 0;    // select: case index reported in the outcome
};

// ---- queue operations; caller holds the primitive's lock.
inline void push_back(wait_queue& q, wait_node* n) noexcept {
  n->next = nullptr;
  n->prev = q.tail;
  if (q.tail) q.tail->next = n; else q.head = n;
  q.tail = n;
  n->linked = true;
}
inline void push_front(wait_queue& q, wait_node* n) noexcept {
  n->prev = nullptr;
  n->next = q.head;
  if (q.head) q.head->prev = n; else q.tail = n;
  q.head = n;
  n->linked = true;
}
inline void unlink(wait_queue& q, wait_node* n) noexcept {
  if (!n->linked) return;
  if (n->prev) n->prev->next = n->next; else q.head = n->next;
  if (n->next) n->next->prev = n->prev; else q.tail = n->prev;
  n->prev = n->next = nullptr;
  n->linked = false;
}
inline wait_node* pop_front(wait_queue& q) noexcept {
  wait_node* n = q.head;
  if (!n) return nullptr;
  // unlink() for the head: no predecessor to patch.
  q.head = n->next;
  if (q.head) q.head->prev = nullptr; else q.tail = nullptr;
  n->next = nullptr;
  n->linked = false;
  return n;
}

// Step 2. Any thread. True when this caller ended the wait and must resume() it.
[[nodiscard]] inline bool try_claim(waiter* w, std::uint32_t outcome) noexcept {
  if (!w->racy) {
    // relaxed: the only claimer (see waiter::racy); resume() publishes it.
    w->state.store(outcome, std::memory_order_relaxed);
    return true;
  }
  std::uint32_t expected = outcome_waiting;
  // acq_rel: release orders the claimer's earlier writes before the outcome; acquire
  // orders the claimer's slot write after the (unique) win. The waiter reads the outcome
  // after resume(), whose wake/flag handover carries happens-before.
  return w->state.compare_exchange_strong(expected, outcome, std::memory_order_acq_rel,
                                          std::memory_order_relaxed);
}

// ---- Test seam: the release window (tests/lifetime_test.cpp). Off unless a test installs
// a hook. A releasing call reports these points:
//   published  it just made the store that may let a waiter return without queueing (a
//              fast path that reads the primitive's state without its lock); it may still
//              hold the primitive's lock, which the destructor waits for;
//   done       its last touch of the object is behind it;
//   woken      resume() just released a plain-thread waiter (object = its futex word) and
//              is about to futex-wake that address;
//   leaving    (reported by a waiter, not a releaser) its wait ended without this queue's
//              claim (its timer won, or its select won elsewhere) and it is about to take
//              the primitive's lock to leave the queue (object = the queue).
// A test sleeps in the hook so the waiter can return and destroy the object (or reuse its
// stack) in between: any later touch then hits a destroyed object.
enum class release_point { published, done, woken, leaving };
using release_hook = void (*)(const void* object, release_point) noexcept;
// Any thread; install it before the threads that release start (nullptr: off).
void set_release_hook(release_hook h) noexcept;
extern std::atomic<release_hook> release_hook_now;
inline void release_window(const void* object, release_point p) noexcept {
  // relaxed: installed before the releasing threads start (set_release_hook).
  release_hook h = release_hook_now.load(std::memory_order_relaxed);
  if (__builtin_expect(h != nullptr, 0)) h(object, p);
}

// Test seam (fault injection, tests/alloc_fault_test.cpp): after n more successful channel
// buffer allocations (a bounded channel's buffer, an unbounded channel's growth), the
// following ones throw std::bad_alloc as if memory had run out; n < 0 turns it off. Set it
// while no other thread allocates a channel buffer.
void chan_alloc_inject_failure_after(long n) noexcept;

// Step 3, for a node just popped from q (under the lock): try_claim(), and when the claim
// fails count the node as an orphan of q: its waiter still comes back under the lock to
// leave (leave()), and the destructor waits for that (step 5).
[[nodiscard]] inline bool claim_popped(wait_queue& q, wait_node* n,
                                       std::uint32_t outcome) noexcept {
  if (try_claim(n->owner, outcome)) return true;
  ++q.orphans;
  return false;
}

// Step 3, under the lock: the node of a wait that ended without q's claim (its timer, or
// its select's claim on another queue) leaves q: unlinked if still linked, else it was
// popped by a claim that failed and is no longer an orphan.
inline void leave(wait_queue& q, wait_node* n) noexcept {
  if (n->linked)
    unlink(q, n);
  else
    --q.orphans;
}

// Step 4. Any thread; after a successful try_claim and after writing the slot.
inline void resume(waiter* w) noexcept {
  if (fiber_impl* f = w->fiber) {
    wake(f);
    return;
  }
  std::atomic<std::int32_t>* word = &w->flag;  // an address only, once the flag is set
  // release: publishes the outcome and slot; pairs with the acquire load in block().
  word->store(1, std::memory_order_release);
  release_window(word, release_point::woken);
  futex_wake(word, 1);
}

// Claimed nodes, chained through wait_node::next after they were popped (a claimed node
// is ours until resume()), resumed after the primitive's lock is released.
struct resume_chain {
  wait_node* head = nullptr;
  void add(wait_node* n) noexcept {
    n->next = head;
    head = n;
  }
  void resume_all() noexcept {
    for (wait_node* n = head; n;) {
      wait_node* next = n->next;  // read before resume(): the node dies with its waiter
      resume(n->owner);
      n = next;
    }
    head = nullptr;
  }
  // Pops and claims (ok) every waiter of q; the caller holds q's lock, and resumes the
  // chain after releasing it. A node whose claim lost is an orphan (claim_popped).
  void claim_all(wait_queue& q) noexcept {
    while (wait_node* n = pop_front(q))
      if (claim_popped(q, n, make_outcome(outcome_ok))) add(n);
  }
};

// Step 1. Waits until w is claimed; returns the outcome. `locks[0..n)` are held on entry
// and released by the time the waiter can be resumed (n <= max_block_locks). deadline:
// time_point::max() = untimed. Fiber or plain thread.
constexpr std::size_t max_block_locks = 32;
std::uint32_t block(waiter& w, spinlock* const* locks, std::size_t n,
                    clock::time_point deadline) noexcept;
// The common wait: one lock, no deadline (every untimed channel, mutex, event ... wait).
// The same protocol as block() without the lock array or timer handling.
std::uint32_t block_untimed(waiter& w, spinlock& lock) noexcept;
inline std::uint32_t block(waiter& w, spinlock& lock, clock::time_point deadline) noexcept {
  if (deadline == clock::time_point::max()) return block_untimed(w, lock);
  spinlock* l = &lock;
  return block(w, &l, 1, deadline);
}

// The timeout path of step 3 for one-node waits: leave() under `lock`.
inline void unlink_locked(spinlock& lock, wait_queue& q, wait_node& n) noexcept {
  release_window(&q, release_point::leaving);
  lock.lock();
  leave(q, &n);
  lock.unlock();
}

// An identifier of the calling fiber's logical task, or of the calling plain thread;
// never 0. Stable across migration (mutex ownership).
std::uintptr_t caller_token() noexcept;

// Step 5, in every destructor, with the queues of one primitive (all under `lock`): takes
// the lock, so a releaser still inside its critical section finishes first, and waits
// (yielding) while the queues are empty but orphans remain: their waiters' waits have
// ended and they are about to leave. Destroying a primitive while fibers or threads wait
// on it is a contract violation (they would never be woken); `what` names it.
void await_orphans_then_assert_idle(spinlock& lock, wait_queue* const* qs, std::size_t n,
                                    const char* what) noexcept;
inline void assert_no_waiters(spinlock& lock, wait_queue& q, const char* what) noexcept {
  wait_queue* qs[] = {&q};
  await_orphans_then_assert_idle(lock, qs, 1, what);
}

// The wait every "until a condition holds" primitive (event, semaphore, wait_group)
// shares: `ready()` is tried first without the lock, then again under `lock` (so a
// release between the two cannot be missed), and only then does the caller queue and
// block. `ready()` must consume what it found (take the permit, clear an auto-reset
// event) when it returns true. True when woken or ready, false at the deadline.
template <class Ready>
bool wait_until_ready(spinlock& lock, wait_queue& q, clock::time_point deadline, wait_kind kind,
                      const void* obj, Ready&& ready) {
  if (ready()) return true;
  if (deadline != clock::time_point::max() && deadline <= clock::now()) return false;
  waiter w(kind, obj);
  w.racy = deadline != clock::time_point::max();  // a timer may claim too
  wait_node node;
  node.owner = &w;
  lock.lock();
  if (ready()) {
    lock.unlock();
    return true;
  }
  push_back(q, &node);
  const std::uint32_t out = block(w, lock, deadline);
  if (kind_of(out) != outcome_timeout) return true;
  unlink_locked(lock, q, node);
  return false;
}

}  // namespace weft::detail
