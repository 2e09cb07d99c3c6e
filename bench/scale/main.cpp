// bench/scale/main.cpp - weft_scale: how weft's throughput grows with the worker count.
//
//   weft_scale [--workers 1,2,4,8] [--reps N] [--quick | --big] [--only W2,W5,W4,W6]
//
// Runs W2 skynet, W5 fib, W4 with many independent pairs and W6 sharded (one mutex per
// worker) at worker counts 1, 2, 4, ... up to weft's default worker count (one per core;
// the count itself is always included), or at the --workers list, and prints per
// (workload, count) one RESULT line (bench/result.hpp) with the throughput and
//   efficiency = throughput(n) / (n / base x throughput(base)),
// base being the smallest count run (1 unless --workers leaves it out): 1.0 is perfect
// scaling. How to read it: docs/scaling.md, "The scaling benchmark".
//
// Order: for each workload, one scheduler per count is built (not timed) and the
// repetitions go round the counts (rep 1 at every count, then rep 2, ...), so that a slow
// phase of the machine hits every count alike instead of one. Counts above the CPUs this
// process may use are oversubscribed: a '#' line says so and their RESULT lines carry
// oversubscribed=yes. Progress lines go to stderr ("weft_scale: [2/8] W5 workers=2: rep 3/5").
#include "workloads.hpp"

#include "../machine.hpp"
#include "../result.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#ifndef WEFT_SCALE_BUILD_TYPE
#define WEFT_SCALE_BUILD_TYPE "unknown"
#endif

namespace scale {
namespace {

struct options {
  std::vector<unsigned> workers;  // empty: 1, 2, 4, ... up to the default count
  int reps = 5;
  bool quick = false;
  bool big = false;
  std::set<std::string> only;  // workload ids ("W4"); empty: all
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "weft_scale: %s\n"
               "usage: weft_scale [--workers 1,2,4,8] [--reps N] [--quick | --big]\n"
               "                  [--only W2,W5,W4,W6]\n"
               "  --workers L  comma-separated worker counts, each >= 1 (default: 1, 2, 4, ...\n"
               "               up to one worker per core)\n"
               "  --reps N     repetitions per workload and count (default 5); median, min, max\n"
               "  --quick      problem sizes divided by 10 (smoke run)\n"
               "  --big        problem sizes multiplied by 10 (many cores: runs too short)\n"
               "  --only L     comma-separated workload ids to run\n",
               why.c_str());
  std::exit(2);
}

// A positive integer no larger than `max`, or usage() naming the flag and the text.
unsigned parse_count(const std::string& flag, const std::string& text, unsigned max) {
  const bool digits = !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c));
  });
  if (!digits || text.size() > 9 || std::stoul(text) < 1 || std::stoul(text) > max) {
    usage(flag + " takes integers from 1 to " + std::to_string(max) + ", got \"" + text + "\"");
  }
  return static_cast<unsigned>(std::stoul(text));
}

std::vector<std::string> split(const std::string& list) {
  std::vector<std::string> out;
  std::stringstream in(list);
  for (std::string item; std::getline(in, item, ',');) out.push_back(item);
  if (out.empty() || list.back() == ',') out.push_back("");  // "" and "1," are errors
  return out;
}

bool known_id(const std::string& id) {
  for (int i = 0; i < workload_count(); ++i) {
    if (id == workloads()[i].id) return true;
  }
  return false;
}

// Above this a worker count is surely a typo (and each worker is a thread).
constexpr unsigned kMaxWorkers = 4096;

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--quick") {
      o.quick = true;
    } else if (a == "--big") {
      o.big = true;
    } else if (a == "--reps" && has_value) {
      o.reps = static_cast<int>(parse_count("--reps", argv[++i], 1000));
    } else if (a == "--workers" && has_value) {
      for (const auto& n : split(argv[++i])) o.workers.push_back(parse_count("--workers", n, kMaxWorkers));
    } else if (a == "--only" && has_value) {
      for (auto id : split(argv[++i])) {
        for (auto& c : id) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        if (!known_id(id)) usage("unknown workload id \"" + id + "\" (W2, W5, W4, W6)");
        o.only.insert(id);
      }
    } else if (a == "--help" || a == "-h") {
      usage("scaling benchmark");
    } else {
      usage(has_value || a.rfind("--", 0) != 0 ? "unknown argument " + a : a + " needs a value");
    }
  }
  if (o.quick && o.big) usage("--quick and --big exclude each other");
  std::sort(o.workers.begin(), o.workers.end());
  o.workers.erase(std::unique(o.workers.begin(), o.workers.end()), o.workers.end());
  return o;
}

