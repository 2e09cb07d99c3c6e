// bench/tour/main.cpp - weft_tour: runs the workloads of docs/benchmarks.md on weft and
// its peers in one process and prints RESULT lines, then a table with ratios to weft.
//
//   weft_tour [--reps N] [--only W1,W3] [--quick]
//
// Order: for each workload, for each worker count, for each peer: start the peer's
// runtime, run the repetitions, stop it. Scaling workloads (W1, W2, W5) sweep worker
// counts 1, 2, 4, ... up to all allowed CPUs (all always included); W3 runs on one worker,
// W9 on all. Lines starting with '#' are context for humans; RESULT lines are the data.
// Every RESULT ends with others_cpu=N%: the share of the CPUs that other processes used
// while its repetitions ran (the figures are noise when that is more than a few percent).
// RESULT lines come from bench/result.hpp; before each repetition a progress line goes to
// stderr ("weft_tour: [3/24] W1 spawn_join workers=2 weft: rep 2/5").
#include "tour.hpp"

#include "../machine.hpp"
#include "../result.hpp"

#include <sched.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/utsname.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#ifndef WEFT_TOUR_BUILD_TYPE
#define WEFT_TOUR_BUILD_TYPE "unknown"
#endif

namespace tour {
namespace {

constexpr workload kAllWorkloads[] = {workload::spawn_join,       workload::skynet,
                                      workload::yield_pingpong,   workload::fib,
                                      workload::idle,             workload::churn_spawn_park,
                                      workload::churn_wake_finish};

struct options {
  long churn_n = 0;  // --churn-n: W11's size (0: the default, / 10 under --quick)
  int reps = 5;
  bool quick = false;
  std::set<std::string> only;  // spec ids ("W1"); empty: every workload
  std::set<std::string> peers;  // peer names ("weft"); empty: every peer (for profiling one)
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "weft_tour: %s\n"
               "usage: weft_tour [--reps N] [--only W1,W2,W3,W5,W9,W11] [--peers P] [--quick]\n"
               "                 [--churn-n N]\n"
               "  --reps N   repetitions per workload (default 5); median, min and max\n"
               "  --only L   comma-separated workload ids to run\n"
               "  --peers P  comma-separated peers to run (weft,boost_fiber,tbb,fcontext)\n"
               "  --quick    problem sizes divided by 10 (smoke run)\n"
               "  --churn-n N  W11's fibers (default 100000, 10000 with --quick)\n",
               why);
  std::exit(2);
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") {
      o.quick = true;
    } else if (a == "--churn-n" && i + 1 < argc) {
      o.churn_n = std::atol(argv[++i]);
      if (o.churn_n < 1) usage("--churn-n needs a positive number");
    } else if (a == "--reps" && i + 1 < argc) {
      o.reps = std::atoi(argv[++i]);
      if (o.reps < 1) usage("--reps needs a positive number");
    } else if (a == "--only" && i + 1 < argc) {
      std::stringstream list(argv[++i]);
      for (std::string id; std::getline(list, id, ',');) {
        for (auto& c : id) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        bool known = false;
        for (auto w : kAllWorkloads) {
          known = known || id == info(w).spec_id;
        }
        if (!known) usage(("unknown workload id " + id).c_str());
        o.only.insert(id);
      }
    } else if (a == "--peers" && i + 1 < argc) {
      std::stringstream list(argv[++i]);
      for (std::string name; std::getline(list, name, ',');) o.peers.insert(name);
    } else if (a == "--help" || a == "-h") {
      usage("benchmark tour");
    } else {
      usage(("unknown argument " + a).c_str());
    }
  }
  return o;
}

using weft_bench::allowed_cpus;
using weft_bench::others_meter;

void print_header(const options& o, const std::vector<std::unique_ptr<peer>>& peers,
                  const std::vector<std::string>& missing) {
  std::printf("# weft_tour\n");
  weft_bench::print_machine();
  weft_bench::print_build(WEFT_TOUR_BUILD_TYPE);
  std::printf("# run: reps=%d quick=%s\n", o.reps, o.quick ? "yes" : "no");
  for (const auto& p : peers) std::printf("# peer %s\n", p->describe().c_str());
  for (const auto& m : missing) std::printf("# peer %s\n", m.c_str());
  std::fflush(stdout);
}

