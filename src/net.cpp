// src/net.cpp - endpoint, stream_socket, tcp_stream, tcp_listener, udp_socket,
// unix_stream, unix_listener: socket setup around weft::io calls.
#include <weft/blocking.hpp>
#include <weft/fiber.hpp>
#include <weft/net.hpp>
#include <weft/sync/event.hpp>

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <memory>
#include <new>
#include <system_error>
#include <vector>

namespace weft {

namespace {
std::error_code last_error() noexcept { return {errno, std::generic_category()}; }
std::error_code errc(std::errc e) noexcept { return std::make_error_code(e); }

result<void> setopt(int fd, int level, int name, int value) {
  if (::setsockopt(fd, level, name, &value, sizeof value) != 0) return last_error();
  return {};
}

result<int> getopt(int fd, int level, int name) {
  int value = 0;
  socklen_t len = sizeof value;
  if (::getsockopt(fd, level, name, &value, &len) != 0) return last_error();
  return value;
}

result<bool> getflag(int fd, int level, int name) {
  result<int> v = getopt(fd, level, name);
  if (!v) return v.error();
  return *v != 0;
}

// SO_SNDBUF / SO_RCVBUF: a size <= 0 is refused here (the kernel would silently round
// it up to its minimum).
result<void> set_buffer(int fd, int name, int bytes) {
  if (bytes <= 0) return std::make_error_code(std::errc::invalid_argument);
  return setopt(fd, SOL_SOCKET, name, bytes);
}

using name_fn = int (*)(int, sockaddr*, socklen_t*);
result<endpoint> sock_name(int fd, name_fn fn) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (fn(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return last_error();
  return endpoint(reinterpret_cast<sockaddr*>(&ss), len);
}
}  // namespace

// ---------------------------------------------------------------- endpoint

result<endpoint> endpoint::parse(const std::string& address, std::uint16_t port) {
  sockaddr_in v4{};
  if (::inet_pton(AF_INET, address.c_str(), &v4.sin_addr) == 1) {
    v4.sin_family = AF_INET;
    v4.sin_port = htons(port);
    return endpoint(reinterpret_cast<sockaddr*>(&v4), sizeof v4);
  }
  sockaddr_in6 v6{};
  std::string a = address;
  if (a.size() > 2 && a.front() == '[' && a.back() == ']') a = a.substr(1, a.size() - 2);
  if (::inet_pton(AF_INET6, a.c_str(), &v6.sin6_addr) == 1) {
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons(port);
    return endpoint(reinterpret_cast<sockaddr*>(&v6), sizeof v6);
  }
  return std::make_error_code(std::errc::invalid_argument);
}

endpoint::endpoint(const sockaddr* sa, socklen_t len) noexcept {
  len_ = std::min<socklen_t>(len, sizeof addr_);
  std::memcpy(&addr_, sa, len_);
}

std::uint16_t endpoint::port() const noexcept {
  if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&addr_)->sin_port);
  if (family() == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&addr_)->sin6_port);
  return 0;
}

std::string endpoint::to_string() const {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (family() == AF_INET) {
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&addr_)->sin_addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(port());
  }
  if (family() == AF_INET6)
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&addr_)->sin6_addr, buf, sizeof buf);
  // Appended, not "[" + std::string(buf): GCC 12 at -O3 warns (-Wrestrict, a false
  // positive in its inlined operator+) on the prepend.
  std::string s = "[";
  s += buf;
  s += "]:";
  s += std::to_string(port());
  return s;
}

// ---------------------------------------------------------------- stream_socket

stream_socket& stream_socket::operator=(stream_socket&& o) noexcept {
  if (this != &o) {
    (void)close();
    fd_.store(o.release(), std::memory_order_relaxed);  // relaxed: see fd()
  }
  return *this;
}

stream_socket::~stream_socket() { (void)close(); }

result<void> stream_socket::shutdown_write() {
  if (::shutdown(fd(), SHUT_WR) != 0) return last_error();
  return {};
}

