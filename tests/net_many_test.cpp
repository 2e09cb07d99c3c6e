// tests/net_many_test.cpp - 5,000 concurrent connections to an in-process echo server,
// every byte checked; and a connection churn test (connect/close storms, half the
// clients closing mid-stream) against an acceptor pool. 127.0.0.1 only; bounded in
// count and time.
//
// RLIMIT_NOFILE is raised to its hard limit. Both ends live in this process, so N
// connections need 2N + a few fds: N is reduced (and printed) when the hard limit is
// lower, and under sanitizers (TSan fiber lifecycles cost 0.1-0.4 ms, docs/platform.md).
#include "weft_test.hpp"

#include <weft/net.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <sys/resource.h>
#include <vector>

namespace {

using namespace std::chrono_literals;

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr bool sanitized = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
constexpr bool sanitized = true;
#else
constexpr bool sanitized = false;
#endif
#else
constexpr bool sanitized = false;
#endif

int connections_allowed(int wanted) {
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  getrlimit(RLIMIT_NOFILE, &rl);
  const long room = (static_cast<long>(rl.rlim_cur) - 64) / 2;
  const int n = static_cast<int>(std::min<long>(wanted, room));
  std::printf("[ info     ] RLIMIT_NOFILE %lu -> %d concurrent connections (wanted %d)\n",
              static_cast<unsigned long>(rl.rlim_cur), n, wanted);
  return n;
}

class NetMany : public weft_test {};
INSTANTIATE_TEST_SUITE_P(workers, NetMany, ::testing::Values(2u),
                         [](const auto& info) { return "w" + std::to_string(info.param); });

// An echo server: `acceptors` fibers accept on one listener (an acceptor pool when > 1).
struct server {
  weft::tcp_listener listener;
  std::vector<weft::join_handle<void>> acceptors;
  std::atomic<int> accepted{0};

  void start(int pool = 1) {
    listener = std::move(*weft::tcp_listener::bind(*weft::endpoint::parse("127.0.0.1", 0),
                                                   {.backlog = 4096}));
    for (int i = 0; i < pool; ++i)
      acceptors.push_back(weft::spawn([this] {
        for (;;) {
          auto c = listener.accept();
          if (!c) {  // closed by stop()
            EXPECT_EQ(c.error(), std::make_error_code(std::errc::bad_file_descriptor));
            return;
          }
          accepted.fetch_add(1, std::memory_order_relaxed);
          weft::spawn([s = std::move(*c)]() mutable {
            char buf[2048];
            for (;;) {
              auto n = s.read(buf, sizeof buf);
              if (!n || *n == 0 || !s.write_all(buf, *n)) return;
            }
          }).detach();
        }
      }));
  }
  void stop() {
    EXPECT_TRUE(listener.close());
    for (auto& a : acceptors) a.join();
  }
};

// One client: connect, `rounds` times send `size` patterned bytes and read them back.
bool client_session(const weft::endpoint& ep, std::uint32_t id, int rounds, std::size_t size) {
  auto c = weft::tcp_stream::connect(ep, weft::deadline_after(30s));
  if (!c) {
    std::printf("client %u: connect: %s\n", id, c.error().message().c_str());
    return false;
  }
  std::vector<unsigned char> out(size), in(size);
  for (int r = 0; r < rounds; ++r) {
    for (std::size_t i = 0; i < size; ++i)
      out[i] = static_cast<unsigned char>(id * 131 + static_cast<std::uint32_t>(r) * 7 + i);
    if (!c->write_all(out.data(), size, weft::deadline_after(30s))) return false;
    std::size_t got = 0;
    while (got < size) {
      auto n = c->read(in.data() + got, size - got, weft::deadline_after(30s));
      if (!n || *n == 0) return false;
      got += *n;
    }
    if (in != out) return false;
  }
  return true;
}

TEST_P(NetMany, FiveThousandConcurrentConnections) {
  const int n = connections_allowed(sanitized ? 500 : 5000);
  ASSERT_GT(n, 0);
  std::atomic<int> ok{0}, connected{0};
  sched().block_on([&] {
    server srv;
    srv.start();
    const weft::endpoint ep = *srv.listener.local_endpoint();
    std::vector<weft::join_handle<void>> clients;
    clients.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i)
      clients.push_back(weft::spawn([&, i] {
        auto c = weft::tcp_stream::connect(ep, weft::deadline_after(30s));
        if (!c) return;
        connected.fetch_add(1);
        // Hold every connection open until all are connected: truly concurrent.
        while (connected.load() < n) weft::this_fiber::sleep_for(1ms);
        std::vector<unsigned char> out(1000), in(1000);
        for (std::size_t k = 0; k < out.size(); ++k)
          out[k] = static_cast<unsigned char>(static_cast<std::size_t>(i) * 31 + k);
        if (!c->write_all(out.data(), out.size(), weft::deadline_after(30s))) return;
        std::size_t got = 0;
        while (got < in.size()) {
          auto r = c->read(in.data() + got, in.size() - got, weft::deadline_after(30s));
          if (!r || *r == 0) return;
          got += *r;
        }
        if (in == out) ok.fetch_add(1);
      }));
    for (auto& h : clients) h.join();
    srv.stop();
    EXPECT_EQ(srv.accepted.load(), n);
  });
  EXPECT_EQ(connected.load(), n);
  EXPECT_EQ(ok.load(), n);
}

// Churn: waves of short connections; some clients close without reading their echo
// (the server then sees EPIPE/ECONNRESET or EOF); the rest check every byte. fd numbers
// are reused constantly, exercising the generation tags. The server accepts with a pool
// of four fibers on its listener.
TEST_P(NetMany, ConnectionChurn) {
  const int waves = sanitized ? 5 : 40, per_wave = sanitized ? 40 : 200;
  std::atomic<int> good{0}, expected_good{0};
  const auto t0 = std::chrono::steady_clock::now();
  sched().block_on([&] {
    server srv;
    srv.start(4);
    const weft::endpoint ep = *srv.listener.local_endpoint();
    std::mt19937 rng(12345);
    for (int w = 0; w < waves && std::chrono::steady_clock::now() - t0 < 60s; ++w) {
      std::vector<weft::join_handle<void>> hs;
      for (int i = 0; i < per_wave; ++i) {
        const bool abort_early = rng() % 4 == 0;
        if (!abort_early) expected_good.fetch_add(1);
        const auto id = static_cast<std::uint32_t>(w * per_wave + i);
        hs.push_back(weft::spawn([&, abort_early, id] {
          if (abort_early) {
            auto c = weft::tcp_stream::connect(ep, weft::deadline_after(30s));
            if (c) (void)c->write_all("partial", 7);  // then close without reading
            return;
          }
          if (client_session(ep, id, 3, 300)) good.fetch_add(1);
        }));
      }
      for (auto& h : hs) h.join();
    }
    srv.stop();
  });
  EXPECT_EQ(good.load(), expected_good.load());
}

}  // namespace
