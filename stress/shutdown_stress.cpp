// Shutdown churn: schedulers created and destroyed repeatedly while detached fibers are
// still spawning, yielding and sleeping, with random delays before the destructor. Every
// fiber must finish exactly once (RAII counter) and every destructor must return.
#include "stress.hpp"

#include <random>

int main() {
  const long rounds = stress::scaled(200, 20);
  std::atomic<long> created{0}, destroyed{0};
  struct tracked {
    std::atomic<long>* d;
    ~tracked() { d->fetch_add(1); }
  };
  std::mt19937 rng(7);
  stress::watchdog dog(std::chrono::seconds(240), [&] {
    return "created=" + std::to_string(created.load()) + " destroyed=" + std::to_string(destroyed.load());
  });
  for (long r = 0; r < rounds; ++r) {
    weft::scheduler sched({.workers = 1 + static_cast<unsigned>(r % 4)});
    for (int i = 0; i < 50; ++i) {
      created.fetch_add(1);
      sched.spawn([&, i] {
        tracked t{&destroyed};
        for (int k = 0; k < i % 5; ++k) {
          created.fetch_add(1);
          weft::spawn([&] { tracked c{&destroyed}; weft::this_fiber::yield(); }).detach();
        }
        if (i % 3 == 0) weft::this_fiber::sleep_for(std::chrono::microseconds(200));
        weft::this_fiber::yield();
      }).detach();
    }
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 500));
  }
  std::printf("shutdown_stress: rounds=%ld fibers=%ld finished=%ld\n", rounds, created.load(),
              destroyed.load());
  int failed = created.load() == destroyed.load() ? 0 : 1;
  return stress::finish(failed ? 0 : 1, failed);
}
