// tests/startup_test.cpp - start-up failures.
// A worker thread that cannot be started: pthread_create failing with EAGAIN
// (RLIMIT_NPROC, memory) is injected at each position; the constructor throws
// std::system_error naming the worker, the threads already started are joined (none is
// left behind), and the next scheduler starts normally.
// A worker that cannot be pinned (hwloc bind refused, as under a cgroup cpuset): by
// default a warning and an unpinned run; with options::pin_strict a system_error naming
// the worker and the CPU, with every thread joined.
#include "runtime.hpp"
#include "topology.hpp"

#include <weft/weft.hpp>

#include <gtest/gtest.h>

#include <dirent.h>
#include <chrono>
#include <string>
#include <system_error>
#include <thread>

namespace {

int thread_count() {
  int n = 0;
  if (DIR* d = opendir("/proc/self/task")) {
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.') ++n;
    closedir(d);
  }
  return n;
}

// pthread_join returns once the kernel has cleared the thread's tid, which happens
// before the task is reaped and leaves /proc/self/task, so a joined thread can still be
// listed for a moment (seen on a loaded CI machine). Wait, bounded, for the count to
// settle; a thread that was never joined keeps it up for the whole wait. The baseline
// can be high for the same reason, so callers check "no more than before".
int thread_count_settled(int at_most) {
  int n = thread_count();
  for (int i = 0; i < 500 && n > at_most; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    n = thread_count();
  }
  return n;
}

TEST(Startup, WorkerThreadStartFailureIsReportedAndCleansUp) {
  // Baseline after one normal start and stop: sanitizer runtimes start helper threads of
  // their own lazily (TSan's background thread), which are not ours to count.
  { weft::scheduler warm({.workers = 2}); }
  const int before = thread_count();
  for (long fail_at = 0; fail_at < 4; ++fail_at) {
    weft::detail::thread_start_inject_failure_after(fail_at);
    try {
      weft::scheduler s({.workers = 4});
      FAIL() << "no exception with the start of worker " << fail_at << " failing";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), std::errc::resource_unavailable_try_again);
      const std::string what = e.what();
      EXPECT_NE(what.find("cannot start worker thread " + std::to_string(fail_at) + " of 4"),
                std::string::npos)
          << what;
    }
    weft::detail::thread_start_inject_failure_after(-1);
    EXPECT_LE(thread_count_settled(before), before) << "threads left behind (failure at worker " << fail_at << ")";
  }
  weft::scheduler ok({.workers = 2});
  EXPECT_EQ(ok.block_on([] { return weft::spawn([] { return 5; }).join(); }), 5);
}

// Empty when this machine lets `workers` workers be pinned (hwloc loads, has thread
// binding, and a scratch thread can be bound to each planned CPU); otherwise why not.
// The pin tests need it: without a placement (os_cpu -1) no bind is attempted, so an
// injected failure never happens. Containers without binding rights skip them.
std::string why_pinning_unavailable(unsigned workers) {
  const weft::detail::topology_plan plan = weft::detail::plan_topology(workers, true);
  if (!plan.warning.empty()) return plan.warning;
  std::string why;
  std::thread([&] {
    for (const auto& w : plan.workers) {
      if (w.os_cpu < 0) { why = "no CPU planned for a worker"; return; }
      if (const int err = weft::detail::pin_this_thread(w.os_cpu)) {
        why = "binding to CPU " + std::to_string(w.os_cpu) + " fails: " +
              std::generic_category().message(err);
        return;
      }
    }
  }).join();
  return why;
}

#define SKIP_UNLESS_PINNING_WORKS(workers)                                                \
  if (const std::string why = why_pinning_unavailable(workers); !why.empty())            \
  GTEST_SKIP() << "pinning unavailable here: " << why

TEST(Startup, StrictPinningStartsWhenBindingWorks) {
  SKIP_UNLESS_PINNING_WORKS(2);
  // Every worker's bind succeeded (a refused one would have thrown here).
  weft::scheduler s({.workers = 2, .pin = true, .pin_strict = true});
  EXPECT_EQ(s.block_on([] { return weft::spawn([] { return 7; }).join(); }), 7);
}

TEST(Startup, PinFailureWarnsAndRunsUnpinnedByDefault) {
  SKIP_UNLESS_PINNING_WORKS(2);
  { weft::scheduler warm({.workers = 2}); }
  weft::detail::pin_inject_failure_for_worker(1);
  testing::internal::CaptureStderr();
  {
    weft::scheduler s({.workers = 2});
    EXPECT_EQ(s.block_on([] { return weft::spawn([] { return 3; }).join(); }), 3);
  }
  const std::string err = testing::internal::GetCapturedStderr();
  weft::detail::pin_inject_failure_for_worker(-1);
  EXPECT_NE(err.find("worker 1: cannot pin to CPU"), std::string::npos) << err;
  EXPECT_NE(err.find("running unpinned"), std::string::npos) << err;
}

TEST(Startup, PinFailureUnderPinStrictFailsTheConstructor) {
  SKIP_UNLESS_PINNING_WORKS(3);
  { weft::scheduler warm({.workers = 2}); }
  const int before = thread_count();
  for (int fail_at = 0; fail_at < 3; ++fail_at) {
    weft::detail::pin_inject_failure_for_worker(fail_at);
    testing::internal::CaptureStderr();
    try {
      weft::scheduler s({.workers = 3, .pin = true, .pin_strict = true});
      ADD_FAILURE() << "no exception with worker " << fail_at << "'s pin failing";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), std::errc::operation_not_permitted);
      const std::string what = e.what();
      EXPECT_NE(what.find("pin_strict: cannot pin worker " + std::to_string(fail_at) + " to CPU "),
                std::string::npos)
          << what;
    }
    const std::string err = testing::internal::GetCapturedStderr();
    weft::detail::pin_inject_failure_for_worker(-1);
    EXPECT_EQ(err.find("running unpinned"), std::string::npos) << "strict mode warned: " << err;
    EXPECT_LE(thread_count_settled(before), before) << "threads left behind (pin failure at worker " << fail_at << ")";
  }
  // pin = false: strictness has nothing to enforce.
  weft::detail::pin_inject_failure_for_worker(0);
  {
    weft::scheduler s({.workers = 2, .pin = false, .pin_strict = true});
    EXPECT_EQ(s.block_on([] { return 4; }), 4);
  }
  weft::detail::pin_inject_failure_for_worker(-1);
}

}  // namespace
