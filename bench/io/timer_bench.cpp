// bench/io/timer_bench.cpp - does the timer structure stay cheap at 100K+ pending timers
// (docs/benchmarks.md, timers)? One worker's timer shard (src/timers.hpp) driven
// directly, no fibers.
// N timers with deadlines spread over 10 s are armed, half are cancelled (timeouts whose
// wait completed first), and the rest are fired by stepping a synthetic clock 1 ms at a
// time (10,100 polls, most of them firing a few timers).
//
//   weft_timer_bench [--timers 100000] [--reps 5]
// Prints three RESULT lines (bench/result.hpp), median, min and max over the repetitions:
//   RESULT weft timers_arm n=<N> <ns> ns/arm min=.. max=.. reps=..
//   RESULT weft timers_cancel n=<N> <ns> ns/cancel ...
//   RESULT weft timers_fire n=<N> <ns> ns/timer ...     (per fired timer)
#include "timers.hpp"

#include "../result.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

namespace {
using weft::detail::timer_entry;
using weft::detail::timer_shard;
void nop(timer_entry*) noexcept {}
// Median v[n/2], min and max of the repetitions.
weft_bench::spread summarize(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v[v.size() / 2], v.front(), v.back(), static_cast<int>(v.size())};
}
}  // namespace

int main(int argc, char** argv) {
  int n = 100000, reps = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--timers") n = std::atoi(argv[i + 1]);
    if (k == "--reps") reps = std::atoi(argv[i + 1]);
  }
  std::vector<timer_entry> es(static_cast<std::size_t>(n));
  std::mt19937_64 rng(1);
  std::vector<double> arm, cancel, fire;
  auto ns = [](auto a, auto b) { return std::chrono::duration<double, std::nano>(b - a).count(); };
  for (int rep = 0; rep < reps; ++rep) {
    timer_shard s;
    const auto now = std::chrono::steady_clock::now();
    const auto t0 = std::chrono::steady_clock::now();
    for (auto& e : es) {
      e.deadline = now + std::chrono::microseconds(rng() % 10'000'000);
      e.fire = nop;
      s.arm(&e);
    }
    const auto t1 = std::chrono::steady_clock::now();
    for (int i = 0; i < n; i += 2) s.cancel(&es[static_cast<std::size_t>(i)]);
    const auto t2 = std::chrono::steady_clock::now();
    const std::int64_t base = now.time_since_epoch().count();
    std::size_t fired = 0;
    for (std::int64_t t = 0; t <= 10'100'000'000; t += 1'000'000) fired += s.fire_due(base + t, false);
    const auto t3 = std::chrono::steady_clock::now();
    arm.push_back(ns(t0, t1) / n);
    cancel.push_back(ns(t1, t2) / (n / 2));
    fire.push_back(ns(t2, t3) / static_cast<double>(fired ? fired : 1));
  }
  const std::string param = "n=" + std::to_string(n);
  weft_bench::print({"weft", "timers_arm", param, "ns/arm", summarize(arm), {}});
  weft_bench::print({"weft", "timers_cancel", param, "ns/cancel", summarize(cancel), {}});
  weft_bench::print({"weft", "timers_fire", param, "ns/timer", summarize(fire), {}});
}