// 1, 2, 4, ... below `top`, then `top` itself.
std::vector<unsigned> powers_of_two_to(unsigned top) {
  std::vector<unsigned> counts;
  for (unsigned n = 1; n < top; n *= 2) counts.push_back(n);
  counts.push_back(top);
  return counts;
}

// weft's own default worker count (one per core of the allowed cpuset, SMT siblings not
// counted): a scheduler with options::workers = 0, started only to ask it.
unsigned default_workers() {
  weft::scheduler probe(weft::scheduler::options{});
  return probe.worker_count();
}

void print_header(const options& o, const std::vector<unsigned>& counts, unsigned cores,
                  const sizes& sz) {
  std::printf("# weft_scale\n");
  weft_bench::print_machine();
  weft_bench::print_build(WEFT_SCALE_BUILD_TYPE);
  std::string list;
  for (unsigned n : counts) list += (list.empty() ? "" : ",") + std::to_string(n);
  std::printf("# scale: workers=%s reps=%d size=%s default_workers=%u\n", list.c_str(), o.reps,
              o.quick ? "quick" : o.big ? "big" : "default", cores);
  std::printf("# sizes: skynet_leaves=%lld fib=%d round_trips=%lld pairs=%u mutex_fibers=%d "
              "mutex_iters=%d (the same at every count)\n",
              static_cast<long long>(sz.skynet_leaves), sz.fib_n,
              static_cast<long long>(sz.round_trips), sz.pairs, sz.mutex_fibers, sz.mutex_iters);
  const unsigned cpus = weft_bench::allowed_cpus();
  for (unsigned n : counts) {
    if (n > cpus) {
      std::printf("# workers=%u > %u allowed CPUs: oversubscribed; its figures show time "
                  "sharing, not scaling\n", n, cpus);
    } else if (n > cores) {
      std::printf("# workers=%u > %u cores: some workers share a core with an SMT sibling\n", n,
                  cores);
    }
  }
  std::fflush(stdout);
}

