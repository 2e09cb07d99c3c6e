// tests/udp_test.cpp - udp_socket on 127.0.0.1 and ::1: send_to/recv_from, connected
// send/recv, batches (sendmmsg/recvmmsg), waiting and deadlines, and each call's bad
// input: closed socket, wrong family, oversized datagram, truncated receive.
#include "weft_test.hpp"

#include <weft/net.hpp>

#include <chrono>
#include <cstring>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using weft::clock;

class Udp : public weft_test {};
WEFT_INSTANTIATE(Udp);

std::error_code err(std::errc e) { return std::make_error_code(e); }

// Checked at run time: the ::1 cases skip cleanly on a host without an IPv6 loopback.
bool have_ipv6_loopback() {
  static const bool yes = [] {
    auto ep = weft::endpoint::parse("::1", 0);
    return ep && weft::udp_socket::bind(*ep).has_value();
  }();
  return yes;
}

std::vector<const char*> loopbacks() {
  if (have_ipv6_loopback()) return {"127.0.0.1", "::1"};
  std::printf("[ SKIPPED  ] the ::1 half: no IPv6 loopback on this machine\n");
  return {"127.0.0.1"};
}

weft::udp_socket bind_any(const char* addr) {
  auto u = weft::udp_socket::bind(*weft::endpoint::parse(addr, 0));
  EXPECT_TRUE(u) << u.error().message();
  return std::move(*u);
}

std::string str(const char* buf, weft::datagram d) { return std::string(buf, d.size); }

// A receiver waits (its fiber suspends) until another fiber sends; the source address is
// reported; the reply goes back with send_to; an empty datagram is a datagram, not EOF.
TEST_P(Udp, SendToRecvFrom) {
  for (const char* addr : loopbacks()) {
    weft::udp_socket server = bind_any(addr);
    const weft::endpoint sep = *server.local_endpoint();
    auto client = weft::udp_socket::open(sep.family());
    ASSERT_TRUE(client) << client.error().message();
    sched().block_on([&] {
      auto sender = weft::spawn([&] {
        weft::this_fiber::sleep_for(20ms);  // the receiver waits first (not required)
        EXPECT_EQ(*client->send_to("ping", 4, sep), 4u);
        EXPECT_EQ(*client->send_to("", 0, sep), 0u);
      });
      char buf[64];
      weft::endpoint from;
      auto d = server.recv_from(buf, sizeof buf, &from, weft::deadline_after(5s));
      ASSERT_TRUE(d) << d.error().message();
      EXPECT_EQ(str(buf, *d), "ping");
      EXPECT_FALSE(d->truncated);
      EXPECT_EQ(from.port(), client->local_endpoint()->port());  // bound by the send, to ANY
      d = server.recv_from(buf, sizeof buf, &from, weft::deadline_after(5s));
      ASSERT_TRUE(d) << d.error().message();
      EXPECT_EQ(d->size, 0u);
      sender.join();
      ASSERT_TRUE(server.send_to("pong", 4, from));
      d = client->recv(buf, sizeof buf, weft::deadline_after(5s));
      ASSERT_TRUE(d) << d.error().message();
      EXPECT_EQ(str(buf, *d), "pong");
      auto t0 = clock::now();
      EXPECT_EQ(server.recv(buf, sizeof buf, weft::deadline_after(20ms)).error(),
                err(std::errc::timed_out));
      EXPECT_GE(clock::now() - t0, 20ms);
    });
  }
}

