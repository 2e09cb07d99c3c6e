// bench/tour/tour.hpp - the benchmark tour's shared parts: the workloads, the interface
// each runtime (peer) implements, timing, verification and the RESULT line.
//
// Workload definitions and the output format follow the project's benchmark definitions
// (docs/benchmarks.md: W1-W11, one RESULT line per peer and workload, printed by
// bench/result.hpp):
//   RESULT <peer> <workload> <param> <median> <unit> min=<min> max=<max> reps=<n> [key=value ...]
// The harness (main.cpp) starts a peer's runtime once per (workload, worker count), runs
// the repetitions on it, and stops it; a peer times only the workload itself, so runtime
// start-up and tear-down are never in a figure.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace tour {

enum class workload { spawn_join, skynet, yield_pingpong, fib, idle, churn_spawn_park, churn_wake_finish };

// Static description of a workload: spec id, name, unit of its figure, and whether it is
// swept over worker counts (otherwise it runs at the count the spec fixes).
struct workload_info {
  workload id;
  const char* spec_id;  // "W1"
  const char* name;     // "spawn_join"
  const char* unit;     // "ns/fiber"
  bool scales;          // run at 1 .. all workers, speedup printed
};
const workload_info& info(workload w);

// Problem sizes of one tour run. --quick divides each by ten (fib: n - 5, ~11x fewer spawns).
struct sizes {
  std::size_t spawn_join_n = 1'000'000;      // W1 fibers
  std::int64_t skynet_leaves = 1'000'000;    // W2 leaves; a power of ten
  std::size_t yields_per_fiber = 5'000'000;  // W3, two fibers
  int fib_n = 30;                            // W5
  std::chrono::milliseconds idle_for{2000};  // W9
  std::size_t churn_n = 100'000;             // W11 fibers parked at once (--churn-n)
};
sizes quick(sizes s);

// One runtime under test. All calls come from the tour's main thread, in the order
// start(w), any number of workload calls, stop(). A workload call runs one repetition and
// returns its figure in the workload's unit; it verifies its result and calls fail() when
// it is wrong.
class peer {
public:
  virtual ~peer() = default;
  // Name in RESULT lines ("weft", "boost_fiber", ...).
  virtual const char* name() const noexcept = 0;
  // One line on how this peer is set up (version, scheduling policy, stacks).
  virtual std::string describe() const = 0;
  virtual bool supports(workload w) const noexcept = 0;
  // Starts the runtime with `workers` workers; not timed.
  virtual void start(unsigned workers) = 0;
  virtual void stop() = 0;
  // Extra RESULT fields for w at these sizes, space-separated key=value ("n=100000
  // launch=post"); empty for none.
  virtual std::string extra(workload w, const sizes& s) const;
  // How many times more work the requested size is than what this peer actually runs for
  // w (a peer may run a smaller problem and say so in extra()); 1 when it runs the size
  // asked. The table scales time figures by it before taking the ratio to weft.
  virtual double work_factor(workload w, const sizes& s) const;

  virtual double spawn_join(std::size_t n);           // ns per fiber
  virtual double skynet(std::int64_t leaves);         // ms wall
  virtual double yield_pingpong(std::size_t yields);  // ns per switch
  virtual double fib(int n);                          // ms wall
  virtual double idle(std::chrono::milliseconds d);   // CPU ms consumed
  // W11: n fibers spawned, each parks on one event; once all wait, the event is set and
  // all finish. Returns the ms of the spawn+park phase, or of the wake+finish phase.
  virtual double churn(std::size_t n, bool wake_finish);
};

std::unique_ptr<peer> make_weft_peer();
#ifdef WEFT_TOUR_HAVE_BOOST_FIBER
// Uses all_workers threads for the whole process (Boost.Fiber's work_stealing can be set
// up only once per process); see peer_boost_fiber.cpp.
std::unique_ptr<peer> make_boost_fiber_peer(unsigned all_workers);
#endif
#ifdef WEFT_TOUR_HAVE_TBB
std::unique_ptr<peer> make_tbb_peer();
#endif
std::unique_ptr<peer> make_fcontext_floor();

// ---- helpers ------------------------------------------------------------------------

using clock = std::chrono::steady_clock;

inline double ns_since(clock::time_point t0) {
  return std::chrono::duration<double, std::nano>(clock::now() - t0).count();
}
inline double ms_since(clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(clock::now() - t0).count();
}

// User + system CPU time of the whole process so far, in ms (getrusage(RUSAGE_SELF)).
double process_cpu_ms();

// Prints "weft_tour: <what>" on stderr and aborts: a workload computed a wrong result.
[[noreturn]] void fail(const std::string& what);

// Expected skynet total: the sum of the leaf ordinals 0 .. leaves-1.
constexpr std::int64_t skynet_total(std::int64_t leaves) { return leaves * (leaves - 1) / 2; }
// fib(n) computed iteratively, to check the fork-join result.
std::int64_t fib_value(int n);
// Spawns made by W2 over `leaves` leaves (every node but the root) and by W5 for fib(n).
constexpr std::int64_t skynet_spawns(std::int64_t leaves) { return (10 * leaves - 10) / 9; }
inline std::int64_t fib_spawns(int n) { return n < 2 ? 0 : fib_value(n + 1) - 1; }

// Checks a workload result; fail()s with the workload name and both values when wrong.
void verify(const char* what, std::int64_t got, std::int64_t want);

struct summary {
  double median = 0, min = 0, max = 0;
  int reps = 0;
};
summary summarize(std::vector<double> samples);

}  // namespace tour
