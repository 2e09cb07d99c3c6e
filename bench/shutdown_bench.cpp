// bench/shutdown_bench.cpp - W12 (docs/benchmarks.md): bounded shutdown of a server-like
// scheduler. N fibers wait, a quarter each: asleep for an hour, on events nobody sets, on
// channel receives nobody sends to, and on reads of idle sockets (as many as the fd limit
// allows; the rest wait on events). Once all wait, scheduler::shutdown(now + 100 ms) is
// called; the figure is how long after the deadline it returned (every fiber stopped and
// finished, the workers joined). Usage: weft_shutdown_bench [--fibers N] [--reps R]
#include "result.hpp"

#include <weft/weft.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <sys/resource.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

struct run_figures {
  double after_deadline_ms;
  double shutdown_total_ms;
};

run_figures run_once(int fibers, int sockets) {
  std::vector<int> fds(2 * static_cast<std::size_t>(sockets), -1);
  for (int i = 0; i < sockets; ++i) {
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, &fds[2 * i]) != 0) {
      std::perror("socketpair");
      std::exit(1);
    }
  }
  std::atomic<int> waiting{0}, finished{0};
  auto events = std::make_unique<weft::event[]>(static_cast<std::size_t>(fibers));
  weft::channel<int> idle(0);
  double after = 0, total = 0;
  {
    weft::scheduler s({.workers = 0});
    for (int i = 0; i < fibers; ++i) {
      const int kind = i % 4;
      if (kind == 3 && i / 4 < sockets) {
        const int fd = fds[2 * (i / 4)];
        s.spawn_detached([&, fd] {
          ++waiting;
          char c;
          (void)weft::io::read(fd, &c, 1);
          ++finished;
        });
      } else if (kind == 0) {
        s.spawn_detached([&] {
          ++waiting;
          weft::this_fiber::sleep_for(std::chrono::hours(1));
          ++finished;
        });
      } else if (kind == 2) {
        s.spawn_detached([&] {
          ++waiting;
          (void)idle.recv();
          ++finished;
        });
      } else {
        weft::event* ev = &events[static_cast<std::size_t>(i)];
        s.spawn_detached([&, ev] {
          ++waiting;
          (void)ev->wait();
          ++finished;
        });
      }
    }
    while (waiting.load() < fibers) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // into their waits
    const auto t0 = std::chrono::steady_clock::now();
    const auto deadline = t0 + std::chrono::milliseconds(100);
    (void)s.shutdown(deadline);
    const auto t1 = std::chrono::steady_clock::now();
    after = std::chrono::duration<double, std::milli>(t1 - deadline).count();
    total = std::chrono::duration<double, std::milli>(t1 - t0).count();
  }
  if (finished.load() != fibers) {
    std::fprintf(stderr, "weft_shutdown_bench: %d of %d fibers finished\n", finished.load(), fibers);
    std::exit(1);
  }
  for (int fd : fds) ::close(fd);
  return {after, total};
}

weft_bench::spread spread_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v[v.size() / 2], v.front(), v.back(), static_cast<int>(v.size())};
}

}  // namespace

int main(int argc, char** argv) {
  int fibers = 10000, reps = 5;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--fibers") && i + 1 < argc)
      fibers = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc)
      reps = std::atoi(argv[++i]);
    else {
      std::fprintf(stderr, "usage: weft_shutdown_bench [--fibers N] [--reps R]\n");
      return 2;
    }
  }
  if (fibers < 4 || reps < 1) {
    std::fprintf(stderr, "weft_shutdown_bench: --fibers >= 4 and --reps >= 1\n");
    return 2;
  }
  // A quarter of the fibers read sockets, as far as the fd limit allows (2 fds each).
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &rl);
  ::getrlimit(RLIMIT_NOFILE, &rl);
  const int sockets = static_cast<int>(std::min<rlim_t>(fibers / 4, (rl.rlim_cur > 256 ? rl.rlim_cur - 256 : 0) / 2));
  std::vector<double> after, total;
  for (int r = 0; r < reps; ++r) {
    weft_bench::progress("weft_shutdown_bench", 1, 1, "W12 shutdown_deadline", r + 1, reps);
    const run_figures f = run_once(fibers, sockets);
    after.push_back(f.after_deadline_ms);
    total.push_back(f.shutdown_total_ms);
  }
  const std::string param = "fibers=" + std::to_string(fibers);
  weft_bench::print({"weft", "W12_shutdown_deadline", param, "ms_after_deadline", spread_of(after),
                     {{"sockets", std::to_string(sockets)}, {"deadline_ms", "100"}}});
  weft_bench::print({"weft", "W12_shutdown_total", param, "ms", spread_of(total), {}});
  return 0;
}
