// src/sched_fuzz.hpp - seeded schedule fuzzing: a mode, off by default, in which the
// scheduler makes its free choices at random from a seed, so that a test suite run under
// several seeds explores interleavings that the default (FIFO, runnext, local-first) policy
// never produces, and a failure found with one seed can be replayed with the same seed.
//
// On with scheduler::options::schedule_seed != 0 or WEFT_SCHED_SEED=<n> in the environment
// (WEFT_SCHED_SEED=random picks a seed; the option wins over the variable). The seed is
// printed on stderr when the scheduler starts and again by every weft contract violation.
//
// What it randomizes (each a choice the runtime is free to make; none may break a promise
// the API makes, so a program correct under the default policy stays correct here):
//   1. Which runnable fiber runs next (worker::next_local): the next-to-run slot is skipped
//      at random, and a popped item is sent to the back of the local queue at random (a
//      random rotation of the FIFO).
//   2. Injected yields (fuzz_point()): at spawn; after the calls that wake (event::set,
//      notify_one/all, counting_semaphore::release, the wait_group done that reaches
//      zero); on entry to send, recv, event and semaphore waits and a contended lock.
//      The calling fiber yields first at random, so the party it hands to may run before
//      it goes on. mutex::unlock does not yield: condition_variable and barrier call it
//      with an internal spinlock held.
//   3. Steal victims: the order in which a searching worker visits its peers.
//   4. Forced migration at suspension points: a yielding or woken fiber is queued at random
//      on another worker (its remote queue) instead of its own, so a thread_local cached
//      across a suspension point shows up as a wrong value.
//   5. Timer order: each timer's deadline is pushed later by a random amount below
//      timer_jitter_ns (never earlier: a sleep still never ends before its deadline), which
//      reorders timers whose deadlines lie within that tolerance of each other.
//   6. Mutex hand-off: whether mutex::unlock hands the lock to the first waiter (instead
//      of waking it to retry) is a draw, one in four, where the default policy asks the
//      clock whether that waiter has starved for 1 ms. Both are valid; the clock would
//      make the schedule depend on how fast the machine runs (the one clock dependence
//      found on the one-worker replay path; a replay under ASan on a loaded machine once
//      diverged about one run in four, not reproduced since, with or without this).
//   7. A waker that lingers: after a wake that queued the fiber on another worker
//      (choice 4), the waker waits, one time in four, until that worker has taken and run
//      something (at most linger_ns), as if the OS had preempted it right after the wake.
//      A release that touches its object after the wake (a lifetime bug: the woken fiber
//      may destroy the object the moment its wait returns) is then caught in the act.
//   8. Release windows: the points where a releasing call has just let a waiter go
//      (wait_list.hpp's release_window: published, woken) and where a timed-out waiter
//      is about to leave a queue (leaving). There the calling worker spins, one time in
//      eight, for a random time below linger_ns, so that the released waiter can return
//      and destroy the object first. This uses the release-window test hook while no test
//      has installed its own, so it costs nothing when fuzzing is off.
// Replay: every choice comes from the worker's own generator, seeded from (seed, worker
// index). With one worker, and a program whose behaviour does not depend on wall-clock
// time, I/O or outside threads, the same seed therefore replays the same schedule. With
// several workers the seed still selects the choices each worker makes, but the OS decides
// how the workers interleave: rerun a failure's seed a few times (and on one worker).
#pragma once

#include <cstdint>

namespace weft::detail {

// How much later than its deadline a timer may fire under fuzzing (choice 5).
inline constexpr std::int64_t timer_jitter_ns = 200'000;
// The longest a waker lingers after a cross-worker wake (choice 7).
inline constexpr std::int64_t linger_ns = 200'000;

// The seed of the most recently started fuzzing scheduler (0: none), for failure reports.
// relaxed: a diagnostic only.
std::uint64_t last_schedule_seed() noexcept;
void note_schedule_seed(std::uint64_t seed) noexcept;
// options::schedule_seed, else WEFT_SCHED_SEED, else 0 (off). Prints the seed when on.
std::uint64_t resolve_schedule_seed(std::uint64_t option) noexcept;

// A worker's generator (xorshift64*: small, fast, good enough to pick branches). Owner
// thread only. on() is false when fuzzing is off, and then nothing else is called.
class sched_fuzz {
public:
  sched_fuzz(std::uint64_t seed, unsigned worker_index) noexcept
      : on_(seed != 0), state_(mix(seed, worker_index)) {}

  bool on() const noexcept { return on_; }
  std::uint64_t next() noexcept {
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    return state_ * 0x2545f4914f6cdd1dull;
  }
  // True with probability 1/n.
  bool one_in(unsigned n) noexcept { return next() % n == 0; }
  // Uniform in [0, n); n > 0.
  std::uint64_t below(std::uint64_t n) noexcept { return next() % n; }

private:
  static std::uint64_t mix(std::uint64_t seed, unsigned index) noexcept {
    std::uint64_t z = seed + 0x9e3779b97f4a7c15ull * (index + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return z ? z : 0x9e3779b97f4a7c15ull;  // xorshift's state must not be 0
  }

  bool on_;
  std::uint64_t state_;
};

// Choice 2: from a fiber of a fuzzing runtime, yields first with some probability.
// Anywhere else (plain thread, scheduler context, fuzzing off) it does nothing. Call it
// only where the caller holds no spinlock and may suspend.
void fuzz_point() noexcept;

// Choice 6: on a worker of a fuzzing runtime, true with probability 1/n (a draw of that
// worker's generator); elsewhere (plain thread, fuzzing off) -1: the caller decides as
// it would without fuzzing. Never yields; may be called with a spinlock held.
int fuzz_one_in(unsigned n) noexcept;

// Choice 8: held by each fuzzing runtime (a member, so a throwing constructor drops it).
// While at least one is held, the release-window hook is the fuzzer's, unless a test
// installed its own first (the test's wins; the fuzzer's is removed only if still there).
class fuzz_windows_ref {
public:
  explicit fuzz_windows_ref(bool on) noexcept;
  ~fuzz_windows_ref();
  fuzz_windows_ref(const fuzz_windows_ref&) = delete;
  fuzz_windows_ref& operator=(const fuzz_windows_ref&) = delete;

private:
  bool on_;
};

}  // namespace weft::detail
