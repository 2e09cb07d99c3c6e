// stress/conservation_stress.cpp - work conservation under a seeded random schedule
// (src/worker.hpp, "Work conservation"; tests/conservation_test.cpp has one test per
// path). Per worker count (2 and 4), waker/waitee pairs run side by side, fewer than the
// workers (and than the cores) so that some worker can go idle. In each iteration the waitee
// blocks (event, channel recv, full-channel send, mutex, semaphore, wait_group) or is
// spawned, or is queued behind a yield; its waker lets it block, optionally computes or
// sleeps a little (so that idle workers park), makes it runnable and then computes,
// never suspending, until the waitee ran. A background fiber adds short bursts of
// spawns, yields and sleeps; a second run per worker count goes without it (quiet), so
// that only the watcher can notice a stranded waitee.
//   Invariant: every waitee runs while its waker computes (a waker that computes for
//   10 s without its waitee running is a stranded fiber: failure), and the run ends.
//   Reported: the time from "made runnable" to "ran" (median, 99th percentile, max).
// Sized by WEFT_STRESS_SCALE (smaller under sanitizers); the seed is printed.
#include "stress.hpp"

#include <weft/weft.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

constexpr auto stranded_after = 10s;

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now().time_since_epoch())
      .count();
}

using stress::rng;

void spin_for(std::chrono::nanoseconds d) {
  const auto until = steady::now() + d;
  while (steady::now() < until) {
  }
}

// Spins until `flag`; false after stranded_after.
bool compute_until(const std::atomic<bool>& flag) {
  const auto give_up = steady::now() + stranded_after;
  for (unsigned i = 0; !flag.load(std::memory_order_acquire); ++i)
    if (i % 1024 == 0 && steady::now() > give_up) return false;
  return true;
}

enum class how { event, recv, full_send, mutex, semaphore, wait_group, spawn, yield, count };
const char* const how_names[] = {"event", "recv",  "full_send", "mutex",
                                 "semaphore", "wait_group", "spawn", "yield"};

struct outcome {
  std::vector<std::int64_t> waits;  // ns
  std::vector<std::int64_t> by_how[static_cast<int>(how::count)];
  long stranded = 0;
  how stranded_how = how::count;
};

// One iteration of one pair: returns the wait (ns), or -1 when the waitee was stranded.
// The mutex case unlocks in a callback: beyond clang's -Wthread-safety.
std::int64_t one(how h, rng& r) WEFT_NO_THREAD_SAFETY_ANALYSIS {
  std::atomic<bool> blocked{false}, ran{false};
  std::atomic<std::int64_t> ran_at{0};
  std::int64_t woke_at = 0;
  bool ok = true;
  auto mark = [&] {
    ran_at.store(now_ns(), std::memory_order_relaxed);
    ran.store(true, std::memory_order_release);
  };
  // The waker's pause between the waitee blocking and the wake: none, a spin (the other
  // workers park meanwhile), or a sleep (the waker itself comes back from a timer).
  const std::uint32_t pause_kind = r.below(3);
  const auto pause = std::chrono::microseconds(r.below(300));
  auto settle = [&] {
    while (!blocked.load(std::memory_order_acquire)) weft::this_fiber::yield();
    weft::this_fiber::sleep_for(200us);  // the waitee has suspended
    if (pause_kind == 1) spin_for(pause);
    if (pause_kind == 2) weft::this_fiber::sleep_for(pause);
  };
  auto wake_then_compute = [&](auto&& wake) {
    settle();
    wake();
    woke_at = now_ns();
    ok = compute_until(ran);
  };

  switch (h) {
    case how::event: {
      weft::event e;
      auto w = weft::spawn([&] {
        blocked = true;
        e.wait();
        mark();
      });
      wake_then_compute([&] { e.set(); });
      w.join();
      break;
    }
    case how::recv: {
      weft::channel<int> ch(0);
      auto w = weft::spawn([&] {
        blocked = true;
        (void)ch.recv();
        mark();
      });
      wake_then_compute([&] { (void)ch.send(1); });
      w.join();
      break;
    }
    case how::full_send: {
      weft::channel<int> ch(1);
      auto w = weft::spawn([&] {
        (void)ch.send(1);
        blocked = true;
        (void)ch.send(2);
        mark();
      });
      wake_then_compute([&] { (void)ch.recv(); });
      (void)ch.recv();
      w.join();
      break;
    }
    case how::mutex: {
      weft::mutex m;
      m.lock();
      auto w = weft::spawn([&] {
        blocked = true;
        m.lock();
        mark();
        m.unlock();
      });
      wake_then_compute([&] { m.unlock(); });
      w.join();
      break;
    }
    case how::semaphore: {
      weft::counting_semaphore sem(0);
      auto w = weft::spawn([&] {
        blocked = true;
        sem.acquire();
        mark();
      });
      wake_then_compute([&] { sem.release(); });
      w.join();
      break;
    }
    case how::wait_group: {
      weft::wait_group wg(1);
      auto w = weft::spawn([&] {
        blocked = true;
        wg.wait();
        mark();
      });
      wake_then_compute([&] { wg.done(); });
      w.join();
      break;
    }
    case how::spawn: {
      blocked = true;
      settle();
      auto w = weft::spawn([&] { mark(); });
      woke_at = now_ns();
      ok = compute_until(ran);
      w.join();
      break;
    }
    case how::yield: {
      // The waitee wakes its partner (which then runs next on this worker and computes)
      // and yields: it waits in the run queue behind the computing partner.
      weft::event go;
      std::atomic<bool> partner_ok{true};
      auto partner = weft::spawn([&] {
        blocked = true;
        go.wait();
        partner_ok = compute_until(ran);
      });
      settle();
      go.set();
      woke_at = now_ns();
      weft::this_fiber::yield();
      mark();
      partner.join();
      ok = partner_ok.load();
      break;
    }
    case how::count:
      break;
  }
  if (!ok) return -1;
  return std::max<std::int64_t>(0, ran_at.load() - woke_at);
}

