// stress/stress.hpp - shared harness for the scheduler stress tests: scale from
// WEFT_STRESS_SCALE (default 1; reduced under sanitizers, whose fiber lifecycles cost
// 0.1-0.4 ms, docs/platform.md), a watchdog that turns a hang (a lost wakeup) into a
// failure with a state dump, and the closing "N passed, N failed" line.
#pragma once

#include <weft/weft.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define WEFT_STRESS_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define WEFT_STRESS_SANITIZED 1
#endif
#endif

namespace stress {

// Size multiplier: WEFT_STRESS_SCALE times 1 (release) or 1/20 (sanitizers).
inline double scale() {
  double s = 1.0;
  if (const char* env = std::getenv("WEFT_STRESS_SCALE")) s = std::atof(env);
#ifdef WEFT_STRESS_SANITIZED
  s *= 0.05;
#endif
  return s > 0 ? s : 1.0;
}

inline long scaled(long n, long at_least = 1) {
  long v = static_cast<long>(static_cast<double>(n) * scale());
  return v < at_least ? at_least : v;
}

// Aborts the process with `dump()` printed if not disarmed within `limit`.
class watchdog {
public:
  watchdog(std::chrono::seconds limit, std::function<std::string()> dump)
      : thread_([this, limit, dump = std::move(dump)] {
          std::unique_lock<std::mutex> l(mu_);
          if (!cv_.wait_for(l, limit, [this] { return done_; })) {
            std::fprintf(stderr, "WATCHDOG: no completion within %llds; state: %s\n",
                         static_cast<long long>(limit.count()), dump().c_str());
            std::fflush(stderr);
            std::abort();
          }
        }) {}
  ~watchdog() {
    {
      std::lock_guard<std::mutex> g(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

inline std::string stats_line(const weft::scheduler& s) {
  auto t = s.stats().total();
  return "fibers_run=" + std::to_string(t.fibers_run) + " steals=" + std::to_string(t.steals) +
         " parks=" + std::to_string(t.parks) + " injected=" + std::to_string(t.injected) +
         " remote_wakes=" + std::to_string(t.remote_wakes);
}

// Runs each named check; prints the runner line the CI reads; returns the exit status.
// xorshift64: a seeded generator small enough to keep one per fiber (seed it non-zero).
struct rng {
  std::uint64_t s;
  std::uint32_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return static_cast<std::uint32_t>(s);
  }
  std::uint32_t below(std::uint32_t n) { return next() % n; }
};

inline int finish(int passed, int failed) {
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}

}  // namespace stress
