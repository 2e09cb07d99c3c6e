// tests/shutdown_test.cpp - bounded shutdown (scheduler::shutdown(deadline),
// options::shutdown_grace): at the deadline every fiber that waits, in any kind of
// cancellable wait, is asked to stop, and so are fibers that start waiting later; what
// still computes is named; nothing is asked to stop when everything finished in time.
#include <weft/weft.hpp>

#include <gtest/gtest.h>

#include "watchdog.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

using namespace std::chrono_literals;

// With 1, 2 and 4 workers (4 oversubscribes this machine's 2 cores).
class BoundedShutdownWorkers : public testing::TestWithParam<unsigned> {};
INSTANTIATE_TEST_SUITE_P(Workers, BoundedShutdownWorkers, testing::Values(1u, 2u, 4u));

TEST_P(BoundedShutdownWorkers, StopsFibersInEveryKindOfWait) {
  watchdog dog("shutdown(deadline) with fibers in every kind of wait");  // a lost stop hangs: abort after 30 s
  weft::event ev;
  weft::counting_semaphore sem(0);
  weft::channel<int> rx(0), full(1), a(0), b(0);
  ASSERT_EQ(full.try_send(1), weft::channel_status::ok);
  weft::mutex m;
  weft::condition_variable cv;
  weft::wait_group wg;
  wg.add(1);
  weft::latch l(1);
  weft::barrier bar(2);
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
  std::atomic<int> ended{0}, wrong{0}, late_waits_ended{0};
  auto check = [&](bool canceled_as_expected) {
    if (!canceled_as_expected) ++wrong;
    ++ended;
  };
  int kinds = 0;
  {
    weft::scheduler s({.workers = GetParam()});
    auto go = [&](auto fn) {
      ++kinds;
      s.spawn_detached(fn);
    };
    go([&] { weft::this_fiber::sleep_for(1h); check(weft::this_fiber::stop_requested()); });
    go([&] { check(!ev.wait()); });
    go([&] { check(!sem.acquire()); });
    go([&] { check(!rx.recv().has_value()); });
    go([&] { check(full.send(2) == weft::channel_status::canceled); });
    go([&] {
      std::unique_lock<weft::mutex> lk(m);
      check(!cv.wait(lk, [] { return false; }));
    });
    go([&] { check(!wg.wait()); });
    go([&] { check(!l.wait()); });
    go([&] { check(!bar.arrive_and_wait()); });
    go([&] {
      bool handled = false;
      weft::select(weft::recv_case(a, [&](std::optional<int>) { handled = true; }),
                   weft::recv_case(b, [&](std::optional<int>) { handled = true; }));
      check(!handled && weft::this_fiber::stop_requested());
    });
    go([&] {
      char c;
      weft::result<std::size_t> r = weft::io::read(fds[0], &c, 1);
      check(!r && r.error() == std::errc::operation_canceled);
    });
    go([&] {
      auto h = weft::spawn([] { weft::this_fiber::sleep_for(1h); });
      // A timed join is cancellable. The same walk may stop the child too, which may then
      // finish first: either way the join wait ends (a seeded schedule found the second).
      const bool joined = h.join_for(1h);
      if (!joined) {
        h.request_stop();
        h.join();
      }
      check(joined || weft::this_fiber::stop_requested());
    });
    // Stopped, it starts a new wait in a new fiber: a later walk must stop that one too.
    go([&] {
      weft::event never;
      (void)never.wait();
      auto late = weft::spawn([] {
        weft::event never2;
        (void)never2.wait();
      });
      late.join();
      ++late_waits_ended;
      check(true);
    });
    // Everything has reached its wait before the deadline (a wait started after it is
    // caught by a later walk anyway, which the fiber above checks).
    std::this_thread::sleep_for(50ms);
    EXPECT_FALSE(s.shutdown(weft::clock::now() + 20ms));  // had to ask fibers to stop
  }
  EXPECT_EQ(ended.load(), kinds);
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(late_waits_ended.load(), 1);
  // Nothing was taken: the full channel still holds its value, the event stays unset.
  EXPECT_EQ(full.try_recv().value.value_or(-1), 1);
  EXPECT_FALSE(ev.is_set());
  ::close(fds[0]);
  ::close(fds[1]);
}