result<void> stream_socket::set_send_buffer(int bytes) { return set_buffer(fd(), SO_SNDBUF, bytes); }
result<void> stream_socket::set_recv_buffer(int bytes) { return set_buffer(fd(), SO_RCVBUF, bytes); }
result<int> stream_socket::send_buffer() const { return getopt(fd(), SOL_SOCKET, SO_SNDBUF); }
result<int> stream_socket::recv_buffer() const { return getopt(fd(), SOL_SOCKET, SO_RCVBUF); }

result<void> stream_socket::close() {
  const int fd = release();  // one exchange: of two concurrent closes, one closes
  if (fd < 0) return std::make_error_code(std::errc::bad_file_descriptor);
  return io::close(fd);
}

// ---------------------------------------------------------------- tcp_stream

result<tcp_stream> tcp_stream::connect(const endpoint& peer, clock::time_point deadline) {
  if (peer.family() != AF_INET && peer.family() != AF_INET6)  // e.g. a default endpoint
    return std::make_error_code(std::errc::address_family_not_supported);
  int fd = ::socket(peer.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return last_error();
  tcp_stream s(fd);
  if (result<void> r = io::connect(fd, peer.data(), peer.size(), deadline); !r) return r.error();
  return s;
}

result<void> tcp_stream::set_nodelay(bool on) { return setopt(fd(), IPPROTO_TCP, TCP_NODELAY, on); }
result<bool> tcp_stream::nodelay() const { return getflag(fd(), IPPROTO_TCP, TCP_NODELAY); }
result<void> tcp_stream::set_keepalive(bool on) { return setopt(fd(), SOL_SOCKET, SO_KEEPALIVE, on); }
result<bool> tcp_stream::keepalive() const { return getflag(fd(), SOL_SOCKET, SO_KEEPALIVE); }

result<endpoint> tcp_stream::peer_endpoint() const { return sock_name(fd(), ::getpeername); }
result<endpoint> tcp_stream::local_endpoint() const { return sock_name(fd(), ::getsockname); }

// ---------------------------------------------------------------- resolve

namespace {
class resolve_category_impl final : public std::error_category {
public:
  const char* name() const noexcept override { return "weft.resolve"; }
  std::string message(int ev) const override { return ::gai_strerror(ev); }
};

struct lookup {
  std::error_code ec;
  std::vector<endpoint> eps;
};

// getaddrinfo itself (a pool thread, or a plain thread inline).
lookup getaddrinfo_now(const std::string& host, std::uint16_t port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string service = std::to_string(port);
  lookup out;
  const int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &res);
  if (rc == EAI_SYSTEM) {
    out.ec = last_error();
  } else if (rc != 0) {
    out.ec = {rc, resolve_category()};
  } else {
    for (addrinfo* ai = res; ai; ai = ai->ai_next)
      if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6)
        out.eps.emplace_back(ai->ai_addr, ai->ai_addrlen);
    ::freeaddrinfo(res);
    if (out.eps.empty()) out.ec = {EAI_NONAME, resolve_category()};
  }
  return out;
}

// On the calling fiber's blocking pool; a pool that cannot start a thread is an error.
lookup getaddrinfo_on_pool(const std::string& host, std::uint16_t port) {
  try {
    return run_blocking([&] { return getaddrinfo_now(host, port); });
  } catch (const std::system_error& e) {
    return lookup{e.code(), {}};
  } catch (const std::bad_alloc&) {
    return lookup{errc(std::errc::not_enough_memory), {}};
  }
}
}  // namespace

const std::error_category& resolve_category() noexcept {
  static const resolve_category_impl cat;
  return cat;
}

