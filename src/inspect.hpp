// src/inspect.hpp - seeing every live fiber of a running scheduler: the fiber registry, the
// pause protocol that holds fibers still while they are read, and what an inspection
// reports (the fiber dump, shutdown's deadline walk). docs/diagnostics.md is the user's side.
//
// Registry. Every fiber record (fiber_impl), from make_fiber to retire_fiber, is on one
// shard's intrusive list, the shard of the worker that built it. Records are built and
// destroyed only on the stack slow paths (a new stack, a purge, exit), never per spawn or
// per switch, so a mutex per shard costs the hot paths nothing. An inspection locks one
// shard at a time; a record cannot be destroyed while its shard is locked.
//
// Pause protocol. A suspended fiber's record (its wait, its saved context, its task) is
// written by whichever worker runs it, with plain stores. To read them, an inspection
// must know that no worker runs the fiber meanwhile. Workers are held at a safe point
// instead of paying a fence per switch:
//   1. The inspector (one at a time: runtime::inspect_mu_) stores a new generation g != 0
//      in runtime::pause_ (seq_cst). It does not unpark anyone: a wake outside the idle
//      protocol (idle.hpp) would be taken for a producer's, and a wake-up lost.
//   2. A worker, at every landing (worker::run_post: right after a switch, before the post
//      action of the fiber that left), stores the context it now runs in running_
//      (release: a plain mov) and then loads pause_ (acquire, also a plain mov on x86;
//      one predictable branch).
//      An idle worker checks pause_ too before it parks.
//   3. A worker that sees g acknowledges: it stores its frame pointer and then g in
//      pause_ack_ (release; pairs with the inspector's acquire, so everything the worker
//      did before is visible), and waits until pause_ changes. Paused there, it runs
//      nothing: the fiber it landed in (running_) has not resumed its own code, and the
//      fiber that left is saved but not yet published to its wakers.
//   4. The inspector waits up to a bound for each live, unparked worker's acknowledgement
//      (a parked worker runs no fiber, and if it wakes its first landing pauses it). A
//      worker that does not come (or is parked) (its fiber computes without a scheduling point, or its thread
//      blocks in a syscall) still cannot run any other fiber: its next landing pauses it.
//      Which fiber it runs now is its running_, provided the inspector reads a store the
//      worker made before its last check of pause_: a StoreLoad pair (worker: store
//      running_, load pause_; inspector: store pause_, load running_). The worker's side
//      pays no fence; the inspector pays for both with membarrier(PRIVATE_EXPEDITED),
//      which runs a full barrier on every thread of the process that is running, between
//      its store of pause_ and its loads of running_ (registered at scheduler start).
//      Without membarrier (an old kernel, a seccomp filter) the inspection still runs;
//      its report says that a computing worker's fiber was read without that guarantee
//      (x86 stores drain in nanoseconds, the bound waited is milliseconds).
//   5. The inspector reads every registered fiber except the ones running on unpaused
//      workers, locking one registry shard at a time, then stores 0 in pause_ (release)
//      and wakes the paused workers. Every later landing's acquire load reads that 0 (or
//      a later generation), so what the inspector read happens before what any worker
//      does to the records next (a parked worker lands before it runs anything). What it read of a task (its id, its name) it copies;
//      a task it will act on later (shutdown's stop request) it retains first.
// Running fibers publish their task id in fiber_impl::current_id (relaxed atomic), the
// one field an inspection reads of a fiber that may run.
// Cost: per switch one release store to a line the worker writes anyway (progress_'s) and
// one load of a read-mostly line; per inspection, each busy worker stops for the walk
// (~1 us per fiber, plus the backtrace and the mincore of each).
// TSan: the inspector runs inside an internal scope (tsan_scope.hpp step 2), as the
// scheduler context does; the tsan-checked build checks it through steps 2-4's atomics.
#pragma once

#include "fiber_impl.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace weft::detail {

class runtime;

class fiber_registry {
public:
  explicit fiber_registry(unsigned shards);
  void add(fiber_impl* f, unsigned shard) noexcept;  // any thread
  void remove(fiber_impl* f) noexcept;               // any thread; f not running
  // fn(f) for every registered fiber, one shard locked at a time.
  template <class Fn>
  void for_each(Fn&& fn) {
    for (unsigned i = 0; i < n_; ++i) {
      std::lock_guard<std::mutex> g(shards_[i].mu);
      for (fiber_impl* f = shards_[i].head; f; f = f->reg_next) fn(f);
    }
  }
  std::size_t size() noexcept;

private:
  struct alignas(64) shard {
    std::mutex mu;
    fiber_impl* head = nullptr;  // guarded by mu
    std::size_t n = 0;           // guarded by mu
  };
  unsigned n_;
  std::unique_ptr<shard[]> shards_;
};