// Above this share of the CPUs used by others, figures are flagged.
constexpr double kQuiet = 0.05;

// One RESULT line's data, kept for the final table.
struct record {
  std::string peer;
  workload w;
  unsigned workers;
  summary s;
  double work_factor;  // peer::work_factor(): > 1 when the peer ran a smaller problem
  double others;       // others_meter share over the repetitions
};

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, v >= 100 ? "%.1f" : v >= 1 ? "%.2f" : "%.3f", v);
  return buf;
}

std::string label(workload w) { return std::string(info(w).spec_id) + " " + info(w).name; }

std::string param(unsigned workers) { return "workers=" + std::to_string(workers); }

double run_once(peer& p, workload w, const sizes& sz) {
  switch (w) {
    case workload::spawn_join: return p.spawn_join(sz.spawn_join_n);
    case workload::skynet: return p.skynet(sz.skynet_leaves);
    case workload::yield_pingpong: return p.yield_pingpong(sz.yields_per_fiber);
    case workload::fib: return p.fib(sz.fib_n);
    case workload::idle: return p.idle(sz.idle_for);
    case workload::churn_spawn_park: return p.churn(sz.churn_n, false);
    case workload::churn_wake_finish: return p.churn(sz.churn_n, true);
  }
  fail("run_once: unknown workload");
}

// The peer's extra() ("n=100000 launch=post") as key=value pairs; fail()s on a token
// without '=', which the RESULT format (bench/result.hpp) cannot carry.
weft_bench::extras split_extra(const peer& p, const std::string& extra) {
  weft_bench::extras out;
  std::stringstream in(extra);
  for (std::string tok; in >> tok;) {
    const auto eq = tok.find('=');
    if (eq == std::string::npos || eq == 0) {
      fail(std::string(p.name()) + "::extra(): \"" + tok + "\" is not key=value");
    }
    out.emplace_back(tok.substr(0, eq), tok.substr(eq + 1));
  }
  return out;
}

// Which run of the tour this is, for the progress lines on stderr.
struct step_counter {
  int step = 0, steps = 0;
};

record run(peer& p, workload w, unsigned workers, const sizes& sz, int reps, unsigned cpus,
           step_counter& steps) {
  // W9 counts the CPU time of the whole process: let threads of the previous peer (TBB's
  // workers spin a little before they sleep) go quiet first.
  if (w == workload::idle) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ++steps.step;
  const std::string what = label(w) + " " + param(workers) + " " + p.name();
  p.start(workers);
  std::vector<double> samples;
  const others_meter meter;
  for (int r = 0; r < reps; ++r) {
    weft_bench::progress("weft_tour", steps.step, steps.steps, what, r + 1, reps);
    samples.push_back(run_once(p, w, sz));
  }
  const double others = meter.share(cpus);
  p.stop();
  record rec{p.name(), w, workers, summarize(std::move(samples)), p.work_factor(w, sz), others};
  weft_bench::extras extra = split_extra(p, p.extra(w, sz));
  // The factor the table scales this peer's time by (a smaller problem); the charts of
  // scripts/bench_charts.py scale by it too.
  if (rec.work_factor != 1.0) {
    extra.emplace_back("work_factor", weft_bench::format_number(rec.work_factor));
  }
  extra.emplace_back("others_cpu", std::to_string(static_cast<int>(100 * others + 0.5)) + "%");
  weft_bench::print({p.name(), info(w).name, param(workers), info(w).unit,
                     {rec.s.median, rec.s.min, rec.s.max, rec.s.reps}, std::move(extra)});
  return rec;
}

std::vector<unsigned> worker_counts(workload w, unsigned cpus) {
  if (w == workload::yield_pingpong) return {1};
  if (!info(w).scales) return {cpus};
  std::vector<unsigned> counts;
  for (unsigned n = 1; n < cpus; n *= 2) counts.push_back(n);
  counts.push_back(cpus);
  return counts;
}

const record* find(const std::vector<record>& recs, const std::string& peer, workload w,
                   unsigned workers) {
  for (const auto& r : recs) {
    if (r.peer == peer && r.w == w && r.workers == workers) return &r;
  }
  return nullptr;
}

