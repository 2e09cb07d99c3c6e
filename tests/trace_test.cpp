// tests/trace_test.cpp - event tracing (src/trace.hpp): scheduler::trace_start/trace_stop
// and WEFT_TRACE produce Chrome trace-event JSON that parses, keeps each worker's slices
// in order without overlap, and gives every recorded wake a run of the fiber it woke.
#include <weft/weft.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

namespace {

using namespace std::chrono_literals;

// A small JSON reader: enough for the trace (objects, arrays, strings without \u escapes,
// numbers, true/false/null). Throws std::runtime_error at the first malformed byte.
struct json {
  enum kind_t { null, boolean, number, string, array, object } kind = null;
  double num = 0;
  std::string str;
  std::vector<json> arr;
  std::map<std::string, json> obj;

  const json& operator[](const std::string& k) const {
    static const json none;
    auto it = obj.find(k);
    return it == obj.end() ? none : it->second;
  }
  bool has(const std::string& k) const { return obj.count(k) != 0; }
};

class json_parser {
public:
  explicit json_parser(const std::string& s) : s_(s) {}
  json parse() {
    json v = value();
    ws();
    if (p_ != s_.size()) fail("trailing bytes");
    return v;
  }

private:
  [[noreturn]] void fail(const char* what) {
    throw std::runtime_error(std::string("json: ") + what + " at byte " + std::to_string(p_));
  }
  void ws() {
    while (p_ < s_.size() && (s_[p_] == ' ' || s_[p_] == '\n' || s_[p_] == '\t' || s_[p_] == '\r')) ++p_;
  }
  char peek() {
    ws();
    if (p_ >= s_.size()) fail("unexpected end");
    return s_[p_];
  }
  void expect(char c) {
    if (peek() != c) fail("unexpected byte");
    ++p_;
  }
  json value() {
    const char c = peek();
    if (c == '{') return object();
    if (c == '[') return array();
    if (c == '"') {
      json v;
      v.kind = json::string;
      v.str = string();
      return v;
    }
    if (s_.compare(p_, 4, "true") == 0 || s_.compare(p_, 4, "null") == 0 ||
        s_.compare(p_, 5, "false") == 0) {
      json v;
      v.kind = s_[p_] == 'n' ? json::null : json::boolean;
      p_ += s_[p_] == 'f' ? 5 : 4;
      return v;
    }
    return number();
  }
  std::string string() {
    expect('"');
    std::string out;
    while (p_ < s_.size() && s_[p_] != '"') {
      if (s_[p_] == '\\') {
        if (++p_ >= s_.size()) fail("bad escape");
        const char e = s_[p_];
        out += e == 'n' ? '\n' : e == 't' ? '\t' : e;
      } else {
        out += s_[p_];
      }
      ++p_;
    }
    if (p_ >= s_.size()) fail("unterminated string");
    ++p_;
    return out;
  }
  json number() {
    const char* b = s_.c_str() + p_;
    char* e = nullptr;
    json v;
    v.kind = json::number;
    v.num = std::strtod(b, &e);
    if (e == b) fail("not a value");
    p_ += static_cast<std::size_t>(e - b);
    return v;
  }
  json array() {
    json v;
    v.kind = json::array;
    expect('[');
    if (peek() == ']') {
      ++p_;
      return v;
    }
    for (;;) {
      v.arr.push_back(value());
      if (peek() == ']') break;
      expect(',');
    }
    ++p_;
    return v;
  }
  json object() {
    json v;
    v.kind = json::object;
    expect('{');
    if (peek() == '}') {
      ++p_;
      return v;
    }
    for (;;) {
      peek();
      std::string k = string();
      expect(':');
      v.obj[k] = value();
      if (peek() == '}') break;
      expect(',');
    }
    ++p_;
    return v;
  }
  const std::string& s_;
  std::size_t p_ = 0;
};

TEST(TraceJson, ParserReadsWhatItShouldAndRejectsGarbage) {
  const json v = json_parser(R"({"a":[1,2.5,-3e2],"b":{"c":"x\"y"},"d":true,"e":null})").parse();
  EXPECT_EQ(v["a"].arr.size(), 3u);
  EXPECT_EQ(v["a"].arr[2].num, -300.0);
  EXPECT_EQ(v["b"]["c"].str, "x\"y");
  EXPECT_THROW(json_parser("{\"a\":}").parse(), std::runtime_error);
  EXPECT_THROW(json_parser("[1,2").parse(), std::runtime_error);
  EXPECT_THROW(json_parser("{} x").parse(), std::runtime_error);
}

