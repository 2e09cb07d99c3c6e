// src/reactor.cpp - see the protocol in reactor.hpp.
#include "reactor.hpp"

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
  {
    std::lock_guard<std::mutex> g(lock_);
    e->seq = seq_++;
    e->heap_index = heap_.size();
    heap_.push_back(e);
    heap_up(e->heap_index);
    earliest = e->heap_index == 0;
  }
  // seq_cst: pairs with the reactor's seq_cst store of sleeping_until_ before it sleeps
  // and its re-check of the heap after that store; either it sees our entry or we see
  // its (later) sleep deadline and wake it.
  if (earliest && e->deadline.time_since_epoch().count() <
                      sleeping_until_.load(std::memory_order_seq_cst))
    wake();
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

void reactor::run() noexcept {
  constexpr int max_events = 256;
  epoll_event events[max_events];
  // acquire: pairs with the release store in ~reactor().
  while (!stop_.load(std::memory_order_acquire)) {
    std::int64_t next = INT64_MAX;
    {
      std::lock_guard<std::mutex> g(lock_);
      const auto now = std::chrono::steady_clock::now();
      while (!heap_.empty() && heap_.front()->deadline <= now) {
        timer_entry* e = heap_.front();
        heap_remove(0);
        e->fire(e);  // under lock_: protocol step 3
      }
      if (!heap_.empty()) next = heap_.front()->deadline.time_since_epoch().count();
      // seq_cst: see arm().
      sleeping_until_.store(next, std::memory_order_seq_cst);
    }
    timespec ts{};
    timespec* tsp = nullptr;
    if (next != INT64_MAX) {
      auto delta = next - std::chrono::steady_clock::now().time_since_epoch().count();
      if (delta < 0) delta = 0;
      ts.tv_sec = static_cast<time_t>(delta / 1000000000);
      ts.tv_nsec = static_cast<long>(delta % 1000000000);
      tsp = &ts;
    }
    int n = epoll_pwait2(epfd_, events, max_events, tsp, nullptr);
    sleeping_until_.store(INT64_MIN, std::memory_order_seq_cst);  // awake: arms need not wake us
    for (int i = 0; i < n; ++i) {
      if (events[i].data.u64 == 0) {
        std::uint64_t v;
        while (read(evfd_, &v, sizeof v) > 0) {
        }
      }
      // fd readiness dispatch goes here (I/O layer).
    }
  }
}

// ---------------------------------------------------------------- binary heap

void reactor::heap_up(std::size_t i) noexcept {
  timer_entry* e = heap_[i];
  while (i > 0) {
    std::size_t p = (i - 1) / 2;
    if (!before(e, heap_[p])) break;
    heap_[i] = heap_[p];
    heap_[i]->heap_index = i;
    i = p;
  }
  heap_[i] = e;
  e->heap_index = i;
}

void reactor::heap_down(std::size_t i) noexcept {
  timer_entry* e = heap_[i];
  const std::size_t n = heap_.size();
  for (;;) {
    std::size_t c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && before(heap_[c + 1], heap_[c])) ++c;
    if (!before(heap_[c], e)) break;
    heap_[i] = heap_[c];
    heap_[i]->heap_index = i;
    i = c;
  }
  heap_[i] = e;
  e->heap_index = i;
}

void reactor::heap_remove(std::size_t i) noexcept {
  timer_entry* e = heap_[i];
  e->heap_index = timer_entry::npos;
  timer_entry* last = heap_.back();
  heap_.pop_back();
  if (last == e) return;
  heap_[i] = last;
  last->heap_index = i;
  heap_up(i);
  heap_down(last->heap_index);
}

}  // namespace weft::detail
