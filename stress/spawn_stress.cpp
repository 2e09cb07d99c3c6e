// Spawn storm from inside fibers and from outside threads at 4 workers (more than this
// machine's cores): every fiber runs exactly once (per-fiber bitmap), spawned == completed,
// and the scheduler's destructor returns.
#include "stress.hpp"

#include <vector>

int main() {
  const long inside = stress::scaled(600000, 2000);
  const long outside_threads = 3, per_thread = stress::scaled(50000, 500);
  const long total = inside + outside_threads * per_thread;
  std::vector<std::atomic<unsigned char>> seen(static_cast<std::size_t>(total));
  std::atomic<long> ran{0};
  int failed = 0;
  {
    weft::scheduler sched({.workers = 4});
    stress::watchdog dog(std::chrono::seconds(240), [&] {
      return "ran=" + std::to_string(ran.load()) + "/" + std::to_string(total) + " " +
             stress::stats_line(sched);
    });
    auto mark = [&](long i) {
      if (seen[static_cast<std::size_t>(i)].fetch_add(1, std::memory_order_relaxed) != 0)
        std::fprintf(stderr, "fiber %ld ran twice\n", i);
      ran.fetch_add(1, std::memory_order_relaxed);
    };
    std::vector<std::thread> outs;
    for (long t = 0; t < outside_threads; ++t)
      outs.emplace_back([&, t] {
        for (long i = 0; i < per_thread; ++i) sched.spawn(mark, inside + t * per_thread + i).detach();
      });
    sched.block_on([&] {
      // A tree of spawners so that spawning itself is spread over the workers.
      std::vector<weft::join_handle<void>> spawners;
      const long chunk = 1000;
      for (long base = 0; base < inside; base += chunk)
        spawners.push_back(weft::spawn([&, base] {
          for (long i = base; i < std::min(base + chunk, inside); ++i) weft::spawn(mark, i).detach();
        }));
      for (auto& h : spawners) h.join();
    });
    for (auto& t : outs) t.join();
  }  // waits for every detached fiber
  long missing = 0, twice = 0;
  for (auto& s : seen) {
    if (s.load() == 0) ++missing;
    if (s.load() > 1) ++twice;
  }
  std::printf("spawn_stress: %ld fibers, ran %ld, missing %ld, twice %ld\n", total, ran.load(),
              missing, twice);
  if (missing || twice || ran.load() != total) ++failed;
  return stress::finish(failed ? 0 : 1, failed);
}