// `noisy`: a background fiber adds bursts of spawns, yields and sleeps. Its timers wake
// parked workers now and then, and a woken worker's search rescues a stranded waitee by
// itself; without it only the watcher (src/idle.hpp W1-W4) can, so the quiet run is the
// one that shows the watcher works (with no watcher, its first waitee strands).
bool run(unsigned workers, std::uint64_t seed, bool noisy) {
  const long iterations = stress::scaled(1500, 60);
  // Fewer computing wakers than cores: with more, the OS time-slices them against the
  // idle workers and the figure measures its scheduler, not ours.
  const unsigned cores = std::max(2u, std::thread::hardware_concurrency());
  const unsigned pairs = std::min(workers, cores) - 1;
  weft::scheduler sched({.workers = workers});
  std::atomic<long> done{0};
  stress::watchdog dog(std::chrono::seconds(240), [&] {
    return "workers=" + std::to_string(workers) + " iterations done=" + std::to_string(done.load()) +
           " " + stress::stats_line(sched);
  });
  std::vector<outcome> out(pairs);
  sched.block_on([&] {
    std::atomic<bool> stop{false};
    // Background noise: short bursts of spawns, yields and sleeps.
    auto noise = weft::spawn([&] {
      rng r{seed ^ 0xabcdef};
      while (noisy && !stop.load()) {
        std::vector<weft::join_handle<void>> hs;
        for (std::uint32_t i = 0, n = r.below(8); i < n; ++i)
          hs.push_back(weft::spawn([] { weft::this_fiber::yield(); }));
        for (auto& h : hs) h.join();
        weft::this_fiber::sleep_for(std::chrono::microseconds(50 + r.below(500)));
      }
    });
    std::vector<weft::join_handle<void>> hs;
    for (unsigned p = 0; p < pairs; ++p)
      hs.push_back(weft::spawn([&, p] {
        rng r{seed + 7919 * (p + 1)};
        for (long i = 0; i < iterations / pairs; ++i) {
          const how h = static_cast<how>(r.below(static_cast<std::uint32_t>(how::count)));
          const std::int64_t w = one(h, r);
          if (w < 0) {
            ++out[p].stranded;
            out[p].stranded_how = h;
            break;  // one is a failure; more would only add stranded_after each
          } else {
            out[p].waits.push_back(w);
            out[p].by_how[static_cast<int>(h)].push_back(w);
          }
          done.fetch_add(1, std::memory_order_relaxed);
        }
      }));
    for (auto& h : hs) h.join();
    stop = true;
    noise.join();
  });
  std::vector<std::int64_t> all;
  long stranded = 0;
  for (auto& o : out) {
    all.insert(all.end(), o.waits.begin(), o.waits.end());
    stranded += o.stranded;
    if (o.stranded)
      std::printf("conservation_stress: workers=%u: %ld waitee(s) stranded, last via %s\n", workers,
                  o.stranded, how_names[static_cast<int>(o.stranded_how)]);
  }
  std::sort(all.begin(), all.end());
  std::string per_how;
  for (int k = 0; k < static_cast<int>(how::count); ++k) {
    std::vector<std::int64_t> v;
    for (auto& o : out) v.insert(v.end(), o.by_how[k].begin(), o.by_how[k].end());
    if (v.empty()) continue;
    std::sort(v.begin(), v.end());
    char buf[96];
    std::snprintf(buf, sizeof buf, " %s=%.0f/%.0f", how_names[k], v[v.size() / 2] / 1e3,
                  v.back() / 1e3);
    per_how += buf;
  }
  auto pct = [&](double q) {
    return all.empty() ? 0.0 : all[std::min(all.size() - 1, static_cast<std::size_t>(q * all.size()))] / 1e3;
  };
  std::printf("conservation_stress: workers=%u %s seed=%llu iterations=%zu wait median=%.1f us "
              "p99=%.1f us max=%.1f us stranded=%ld %s\n  median/max us by path:%s\n",
              workers, noisy ? "noisy" : "quiet", static_cast<unsigned long long>(seed), all.size(), pct(0.5), pct(0.99),
              all.empty() ? 0.0 : all.back() / 1e3, stranded, stress::stats_line(sched).c_str(),
              per_how.c_str());
  return stranded == 0;
}

}  // namespace

int main() {
  std::uint64_t seed = 0x5eed;
  if (const char* env = std::getenv("WEFT_STRESS_SEED")) seed = std::strtoull(env, nullptr, 0);
  int passed = 0, failed = 0;
  for (unsigned workers : {2u, 4u})
    for (bool noisy : {true, false}) (run(workers, seed + workers, noisy) ? passed : failed)++;
  return stress::finish(passed, failed);
}
