// tests/diag_test.cpp - the opt-in diagnostics (src/diag.hpp):
// WEFT_STALL_MS names the worker and the one fiber that blocked it or computed too long,
// once per stall, and how long it ran; fibers run back to back are no stall;
// WEFT_SCHEDTRACE prints periodic lines; with neither set nothing is printed. The
// environment is read when a scheduler starts, so each test sets it around its own.
#include <weft/weft.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <cstdio>
#include <unistd.h>

#if defined(__SANITIZE_THREAD__)
#define WEFT_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WEFT_TEST_TSAN 1
#endif
#endif
#ifndef WEFT_TEST_TSAN
#define WEFT_TEST_TSAN 0
#endif

namespace {

using namespace std::chrono_literals;

struct env_var {
  env_var(const char* name, const char* value) : name_(name) { setenv(name, value, 1); }
  ~env_var() { unsetenv(name_); }
  const char* name_;
};

int count(const std::string& s, const std::string& what) {
  int n = 0;
  for (std::size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

TEST(Diagnostics, StallDetectorNamesTheWorkerAndTheFiberOnce) {
  env_var stall("WEFT_STALL_MS", "50");
  testing::internal::CaptureStderr();
  std::uint64_t id = 0;
  {
    weft::scheduler s({.workers = 2});
    id = s.block_on([] {
      return weft::spawn([] {
               std::this_thread::sleep_for(400ms);  // blocks its worker: the bug to report
               return weft::this_fiber::id();
             })
          .join();
    });
  }
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(count(err, "weft: stall: worker"), 1) << err;
  EXPECT_NE(err.find("fiber #" + std::to_string(id) + " "), std::string::npos) << err;
  // The stuck thread's backtrace follows: a header naming the fiber, then frames as
  // backtrace_symbols_fd prints them ("module(+0x...) [0x...]").
  const std::string header = "weft: stall: backtrace of worker ";
  const std::size_t at = err.find(header);
  ASSERT_NE(at, std::string::npos) << err;
  EXPECT_NE(err.find("(fiber #" + std::to_string(id) + "):", at), std::string::npos) << err;
  EXPECT_GE(count(err.substr(at), "[0x"), 3) << err;
}

// spawn_options::name appears next to the id (quoted), cut to 31 characters.
TEST(Diagnostics, StallReportNamesTheFiber) {
  env_var stall("WEFT_STALL_MS", "50");
  testing::internal::CaptureStderr();
  std::uint64_t id = 0;
  {
    weft::scheduler s({.workers = 2});
    id = s.block_on([] {
      return weft::spawn(weft::spawn_options{.name = "conn-42-with-a-long-name-that-is-cut"}, [] {
               std::this_thread::sleep_for(400ms);  // blocks its worker
               return weft::this_fiber::id();
             })
          .join();
    });
  }
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(count(err, "weft: stall: worker"), 1) << err;
  EXPECT_NE(err.find("fiber #" + std::to_string(id) + " \"conn-42-with-a-long-name-that-i\" for"),
            std::string::npos)
      << err;
}

void compute_for(std::chrono::steady_clock::duration d) {
  const auto until = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < until) {
  }
}

// A fiber that computes (no blocking call) is reported too, by id and name, and when it
// stops, a second line says how long it ran.
TEST(Diagnostics, LongComputationIsReportedWithIdNameAndDuration) {
  env_var stall("WEFT_STALL_MS", "100");
  testing::internal::CaptureStderr();
  std::uint64_t id = 0;
  {
    weft::scheduler s({.workers = 2});
    id = s.block_on([] {
      return weft::spawn(weft::spawn_options{.name = "cruncher"}, [] {
               compute_for(500ms);
               return weft::this_fiber::id();
             })
          .join();
    });
    // The end is reported by a sample after it, before shutdown (which ends sampling).
    std::this_thread::sleep_for(100ms);
  }
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(count(err, "weft: stall: worker"), 1) << err;
  const std::string who = "fiber #" + std::to_string(id) + " \"cruncher\"";
  const std::size_t at = err.find(who + " for ");
  ASSERT_NE(at, std::string::npos) << err;
  EXPECT_GE(std::stoll(err.substr(at + who.size() + 5)), 100) << err;  // "for X ms"
  const std::size_t end = err.find(who + " on worker ");
  ASSERT_NE(end, std::string::npos) << err;
  const std::size_t about = err.find("ran for about ", end);
  ASSERT_NE(about, std::string::npos) << err;
  // It ran 500 ms; the end is seen within a sample period (25 ms) of it, the start too,
  // unless a loaded machine delays the reactor's samples: only the bound that holds by
  // construction (the report needed the threshold) is asserted.
  EXPECT_GE(std::stoll(err.substr(about + 14)), 100) << err;
}

// Many short fibers back to back on one worker: 250 fibers of 2 ms each, 500 ms in all,
// which the worker runs one after another on one fiber stack, without a context switch
// (worker::fiber_main). No fiber ran for the threshold, so nothing is reported. (Mutation
// that fails it: src/diag.cpp judging by w.switch_count() instead of w.diag_slice(), as
// the detector did before.)
TEST(Diagnostics, ShortFibersBackToBackAreNoStall) {
#if WEFT_TEST_TSAN
  // Under TSan the detector reported one of these fibers as running 150-900 ms in most
  // runs (after ~35 of them), while each fiber's own code measured under 10 ms: the time
  // goes to the sanitizer's runtime around the fibers, on the worker's thread, which the
  // detector cannot tell from a stall (where exactly is not known yet). The release and
  // ASan builds check the detector.
  GTEST_SKIP() << "TSan's runtime stalls workers for longer than the threshold";
#endif
  env_var stall("WEFT_STALL_MS", "150");
  testing::internal::CaptureStderr();
  std::uint64_t switches = 0;
  {
    weft::scheduler s({.workers = 1});
    s.block_on([] {
      // Spawned from a fiber and waited for once: the worker runs them back to back
      // whatever the load (outside spawns could trickle in and each find it idle).
      weft::wait_group wg;
      wg.add(250);
      std::vector<weft::join_handle<void>> fibers;
      for (int i = 0; i < 250; ++i)
        fibers.push_back(weft::spawn([&wg] {
          compute_for(2ms);
          wg.done();
        }));
      wg.wait();
      for (auto& f : fibers) f.join();
    });
    switches = s.stats().total().switches;
  }
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(count(err, "weft: stall"), 0) << err;
  // The premise: far fewer switches than fibers (most ran back to back on one stack).
  EXPECT_LT(switches, 100u);
}

TEST(Diagnostics, NoStallReportForFibersThatSuspendOrForIdleWorkers) {
  // A higher threshold than above: an OS preemption of a busy worker on a loaded CI
  // machine must not look like a stall.
  env_var stall("WEFT_STALL_MS", "150");
  testing::internal::CaptureStderr();
  {
    weft::scheduler s({.workers = 2});
    s.block_on([] {
      for (int i = 0; i < 40; ++i) weft::this_fiber::sleep_for(5ms);  // suspends: fine
    });
    std::this_thread::sleep_for(200ms);  // idle workers park: fine
  }
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(count(err, "weft: stall"), 0) << err;
}

TEST(Diagnostics, NoStallReportOrSignalAfterShutdown) {
  // After shutdown() the workers have left their loops and been joined, but the reactor
  // samples on until the scheduler is destroyed: a worker whose switch counter stands
  // still there is gone, not stuck, and its thread id may already name another thread.
  // Only what is printed from shutdown() on counts: before it, a worker thread the OS
  // preempts for 5 ms in the middle of a fiber is a stall to this threshold, and a loaded
  // machine does that. (Mutation that fails this test: the detector judging workers in no
  // fiber and judging after shutdown began, both: src/diag.cpp diagnostics::tick.)
  env_var stall("WEFT_STALL_MS", "5");
  {
    weft::scheduler s({.workers = 2});
    s.block_on([] {
      weft::spawn([] { for (int i = 0; i < 100; ++i) weft::this_fiber::yield(); }).join();
    });
    testing::internal::CaptureStderr();
    s.shutdown();
    std::this_thread::sleep_for(100ms);  // twenty stall thresholds, sampled every 1 ms
  }
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(count(err, "weft: stall"), 0) << err;
}

TEST(Diagnostics, SchedtracePrintsPeriodicLinesAndNothingWhenOff) {
  testing::internal::CaptureStderr();
  {
    env_var trace("WEFT_SCHEDTRACE", "20");
    weft::scheduler s({.workers = 2});
    std::this_thread::sleep_for(200ms);
  }
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_GE(count(err, "weft schedtrace: "), 3) << err;
  EXPECT_NE(err.find(" | w1 ring="), std::string::npos) << err;

  testing::internal::CaptureStderr();
  {
    weft::scheduler s({.workers = 2});
    s.block_on([] { std::this_thread::sleep_for(150ms); });
  }
  err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(err, "");
}

TEST(Diagnostics, BadValuesAreReportedAndIgnored) {
  env_var stall("WEFT_STALL_MS", "soon");
  testing::internal::CaptureStderr();
  { weft::scheduler s({.workers = 1}); }
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("ignoring WEFT_STALL_MS=soon"), std::string::npos) << err;
}

// stderr redirected to a file that can be read while other threads write to it (the
// deadlock report comes from weft's reactor thread, when it comes).
class stderr_file {
public:
  stderr_file() {
    char path[] = "/tmp/weft_diag_XXXXXX";
    fd_ = ::mkstemp(path);
    ::unlink(path);
    std::fflush(stderr);
    saved_ = ::dup(2);
    ::dup2(fd_, 2);
  }
  ~stderr_file() {
    std::fflush(stderr);
    ::dup2(saved_, 2);
    ::close(saved_);
    ::close(fd_);
  }
  std::string text() {
    char buf[4096];
    for (;;) {
      const ssize_t n = ::pread(fd_, buf, sizeof buf, static_cast<off_t>(seen_.size()));
      if (n <= 0) return seen_;
      seen_.append(buf, static_cast<std::size_t>(n));
    }
  }
  // Polls until `what` appears (bounded by ctest's timeout: a missing report fails there).
  std::string wait_for(const std::string& what) {
    while (text().find(what) == std::string::npos) std::this_thread::sleep_for(10ms);
    return seen_;
  }

private:
  int fd_ = -1, saved_ = -1;
  std::string seen_;
};

// WEFT_DEADLOCK_MS: one fiber holds a mutex and waits on an event nobody in the scheduler
// will set; another waits for the mutex. Reported with the holder named; then this
// thread (outside the scheduler, as the report warns) sets the event and all ends.
TEST(Diagnostics, DeadlockReportNamesTheWaitsAndTheMutexHolder) {
  env_var dl("WEFT_DEADLOCK_MS", "100");
  std::string err;
  std::uint64_t holder = 0, waiter = 0;
  weft::mutex m;
  weft::event ev;
  {
    stderr_file capture;
    weft::scheduler s({.workers = 2});
    weft::event holding;
    auto h = s.spawn(weft::spawn_options{.name = "holder"}, [&] {
      std::lock_guard<weft::mutex> g(m);
      holding.set();
      (void)ev.wait();
    });
    holding.wait();
    auto w = s.spawn(weft::spawn_options{.name = "waiter"}, [&] { std::lock_guard<weft::mutex> g(m); });
    holder = h.id();
    waiter = w.id();
    err = capture.wait_for("weft: deadlock: 2 fiber(s)");
    ev.set();
    h.join();
    w.join();
  }
  EXPECT_EQ(count(err, "weft: deadlock: all 2 fiber(s) have waited"), 1) << err;
  EXPECT_NE(err.find("weft: deadlock: fiber #" + std::to_string(waiter) + " waits for mutex " +
                     [&] { char b[32]; std::snprintf(b, sizeof b, "%p", static_cast<void*>(&m)); return std::string(b); }() +
                     ", held by fiber #" + std::to_string(holder)),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("\"holder\": waiting on event"), std::string::npos) << err;
  EXPECT_EQ(err.find("cycle:"), std::string::npos) << err;  // no cycle: a chain to an event
}

// Waits with a deadline, sleeps and fd waits end by themselves: no deadlock report, even
// when nothing else moves for many thresholds.
TEST(Diagnostics, NoDeadlockReportForWaitsThatEndByThemselves) {
  env_var dl("WEFT_DEADLOCK_MS", "30");
  testing::internal::CaptureStderr();
  {
    weft::scheduler s({.workers = 2});
    weft::event ev;
    auto a = s.spawn([&] { (void)ev.wait_for(400ms); });
    auto b = s.spawn([] { weft::this_fiber::sleep_for(400ms); });
    a.join();
    b.join();
  }
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(err.find("deadlock"), std::string::npos) << err;
}

// A run_blocking job in flight can still wake fibers: the one waiting on a
// run_blocking_until without a deadline (an event wait, inside the call), and, after a
// run_blocking_for gave up, whoever waits on what the job sets when it ends. weft's own
// pool thread is not "a thread outside the scheduler": no report while such a job runs,
// even when nothing else moves for many thresholds.
TEST(Diagnostics, NoDeadlockReportWhileABlockingJobRuns) {
  env_var dl("WEFT_DEADLOCK_MS", "30");
  testing::internal::CaptureStderr();
  {
    weft::scheduler s({.workers = 2});
    weft::event ev;
    auto a = s.spawn([] {
      (void)weft::run_blocking_until(weft::clock::time_point::max(),
                                     [] { std::this_thread::sleep_for(400ms); });
    });
    auto b = s.spawn([&] {
      // Gives up at once; the job runs on and sets the event 400 ms later.
      (void)weft::run_blocking_for(1ms, [&] {
        std::this_thread::sleep_for(400ms);
        ev.set();
      });
      (void)ev.wait();
    });
    a.join();
    b.join();
  }
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(err.find("deadlock"), std::string::npos) << err;
}

}  // namespace
