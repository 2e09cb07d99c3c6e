// src/reactor.cpp - see the protocol in reactor.hpp.
#include "reactor.hpp"

#include "assert.hpp"
#include "io_desc.hpp"
#include "fiber_impl.hpp"
#include "runtime.hpp"
#include "timers.hpp"
#include "tsan_scope.hpp"
#include "worker.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <system_error>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace weft::detail {

namespace {
[[noreturn]] void throw_errno(const char* what) {
  throw std::system_error(errno, std::generic_category(), std::string("weft: reactor: ") + what);
}
}  // namespace

reactor::reactor(runtime& rt) : rt_(rt) {
  auto fail = [this](const char* what) {
    const int e = errno;
    for (int fd : {evfd_, watch_fd_, epfd_})
      if (fd >= 0) close(fd);
    errno = e;
    throw_errno(what);
  };
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ < 0) fail("epoll_create1");
  watch_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (watch_fd_ < 0) fail("epoll_create1");
  evfd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (evfd_ < 0) fail("eventfd");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = 0;  // 0 = the wake eventfd
  if (epoll_ctl(watch_fd_, EPOLL_CTL_ADD, evfd_, &ev) != 0) fail("epoll_ctl(eventfd)");
  // Step 1: added disarmed (no event bits); the first parking worker arms it (step 3).
  ev.events = EPOLLONESHOT;
  ev.data.u64 = 1;  // 1 = io_ep_ has ready fds
  if (epoll_ctl(watch_fd_, EPOLL_CTL_ADD, epfd_, &ev) != 0) fail("epoll_ctl(epoll)");
  thread_ = std::thread([this] { run(); });
}

reactor::~reactor() {
  stop_.store(true, std::memory_order_release);  // pairs with the acquire in run()
  wake();
  thread_.join();
  // Unbind the fds still registered here (closing epfd_ drops the registrations), so a
  // later scheduler registers them again. Every fiber has finished: no slot or queue
  // holds a waiter (io_desc.hpp step 6).
  descs().for_each([this](io_desc& d) {
    if (d.owner_.load(std::memory_order_relaxed) != this) return;
    std::lock_guard<std::mutex> g(d.lock_);
    WEFT_ASSERT(d.rd_.load(std::memory_order_relaxed) == io_desc::slot_nil &&
                    d.wr_.load(std::memory_order_relaxed) == io_desc::slot_nil &&
                    !d.queue_[0] && !d.queue_[1],
                "reactor destroyed while a fiber waits on one of its fds");
    d.owner_.store(nullptr, std::memory_order_relaxed);
  });
  close(evfd_);
  close(watch_fd_);
  close(epfd_);
}

void reactor::wake() noexcept {
  std::uint64_t one = 1;
  ssize_t r = write(evfd_, &one, sizeof one);  // EAGAIN: counter saturated, already awake
  (void)r;
}

namespace {
// The batch of the reactor thread currently dispatching, else nullptr.
thread_local std::vector<std::uintptr_t>* tl_wakes = nullptr;
thread_local const runtime* tl_wakes_rt = nullptr;
}  // namespace

bool reactor::defer_wake(const runtime* rt, fiber_impl* f) noexcept {
  std::vector<std::uintptr_t>* b = tl_wakes;
  // Capacity is reserved up front; when full, the caller wakes directly (no allocation).
  if (!b || tl_wakes_rt != rt || b->size() == b->capacity()) return false;
  b->push_back(as_item(f));
  return true;
}

void reactor::flush_wakes() noexcept {
  if (!wakes_.empty()) rt_.inject(wakes_.data(), wakes_.size());
  wakes_.clear();
}

void reactor::arm_watch() noexcept {
  // seq_cst: step 3/4's pairing with the reactor's store of false and its parked() read.
  if (watch_armed_.exchange(true, std::memory_order_seq_cst)) return;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLONESHOT;
  ev.data.u64 = 1;
  (void)epoll_ctl(watch_fd_, EPOLL_CTL_MOD, epfd_, &ev);  // cannot fail: both fds are ours
}

int reactor::poll_io(epoll_event* events, int max_events) noexcept {
  int total = 0;
  for (;;) {
    const int n = epoll_wait(epfd_, events, max_events, 0);  // EINTR: n = -1, stop
    for (int i = 0; i < n; ++i) dispatch_io(events[i].data.u64, events[i].events);
    if (n <= 0) return total;
    total += n;
    if (n < max_events) return total;
  }
}

void reactor::run() noexcept {
  tsan_internal_scope internal;  // the reactor thread runs only internals (tsan_scope.hpp)
  constexpr int max_events = 256;
  epoll_event events[max_events];
  wakes_.reserve(16384);
  tl_wakes_rt = &rt_;
  // acquire: pairs with the release store in ~reactor().
  while (!stop_.load(std::memory_order_acquire)) {
    epoll_event watch[2];
    const int timeout = rt_.diag_.cap_timeout(watch_timeout(), steady_ns());
    const int n = epoll_wait(watch_fd_, watch, 2, timeout);  // EINTR: n = -1
    bool io_ready = false;
    for (int i = 0; i < n; ++i) {
      if (watch[i].data.u64 == 0) {
        std::uint64_t v;
        while (read(evfd_, &v, sizeof v) > 0) {
        }
      } else {
        io_ready = true;
      }
    }
    tl_wakes = &wakes_;
    fire_overdue();
    rt_.diag_.tick(rt_, steady_ns());  // diag.hpp: off unless the environment asks
    if (io_ready) {
      // Step 4, seq_cst: see the protocol. The kernel disarmed the one-shot already.
      watch_armed_.store(false, std::memory_order_seq_cst);
      (void)poll_io(events, max_events);
    }
    tl_wakes = nullptr;
    flush_wakes();  // unparks a worker for what was woken (counted unparked at once)
    if (io_ready && rt_.idle_.parked() > 0) arm_watch();  // step 4: somebody still sleeps
  }
}

