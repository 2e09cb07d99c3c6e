// src/io.cpp - the public fd calls: try the syscall, on EAGAIN wait on the fd's io_desc
// (fiber: suspend, io_desc.hpp protocol; plain thread: poll(2)), retry.
#include "assert.hpp"
#include "fiber_impl.hpp"
#include "io_desc.hpp"
#include "reactor.hpp"
#include "suspend.hpp"
#include "worker.hpp"

#include <weft/io.hpp>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>

namespace weft {
namespace detail {

// ---------------------------------------------------------------- descriptor table

desc_table& descs() noexcept {
  static desc_table* table = new desc_table;  // never destroyed: see io_desc.hpp
  return *table;
}

io_desc* desc_table::find(int fd) const noexcept {
  if (fd < 0 || fd >= chunk_size * max_chunks) return nullptr;
  // acquire: pairs with the release CAS in get(); the chunk's fd_ fields are visible.
  io_desc* chunk = chunks_[fd >> chunk_bits].load(std::memory_order_acquire);
  return chunk ? &chunk[fd & (chunk_size - 1)] : nullptr;
}

io_desc* desc_table::get(int fd) {
  if (fd < 0 || fd >= chunk_size * max_chunks) return nullptr;
  if (io_desc* d = find(fd)) return d;
  const int c = fd >> chunk_bits;
  auto* fresh = new io_desc[chunk_size];
  for (int i = 0; i < chunk_size; ++i) fresh[i].fd_ = c * chunk_size + i;
  io_desc* expected = nullptr;
  // release: publishes the initialised chunk; pairs with the acquire in find().
  if (!chunks_[c].compare_exchange_strong(expected, fresh, std::memory_order_acq_rel))
    delete[] fresh;  // another thread installed it first
  int hi = high_.load(std::memory_order_relaxed);
  // release: for_each() (acquire) then sees the chunk pointer store above.
  while (hi < (c + 1) * chunk_size &&
         !high_.compare_exchange_weak(hi, (c + 1) * chunk_size, std::memory_order_release,
                                      std::memory_order_relaxed)) {
  }
  return find(fd);
}

namespace {

std::error_code errno_code(int e) noexcept { return {e, std::generic_category()}; }
std::error_code errc(std::errc e) noexcept { return std::make_error_code(e); }

// Close step c.
std::error_code finish_close(io_desc& d) noexcept {
  {
    std::lock_guard<std::mutex> g(d.lock_);
    if (reactor* r = d.owner_.load(std::memory_order_relaxed)) r->unregister_fd(d);
    d.owner_.store(nullptr, std::memory_order_release);
    std::uint32_t next = d.gen_.load(std::memory_order_relaxed) + 1;
    // release: pairs with the reactor's acquire load in dispatch_io().
    d.gen_.store(next ? next : 1, std::memory_order_release);
    // Every waiter held a reference, so none is registered any more: slots are NIL and
    // the queues empty (protocol step 6).
    WEFT_ASSERT(d.rd_.load(std::memory_order_relaxed) == io_desc::slot_nil &&
                    d.wr_.load(std::memory_order_relaxed) == io_desc::slot_nil &&
                    !d.queue_[0] && !d.queue_[1],
                "io_desc finished with a waiter registered");
    d.nonblock_.store(0, std::memory_order_relaxed);
    d.socket_.store(0, std::memory_order_relaxed);
    // release: the reset above happens before any operation on the next incarnation
    // (pairs with the acquire CAS in acquire_ref()).
    d.refs_.store(0, std::memory_order_release);
  }
  // Last: from here on the number may be reused, and the descriptor is ready for it.
  if (::close(d.fd_) != 0 && errno != EINTR) return errno_code(errno);  // Linux: no retry
  return {};
}

// An in-flight operation's reference (close step a).
class op_ref {
public:
  explicit op_ref(io_desc* d) noexcept : d_(d && d->acquire_ref() ? d : nullptr) {}
  ~op_ref() {
    if (d_ && d_->release_ref()) (void)finish_close(*d_);
  }
  op_ref(const op_ref&) = delete;
  op_ref& operator=(const op_ref&) = delete;
  explicit operator bool() const noexcept { return d_ != nullptr; }

private:
  io_desc* d_;
};

std::error_code ensure_nonblocking(io_desc& d) noexcept {
  // relaxed: a cache (io_desc.hpp field comment).
  if (d.nonblock_.load(std::memory_order_relaxed)) return {};
  int fl = ::fcntl(d.fd_, F_GETFL);
  if (fl < 0) return errno_code(errno);
  if (!(fl & O_NONBLOCK) && ::fcntl(d.fd_, F_SETFL, fl | O_NONBLOCK) != 0) return errno_code(errno);
  d.nonblock_.store(1, std::memory_order_relaxed);
  return {};
}

// ---------------------------------------------------------------- waiting

// A wait's timeout: fire ends the wait if its word still holds it (protocol step 5).
struct io_timer : timer_entry {
  std::atomic<std::uintptr_t>* word = nullptr;  // the slot, or the queued node's state
  fiber_impl* self = nullptr;
};

static_assert(alignof(fiber_impl) > io_desc::pending_bit, "io_desc tags fiber pointers");
static_assert(sizeof(io_desc) == 128, "io_desc: one hot line, one cold line (see its fields)");

void fire_io_timer(timer_entry* e) noexcept {
  auto* t = static_cast<io_timer*>(e);
  if (fiber_impl* f = io_desc::end_own(*t->word, t->self)) wake(f);
}

// A stop request's end of the wait (task.cpp C1-C5), on the requester's thread: exactly
// what the timer does, so one end_own CAS decides between the request, the timer, a
// readiness wake and close. Registered before the commit, as the timer is armed: a
// request before the commit makes the commit fail and the fiber wake itself.
struct io_cancel : cancel_hook {
  std::atomic<std::uintptr_t>* word = nullptr;
  fiber_impl* self = nullptr;
};

void cancel_io_wait(cancel_hook* h) noexcept {
  auto* c = static_cast<io_cancel*>(h);
  if (fiber_impl* f = io_desc::end_own(*c->word, c->self)) wake(f);
}

// Protocol step 3's commit, as the post-switch action. arg: the wait's word (the slot in
// the descriptor, or the node on the suspended fiber's stack: the CAS is the publication,
// nothing touches it afterwards).
void post_commit(fiber_impl* from, void* arg) noexcept {
  if (!io_desc::commit(*static_cast<std::atomic<std::uintptr_t>*>(arg), from))
    current_worker()->wake_local(from);
}

// Why a registered wait must not sleep (protocol step 3's order).
[[gnu::always_inline]] inline std::error_code stop_reason(io_desc& d, reactor& r,
                                                          clock::time_point deadline) noexcept {
  if (d.closing()) return errc(std::errc::bad_file_descriptor);
  if (r.io_cancelled()) return errc(std::errc::operation_canceled);
  if (deadline != clock::time_point::max() && clock::now() >= deadline)
    return errc(std::errc::timed_out);
  return {};
}

// Protocol steps 3-6 for a registered wait: word is the slot (Queued false, node null)
// or node->state. Empty code: retry the syscall. Inlined into both callers: the slot
// path (every wait of the one-waiter case) then pays no call and no node checks.
template <bool Queued>
[[gnu::always_inline]] inline std::error_code sleep_on(io_desc& d, io_dir dir,
                                                       std::atomic<std::uintptr_t>& word,
                                                       io_waiter* node, std::uint32_t seen,
                                                       clock::time_point deadline,
                                                       fiber_impl* self, reactor& r) {
  auto withdraw = [&] {  // step 6: removes exactly this wait, if still registered
    if constexpr (Queued) d.dequeue(dir, *node);
    else (void)io_desc::end_own(word, self);  // never a wake: it had not committed
  };
  // seq_cst: step 7 (after the registration RMW/store).
  if (d.edges(dir, std::memory_order_seq_cst) != seen) {
    withdraw();
    return {};
  }
  if (std::error_code ec = stop_reason(d, r, deadline)) {
    withdraw();
    return ec;
  }
  // Cancellable (README "Cancellation and deadlines"): a stop request ends the wait with
  // operation_canceled; a fiber already asked to stop does not wait (the registration
  // fails). The hook lives on this frame until cancel_deregister returns (C3).
  task* const owner = self->current;
  io_cancel hook;
  if (owner) {
    hook.cancel = cancel_io_wait;
    hook.word = &word;
    hook.self = self;
    if (!cancel_register(owner, &hook)) {
      withdraw();
      return errc(std::errc::operation_canceled);
    }
  }
  io_timer t;
  const bool timed = deadline != clock::time_point::max();
  if (timed) {
    t.deadline = deadline;
    t.fire = fire_io_timer;
    t.word = &word;
    t.self = self;
    arm_timer(&t);  // may fire before the commit: the commit then fails (step 3)
  }
  note_wait(self, wait_kind::io, reinterpret_cast<const void*>(static_cast<std::intptr_t>(d.fd_)),
            timed ? steady_ns_of(deadline) : 0);
  suspend_current(post_commit, &word);
  if (timed) (void)cancel_timer(&t);  // after this no worker touches t (timers.hpp step 5)
  if (owner) cancel_deregister(owner, &hook);  // after this no requester touches hook (C3)
  if constexpr (Queued) d.dequeue(dir, *node);  // still linked when its timer ended it
  if (d.closing()) return errc(std::errc::bad_file_descriptor);
  if (r.io_cancelled()) return errc(std::errc::operation_canceled);
  // Asked to stop (whether or not the request's end_own won): the call ends; what the fd
  // holds stays there for the next call.
  if (owner && task_stop_requested(owner)) return errc(std::errc::operation_canceled);
  // An edge since the sample means retry even past the deadline (the data may be there).
  if (timed && d.edges(dir) == seen && clock::now() >= deadline)
    return errc(std::errc::timed_out);
  return {};
}

// The slot was taken: wait as a queued node (protocol step 2's slow path). Not inlined,
// so the one-waiter path does not build a node.
[[gnu::noinline]] std::error_code wait_queued(io_desc& d, io_dir dir, std::uint32_t seen,
                                              clock::time_point deadline, fiber_impl* self,
                                              reactor& r) {
  io_waiter node(self);
  d.enqueue(dir, node);
  return sleep_on<true>(d, dir, node.state, &node, seen, deadline, self, r);
}

// Fiber context. seen: the edge count sampled before the syscall that got EAGAIN. Empty
// code: retry the syscall. Protocol steps 0-6.
std::error_code wait_fiber(io_desc& d, io_dir dir, std::uint32_t seen, clock::time_point deadline,
                           fiber_impl* self) {
  reactor& r = reactor_of(self);
  if (std::error_code ec = r.register_fd(d)) return ec;
  if (!d.claim_slot(dir, self)) return wait_queued(d, dir, seen, deadline, self, r);
  return sleep_on<false>(d, dir, d.slot(dir), nullptr, seen, deadline, self, r);
}

// Plain thread: poll(2) in slices of at most 50 ms, so a close from another thread is
// noticed within one slice (close(2) is deferred while we hold a reference).
std::error_code wait_thread(io_desc& d, io_dir dir, clock::time_point deadline) noexcept {
  constexpr int slice_ms = 50;
  pollfd p{d.fd_, static_cast<short>(dir == io_dir::read ? POLLIN | POLLRDHUP : POLLOUT), 0};
  for (;;) {
    if (d.closing()) return errc(std::errc::bad_file_descriptor);
    int ms = slice_ms;
    if (deadline != clock::time_point::max()) {
      auto left = deadline - clock::now();
      if (left <= clock::duration::zero()) return errc(std::errc::timed_out);
      ms = static_cast<int>(std::min<std::int64_t>(
          slice_ms, std::chrono::ceil<std::chrono::milliseconds>(left).count()));
    }
    int rc = ::poll(&p, 1, ms);
    if (rc > 0) return (p.revents & POLLNVAL) ? errc(std::errc::bad_file_descriptor) : std::error_code{};
    if (rc < 0 && errno != EINTR) return errno_code(errno);
  }
}

// seen: io_desc::edges(dir) sampled before the syscall that got EAGAIN.
std::error_code wait_ready(io_desc& d, io_dir dir, std::uint32_t seen, clock::time_point deadline) {
  if (fiber_impl* self = current_fiber()) return wait_fiber(d, dir, seen, deadline, self);
  return wait_thread(d, dir, deadline);
}

// The retry loop shared by every call: sys() returns the syscall's result (-1 + errno).
template <class Sys>
result<std::size_t> run_op(int fd, io_dir dir, clock::time_point deadline, Sys&& sys) {
  io_desc* d = descs().get(fd);
  op_ref ref(d);
  if (!ref) return errc(std::errc::bad_file_descriptor);
  if (std::error_code ec = ensure_nonblocking(*d)) return ec;
  for (;;) {
    const std::uint32_t seen = d->edges(dir);  // protocol step 2: before the syscall
    ssize_t n = sys(*d);
    if (n >= 0) return static_cast<std::size_t>(n);
    const int e = errno;
    if (e == EINTR) continue;
    if (e != EAGAIN && e != EWOULDBLOCK) return errno_code(e);
    if (std::error_code ec = wait_ready(*d, dir, seen, deadline)) return ec;
  }
}

// write(2)/writev(2) on a non-socket with SIGPIPE blocked for this thread; a SIGPIPE the
// call raised (EPIPE) is consumed before the mask is restored, so it never arrives.
template <class Sys>
ssize_t without_sigpipe(Sys&& sys) noexcept {
  sigset_t pipe_set, old, pending;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  sigpending(&pending);
  const bool was_pending = sigismember(&pending, SIGPIPE) == 1;
  ssize_t n = sys();
  const int e = errno;
  if (n < 0 && e == EPIPE && !was_pending) {
    timespec zero{};
    while (sigtimedwait(&pipe_set, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  errno = e;
  return n;
}

// Socket or not, learnt once per incarnation (relaxed: a cache).
bool is_socket(io_desc& d) noexcept {
  std::uint8_t k = d.socket_.load(std::memory_order_relaxed);
  if (k == 0) {
    int type;
    socklen_t len = sizeof type;
    k = ::getsockopt(d.fd_, SOL_SOCKET, SO_TYPE, &type, &len) == 0 ? 1 : 2;
    d.socket_.store(k, std::memory_order_relaxed);
  }
  return k == 1;
}

}  // namespace
}  // namespace detail

namespace io {

using detail::io_desc;
using detail::io_dir;

namespace {
result<void> to_void(const result<std::size_t>& r) {
  if (r) return {};
  return r.error();
}

// poll(2) with a zero timeout, as a syscall for run_op: 0 when ready, -1/EAGAIN when not.
ssize_t poll_now(const io_desc& d, short events) noexcept {
  pollfd p{d.fd_, events, 0};
  int rc = ::poll(&p, 1, 0);
  if (rc > 0) {
    if (p.revents & POLLNVAL) {
      errno = EBADF;
      return -1;
    }
    return 0;
  }
  if (rc == 0) errno = EAGAIN;
  return -1;
}
}  // namespace

result<void> wait_readable(int fd, clock::time_point deadline) {
  return to_void(detail::run_op(fd, io_dir::read, deadline,
                                [](io_desc& d) { return poll_now(d, POLLIN | POLLRDHUP); }));
}

result<void> wait_writable(int fd, clock::time_point deadline) {
  return to_void(
      detail::run_op(fd, io_dir::write, deadline, [](io_desc& d) { return poll_now(d, POLLOUT); }));
}

result<std::size_t> read(int fd, void* buf, std::size_t n, clock::time_point deadline) {
  return detail::run_op(fd, io_dir::read, deadline,
                        [&](io_desc& d) { return ::read(d.fd_, buf, n); });
}

result<std::size_t> readv(int fd, const iovec* iov, int iovcnt, clock::time_point deadline) {
  return detail::run_op(fd, io_dir::read, deadline,
                        [&](io_desc& d) { return ::readv(d.fd_, iov, iovcnt); });
}

result<std::size_t> write(int fd, const void* buf, std::size_t n, clock::time_point deadline) {
  return detail::run_op(fd, io_dir::write, deadline, [&](io_desc& d) {
    if (detail::is_socket(d)) return ::send(d.fd_, buf, n, MSG_NOSIGNAL);
    return detail::without_sigpipe([&] { return ::write(d.fd_, buf, n); });
  });
}

result<std::size_t> writev(int fd, const iovec* iov, int iovcnt, clock::time_point deadline) {
  return detail::run_op(fd, io_dir::write, deadline, [&](io_desc& d) {
    if (detail::is_socket(d)) {
      msghdr m{};
      m.msg_iov = const_cast<iovec*>(iov);
      m.msg_iovlen = static_cast<std::size_t>(iovcnt);
      return ::sendmsg(d.fd_, &m, MSG_NOSIGNAL);
    }
    return detail::without_sigpipe([&] { return ::writev(d.fd_, iov, iovcnt); });
  });
}

result<std::size_t> write_all(int fd, const void* buf, std::size_t n, clock::time_point deadline) {
  const auto* p = static_cast<const char*>(buf);
  std::size_t done = 0;
  while (done < n) {
    result<std::size_t> r = write(fd, p + done, n - done, deadline);
    if (!r) return r;
    done += *r;
  }
  return done;
}

result<std::size_t> recv(int fd, void* buf, std::size_t n, int flags, clock::time_point deadline) {
  return detail::run_op(fd, io_dir::read, deadline,
                        [&](io_desc& d) { return ::recv(d.fd_, buf, n, flags); });
}

result<std::size_t> send(int fd, const void* buf, std::size_t n, int flags,
                         clock::time_point deadline) {
  return detail::run_op(fd, io_dir::write, deadline,
                        [&](io_desc& d) { return ::send(d.fd_, buf, n, flags | MSG_NOSIGNAL); });
}

result<std::size_t> recvmsg(int fd, msghdr* msg, int flags, clock::time_point deadline) {
  return detail::run_op(fd, io_dir::read, deadline,
                        [&](io_desc& d) { return ::recvmsg(d.fd_, msg, flags); });
}

result<std::size_t> sendmsg(int fd, const msghdr* msg, int flags, clock::time_point deadline) {
  return detail::run_op(fd, io_dir::write, deadline,
                        [&](io_desc& d) { return ::sendmsg(d.fd_, msg, flags | MSG_NOSIGNAL); });
}

result<std::size_t> recvmmsg(int fd, mmsghdr* msgs, unsigned n, int flags,
                             clock::time_point deadline) {
  return detail::run_op(fd, io_dir::read, deadline, [&](io_desc& d) -> ssize_t {
    return ::recvmmsg(d.fd_, msgs, n, flags | MSG_WAITFORONE, nullptr);
  });
}

result<std::size_t> sendmmsg(int fd, mmsghdr* msgs, unsigned n, int flags,
                             clock::time_point deadline) {
  return detail::run_op(fd, io_dir::write, deadline, [&](io_desc& d) -> ssize_t {
    return ::sendmmsg(d.fd_, msgs, n, flags | MSG_NOSIGNAL);
  });
}

result<int> accept(int fd, sockaddr* addr, socklen_t* len, clock::time_point deadline) {
  result<std::size_t> r = detail::run_op(fd, io_dir::read, deadline, [&](io_desc& d) -> ssize_t {
    for (;;) {
      int c = ::accept4(d.fd_, addr, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (c >= 0 || errno != ECONNABORTED) return c;
    }
  });
  if (!r) return r.error();
  const int c = static_cast<int>(*r);
  if (io_desc* d = detail::descs().get(c)) {  // relaxed: caches of a fresh incarnation
    d->nonblock_.store(1, std::memory_order_relaxed);
    d->socket_.store(1, std::memory_order_relaxed);
  }
  return c;
}

result<void> connect(int fd, const sockaddr* addr, socklen_t len, clock::time_point deadline) {
  io_desc* d = detail::descs().get(fd);
  detail::op_ref ref(d);
  if (!ref) return std::make_error_code(std::errc::bad_file_descriptor);
  if (std::error_code ec = detail::ensure_nonblocking(*d)) return ec;
  std::uint32_t seen = d->edges(io_dir::write);  // protocol step 2: before the syscall
  if (::connect(fd, addr, len) == 0) return {};
  // EINTR: the connection attempt goes on asynchronously, as with EINPROGRESS.
  if (errno != EINPROGRESS && errno != EINTR) return detail::errno_code(errno);
  for (;;) {
    if (std::error_code ec = detail::wait_ready(*d, io_dir::write, seen, deadline)) return ec;
    seen = d->edges(io_dir::write);  // before the checks that may send us back to wait
    int err = 0;
    socklen_t n = sizeof err;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &n) != 0) return detail::errno_code(errno);
    if (err != 0) return detail::errno_code(err);
    sockaddr_storage peer;
    socklen_t plen = sizeof peer;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &plen) == 0) return {};
    if (errno != ENOTCONN) return detail::errno_code(errno);
    // An earlier edge woke us before the handshake finished: wait again.
  }
}

result<void> close(int fd) {
  io_desc* d = detail::descs().get(fd);
  if (!d) return std::make_error_code(std::errc::bad_file_descriptor);
  switch (d->mark_closing()) {
    case io_desc::close_result::already_closing:
      return std::make_error_code(std::errc::bad_file_descriptor);
    case io_desc::close_result::deferred:
      // Close step b: wake every waiter; the last operation finishes the close.
      for (io_dir dir : {io_dir::read, io_dir::write})
        d->wake_all(dir, [](detail::fiber_impl* f) { detail::wake(f); });
      return {};
    case io_desc::close_result::finish_now:
      break;
  }
  if (std::error_code ec = detail::finish_close(*d)) return ec;
  return {};
}

result<void> set_nonblocking(int fd) {
  io_desc* d = detail::descs().get(fd);
  detail::op_ref ref(d);
  if (!ref) return std::make_error_code(std::errc::bad_file_descriptor);
  if (std::error_code ec = detail::ensure_nonblocking(*d)) return ec;
  return {};
}

}  // namespace io
}  // namespace weft
