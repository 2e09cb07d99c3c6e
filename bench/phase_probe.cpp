// bench/phase_probe.cpp - how fast is this machine's memory right now?
//
//   weft_phase_probe [LABEL]
//
// On the 2-vCPU VM the benchmarks run on, memory-bound workloads (W1, W8) run up to 2x
// slower for minutes at a time while cache-resident ones (W3) do not move; one binary
// gave W8 14 ms in one minute and 30 ms a few minutes later. bench.sh runs this probe
// before and after the workloads so a reader can tell which phase a figure came from:
//   chase  a dependent random walk over 64 MiB (one cache and TLB miss per step), ns/step
//   fault  first touch of freshly mapped anonymous memory, ns/page (the kernel's zeroing
//          plus, on a VM, the host's own fault when it took the page back)
//   bounce two threads handing a cache line back and forth by spinning, ns/round trip
//          (what a work steal or a cross-worker wake costs at best)
//   futex  two threads waking each other through futex wait/wake, us/round trip (what
//          unparking a sleeping worker costs)
// One line: PHASE <label> chase=... fault=... bounce=... futex=.... No runtime involved;
// ~0.5 s. The memory figures alone did not predict W8 (chase 184 ns with W8 at 29 ms,
// 216 ns with W8 at 14 ms in one sampling), hence the two cross-core ones.
// Benchmark workloads cited here (W1, W8): docs/benchmarks.md.
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

namespace {
using clk = std::chrono::steady_clock;

double chase_ns() {
  constexpr std::size_t lines = (64u << 20) / 64;  // 64 MiB of 64-byte lines
  struct alignas(64) line {
    std::uint32_t next;
  };
  std::vector<line> mem(lines);
  std::vector<std::uint32_t> order(lines);
  std::iota(order.begin(), order.end(), 0u);
  std::shuffle(order.begin() + 1, order.end(), std::mt19937(12345));
  for (std::size_t i = 0; i < lines; ++i) mem[order[i]].next = order[(i + 1) % lines];
  constexpr std::size_t steps = 2'000'000;
  std::uint32_t p = 0;
  const auto t0 = clk::now();
  for (std::size_t i = 0; i < steps; ++i) p = mem[p].next;
  const double ns = std::chrono::duration<double, std::nano>(clk::now() - t0).count() / steps;
  if (p == 0xffffffffu) std::puts("");  // keeps the walk
  return ns;
}

double fault_ns() {
  const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  const std::size_t bytes = 64u << 20;
  void* m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return -1;
  auto* c = static_cast<volatile char*>(m);
  const auto t0 = clk::now();
  for (std::size_t off = 0; off < bytes; off += page) c[off] = 1;
  const double ns = std::chrono::duration<double, std::nano>(clk::now() - t0).count() /
                    static_cast<double>(bytes / page);
  munmap(m, bytes);
  return ns;
}

// Round trips between the calling thread and a helper thread: the caller stores 2k+1,
// the helper answers 2k+2. With `sleep`, each side futex-waits instead of spinning.
double round_trip_ns(int trips, bool sleep) {
  alignas(64) static std::atomic<std::uint32_t> word;
  word.store(0);
  auto wait_for = [sleep](std::uint32_t want) {
    for (;;) {
      const std::uint32_t v = word.load(std::memory_order_acquire);
      if (v == want) return;
      if (sleep)
        syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT_PRIVATE, v,
                nullptr, nullptr, 0);
    }
  };
  auto post = [sleep](std::uint32_t v) {
    word.store(v, std::memory_order_release);
    if (sleep)
      syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE_PRIVATE, 1,
              nullptr, nullptr, 0);
  };
  std::thread helper([&] {
    for (int k = 0; k < trips; ++k) {
      wait_for(2 * k + 1);
      post(2 * k + 2);
    }
  });
  const auto t0 = clk::now();
  for (int k = 0; k < trips; ++k) {
    post(2 * k + 1);
    wait_for(2 * k + 2);
  }
  const double ns = std::chrono::duration<double, std::nano>(clk::now() - t0).count() / trips;
  helper.join();
  return ns;
}

}  // namespace

int main(int argc, char** argv) {
  const char* label = argc > 1 ? argv[1] : "now";
  const double chase = chase_ns();
  const double fault = fault_ns();
  const double bounce = round_trip_ns(200'000, false);
  const double futex = round_trip_ns(2'000, true);
  std::printf("PHASE %s chase=%.1f ns/step fault=%.0f ns/page bounce=%.0f ns futex=%.1f us\n",
              label, chase, fault, bounce, futex / 1000);
}
