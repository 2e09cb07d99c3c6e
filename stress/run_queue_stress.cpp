// Stress for src/run_queue.hpp: the owner pushes items 1..count (popping in
// phases, spilling when full) while two stealers steal into their own queues and drain
// them; every item must be accounted for exactly once. Runs run_queue<4> and
// run_queue<256>. Items = 1M x WEFT_STRESS_SCALE (default 1), x 0.05 under TSan,
// where yield points are also randomized. A watchdog prints the state and
// aborts after 60 s, so a lost item or livelock fails instead of hanging.
#include "run_queue.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WEFT_STRESS_TSAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__) && !defined(WEFT_STRESS_TSAN)
#define WEFT_STRESS_TSAN 1
#endif

namespace {

using weft::detail::run_queue;
using item = std::uintptr_t;
using clock_type = std::chrono::steady_clock;

#ifdef WEFT_STRESS_TSAN
constexpr double sanitizer_scale = 0.05;
constexpr bool random_yields = true;  // as Go: randomizeScheduler = raceenabled
#else
constexpr double sanitizer_scale = 1.0;
constexpr bool random_yields = false;
#endif

// Progress counters, read by the watchdog. relaxed everywhere: statistics only.
struct progress {
  std::atomic<std::size_t> capacity{0};
  std::atomic<std::size_t> pushed{0};
  std::atomic<std::size_t> owner_popped{0};
  std::atomic<std::size_t> spilled{0};
  std::atomic<std::size_t> stolen{0};
  std::atomic<std::size_t> steals{0};
  std::atomic<std::size_t> queue_size{0};
  std::atomic<bool> finished{false};
};
progress state;

void maybe_yield(std::uint64_t& rng) {
  if (!random_yields) return;
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;  // xorshift64
  if (rng % 8 == 0) std::this_thread::yield();
}

void watchdog() {
  const auto deadline = clock_type::now() + std::chrono::seconds(60);
  while (!state.finished.load(std::memory_order_acquire)) {  // pairs with release in main
    if (clock_type::now() > deadline) {
      std::fprintf(stderr,
                   "run_queue_stress: watchdog fired after 60 s: run_queue<%zu> pushed=%zu "
                   "owner_popped=%zu spilled=%zu stolen=%zu steals=%zu queue_size=%zu\n",
                   state.capacity.load(std::memory_order_relaxed),
                   state.pushed.load(std::memory_order_relaxed),
                   state.owner_popped.load(std::memory_order_relaxed),
                   state.spilled.load(std::memory_order_relaxed),
                   state.stolen.load(std::memory_order_relaxed),
                   state.steals.load(std::memory_order_relaxed),
                   state.queue_size.load(std::memory_order_relaxed));
      std::abort();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

template <std::size_t N>
bool run_scenario(std::size_t count) {
  constexpr auto relaxed = std::memory_order_relaxed;  // statistics only
  const auto start = clock_type::now();
  state.capacity.store(N, relaxed);
  for (auto* c : {&state.pushed, &state.owner_popped, &state.spilled, &state.stolen, &state.steals})
    c->store(0, relaxed);

  run_queue<N> q;
  auto seen = std::make_unique<std::atomic<unsigned>[]>(count + 1);  // zeroed
  auto mark = [&](item x) { seen[x].fetch_add(1, relaxed); };
  std::mutex spilled_mu;
  std::vector<item> spilled;  // guarded by spilled_mu
  std::atomic<bool> owner_done{false};
  std::atomic<int> ready{0};  // stealers running; the owner waits for both

  auto stealer = [&](std::uint64_t rng) {
    run_queue<N> own;
    std::size_t moved = 0;
    ready.fetch_add(1, std::memory_order_relaxed);  // relaxed: a start signal, publishes nothing
    for (;;) {
      // acquire: pairs with the owner's release store; after it q only shrinks.
      const bool last_round = owner_done.load(std::memory_order_acquire);
      const item x = q.steal_into(own, moved);
      if (x != 0) {
        mark(x);
        state.stolen.fetch_add(moved, relaxed);
        state.steals.fetch_add(1, relaxed);
      }
      maybe_yield(rng);
      while (item y = own.pop()) mark(y);
      if (x == 0 && last_round) return;
      if (x == 0) std::this_thread::yield();
    }
  };
  std::thread s1(stealer, 0x9e3779b97f4a7c15u), s2(stealer, 0xd1b54a32d192ed03u);

  std::uint64_t rng = 0x2545f4914f6cdd1du;
  while (ready.load(std::memory_order_relaxed) < 2) std::this_thread::yield();  // see fetch_add
  item spill[N / 2 + 1];
  for (item i = 1; i <= count; ++i) {
    if (const std::size_t n = q.push(i, spill)) {
      std::lock_guard<std::mutex> lock(spilled_mu);
      spilled.insert(spilled.end(), spill, spill + n);
      state.spilled.fetch_add(n, relaxed);
    }
    // Alternate 1024-item phases: pop 1 per 3 pushes (fills up, spills), then 2 per push
    // (near empty, so pop and steal race for the same last items).
    const int pops = (i / 1024) % 2 == 0 ? (i % 3 == 0 ? 1 : 0) : 2;
    for (int k = 0; k < pops; ++k)
      if (item x = q.pop()) mark(x), state.owner_popped.fetch_add(1, relaxed);
    if (i % 1024 == 0) state.pushed.store(i, relaxed), state.queue_size.store(q.size(), relaxed);
    maybe_yield(rng);
  }
  while (item x = q.pop()) mark(x), state.owner_popped.fetch_add(1, relaxed);
  state.pushed.store(count, relaxed);
  owner_done.store(true, std::memory_order_release);
  s1.join();
  s2.join();

  for (item x : spilled) mark(x);
  std::size_t bad = 0;
  for (std::size_t i = 1; i <= count; ++i) {
    const unsigned n = seen[i].load(relaxed);
    if (n != 1 && bad++ < 10) std::fprintf(stderr, "  item %zu seen %u times\n", i, n);
  }
  const double ms =
      std::chrono::duration<double, std::milli>(clock_type::now() - start).count();
  std::printf("run_queue<%zu>: %zu items, owner popped %zu, spilled %zu, stolen %zu in %zu steals,"
              " %zu wrong, %.0f ms\n",
              N, count, state.owner_popped.load(relaxed), state.spilled.load(relaxed),
              state.stolen.load(relaxed), state.steals.load(relaxed), bad, ms);
  return bad == 0 && q.empty();
}

}  // namespace

int main() {
  double scale = 1.0;
  if (const char* env = std::getenv("WEFT_STRESS_SCALE")) scale = std::atof(env);
  if (!(scale > 0)) scale = 1.0;
  const auto count = static_cast<std::size_t>(1'000'000 * scale * sanitizer_scale);
  const std::size_t items = count > 0 ? count : 1;

  std::thread dog(watchdog);
  const bool small_ok = run_scenario<4>(items);  // run both even if the first fails
  const bool ok = run_scenario<256>(items) && small_ok;
  state.finished.store(true, std::memory_order_release);  // pairs with acquire in watchdog()
  dog.join();
  std::printf(ok ? "1 passed, 0 failed\n" : "0 passed, 1 failed\n");
  return ok ? 0 : 1;
}