// Spawn times without a clock read per spawn (step 6). Workers take task ids from
// runtime::id_source_ in blocks (worker::spawn_id_block); each block taken is noted here
// with the worker and the time, one clock read per block. ids grow with the time they
// are taken, so a task's spawn lies after its block was noted and before the same worker
// noted its next block (it had used this one up by then). An id taken alone (a spawn from
// outside the workers) lies between the blocks noted around it, to within the few ns
// between a block's fetch_add and its clock read. ids older than the log's oldest block
// get no bound: the worker that took their block may still be using it.
//   6. note(): a ticket n from a counter (relaxed: uniqueness), then slot n % size under a
//      sequence word: odd while written, 2n+2 once written (release, after the fields);
//      the reader copies a slot between two loads of it (acquire, then an acquire fence
//      before the second) and drops a copy whose two loads differ or are odd.
class id_clock {
public:
  static constexpr std::uint64_t block = 4096;  // ids per worker block
  static constexpr std::size_t size = 1024;     // blocks remembered (4 M spawns)
  void note(std::uint64_t start, unsigned worker) noexcept;
  struct entry {
    std::uint64_t start;
    unsigned worker;
    std::int64_t at;  // steady ns
  };
  std::vector<entry> snapshot() const;  // sorted by start
  // Bounds on how long ago task `id` was spawned, as of `now` (steady ns), from a
  // snapshot: lo (at least) and hi (at most), -1 when unknown.
  static void age(const std::vector<entry>& log, std::uint64_t id, std::int64_t now,
                  std::int64_t& lo, std::int64_t& hi) noexcept;

private:
  struct slot {
    std::atomic<std::uint64_t> seq{0}, start{0};
    std::atomic<std::int64_t> at{0};
    std::atomic<unsigned> worker{0};
  };
  std::atomic<std::uint64_t> n_{0};
  slot slots_[size];
};

// What an inspection saw of one fiber.
struct fiber_view {
  enum class state : std::uint8_t {
    running,   // on an unpaused worker: it computes (or its thread blocks in a syscall)
    resuming,  // landed on a paused worker: its wait ended, its code resumes next
    runnable,  // queued: woken, yielded, or a new task about to start
    waiting,   // suspended in a wait (kind, obj, deadline)
  };
  std::uint64_t id = 0;  // its task's id (0: unknown)
  std::string name;      // spawn_options::name ("" when none, or unknown for a running one)
  state st = state::waiting;
  int worker = -1;       // running / resuming: the worker
  wait_kind kind = wait_kind::none;
  const void* obj = nullptr;
  std::uint64_t join_id = 0;      // kind join: the joined task's id
  std::int64_t deadline = 0;      // steady ns, 0: none
  std::int64_t waiting_ns = -1;   // how long in this wait, as far as inspections saw; -1:
                                  // first seen now
  std::int64_t age_lo_ns = -1;    // spawned at least / at most this long ago (step 6);
  std::int64_t age_hi_ns = -1;    // -1: unknown
  std::size_t stack_size = 0;     // usable bytes
  std::size_t stack_in_use = 0;   // below the saved stack pointer (0: running)
  std::size_t stack_touched = 0;  // resident bytes of the stack (high-water mark, pages)
  bool woken = false;             // waiting kind, but its wait was claimed: queued to run
  std::vector<void*> frames;      // return addresses, innermost first (frame-pointer walk)
  task* retained = nullptr;       // inspect_flags::retain_tasks: a reference to release
  const task* self = nullptr;     // its task, as a key only (never dereferenced later)
  std::uintptr_t holder = 0;      // kind mutex: the holder's caller token (a task*, or
                                  // odd for a plain thread), 0 when free
};

struct inspection {
  std::int64_t at = 0;                 // steady ns
  std::vector<fiber_view> fibers;      // live fibers (with a task), by id
  std::size_t idle_fibers = 0;         // pooled fibers with no task
  std::vector<unsigned> unpaused;      // workers that did not reach a safe point
  std::int64_t paused_ns = 0;          // how long the workers were held
  bool fenced = true;                  // membarrier ran (step 4)
};

enum inspect_flags : unsigned {
  inspect_backtraces = 1,   // frames and touched stack bytes
  inspect_retain = 2,       // retain the task of each waiting/runnable fiber
};

// Steps 1-5. Any thread except one of rt's workers' scheduler contexts; from one of rt's
// fibers its own worker is not waited for (it runs the inspection).
inspection inspect(runtime& rt, unsigned flags, std::int64_t ack_wait_ns);
// Frees what inspect_retain kept.
void release_retained(inspection& in) noexcept;
// The fiber dump's text (docs/diagnostics.md).
void write_dump(std::FILE* out, const inspection& in, const char* title);
// The deadlock report (WEFT_DEADLOCK_MS, docs/diagnostics.md): inspects rt and, when every
// fiber waits without a deadline on a weft primitive (none runnable, running, asleep, on
// an fd or in run_blocking), prints the wait-for picture with the cycles it finds and
// returns true. `blocked_ns`: how long nothing has moved, for the report.
bool report_deadlock(runtime& rt, std::int64_t blocked_ns) noexcept;

// WEFT_DUMP_SIGNAL (docs/diagnostics.md): when set, rt joins the runtimes a dump signal
// dumps to stderr; the first one installs the handler and starts the dumping thread.
// dump_signal_leave: before rt is torn down (waits for a dump of it in progress).
void dump_signal_join(runtime& rt) noexcept;
void dump_signal_leave(runtime& rt) noexcept;
// Registers this process for membarrier(PRIVATE_EXPEDITED); false when unavailable.
bool membarrier_register() noexcept;
// Step 4's barrier; false when it could not run.
bool membarrier_all() noexcept;

}  // namespace weft::detail
