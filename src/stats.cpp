// src/stats.cpp - merging and rendering of scheduler_stats (include/weft/stats.hpp). The
// counters themselves live in each worker (worker.hpp, "Statistics"), read by
// worker::stats().
#include <weft/stats.hpp>

#include <algorithm>
#include <cinttypes>
#include <cstdio>

namespace weft {

std::size_t duration_histogram::bucket_of(std::uint64_t ns) noexcept {
  if (ns < 2) return 0;
  const auto k = static_cast<std::size_t>(63 - __builtin_clzll(ns));  // floor(log2(ns))
  return std::min(k, bucket_count - 1);
}

std::uint64_t duration_histogram::samples() const noexcept {
  std::uint64_t n = 0;
  for (std::uint64_t c : count) n += c;
  return n;
}

std::uint64_t duration_histogram::quantile_ns(double q) const noexcept {
  const std::uint64_t n = samples();
  if (n == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  // The smallest bucket at whose end at least q * n samples have been counted (at least one).
  const auto want = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(q * static_cast<double>(n) + 0.999999));
  std::uint64_t seen = 0;
  for (std::size_t k = 0; k < bucket_count; ++k) {
    seen += count[k];
    if (seen >= want) return std::uint64_t{2} << k;
  }
  return std::uint64_t{2} << (bucket_count - 1);
}

void duration_histogram::merge(const duration_histogram& o) noexcept {
  for (std::size_t k = 0; k < bucket_count; ++k) count[k] += o.count[k];
}

namespace {

// Every plain counter of worker_stats, by name, in one table: total() and both formats
// walk it, so a new counter needs one line here.
struct field {
  const char* name;
  std::uint64_t worker_stats::*member;
};
constexpr field fields[] = {
    {"fibers_run", &worker_stats::fibers_run},
    {"inline_runs", &worker_stats::inline_runs},
    {"switches", &worker_stats::switches},
    {"steals", &worker_stats::steals},
    {"stolen", &worker_stats::stolen},
    {"steal_attempts", &worker_stats::steal_attempts},
    {"parks", &worker_stats::parks},
    {"injected", &worker_stats::injected},
    {"remote_wakes", &worker_stats::remote_wakes},
    {"timers_fired", &worker_stats::timers_fired},
    {"io_polls", &worker_stats::io_polls},
    {"io_ready", &worker_stats::io_ready},
    {"busy_ns", &worker_stats::busy_ns},
    {"searching_ns", &worker_stats::searching_ns},
    {"parked_ns", &worker_stats::parked_ns},
    {"run_queue_depth", &worker_stats::run_queue_depth},
    {"remote_queue_depth", &worker_stats::remote_queue_depth},
};

struct histogram_field {
  const char* name;
  duration_histogram worker_stats::*member;
};
constexpr histogram_field histograms[] = {
    {"schedule_latency", &worker_stats::schedule_latency},
    {"wait_time", &worker_stats::wait_time},
};

void append(std::string& out, const char* fmt, std::uint64_t v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  out += buf;
}

// A duration for people: 850ns, 12.5us, 3.2ms, 1.5s.
std::string human_ns(std::uint64_t ns) {
  char buf[32];
  if (ns < 1'000)
    std::snprintf(buf, sizeof buf, "%" PRIu64 "ns", ns);
  else if (ns < 1'000'000)
    std::snprintf(buf, sizeof buf, "%.1fus", static_cast<double>(ns) / 1e3);
  else if (ns < 1'000'000'000)
    std::snprintf(buf, sizeof buf, "%.1fms", static_cast<double>(ns) / 1e6);
  else
    std::snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(ns) / 1e9);
  return buf;
}

void text_worker(std::string& out, const char* label, const worker_stats& w) {
  out += label;
  for (const field& f : fields) {
    out += ' ';
    out += f.name;
    append(out, "=%" PRIu64, w.*f.member);
  }
  for (const histogram_field& h : histograms) {
    const duration_histogram& d = w.*h.member;
    out += ' ';
    out += h.name;
    append(out, "={n=%" PRIu64, d.samples());
    if (d.samples() != 0) {
      out += " p50<" + human_ns(d.quantile_ns(0.5)) + " p99<" + human_ns(d.quantile_ns(0.99)) +
             " max<" + human_ns(d.quantile_ns(1.0));
    }
    out += '}';
  }
  out += '\n';
}

void json_worker(std::string& out, const worker_stats& w) {
  out += '{';
  const char* sep = "";
  for (const field& f : fields) {
    out += sep;
    out += '"';
    out += f.name;
    append(out, "\":%" PRIu64, w.*f.member);
    sep = ",";
  }
  for (const histogram_field& h : histograms) {
    const duration_histogram& d = w.*h.member;
    out += ",\"";
    out += h.name;
    append(out, "\":{\"samples\":%" PRIu64, d.samples());
    append(out, ",\"p50_ns\":%" PRIu64, d.quantile_ns(0.5));
    append(out, ",\"p99_ns\":%" PRIu64, d.quantile_ns(0.99));
    append(out, ",\"max_ns\":%" PRIu64, d.quantile_ns(1.0));
    out += ",\"buckets\":[";  // buckets[k]: samples in [2^k, 2^(k+1)) ns
    for (std::size_t k = 0; k < duration_histogram::bucket_count; ++k)
      append(out, k ? ",%" PRIu64 : "%" PRIu64, d.count[k]);
    out += "]}";
  }
  out += '}';
}

}  // namespace

worker_stats scheduler_stats::total() const {
  worker_stats s;
  for (const auto& w : workers) {
    for (const field& f : fields) s.*f.member += w.*f.member;
    for (const histogram_field& h : histograms) (s.*h.member).merge(w.*h.member);
  }
  return s;
}

std::string format_stats(const scheduler_stats& s, stats_format f) {
  std::string out;
  if (f == stats_format::text) {
    append(out, "weft stats: workers=%" PRIu64, s.workers.size());
    append(out, " inject_queue_depth=%" PRIu64 "\n", s.inject_queue_depth);
    for (std::size_t i = 0; i < s.workers.size(); ++i) {
      char label[24];
      std::snprintf(label, sizeof label, "w%zu:", i);
      text_worker(out, label, s.workers[i]);
    }
    text_worker(out, "total:", s.total());
    return out;
  }
  append(out, "{\"inject_queue_depth\":%" PRIu64 ",\"workers\":[", s.inject_queue_depth);
  for (std::size_t i = 0; i < s.workers.size(); ++i) {
    if (i) out += ',';
    json_worker(out, s.workers[i]);
  }
  out += "],\"total\":";
  json_worker(out, s.total());
  out += "}\n";
  return out;
}

}  // namespace weft