result<std::vector<endpoint>> resolve(const std::string& host, std::uint16_t port,
                                      clock::time_point deadline) {
  // 253: the longest DNS name (RFC 1035's 255 octets on the wire).
  if (host.empty() || host.size() > 253 || host.find('\0') != std::string::npos)
    return errc(std::errc::invalid_argument);
  if (result<endpoint> ep = endpoint::parse(host, port)) return std::vector<endpoint>{*ep};
  lookup out;
  if (!this_fiber::in_fiber() || deadline == clock::time_point::max()) {
    out = this_fiber::in_fiber() ? getaddrinfo_on_pool(host, port) : getaddrinfo_now(host, port);
  } else {
    // getaddrinfo cannot be interrupted: a helper fiber waits for the pool and hands the
    // result over through shared state, so the caller can leave at its deadline and the
    // lookup finishes on its own. done.set() happens-before wait_until's true return
    // (event.hpp), which orders the write of r->out before the read below.
    struct shared {
      event done;
      lookup out;
    };
    auto r = std::make_shared<shared>();
    try {
      spawn([r, host, port] {
        r->out = getaddrinfo_on_pool(host, port);
        r->done.set();
      }).detach();
    } catch (const std::system_error& e) {
      return e.code();
    } catch (const std::bad_alloc&) {
      return errc(std::errc::not_enough_memory);
    }
    if (!r->done.wait_until(deadline)) return errc(std::errc::timed_out);
    out = std::move(r->out);
  }
  if (out.ec) return out.ec;
  return std::move(out.eps);
}

result<tcp_stream> tcp_stream::connect(const std::string& host, std::uint16_t port,
                                       clock::time_point deadline) {
  result<std::vector<endpoint>> eps = resolve(host, port, deadline);
  if (!eps) return eps.error();
  std::error_code last;
  for (const endpoint& ep : *eps) {  // non-empty: resolve reports EAI_NONAME otherwise
    result<tcp_stream> s = connect(ep, deadline);
    if (s || s.error() == std::errc::timed_out) return s;
    last = s.error();
  }
  return last;
}

// ---------------------------------------------------------------- tcp_listener

tcp_listener& tcp_listener::operator=(tcp_listener&& o) noexcept {
  if (this != &o) {
    (void)close();
    fd_.store(o.fd_.exchange(-1, std::memory_order_relaxed), std::memory_order_relaxed);
    nodelay_ = o.nodelay_;
  }
  return *this;
}

tcp_listener::~tcp_listener() { (void)close(); }

result<tcp_listener> tcp_listener::bind(const endpoint& local, const listen_options& opts) {
  if (local.family() != AF_INET && local.family() != AF_INET6)
    return std::make_error_code(std::errc::address_family_not_supported);
  tcp_listener l;
  const int fd = ::socket(local.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return last_error();
  l.fd_.store(fd, std::memory_order_relaxed);
  l.nodelay_ = opts.nodelay;
  if (opts.reuse_addr)
    if (auto r = setopt(fd, SOL_SOCKET, SO_REUSEADDR, 1); !r) return r.error();
  if (opts.reuse_port)
    if (auto r = setopt(fd, SOL_SOCKET, SO_REUSEPORT, 1); !r) return r.error();
  if (::bind(fd, local.data(), local.size()) != 0) return last_error();
  if (::listen(fd, opts.backlog) != 0) return last_error();
  return l;
}

result<tcp_stream> tcp_listener::accept(clock::time_point deadline, endpoint* peer) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  // A close() between this read and io::accept's reference makes the call fail with
  // bad_file_descriptor (the fd is closing, or closed), unless the number was closed and
  // already reused by a new fd in that window: the caveat of every fd-number API.
  result<int> c = io::accept(fd(), reinterpret_cast<sockaddr*>(&ss), &len, deadline);
  if (!c) return c.error();
  tcp_stream s(*c);
  if (peer) *peer = endpoint(reinterpret_cast<sockaddr*>(&ss), len);
  if (nodelay_) (void)s.set_nodelay(true);  // best effort: a failure leaves Nagle on
  return s;
}

result<endpoint> tcp_listener::local_endpoint() const { return sock_name(fd(), ::getsockname); }

result<void> tcp_listener::close() {
  const int fd = fd_.exchange(-1, std::memory_order_relaxed);  // one closer wins
  if (fd < 0) return std::make_error_code(std::errc::bad_file_descriptor);
  return io::close(fd);
}