// "peer/weft" column: the ratio of medians, "~" marked when the peer ran a smaller problem
// and its time was scaled up by peer::work_factor().
std::string ratio_to_weft(const record& r, const std::vector<record>& recs) {
  const record* base = find(recs, "weft", r.w, r.workers);
  if (!base || base->s.median <= 0) return "-";
  const std::string ratio = fmt(r.s.median * r.work_factor / base->s.median);
  return r.work_factor != 1.0 ? "~" + ratio : ratio;
}

void print_table(const std::vector<record>& recs) {
  std::printf("\n# %-18s %-10s %-12s %12s %-10s %-23s %9s  %s\n", "workload", "param", "peer",
              "median", "unit", "spread (min-max)", "peer/weft", "others_cpu");
  bool scaled = false;
  for (const auto& r : recs) {
    const std::string spread = fmt(r.s.min) + "-" + fmt(r.s.max);
    const std::string ratio = ratio_to_weft(r, recs);
    scaled = scaled || ratio[0] == '~';
    std::printf("  %-18s %-10s %-12s %12s %-10s %-23s %9s  %3.0f%%%s\n", label(r.w).c_str(),
                param(r.workers).c_str(), r.peer.c_str(), fmt(r.s.median).c_str(),
                info(r.w).unit, spread.c_str(), ratio.c_str(), 100 * r.others,
                r.others > kQuiet ? " (noisy)" : "");
  }
  if (scaled) {
    std::printf("# ~: the peer ran a smaller problem (see its RESULT extra field); its time was\n"
                "#    scaled up by the ratio of spawn counts before dividing by weft's.\n");
  }
}

// Speedup of each scaling workload from 1 worker to all: median at 1 / median at all.
void print_speedups(const std::vector<record>& recs, unsigned cpus) {
  if (cpus < 2) return;
  std::printf("\n# speedup, 1 -> %u workers (median at 1 / median at %u)\n", cpus, cpus);
  for (const auto& r : recs) {
    if (!info(r.w).scales || r.workers != 1) continue;
    const record* all = find(recs, r.peer, r.w, cpus);
    if (!all || all->s.median <= 0) continue;
    std::printf("  %-18s %-12s %6.2fx\n", label(r.w).c_str(), r.peer.c_str(),
                r.s.median / all->s.median);
  }
}

// User + system CPU ms of the waited-for children (getrusage(RUSAGE_CHILDREN)).
double children_cpu_ms() {
  rusage ru{};
  if (getrusage(RUSAGE_CHILDREN, &ru) != 0) return 0;
  auto ms = [](const timeval& tv) { return tv.tv_sec * 1e3 + tv.tv_usec / 1e3; };
  return ms(ru.ru_utime) + ms(ru.ru_stime);
}

// W11's Go peer: bench/peers/go/churn.go built as weft_go_churn next to this binary (or
// at $WEFT_TOUR_GO_CHURN) by scripts/bench.sh when a go toolchain exists. Its RESULT lines
// are passed through and join the table; without the binary a '#' line says so.
std::string go_churn_path() {
  if (const char* env = std::getenv("WEFT_TOUR_GO_CHURN"); env && *env) return env;
  char self[4096];
  const ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  if (len <= 0) return {};
  std::string dir(self, static_cast<std::size_t>(len));
  return dir.substr(0, dir.rfind('/') + 1) + "weft_go_churn";
}

