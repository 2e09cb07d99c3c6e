// bench/micro_bench.cpp - google-benchmark micro benchmarks (weft_micro_bench): the raw
// fcontext switch, weft spawn+join and yield, and std::thread for the baseline.
//
// The weft loops run inside a fiber (the benchmark's `for (auto _ : state)` is driven from
// sched.block_on), so they use real time: a fiber may resume on another worker after a
// join, and a per-thread CPU clock would then mix two threads. The comparable whole-program
// figures are weft_tour's; these are for quick A/B checks of one code path.
// Benchmark workloads cited here (W3): docs/benchmarks.md.
#include <benchmark/benchmark.h>
#include <boost/context/detail/fcontext.hpp>

#if __has_include(<weft/weft.hpp>)
#include <weft/weft.hpp>
#else
#include <weft/fiber.hpp>
#include <weft/scheduler.hpp>
#endif

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

namespace {

namespace bcd = boost::context::detail;

// ---- raw fcontext: the floor under every fiber switch ----------------------------------

void bounce(bcd::transfer_t t) {
  for (;;) t = bcd::jump_fcontext(t.fctx, nullptr);
}

// One iteration is a round trip: two one-direction switches.
void fcontext_round_trip(benchmark::State& state) {
  constexpr std::size_t kStack = 64 * 1024;
  void* stack = mmap(nullptr, kStack, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) {
    state.SkipWithError("mmap failed");
    return;
  }
  bcd::fcontext_t partner = bcd::make_fcontext(static_cast<char*>(stack) + kStack, kStack, bounce);
  partner = bcd::jump_fcontext(partner, nullptr).fctx;
  for (auto _ : state) partner = bcd::jump_fcontext(partner, nullptr).fctx;
  state.SetItemsProcessed(2 * state.iterations());  // items: switches
  munmap(stack, kStack);  // `bounce` never returns and owns nothing
}
BENCHMARK(fcontext_round_trip);

// ---- weft ---------------------------------------------------------------------------------

weft::scheduler::options workers(const benchmark::State& state) {
  weft::scheduler::options opts;
  opts.workers = static_cast<unsigned>(state.range(0));
  return opts;
}

// Worker counts 1, 2, 4, ... up to the hardware's.
void worker_sweep(benchmark::internal::Benchmark* b) {
  const unsigned cpus = std::max(1u, std::thread::hardware_concurrency());
  for (unsigned n = 1; n < cpus; n *= 2) b->Arg(n);
  b->Arg(cpus);
}

// spawn + join of an empty fiber, from a fiber.
void weft_spawn_join(benchmark::State& state) {
  weft::scheduler sched(workers(state));
  sched.block_on([&state] {
    for (auto _ : state) weft::spawn([] {}).join();
  });
}
BENCHMARK(weft_spawn_join)->Apply(worker_sweep)->UseRealTime();

// spawn + join from a plain thread (the injection path plus a thread wake-up).
void weft_spawn_join_outside(benchmark::State& state) {
  weft::scheduler sched(workers(state));
  for (auto _ : state) sched.spawn([] {}).join();
}
BENCHMARK(weft_spawn_join_outside)->Apply(worker_sweep)->UseRealTime();

// yield between two fibers on one worker; one iteration is two switches.
void weft_yield(benchmark::State& state) {
  weft::scheduler::options opts;
  opts.workers = 1;
  weft::scheduler sched(opts);
  sched.block_on([&state] {
    // relaxed: one worker runs both fibers, so program order already orders them.
    std::atomic<bool> stop{false};
    auto partner = weft::spawn([&stop] {
      while (!stop.load(std::memory_order_relaxed)) weft::this_fiber::yield();
    });
    for (auto _ : state) weft::this_fiber::yield();
    stop.store(true, std::memory_order_relaxed);
    partner.join();
  });
  state.SetItemsProcessed(2 * state.iterations());  // items: switches
}
BENCHMARK(weft_yield)->UseRealTime();

// yield around a ring of N fibers on one worker (the run queue, 256 slots, holds the
// other N - 1; more would spill into the injection queue): the per-switch cost of the
// solo pop path with a long queue, which W3's two fibers never reach (warm_fiber must
// stay off for fibers that only yielded: worker.cpp).
void weft_yield_ring(benchmark::State& state) {
  const auto n = static_cast<int>(state.range(0));
  weft::scheduler::options opts;
  opts.workers = 1;
  weft::scheduler sched(opts);
  sched.block_on([&state, n] {
    // relaxed: one worker runs every fiber, so program order already orders them.
    std::atomic<bool> stop{false};
    std::vector<weft::join_handle<void>> ring;
    for (int i = 1; i < n; ++i)
      ring.push_back(weft::spawn([&stop] {
        while (!stop.load(std::memory_order_relaxed)) weft::this_fiber::yield();
      }));
    for (auto _ : state) weft::this_fiber::yield();
    stop.store(true, std::memory_order_relaxed);
    for (auto& h : ring) h.join();
  });
  state.SetItemsProcessed(static_cast<std::int64_t>(n) * state.iterations());  // switches
}
BENCHMARK(weft_yield_ring)->Arg(100)->Arg(200)->UseRealTime();

// ---- std::thread baseline -----------------------------------------------------------------

void thread_spawn_join(benchmark::State& state) {
  for (auto _ : state) std::thread([] {}).join();
}
BENCHMARK(thread_spawn_join)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