// ---------------------------------------------------------------- udp_socket

namespace {
datagram datagram_of(std::size_t size, std::size_t cap, int msg_flags) noexcept {
  // recvmsg returns the stored length; MSG_TRUNC in msg_flags says the datagram was longer.
  return datagram{std::min(size, cap), (msg_flags & MSG_TRUNC) != 0};
}

// Linux caps one sendmmsg / recvmmsg at UIO_MAXIOV messages.
constexpr std::size_t max_batch = 1024;
}  // namespace

udp_socket& udp_socket::operator=(udp_socket&& o) noexcept {
  if (this != &o) {
    (void)close();
    fd_.store(o.fd_.exchange(-1, std::memory_order_relaxed), std::memory_order_relaxed);
    family_ = o.family_;
  }
  return *this;
}

udp_socket::~udp_socket() { (void)close(); }

result<udp_socket> udp_socket::open(int family) {
  if (family != AF_INET && family != AF_INET6) return errc(std::errc::address_family_not_supported);
  const int fd = ::socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return last_error();
  udp_socket u;
  u.fd_.store(fd, std::memory_order_relaxed);
  u.family_ = family;
  return u;
}

result<udp_socket> udp_socket::bind(const endpoint& local, const udp_options& opts) {
  result<udp_socket> u = open(local.family());
  if (!u) return u;
  const int fd = u->fd();
  if (opts.reuse_addr)
    if (auto r = setopt(fd, SOL_SOCKET, SO_REUSEADDR, 1); !r) return r.error();
  if (opts.reuse_port)
    if (auto r = setopt(fd, SOL_SOCKET, SO_REUSEPORT, 1); !r) return r.error();
  if (::bind(fd, local.data(), local.size()) != 0) return last_error();
  return u;
}

result<void> udp_socket::check_peer(const endpoint& e) const {
  // Checked here, not left to the kernel: an IPv6 socket would accept an IPv4 sockaddr
  // (the dual-stack path) and an IPv4 one reports EAFNOSUPPORT or EINVAL by length.
  if (fd() < 0) return errc(std::errc::bad_file_descriptor);
  if (e.family() != family_) return errc(std::errc::address_family_not_supported);
  return {};
}

result<void> udp_socket::connect(const endpoint& peer) {
  if (auto r = check_peer(peer); !r) return r;
  // A datagram connect only records the peer: it completes at once (never EINPROGRESS).
  return io::connect(fd(), peer.data(), peer.size());
}

result<std::size_t> udp_socket::send(const void* buf, std::size_t n, clock::time_point deadline) {
  return io::send(fd(), buf, n, 0, deadline);
}

result<datagram> udp_socket::recv(void* buf, std::size_t n, clock::time_point deadline) {
  return recv_from(buf, n, nullptr, deadline);
}

result<std::size_t> udp_socket::send_to(const void* buf, std::size_t n, const endpoint& to,
                                        clock::time_point deadline) {
  if (auto r = check_peer(to); !r) return r.error();
  iovec iov{const_cast<void*>(buf), n};
  msghdr m{};
  m.msg_name = const_cast<sockaddr*>(to.data());
  m.msg_namelen = to.size();
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  return io::sendmsg(fd(), &m, 0, deadline);
}

result<datagram> udp_socket::recv_from(void* buf, std::size_t n, endpoint* from,
                                       clock::time_point deadline) {
  sockaddr_storage ss{};
  iovec iov{buf, n};
  msghdr m{};
  m.msg_name = &ss;
  m.msg_namelen = sizeof ss;
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  result<std::size_t> r = io::recvmsg(fd(), &m, 0, deadline);
  if (!r) return r.error();
  if (from) *from = endpoint(reinterpret_cast<sockaddr*>(&ss), m.msg_namelen);
  return datagram_of(*r, n, m.msg_flags);
}

