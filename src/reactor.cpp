// src/reactor.cpp - see the protocol in reactor.hpp.
#include "reactor.hpp"

#include "io_desc.hpp"
#include "fiber_impl.hpp"
#include "runtime.hpp"

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
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ < 0) throw_errno("epoll_create1");
  evfd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (evfd_ < 0) {
    int e = errno;
    close(epfd_);
    errno = e;
    throw_errno("eventfd");
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = 0;  // 0 = the wake eventfd
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, evfd_, &ev) != 0) {
    int e = errno;
    close(evfd_);
    close(epfd_);
    errno = e;
    throw_errno("epoll_ctl(eventfd)");
  }
  thread_ = std::thread([this] { run(); });
}

reactor::~reactor() {
  stop_.store(true, std::memory_order_release);  // pairs with the acquire in run()
  wake();
  thread_.join();
  // Unbind the fds still registered here (closing epfd_ drops the registrations), so a
  // later scheduler registers them again. Every fiber has finished: no slot holds a waiter.
  descs().for_each([this](io_desc& d) {
    if (d.owner_.load(std::memory_order_relaxed) != this) return;
    std::lock_guard<std::mutex> g(d.lock_);
    d.owner_.store(nullptr, std::memory_order_relaxed);
    d.rd_.store(io_desc::slot_nil, std::memory_order_relaxed);
    d.wr_.store(io_desc::slot_nil, std::memory_order_relaxed);
  });
  close(evfd_);
  close(epfd_);
}

void reactor::wake() noexcept {
  std::uint64_t one = 1;
  ssize_t r = write(evfd_, &one, sizeof one);  // EAGAIN: counter saturated, already awake
  (void)r;
}

void reactor::arm(timer_entry* e) noexcept {
  bool earliest;
  // Copied under the lock: once lock_ is released the timer may fire and its owner free
  // the entry (it often lives on a fiber's stack), so *e must not be read after that.
  const std::int64_t deadline = e->deadline.time_since_epoch().count();
  {
    std::lock_guard<std::mutex> g(lock_);
    e->seq = seq_++;
    heap_.push_back({});
    heap_up(heap_.size() - 1, heap_node{deadline, e->seq, e});
    earliest = e->heap_index == 0;
  }
  // seq_cst: pairs with the reactor's seq_cst store of sleeping_until_ before it sleeps
  // and its re-check of the heap after that store; either it sees our entry or we see
  // its (later) sleep deadline and wake it.
  if (earliest && deadline < sleeping_until_.load(std::memory_order_seq_cst)) wake();
}

bool reactor::cancel(timer_entry* e) noexcept {
  std::lock_guard<std::mutex> g(lock_);
  if (e->heap_index == timer_entry::npos) return false;  // fired (fire has returned)
  heap_remove(e->heap_index);
  return true;
}

std::size_t reactor::pending() const noexcept {
  std::lock_guard<std::mutex> g(lock_);
  return heap_.size();
}

