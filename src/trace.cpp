// src/trace.cpp - trace sessions and their Chrome trace-event JSON (see trace.hpp).
#include "trace.hpp"

#include "runtime.hpp"
#include "worker.hpp"

#include <algorithm>
#include <cstdarg>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <map>
#include <stdexcept>
#include <system_error>
#include <unordered_map>
#include <utility>

namespace weft::detail {

std::int64_t steady_now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch()).count();
}

trace_ring::trace_ring(std::size_t capacity)
    : slots_(std::make_unique<slot[]>(capacity)), mask_(capacity - 1) {}

bool trace_ring::read(std::uint64_t i, event& out) const noexcept {
  const slot& s = slots_[i & mask_];
  // acquire: pairs with the release store of seq in emit(); ts, a and b are then event i's,
  // unless a late writer (trace.hpp step 4) overwrites the slot while we read: the seq
  // check after the copy catches that. (Exactly on x86-64, which does not reorder loads
  // with loads; elsewhere the copy's loads could pass the re-check, and a torn event is
  // possible in that one-event window. No fence: TSan does not model them.)
  if (s.seq.load(std::memory_order_acquire) != i + 1) return false;
  out.ts = s.ts.load(std::memory_order_relaxed);
  const std::uint64_t a = s.a.load(std::memory_order_relaxed);
  out.b = s.b.load(std::memory_order_relaxed);
  out.kind = static_cast<trace_kind>(a >> 56);
  out.a = a & a_mask;
  return s.seq.load(std::memory_order_acquire) == i + 1;
}

bool tracer::running() const {
  std::lock_guard<std::mutex> g(mu_);
  return running_;
}

void tracer::start(runtime& rt, std::size_t events_per_worker) {
  if (events_per_worker == 0 || events_per_worker > max_events)
    throw std::invalid_argument("weft::scheduler::trace_start: events_per_worker must be 1 to " +
                                std::to_string(max_events) + ", not " +
                                std::to_string(events_per_worker));
  std::size_t cap = 1;
  while (cap < events_per_worker) cap *= 2;
  std::lock_guard<std::mutex> g(mu_);
  const unsigned n = rt.worker_count();
  for (unsigned i = 0; i < n; ++i) rt.worker_at(i).set_trace(nullptr);  // a restart
  if (rings_.size() != n || rings_[0]->capacity() != cap) {
    for (auto& r : rings_) retired_.push_back(std::move(r));
    rings_.clear();
    for (unsigned i = 0; i < n; ++i) rings_.push_back(std::make_unique<trace_ring>(cap));
  }
  first_.assign(n, 0);
  for (unsigned i = 0; i < n; ++i) first_[i] = rings_[i]->head();
  tsc0_ = trace_clock();
  ns0_ = steady_now_ns();
  running_ = true;
  for (unsigned i = 0; i < n; ++i) rt.worker_at(i).set_trace(rings_[i].get());  // step 1
}

namespace {

// One line of the JSON, with the worker and time it sorts by.
struct out_event {
  double ts;
  std::string json;
};

const char* end_reason(trace_kind k) {
  switch (k) {
    case trace_kind::switch_wait: return "wait";
    case trace_kind::switch_yield: return "yield";
    case trace_kind::switch_end: return "end";
    default: return "switch";
  }
}

std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* f, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, f);
  const int n = std::vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return std::string(buf, n < 0 ? 0 : std::min<std::size_t>(static_cast<std::size_t>(n), sizeof buf - 1));
}

struct run_open {
  double ts;
  unsigned worker;
};

// A resumed run's key: the fiber's (task's) id and the wait number it resumed from.
using resume_key = std::pair<std::uint64_t, std::uint64_t>;

// A wake, until its run is known (trace.hpp, "Export"). lo: its ring's previous timestamp;
// hi: the next one (lo when there is none); out: its slot in its track.
struct wake_at {
  unsigned worker;
  std::uint64_t fiber, wait, waker;
  double lo, hi;
  std::size_t out;
};

struct resume_key_hash {
  std::size_t operator()(const resume_key& k) const noexcept {
    return std::hash<std::uint64_t>()(k.first * 0x9e3779b97f4a7c15ull ^ k.second);
  }
};
using resume_map = std::unordered_map<resume_key, run_open, resume_key_hash>;

// Rebuilds one worker's slices from its events (trace.hpp, "Export").
class track_builder {
public:
  track_builder(unsigned worker, std::vector<out_event>& out, resume_map& resumed,
                std::vector<wake_at>& wakes)
      : w_(worker), out_(out), resumed_(resumed), wakes_(wakes), first_wake_(wakes.size()) {}

