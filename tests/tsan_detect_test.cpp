// tests/tsan_detect_test.cpp - both halves of "TSan is meaningful with weft" (issue 2):
// a real race between two fibers on different workers is reported, and weft's own
// handoffs produce no report. Registered only in the tsan build (tests/CMakeLists.txt).
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <string>
#include <sys/wait.h>

namespace {

struct outcome {
  int status;
  std::string output;
};

outcome run_probe(const char* mode) {
  std::string cmd = std::string(WEFT_TSAN_PROBE) + " " + mode + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  outcome o{-1, {}};
  if (!p) return o;
  std::array<char, 4096> buf{};
  while (std::fgets(buf.data(), buf.size(), p)) o.output += buf.data();
  int st = pclose(p);
  o.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return o;
}

TEST(TsanDetect, RealRaceBetweenFibersIsReported) {
  outcome o = run_probe("race");
  EXPECT_EQ(o.status, 66) << o.output;
  EXPECT_NE(o.output.find("WARNING: ThreadSanitizer: data race"), std::string::npos) << o.output;
  EXPECT_NE(o.output.find("shared_value"), std::string::npos) << o.output;
}

TEST(TsanDetect, RuntimeHandoffsAreNotReported) {
  outcome o = run_probe("clean");
  EXPECT_EQ(o.status, 0) << o.output;
  EXPECT_EQ(o.output.find("ThreadSanitizer"), std::string::npos) << o.output;
  EXPECT_NE(o.output.find("shared_value=800"), std::string::npos) << o.output;
}

}  // namespace
