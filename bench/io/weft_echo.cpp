// bench/io/weft_echo.cpp - the weft side of W7: echo_server with a worker-count option.
//
//   weft_echo PORT [WORKERS]       (listens on 127.0.0.1; WORKERS 0 = all allowed cores)
// Benchmark workloads cited here (W7): docs/benchmarks.md.
#include <weft/weft.hpp>

#include <cstdio>
#include <cstdlib>
#include <sys/resource.h>

int main(int argc, char** argv) {
  const int port = argc > 1 ? std::atoi(argv[1]) : 0;
  if (port <= 0) {
    std::fprintf(stderr, "usage: %s PORT [WORKERS]\n", argv[0]);
    return 2;
  }
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  auto l = weft::tcp_listener::bind(*weft::endpoint::parse("127.0.0.1", static_cast<std::uint16_t>(port)),
                                    {.backlog = 4096});
  if (!l) {
    std::fprintf(stderr, "weft_echo: %s\n", l.error().message().c_str());
    return 1;
  }
  weft::scheduler sched({.workers = argc > 2 ? static_cast<unsigned>(std::atoi(argv[2])) : 0u});
  std::printf("weft_echo: listening on 127.0.0.1:%d, %u worker(s)\n", port, sched.worker_count());
  std::fflush(stdout);
  sched.block_on([&] {
    while (auto c = l->accept()) {
      weft::spawn([s = std::move(*c)]() mutable {
        char buf[4096];
        for (;;) {
          auto n = s.read(buf, sizeof buf);
          if (!n || *n == 0 || !s.write_all(buf, *n)) return;
        }
      }).detach();
    }
  });
}
