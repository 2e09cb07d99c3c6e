// tests/stats_test.cpp - scheduler::stats() and format_stats (include/weft/stats.hpp):
// the log2 histograms, the sampled schedule latency and wait time, busy/searching/parked
// time, queue depths and the two renderings.
#include <weft/weft.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

namespace {

using namespace std::chrono_literals;

TEST(Stats, HistogramBucketsAreLog2AndQuantilesAreBucketBounds) {
  using h = weft::duration_histogram;
  EXPECT_EQ(h::bucket_of(0), 0u);
  EXPECT_EQ(h::bucket_of(1), 0u);
  EXPECT_EQ(h::bucket_of(2), 1u);
  EXPECT_EQ(h::bucket_of(3), 1u);
  EXPECT_EQ(h::bucket_of(1023), 9u);
  EXPECT_EQ(h::bucket_of(1024), 10u);
  EXPECT_EQ(h::bucket_of(~std::uint64_t{0}), h::bucket_count - 1);
  h d;
  EXPECT_EQ(d.quantile_ns(0.5), 0u);  // no samples
  d.count[h::bucket_of(100)] = 90;    // 90 samples in [64, 128) ns
  d.count[h::bucket_of(5000)] = 10;   // 10 in [4096, 8192) ns
  EXPECT_EQ(d.samples(), 100u);
  EXPECT_EQ(d.quantile_ns(0.5), 128u);
  EXPECT_EQ(d.quantile_ns(0.9), 128u);
  EXPECT_EQ(d.quantile_ns(0.91), 8192u);
  EXPECT_EQ(d.quantile_ns(1.0), 8192u);
  h e;
  e.count[3] = 1;
  e.merge(d);
  EXPECT_EQ(e.samples(), 101u);
  EXPECT_EQ(e.quantile_ns(0.0), 16u);  // the first sample's bucket
}

// Two fibers pass a token through two channels: every round trip suspends and wakes each
// once, so the 1-in-64 sampling records some of both (mutation that fails it: sampling()
// in src/worker.hpp always false, or record_resume not called in worker::suspend).
TEST(Stats, PingPongRecordsScheduleLatencyAndWaitTime) {
  weft::scheduler s({.workers = 2});
  constexpr int rounds = 5000;
  s.block_on([] {
    weft::channel<int> ping(1), pong(1);
    auto partner = weft::spawn([&] {
      for (int i = 0; i < rounds; ++i) (void)pong.send(*ping.recv());
    });
    for (int i = 0; i < rounds; ++i) {
      (void)ping.send(i);
      (void)pong.recv();
    }
    partner.join();
  });
  const weft::worker_stats t = s.stats().total();
  // ~2 * rounds suspensions and wakes, one switch in 64 sampled: ~150 of each expected.
  EXPECT_GT(t.wait_time.samples(), 10u);
  EXPECT_GT(t.schedule_latency.samples(), 10u);
  EXPECT_LT(t.wait_time.samples(), 2u * rounds);
}

// An idle scheduler's workers park and count it; a worker that ran a fiber counts busy
// time (mutation that fails it: park_since_/parked_ns_ never written in worker::park).
// No bound on the durations themselves: a loaded machine decides those.
TEST(Stats, IdleWorkersCountParkedTimeAndBusyIsTheRest) {
  weft::scheduler s({.workers = 2});
  s.block_on([] { weft::this_fiber::sleep_for(1ms); });
  std::this_thread::sleep_for(100ms);
  const weft::scheduler_stats st = s.stats();
  for (const weft::worker_stats& w : st.workers) {
    EXPECT_EQ(w.run_queue_depth, 0u);
    EXPECT_EQ(w.remote_queue_depth, 0u);
  }
  const weft::worker_stats t = st.total();
  EXPECT_GT(t.parked_ns, 0u);
  EXPECT_GT(t.parks, 0u);
  EXPECT_GT(t.busy_ns, 0u);
  EXPECT_EQ(st.inject_queue_depth, 0u);
}

TEST(Stats, FormatStatsRendersTextAndJson) {
  weft::scheduler s({.workers = 2});
  s.block_on([] {
    for (int i = 0; i < 200; ++i) weft::this_fiber::sleep_for(10us);
  });
  const weft::scheduler_stats st = s.stats();
  const std::string text = weft::format_stats(st);
  EXPECT_EQ(text.rfind("weft stats: workers=2 inject_queue_depth=", 0), 0u) << text;
  EXPECT_NE(text.find("\nw0: fibers_run="), std::string::npos) << text;
  EXPECT_NE(text.find("\nw1: fibers_run="), std::string::npos) << text;
  EXPECT_NE(text.find("\ntotal: fibers_run="), std::string::npos) << text;
  EXPECT_NE(text.find(" wait_time={n="), std::string::npos) << text;
  const std::string json = weft::format_stats(st, weft::stats_format::json);
  EXPECT_EQ(json.rfind("{\"inject_queue_depth\":", 0), 0u) << json;
  EXPECT_NE(json.find("\"total\":{\"fibers_run\":"), std::string::npos) << json;
  EXPECT_NE(json.find("\"schedule_latency\":{\"samples\":"), std::string::npos) << json;
  // Brackets balance; two workers and the total (a structural check; the trace test has
  // a full parser).
  int depth = 0;
  for (char c : json) {
    if (c == '{' || c == '[') ++depth;
    if (c == '}' || c == ']') --depth;
    ASSERT_GE(depth, 0) << json;
  }
  EXPECT_EQ(depth, 0) << json;
  std::size_t objects = 0;
  for (std::size_t p = json.find("{\"fibers_run\""); p != std::string::npos;
       p = json.find("{\"fibers_run\"", p + 1))
    ++objects;
  EXPECT_EQ(objects, 3u) << json;
  // 200 sleeps, two switches each: some of their suspensions were timed (mutation that
  // fails it: sample_suspend() in src/worker.hpp never true, or sampling by the switch
  // counter's low bits, which a sleep loop's even switch count can miss forever).
  EXPECT_GT(st.total().wait_time.samples(), 0u) << text;
}

}  // namespace
