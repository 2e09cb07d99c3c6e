// tests/unix_test.cpp - unix_listener / unix_stream: echo over a path and an abstract
// name, the socket file's unlink rules, a full backlog (connect retries), and each call's
// bad input: missing path, stale socket file, over-long and malformed paths, closed
// listener.
#include "weft_test.hpp"

#include <weft/net.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <vector>

namespace {

using namespace std::chrono_literals;
using weft::clock;

class Unix : public weft_test {
protected:
  void SetUp() override {
    weft_test::SetUp();
    char tmpl[] = "/tmp/weft-unix-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    weft_test::TearDown();
    for (const char* name : {"/s", "/t", "/f"}) (void)::unlink((dir_ + name).c_str());
    (void)::rmdir(dir_.c_str());
  }
  std::string path(const char* name = "/s") const { return dir_ + name; }

private:
  std::string dir_;
};
WEFT_INSTANTIATE(Unix);

std::error_code err(std::errc e) { return std::make_error_code(e); }

bool is_socket_file(const std::string& p) {
  struct stat st;
  return ::lstat(p.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

bool exists(const std::string& p) {
  struct stat st;
  return ::lstat(p.c_str(), &st) == 0;
}

// Connect, write, the server echoes and half-closes back; both ends see everything and
// end of file.
void echo_over(weft::scheduler& s, weft::unix_listener& l, const std::string& where) {
  s.block_on([&] {
    auto server = weft::spawn([&] {
      auto c = l.accept(weft::deadline_after(5s));
      EXPECT_TRUE(c) << c.error().message();
      if (!c) return;
      char buf[256];
      for (;;) {
        auto n = c->read(buf, sizeof buf, weft::deadline_after(5s));
        if (!n || *n == 0) break;
        EXPECT_TRUE(c->write_all(buf, *n));
      }
      EXPECT_TRUE(c->shutdown_write());
    });
    auto c = weft::unix_stream::connect(where, weft::deadline_after(5s));
    ASSERT_TRUE(c) << c.error().message();
    std::string msg(20000, 'u');
    for (std::size_t i = 0; i < msg.size(); ++i) msg[i] = static_cast<char>('a' + i % 26);
    ASSERT_TRUE(c->write_all(msg.data(), msg.size()));
    ASSERT_TRUE(c->shutdown_write());
    std::string got;
    char buf[4096];
    for (;;) {
      auto n = c->read(buf, sizeof buf, weft::deadline_after(5s));
      ASSERT_TRUE(n) << n.error().message();
      if (*n == 0) break;
      got.append(buf, *n);
    }
    EXPECT_EQ(got, msg);
    server.join();
  });
}

TEST_P(Unix, EchoOverPath) {
  auto l = weft::unix_listener::bind(path());
  ASSERT_TRUE(l) << l.error().message();
  EXPECT_EQ(l->path(), path());
  EXPECT_TRUE(is_socket_file(path()));
  echo_over(sched(), *l, path());
}

// The abstract namespace (leading NUL): no file anywhere, and the name is free again once
// the listener is closed.
TEST_P(Unix, EchoOverAbstractName) {
  const std::string name = std::string(1, '\0') + "weft-unix-test-" + std::to_string(::getpid());
  auto l = weft::unix_listener::bind(name);
  ASSERT_TRUE(l) << l.error().message();
  echo_over(sched(), *l, name);
  EXPECT_EQ(weft::unix_listener::bind(name).error(), err(std::errc::address_in_use));
  ASSERT_TRUE(l->close());
  EXPECT_TRUE(weft::unix_listener::bind(name));
}

// bind creates the socket file and close() removes it; an existing file at the path is
// address_in_use unless unlink_existing (and only a socket file is ever unlinked).
TEST_P(Unix, SocketFileUnlinkRules) {
  {
    auto l = weft::unix_listener::bind(path());
    ASSERT_TRUE(l) << l.error().message();
    EXPECT_TRUE(is_socket_file(path()));
    EXPECT_EQ(weft::unix_listener::bind(path()).error(), err(std::errc::address_in_use));
    ASSERT_TRUE(l->close());
    EXPECT_FALSE(exists(path()));
    EXPECT_EQ(l->close().error(), err(std::errc::bad_file_descriptor));
  }
  {  // the destructor unlinks too; a moved-from listener does not
    auto l = weft::unix_listener::bind(path());
    ASSERT_TRUE(l);
    weft::unix_listener moved = std::move(*l);
    l = weft::result<weft::unix_listener>(weft::unix_listener{});
    EXPECT_TRUE(is_socket_file(path()));
    { weft::unix_listener gone = std::move(moved); }
    EXPECT_FALSE(exists(path()));
  }
  {  // a stale socket file (a server that died without closing)
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path().c_str());
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    ::close(fd);
    ASSERT_TRUE(is_socket_file(path()));
    sched().block_on([&] {
      EXPECT_EQ(weft::unix_stream::connect(path()).error(), err(std::errc::connection_refused));
    });
    EXPECT_EQ(weft::unix_listener::bind(path()).error(), err(std::errc::address_in_use));
    weft::unix_listen_options opts;
    opts.unlink_existing = true;
    auto l = weft::unix_listener::bind(path(), opts);
    ASSERT_TRUE(l) << l.error().message();
    echo_over(sched(), *l, path());
  }
  {  // a regular file is never unlinked
    std::FILE* f = std::fopen(path("/f").c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fclose(f);
    weft::unix_listen_options opts;
    opts.unlink_existing = true;
    EXPECT_EQ(weft::unix_listener::bind(path("/f"), opts).error(), err(std::errc::address_in_use));
    EXPECT_TRUE(exists(path("/f")));
  }
}

// close() unlinks only the file its own bind created: a newer server that replaced it
// (unlink_existing) keeps its socket file and stays reachable.
TEST_P(Unix, CloseKeepsAReplacementsFile) {
  auto old_server = weft::unix_listener::bind(path("/t"));
  ASSERT_TRUE(old_server);
  weft::unix_listen_options opts;
  opts.unlink_existing = true;
  auto new_server = weft::unix_listener::bind(path("/t"), opts);
  ASSERT_TRUE(new_server) << new_server.error().message();
  ASSERT_TRUE(old_server->close());
  EXPECT_TRUE(is_socket_file(path("/t")));
  echo_over(sched(), *new_server, path("/t"));
  ASSERT_TRUE(new_server->close());
  EXPECT_FALSE(exists(path("/t")));
}

// Bad paths and closed objects: each a clear error, before any wait.
TEST_P(Unix, BadInput) {
  const std::string too_long = "/tmp/" + std::string(103, 'x');  // 108 bytes: no room for NUL
  ASSERT_EQ(too_long.size(), sizeof(sockaddr_un::sun_path));
  EXPECT_EQ(weft::unix_listener::bind(too_long).error(), err(std::errc::filename_too_long));
  EXPECT_EQ(weft::unix_listener::bind("").error(), err(std::errc::invalid_argument));
  EXPECT_EQ(weft::unix_listener::bind(std::string(1, '\0')).error(), err(std::errc::invalid_argument));
  EXPECT_EQ(weft::unix_listener::bind(path() + std::string(1, '\0') + "x").error(),
            err(std::errc::invalid_argument));
  EXPECT_EQ(weft::unix_listener::bind(path("/nodir/s")).error(),
            err(std::errc::no_such_file_or_directory));
  auto l = weft::unix_listener::bind(path());
  ASSERT_TRUE(l);
  sched().block_on([&] {
    EXPECT_EQ(weft::unix_stream::connect(too_long).error(), err(std::errc::filename_too_long));
    EXPECT_EQ(weft::unix_stream::connect("").error(), err(std::errc::invalid_argument));
    EXPECT_EQ(weft::unix_stream::connect(path("/t")).error(),
              err(std::errc::no_such_file_or_directory));
    auto t0 = clock::now();
    EXPECT_EQ(l->accept(weft::deadline_after(20ms)).error(), err(std::errc::timed_out));
    EXPECT_GE(clock::now() - t0, 20ms);
    auto acceptor = weft::spawn([&] { return l->accept(weft::deadline_after(10s)).error(); });
    weft::this_fiber::sleep_for(10ms);  // the acceptor waits by now (not required)
    EXPECT_TRUE(l->close());
    EXPECT_EQ(acceptor.join(), err(std::errc::bad_file_descriptor));
    EXPECT_EQ(l->accept().error(), err(std::errc::bad_file_descriptor));
    weft::unix_stream s;
    char c;
    EXPECT_EQ(s.read(&c, 1).error(), err(std::errc::bad_file_descriptor));
    EXPECT_EQ(s.set_send_buffer(4096).error(), err(std::errc::bad_file_descriptor));
  });
}

// A full backlog: the kernel fails a non-blocking connect with EAGAIN and will not signal
// room; connect() retries until the server accepts, or reports timed_out at its deadline.
TEST_P(Unix, ConnectWaitsForBacklogRoom) {
  weft::unix_listen_options opts;
  opts.backlog = 1;  // Linux queues backlog + 1 connections
  auto l = weft::unix_listener::bind(path(), opts);
  ASSERT_TRUE(l);
  constexpr int clients = 6;
  sched().block_on([&] {
    std::vector<weft::unix_stream> queued;
    for (int i = 0; i < 2; ++i) {
      auto c = weft::unix_stream::connect(path(), weft::deadline_after(5s));
      ASSERT_TRUE(c) << c.error().message();
      queued.push_back(std::move(*c));
    }
    auto t0 = clock::now();
    EXPECT_EQ(weft::unix_stream::connect(path(), weft::deadline_after(30ms)).error(),
              err(std::errc::timed_out));
    EXPECT_GE(clock::now() - t0, 30ms);
    std::vector<weft::join_handle<std::error_code>> cs;
    for (int i = 0; i < clients; ++i)
      cs.push_back(weft::spawn([&] {
        auto c = weft::unix_stream::connect(path(), weft::deadline_after(20s));
        if (!c) return c.error();
        char x;
        auto n = c->read(&x, 1, weft::deadline_after(20s));  // the server's byte
        return n ? std::error_code{} : n.error();
      }));
    weft::this_fiber::sleep_for(30ms);  // they find the backlog full and retry
    for (int i = 0; i < clients + 2; ++i) {
      auto a = l->accept(weft::deadline_after(20s));
      ASSERT_TRUE(a) << a.error().message();
      EXPECT_TRUE(a->write_all("!", 1));
    }
    for (auto& c : cs) EXPECT_EQ(c.join(), std::error_code{});
  });
}

TEST_P(Unix, Pair) {
  auto p = weft::unix_stream::pair();
  ASSERT_TRUE(p) << p.error().message();
  sched().block_on([&] {
    auto reader = weft::spawn([&] {
      char buf[8];
      auto n = p->second.read(buf, sizeof buf, weft::deadline_after(5s));
      return n ? std::string(buf, *n) : n.error().message();
    });
    weft::this_fiber::sleep_for(10ms);
    ASSERT_TRUE(p->first.write_all("pair", 4));
    EXPECT_EQ(reader.join(), "pair");
  });
}

}  // namespace
