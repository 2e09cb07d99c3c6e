// src/task.cpp - join, detach and completion of tasks; spawn entry points; this_fiber;
// fiber-local storage; the unhandled-exception handler.
//
// Join protocol (task::state_ bits in fiber_impl.hpp; each is set once):
//   1. The joiner reads state_ (acquire). DONE: the result is ready.
//   2. A fiber joiner whose child is still in its worker's private_ list takes it out and
//      runs it inline on its own stack (no switch), if enough stack is left.
//   3. Otherwise it writes joiner_ and sets JOIN_WAIT with fetch_or(acq_rel). A fiber does
//      this in a post-switch action, after its context is saved, so the completer can
//      resume it at once. If that fetch_or sees DONE, the joiner wakes itself.
//   4. The completer sets DONE with fetch_or(acq_rel): release publishes the result and
//      error_; acquire makes joiner_ visible when JOIN_WAIT was already set, and then
//      it wakes the joiner. Exactly one of the two fetch_ors sees the other's bit, so a
//      joiner is woken exactly once and never before it can be resumed.
//   5. detach() sets DETACHED the same way; whichever of detach/complete comes second
//      reports a stored exception to the unhandled-exception handler (exactly once).
//   6. A completer that already sees DETACHED (spawn_detached sets it before the task is
//      published; a relaxed load suffices) skips step 4's fetch_or: no joiner can exist,
//      and detach's fetch_or came first and saw no DONE, so the report is the completer's.
//   7. Timed join (join_until/join_for/wait_until): two parties may end the wait (the
//      completer and the joiner's timer), so it is a wait_list.hpp waiter (racy: one claim
//      CAS decides) registered under task::join_lock_ instead of with step 3's bare bits.
//      Under join_lock_ the joiner checks DONE, writes joiner_ = its waiter and sets
//      JOIN_TIMED with a fetch_or that sees DONE if the completer (which sets DONE
//      without the lock) came in between - then it does not wait -, else it block()s (the lock is released in the post-switch action, after the
//      timer is armed: wait_list.hpp step 1). A completer whose step-4 fetch_or saw
//      JOIN_TIMED takes join_lock_ and, if JOIN_TIMED is still set, clears it, takes the
//      waiter out of joiner_ and claims it (ok) before unlocking; it resumes it after the
//      unlock only if the claim won. A joiner whose timer won takes join_lock_ and clears
//      JOIN_TIMED (and joiner_) if the completer has not: so nobody touches the waiter after
//      the joiner's unlock, the handle stays joinable, and a later join starts from a clean
//      state (its step-3 write of joiner_ comes after JOIN_TIMED was cleared under the lock,
//      and the completer reads joiner_ for a timed join only under the lock with JOIN_TIMED
//      set). The task outlives both sides: the joiner holds the handle's reference and the
//      completer the queue's until after task_complete(). The untimed paths (steps 1-6)
//      never take join_lock_.
//
// Cancellation (task::stop_, one word: bit 0 STOP, set once; bit 1 BUSY; the other bits
// the address of a cancel_hook, or 0). Cooperative: a request only sets STOP and ends the
// cancellable wait the fiber is in (a sleep, a timed primitive wait, an fd wait in
// io.cpp); the fiber sees it through
// this_fiber::stop_requested() / its stop tokens and decides what to do.
//   C1. A cancellable wait owns a cancel_hook on its stack and a claim word of its own
//       (the same kind of claim a timed wait's timer makes: one CAS decides who ends the
//       wait, the timer or the request). It registers the hook from its post-switch
//       action, after its context is saved and its timer armed (suspend.hpp rule 1), with
//       one CAS of stop_ from 0 to the hook's address. The CAS fails only when STOP is
//       set (nobody else writes stop_ while it is 0 or a hook): the wait then claims
//       itself as cancelled and wakes itself. A fiber that sees STOP before it suspends
//       does not wait at all.
//       An fd wait (io.cpp) registers before it suspends instead, as it arms its timer:
//       its claim word makes an end that comes before the commit fail the commit, and
//       the fiber then wakes itself.
//   C2. task_request_stop: a CAS of stop_ from v (STOP clear) to v | STOP | BUSY; only the
//       first request succeeds (later ones see STOP and return). If v held a hook, the
//       requester calls it (the hook claims its wait as cancelled and, if that claim won,
//       wakes the fiber) and then stores stop_ = STOP (release): the hook's address and
//       BUSY are gone, and its last touch of the hook came before that store.
//   C3. A cancellable wait, once resumed (by whichever claim won), deregisters with a CAS
//       of stop_ from its hook to 0. When that fails a request took the hook (C2): it
//       waits while BUSY is set (acquire, pairs with C2's release store; a few
//       instructions unless the requester, a plain thread, was preempted), so no
//       requester touches the hook after the wait returns. If the request's claim won,
//       the wait also cancels its timer before returning (timers.hpp step 5).
//   C4. TSan: C1's CAS runs in a post action's internal scope and orders nothing there,
//       so the wait releases on its hook before suspending and the requester acquires it
//       before calling the hook (one more hand-off edge, tsan_scope.hpp step 3).
//   C5. Lifetime: the requester holds a reference to the task (a join_handle or a
//       stop_token), the fiber holds the run queue's: the word outlives both sides.
//
// Stop links (spawn_options::stop_with_parent). Kept off the task, in a table of 64
// mutex-guarded shards keyed by the parent: tasks that do not use the option pay nothing
// (no field, no check on any hot path).
//   L1. The parent fiber spawns a linked child: apply_spawn_options (before the child is
//       published; may throw) finds or makes the parent's entry and reserves a slot in it;
//       commit_stop_link (after publication; cannot fail) appends the child, holding one
//       reference to it, sets the parent's STOP_LINKED bit (seq_cst), unlocks, then reads
//       the parent's STOP (seq_cst) and, if set, requests the child's stop itself.
//   L2. task_request_stop, after C2 (its CAS is seq_cst), reads STOP_LINKED (seq_cst) and,
//       if set, copies the children (taking a reference to each) under the shard lock and
//       requests each one's stop outside it, then does the same for each child whose stop
//       this made (a worklist, not recursion: deep chains cost heap, not stack). L1 and L2 are the store-buffering pattern on two words, all four
//       accesses seq_cst: either L2 sees STOP_LINKED and then (under the lock) the child,
//       or L1's read sees STOP. A child is stopped at least once; the rest return false.
//   L3. The entry's references are dropped when the parent completes (task_complete) and,
//       for children that have finished (refs_ == 1: only ours; or DONE), at each L1, so
//       a long-lived parent holds at most its live linked children.
//   L4. Only the parent itself appends to its entry (it is the spawning fiber), so L1's
//       reservation cannot be taken by anyone else before the commit.
// References (task::refs_): the queue's and the join handle's; the last release deletes.
// A release that sees refs_ == 1 (acquire) is by the only holder and deletes without
// an RMW: detached fibers and joined ones whose queue reference went first.
// Benchmark workloads cited here (W1): docs/benchmarks.md.
#include "assert.hpp"
#include "fiber_impl.hpp"
#include "parker.hpp"
#include "reactor.hpp"
#include "runtime.hpp"
#include "sched_fuzz.hpp"
#include "suspend.hpp"
#include "tsan_scope.hpp"
#include "sync/wait_list.hpp"
#include "worker.hpp"

