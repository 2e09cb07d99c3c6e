// bench/io/w8_sleep.cpp - W8 (docs/benchmarks.md): 10,000 fibers each sleep 1 ms ten times.
//
//   weft_w8_sleep [--fibers 10000] [--sleeps 10] [--reps 7] [--workers 0] [--stack-cache N]
//
// --stack-cache sets scheduler::options::stack_cache (idle stacks kept per worker; default
// 64). With the default, every rep maps and unmaps ~10,000 guarded stacks, and on 2 cores
// the munmap TLB-shootdown IPIs and mmap_lock contention dominate the wall time; with a
// cache >= fibers the stacks of the warm-up rep are reused. Both are reported.
//
// Wall time runs from the first spawn (inside a fiber) to the last join; lateness is
// (wake-up time - deadline) of every sleep. Ideal wall: sleeps x 1 ms. Prints one '#' line
// per repetition and one RESULT line (bench/result.hpp):
//   RESULT weft W8 fibers=<N> <wall> ms min=.. max=.. reps=.. mean_lateness=<ms>ms
//          mean_lateness_min=.. mean_lateness_max=.. workers=<N> stack_cache=<N>
#include <weft/weft.hpp>

#include "../result.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {
using clk = std::chrono::steady_clock;

struct rep_result {
  double wall_ms, mean_late_ms, max_late_ms;
};

rep_result one_rep(weft::scheduler& s, int fibers, int sleeps) {
  std::atomic<std::int64_t> late_sum{0}, late_max{0};
  double wall = s.block_on([&] {
    auto t0 = clk::now();
    std::vector<weft::join_handle<void>> hs;
    hs.reserve(static_cast<std::size_t>(fibers));
    for (int i = 0; i < fibers; ++i)
      hs.push_back(weft::spawn([&] {
        std::int64_t sum = 0, mx = 0;
        for (int k = 0; k < sleeps; ++k) {
          auto deadline = clk::now() + std::chrono::milliseconds(1);
          weft::this_fiber::sleep_until(deadline);
          auto late = std::chrono::duration_cast<std::chrono::nanoseconds>(clk::now() - deadline).count();
          sum += late;
          mx = std::max(mx, late);
        }
        late_sum.fetch_add(sum, std::memory_order_relaxed);
        std::int64_t m = late_max.load(std::memory_order_relaxed);
        while (mx > m && !late_max.compare_exchange_weak(m, mx, std::memory_order_relaxed)) {
        }
      }));
    for (auto& h : hs) h.join();
    return std::chrono::duration<double, std::milli>(clk::now() - t0).count();
  });
  return {wall, late_sum.load() / 1e6 / (static_cast<double>(fibers) * sleeps), late_max.load() / 1e6};
}

// Every fiber alive at once (all wait for the last one to start), so the stacks of a
// whole burst are mapped and touched before the timed reps. A one-sleep warm-up did not
// do that: its first fibers finished while later ones were still being spawned onto
// fresh stacks, so ~5,000 stacks were first mapped in rep 0 (max lateness ~48 ms there).
void warm_up(weft::scheduler& s, int fibers) {
  s.block_on([&] {
    weft::wait_group started(fibers);
    weft::event go;
    std::vector<weft::join_handle<void>> hs;
    hs.reserve(static_cast<std::size_t>(fibers));
    for (int i = 0; i < fibers; ++i)
      hs.push_back(weft::spawn([&] {
        started.done();
        go.wait();
        weft::this_fiber::sleep_for(std::chrono::milliseconds(1));
      }));
    started.wait();
    go.set();
    for (auto& h : hs) h.join();
  });
}

}  // namespace

int main(int argc, char** argv) {
  int fibers = 10000, sleeps = 10, reps = 7;
  unsigned workers = 0;
  std::size_t stack_cache = 64;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    int v = std::atoi(argv[i + 1]);
    if (k == "--fibers") fibers = v;
    else if (k == "--sleeps") sleeps = v;
    else if (k == "--reps") reps = v;
    else if (k == "--workers") workers = static_cast<unsigned>(v);
    else if (k == "--stack-cache") stack_cache = static_cast<std::size_t>(v);
  }
  weft::scheduler s({.workers = workers, .stack_cache = stack_cache});
  warm_up(s, fibers);  // fiber stacks (kept when the cache is large enough)
  std::vector<rep_result> rs;
  for (int r = 0; r < reps; ++r) {
    rs.push_back(one_rep(s, fibers, sleeps));
    std::printf("# rep %d: wall %.2f ms, mean lateness %.3f ms, max lateness %.3f ms\n", r,
                rs.back().wall_ms, rs.back().mean_late_ms, rs.back().max_late_ms);
  }
  auto med = [&](auto field) {
    std::vector<double> v;
    for (auto& x : rs) v.push_back(x.*field);
    std::sort(v.begin(), v.end());
    return std::array<double, 3>{v[v.size() / 2], v.front(), v.back()};
  };
  auto w = med(&rep_result::wall_ms);
  auto l = med(&rep_result::mean_late_ms);
  auto ms = [](double v) { return weft_bench::format_number(v) + "ms"; };
  weft_bench::print({"weft", "W8", "fibers=" + std::to_string(fibers), "ms",
                     {w[0], w[1], w[2], reps},
                     {{"mean_lateness", ms(l[0])},
                      {"mean_lateness_min", ms(l[1])},
                      {"mean_lateness_max", ms(l[2])},
                      {"workers", std::to_string(s.worker_count())},
                      {"stack_cache", std::to_string(stack_cache)}}});
}
