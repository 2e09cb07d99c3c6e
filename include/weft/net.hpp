// weft/net.hpp - a thin RAII socket layer over weft/io.hpp: endpoint, tcp_listener,
// tcp_stream, udp_socket, unix_listener, unix_stream.
//
//   auto l = weft::tcp_listener::bind(*weft::endpoint::parse("127.0.0.1", 8080));
//   while (auto s = l->accept())                  // suspends the fiber, not the worker
//     weft::spawn([s = std::move(*s)]() mutable { char b[512];
//       while (auto n = s.read(b, sizeof b)) { if (!*n || !s.write_all(b, *n)) break; } })
//       .detach();
//
//   auto u = weft::udp_socket::bind(*weft::endpoint::parse("::1", 5353));
//   weft::endpoint from; char d[1500];
//   while (auto got = u->recv_from(d, sizeof d, &from)) (void)u->send_to(d, got->size, from);
//
// IPv4 and IPv6; host names through resolve() / tcp_stream::connect(host, port).
// Every call follows io.hpp: result<T>, steady_clock deadlines, from fibers and plain
// threads alike. Destructors close the fd through io::close (waiters wake with
// bad_file_descriptor). Objects are move-only. Several fibers may wait in the same call
// on one object (io.hpp): an acceptor pool of fibers in accept() on one listener is the
// usual way to spread accepts; several readers of one stream each get some of the bytes,
// in no particular order.
#pragma once

#include <weft/export.hpp>
#include <weft/io.hpp>
#include <weft/result.hpp>
#include <weft/timer.hpp>

#include <atomic>
#include <cstdint>
#include <string>
#include <sys/socket.h>
#include <utility>
#include <vector>

namespace weft {

// An IPv4 or IPv6 socket address.
class WEFT_API endpoint {
public:
  endpoint() noexcept = default;
  // "127.0.0.1", "::1", "0.0.0.0", "::" ... plus a port; invalid_argument otherwise.
  static result<endpoint> parse(const std::string& address, std::uint16_t port);
  // From a sockaddr of len bytes (AF_INET or AF_INET6).
  endpoint(const sockaddr* sa, socklen_t len) noexcept;

  const sockaddr* data() const noexcept { return reinterpret_cast<const sockaddr*>(&addr_); }
  socklen_t size() const noexcept { return len_; }
  int family() const noexcept { return addr_.ss_family; }
  std::uint16_t port() const noexcept;
  std::string to_string() const;  // "127.0.0.1:80", "[::1]:80"

private:
  sockaddr_storage addr_{};
  socklen_t len_ = 0;
};

// A connected stream socket (TCP or Unix domain; non-blocking, close-on-exec): the calls
// tcp_stream and unix_stream share. Not constructed directly.
class WEFT_API stream_socket {
public:
  result<std::size_t> read(void* buf, std::size_t n, clock::time_point deadline = io::forever) {
    return io::recv(fd(), buf, n, 0, deadline);  // recv: no VFS layer (vfs_read, fsnotify)
  }
  result<std::size_t> write(const void* buf, std::size_t n, clock::time_point deadline = io::forever) {
    return io::send(fd(), buf, n, 0, deadline);
  }
  result<std::size_t> write_all(const void* buf, std::size_t n,
                                clock::time_point deadline = io::forever) {
    return io::write_all(fd(), buf, n, deadline);
  }
  result<std::size_t> readv(const iovec* iov, int n, clock::time_point deadline = io::forever) {
    return io::readv(fd(), iov, n, deadline);
  }
  result<std::size_t> writev(const iovec* iov, int n, clock::time_point deadline = io::forever) {
    return io::writev(fd(), iov, n, deadline);
  }
  // shutdown(SHUT_WR): the peer reads end of file; reading here still works.
  result<void> shutdown_write();
  // SO_SNDBUF / SO_RCVBUF. bytes <= 0: invalid_argument. Linux doubles the value set (its
  // bookkeeping share) and caps it at net.core.wmem_max / rmem_max; the getters report
  // what the kernel uses, so send_buffer() after set_send_buffer(n) is not n.
  result<void> set_send_buffer(int bytes);
  result<void> set_recv_buffer(int bytes);
  result<int> send_buffer() const;
  result<int> recv_buffer() const;
  // Closes now (io::close); a closed stream's calls return bad_file_descriptor.
  result<void> close();
  bool is_open() const noexcept { return fd() >= 0; }
  // relaxed (here and below): the number is all fd_ carries; io::close orders itself
  // against the calls in flight on the fd (src/io_desc.hpp, close protocol).
  int fd() const noexcept { return fd_.load(std::memory_order_relaxed); }
  // Gives the fd up without closing it (the caller must close it with io::close).
  int release() noexcept { return fd_.exchange(-1, std::memory_order_relaxed); }

protected:
  stream_socket() noexcept = default;
  explicit stream_socket(int fd) noexcept : fd_(fd) {}  // adopts fd
  stream_socket(stream_socket&& o) noexcept : fd_(o.release()) {}
  stream_socket& operator=(stream_socket&& o) noexcept;
  ~stream_socket();

private:
  // -1 once closed or released. Atomic: close() may run while another fiber reads it.
  std::atomic<int> fd_{-1};
};

// A connected TCP socket.
class WEFT_API tcp_stream : public stream_socket {
public:
  tcp_stream() noexcept = default;
  explicit tcp_stream(int fd) noexcept : stream_socket(fd) {}  // adopts fd
  tcp_stream(tcp_stream&&) noexcept = default;
  tcp_stream& operator=(tcp_stream&&) noexcept = default;
  ~tcp_stream() = default;