#include <weft/fiber.hpp>
#include <weft/scheduler.hpp>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <new>
#include <stdexcept>
#include <unordered_map>
#include <sched.h>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace weft {
namespace detail {

void contract_violation(const char* what, const char* file, int line) noexcept {
  std::fprintf(stderr, "weft: contract violation: %s (%s:%d)\n", what, file, line);
  if (const std::uint64_t seed = last_schedule_seed())
    std::fprintf(stderr, "weft: schedule fuzzing seed %llu (WEFT_SCHED_SEED=%llu replays it)\n",
                 static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
  std::fflush(stderr);
  std::abort();
}

namespace {

// A plain thread blocked in join(). Lives on the joiner's stack.
struct thread_waiter {
  std::atomic<std::int32_t> flag{0};
};
constexpr std::uintptr_t thread_tag = 1;

void wake_joiner(void* joiner) noexcept {
  auto bits = reinterpret_cast<std::uintptr_t>(joiner);
  if (bits & thread_tag) {
    auto* tw = reinterpret_cast<thread_waiter*>(bits & ~thread_tag);
    // release: publishes the completed task to the joiner; pairs with its acquire load.
    tw->flag.store(1, std::memory_order_release);
    // The joiner may already have returned (it saw the flag without sleeping); a wake on a
    // stale address is harmless to the futex protocol (waiters re-check their word).
    futex_wake(&tw->flag, 1);
  } else {
    auto* f = static_cast<fiber_impl*>(joiner);
    f->rt->wake(f);
  }
}

void default_unhandled(std::uint64_t id, std::exception_ptr e) noexcept {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "weft: detached fiber %llu threw: %s\n",
                 static_cast<unsigned long long>(id), ex.what());
  } catch (...) {
    std::fprintf(stderr, "weft: detached fiber %llu threw a non-std exception\n",
                 static_cast<unsigned long long>(id));
  }
  std::terminate();
}

std::atomic<unhandled_exception_handler> unhandled{nullptr};

void report_unhandled(task* t) noexcept {
  // acquire: pairs with the release exchange in set_unhandled_exception_handler().
  unhandled_exception_handler h = unhandled.load(std::memory_order_acquire);
  (h ? h : default_unhandled)(t->id_, t->error_);
}

void post_join_wait(fiber_impl* from, void* arg) noexcept {
  auto* t = static_cast<task*>(arg);
  // Step 3 (acq_rel): release publishes joiner_; acquire sees the result if DONE.
  if (t->state_.fetch_or(task_join_wait, std::memory_order_acq_rel) & task_done)
    current_worker()->wake_local(from);
}

void wait_as_thread(task* t) {
  thread_waiter tw;
  t->joiner_ = reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(&tw) | thread_tag);
  // Step 3 (acq_rel): as in post_join_wait.
  if (t->state_.fetch_or(task_join_wait, std::memory_order_acq_rel) & task_done) return;
  // acquire: pairs with the release store in wake_joiner().
  while (tw.flag.load(std::memory_order_acquire) == 0) futex_wait(&tw.flag, 0);
}