// What the checks below need of a trace: its events by kind.
struct trace_view {
  std::map<int, std::string> thread_names;            // tid -> name
  std::map<int, std::vector<const json*>> per_track;  // tid -> X and i events, file order
  std::vector<const json*> runs, wakes, flow_starts, flow_ends, instants;
};

trace_view view_of(const json& root) {
  trace_view v;
  for (const json& e : root["traceEvents"].arr) {
    const std::string ph = e["ph"].str;
    const int tid = static_cast<int>(e["tid"].num);
    if (ph == "M" && e["name"].str == "thread_name") v.thread_names[tid] = e["args"]["name"].str;
    if (ph == "X" || ph == "i") v.per_track[tid].push_back(&e);
    if (ph == "X" && e["cat"].str == "run") v.runs.push_back(&e);
    if (ph == "X" && e["cat"].str == "wake") v.wakes.push_back(&e);
    if (ph == "i") v.instants.push_back(&e);
    if (ph == "s") v.flow_starts.push_back(&e);
    if (ph == "f") v.flow_ends.push_back(&e);
  }
  return v;
}

// Per track: events in time order; run slices (and parks) do not overlap each other.
void expect_tracks_ordered(const trace_view& v) {
  for (const auto& [tid, events] : v.per_track) {
    double last_ts = -1e300, busy_until = -1e300;
    for (const json* e : events) {
      const double ts = (*e)["ts"].num;
      EXPECT_GE(ts, last_ts) << "worker " << tid << ": events out of order";
      last_ts = ts;
      const std::string cat = (*e)["cat"].str;
      if (cat == "run" || cat == "park") {
        // 1 ns of slack: ts and dur are printed rounded to the nanosecond.
        EXPECT_GE(ts + 0.0015, busy_until) << "worker " << tid << ": slices overlap at " << ts;
        busy_until = ts + (*e)["dur"].num;
      }
    }
  }
}

// Every recorded wake is followed by a run of the fiber it woke, and its flow arrow
// (exactly one per wake) goes from the wake to such a run (mutation that fails it: the
// trace_switch call in worker::switch_hook removed, so resumed fibers have no runs).
void expect_wakes_matched(const trace_view& v) {
  std::map<double, int> flow_ids;  // flow id -> starts seen
  std::map<std::uint64_t, std::vector<double>> run_starts;
  for (const json* r : v.runs)
    run_starts[static_cast<std::uint64_t>((*r)["args"]["fiber"].num)].push_back((*r)["ts"].num);
  for (const json* w : v.wakes) {
    const auto fiber = static_cast<std::uint64_t>((*w)["args"]["fiber"].num);
    const double ts = (*w)["ts"].num;
    bool ran_after = false;
    for (double t : run_starts[fiber]) ran_after |= t >= ts;
    EXPECT_TRUE(ran_after) << "wake of fiber #" << fiber << " at " << ts << " has no run after it";
  }
  EXPECT_EQ(v.flow_starts.size(), v.wakes.size());
  std::map<double, double> start_ts;
  for (const json* s : v.flow_starts) start_ts[(*s)["id"].num] = (*s)["ts"].num;
  EXPECT_EQ(start_ts.size(), v.flow_starts.size()) << "flow ids repeat";
  EXPECT_EQ(v.flow_ends.size(), v.flow_starts.size());
  for (const json* f : v.flow_ends) {
    auto it = start_ts.find((*f)["id"].num);
    ASSERT_NE(it, start_ts.end()) << "a flow ends without a start";
    EXPECT_GE((*f)["ts"].num, it->second) << "a flow goes back in time";
  }
}

