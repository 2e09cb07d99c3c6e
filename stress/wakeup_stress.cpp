// Park/unpark hammer. All workers idle; a foreign thread injects one fiber at a time at
// random 0-50 µs gaps (and waits for it to start), so workers keep parking and being
// unparked. Every fiber must start; the latency from spawn to start is reported (max,
// mean), and a start later than 2 s counts as a lost wakeup (the watchdog catches hangs).
#include "stress.hpp"

#include <random>
#include <vector>

int main() {
  const long n = stress::scaled(100000, 2000);
  int failed = 0;
  for (unsigned workers : {1u, 2u, 4u}) {
    weft::scheduler sched({.workers = workers});
    std::atomic<long> started{0};
    stress::watchdog dog(std::chrono::seconds(180), [&] {
      return "workers=" + std::to_string(workers) + " started=" + std::to_string(started.load()) +
             "/" + std::to_string(n) + " " + stress::stats_line(sched);
    });
    std::mt19937 rng(12345 + workers);
    std::uniform_int_distribution<int> gap(0, 50);
    double max_us = 0, sum_us = 0;
    long late = 0;
    for (long i = 0; i < n; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      std::atomic<bool> go{false};
      sched.spawn([&] { go.store(true, std::memory_order_release); }).detach();
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
      max_us = std::max(max_us, us);
      sum_us += us;
      if (us > 2e6) ++late;
      started.fetch_add(1, std::memory_order_relaxed);
      auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(gap(rng));
      while (std::chrono::steady_clock::now() < until) {
      }
    }
    std::printf("wakeup_stress: workers=%u injections=%ld mean=%.1f us max=%.1f us late=%ld %s\n",
                workers, n, sum_us / static_cast<double>(n), max_us, late,
                stress::stats_line(sched).c_str());
    if (late) ++failed;
  }
  return stress::finish(failed ? 0 : 1, failed);
}