struct fls_table {
  std::vector<std::pair<void*, void (*)(void*)>> slots;
  std::string name;  // spawn_options::name (the table is made at spawn for a named task)
};
std::atomic<std::size_t> fls_keys{0};

// The machine stack pointer. Not __builtin_frame_address: under ASan with
// detect_stack_use_after_return a frame lives on ASan's heap-allocated fake stack, so its
// address says nothing about how much of the fiber's stack is left (the inline-join depth
// check then went either way at random).
inline void* stack_pointer() noexcept {
#if defined(__x86_64__) && defined(__GNUC__)
  void* sp;
  asm volatile("mov %%rsp, %0" : "=r"(sp));
  return sp;
#else
  return __builtin_frame_address(0);
#endif
}

// Join step 2's queue operations are internal (tsan_scope.hpp step 2).
bool take_private_internal(worker* w, task* t) noexcept {
  tsan_internal_scope internal;
  return w->take_private(t);
}

task* current_task_or_abort(const char* what) noexcept {
  worker* w = current_worker();
  fiber_impl* f = w ? w->current() : nullptr;
  WEFT_ASSERT(f && f->current, what);
  return f->current;
}

}  // namespace

void suspend_current(post_fn post, void* arg) noexcept {
  worker* w = current_worker();
  fiber_impl* self = w ? w->current() : nullptr;
  WEFT_ASSERT(self, "a fiber-only wait was called outside a fiber");
  w->suspend(self, post, arg);
}

void wake_slow(fiber_impl* f) noexcept { f->rt->wake(f); }

reactor& reactor_of(fiber_impl* f) noexcept { return *f->rt->reactor_; }

void task_release(task* t) noexcept {
  // The sole owner (refs_ 1) needs no RMW: nobody else holds a reference to copy or drop.
  // acquire: pairs with the release half of the fetch_sub that dropped the other
  // reference, so that owner's writes happen before the delete. acq_rel on the RMW path:
  // the last owner must see every other owner's writes before deleting.
  if (t->refs_.load(std::memory_order_acquire) == 1 ||
      t->refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    // TSan: the other reference's holder may have dropped it inside the internal scope;
    // the task's run (released when it finished) is what the delete must come after.
    tsan_acquire(t);
    if (__builtin_expect(t->fls_ != nullptr, 0)) fls_destroy(t);  // a named task that never ran
    delete t;
  }
}

namespace {
// Step 7, completer side: DONE is set; the timed joiner seen by step 4 may have left.
void complete_timed_join(task* t) noexcept {
  waiter* w = nullptr;
  t->join_lock_.lock();
  // relaxed: JOIN_TIMED changes only under join_lock_, which we hold.
  if (t->state_.load(std::memory_order_relaxed) & task_join_timed) {
    t->state_.fetch_and(~std::uint32_t{task_join_timed}, std::memory_order_relaxed);
    auto* cand = static_cast<waiter*>(std::exchange(t->joiner_, nullptr));
    if (try_claim(cand, make_outcome(outcome_ok))) w = cand;  // else its timer won
  }
  t->join_lock_.unlock();
  if (w) resume(w);  // our last touch of the waiter (wait_list.hpp step 4)
}
}  // namespace

namespace {
std::vector<task*> take_links(task* parent);  // stop links L3 (below)
}  // namespace

namespace {
// task_complete's paths other than a detached task without stop links: out of line, so
// that the common detached path saves and restores no registers (W1: ~14 instructions
// per fiber).
__attribute__((noinline)) void complete_slow(task* t, std::uint32_t st) noexcept {
  // Stop links L3: the finished parent's children are no longer its to stop.
  if (__builtin_expect((st & task_stop_linked) != 0, 0))
    for (task* c : take_links(t)) task_release(c);
  if (st & task_detached) {  // step 6, as in task_complete
    if (t->error_) report_unhandled(t);
    return;
  }
  // Step 4.
  std::uint32_t prev = t->state_.fetch_or(task_done, std::memory_order_acq_rel);
  if (prev & task_join_wait) wake_joiner(t->joiner_);
  if (__builtin_expect((prev & task_join_timed) != 0, 0)) complete_timed_join(t);
  if ((prev & task_detached) && t->error_) report_unhandled(t);
}
}  // namespace