result<std::size_t> udp_socket::send_batch(udp_message* msgs, std::size_t n,
                                           clock::time_point deadline) {
  if (n == 0 || n > max_batch) return errc(std::errc::invalid_argument);
  std::vector<iovec> iov(n);
  std::vector<mmsghdr> mm(n);
  for (std::size_t i = 0; i < n; ++i) {
    const endpoint& to = msgs[i].peer;
    if (to.family() != 0)  // default endpoint: the connected peer
      if (auto r = check_peer(to); !r) return r.error();
    iov[i] = {msgs[i].data, msgs[i].size};
    mm[i].msg_hdr.msg_name = to.family() ? const_cast<sockaddr*>(to.data()) : nullptr;
    mm[i].msg_hdr.msg_namelen = to.family() ? to.size() : 0;
    mm[i].msg_hdr.msg_iov = &iov[i];
    mm[i].msg_hdr.msg_iovlen = 1;
  }
  return io::sendmmsg(fd(), mm.data(), static_cast<unsigned>(n), 0, deadline);
}

result<std::size_t> udp_socket::recv_batch(udp_message* msgs, std::size_t n,
                                           clock::time_point deadline) {
  if (n == 0 || n > max_batch) return errc(std::errc::invalid_argument);
  std::vector<iovec> iov(n);
  std::vector<mmsghdr> mm(n);
  std::vector<sockaddr_storage> from(n);
  for (std::size_t i = 0; i < n; ++i) {
    iov[i] = {msgs[i].data, msgs[i].size};
    mm[i].msg_hdr.msg_name = &from[i];
    mm[i].msg_hdr.msg_namelen = sizeof from[i];
    mm[i].msg_hdr.msg_iov = &iov[i];
    mm[i].msg_hdr.msg_iovlen = 1;
  }
  result<std::size_t> got = io::recvmmsg(fd(), mm.data(), static_cast<unsigned>(n), 0, deadline);
  if (!got) return got;
  for (std::size_t i = 0; i < *got; ++i) {
    msgs[i].peer = endpoint(reinterpret_cast<sockaddr*>(&from[i]), mm[i].msg_hdr.msg_namelen);
    msgs[i].result = datagram_of(mm[i].msg_len, msgs[i].size, mm[i].msg_hdr.msg_flags);
  }
  return got;
}

result<void> udp_socket::set_send_buffer(int bytes) { return set_buffer(fd(), SO_SNDBUF, bytes); }
result<void> udp_socket::set_recv_buffer(int bytes) { return set_buffer(fd(), SO_RCVBUF, bytes); }
result<int> udp_socket::send_buffer() const { return getopt(fd(), SOL_SOCKET, SO_SNDBUF); }
result<int> udp_socket::recv_buffer() const { return getopt(fd(), SOL_SOCKET, SO_RCVBUF); }
result<endpoint> udp_socket::local_endpoint() const { return sock_name(fd(), ::getsockname); }
result<endpoint> udp_socket::peer_endpoint() const { return sock_name(fd(), ::getpeername); }

result<void> udp_socket::close() {
  const int fd = fd_.exchange(-1, std::memory_order_relaxed);  // one closer wins
  if (fd < 0) return errc(std::errc::bad_file_descriptor);
  return io::close(fd);
}


// ---------------------------------------------------------------- Unix domain

namespace {
// path -> sockaddr_un; a leading NUL selects the abstract namespace (length-delimited, no
// terminating NUL); a filesystem path is NUL-terminated.
result<socklen_t> unix_address(const std::string& path, sockaddr_un& sa) {
  sa = sockaddr_un{};
  sa.sun_family = AF_UNIX;
  const bool abstract = !path.empty() && path[0] == '\0';
  if (path.empty() || (abstract && path.size() == 1)) return errc(std::errc::invalid_argument);
  if (path.find('\0', abstract ? 1 : 0) != std::string::npos)
    return errc(std::errc::invalid_argument);
  if (path.size() > sizeof sa.sun_path - 1) return errc(std::errc::filename_too_long);
  std::memcpy(sa.sun_path, path.data(), path.size());
  const std::size_t len = offsetof(sockaddr_un, sun_path) + path.size() + (abstract ? 0 : 1);
  return static_cast<socklen_t>(len);
}

int unix_socket() noexcept { return ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0); }
}  // namespace

