// tests/startup_test.cpp - a worker thread that cannot be started (test-catalogue F3):
// pthread_create failing with EAGAIN (RLIMIT_NPROC, memory) is injected at each position;
// the constructor throws std::system_error naming the worker, the threads already started
// are joined (none is left behind), and the next scheduler starts normally.
#include "runtime.hpp"

#include <weft/weft.hpp>

#include <gtest/gtest.h>

#include <dirent.h>
#include <string>
#include <system_error>

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
    EXPECT_EQ(thread_count(), before) << "threads left behind (failure at worker " << fail_at << ")";
  }
  weft::scheduler ok({.workers = 2});
  EXPECT_EQ(ok.block_on([] { return weft::spawn([] { return 5; }).join(); }), 5);
}

}  // namespace
