// weft/io.hpp - fd-level I/O that suspends the calling fiber instead of blocking its worker.
//
//   auto n = weft::io::read(fd, buf, sizeof buf, weft::deadline_after(5s));
//   if (!n) log(n.error().message());   // timed_out, connection_reset, ...
//   else if (*n == 0) ...                // end of file
//
// Every call tries the syscall first; only on EAGAIN does a fiber suspend until the fd's
// reactor reports readiness, the deadline passes, the fd is closed or the scheduler shuts
// down. From a plain thread the same calls block that thread in poll(2). Outcomes:
//   - value: bytes transferred (0 = end of file for reads), a new fd, or nothing;
//   - std::errc::timed_out when the deadline passed first (nothing was transferred by the
//     failing attempt; a write_all may have transferred a prefix);
//   - std::errc::bad_file_descriptor for fd < 0, an fd closed with io::close (also when the
//     close happens while the call waits: the waiter wakes at once), a double close;
//   - std::errc::operation_canceled when the scheduler began shutting down, or when the
//     calling fiber was asked to stop (join_handle::request_stop) and the call would wait:
//     the wait ends at the request, nothing is taken from the fd (fibers only);
//   - any other errno of the syscall or of epoll_ctl (connection_reset, broken_pipe,
//     operation_not_permitted for a regular file ...). EAGAIN and EINTR never surface.
// Writes never raise SIGPIPE: sockets use MSG_NOSIGNAL; pipes block SIGPIPE around write.
//
// Any number of fibers may wait on one fd in the same direction (an acceptor pool: several
// fibers in accept() on one listener; several readers of one pipe). Readiness wakes all
// of them; each retries its syscall and those that find nothing left wait again, so which
// one gets the data is unspecified, but nothing is delivered twice or left unreported.
// Each waiter's deadline is its own; io::close and shutdown wake them all.
//
// Rules: the first call makes the fd non-blocking (O_NONBLOCK) and, from a fiber,
// registers it with that scheduler's reactor. An fd used with these calls must be closed
// with io::close (or by the socket classes of net.hpp), never with close(2) directly: the
// descriptor table would otherwise keep stale state for the next fd with that number.
// Deadlines are steady_clock time points (weft/timer.hpp); time_point::max() = none, a
// past deadline still tries the syscall once before reporting timed_out.
#pragma once

#include <weft/export.hpp>
#include <weft/result.hpp>
#include <weft/timer.hpp>

#include <cstddef>
#include <sys/socket.h>
#include <sys/uio.h>

namespace weft::io {

// "No deadline".
inline constexpr clock::time_point forever = clock::time_point::max();

// Waits until fd is readable / writable (or hung up / in error). Any thread.
WEFT_API result<void> wait_readable(int fd, clock::time_point deadline = forever);
WEFT_API result<void> wait_writable(int fd, clock::time_point deadline = forever);

// read(2)/readv(2): at least one byte, or 0 at end of file. Any thread.
WEFT_API result<std::size_t> read(int fd, void* buf, std::size_t n,
                                  clock::time_point deadline = forever);
WEFT_API result<std::size_t> readv(int fd, const iovec* iov, int iovcnt,
                                   clock::time_point deadline = forever);
// write(2)/writev(2): at least one byte (a partial write is a success). Any thread.
WEFT_API result<std::size_t> write(int fd, const void* buf, std::size_t n,
                                   clock::time_point deadline = forever);
WEFT_API result<std::size_t> writev(int fd, const iovec* iov, int iovcnt,
                                    clock::time_point deadline = forever);
// Writes all n bytes (returns n) or fails; on failure a prefix may have been written.
WEFT_API result<std::size_t> write_all(int fd, const void* buf, std::size_t n,
                                       clock::time_point deadline = forever);
// recv(2)/send(2) on sockets; send always adds MSG_NOSIGNAL. Any thread.
WEFT_API result<std::size_t> recv(int fd, void* buf, std::size_t n, int flags = 0,
                                  clock::time_point deadline = forever);
WEFT_API result<std::size_t> send(int fd, const void* buf, std::size_t n, int flags = 0,
                                  clock::time_point deadline = forever);
// recvmsg(2)/sendmsg(2): one message (for datagram sockets one datagram; a receive's
// msg_flags reports MSG_TRUNC). sendmsg always adds MSG_NOSIGNAL. Any thread.
WEFT_API result<std::size_t> recvmsg(int fd, msghdr* msg, int flags = 0,
                                     clock::time_point deadline = forever);
WEFT_API result<std::size_t> sendmsg(int fd, const msghdr* msg, int flags = 0,
                                     clock::time_point deadline = forever);
// recvmmsg(2)/sendmmsg(2): up to n messages in one syscall; returns how many (>= 1),
// waiting only while none can be transferred. recvmmsg adds MSG_WAITFORONE (returns what
// is queued, never waits for more); sendmmsg adds MSG_NOSIGNAL and reports an error only
// when the first message fails (a later message's error is lost, sendmmsg(2): retry from
// the returned count to learn it). Any thread.
WEFT_API result<std::size_t> recvmmsg(int fd, mmsghdr* msgs, unsigned n, int flags = 0,
                                      clock::time_point deadline = forever);
WEFT_API result<std::size_t> sendmmsg(int fd, mmsghdr* msgs, unsigned n, int flags = 0,
                                      clock::time_point deadline = forever);
// accept4(2): the new fd is non-blocking and close-on-exec. addr/len may be null.
// ECONNABORTED (peer gone before accept) is retried, not reported. Any thread.
WEFT_API result<int> accept(int fd, sockaddr* addr = nullptr, socklen_t* len = nullptr,
                            clock::time_point deadline = forever);
// connect(2) on a socket, waiting for completion (SO_ERROR) up to the deadline. On
// timed_out the socket is left half-connected: close it. Any thread.
WEFT_API result<void> connect(int fd, const sockaddr* addr, socklen_t len,
                              clock::time_point deadline = forever);
// Closes fd: waiters on it wake with bad_file_descriptor; close(2) itself runs once no
// call uses the fd any more (so its number is not reused under a running call). A second
// close of the same fd before that returns bad_file_descriptor. Any thread, never blocks.
WEFT_API result<void> close(int fd);
// Sets O_NONBLOCK (done implicitly by every call above). Any thread.
WEFT_API result<void> set_nonblocking(int fd);

}  // namespace weft::io