result<unix_stream> unix_stream::connect(const std::string& path, clock::time_point deadline) {
  sockaddr_un sa;
  result<socklen_t> len = unix_address(path, sa);
  if (!len) return len.error();
  auto backoff = std::chrono::milliseconds(1);
  for (;;) {
    const int fd = unix_socket();
    if (fd < 0) return last_error();
    unix_stream s(fd);
    result<void> r = io::connect(fd, reinterpret_cast<sockaddr*>(&sa), *len, deadline);
    if (r) return s;
    // EAGAIN: the listener's backlog is full. Nothing will signal room (the kernel wakes
    // only blocked connects), so sleep and retry with a fresh socket (see net.hpp).
    if (r.error() != std::errc::resource_unavailable_try_again) return r.error();
    const clock::time_point now = clock::now();
    if (now >= deadline) return errc(std::errc::timed_out);
    this_fiber::sleep_until(deadline - now > backoff ? now + backoff : deadline);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(20));
  }
}

result<std::pair<unix_stream, unix_stream>> unix_stream::pair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0)
    return last_error();
  return std::make_pair(unix_stream(fds[0]), unix_stream(fds[1]));
}

unix_listener::unix_listener(unix_listener&& o) noexcept
    : fd_(o.fd_.exchange(-1, std::memory_order_relaxed)),
      path_(std::move(o.path_)),
      dev_(std::exchange(o.dev_, 0)),
      ino_(std::exchange(o.ino_, 0)) {}

unix_listener& unix_listener::operator=(unix_listener&& o) noexcept {
  if (this != &o) {
    (void)close();
    fd_.store(o.fd_.exchange(-1, std::memory_order_relaxed), std::memory_order_relaxed);
    path_ = std::move(o.path_);
    dev_ = std::exchange(o.dev_, 0);
    ino_ = std::exchange(o.ino_, 0);
  }
  return *this;
}

unix_listener::~unix_listener() { (void)close(); }

result<unix_listener> unix_listener::bind(const std::string& path, const unix_listen_options& opts) {
  sockaddr_un sa;
  result<socklen_t> len = unix_address(path, sa);
  if (!len) return len.error();
  const bool abstract = path[0] == '\0';
  unix_listener l;
  const int fd = unix_socket();
  if (fd < 0) return last_error();
  l.fd_.store(fd, std::memory_order_relaxed);
  if (opts.unlink_existing && !abstract) {
    struct stat st;
    if (::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) (void)::unlink(path.c_str());
  }
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), *len) != 0) return last_error();
  l.path_ = path;
  struct stat st;
  if (!abstract && ::lstat(path.c_str(), &st) == 0) {  // from here on close() unlinks it
    l.dev_ = st.st_dev;
    l.ino_ = st.st_ino;
  }
  if (::listen(fd, opts.backlog) != 0) return last_error();
  return l;
}

result<unix_stream> unix_listener::accept(clock::time_point deadline) {
  result<int> c = io::accept(fd(), nullptr, nullptr, deadline);  // fd(): as tcp_listener's
  if (!c) return c.error();
  return unix_stream(*c);
}

result<void> unix_listener::close() {
  const int fd = fd_.exchange(-1, std::memory_order_relaxed);  // one closer wins
  if (fd < 0) return errc(std::errc::bad_file_descriptor);
  // Only the file this listener created: another server may have replaced it (after
  // unlink_existing) and must keep its own.
  if (ino_ != 0) {
    struct stat st;
    if (::lstat(path_.c_str(), &st) == 0 && static_cast<std::uint64_t>(st.st_dev) == dev_ &&
        static_cast<std::uint64_t>(st.st_ino) == ino_)
      (void)::unlink(path_.c_str());
    dev_ = ino_ = 0;
  }
  return io::close(fd);
}

}  // namespace weft