void task_complete(task* t) noexcept {
  // relaxed: DETACHED, see step 6; STOP_LINKED is set only by this fiber (the parent,
  // commit_stop_link).
  const std::uint32_t st = t->state_.load(std::memory_order_relaxed);
  // Step 6: detached, nobody joins it (one RMW fewer per detached fiber, W1). A stale 0
  // takes step 4 (complete_slow), which is right in every case.
  if ((st & (task_detached | task_stop_linked)) == task_detached) {
    if (__builtin_expect(static_cast<bool>(t->error_), 0)) report_unhandled(t);
    return;
  }
  complete_slow(t, st);
}

bool task_wait_until(task* t, clock::time_point deadline) {
  // acquire: pairs with the release of DONE in task_complete (step 1).
  if (!(t->state_.load(std::memory_order_acquire) & task_done)) {
    if (deadline <= clock::now()) return false;
    waiter w(wait_kind::join, t);
    w.racy = true;  // the completer and the timer
    // A join without a deadline is not cancellable, as join() is not: task_group waits for
    // its children this way, under a stop request, and must not return early.
    w.cancellable = deadline != clock::time_point::max();
    t->join_lock_.lock();
    // acquire: as above (DONE is set outside join_lock_).
    if (t->state_.load(std::memory_order_acquire) & task_done) {
      t->join_lock_.unlock();
    } else {
      WEFT_ASSERT(!(t->state_.load(std::memory_order_relaxed) & (task_join_wait | task_join_timed)),
                  "weft::join_handle: two joins of one fiber at once");
      t->joiner_ = &w;
      // The completer sets DONE without join_lock_: it may have done so since the check
      // above (schedule fuzzing widens that window). Then its step-4 fetch_or saw no
      // JOIN_TIMED and will not wake us: the fetch_or's own result must be checked, or
      // the join waits forever. acq_rel: release publishes joiner_ to the completer's
      // step-4 RMW; acquire pairs with its release of DONE when DONE is already there.
      release_window(t, release_point::leaving);
      const std::uint32_t prev = t->state_.fetch_or(task_join_timed, std::memory_order_acq_rel);
      if (prev & task_done) {
        t->state_.fetch_and(~std::uint32_t{task_join_timed}, std::memory_order_relaxed);
        t->joiner_ = nullptr;
        t->join_lock_.unlock();
      } else if (kind_of(block(w, t->join_lock_, deadline)) == outcome_timeout) {
        t->join_lock_.lock();
        // relaxed: JOIN_TIMED changes only under join_lock_.
        if (t->state_.load(std::memory_order_relaxed) & task_join_timed) {
          t->state_.fetch_and(~std::uint32_t{task_join_timed}, std::memory_order_relaxed);
          t->joiner_ = nullptr;
        }  // else the completer took the waiter under the lock, and its claim lost
        t->join_lock_.unlock();
        // The deadline passed; report DONE anyway if it is set by now (acquire: as above),
        // so a join() that follows returns at once.
        if (!(t->state_.load(std::memory_order_acquire) & task_done)) return false;
      }
    }
  }
  // TSan: finish -> join, as in task_wait.
  tsan_acquire(t);
  return true;
}

void task_wait(task* t) {
  // acquire: pairs with the release of DONE in task_complete (step 1).
  if (!(t->state_.load(std::memory_order_acquire) & task_done)) {
    worker* w = current_worker();
    fiber_impl* self = w ? w->current() : nullptr;
    if (!self) {
      wait_as_thread(t);
    } else if (task_stack_class(t) == 0 && take_private_internal(w, t)) {
      // (A child with a stack size of its own never runs inline: it needs that stack.)
      // Step 2. The child never left this worker, so it needs no synchronisation.
      auto* sp = static_cast<char*>(stack_pointer());
      if (sp - static_cast<char*>(self->stk.lo) > static_cast<std::ptrdiff_t>(w->rt().inline_reserve_)) {
        tsan_internal_scope internal;  // run_task's contract (worker.hpp)
        w->run_task(self, t);
      } else {
        {
          tsan_internal_scope internal;
          w->requeue_task(t);  // too deep to nest: it runs on a fiber of its own
        }
        t->joiner_ = self;
        note_wait(self, wait_kind::join, t);
        w->suspend(self, post_join_wait, t);
      }
    } else {
      t->joiner_ = self;
      note_wait(self, wait_kind::join, t);
      w->suspend(self, post_join_wait, t);
    }
  }
  // TSan: finish -> join (tsan_scope.hpp step 3; DONE was set inside the internal scope).
  tsan_acquire(t);
  // acquire: pairs with the release of DONE; makes error_ and the result visible.
  std::uint32_t st = t->state_.load(std::memory_order_acquire);
  WEFT_ASSERT(st & task_done, "join resumed before the fiber finished");
  // Move the exception out: the joiner then holds its only reference, so the task's
  // deletion (on whichever thread drops the last task reference) never races with the
  // joiner's use of the exception through libstdc++'s uninstrumented refcount (TSan).
  if (t->error_) std::rethrow_exception(std::exchange(t->error_, nullptr));
}