// A server's stop path: one thread is already in an unbounded shutdown (the destructor, or
// shutdown()), and another (a signal handler's thread, a supervisor) calls shutdown_for to
// bound it. The bounded call must bring its deadline to the drain under way: the fiber
// that waits forever is asked to stop, and both calls return.
TEST_P(BoundedShutdownWorkers, BoundedCallBoundsAnUnboundedShutdownUnderWay) {
  watchdog dog("shutdown_for while an unbounded shutdown drains");
  weft::event ev;  // never set by the test: only a stop request (or the rescue) ends the wait
  std::atomic<bool> stopped{false};
  std::atomic<int> bounded{-1};  // the bounded call's result, -1 until it returns
  {
    weft::scheduler s({.workers = GetParam()});
    s.spawn_detached([&] { stopped = !ev.wait() && weft::this_fiber::stop_requested(); });
    std::thread unbounded([&] { s.shutdown(); });
    // Until the unbounded shutdown has begun, an outside spawn succeeds (and its fiber ends).
    for (;;) {
      try {
        s.spawn_detached([] {});
      } catch (const std::runtime_error&) {
        break;
      }
      std::this_thread::sleep_for(1ms);
    }
    std::thread bounding([&] { bounded = s.shutdown_for(1ms) ? 1 : 0; });
    // Without the deadline reaching the drain nothing ends the wait: the rescue sets the
    // event so that the test fails instead of hanging. Bounded by the watchdog's kicks.
    for (int i = 0; i < 1000 && bounded.load() < 0; ++i) {
      dog.kick("waiting for the bounded shutdown to return");
      std::this_thread::sleep_for(10ms);
    }
    if (bounded.load() < 0) ev.set();
    bounding.join();
    unbounded.join();
  }
  EXPECT_TRUE(stopped.load()) << "the waiting fiber was not asked to stop";
  EXPECT_EQ(bounded.load(), 0) << "the bounded call had to ask a fiber to stop";
}

TEST(BoundedShutdown, NothingIsStoppedWhenEverythingFinishesInTime) {
  watchdog dog("shutdown(deadline) of finished fibers");
  std::atomic<int> stopped{0};
  weft::scheduler s({.workers = 2});
  for (int i = 0; i < 100; ++i)
    s.spawn_detached([&] {
      weft::this_fiber::sleep_for(1ms);
      if (weft::this_fiber::stop_requested()) ++stopped;
    });
  EXPECT_TRUE(s.shutdown(weft::clock::now() + 30s));
  EXPECT_EQ(stopped.load(), 0);
}

TEST(BoundedShutdown, DestructorUsesShutdownGrace) {
  watchdog dog("~scheduler with shutdown_grace");
  std::atomic<bool> ended{false};
  weft::event ev;
  {
    weft::scheduler s({.workers = 1, .shutdown_grace = 0ms});
    s.spawn_detached([&] {
      (void)ev.wait();
      ended = true;
    });
    std::this_thread::sleep_for(20ms);
  }  // without the grace this waits forever for the event
  EXPECT_TRUE(ended.load());
}

TEST(BoundedShutdown, NamesAFiberThatKeepsComputing) {
  watchdog dog("shutdown(deadline) with a computing fiber");
  testing::internal::CaptureStderr();
  std::uint64_t id = 0;
  {
    weft::scheduler s({.workers = 2});
    std::atomic<bool> started{false};
    auto deadline = weft::clock::now() + 50ms;
    auto h = s.spawn(weft::spawn_options{.name = "cruncher"}, [&] {
      started = true;
      // Computes without a wait until 1.6 s past the deadline: the report comes at 1 s.
      while (weft::clock::now() < deadline + 1600ms) {
      }
    });
    id = h.id();
    h.detach();
    while (!started) std::this_thread::sleep_for(1ms);
    EXPECT_FALSE(s.shutdown(deadline));
  }
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("shutdown: still unfinished"), std::string::npos) << err;
  EXPECT_NE(err.find("fiber #" + std::to_string(id) + ": running on worker"), std::string::npos) << err;
}

}  // namespace