  // Connects, waiting up to the deadline (timed_out, connection_refused ...).
  static result<tcp_stream> connect(const endpoint& peer, clock::time_point deadline = io::forever);
  // Connects to host (a numeric address, or a name resolved with getaddrinfo on the
  // blocking pool, weft/blocking.hpp, so no worker blocks in the resolver), trying each
  // address in the resolver's order until one connects. The deadline covers resolution
  // and connection: a lookup still running at the deadline is left to finish on the
  // pool (in a detached fiber, which the scheduler's destruction waits for) and the call
  // returns timed_out. Errors: invalid_argument for a host that is empty, longer than 253
  // bytes or contains a NUL; resolve_category() codes for resolver failures (unknown
  // name ...); otherwise the last address's connect error. From a plain thread
  // getaddrinfo runs inline (the deadline then applies only after it returned).
  static result<tcp_stream> connect(const std::string& host, std::uint16_t port,
                                    clock::time_point deadline = io::forever);

  // TCP_NODELAY (Nagle off) and SO_KEEPALIVE, set and read back.
  result<void> set_nodelay(bool on = true);
  result<bool> nodelay() const;
  result<void> set_keepalive(bool on = true);
  result<bool> keepalive() const;
  result<endpoint> peer_endpoint() const;
  result<endpoint> local_endpoint() const;
};

// Resolves host (numeric, or a name via getaddrinfo on the blocking pool, as
// tcp_stream::connect(host, ...)) to its stream addresses, in the resolver's order.
WEFT_API result<std::vector<endpoint>> resolve(const std::string& host, std::uint16_t port,
                                               clock::time_point deadline = io::forever);
// The category of getaddrinfo's EAI_* codes (message: gai_strerror); EAI_SYSTEM is
// reported as its errno in std::generic_category().
WEFT_API const std::error_category& resolve_category() noexcept;

struct listen_options {
  int backlog = 1024;       // listen(2) backlog (the kernel caps it at net.core.somaxconn)
  bool reuse_addr = true;   // SO_REUSEADDR: rebind while old connections sit in TIME_WAIT
  bool reuse_port = false;  // SO_REUSEPORT: several listeners share the port
  bool nodelay = true;      // TCP_NODELAY on accepted streams
};

// A listening TCP socket.
class WEFT_API tcp_listener {
public:
  tcp_listener() noexcept = default;
  tcp_listener(tcp_listener&& o) noexcept
      : fd_(o.fd_.exchange(-1, std::memory_order_relaxed)), nodelay_(o.nodelay_) {}
  tcp_listener& operator=(tcp_listener&& o) noexcept;
  ~tcp_listener();