void task_detach(task* t) noexcept {
  // Step 5 (acq_rel): acquire sees error_ when DONE is already set.
  std::uint32_t prev = t->state_.fetch_or(task_detached, std::memory_order_acq_rel);
  if (prev & task_done) {
    // TSan: finish -> detach (tsan_scope.hpp step 3): error_, and the task's memory, which
    // task_release may now free.
    tsan_acquire(t);
    if (t->error_) report_unhandled(t);
  }
  task_release(t);
}

void spawn_here(task* t) {
  tsan_release(t);  // spawn -> start (tsan_scope.hpp step 3): the callable and its captures
  tsan_internal_scope internal;
  worker* w = current_worker();
  if (!w || !w->current())
    throw std::logic_error(
        "weft::spawn called outside a fiber; use scheduler::spawn from plain threads");
  if (!w->reserve_fiber_slot())
    throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again),
                            "weft::spawn: the live-fiber cap (scheduler::options::max_fibers, "
                            "or the vm.max_map_count-derived limit) is reached");
  // sched_fuzz.hpp choice 2: the child may run before the spawner goes on. Checked here,
  // where w is at hand, so that a spawn without fuzzing makes no call (W1: ~1M spawns),
  // and before spawn_local, so that without fuzzing that call is a tail call (nothing
  // to keep across it). The flag is set at construction and never changes.
  if (__builtin_expect(w->fuzz().on(), 0)) {
    w->spawn_local(t);
    fuzz_point();
    return;
  }
  w->spawn_local(t);
}

void spawn_on(scheduler& sched, task* t) {
  worker* w = current_worker();
  if (w && w->current() && &w->rt() == &sched.runtime_()) {
    spawn_here(t);
    return;
  }
  tsan_release(t);  // spawn -> start, as in spawn_here
  tsan_internal_scope internal;
  sched.runtime_().spawn_external(t);
}

namespace {

bool stop_one(task* t) noexcept;            // C2 for one task (below)
bool has_stop_links(const task* t) noexcept;  // L2's read of STOP_LINKED (below)

struct link_shard {
  std::mutex mu;
  std::unordered_map<task*, std::vector<task*>> children;  // guarded by mu
};
constexpr std::size_t link_shards = 64;
link_shard& shard_of(const task* parent) noexcept {
  static link_shard* shards = new link_shard[link_shards];  // never destroyed: exit races
  return shards[(reinterpret_cast<std::uintptr_t>(parent) >> 6) % link_shards];
}

bool task_finished_for_link(task* child) noexcept {
  // acquire: pairs with the release halves of the RMWs that dropped the other references
  // (then our release may delete it) or with DONE's release.
  return child->refs_.load(std::memory_order_acquire) == 1 ||
         (child->state_.load(std::memory_order_acquire) & task_done);
}

// L1, before publication: the parent's entry, pruned (L3) and with one free slot.
void* prepare_stop_link() {
  fiber_impl* f = current_fiber();
  task* parent = f ? f->current : nullptr;
  if (!parent)
    throw std::invalid_argument(
        "weft::spawn_options::stop_with_parent: the spawning code is not a fiber (a plain "
        "thread has no stop state for the child to follow)");
  std::vector<task*> finished;
  {
    link_shard& s = shard_of(parent);
    std::lock_guard<std::mutex> g(s.mu);
    std::vector<task*>& kids = s.children[parent];  // may throw: nothing published yet
    auto keep = kids.begin();
    for (task* c : kids) {
      if (task_finished_for_link(c))
        finished.push_back(c);  // (the vector was reserved for it: no throw)
      else
        *keep++ = c;
    }
    kids.erase(keep, kids.end());
    kids.reserve(kids.size() + 1);  // may throw; L4: nobody else appends
  }
  for (task* c : finished) task_release(c);
  return parent;
}

std::vector<task*> take_links(task* parent) {
  link_shard& s = shard_of(parent);
  std::lock_guard<std::mutex> g(s.mu);
  auto it = s.children.find(parent);
  if (it == s.children.end()) return {};
  std::vector<task*> kids = std::move(it->second);
  s.children.erase(it);
  return kids;
}

// L2: requests the stop of every child linked to parent and, for each child this made
// the request for, of its own linked children: breadth-first over a worklist, so a deep
// chain of links costs heap, not the requester's (possibly fiber) stack.
void stop_linked_children(task* root) noexcept {
  std::vector<task*> work;
  bool complete = true;
  auto copy_children = [&](task* p) noexcept {
    link_shard& s = shard_of(p);
    std::lock_guard<std::mutex> g(s.mu);
    auto it = s.children.find(p);
    if (it == s.children.end()) return;
    for (task* c : it->second) {
      try {
        work.push_back(c);
      } catch (const std::bad_alloc&) {
        complete = false;
        return;
      }
      task_add_ref(c);  // the entry's reference keeps c alive until we hold our own
    }
  };
  copy_children(root);
  while (!work.empty()) {
    task* c = work.back();
    work.pop_back();
    if (stop_one(c) && has_stop_links(c)) copy_children(c);
    task_release(c);
  }
  // A stop request cannot report failure (noexcept, as std::stop_source's): say it.
  if (!complete)
    std::fprintf(stderr, "weft: out of memory passing a stop request on to linked "
                         "children; some were not asked to stop\n");
}

}  // namespace