// Two fibers ping-pong through channels, a named fiber sleeps, children are spawned and
// joined: the trace holds runs of each, their wakes, spawns and timer firings.
TEST(Trace, RecordsRunsWakesSpawnsAndTimersInOrder) {
  weft::scheduler s({.workers = 2});
  s.trace_start();
  std::uint64_t pinger = 0, ponger = 0, sleeper = 0;
  s.block_on([&] {
    pinger = weft::this_fiber::id();
    weft::channel<int> ping(1), pong(1);
    auto partner = weft::spawn([&] {
      ponger = weft::this_fiber::id();
      for (int i = 0; i < 300; ++i) (void)pong.send(*ping.recv());
    });
    auto napper = weft::spawn(weft::spawn_options{.name = "napper"}, [&] {
      sleeper = weft::this_fiber::id();
      for (int i = 0; i < 5; ++i) weft::this_fiber::sleep_for(1ms);
    });
    for (int i = 0; i < 300; ++i) {
      (void)ping.send(i);
      (void)pong.recv();
    }
    partner.join();
    napper.join();
  });
  const std::string text = s.trace_stop();
  ASSERT_FALSE(text.empty());
  const json root = json_parser(text).parse();
  const trace_view v = view_of(root);
  EXPECT_EQ(v.thread_names.at(0), "worker 0");
  EXPECT_EQ(v.thread_names.at(1), "worker 1");
  expect_tracks_ordered(v);
  expect_wakes_matched(v);
  std::map<std::uint64_t, int> runs_of;
  for (const json* r : v.runs) ++runs_of[static_cast<std::uint64_t>((*r)["args"]["fiber"].num)];
  // Each side of the ping-pong suspends ~300 times: that many runs at least.
  EXPECT_GE(runs_of[pinger], 300) << text.substr(0, 2000);
  EXPECT_GE(runs_of[ponger], 300);
  EXPECT_GE(runs_of[sleeper], 5);
  // Wakes: ~600 in the ping-pong (a worker records its wakes from its first 64 on).
  EXPECT_GE(v.wakes.size(), 400u);
  int spawns = 0, timers = 0;
  for (const json* i : v.instants) {
    if ((*i)["name"].str == "spawn" && static_cast<std::uint64_t>((*i)["args"]["parent"].num) == pinger) ++spawns;
    if ((*i)["name"].str == "timers") ++timers;
  }
  EXPECT_EQ(spawns, 2);
  EXPECT_GE(timers, 1);  // five sleeps; a searching peer may fire several at once
}

// One slice of a waker wakes the same fiber many times, on the other worker, which runs it
// in between: the waker never suspends (a no_suspend_scope would abort), it retries a
// try_send on a rendezvous channel, which succeeds only once the receiver has run and
// waits in recv again. A wake records no time, so all of them lie between the same two
// timestamps of the waker's ring; only their wait numbers tell which run each caused.
// Every recorded wake gets its own arrow, to a distinct run of the fiber, in wake order
// (mutation that fails it: tracer::stop matching each wake to the first run of its fiber
// that starts at or after its ring's previous timestamp, the time-based matching with the
// wake's clock gone: every arrow then ends at the same run).
TEST(Trace, WakesWithinOneSliceOfTheirWakerReachDistinctRuns) {
  weft::scheduler s({.workers = 2});
  s.trace_start();
  // A worker records its wakes from its first 64 after trace_start on: at least the last
  // rounds - 63 of these are recorded.
  constexpr int rounds = 72;
  std::uint64_t woken = 0, waker = 0;
  s.block_on([&] {
    weft::channel<int> ch;  // capacity 0: try_send needs a receiver waiting
    auto receiver = weft::spawn([&] {
      woken = weft::this_fiber::id();
      for (int i = 0; i < rounds; ++i) (void)ch.recv();
    });
    auto sender = weft::spawn([&] {
      waker = weft::this_fiber::id();
      weft::this_fiber::no_suspend_scope one_slice;
      for (int i = 0; i < rounds; ++i)
        while (ch.try_send(i) != weft::channel_status::ok) std::this_thread::yield();
    });
    receiver.join();
    sender.join();
  });
  const std::string text = s.trace_stop();
  const json root = json_parser(text).parse();
  const trace_view v = view_of(root);
  expect_tracks_ordered(v);
  expect_wakes_matched(v);
  const auto num = [](const json* e, const char* arg) {
    return static_cast<std::uint64_t>((*e)["args"][arg].num);
  };
  // The recorded wakes, all inside one run of the waker.
  std::vector<const json*> wakes;
  for (const json* w : v.wakes)
    if (num(w, "fiber") == woken && num(w, "waker") == waker) wakes.push_back(w);
  ASSERT_GE(wakes.size(), static_cast<std::size_t>(rounds - 64)) << text.substr(0, 2000);
  const int tid = static_cast<int>((*wakes[0])["tid"].num);
  int slices = 0;
  for (const json* r : v.runs) {
    if (num(r, "fiber") != waker) continue;
    const double b = (*r)["ts"].num, e = b + (*r)["dur"].num + 0.0015;
    bool all_in = static_cast<int>((*r)["tid"].num) == tid;
    for (const json* w : wakes) all_in = all_in && (*w)["ts"].num >= b && (*w)["ts"].num <= e;
    slices += all_in;
  }
  EXPECT_EQ(slices, 1) << "the wakes are not all inside one run of the waker";
  // The woken fiber's runs, by where they start; the arrows that end at one, by id (ids
  // follow the wakes' order in their ring).
  std::map<std::pair<int, double>, int> run_at;
  for (const json* r : v.runs)
    if (num(r, "fiber") == woken) run_at[{static_cast<int>((*r)["tid"].num), (*r)["ts"].num}] = 0;
  std::map<double, double> arrow_end;  // flow id -> its end's ts
  for (const json* f : v.flow_ends) {
    auto it = run_at.find({static_cast<int>((*f)["tid"].num), (*f)["ts"].num});
    if (it == run_at.end()) continue;
    ++it->second;
    arrow_end[(*f)["id"].num] = (*f)["ts"].num;
  }
  EXPECT_EQ(arrow_end.size(), wakes.size()) << "not one arrow per wake";
  for (const auto& [at, n] : run_at)
    EXPECT_LE(n, 1) << "a run at " << at.second << " ends " << n << " arrows";
  double last = -1e300;
  for (const auto& [id, ts] : arrow_end) {
    EXPECT_GT(ts, last) << "arrow " << id << " does not end at a later run than the one before";
    last = ts;
  }
}