  // A timestamped event, at ts (microseconds since start).
  void on(const trace_ring::event& e, double ts) {
    last_ = ts;
    for (std::size_t i = first_wake_; i < wakes_.size(); ++i) wakes_[i].hi = ts;
    first_wake_ = wakes_.size();
    switch (e.kind) {
      case trace_kind::switch_wait:
      case trace_kind::switch_yield:
      case trace_kind::switch_end:
      case trace_kind::switch_none:
        close(ts, end_reason(e.kind));
        if (e.b) {
          open(e.b, ts);
          // The run that the wake of this fiber's wait e.a caused; the first if two claim it
          // (2^56 waits of one fiber later: never).
          if (e.a) resumed_.emplace(resume_key{e.b, e.a}, run_open{ts, w_});
        }
        break;
      case trace_kind::start:
        close(ts, "join");  // the task it runs inline in, if any
        open(e.a, ts);
        break;
      case trace_kind::end:
        close(ts, "end");
        if (e.b) open(e.b, ts);
        break;
      case trace_kind::spawn:
        instant(ts, "spawn", fmt("\"fiber\":%" PRIu64 ",\"parent\":%" PRIu64, e.a, e.b));
        break;
      case trace_kind::steal:
        instant(ts, "steal", fmt("\"victim\":%" PRIu64 ",\"count\":%" PRIu64, e.a, e.b));
        break;
      case trace_kind::park:
        park_at_ = ts;
        break;
      case trace_kind::unpark:
        if (park_at_ >= 0)
          out_.push_back({park_at_, fmt("{\"ph\":\"X\",\"pid\":1,\"tid\":%u,\"ts\":%.3f,\"dur\":%.3f,"
                                        "\"name\":\"parked\",\"cat\":\"park\"}",
                                        w_, park_at_, ts - park_at_)});
        park_at_ = -1;
        break;
      case trace_kind::timers:
        instant(ts, "timers", fmt("\"count\":%" PRIu64, e.a));
        break;
      case trace_kind::io:
        instant(ts, "io", fmt("\"count\":%" PRIu64, e.a));
        break;
      case trace_kind::wake:
        break;  // on_wake
    }
  }
  // A wake (no timestamp: e.ts is the woken fiber's wait number). Its line is written
  // once its run is known (tracer::stop); its slot keeps its place in the track.
  void on_wake(const trace_ring::event& e) {
    wakes_.push_back({w_, e.a, e.ts & trace_ring::a_mask, e.b, last_, last_, out_.size()});
    out_.push_back({last_, {}});
  }
  void finish() { close(last_, "running"); }  // still running at trace_stop

private:
  void open(std::uint64_t id, double ts) {
    id_ = id;
    at_ = ts;
  }
  void close(double ts, const char* why) {
    if (!id_) return;
    out_.push_back({at_, fmt("{\"ph\":\"X\",\"pid\":1,\"tid\":%u,\"ts\":%.3f,\"dur\":%.3f,"
                             "\"name\":\"fiber #%" PRIu64 "\",\"cat\":\"run\",\"args\":{"
                             "\"fiber\":%" PRIu64 ",\"end\":\"%s\"}}",
                             w_, at_, ts - at_, id_, id_, why)});
    id_ = 0;
  }
  void instant(double ts, const char* name, const std::string& args) {
    out_.push_back({ts, fmt("{\"ph\":\"i\",\"s\":\"t\",\"pid\":1,\"tid\":%u,\"ts\":%.3f,"
                            "\"name\":\"%s\",\"cat\":\"%s\",\"args\":{%s}}",
                            w_, ts, name, name, args.c_str())});
  }

  unsigned w_;
  std::vector<out_event>& out_;
  resume_map& resumed_;
  std::vector<wake_at>& wakes_;
  std::size_t first_wake_;  // this ring's wakes from here on have no next timestamp yet
  std::uint64_t id_ = 0;    // the task whose slice is open (0: none)
  double at_ = 0, last_ = 0, park_at_ = -1;
};

}  // namespace