namespace {
// Step 5: the batch of the reactor thread currently firing/dispatching, else nullptr.
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

std::int64_t reactor::fire_expired() noexcept {
  std::lock_guard<std::mutex> g(lock_);
  const std::int64_t now = std::chrono::steady_clock::now().time_since_epoch().count();
  while (!heap_.empty() && heap_.front().when <= now) {
    timer_entry* e = heap_.front().e;
    heap_remove(0);
    e->fire(e);  // under lock_: protocol step 3
  }
  const std::int64_t next = heap_.empty() ? INT64_MAX : heap_.front().when;
  // seq_cst: see arm().
  sleeping_until_.store(next, std::memory_order_seq_cst);
  return next;
}

// epoll_pwait2 (Linux 5.11+) takes a nanosecond timeout; without it (older kernels, or
// valgrind, which answers ENOSYS) fall back to epoll_wait with the timeout rounded *up*
// to whole milliseconds, so timers are never early and an unsupported call never turns
// the loop into a busy spin.
int reactor::wait_events(epoll_event* events, int max_events, const timespec* tsp) noexcept {
  static std::atomic<bool> no_pwait2{false};  // relaxed: a sticky capability bit
  if (!no_pwait2.load(std::memory_order_relaxed)) {
    int n = epoll_pwait2(epfd_, events, max_events, tsp, nullptr);
    if (n >= 0 || errno != ENOSYS) return n;
    no_pwait2.store(true, std::memory_order_relaxed);
  }
  int ms = -1;
  if (tsp) {
    const long long ns = static_cast<long long>(tsp->tv_sec) * 1000000000LL + tsp->tv_nsec;
    const long long m = (ns + 999999) / 1000000;
    ms = m > INT32_MAX ? INT32_MAX : static_cast<int>(m);
  }
  return epoll_wait(epfd_, events, max_events, ms);
}

void reactor::run() noexcept {
  constexpr int max_events = 256;
  epoll_event events[max_events];
  wakes_.reserve(16384);
  tl_wakes_rt = &rt_;
  // acquire: pairs with the release store in ~reactor().
  while (!stop_.load(std::memory_order_acquire)) {
    tl_wakes = &wakes_;
    const std::int64_t next = fire_expired();
    tl_wakes = nullptr;
    flush_wakes();  // after lock_ is released (step 5)
    timespec ts{};
    timespec* tsp = nullptr;
    if (next != INT64_MAX) {
      auto delta = next - std::chrono::steady_clock::now().time_since_epoch().count();
      if (delta < 0) delta = 0;
      ts.tv_sec = static_cast<time_t>(delta / 1000000000);
      ts.tv_nsec = static_cast<long>(delta % 1000000000);
      tsp = &ts;
    }
    int n = wait_events(events, max_events, tsp);  // EINTR: n = -1, loop
    sleeping_until_.store(INT64_MIN, std::memory_order_seq_cst);  // awake: arms need not wake us
    tl_wakes = &wakes_;
    for (int i = 0; i < n; ++i) {
      if (events[i].data.u64 == 0) {
        std::uint64_t v;
        while (read(evfd_, &v, sizeof v) > 0) {
        }
      } else {
        dispatch_io(events[i].data.u64, events[i].events);
      }
    }
    tl_wakes = nullptr;
    flush_wakes();
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
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, d.fd_, &ev) != 0) {
    // EEXIST: an earlier incarnation of this number was closed with close(2) while a dup
    // kept its registration (the io.hpp rule was broken); take the entry over.
    if (errno != EEXIST || epoll_ctl(epfd_, EPOLL_CTL_MOD, d.fd_, &ev) != 0)
      return {errno, std::generic_category()};
  }
  // seq_cst (release would do for the fast path at the top): cancel_io() filters on
  // owner_ after its flag exchange, and must see it once the waiter's later seq_cst
  // slot CAS (prepare) precedes that exchange.
  d.owner_.store(this, std::memory_order_seq_cst);
  return {};
}

void reactor::unregister_fd(io_desc& d) noexcept {
  epoll_event ev{};  // non-null for pre-2.6.9 kernels' sake
  (void)epoll_ctl(epfd_, EPOLL_CTL_DEL, d.fd_, &ev);  // ENOENT/EBADF: nothing to remove
}

void reactor::cancel_io() noexcept {
  // seq_cst: io_desc.hpp step 6 (flag first, then the slots).
  if (io_cancelled_.exchange(true, std::memory_order_seq_cst)) return;
  descs().for_each([this](io_desc& d) {
    // seq_cst: see register_fd().
    if (d.owner_.load(std::memory_order_seq_cst) != this) return;
    for (io_dir dir : {io_dir::read, io_dir::write})
      if (fiber_impl* f = io_desc::unblock(d.slot(dir), false)) wake_fiber(f);
  });
}

void reactor::dispatch_io(std::uint64_t tag, std::uint32_t events) noexcept {
  io_desc* d = descs().find(static_cast<int>(tag >> 32));
  // acquire: pairs with the release increment in close step c. A stale tag is dropped;
  // an event racing with that increment can at worst mark the next incarnation READY,
  // which costs its next waiter one extra syscall (EAGAIN) and nothing else.
  if (!d || d->gen_.load(std::memory_order_acquire) != static_cast<std::uint32_t>(tag)) return;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
    if (fiber_impl* f = io_desc::unblock(d->rd_, true)) wake_fiber(f);
  if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
    if (fiber_impl* f = io_desc::unblock(d->wr_, true)) wake_fiber(f);
}

void reactor::wake_fiber(fiber_impl* f) noexcept { rt_.wake(f); }

// ---------------------------------------------------------------- binary heap

void reactor::heap_up(std::size_t i, heap_node n) noexcept {
  while (i > 0) {
    std::size_t p = (i - 1) / 2;
    if (!(n < heap_[p])) break;
    place(i, heap_[p]);
    i = p;
  }
  place(i, n);
}

void reactor::heap_down(std::size_t i, heap_node n) noexcept {
  const std::size_t size = heap_.size();
  for (;;) {
    std::size_t c = 2 * i + 1;
    if (c >= size) break;
    if (c + 1 < size && heap_[c + 1] < heap_[c]) ++c;
    if (!(heap_[c] < n)) break;
    place(i, heap_[c]);
    i = c;
  }
  place(i, n);
}

void reactor::heap_remove(std::size_t i) noexcept {
  heap_[i].e->heap_index = timer_entry::npos;
  heap_node last = heap_.back();
  heap_.pop_back();
  if (i == heap_.size()) return;  // it was the last node
  if (i > 0 && last < heap_[(i - 1) / 2])
    heap_up(i, last);
  else
    heap_down(i, last);
}

}  // namespace weft::detail