void commit_stop_link(void* link, task* child) noexcept {
  auto* parent = static_cast<task*>(link);
  task_add_ref(child);  // the entry's reference (L3 drops it)
  {
    link_shard& s = shard_of(parent);
    std::lock_guard<std::mutex> g(s.mu);
    s.children[parent].push_back(child);  // reserved by prepare_stop_link (L4)
    // seq_cst: L1/L2's store-buffering pair with task_request_stop's CAS and load.
    parent->state_.fetch_or(task_stop_linked, std::memory_order_seq_cst);
  }
  // seq_cst: as above. STOP is bit 0 of stop_ (C2).
  if (parent->stop_.load(std::memory_order_seq_cst) & stop_bit) (void)task_request_stop(child);
}

void* apply_spawn_options(task* t, const spawn_options& o) {
  if (o.stack_size != 0) {
    constexpr std::size_t max_bytes = std::size_t{1} << 30;
    if (o.stack_size < min_stack_size || o.stack_size > max_bytes)
      throw std::invalid_argument("weft::spawn_options::stack_size: " + std::to_string(o.stack_size) +
                                  " bytes is outside [16 KiB, 1 GiB] (0 means the scheduler's "
                                  "options::stack_size)");
    unsigned c = 1;
    while (stack_class_bytes(c) < o.stack_size) ++c;
    // relaxed: t is unpublished (spawn_here/spawn_on publish it).
    t->state_.fetch_or(c << task_stack_class_shift, std::memory_order_relaxed);
  }
  if (o.name && *o.name) {
    auto* table = static_cast<fls_table*>(t->fls_);
    if (!table) t->fls_ = table = new fls_table;
    table->name = o.name;
  }
  return o.stop_with_parent ? prepare_stop_link() : nullptr;  // last: it may throw
}

const char* task_name(const task* t) noexcept {
  auto* table = static_cast<const fls_table*>(t->fls_);
  return table && !table->name.empty() ? table->name.c_str() : nullptr;
}

namespace {
// C2 for one task; true when this call made the request.
bool stop_one(task* t) noexcept {
  // C2. relaxed load: the CAS decides (and its acquire, on success, orders our read of
  // the hook after the waiter's registration, a release CAS).
  std::uintptr_t v = t->stop_.load(std::memory_order_relaxed);
  do {
    if (v & stop_bit) return false;  // an earlier request
    // acq_rel: release publishes the requester's earlier writes to whoever sees STOP
    // (task_stop_requested's acquire); acquire: the hook's registration (C1's release).
    // seq_cst (stronger than the acq_rel C2 needs): stop links L2.
  } while (!t->stop_.compare_exchange_weak(v, v | stop_bit | stop_busy_bit,
                                           std::memory_order_seq_cst, std::memory_order_relaxed));
  if (auto* hook = reinterpret_cast<cancel_hook*>(v & ~stop_flag_mask)) {
    // TSan: the registration CAS ran in a post action's internal scope (tsan_scope.hpp
    // step 2); the wait released its hook before suspending (request -> hook edge).
    tsan_acquire(hook);
    hook->cancel(hook);
  }
  // release: our last touch of the hook happens-before the waiter's return (C3's acquire).
  t->stop_.store(stop_bit, std::memory_order_release);
  return true;
}

// L2. seq_cst: the other half of the store-buffering pair with commit_stop_link.
bool has_stop_links(const task* t) noexcept {
  return (t->state_.load(std::memory_order_seq_cst) & task_stop_linked) != 0;
}
}  // namespace

