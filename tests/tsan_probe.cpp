// tests/tsan_probe.cpp - a program run by tsan_detect_test under the tsan build.
//   tsan_probe race   two fibers on different workers write one plain int unsynchronised:
//                     TSan must report it (exit 66), even though they are fibers.
//   tsan_probe clean  the same data handed between fibers only through weft's own
//                     handoffs (spawn -> run, join, yield, sleep wake-ups, steals and
//                     migrations): TSan must stay silent.
#include <weft/weft.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>

int shared_value = 0;  // deliberately plain

int main(int argc, char** argv) {
  bool race = argc > 1 && std::strcmp(argv[1], "race") == 0;
  weft::scheduler sched({.workers = 2});
  if (race) {
    std::atomic<int> arrived{0};
    auto body = [&] {
      arrived.fetch_add(1);
      // Spin without yielding: this fiber keeps its worker, so the other fiber can only
      // run on the other worker, at the same time (a yield could let both share one
      // worker, where fiber switches order them and there is no race to report).
      while (arrived.load() < 2) {
      }
      // Many separate load/store pairs (the barrier keeps -O1 from folding the loop into
      // one add), so the two fibers' accesses overlap in time for certain.
      for (int i = 0; i < 100000; ++i) {
        ++shared_value;
        asm volatile("" ::: "memory");
      }
    };
    auto a = sched.spawn(body);
    auto b = sched.spawn(body);
    a.join();
    b.join();
  } else {
    sched.block_on([] {
      for (int round = 0; round < 200; ++round) {
        shared_value += 1;  // written by the parent...
        auto child = weft::spawn([] {
          shared_value += 1;  // ...then by the child, possibly on another worker
          weft::this_fiber::yield();
          if (shared_value % 7 == 0) weft::this_fiber::sleep_for(std::chrono::microseconds(10));
          shared_value += 1;
        });
        child.join();
        shared_value += 1;  // and by the parent again after join
      }
    });
  }
  std::printf("shared_value=%d\n", shared_value);
  return 0;
}
