// bench/tour/tour.cpp - definitions of the helpers declared in tour.hpp.
// Benchmark workloads cited here (W1, W2, W3, W5, W9, W11): docs/benchmarks.md.
#include "tour.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace tour {

namespace {
const workload_info kWorkloads[] = {
    {workload::spawn_join, "W1", "spawn_join", "ns/fiber", true},
    {workload::skynet, "W2", "skynet", "ms", true},
    {workload::yield_pingpong, "W3", "yield_pingpong", "ns/switch", false},
    {workload::fib, "W5", "fib", "ms", true},
    {workload::idle, "W9", "idle", "cpu_ms", false},
    // W11's two phases, one figure each (both run the whole cycle; one is timed).
    {workload::churn_spawn_park, "W11", "churn_spawn_park", "ms", false},
    {workload::churn_wake_finish, "W11", "churn_wake_finish", "ms", false},
};
}  // namespace

const workload_info& info(workload w) {
  for (const auto& i : kWorkloads) {
    if (i.id == w) return i;
  }
  throw std::logic_error("tour::info: unknown workload");
}

sizes quick(sizes s) {
  s.spawn_join_n /= 10;
  s.skynet_leaves /= 10;
  s.yields_per_fiber /= 10;
  s.fib_n -= 5;  // fib(25): 121,392 spawns instead of 1,346,268 (fib(n+1) - 1)
  s.idle_for /= 10;
  s.churn_n /= 10;
  return s;
}

std::string peer::extra(workload, const sizes&) const { return {}; }
double peer::work_factor(workload, const sizes&) const { return 1.0; }

// A peer overrides exactly the workloads it supports(); the harness never calls the others.
static double unsupported(const peer& p, const char* what) {
  fail(std::string(p.name()) + " does not implement " + what);
}
double peer::spawn_join(std::size_t) { return unsupported(*this, "spawn_join"); }
double peer::skynet(std::int64_t) { return unsupported(*this, "skynet"); }
double peer::yield_pingpong(std::size_t) { return unsupported(*this, "yield_pingpong"); }
double peer::fib(int) { return unsupported(*this, "fib"); }
double peer::idle(std::chrono::milliseconds) { return unsupported(*this, "idle"); }
double peer::churn(std::size_t, bool) { return unsupported(*this, "churn"); }

double process_cpu_ms() {
  rusage ru{};
  if (getrusage(RUSAGE_SELF, &ru) != 0) fail("getrusage(RUSAGE_SELF) failed");
  auto ms = [](const timeval& tv) { return tv.tv_sec * 1e3 + tv.tv_usec / 1e3; };
  return ms(ru.ru_utime) + ms(ru.ru_stime);
}

void fail(const std::string& what) {
  std::fprintf(stderr, "weft_tour: %s\n", what.c_str());
  std::fflush(stdout);
  std::abort();
}

std::int64_t fib_value(int n) {
  std::int64_t a = 0, b = 1;
  for (int i = 0; i < n; ++i) {
    std::int64_t c = a + b;
    a = b;
    b = c;
  }
  return a;
}

void verify(const char* what, std::int64_t got, std::int64_t want) {
  if (got != want) {
    fail(std::string(what) + ": wrong result " + std::to_string(got) + ", expected " +
         std::to_string(want));
  }
}

summary summarize(std::vector<double> samples) {
  summary s;
  if (samples.empty()) return s;
  std::sort(samples.begin(), samples.end());
  const std::size_t n = samples.size();
  s.median = n % 2 ? samples[n / 2] : (samples[n / 2 - 1] + samples[n / 2]) / 2;
  s.min = samples.front();
  s.max = samples.back();
  s.reps = static_cast<int>(n);
  return s;
}

}  // namespace tour
