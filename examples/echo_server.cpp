// examples/echo_server.cpp - TCP echo server: one fiber per connection.
//
//   echo_server PORT [ADDR]        (ADDR defaults to 127.0.0.1; "::" or "0.0.0.0" for all)
//
// Each connection's fiber reads and writes as if the socket were blocking; while it
// waits, its worker runs other fibers. PORT 0 picks a free port (printed). SIGINT or
// SIGTERM stops it cleanly (graceful.hpp): no new connections, every open one is asked to
// stop - its pending read ends with operation_canceled - and the process exits 0 once
// all ended, or 1 after a 5 s grace period.
#include "graceful.hpp"

#include <weft/weft.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

void serve(weft::tcp_stream conn) {
  char buf[4096];
  for (;;) {
    auto n = conn.read(buf, sizeof buf);
    if (!n || *n == 0) return;  // error or end of file: the destructor closes
    if (!conn.write_all(buf, *n)) return;
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int sfd = example::block_stop_signals();  // before the scheduler starts threads
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s PORT [ADDR]\n", argv[0]);
    return 2;
  }
  const int port = std::atoi(argv[1]);
  const std::string addr = argc > 2 ? argv[2] : "127.0.0.1";
  auto ep = weft::endpoint::parse(addr, static_cast<std::uint16_t>(port));
  if (!ep || port < 0 || port > 65535) {
    std::fprintf(stderr, "echo_server: bad address %s port %s\n", addr.c_str(), argv[1]);
    return 2;
  }
  auto listener = weft::tcp_listener::bind(*ep);
  if (!listener) {
    std::fprintf(stderr, "echo_server: %s: %s\n", ep->to_string().c_str(),
                 listener.error().message().c_str());
    return 1;
  }
  std::printf("echo_server: listening on %s\n", listener->local_endpoint()->to_string().c_str());
  std::fflush(stdout);

  weft::scheduler sched;
  return example::serve_until_signal(sched, *listener, sfd, serve, std::chrono::seconds(5));
}
