// tests/tsan_detect_test.cpp - "TSan is meaningful with weft" (docs/tsan.md): a race
// between fibers is reported whichever workers they share, and weft's hand-offs (spawn,
// join, every sync primitive, timers, I/O, run_blocking, block_on, shutdown) produce no
// report. Each scenario runs in its own tsan_probe process, so an expected report ends
// that process and not this one. Registered only in the tsan builds (tests/CMakeLists.txt).
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <string>
#include <sys/wait.h>
#include <tuple>

namespace {

struct outcome {
  int status;
  std::string output;
};

outcome run_probe(const std::string& scenario, unsigned workers) {
  // TSan's own exit code on a report is 66; halt_on_error (the presets' TSAN_OPTIONS) ends
  // the probe at the first one.
  std::string cmd = std::string(WEFT_TSAN_PROBE) + " " + scenario + " " +
                    std::to_string(workers) + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  outcome o{-1, {}};
  if (!p) return o;
  std::array<char, 4096> buf{};
  while (std::fgets(buf.data(), buf.size(), p)) o.output += buf.data();
  int st = pclose(p);
  o.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return o;
}

void expect_race_on_shared_value(const outcome& o) {
  EXPECT_EQ(o.status, 66) << o.output;
  EXPECT_NE(o.output.find("WARNING: ThreadSanitizer: data race"), std::string::npos) << o.output;
  EXPECT_NE(o.output.find("shared_value"), std::string::npos) << o.output;
}

// Two fibers on different workers at the same time: reported in both tsan builds.
TEST(TsanDetect, RealRaceBetweenFibersIsReported) {
  expect_race_on_shared_value(run_probe("race", 2));
}

// Two fibers whose unsynchronised increments interleave (a yield or a sleep between
// them): reported even when one worker runs both, where only the fiber mode's no-sync
// switches keep the worker's thread from ordering them. The tsan-checked build
// (WEFT_TSAN_FIBERS=0) synchronises every switch and cannot see these.
class TsanRace : public ::testing::TestWithParam<std::tuple<const char*, unsigned>> {};

TEST_P(TsanRace, IsReported) {
  if (!WEFT_TSAN_FIBERS) GTEST_SKIP() << "tsan-checked build: every fiber switch synchronises";
  const auto [scenario, workers] = GetParam();
  expect_race_on_shared_value(run_probe(scenario, workers));
}

INSTANTIATE_TEST_SUITE_P(Interleaved, TsanRace,
                         ::testing::Combine(::testing::Values("race_yield", "race_sleep"),
                                            ::testing::Values(1u, 2u)),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param)) + "_w" +
                                  std::to_string(std::get<1>(info.param));
                         });

// Correct hand-offs: no report, and the values the probe reads are right (exit 0).
class TsanHandoff : public ::testing::TestWithParam<std::tuple<const char*, unsigned>> {};

TEST_P(TsanHandoff, IsNotReported) {
  const auto [scenario, workers] = GetParam();
  const outcome o = run_probe(scenario, workers);
  EXPECT_EQ(o.status, 0) << o.output;
  EXPECT_EQ(o.output.find("ThreadSanitizer"), std::string::npos) << o.output;
  EXPECT_NE(o.output.find("failures=0"), std::string::npos) << o.output;
}

INSTANTIATE_TEST_SUITE_P(
    Primitives, TsanHandoff,
    ::testing::Combine(::testing::Values("clean", "spawn_join", "thread_spawn_join",
                                         "detached_shutdown", "fiber_local", "event", "mutex",
                                         "condition_variable", "channel_buffered",
                                         "channel_rendezvous", "select", "wait_group", "latch",
                                         "barrier", "semaphore", "sleep", "pipe", "run_blocking",
                                         "tls_read"),
                       ::testing::Values(1u, 2u)),
    [](const auto& info) {
      return std::string(std::get<0>(info.param)) + "_w" + std::to_string(std::get<1>(info.param));
    });

}  // namespace
