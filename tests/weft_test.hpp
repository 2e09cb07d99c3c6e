// tests/weft_test.hpp - a fixture parameterised on the worker count (1, 2, 4), so every
// behaviour is checked with one worker (no stealing), two (this machine) and
// oversubscribed (more workers than cores: preemption in the middle of protocols).
#pragma once

#include <weft/weft.hpp>

#include <gtest/gtest.h>

#include <memory>
#include <string>

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

#define WEFT_INSTANTIATE(suite)                                               \
  INSTANTIATE_TEST_SUITE_P(workers, suite, ::testing::Values(1u, 2u, 4u),    \
                           [](const auto& info) { return "w" + std::to_string(info.param); })