// connect() fixes the peer: send/recv without addresses. A send to a port nobody listens
// on comes back (ICMP port unreachable) as connection_refused on a later receive.
TEST_P(Udp, ConnectedSendRecvAndRefused) {
  for (const char* addr : loopbacks()) {
    weft::udp_socket server = bind_any(addr);
    const weft::endpoint sep = *server.local_endpoint();
    weft::udp_socket client = bind_any(addr);
    weft::endpoint dead;
    {
      weft::udp_socket gone = bind_any(addr);
      dead = *gone.local_endpoint();
    }
    sched().block_on([&] {
      EXPECT_EQ(client.send("x", 1).error(), err(std::errc::destination_address_required));
      ASSERT_TRUE(client.connect(sep));
      EXPECT_EQ(client.peer_endpoint()->to_string(), sep.to_string());
      ASSERT_TRUE(client.send("hello", 5, weft::deadline_after(5s)));
      char buf[64];
      weft::endpoint from;
      auto d = server.recv_from(buf, sizeof buf, &from, weft::deadline_after(5s));
      ASSERT_TRUE(d) << d.error().message();
      EXPECT_EQ(str(buf, *d), "hello");
      ASSERT_TRUE(server.send_to("back", 4, from));
      d = client.recv(buf, sizeof buf, weft::deadline_after(5s));
      ASSERT_TRUE(d) << d.error().message();
      EXPECT_EQ(str(buf, *d), "back");

      ASSERT_TRUE(client.connect(dead));
      ASSERT_TRUE(client.send("lost", 4));
      EXPECT_EQ(client.recv(buf, sizeof buf, weft::deadline_after(5s)).error(),
                err(std::errc::connection_refused));
    });
  }
}

// A datagram longer than the buffer: its start is kept and truncated is set; the rest is
// dropped, and the next receive gets the next datagram whole.
TEST_P(Udp, TruncatedReceiveIsReported) {
  for (const char* addr : loopbacks()) {
    weft::udp_socket server = bind_any(addr);
    const weft::endpoint sep = *server.local_endpoint();
    weft::udp_socket client = bind_any(addr);
    sched().block_on([&] {
      const std::string big(1000, 'b');
      ASSERT_TRUE(client.send_to(big.data(), big.size(), sep));
      ASSERT_TRUE(client.send_to("next", 4, sep));
      char buf[10];
      auto d = server.recv(buf, sizeof buf, weft::deadline_after(5s));
      ASSERT_TRUE(d) << d.error().message();
      EXPECT_EQ(d->size, sizeof buf);
      EXPECT_TRUE(d->truncated);
      EXPECT_EQ(str(buf, *d), big.substr(0, sizeof buf));
      d = server.recv(buf, sizeof buf, weft::deadline_after(5s));
      ASSERT_TRUE(d) << d.error().message();
      EXPECT_EQ(str(buf, *d), "next");
      EXPECT_FALSE(d->truncated);
    });
  }
}

// The largest UDP payload goes (65,507 bytes over IPv4); one byte more is message_size,
// a clear error rather than a silent drop.
TEST_P(Udp, OversizedDatagramIsMessageSize) {
  for (const char* addr : loopbacks()) {
    weft::udp_socket server = bind_any(addr);
    ASSERT_TRUE(server.set_recv_buffer(1 << 20));
    const weft::endpoint sep = *server.local_endpoint();
    weft::udp_socket client = bind_any(addr);
    const bool v6 = sep.family() == AF_INET6;
    const std::size_t max = v6 ? 65527 : 65507;
    std::vector<char> payload(70000, 'p');
    sched().block_on([&] {
      auto n = client.send_to(payload.data(), max, sep, weft::deadline_after(5s));
      ASSERT_TRUE(n) << addr << ": " << n.error().message();
      EXPECT_EQ(*n, max);
      std::vector<char> buf(70000);
      auto d = server.recv(buf.data(), buf.size(), weft::deadline_after(5s));
      ASSERT_TRUE(d) << d.error().message();
      EXPECT_EQ(d->size, max);
      if (!v6) {  // IPv6's limit is checked with 70,000 only (below)
        EXPECT_EQ(client.send_to(payload.data(), max + 1, sep).error(),
                  err(std::errc::message_size));
      }
      EXPECT_EQ(client.send_to(payload.data(), payload.size(), sep).error(),
                err(std::errc::message_size));
      ASSERT_TRUE(client.connect(sep));
      EXPECT_EQ(client.send(payload.data(), payload.size()).error(), err(std::errc::message_size));
      weft::udp_message m{payload.data(), payload.size(), {}, {}};
      EXPECT_EQ(client.send_batch(&m, 1).error(), err(std::errc::message_size));
      // In a batch, an oversized datagram after a good one: the good one goes (count 1),
      // and the retry from there reports message_size.
      weft::udp_message two[2] = {{payload.data(), 10, {}, {}}, m};
      EXPECT_EQ(*client.send_batch(two, 2), 1u);
      EXPECT_EQ(client.send_batch(two + 1, 1).error(), err(std::errc::message_size));
      d = server.recv(buf.data(), buf.size(), weft::deadline_after(5s));
      ASSERT_TRUE(d) << d.error().message();
      EXPECT_EQ(d->size, 10u);
    });
  }
}