bool task_request_stop(task* t) noexcept {
  if (!stop_one(t)) return false;
  if (__builtin_expect(has_stop_links(t), 0)) stop_linked_children(t);
  return true;
}

bool cancel_register(task* t, cancel_hook* hook) noexcept {
  std::uintptr_t expected = 0;
  // C1. release: publishes the hook (the claim word, the fiber) to the requester's
  // acquire CAS. Failure (STOP set): relaxed, the caller ends its own wait.
  return t->stop_.compare_exchange_strong(expected, reinterpret_cast<std::uintptr_t>(hook),
                                          std::memory_order_release, std::memory_order_relaxed);
}

void cancel_deregister(task* t, cancel_hook* hook) noexcept {
  std::uintptr_t expected = reinterpret_cast<std::uintptr_t>(hook);
  // C3. relaxed on success: nobody else has seen the hook (no request came).
  if (t->stop_.compare_exchange_strong(expected, 0, std::memory_order_relaxed,
                                       std::memory_order_relaxed))
    return;
  // A request took the hook (or STOP was set before we registered): wait until the
  // requester is done with it. acquire: pairs with task_request_stop's release store.
  for (unsigned spins = 0; t->stop_.load(std::memory_order_acquire) & stop_busy_bit; ++spins) {
    if (spins < 64)
      __builtin_ia32_pause();
    else
      sched_yield();
  }
}

task* current_task_ref() noexcept {
  worker* w = current_worker();
  fiber_impl* f = w ? w->current() : nullptr;
  if (!f || !f->current) return nullptr;
  task_add_ref(f->current);  // the running fiber holds the queue's reference
  return f->current;
}

void fls_destroy(task* t) noexcept {
  auto* table = static_cast<fls_table*>(t->fls_);
  if (!table) return;
  for (std::size_t i = table->slots.size(); i-- > 0;)
    if (table->slots[i].first) table->slots[i].second(table->slots[i].first);
  delete table;
  t->fls_ = nullptr;
}

std::size_t fls_new_key() noexcept {
  // relaxed: uniqueness only.
  return fls_keys.fetch_add(1, std::memory_order_relaxed);
}

void* fls_get(std::size_t key, void* (*make)(), void (*destroy)(void*)) {
  task* t = current_task_or_abort("weft::fiber_local used outside a fiber");
  auto* table = static_cast<fls_table*>(t->fls_);
  if (!table) t->fls_ = table = new fls_table;
  if (table->slots.size() <= key) table->slots.resize(key + 1, {nullptr, nullptr});
  auto& slot = table->slots[key];
  if (!slot.first) slot = {make(), destroy};
  return slot.first;
}

}  // namespace detail

unhandled_exception_handler set_unhandled_exception_handler(unhandled_exception_handler h) noexcept {
  // release: publishes whatever the handler relies on; pairs with report_unhandled().
  return detail::unhandled.exchange(h, std::memory_order_acq_rel);
}