TEST(Trace, StopWithoutStartIsEmptyAndBadRequestsAreRefused) {
  weft::scheduler s({.workers = 1});
  EXPECT_EQ(s.trace_stop(), "");
  EXPECT_THROW(s.trace_start(0), std::invalid_argument);
  EXPECT_THROW(s.trace_start(std::size_t{1} << 40), std::invalid_argument);
  s.trace_start(8);  // a tiny ring: keeps the last 8 events of each worker
  s.block_on([] {
    for (int i = 0; i < 100; ++i) weft::this_fiber::yield();
  });
  try {
    s.trace_stop("/nonexistent-dir/trace.json");
    ADD_FAILURE() << "no error for an unwritable path";
  } catch (const std::system_error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/trace.json"), std::string::npos) << e.what();
  }
  // A restart after a full ring: the new session holds only its own events.
  s.trace_start(8);
  const json root = json_parser(s.trace_stop()).parse();
  EXPECT_TRUE(view_of(root).runs.empty());
}

// WEFT_TRACE=path: a session from the start, written when the scheduler shuts down.
TEST(Trace, EnvironmentVariableWritesTheFileAtShutdown) {
  const std::string path = testing::TempDir() + "weft_trace_test." + std::to_string(::getpid()) + ".json";
  setenv("WEFT_TRACE", path.c_str(), 1);
  testing::internal::CaptureStderr();
  std::uint64_t id = 0;
  {
    weft::scheduler s({.workers = 2});
    id = s.block_on([] {
      return weft::spawn([] {
               weft::this_fiber::sleep_for(1ms);
               return weft::this_fiber::id();
             })
          .join();
    });
  }
  unsetenv("WEFT_TRACE");
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("weft: WEFT_TRACE: trace written to " + path), std::string::npos) << err;
  std::ifstream in(path);
  ASSERT_TRUE(in.good()) << path;
  std::stringstream text;
  text << in.rdbuf();
  std::remove(path.c_str());
  const json root = json_parser(text.str()).parse();
  const trace_view v = view_of(root);
  bool ran = false;
  for (const json* r : v.runs) ran |= static_cast<std::uint64_t>((*r)["args"]["fiber"].num) == id;
  EXPECT_TRUE(ran) << text.str().substr(0, 2000);
  expect_tracks_ordered(v);
  expect_wakes_matched(v);
}

}  // namespace