std::string tracer::stop(runtime& rt) {
  std::lock_guard<std::mutex> g(mu_);
  if (!running_) return {};
  running_ = false;
  const unsigned n = rt.worker_count();
  for (unsigned i = 0; i < n; ++i) rt.worker_at(i).set_trace(nullptr);  // step 4
  const std::uint64_t tsc1 = trace_clock();
  const std::int64_t ns1 = steady_now_ns();
  // TSC ticks -> microseconds since start (ticks per ns from the two clock pairs).
  const double us_per_tick = tsc1 > tsc0_ && ns1 > ns0_
                                 ? static_cast<double>(ns1 - ns0_) / 1e3 / static_cast<double>(tsc1 - tsc0_)
                                 : 1e-3;
  const auto to_us = [&](std::uint64_t ts) {
    return static_cast<double>(static_cast<std::int64_t>(ts - tsc0_)) * us_per_tick;
  };
  std::vector<std::vector<out_event>> tracks(n);
  resume_map resumed;  // runs that resumed a fiber from a wait
  std::vector<wake_at> wakes;              // ring by ring, each in ring order
  for (unsigned i = 0; i < n; ++i) {
    const trace_ring& r = *rings_[i];
    const std::uint64_t head = r.head();
    const std::uint64_t from = std::max(first_[i], head > r.capacity() ? head - r.capacity() : 0);
    track_builder b(i, tracks[i], resumed, wakes);
    trace_ring::event e{};
    for (std::uint64_t k = from; k < head; ++k) {
      if (!r.read(k, e)) continue;
      if (e.kind == trace_kind::wake)
        b.on_wake(e);
      else
        b.on(e, to_us(e.ts));
    }
    b.finish();
  }
  // Each wake's time (trace.hpp, "Export"): backwards through each ring's wakes, so that
  // each is drawn no later than the wakes after it.
  std::vector<double> shown(wakes.size());
  std::vector<const run_open*> caused(wakes.size(), nullptr);
  double cap = 0;
  for (std::size_t j = wakes.size(); j-- > 0;) {
    const wake_at& wk = wakes[j];
    if (j + 1 == wakes.size() || wakes[j + 1].worker != wk.worker) cap = wk.hi;  // a ring's last
    cap = std::min(cap, wk.hi);
    if (wk.wait) {
      auto run = resumed.find(resume_key{wk.fiber, wk.wait});
      if (run != resumed.end()) {
        caused[j] = &run->second;
        cap = std::min(cap, run->second.ts);
      }
    }
    shown[j] = cap = std::max(wk.lo, cap);
  }
  // Their slices, and the arrows (none when the run was not recorded: resumed after
  // trace_stop, or its switch was overwritten), in ring order.
  std::string flows;
  std::uint64_t flow = 0;
  for (std::size_t j = 0; j < wakes.size(); ++j) {
    const wake_at& wk = wakes[j];
    out_event& o = tracks[wk.worker][wk.out];
    o.ts = shown[j];
    o.json = fmt("{\"ph\":\"X\",\"pid\":1,\"tid\":%u,\"ts\":%.3f,\"dur\":0.001,"
                 "\"name\":\"wake #%" PRIu64 "\",\"cat\":\"wake\",\"args\":{\"fiber\":%" PRIu64
                 ",\"waker\":%" PRIu64 "}}",
                 wk.worker, shown[j], wk.fiber, wk.fiber, wk.waker);
    const run_open* r = caused[j];
    if (!r) continue;
    ++flow;
    flows += fmt("{\"ph\":\"s\",\"pid\":1,\"tid\":%u,\"ts\":%.3f,\"id\":%" PRIu64
                 ",\"name\":\"wake\",\"cat\":\"wake\"},\n",
                 wk.worker, std::min(shown[j], r->ts), flow);
    flows += fmt("{\"ph\":\"f\",\"bp\":\"e\",\"pid\":1,\"tid\":%u,\"ts\":%.3f,\"id\":%" PRIu64
                 ",\"name\":\"wake\",\"cat\":\"wake\"},\n", r->worker, r->ts, flow);
  }
  std::string json = "{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n";
  for (unsigned i = 0; i < n; ++i)
    json += fmt("{\"ph\":\"M\",\"pid\":1,\"tid\":%u,\"name\":\"thread_name\",\"args\":{\"name\":"
                "\"worker %u\"}},\n", i, i);
  for (auto& t : tracks) {
    std::stable_sort(t.begin(), t.end(), [](const out_event& x, const out_event& y) { return x.ts < y.ts; });
    for (const out_event& o : t) (json += o.json) += ",\n";
  }
  json += flows;
  json += fmt("{\"ph\":\"M\",\"pid\":1,\"name\":\"process_name\",\"args\":{\"name\":\"weft\"}}\n]}\n");
  return json;
}

void write_trace_file(const std::string& path, const std::string& json) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (!f) throw std::system_error(errno, std::generic_category(), "weft: cannot write the trace to " + path);
  const bool ok = std::fwrite(json.data(), 1, json.size(), f) == json.size();
  const int err = errno;
  if (std::fclose(f) != 0 || !ok)
    throw std::system_error(ok ? errno : err, std::generic_category(), "weft: cannot write the trace to " + path);
}

}  // namespace weft::detail
