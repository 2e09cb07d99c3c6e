// examples/udp_echo.cpp - UDP echo server: one fiber receives batches of datagrams
// (recvmmsg) and sends them back to their sources in one sendmmsg.
//
//   udp_echo PORT [ADDR]       (ADDR defaults to 127.0.0.1; "::1", "::" or "0.0.0.0" too)
//   udp_echo --self-test       server and client on 127.0.0.1 in this process; exit 0 if
//                              every datagram came back intact
#include <weft/weft.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;

constexpr std::size_t batch = 32, max_datagram = 2048;

// Echoes until the socket is closed (or the scheduler shuts down). Returns the error
// that ended it.
std::error_code serve(weft::udp_socket& sock) {
  // On the heap: 64 KiB of buffers would overflow a fiber's stack (64 KiB by default).
  std::vector<char> bufs(batch * max_datagram);
  std::vector<weft::udp_message> msgs(batch);
  for (;;) {
    for (std::size_t i = 0; i < batch; ++i) msgs[i] = {&bufs[i * max_datagram], max_datagram, {}, {}};
    auto got = sock.recv_batch(msgs.data(), batch);
    if (!got) return got.error();
    for (std::size_t i = 0; i < *got; ++i) msgs[i].size = msgs[i].result.size;  // peer is set
    std::size_t sent = 0;
    while (sent < *got) {  // a failed datagram (say, its source vanished) is skipped
      auto n = sock.send_batch(msgs.data() + sent, *got - sent);
      sent += n ? *n : 1;
    }
  }
}

int self_test() {
  auto server = weft::udp_socket::bind(*weft::endpoint::parse("127.0.0.1", 0));
  if (!server) return std::fprintf(stderr, "bind: %s\n", server.error().message().c_str()), 1;
  const weft::endpoint to = *server->local_endpoint();
  weft::scheduler sched;
  int failures = 0;
  sched.block_on([&] {
    auto srv = weft::spawn([&] { return serve(*server); });
    auto client = weft::udp_socket::open(AF_INET);
    if (!client || !client->connect(to)) {
      ++failures;
      return;
    }
    constexpr int count = 200;
    for (int i = 0; i < count; ++i) {
      const std::string msg = "datagram " + std::to_string(i) + std::string(i % 50, '.');
      bool ok = false;
      for (int attempt = 0; attempt < 5 && !ok; ++attempt) {  // UDP may drop: retry
        if (!client->send(msg.data(), msg.size())) break;
        char buf[max_datagram];
        for (;;) {  // skip late echoes of earlier attempts
          auto d = client->recv(buf, sizeof buf, weft::deadline_after(1s));
          if (!d) break;
          if (std::string(buf, d->size) == msg) {
            ok = true;
            break;
          }
        }
      }
      if (!ok) ++failures;
    }
    (void)server->close();  // ends serve() with bad_file_descriptor
    const std::error_code end = srv.join();
    if (end != std::errc::bad_file_descriptor) ++failures;
    std::printf("udp_echo self-test: %d datagrams, %d failures, server ended: %s\n", count,
                failures, end.message().c_str());
  });
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::strcmp(argv[1], "--self-test") == 0) return self_test();
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s PORT [ADDR] | --self-test\n", argv[0]);
    return 2;
  }
  const int port = std::atoi(argv[1]);
  const std::string addr = argc > 2 ? argv[2] : "127.0.0.1";
  auto ep = weft::endpoint::parse(addr, static_cast<std::uint16_t>(port));
  if (!ep || port <= 0 || port > 65535) {
    std::fprintf(stderr, "udp_echo: bad address %s port %s\n", addr.c_str(), argv[1]);
    return 2;
  }
  auto sock = weft::udp_socket::bind(*ep);
  if (!sock) {
    std::fprintf(stderr, "udp_echo: %s: %s\n", ep->to_string().c_str(),
                 sock.error().message().c_str());
    return 1;
  }
  std::printf("udp_echo: listening on %s\n", sock->local_endpoint()->to_string().c_str());
  std::fflush(stdout);
  weft::scheduler sched;
  const std::error_code end = sched.block_on([&] { return serve(*sock); });
  std::fprintf(stderr, "udp_echo: %s\n", end.message().c_str());
  return 1;
}
