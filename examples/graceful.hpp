// examples/graceful.hpp - what echo_server and http_hello share to stop cleanly on SIGINT
// or SIGTERM: stop accepting, ask every connection's fiber to stop, wait for them up to a
// deadline, then return (or name what is still running and exit non-zero).
//
//   int sfd = example::block_stop_signals();     // first thing in main, before any thread
//   weft::scheduler sched;
//   return example::serve_until_signal(sched, *listener, sfd, serve, std::chrono::seconds(5));
//
// How the pieces end (README, "Cancellation and deadlines"): a stop request ends the
// acceptor's accept() and each connection's read()/write() with operation_canceled, so
// serve() functions written as plain loops ("return on error") need no change. A fiber
// that computes without waiting is not interrupted: the deadline bounds the wait for it.
#pragma once

#include <weft/weft.hpp>

#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <unordered_map>
#include <utility>

namespace example {

// Blocks SIGINT and SIGTERM in the calling thread and so in every thread it starts later
// (the scheduler's workers among them), and returns a signalfd that reports them. Call it
// before any thread exists: a thread that leaves them unblocked would take the signal.
inline int block_stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  if (pthread_sigmask(SIG_BLOCK, &set, nullptr) != 0) std::abort();
  const int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd < 0) {
    std::perror("signalfd");
    std::exit(1);
  }
  return fd;
}

// The live connections: each one's fiber, stoppable, and a count to wait on.
class connection_set {
public:
  // Spawns f() as a tracked fiber; it leaves the set when it returns.
  template <class F>
  void spawn(F&& f) {
    std::lock_guard<weft::mutex> g(mu_);  // held until the handle is in: finish() waits
    const std::uint64_t id = next_++;
    live_count_.add(1);
    live_.emplace(id, weft::spawn([this, id, fn = std::forward<F>(f)]() mutable {
      fn();
      finish(id);
    }));
  }
  // Asks every live connection to stop; returns how many were asked.
  std::size_t stop_all() {
    std::lock_guard<weft::mutex> g(mu_);
    for (auto& [id, h] : live_) (void)h.request_stop();
    return live_.size();
  }
  // True once every connection returned; false at the deadline.
  bool wait_until(weft::clock::time_point deadline) { return live_count_.wait_until(deadline); }
  std::size_t size() {
    std::lock_guard<weft::mutex> g(mu_);
    return live_.size();
  }

private:
  void finish(std::uint64_t id) {
    {
      std::lock_guard<weft::mutex> g(mu_);
      auto it = live_.find(id);
      it->second.detach();  // our own handle: nobody joins a connection
      live_.erase(it);
    }
    live_count_.done();  // the last touch of the set (the waiter may then destroy it)
  }
  weft::mutex mu_;
  std::unordered_map<std::uint64_t, weft::join_handle<void>> live_;  // guarded by mu_
  std::uint64_t next_ = 0;                                          // guarded by mu_
  weft::wait_group live_count_;
};

// Accepts connections on `listener`, serving each with serve(tcp_stream) in a fiber of its
// own, until SIGINT or SIGTERM arrives on `sfd`; then stops as the header says. Returns the
// process exit code: 0 when everything ended within `grace`, 1 otherwise.
template <class Serve>
int serve_until_signal(weft::scheduler& sched, weft::tcp_listener& listener, int sfd, Serve serve,
                       std::chrono::milliseconds grace) {
  return sched.block_on([&] {
    connection_set conns;
    auto acceptor = weft::spawn([&] {
      for (;;) {
        auto conn = listener.accept();
        if (conn) {
          conns.spawn([&serve, c = std::move(*conn)]() mutable { serve(std::move(c)); });
        } else if (conn.error() == std::errc::operation_canceled) {
          return;  // stopped (or the scheduler is shutting down)
        } else {
          weft::this_fiber::sleep_for(std::chrono::milliseconds(10));  // EMFILE etc.
        }
      }
    });
    signalfd_siginfo info{};
    auto got = weft::io::read(sfd, &info, sizeof info);  // suspends this fiber only
    const auto deadline = weft::deadline_after(grace);
    std::printf("stopping on signal %d\n", got ? static_cast<int>(info.ssi_signo) : -1);
    (void)acceptor.request_stop();
    acceptor.join();
    (void)listener.close();  // new connections are refused from here on
    const std::size_t asked = conns.stop_all();
    const bool clean = conns.wait_until(deadline);
    std::printf("stopped: %zu connection(s) asked to stop, %zu still running\n", asked,
                clean ? std::size_t{0} : conns.size());
    std::fflush(stdout);
    if (!clean) std::_Exit(1);  // fibers that do not stop: leave without waiting for them
    ::close(sfd);
    return 0;
  });
}

}  // namespace example