// An endpoint of the other family (or none) is refused before any syscall, for every call
// that takes one: an IPv6 socket would otherwise send to an IPv4 address (dual stack).
TEST_P(Udp, WrongFamilyIsRefused) {
  const auto eafns = err(std::errc::address_family_not_supported);
  EXPECT_EQ(weft::udp_socket::open(AF_UNIX).error(), eafns);
  EXPECT_EQ(weft::udp_socket::bind(weft::endpoint{}).error(), eafns);
  weft::udp_socket v4 = bind_any("127.0.0.1");
  const weft::endpoint v4ep = *v4.local_endpoint();
  sched().block_on([&] {
    const weft::endpoint v6ep = *weft::endpoint::parse("::1", v4ep.port());
    EXPECT_EQ(v4.send_to("x", 1, v6ep).error(), eafns);
    EXPECT_EQ(v4.send_to("x", 1, weft::endpoint{}).error(), eafns);
    EXPECT_EQ(v4.connect(v6ep).error(), eafns);
    weft::udp_message m{const_cast<char*>("x"), 1, v6ep, {}};
    EXPECT_EQ(v4.send_batch(&m, 1).error(), eafns);
    if (have_ipv6_loopback()) {
      weft::udp_socket v6 = bind_any("::1");
      EXPECT_EQ(v6.send_to("x", 1, v4ep).error(), eafns);
      EXPECT_EQ(v6.connect(v4ep).error(), eafns);
    }
    char buf[4];
    EXPECT_EQ(v4.recv(buf, sizeof buf, clock::now()).error(), err(std::errc::timed_out));
  });
}

// A closed (or never opened) socket: every call is bad_file_descriptor; a receiver
// waiting when another fiber closes the socket wakes with it.
TEST_P(Udp, ClosedSocketIsBadDescriptor) {
  const auto ebadf = err(std::errc::bad_file_descriptor);
  weft::udp_socket u = bind_any("127.0.0.1");
  const weft::endpoint ep = *u.local_endpoint();
  sched().block_on([&] {
    auto waiter = weft::spawn([&] {
      char buf[4];
      return u.recv(buf, sizeof buf, weft::deadline_after(10s)).error();
    });
    weft::this_fiber::sleep_for(10ms);  // the waiter waits by now (not required)
    EXPECT_TRUE(u.close());
    EXPECT_EQ(waiter.join(), ebadf);
    weft::udp_socket never;
    for (weft::udp_socket* s : {&u, &never}) {
      char buf[4];
      weft::udp_message m{buf, sizeof buf, {}, {}};
      EXPECT_FALSE(s->is_open());
      EXPECT_EQ(s->send_to("x", 1, ep).error(), ebadf);
      EXPECT_EQ(s->recv_from(buf, sizeof buf, nullptr).error(), ebadf);
      EXPECT_EQ(s->send("x", 1).error(), ebadf);
      EXPECT_EQ(s->recv(buf, sizeof buf).error(), ebadf);
      EXPECT_EQ(s->send_batch(&m, 1).error(), ebadf);
      EXPECT_EQ(s->recv_batch(&m, 1).error(), ebadf);
      EXPECT_EQ(s->connect(ep).error(), ebadf);
      EXPECT_EQ(s->set_recv_buffer(4096).error(), ebadf);
      EXPECT_EQ(s->local_endpoint().error(), ebadf);
      EXPECT_EQ(s->close().error(), ebadf);
    }
  });
}

