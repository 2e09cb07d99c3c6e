// tests/weft_test.hpp - a fixture parameterised on the worker count (1, 2, 4), so every
// behaviour is checked with one worker (no stealing), two (this machine) and
// oversubscribed (more workers than cores: preemption in the middle of protocols).
// WEFT_TEST_WORKERS replaces the counts (weft_test_worker_counts below); the ctest entry
// unit_oversubscribed runs a subset of the suites with "16,64" (tests/CMakeLists.txt).
#pragma once

#include <weft/weft.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

class weft_test : public ::testing::TestWithParam<unsigned> {
protected:
  void SetUp() override {
    sched_ = std::make_unique<weft::scheduler>(weft::scheduler::options{.workers = GetParam()});
  }
  void TearDown() override { sched_.reset(); }
  weft::scheduler& sched() { return *sched_; }
  unsigned workers() const { return GetParam(); }

private:
  std::unique_ptr<weft::scheduler> sched_;
};

// The worker counts WEFT_INSTANTIATE runs each suite at: 1, 2 and 4, or the list in the
// environment variable WEFT_TEST_WORKERS (comma-separated, each 1-1024, e.g. "16,64").
// A malformed list aborts the test binary with a message naming the variable.
inline std::vector<unsigned> weft_test_worker_counts() {
  const char* env = std::getenv("WEFT_TEST_WORKERS");
  if (env == nullptr || *env == '\0') return {1u, 2u, 4u};
  std::vector<unsigned> counts;
  for (const char* p = env;;) {
    char* end = nullptr;
    errno = 0;
    const unsigned long n = std::strtoul(p, &end, 10);
    if (end == p || errno != 0 || n == 0 || n > 1024 || (*end != ',' && *end != '\0')) {
      std::fprintf(stderr,
                   "WEFT_TEST_WORKERS=\"%s\": expected worker counts 1-1024 separated by commas\n",
                   env);
      std::abort();
    }
    counts.push_back(static_cast<unsigned>(n));
    if (*end == '\0') return counts;
    p = end + 1;
  }
}

#define WEFT_INSTANTIATE(suite)                                                          \
  INSTANTIATE_TEST_SUITE_P(workers, suite, ::testing::ValuesIn(weft_test_worker_counts()), \
                           [](const auto& info) { return "w" + std::to_string(info.param); })

// Tells a test that a fiber has really suspended, not merely announced that it is about
// to: a waker that must act on a parked fiber (a plain thread's set(), a destructor's
// "destroyed while waited on" check) waits for this instead of sleeping "long enough".
//
// The fiber calls arm() immediately before its blocking call, with nothing in between
// that could switch. arm() reads its worker's switch counter (on that worker: exact);
// the worker bumps it only in worker::switch_to, which a running fiber reaches only by
// stopping (here: suspending in the blocking call). By then the wait is committed: a
// sync wait linked its node under the primitive's lock, released in the post-switch
// action (src/sync/wait_list.hpp step 1), so a waker taking that lock finds the node; an I/O
// wait publishes itself in that action too (src/suspend.hpp rule 1).
class suspension_probe {
public:
  // In the fiber, right before the blocking call.
  void arm() {
    const int w = weft::this_worker::index();
    switches_ = weft::scheduler::current()->stats().workers[static_cast<unsigned>(w)].switches;
    // release: publishes switches_; pairs with the acquire load in wait().
    worker_.store(w, std::memory_order_release);
  }
  // A plain thread. True once the armed fiber has switched away from its worker; false
  // if it did not within `limit` (the test then fails instead of hanging).
  bool wait(const weft::scheduler& s, std::chrono::seconds limit = std::chrono::seconds(20)) const {
    const auto give_up = std::chrono::steady_clock::now() + limit;
    int w;
    // acquire: pairs with arm()'s release store.
    while ((w = worker_.load(std::memory_order_acquire)) < 0) {
      if (std::chrono::steady_clock::now() > give_up) return false;
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    while (s.stats().workers[static_cast<unsigned>(w)].switches == switches_) {
      if (std::chrono::steady_clock::now() > give_up) return false;
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    return true;
  }

private:
  std::atomic<int> worker_{-1};
  std::uint64_t switches_ = 0;  // written before worker_'s release store
};
