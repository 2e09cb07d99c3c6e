// bench/machine.hpp - what a benchmark program says about the machine it ran on, and how
// busy other processes kept it (docs/benchmarks.md, "Rules every figure follows": machine
// and load are reported with the figures).
//
// Prints the tour's context lines, which scripts/bench_json.py reads into "machine":
//   # machine: nproc=<allowed CPUs> (hardware_concurrency=<n>) cpu="<model>" kernel="<uname>"
//   # load: <the first line of /proc/loadavg>
// and measures, over an interval, the share of the CPUs that other processes used
// (others_meter); a figure taken next to a busy neighbour is noise. Header-only, C++17,
// Linux, standard library only.
#pragma once

#include <sched.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

namespace weft_bench {

// "# build: type=<type> compiler=... assertions=on|off": what a figure was built with.
inline void print_build(const char* type) {
#ifdef NDEBUG
  const char* asserts = "off";
#else
  const char* asserts = "on";
#endif
  std::printf("# build: type=%s compiler=\"%s\" assertions=%s\n", type, __VERSION__, asserts);
}

// CPUs this process may run on (its affinity mask), the tour's "all workers".
inline unsigned allowed_cpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return static_cast<unsigned>(CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

inline std::string first_line(const char* path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

inline std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  }
  return "unknown";
}

// The "# machine:" and "# load:" lines (format above).
inline void print_machine() {
  utsname u{};
  uname(&u);
  std::printf("# machine: nproc=%u (hardware_concurrency=%u) cpu=\"%s\" kernel=\"%s %s %s\"\n",
              allowed_cpus(), std::thread::hardware_concurrency(), cpu_model().c_str(), u.sysname,
              u.release, u.machine);
  std::printf("# load: %s\n", first_line("/proc/loadavg").c_str());
}

// User + system CPU time of this whole process so far, in ms (getrusage(RUSAGE_SELF)); 0 if
// the call fails.
inline double process_cpu_ms() {
  rusage ru{};
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
  auto ms = [](const timeval& tv) { return tv.tv_sec * 1e3 + tv.tv_usec / 1e3; };
  return ms(ru.ru_utime) + ms(ru.ru_stime);
}

// CPU used by everything but this process since construction, as a share of all CPUs:
// busy time of all CPUs from /proc/stat (everything but idle and iowait; steal, time the
// hypervisor gave to another guest, counts) minus this process's own (getrusage).
class others_meter {
public:
  others_meter() : busy0_(all_cpus_busy_ms()), self0_(process_cpu_ms()), t0_(clock::now()) {}
  // CPU ms that other processes used since construction.
  double others_ms() const {
    return std::max(0.0, (all_cpus_busy_ms() - busy0_) - (process_cpu_ms() - self0_));
  }
  // Wall ms since construction.
  double wall_ms() const {
    return std::chrono::duration<double, std::milli>(clock::now() - t0_).count();
  }
  // others_ms() over the CPU time `cpus` CPUs had in the interval, 0 .. 1.
  double share(unsigned cpus) const {
    const double wall = wall_ms() * cpus;
    return wall > 0 ? std::min(1.0, others_ms() / wall) : 0.0;
  }

private:
  using clock = std::chrono::steady_clock;
  static double all_cpus_busy_ms() {
    std::ifstream in("/proc/stat");
    std::string cpu;
    double ticks[8] = {};  // user nice system idle iowait irq softirq steal
    in >> cpu;
    for (double& t : ticks) in >> t;
    double busy = 0;
    for (int i = 0; i < 8; ++i) busy += (i == 3 || i == 4) ? 0 : ticks[i];
    return busy * 1000.0 / static_cast<double>(sysconf(_SC_CLK_TCK));
  }
  double busy0_, self0_;
  clock::time_point t0_;
};

}  // namespace weft_bench
