// examples/tcp_proxy.cpp - TCP proxy: each accepted connection gets an upstream connection
// (to a host name or address: resolved off the workers) and three fibers: one reader per
// socket feeding a bounded channel, and a pump that selects between the two channels and
// writes each chunk to the other socket. End of file on one side is passed on as
// shutdown_write, so half-closed protocols work; the bounded channels are the
// back-pressure (a slow reader stalls the other side's reads, not memory).
//
//   tcp_proxy LISTEN_PORT TARGET_HOST TARGET_PORT     (listens on 127.0.0.1)
//   tcp_proxy --self-test      an echo server, the proxy and clients on 127.0.0.1 in this
//                              process; exit 0 if every byte came back through the proxy
#include <weft/weft.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using chunks = weft::channel<std::string>;

// Reads from s into ch until end of file or an error, then closes ch.
void reader(weft::tcp_stream& s, chunks& ch) {
  std::string buf(16384, '\0');
  for (;;) {
    auto n = s.read(buf.data(), buf.size());
    if (!n || *n == 0) break;
    if (ch.send(buf.substr(0, *n)) != weft::channel_status::ok) break;  // the pump gave up
  }
  ch.close();
}

void proxy(weft::tcp_stream client, const std::string& host, std::uint16_t port) {
  auto upstream = weft::tcp_stream::connect(host, port, weft::deadline_after(5s));
  if (!upstream) {
    std::fprintf(stderr, "tcp_proxy: %s:%u: %s\n", host.c_str(), port,
                 upstream.error().message().c_str());
    return;  // the client's stream closes
  }
  chunks from_client(4), from_upstream(4);
  auto r1 = weft::spawn([&] { reader(client, from_client); });
  auto r2 = weft::spawn([&] { reader(*upstream, from_upstream); });
  bool client_open = true, upstream_open = true, failed = false;
  // Forwards one chunk (or, at end of file, the half-close) to dst.
  auto forward = [&](weft::tcp_stream& dst, bool& open) {
    // Pointers, not the reference parameters: the handler outlives this call.
    return [d = &dst, o = &open, &failed](std::optional<std::string> chunk) {
      if (!chunk) {
        *o = false;
        (void)d->shutdown_write();
      } else if (!d->write_all(chunk->data(), chunk->size())) {
        failed = true;
      }
    };
  };
  while (client_open && upstream_open && !failed)
    weft::select(weft::recv_case(from_client, forward(*upstream, client_open)),
                 weft::recv_case(from_upstream, forward(client, upstream_open)));
  // One side ended: the other's remaining chunks, without select (a closed channel's
  // case is always ready).
  while (!failed && (client_open || upstream_open)) {
    auto chunk = client_open ? from_client.recv() : from_upstream.recv();
    forward(client_open ? *upstream : client, client_open ? client_open : upstream_open)(
        std::move(chunk));
  }
  // Unblock the readers (a read wakes with bad_file_descriptor, a send finds the channel
  // closed) before the channels they use go away.
  from_client.close();
  from_upstream.close();
  (void)client.close();
  (void)upstream->close();
  r1.join();
  r2.join();
}

// Accepts until the listener is closed (or the scheduler shuts down).
void serve(weft::tcp_listener& l, const std::string& host, std::uint16_t port) {
  for (;;) {
    auto c = l.accept();
    if (!c) return;
    weft::spawn([c = std::move(*c), &host, port]() mutable { proxy(std::move(c), host, port); })
        .detach();
  }
}

int self_test() {
  auto any = *weft::endpoint::parse("127.0.0.1", 0);
  auto echo = weft::tcp_listener::bind(any);
  auto front = weft::tcp_listener::bind(any);
  if (!echo || !front) return std::fprintf(stderr, "tcp_proxy: bind failed\n"), 1;
  const std::string target = "localhost";  // resolved on the blocking pool
  const std::uint16_t echo_port = echo->local_endpoint()->port();
  const weft::endpoint proxy_ep = *front->local_endpoint();
  weft::scheduler sched;
  int failures = 0;
  sched.block_on([&] {
    auto echo_srv = weft::spawn([&] {
      for (;;) {
        auto c = echo->accept();
        if (!c) return;
        weft::spawn([c = std::move(*c)]() mutable {
          char buf[8192];
          for (;;) {
            auto n = c.read(buf, sizeof buf);
            if (!n || *n == 0 || !c.write_all(buf, *n)) break;
          }
          (void)c.shutdown_write();
        }).detach();
      }
    });
    auto proxy_srv = weft::spawn([&] { serve(*front, target, echo_port); });
    constexpr int clients = 8;
    std::vector<weft::join_handle<bool>> cs;
    for (int i = 0; i < clients; ++i)
      cs.push_back(weft::spawn([&, i] {
        auto c = weft::tcp_stream::connect(proxy_ep, weft::deadline_after(5s));
        if (!c) return false;
        std::string msg(1000 + i * 40000, '\0');  // up to ~280 KB: several chunks
        for (std::size_t k = 0; k < msg.size(); ++k) msg[k] = static_cast<char>('a' + (k + i) % 26);
        auto w = weft::spawn([&] { return c->write_all(msg.data(), msg.size()) && c->shutdown_write(); });
        std::string got;
        char buf[8192];
        bool eof = false;  // the half-close went through the proxy and came back
        for (;;) {
          auto n = c->read(buf, sizeof buf, weft::deadline_after(10s));
          if (!n || *n == 0) {
            eof = n.has_value();
            break;
          }
          got.append(buf, *n);
        }
        return w.join() && eof && got == msg;
      }));
    for (auto& c : cs) failures += c.join() ? 0 : 1;
    (void)front->close();
    (void)echo->close();
    proxy_srv.join();
    echo_srv.join();
    std::printf("tcp_proxy self-test: %d clients through %s -> %s:%u, %d failures\n", clients,
                proxy_ep.to_string().c_str(), target.c_str(), echo_port, failures);
  });
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::strcmp(argv[1], "--self-test") == 0) return self_test();
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s LISTEN_PORT TARGET_HOST TARGET_PORT | --self-test\n", argv[0]);
    return 2;
  }
  const int port = std::atoi(argv[1]), target_port = std::atoi(argv[3]);
  if (port <= 0 || port > 65535 || target_port <= 0 || target_port > 65535) {
    std::fprintf(stderr, "tcp_proxy: bad port\n");
    return 2;
  }
  auto l = weft::tcp_listener::bind(*weft::endpoint::parse("127.0.0.1", static_cast<std::uint16_t>(port)));
  if (!l) {
    std::fprintf(stderr, "tcp_proxy: listen: %s\n", l.error().message().c_str());
    return 1;
  }
  std::printf("tcp_proxy: %s -> %s:%d\n", l->local_endpoint()->to_string().c_str(), argv[2],
              target_port);
  std::fflush(stdout);
  const std::string host = argv[2];
  weft::scheduler sched;
  sched.block_on([&] { serve(*l, host, static_cast<std::uint16_t>(target_port)); });
  return 0;
}