// ---------------------------------------------------------------- timer watchdog

namespace {
constexpr std::int64_t watch_grace_ns = 1'000'000;    // timers.hpp step 7
constexpr std::int64_t watch_period_ns = 10'000'000;  // step 7: longest sleep with timers
}  // namespace

int reactor::watch_timeout() noexcept {
  std::int64_t t = rt_.earliest_timer();
  if (t == timer_shard::none) {
    unwatched_.store(true, std::memory_order_relaxed);
    // seq_cst: step 7's other fence; orders the flag store before the next_ reads.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    t = rt_.earliest_timer();
    if (t == timer_shard::none) return -1;  // an arm from now on sees the flag
    unwatched_.store(false, std::memory_order_relaxed);
  }
  const std::int64_t now = steady_ns();
  const std::int64_t wait = std::clamp(t + watch_grace_ns - now, std::int64_t{0}, watch_period_ns);
  return ceil_ms(wait);  // never early
}

void reactor::fire_overdue() noexcept {
  const std::int64_t now = steady_ns();
  for (unsigned i = 0, n = rt_.worker_count(); i < n; ++i) {
    timer_shard& s = rt_.worker_at(i).timers();
    if (s.next() <= now - watch_grace_ns) (void)s.fire_due(now, true);  // wakes: tl_wakes
  }
}

// ---------------------------------------------------------------- I/O

std::error_code reactor::register_fd(io_desc& d) noexcept {
  // acquire: pairs with the release store below; the fd is in our epoll set.
  if (d.owner_.load(std::memory_order_acquire) == this) return {};
  std::lock_guard<std::mutex> g(d.lock_);
  reactor* owner = d.owner_.load(std::memory_order_relaxed);
  if (owner == this) return {};
  if (owner) return std::make_error_code(std::errc::invalid_argument);
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.u64 = (static_cast<std::uint64_t>(d.fd_) << 32) | d.gen_.load(std::memory_order_relaxed);
  io_used_.store(true, std::memory_order_relaxed);  // step 2's hint
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, d.fd_, &ev) != 0) {
    // EEXIST: an earlier incarnation of this number was closed with close(2) while a dup
    // kept its registration (the io.hpp rule was broken); take the entry over.
    if (errno != EEXIST || epoll_ctl(epfd_, EPOLL_CTL_MOD, d.fd_, &ev) != 0)
      return {errno, std::generic_category()};
  }
  // seq_cst (release would do for the fast path at the top): cancel_io() filters on
  // owner_ after its flag exchange, and must see it once the waiter's later seq_cst
  // registration (io_desc.hpp step 2: the slot CAS or the queued_ store) precedes that
  // exchange.
  d.owner_.store(this, std::memory_order_seq_cst);
  return {};
}

void reactor::unregister_fd(io_desc& d) noexcept {
  epoll_event ev{};  // non-null for pre-2.6.9 kernels' sake
  (void)epoll_ctl(epfd_, EPOLL_CTL_DEL, d.fd_, &ev);  // ENOENT/EBADF: nothing to remove
}

void reactor::cancel_io() noexcept {
  // seq_cst: io_desc.hpp step 7 (flag first, then the slots and queues).
  if (io_cancelled_.exchange(true, std::memory_order_seq_cst)) return;
  descs().for_each([this](io_desc& d) {
    // seq_cst: see register_fd().
    if (d.owner_.load(std::memory_order_seq_cst) != this) return;
    for (io_dir dir : {io_dir::read, io_dir::write})
      d.wake_all(dir, [this](fiber_impl* f) { wake_fiber(f); });
  });
}

void reactor::dispatch_io(std::uint64_t tag, std::uint32_t events) noexcept {
  io_desc* d = descs().find(static_cast<int>(tag >> 32));
  // acquire: pairs with the release increment in close step c. A stale tag is dropped;
  // an event racing with that increment can at worst count an edge for (and wake the
  // waiters of) the next incarnation: one extra syscall each (EAGAIN), nothing else.
  if (!d || d->gen_.load(std::memory_order_acquire) != static_cast<std::uint32_t>(tag)) return;
  const bool rd = events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR);
  const bool wr = events & (EPOLLOUT | EPOLLHUP | EPOLLERR);
  d->count_edge(rd, wr);  // io_desc.hpp step 4: count first (step 7), then wake
  auto wake = [this](fiber_impl* f) { wake_fiber(f); };
  if (rd) d->wake_all(io_dir::read, wake);
  if (wr) d->wake_all(io_dir::write, wake);
}

void reactor::wake_fiber(fiber_impl* f) noexcept { rt_.wake(f); }

}  // namespace weft::detail
