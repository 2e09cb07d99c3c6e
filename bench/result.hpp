// bench/result.hpp - the one RESULT line printer every benchmark program uses, and the
// progress line the long runs print on stderr.
//
// Every figure of docs/benchmarks.md is one line on stdout, one shape for all programs:
//   RESULT <peer> <workload> <param> <median> <unit> min=<min> max=<max> reps=<n> [key=value ...]
// scripts/bench_json.py parses these lines into the JSON file of a run; it splits on
// spaces, so no field may contain a space, and every extra field is key=value. print()
// checks that and aborts with the offending field named rather than write a line the
// converter would misread. Header-only, C++17, standard library only: the W7 load generator
// links nothing else.
#pragma once

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

namespace weft_bench {

// The figure of one (peer, workload, param): median, min and max over reps repetitions.
struct spread {
  double median = 0, min = 0, max = 0;
  int reps = 0;
};

// A single measurement (reps = 1: median = min = max).
inline spread single(double v) { return {v, v, v, 1}; }

// key=value fields after reps=, in the order given.
using extras = std::vector<std::pair<std::string, std::string>>;

struct result {
  std::string peer;      // runtime measured: weft, boost_fiber, tbb, std_thread, raw_epoll ...
  std::string workload;  // name from docs/benchmarks.md: spawn_join, W4_chan_pingpong, W8
  std::string param;     // worker count or size: workers=2, cap1, fibers=10000, c=64
  std::string unit;      // unit of the figure: ns/fiber, ms, msgs/s
  spread figure;
  extras extra;
};

// Formats a figure with at least four significant digits and no exponent, so lines stay
// readable by eye and exact enough for ratios (0.0123, 25.37, 1234.5, 987654).
inline std::string format_number(double v) {
  char buf[64];
  const double a = std::fabs(v);
  const int decimals = a >= 1000 ? 1 : a >= 100 ? 2 : a >= 1 ? 3 : a >= 0.01 ? 4 : 6;
  std::snprintf(buf, sizeof buf, "%.*f", a >= 100000 ? 0 : decimals, v);
  return buf;
}

namespace detail {

[[noreturn]] inline void bad_field(const char* what, const std::string& value) {
  std::fflush(stdout);
  std::fprintf(stderr, "bench/result.hpp: RESULT %s \"%s\" is empty or contains a space\n", what,
               value.c_str());
  std::abort();
}

// A field is one space-free, non-empty token.
inline void check_token(const char* what, const std::string& s) {
  if (s.empty() || s.find_first_of(" \t\n") != std::string::npos) bad_field(what, s);
}

}  // namespace detail

// Prints one RESULT line on stdout and flushes (a crash later must not lose it). Aborts
// with a message naming the field when a field is empty or contains a space, or when an
// extra key contains '='.
inline void print(const result& r) {
  detail::check_token("peer", r.peer);
  detail::check_token("workload", r.workload);
  detail::check_token("param", r.param);
  detail::check_token("unit", r.unit);
  std::string line = "RESULT " + r.peer + " " + r.workload + " " + r.param + " " +
                     format_number(r.figure.median) + " " + r.unit +
                     " min=" + format_number(r.figure.min) + " max=" + format_number(r.figure.max) +
                     " reps=" + std::to_string(r.figure.reps);
  for (const auto& [key, value] : r.extra) {
    detail::check_token("extra key", key);
    detail::check_token("extra value", value);
    if (key.find('=') != std::string::npos) detail::bad_field("extra key", key);
    line += " " + key + "=" + value;
  }
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

// One progress line on stderr, kept out of stdout so that logs of RESULT lines stay data:
//   <program>: [<step>/<steps>] <what>: rep <rep>/<reps>
// step and steps count the (workload, workers, peer) runs of the program; rep is 1-based.
inline void progress(const char* program, int step, int steps, const std::string& what, int rep,
                     int reps) {
  std::fprintf(stderr, "%s: [%d/%d] %s: rep %d/%d\n", program, step, steps, what.c_str(), rep,
               reps);
}

}  // namespace weft_bench