// sendmmsg / recvmmsg: a batch of datagrams (one of them empty, one longer than its
// receive buffer) arrives whole, in order, each with its source and truncation flag;
// recv_batch returns what is queued (at least one) without waiting for a full batch.
TEST_P(Udp, Batches) {
  for (const char* addr : loopbacks()) {
    weft::udp_socket server = bind_any(addr);
    const weft::endpoint sep = *server.local_endpoint();
    weft::udp_socket client = bind_any(addr);
    const std::string cep = client.local_endpoint()->to_string();
    constexpr std::size_t n = 16;
    std::vector<std::string> out(n);
    for (std::size_t i = 0; i < n; ++i) out[i] = "msg" + std::to_string(i);
    out[3] = "";
    out[7] = std::string(300, 'L');  // longer than a receive buffer below
    sched().block_on([&] {
      std::vector<weft::udp_message> send(n);
      for (std::size_t i = 0; i < n; ++i) send[i] = {out[i].data(), out[i].size(), sep, {}};
      std::size_t sent = 0;
      while (sent < n) {
        auto r = client.send_batch(send.data() + sent, n - sent, weft::deadline_after(5s));
        ASSERT_TRUE(r) << r.error().message();
        ASSERT_GE(*r, 1u);
        sent += *r;
      }
      std::vector<std::vector<char>> bufs(n, std::vector<char>(64));
      std::vector<weft::udp_message> recv(n);
      std::size_t got = 0;
      while (got < n) {
        for (std::size_t i = got; i < n; ++i) recv[i] = {bufs[i].data(), bufs[i].size(), {}, {}};
        auto r = server.recv_batch(recv.data() + got, n - got, weft::deadline_after(5s));
        ASSERT_TRUE(r) << r.error().message();
        ASSERT_GE(*r, 1u);
        got += *r;
      }
      for (std::size_t i = 0; i < n; ++i) {
        const std::string want = out[i].substr(0, 64);
        EXPECT_EQ(std::string(bufs[i].data(), recv[i].result.size), want) << i;
        EXPECT_EQ(recv[i].result.truncated, i == 7) << i;
        EXPECT_EQ(recv[i].peer.to_string(), cep) << i;
      }
      // Connected: a default endpoint in a message means the connected peer.
      ASSERT_TRUE(client.connect(sep));
      weft::udp_message m{const_cast<char*>("c"), 1, {}, {}};
      EXPECT_EQ(*client.send_batch(&m, 1), 1u);
      weft::udp_message r1{bufs[0].data(), bufs[0].size(), {}, {}};
      EXPECT_EQ(*server.recv_batch(&r1, 1, weft::deadline_after(5s)), 1u);
      EXPECT_EQ(std::string(bufs[0].data(), r1.result.size), "c");
      // Nothing queued: the batch receive waits, then times out.
      EXPECT_EQ(server.recv_batch(&r1, 1, weft::deadline_after(20ms)).error(),
                err(std::errc::timed_out));
      // Batch sizes out of range.
      EXPECT_EQ(client.send_batch(&m, 0).error(), err(std::errc::invalid_argument));
      EXPECT_EQ(server.recv_batch(&r1, 0).error(), err(std::errc::invalid_argument));
      std::vector<weft::udp_message> huge(1025, m);
      EXPECT_EQ(client.send_batch(huge.data(), huge.size()).error(),
                err(std::errc::invalid_argument));
    });
  }
}

// Buffer sizes set and read back (Linux doubles what is set); sizes <= 0 are refused.
TEST_P(Udp, BufferSizes) {
  weft::udp_socket u = bind_any("127.0.0.1");
  ASSERT_TRUE(u.set_send_buffer(32768));
  ASSERT_TRUE(u.set_recv_buffer(32768));
  EXPECT_GE(*u.send_buffer(), 32768);
  EXPECT_GE(*u.recv_buffer(), 32768);
  EXPECT_EQ(u.set_send_buffer(0).error(), err(std::errc::invalid_argument));
  EXPECT_EQ(u.set_recv_buffer(-5).error(), err(std::errc::invalid_argument));
}

// reuse_port: two sockets bind one port; without it the second bind is address_in_use.
TEST_P(Udp, ReusePort) {
  weft::udp_options opts;
  opts.reuse_port = true;
  auto a = weft::udp_socket::bind(*weft::endpoint::parse("127.0.0.1", 0), opts);
  ASSERT_TRUE(a) << a.error().message();
  const auto ep = *a->local_endpoint();
  auto b = weft::udp_socket::bind(ep, opts);
  EXPECT_TRUE(b) << b.error().message();
  EXPECT_EQ(weft::udp_socket::bind(ep).error(), err(std::errc::address_in_use));
}

}  // namespace