namespace this_fiber {
// yield() is defined in worker.cpp, next to worker::yield, which it then inlines (W3).

std::uint64_t id() noexcept {
  detail::worker* w = detail::current_worker();
  detail::fiber_impl* f = w ? w->current() : nullptr;
  return f && f->current ? f->current->id_ : 0;
}

bool in_fiber() noexcept {
  detail::worker* w = detail::current_worker();
  return w && w->current();
}

bool stop_requested() noexcept {
  detail::worker* w = detail::current_worker();
  detail::fiber_impl* f = w ? w->current() : nullptr;
  return f && f->current && detail::task_stop_requested(f->current);
}

std::string_view name() noexcept {
  detail::worker* w = detail::current_worker();
  detail::fiber_impl* f = w ? w->current() : nullptr;
  const char* n = f && f->current ? detail::task_name(f->current) : nullptr;
  return n ? std::string_view(n) : std::string_view();
}

namespace {
// A fiber's sleep: ended by its timer or by a stop request (cancellation C1-C3). Two
// parties publish it in the post-switch action (the timer, the hook), and either may end
// it before the other is published, so the claim word carries a PENDING bit: an ender
// sets its bit (fetch_or) and wakes the fiber only when it was first and PENDING was
// already clear; the post action clears PENDING last and wakes the fiber itself when an
// ender came first. Exactly one wake either way, never before both are published.
struct sleeper : detail::timer_entry, detail::cancel_hook {
  static constexpr std::uint32_t by_timer = 1, by_request = 2, pending = 4;
  detail::fiber_impl* fiber;
  detail::task* owner;                        // the sleeping task (its stop_ word)
  std::atomic<std::uint32_t> ended{pending};  // by_* bits of whoever ended it; PENDING
  // An ender; reads everything it needs before its RMW (after it, the fiber may return).
  static void end(sleeper* sl, std::uint32_t by) noexcept {
    detail::fiber_impl* f = sl->fiber;
    // acq_rel: release orders the ender's writes before the wake it may leave to the
    // post; acquire pairs with the post's release of PENDING.
    const std::uint32_t prev = sl->ended.fetch_or(by, std::memory_order_acq_rel);
    if (prev == 0) detail::wake(f);  // first, and published: ours to wake
  }
};

// Both sleeps. A plain thread sleeps; a fiber suspends on a timer unless check_past and
// the deadline has passed (sleep_for skips that clock read: its deadline is later than
// the read it was computed from).
void sleep_to(clock::time_point deadline, bool check_past) noexcept {
  detail::fiber_impl* self = detail::current_fiber();
  if (!self) {
    if (deadline == clock::time_point::max())
      for (;;) std::this_thread::sleep_for(std::chrono::hours(24));
    std::this_thread::sleep_until(deadline);
    return;
  }
  detail::task* const owner = self->current;
  if (detail::task_stop_requested(owner)) return;  // C1: a stopped fiber does not sleep
  if (check_past && deadline <= clock::now()) return;
  sleeper s;
  s.deadline = deadline;
  s.fiber = self;
  s.owner = owner;
  s.fire = [](detail::timer_entry* e) noexcept { sleeper::end(static_cast<sleeper*>(e), sleeper::by_timer); };
  s.cancel = [](detail::cancel_hook* h) noexcept {  // C2, on the requester's thread
    sleeper::end(static_cast<sleeper*>(h), sleeper::by_request);
  };
  // TSan: the hook and its sleeper to the requester (acquired in task_request_stop).
  detail::tsan_release(static_cast<detail::cancel_hook*>(&s));
  detail::note_wait(self, detail::wait_kind::sleep, nullptr, detail::steady_ns_of(deadline));
  // Armed and registered after the switch (suspend.hpp rule 1): neither the timer nor a
  // request can wake us before we sleep (PENDING holds them off until both are in place).
  detail::suspend_current(
      [](detail::fiber_impl* from, void* arg) noexcept {
        auto* sl = static_cast<sleeper*>(arg);
        sl->warm = from->ctx.fctx;  // saved by now (timers.hpp: timer_entry::warm)
        detail::arm_timer(sl);
        // C1: STOP already set: the request will not come; it is ours to record.
        if (!detail::cancel_register(sl->owner, sl))
          sl->ended.fetch_or(sleeper::by_request, std::memory_order_relaxed);
        // acq_rel: release publishes the registration to a later ender; acquire sees an
        // ender that came first. Our last touch of *sl unless an ender came first.
        if (sl->ended.fetch_and(~sleeper::pending, std::memory_order_acq_rel) != sleeper::pending)
          detail::current_worker()->wake_local(from);
      },
      &s);
  detail::cancel_deregister(owner, &s);  // C3
  // Woken by a request, the timer may fire now, on its worker: the window in which it does
  // (wait_list.hpp's release window, widened by schedule fuzzing).
  detail::release_window(&s, detail::release_point::leaving);
  // acquire: when the timer ended the sleep too, its firer read the entry (its deadline)
  // before its fetch_or; this load pairs with that release so those reads happen before
  // the frame is reused. The wake that resumed us may have been the request's, which
  // orders nothing of the firer's. Not ended by the timer: it may be armed still, or
  // firing, and cancel_timer waits for that under the shard's lock (timers.hpp step 5:
  // after it nobody touches the entry).
  if (!(s.ended.load(std::memory_order_acquire) & sleeper::by_timer)) (void)detail::cancel_timer(&s);
}
}  // namespace

void sleep_until(clock::time_point deadline) noexcept { sleep_to(deadline, true); }
}  // namespace this_fiber

void detail::sleep_until_after_now(clock::time_point deadline) noexcept {
  this_fiber::sleep_to(deadline, false);
}

void* detail::no_suspend_enter() noexcept {
  detail::worker* w = detail::current_worker();
  if (w && w->current()) w->no_suspend_enter();
  else w = nullptr;  // a plain thread, or a worker's scheduler context: nothing to forbid
  return w;
}

void detail::no_suspend_leave(void* w) noexcept {
  if (!w) return;
  // The fiber cannot have moved: any switch inside the scope aborted.
  WEFT_ASSERT(w == detail::current_worker(),
              "this_fiber::no_suspend_scope closed on another thread than it was opened on");
  static_cast<detail::worker*>(w)->no_suspend_leave();
}

namespace this_worker {
int index() noexcept {
  detail::worker* w = detail::current_worker();
  return w ? static_cast<int>(w->index()) : -1;
}
}  // namespace this_worker

}  // namespace weft