void run_go_churn(const sizes& sz, int reps, unsigned cpus, std::vector<record>& recs) {
  const std::string bin = go_churn_path();
  if (bin.empty() || access(bin.c_str(), X_OK) != 0) {
    std::printf("# peer go: not built (no %s; scripts/bench.sh builds it when go exists)\n",
                bin.c_str());
    return;
  }
  const std::string cmd = bin + " -n " + std::to_string(sz.churn_n) + " -reps " +
                          std::to_string(reps) + " -workers " + std::to_string(cpus);
  const others_meter meter;
  const auto t0 = clock::now();
  const double children0 = children_cpu_ms();
  FILE* out = popen(cmd.c_str(), "r");
  if (!out) fail("cannot run " + cmd);
  const std::size_t first = recs.size();
  char line[512];
  while (std::fgets(line, sizeof line, out)) {
    char name[64] = {};
    record rec{"go", workload::churn_spawn_park, cpus, {}, 1.0, 0.0};
    if (std::sscanf(line, "RESULT go %63s %*s %lf ms min=%lf max=%lf reps=%d", name,
                    &rec.s.median, &rec.s.min, &rec.s.max, &rec.s.reps) != 5)
      continue;
    rec.w = std::string(name) == "churn_wake_finish" ? workload::churn_wake_finish
                                                       : workload::churn_spawn_park;
    std::fputs(line, stdout);
    recs.push_back(rec);
  }
  if (pclose(out) != 0) fail(cmd + " failed");
  // The Go program is a child: its CPU time is not "other processes" (the meter counts
  // only this process's own as ours).
  const double wall = ms_since(t0) * cpus;
  const double go_share = wall > 0 ? (children_cpu_ms() - children0) / wall : 0.0;
  for (std::size_t i = first; i < recs.size(); ++i)
    recs[i].others = std::max(0.0, meter.share(cpus) - go_share);
  std::fflush(stdout);
}

void report_quiet(const char* when, unsigned cpus) {
  const others_meter meter;
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const double others = meter.share(cpus);
  std::printf("# %s: other processes kept %.0f%% of the CPUs busy (/proc/stat, 0.5 s)\n", when,
              100 * others);
  if (others > kQuiet) std::printf("# WARNING: the machine is not quiet; figures are unreliable\n");
  std::fflush(stdout);
}

int tour_main(int argc, char** argv) {
  const options opts = parse(argc, argv);
  const unsigned cpus = allowed_cpus();
  sizes sz = opts.quick ? quick(sizes{}) : sizes{};
  if (opts.churn_n > 0) sz.churn_n = static_cast<std::size_t>(opts.churn_n);

  std::vector<std::unique_ptr<peer>> peers;
  std::vector<std::string> missing;
  if (auto p = make_weft_peer()) peers.push_back(std::move(p));
#ifdef WEFT_TOUR_HAVE_BOOST_FIBER
  peers.push_back(make_boost_fiber_peer(cpus));
#else
  missing.push_back("boost_fiber: not built (Boost.Fiber not found at configure time)");
#endif
#ifdef WEFT_TOUR_HAVE_TBB
  peers.push_back(make_tbb_peer());
#else
  missing.push_back("tbb: not built (oneTBB not found at configure time)");
#endif
  peers.push_back(make_fcontext_floor());
  if (!opts.peers.empty()) {
    for (const auto& name : opts.peers) {
      bool known = name == "go";  // W11's Go peer, an outside program (run_go_churn)
      for (const auto& p : peers) known = known || name == p->name();
      if (!known) usage(("unknown or unbuilt peer " + name).c_str());
    }
    peers.erase(std::remove_if(peers.begin(), peers.end(),
                               [&](const auto& p) { return !opts.peers.count(p->name()); }),
                peers.end());
  }
  print_header(opts, peers, missing);
  report_quiet("start", cpus);

  const auto& workloads = kAllWorkloads;
  auto wanted = [&](workload w) { return opts.only.empty() || opts.only.count(info(w).spec_id); };
  step_counter steps;
  for (auto w : workloads) {
    if (!wanted(w)) continue;
    for (auto& p : peers) {
      if (p->supports(w)) steps.steps += static_cast<int>(worker_counts(w, cpus).size());
    }
  }
  std::vector<record> recs;
  for (auto w : workloads) {
    if (!wanted(w)) continue;
    for (unsigned workers : worker_counts(w, cpus)) {
      for (auto& p : peers) {
        if (p->supports(w)) recs.push_back(run(*p, w, workers, sz, opts.reps, cpus, steps));
      }
    }
  }
  if (wanted(workload::churn_spawn_park) && (opts.peers.empty() || opts.peers.count("go")))
    run_go_churn(sz, opts.reps, cpus, recs);
  print_table(recs);
  print_speedups(recs, cpus);
  std::printf("\n");
  report_quiet("end", cpus);
  return 0;
}

}  // namespace
}  // namespace tour

int main(int argc, char** argv) { return tour::tour_main(argc, argv); }
