// bench/io/loadgen.cpp - weft_loadgen: closed-loop TCP echo load generator (W7).
//
//   weft_loadgen [--host 127.0.0.1] --port P [--connections 64] [--threads 1] [--size 64]
//                [--duration 5] [--warmup 0.5] [--label weft] [--workload W7]
//
// Each connection sends one message of --size bytes, waits for the whole echo, records
// the round-trip time, and repeats. Connections are spread over --threads threads, each
// with its own level-triggered epoll loop (plain C++, no weft). After --warmup seconds the
// counters reset; then it measures for --duration seconds and prints messages/s and the
// p50/p99/p999 latency, as a '#' line for humans and a RESULT line (bench/result.hpp,
// docs/benchmarks.md) of one measurement:
//   RESULT <label> <workload> c=<connections> <msgs/s> msgs/s min=.. max=.. reps=1
//          p50=..us p99=..us p999=..us
#include "../result.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

using clk = std::chrono::steady_clock;

struct config {
  std::string host = "127.0.0.1", label = "weft", workload = "W7";
  int port = 0, connections = 64, threads = 1, size = 64;
  double duration = 5, warmup = 0.5;
};

struct conn {
  int fd = -1;
  std::size_t got = 0;
  clk::time_point sent;
};

std::atomic<bool> measuring{false}, stop{false};

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "weft_loadgen: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

int dial(const config& c) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(c.port));
  if (inet_pton(AF_INET, c.host.c_str(), &a.sin_addr) != 1) die("bad --host");
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) die("connect");
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

void send_msg(conn& k, const std::vector<char>& msg) {
  k.got = 0;
  k.sent = clk::now();
  std::size_t off = 0;
  while (off < msg.size()) {  // 64 bytes on loopback: one send in practice
    ssize_t n = send(k.fd, msg.data() + off, msg.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EINTR) die("send");
    if (n > 0) off += static_cast<std::size_t>(n);
  }
}

void run_thread(const config& c, std::vector<conn>& conns, std::vector<std::uint32_t>& lat,
                std::uint64_t& count) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  std::vector<char> msg(static_cast<std::size_t>(c.size), 'x'), buf(65536);
  for (std::size_t i = 0; i < conns.size(); ++i) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev) != 0) die("epoll_ctl");
    send_msg(conns[i], msg);
  }
  epoll_event evs[256];
  while (!stop.load(std::memory_order_relaxed)) {
    int n = epoll_wait(ep, evs, 256, 100);
    for (int i = 0; i < n; ++i) {
      conn& k = conns[evs[i].data.u64];
      ssize_t r = recv(k.fd, buf.data(), buf.size(), MSG_DONTWAIT);
      if (r == 0) die("server closed a connection");
      if (r < 0) {
        if (errno == EAGAIN || errno == EINTR) continue;
        die("recv");
      }
      k.got += static_cast<std::size_t>(r);
      if (k.got < msg.size()) continue;
      if (measuring.load(std::memory_order_relaxed)) {
        auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(clk::now() - k.sent).count();
        lat.push_back(static_cast<std::uint32_t>(std::min<long long>(ns, UINT32_MAX)));
        ++count;
      }
      send_msg(k, msg);
    }
  }
  close(ep);
}

double pct(std::vector<std::uint32_t>& v, double p) {
  if (v.empty()) return 0;
  auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k] / 1000.0;
}

config parse(int argc, char** argv) {
  config c;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--host") c.host = v;
    else if (k == "--port") c.port = std::atoi(v.c_str());
    else if (k == "--connections") c.connections = std::atoi(v.c_str());
    else if (k == "--threads") c.threads = std::atoi(v.c_str());
    else if (k == "--size") c.size = std::atoi(v.c_str());
    else if (k == "--duration") c.duration = std::atof(v.c_str());
    else if (k == "--warmup") c.warmup = std::atof(v.c_str());
    else if (k == "--label") c.label = v;
    else if (k == "--workload") c.workload = v;
    else { std::fprintf(stderr, "weft_loadgen: unknown option %s\n", k.c_str()); std::exit(2); }
  }
  if (c.port <= 0 || c.connections < 1 || c.threads < 1 || c.size < 1) {
    std::fprintf(stderr, "usage: weft_loadgen --port P [--connections N] [--threads T] "
                         "[--size B] [--duration S] [--warmup S] [--host A] [--label L]\n");
    std::exit(2);
  }
  c.threads = std::min(c.threads, c.connections);
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  const config c = parse(argc, argv);
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;  // 1024 connections need more than the usual soft 1024
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  std::vector<std::vector<conn>> per(static_cast<std::size_t>(c.threads));
  for (int i = 0; i < c.connections; ++i) {
    conn k;
    k.fd = dial(c);
    per[static_cast<std::size_t>(i % c.threads)].push_back(k);
  }
  std::vector<std::vector<std::uint32_t>> lat(per.size());
  std::vector<std::uint64_t> counts(per.size());
  std::vector<std::thread> ts;
  for (std::size_t t = 0; t < per.size(); ++t)
    ts.emplace_back([&, t] { run_thread(c, per[t], lat[t], counts[t]); });
  std::this_thread::sleep_for(std::chrono::duration<double>(c.warmup));
  measuring.store(true);
  auto t0 = clk::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(c.duration));
  measuring.store(false);
  double secs = std::chrono::duration<double>(clk::now() - t0).count();
  stop.store(true);
  for (auto& t : ts) t.join();
  std::vector<std::uint32_t> all;
  std::uint64_t total = 0;
  for (std::size_t t = 0; t < per.size(); ++t) {
    all.insert(all.end(), lat[t].begin(), lat[t].end());
    total += counts[t];
    for (auto& k : per[t]) close(k.fd);
  }
  const double rate = static_cast<double>(total) / secs;
  const double p50 = pct(all, 0.5), p99 = pct(all, 0.99), p999 = pct(all, 0.999);
  std::printf("# %s c=%d size=%d threads=%d: %.0f msgs/s, p50 %.1f us, p99 %.1f us, p999 %.1f us\n",
              c.label.c_str(), c.connections, c.size, c.threads, rate, p50, p99, p999);
  auto us = [](double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1fus", v);
    return std::string(buf);
  };
  weft_bench::print({c.label, c.workload, "c=" + std::to_string(c.connections), "msgs/s",
                     weft_bench::single(rate),
                     {{"p50", us(p50)}, {"p99", us(p99)}, {"p999", us(p999)}}});
}
