// Migration. Many fibers yield and sleep repeatedly while idle workers steal; each
// keeps a running sum in fiber_local storage and checks it at the end (fiber-local data
// intact across migrations); steals must have happened.
#include "stress.hpp"

#include <vector>

weft::fiber_local<long> local_sum;

int main() {
  const long fibers = stress::scaled(10000, 500), rounds = stress::scaled(100, 20);
  std::atomic<long> ok{0}, migrated{0};
  int failed = 0;
  weft::scheduler sched({.workers = 4});
  {
    stress::watchdog dog(std::chrono::seconds(240), [&] {
      return "ok=" + std::to_string(ok.load()) + " " + stress::stats_line(sched);
    });
    sched.block_on([&] {
      std::vector<weft::join_handle<void>> hs;
      hs.reserve(static_cast<std::size_t>(fibers));
      for (long f = 0; f < fibers; ++f)
        hs.push_back(weft::spawn([&, f] {
          int first = weft::this_worker::index();
          bool moved = false;
          for (long r = 0; r < rounds; ++r) {
            *local_sum += f + r;
            if (r % 10 == 0) weft::this_fiber::sleep_for(std::chrono::microseconds(50));
            else weft::this_fiber::yield();
            moved |= weft::this_worker::index() != first;
          }
          if (*local_sum == f * rounds + rounds * (rounds - 1) / 2) ok.fetch_add(1);
          if (moved) migrated.fetch_add(1);
        }));
      for (auto& h : hs) h.join();
    });
  }
  auto t = sched.stats().total();
  std::printf("migration_stress: fibers=%ld ok=%ld migrated=%ld steals=%llu remote_wakes=%llu\n",
              fibers, ok.load(), migrated.load(), static_cast<unsigned long long>(t.steals),
              static_cast<unsigned long long>(t.remote_wakes));
  if (ok.load() != fibers) ++failed;
  if (migrated.load() == 0 || t.steals + t.remote_wakes == 0) ++failed;
  return stress::finish(failed ? 0 : 1, failed);
}