// The repetitions of one (workload, count), and the CPU others used while they ran.
struct series {
  unsigned workers = 0;
  std::unique_ptr<weft::scheduler> sched;
  std::vector<double> throughput;  // millions of items per second, one per repetition
  std::vector<double> seconds;     // wall time of each repetition
  double others_ms = 0, wall_ms = 0;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string fixed(double v, int decimals) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

// One RESULT line; base is the series of the smallest count.
void print_result(const workload& w, const series& s, const series& base, unsigned cpus,
                  const sizes& sz) {
  const double med = median(s.throughput), base_med = median(base.throughput);
  const double speedup = base_med > 0 ? med / base_med : 0;
  const double efficiency = speedup * base.workers / s.workers;
  const auto [lo, hi] = std::minmax_element(s.throughput.begin(), s.throughput.end());
  weft_bench::extras extra{{"efficiency", fixed(efficiency, 3)},
                           {"speedup", fixed(speedup, 3)},
                           {"base_workers", std::to_string(base.workers)}};
  if (std::string(w.id) == "W4") extra.emplace_back("pairs", std::to_string(sz.pairs));
  if (s.workers > cpus) extra.emplace_back("oversubscribed", "yes");
  // /proc/stat counts in clock ticks (10 ms): over short repetitions the ratio can pass 1.
  const double others = s.wall_ms > 0 ? std::min(1.0, s.others_ms / (s.wall_ms * cpus)) : 0;
  extra.emplace_back("others_cpu", std::to_string(static_cast<int>(100 * others + 0.5)) + "%");
  weft_bench::print({"weft", w.name, "workers=" + std::to_string(s.workers), w.unit,
                     {med, *lo, *hi, static_cast<int>(s.throughput.size())}, std::move(extra)});
}

// Runs workload w at every count, repetitions interleaved across the counts; returns the
// series (with their schedulers stopped).
std::vector<series> run_workload(const workload& w, const std::vector<unsigned>& counts,
                                 const options& o, const sizes& sz, int& step, int steps) {
  std::vector<series> all;
  for (unsigned n : counts) {
    weft::scheduler::options opts;
    opts.workers = n;
    all.push_back({n, std::make_unique<weft::scheduler>(opts), {}, {}, 0, 0});
  }
  for (int r = 0; r < o.reps; ++r) {
    for (auto& s : all) {
      weft_bench::progress("weft_scale", step + static_cast<int>(&s - all.data()) + 1, steps,
                           std::string(w.id) + " workers=" + std::to_string(s.workers), r + 1,
                           o.reps);
      const weft_bench::others_meter meter;
      const sample got = w.run(*s.sched, sz);
      s.others_ms += meter.others_ms();
      s.wall_ms += meter.wall_ms();
      s.throughput.push_back(got.seconds > 0 ? got.items / got.seconds / 1e6 : 0);
      s.seconds.push_back(got.seconds);
    }
  }
  step += static_cast<int>(all.size());
  for (auto& s : all) s.sched.reset();
  return all;
}

// A repetition at more than one worker shorter than this is flagged: the workers start
// parked, and waking them one after another costs up to a futex round trip each (24-64 us
// on the VM measured, docs/platform.md), so 64 of them take up to ~3 ms to join in, 15% of
// a 20 ms run; the efficiency then understates what a longer run reaches.
constexpr double kShortRunMs = 20;

// The '#' table at the end: every workload's throughput, speedup and efficiency per count.
void print_table(const std::vector<std::pair<const workload*, std::vector<series>>>& done,
                 bool quick) {
  std::printf("\n# %-24s %8s %16s %-15s %8s %10s\n", "workload", "workers", "median", "unit",
              "speedup", "efficiency");
  for (const auto& [w, all] : done) {
    const double base = median(all.front().throughput);
    for (const auto& s : all) {
      const double speedup = base > 0 ? median(s.throughput) / base : 0;
      std::printf("  %-24s %8u %16s %-15s %7.2fx %10.2f\n", w->name, s.workers,
                  fixed(median(s.throughput), 3).c_str(), w->unit, speedup,
                  speedup * all.front().workers / s.workers);
    }
  }
  std::printf("# efficiency = throughput(n) / (n / base x throughput(base)), base = the "
              "smallest count; 1.00 is perfect scaling\n");
  for (const auto& [w, all] : done) {
    for (const auto& s : all) {
      if (quick) break;  // a smoke run is short on purpose
      const double ms = 1e3 * median(s.seconds);
      if (s.workers > 1 && ms < kShortRunMs) {
        std::printf("# %s workers=%u: a repetition took %.1f ms; below %.0f ms start-up "
                    "and the first steals weigh on the figure (--big runs 10x the work)\n",
                    w->name, s.workers, ms, kShortRunMs);
      }
    }
  }
}

int scale_main(int argc, char** argv) {
  const options o = parse(argc, argv);
  const unsigned cores = default_workers();
  const std::vector<unsigned> counts = o.workers.empty() ? powers_of_two_to(cores) : o.workers;
  sizes sz = o.quick ? quick(sizes{}) : o.big ? big(sizes{}) : sizes{};
  // Enough pairs that every worker of the largest count has several to run.
  sz.pairs = std::max(sz.pairs, 4 * counts.back());
  print_header(o, counts, cores, sz);

  std::vector<const workload*> chosen;
  for (int i = 0; i < workload_count(); ++i) {
    if (o.only.empty() || o.only.count(workloads()[i].id)) chosen.push_back(&workloads()[i]);
  }
  const unsigned cpus = weft_bench::allowed_cpus();
  const int steps = static_cast<int>(chosen.size() * counts.size());
  int step = 0;
  std::vector<std::pair<const workload*, std::vector<series>>> done;
  for (const workload* w : chosen) {
    auto all = run_workload(*w, counts, o, sz, step, steps);
    for (const auto& s : all) print_result(*w, s, all.front(), cpus, sz);
    done.emplace_back(w, std::move(all));
  }
  print_table(done, o.quick);
  return 0;
}

}  // namespace
}  // namespace scale

int main(int argc, char** argv) { return scale::scale_main(argc, argv); }