  // socket + options + bind + listen. Port 0 picks a free port (see local_endpoint()).
  static result<tcp_listener> bind(const endpoint& local, const listen_options& opts = {});
  // Waits for a connection. peer, when given, receives the remote address. Any number of
  // fibers may wait here at once (an acceptor pool); each connection goes to one of them.
  result<tcp_stream> accept(clock::time_point deadline = io::forever, endpoint* peer = nullptr);
  result<endpoint> local_endpoint() const;
  // Closes now; may run while other fibers wait in accept(): they all wake with
  // bad_file_descriptor, as does every later accept().
  result<void> close();
  bool is_open() const noexcept { return fd() >= 0; }
  int fd() const noexcept { return fd_.load(std::memory_order_relaxed); }

private:
  // Atomic: close() runs while the pool's fibers call accept(), which reads it. relaxed:
  // only the value matters (the fd's own state is ordered by the I/O layer).
  std::atomic<int> fd_{-1};
  bool nodelay_ = true;
};

// ---------------------------------------------------------------- UDP

// What a datagram receive got.
struct datagram {
  std::size_t size = 0;    // bytes stored in the buffer (0 is a valid, empty datagram)
  bool truncated = false;  // the datagram was longer than the buffer: the rest is lost
};

// One datagram of a batch (udp_socket::send_batch / recv_batch), as iovec is for readv.
struct udp_message {
  void* data = nullptr;  // send: the payload; recv: the buffer
  std::size_t size = 0;  // its length (send) or capacity (recv)
  endpoint peer;         // send: destination (default endpoint: the connected peer);
                         // recv: set to the source
  datagram result;       // recv: what was received
};

struct udp_options {
  bool reuse_addr = false;  // SO_REUSEADDR
  bool reuse_port = false;  // SO_REUSEPORT: several sockets share the port
};

// A UDP socket (non-blocking, close-on-exec). Calls follow io.hpp (result<T>, deadlines,
// fibers and plain threads). Errors beyond the syscalls': a closed socket
// bad_file_descriptor; an endpoint of another family than the socket's (or a default
// one) address_family_not_supported; a datagram larger than UDP allows (65,507 bytes over
// IPv4, 65,527 over IPv6) message_size. A receive into a smaller buffer keeps its start
// and says so (datagram::truncated). On a connected socket an ICMP port unreachable for
// an earlier send surfaces as connection_refused at a later send or receive.
class WEFT_API udp_socket {
public:
  udp_socket() noexcept = default;
  udp_socket(udp_socket&& o) noexcept
      : fd_(o.fd_.exchange(-1, std::memory_order_relaxed)), family_(o.family_) {}
  udp_socket& operator=(udp_socket&& o) noexcept;
  ~udp_socket();

  // socket + options + bind. Port 0 picks a free port (see local_endpoint()).
  static result<udp_socket> bind(const endpoint& local, const udp_options& opts = {});
  // An unbound socket of family AF_INET or AF_INET6 (the first send binds it).
  static result<udp_socket> open(int family);

  // Sets the default peer: send()/recv() then talk to it only. Never waits.
  result<void> connect(const endpoint& peer);
  result<std::size_t> send(const void* buf, std::size_t n, clock::time_point deadline = io::forever);
  result<datagram> recv(void* buf, std::size_t n, clock::time_point deadline = io::forever);
  result<std::size_t> send_to(const void* buf, std::size_t n, const endpoint& to,
                              clock::time_point deadline = io::forever);
  // from, when given, receives the source address.
  result<datagram> recv_from(void* buf, std::size_t n, endpoint* from,
                             clock::time_point deadline = io::forever);
  // sendmmsg / recvmmsg: returns how many of the n messages went (>= 1), waiting only
  // while none can. A send error is reported only for the first message: retry from the
  // returned index to learn a later one's. n above 1024 (UIO_MAXIOV) is invalid_argument.
  result<std::size_t> send_batch(udp_message* msgs, std::size_t n,
                                 clock::time_point deadline = io::forever);
  result<std::size_t> recv_batch(udp_message* msgs, std::size_t n,
                                 clock::time_point deadline = io::forever);

