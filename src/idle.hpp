// src/idle.hpp - which workers are searching or parked, and whom to wake.
//
// Lost-wakeup protocol ("idle handshake"). Names: a worker is *searching* while it looks
// for work outside its own queues (steals, injection queue) and *parked* while it sleeps
// in its parker. state_ packs (unparked << 32 | searching).
//
//   Producer (anything that makes work visible to other workers: a push to a local ring
//   that was empty, a spill or outside spawn into the injection queue, a remote wake):
//     P1. publish the item (ring tail store-release / queue enqueue + count increment);
//     P2. atomic_thread_fence(seq_cst);
//     P3. notify_one(): load state_; if some worker is searching, or none is parked, stop:
//         the searcher will find the item (see C1..C3 for why it cannot miss it);
//     P4. otherwise, under lock_, pop a sleeper, count it as unparked *and searching*
//         (so concurrent producers do not wake a second worker for the same item), unpark.
//
//   Worker that found nothing while searching:
//     C1. announce_park(): under lock_, push itself on sleepers_, decrement unparked and,
//         if it was searching, searching (seq_cst RMW);
//     C2. atomic_thread_fence(seq_cst);
//     C3. re-check *every* source: own ring, own remote queue count, injection count, every
//         peer's ring and remote count. Work seen -> cancel_park(): if still on sleepers_,
//         remove itself and count itself unparked+searching again; if not, a producer
//         already popped it and counted it (P4), and its unpark token is pending, so the
//         next park() returns at once. Either way it goes back to searching.
//     C4. nothing seen -> parker.park().
//
//   Why nothing is lost: P2 and C2 are seq_cst fences ordering P1 before P3 and C1 before
//   C3. If P3 reads state_ before C1's update, the fences order P1 before C3, so C3 sees
//   the item. If P3 reads it after, P3 sees a parked worker: it wakes one unless another
//   worker is searching; that searcher, when it gives up, runs C1..C3 after P3 and so sees
//   the item. A searcher that *finds* work and was the last searcher calls notify_one()
//   itself, so a burst of work ramps up one worker at a time (Go's wakep, Tokio's
//   transition_worker_from_searching).
//
//   moodycamel queues are not linearizable: an empty try_dequeue never justifies parking.
//   Queue *counts* (incremented after enqueue, decremented after dequeue) are what C3
//   reads.
//
// The watcher (worker.hpp, work conservation). P1-P4 cover work a producer announces. A
// busy worker's runnext_ and private_ are filled without any announcement, and a yield
// requeues without one; none of that is visible to C3, and a parked worker cannot look
// for it. So one sleeper at a time watches:
//   W1. A worker that found nothing at C3 claims the watch (watcher_: CAS -1 -> itself,
//       seq_cst) if some worker is working: unparked and not searching (state_, seq_cst,
//       read after its own C1; a searcher holds nothing: it found its own queues empty).
//       The watcher parks with a timeout (worker.hpp work conservation 3: 50 us to 1 ms,
//       or its timer deadline if sooner); every other sleeper parks as before.
//   W2. On each timeout the watcher looks: C3's sources again, every worker's earliest
//       timer, and every peer (worker::look_at: a peer whose running fiber strands its
//       runnext_ or private_). Any of these: it leaves the sleeper list (cancel_park, as
//       C3) and searches; its search takes the item. Otherwise it parks again (W1).
//   W3. The watcher gives the watch up (watcher_ = -1) whenever it wakes: unparked by a
//       producer, timed out (it re-claims at W1 if it stays), or leaving.
//   W4. Why some worker always watches while one works and another is parked: a worker
//       starts working only as a searcher that found work (a parked one wakes as a
//       searcher: P4, cancel_park, a timed park ending). A searcher either parks (W1: it
//       claims the watch if somebody works and nobody holds it; if somebody does, that
//       one watches) or finds work and stops searching; the last searcher to stop runs
//       notify_one (above), which unparks a sleeper whenever nobody else searches, and
//       that sleeper searches in turn. The watcher leaving (W3) is itself a searcher. So
//       from every state with a working worker and a sleeper, a searcher exists or a
//       watcher sleeps; a claim that fails means another holds the watch. A searcher or
//       a parked worker hides nothing (it found runnext_ and private_ empty: next_local),
//       so while nobody works, nobody watches (no timed wakes while the runtime idles
//       between outside spawns: the wake-up stress's latency stays as it was).
//
// Rejected: one condition variable for all workers (thundering herd, a global lock on the
// producer fast path); waking on every push (a 45 µs futex round trip per spawn on this VM).
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

namespace weft::detail {

class idle {
public:
  explicit idle(unsigned workers);

  // P2-P4. Returns the index of the worker to unpark, or -1. `preferred` (or -1) is woken
  // when it is among the sleepers (a remote wake's home worker). Any thread.
  int notify_one(int preferred) noexcept;
  // A worker tries to start searching; refused when half the unparked workers already
  // search (Go's limit: spinning threads waste CPU past that point).
  bool try_enter_searching() noexcept;
  // A searcher that found work stops searching. True when it was the last searcher: the
  // caller must then notify_one() so that remaining work gets a searcher.
  bool leave_searching() noexcept;
  // C1.
  void announce_park(unsigned worker, bool searching) noexcept;
  // C3 found work: true when the worker removed itself from sleepers_ (counted
  // unparked+searching again); false when a producer already popped it (token pending).
  bool cancel_park(unsigned worker) noexcept;
  // W1: true when `worker` (parked, C1 done) now holds the watch: some worker is awake
  // and nobody else held it.
  bool try_claim_watch(unsigned worker) noexcept;
  // W3: gives the watch up, if `worker` holds it.
  void release_watch(unsigned worker) noexcept;
  // Removes and returns every sleeper (shutdown).
  std::vector<unsigned> take_all_sleepers() noexcept;
  // Some worker is searching or parked. relaxed: a hint for publishing private spawns
  // early; correctness never depends on it.
  bool has_idle() const noexcept {
    return state_.load(std::memory_order_relaxed) != (std::uint64_t{workers_} << 32);
  }
  // Workers parked or about to park (announced, C1). seq_cst: reactor.hpp step 4 reads it
  // after its own seq_cst store and relies on seeing any C1 ordered before that.
  unsigned parked() const noexcept {
    return workers_ - static_cast<unsigned>(state_.load(std::memory_order_seq_cst) >> 32);
  }
  unsigned searching() const noexcept {
    return static_cast<unsigned>(state_.load(std::memory_order_relaxed) & 0xffffffffu);
  }

private:
  static constexpr std::uint64_t one_searching = 1;
  static constexpr std::uint64_t one_unparked = std::uint64_t{1} << 32;
  const unsigned workers_;
  // (unparked << 32 | searching). Modified with seq_cst RMWs (C1, P4) so that the fences
  // in the protocol above order them against queue publication.
  alignas(64) std::atomic<std::uint64_t> state_;
  // The watcher's index, or -1 (W1-W3). Touched only by parking and waking workers.
  alignas(64) std::atomic<int> watcher_{-1};
  alignas(64) std::mutex lock_;
  std::vector<unsigned> sleepers_;  // guarded by lock_
};

}  // namespace weft::detail