  // SO_SNDBUF / SO_RCVBUF, as stream_socket's.
  result<void> set_send_buffer(int bytes);
  result<void> set_recv_buffer(int bytes);
  result<int> send_buffer() const;
  result<int> recv_buffer() const;
  result<endpoint> local_endpoint() const;
  result<endpoint> peer_endpoint() const;
  // Closes now; waiters wake with bad_file_descriptor, as does every later call.
  result<void> close();
  bool is_open() const noexcept { return fd() >= 0; }
  int family() const noexcept { return family_; }
  int fd() const noexcept { return fd_.load(std::memory_order_relaxed); }  // relaxed: as tcp_stream

private:
  result<void> check_peer(const endpoint& e) const;
  // Atomic: close() may run while another fiber receives. relaxed: as tcp_stream's.
  std::atomic<int> fd_{-1};
  int family_ = 0;
};

// ---------------------------------------------------------------- Unix domain

// A connected Unix-domain stream socket.
class WEFT_API unix_stream : public stream_socket {
public:
  unix_stream() noexcept = default;
  explicit unix_stream(int fd) noexcept : stream_socket(fd) {}  // adopts fd
  unix_stream(unix_stream&&) noexcept = default;
  unix_stream& operator=(unix_stream&&) noexcept = default;
  ~unix_stream() = default;

  // Connects to the listener at path (see unix_listener::bind for the path rules).
  // no_such_file_or_directory when nothing is there, connection_refused when the socket
  // file has no listener. A listener whose backlog is full makes a non-blocking connect
  // fail with EAGAIN and sends no readiness event to wait for: the call then sleeps
  // (1 ms, doubling up to 20 ms) and retries until it connects or the deadline passes
  // (timed_out), as a blocking connect would wait. Those sleeps do not notice the
  // scheduler's shutdown (operation_canceled ends only reactor waits): give a deadline.
  static result<unix_stream> connect(const std::string& path,
                                     clock::time_point deadline = io::forever);
  // A connected pair (socketpair(2)), both ends non-blocking and close-on-exec.
  static result<std::pair<unix_stream, unix_stream>> pair();
};

struct unix_listen_options {
  int backlog = 1024;  // listen(2) backlog (the kernel caps it at net.core.somaxconn)
  // A socket file already at path (a crashed server's) makes bind fail address_in_use,
  // unless this is set: bind then unlinks it first. Anything else than a socket at path
  // (a regular file, a directory) is never removed: still address_in_use.
  bool unlink_existing = false;
};

// A listening Unix-domain stream socket.
//
// Paths: up to 107 bytes (sockaddr_un's sun_path less the terminating NUL; longer is
// name_too_long), no NUL inside (invalid_argument). A path starting with '\0' names the
// Linux abstract namespace: no file is created, the name vanishes with the last socket.
// Unlink: bind creates the socket file; close() (and the destructor) unlink it again if
// the file at path is still the one this listener created (same device and inode), so a
// newer server's socket at the same path is never removed. The file is not unlinked when
// the process dies without closing: use unlink_existing on restart.
class WEFT_API unix_listener {
public:
  unix_listener() noexcept = default;
  unix_listener(unix_listener&& o) noexcept;
  unix_listener& operator=(unix_listener&& o) noexcept;
  ~unix_listener();

  static result<unix_listener> bind(const std::string& path,
                                    const unix_listen_options& opts = {});
  // Waits for a connection. Any number of fibers may wait here at once.
  result<unix_stream> accept(clock::time_point deadline = io::forever);
  const std::string& path() const noexcept { return path_; }
  // Closes now and unlinks the socket file (see above); waiters in accept() wake with
  // bad_file_descriptor, as does every later accept().
  result<void> close();
  bool is_open() const noexcept { return fd() >= 0; }
  int fd() const noexcept { return fd_.load(std::memory_order_relaxed); }  // relaxed: as tcp_listener

private:
  // Atomic: as tcp_listener's (close() while the pool's fibers accept).
  std::atomic<int> fd_{-1};
  std::string path_;
  // The socket file bind created (0/0: none, e.g. abstract): close() unlinks it only if
  // path still names this device and inode.
  std::uint64_t dev_ = 0, ino_ = 0;
};

}  // namespace weft
