// tests/dump_test.cpp - the fiber dump (scheduler::dump, src/inspect.hpp): every live
// fiber with its id, name, state, what it waits on and a backtrace through the test's own
// functions; a computing fiber reported as running without stopping the dump; dumps taken
// while fibers switch and migrate read nothing torn.
#include <weft/weft.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <utility>
#include <thread>
#include <vector>

#include <csignal>
#include <unistd.h>

namespace {

using namespace std::chrono_literals;

std::string dump_of(const weft::scheduler& s) {
  char* buf = nullptr;
  std::size_t len = 0;
  std::FILE* f = open_memstream(&buf, &len);
  s.dump(f);
  std::fclose(f);
  std::string out(buf, len);
  std::free(buf);
  return out;
}

// The dump's lines for fiber #id: its header and its frames (up to the next header).
std::string section(const std::string& dump, std::uint64_t id) {
  const std::string head = "  fiber #" + std::to_string(id) + " ";
  const std::string head2 = "  fiber #" + std::to_string(id) + ":";
  std::size_t p = dump.find(head);
  if (p == std::string::npos) p = dump.find(head2);
  if (p == std::string::npos) return "";
  std::size_t end = dump.find("\n  fiber #", p + 1);
  return dump.substr(p, end == std::string::npos ? std::string::npos : end - p);
}

std::string addr(const void* p) {
  char b[32];
  std::snprintf(b, sizeof b, "%p", p);
  return b;
}

// The test's own frames, which the backtraces must show (exported: tests link -rdynamic).
extern "C" __attribute__((noinline)) void dump_test_waits_on_event(weft::event& ev) {
  ev.wait();
  asm volatile("" ::: "memory");  // not a tail call: this frame stays on the stack
}
extern "C" __attribute__((noinline)) void dump_test_waits_on_mutex(weft::mutex& m) {
  std::lock_guard<weft::mutex> g(m);
  asm volatile("" ::: "memory");
}

TEST(FiberDump, NamesEveryFiberItsWaitAndItsOwnFrames) {
  weft::scheduler s({.workers = 2});
  weft::event ev;  // never set: the waiter is asked to stop at the end
  weft::mutex m;
  weft::channel<int> ch(1);
  std::atomic<bool> spin{true};
  std::atomic<bool> spinning{false};
  m.lock();  // from this thread: the mutex waiter blocks until the end
  auto waiter = s.spawn(weft::spawn_options{.name = "ev-waiter"}, [&] { dump_test_waits_on_event(ev); });
  auto locker = s.spawn(weft::spawn_options{.name = "locker"}, [&] { dump_test_waits_on_mutex(m); });
  auto receiver = s.spawn(weft::spawn_options{.name = "receiver"}, [&] { return ch.recv(); });
  auto sleeper = s.spawn(weft::spawn_options{.name = "sleeper"}, [] { weft::this_fiber::sleep_for(1h); });
  weft::event target_go;
  auto target = s.spawn([&] { target_go.wait(); });
  const std::uint64_t target_id = target.id();  // join() takes the handle's task
  auto joiner = s.spawn(weft::spawn_options{.name = "joiner"}, [&] { target.join(); });
  auto computer = s.spawn(weft::spawn_options{.name = "computer"}, [&] {
    spinning = true;
    while (spin.load(std::memory_order_relaxed)) {
    }
  });
  // Poll until every fiber has reached its wait (a dump only reads; it never waits).
  std::string d;
  const auto until = std::chrono::steady_clock::now() + 60s;
  for (;;) {
    d = dump_of(s);
    const bool all = section(d, waiter.id()).find("waiting on event") != std::string::npos &&
                     section(d, locker.id()).find("waiting on mutex") != std::string::npos &&
                     section(d, receiver.id()).find("waiting on channel recv") != std::string::npos &&
                     section(d, sleeper.id()).find("waiting on sleep") != std::string::npos &&
                     section(d, joiner.id()).find("waiting on join") != std::string::npos &&
                     spinning.load();
    if (all || std::chrono::steady_clock::now() > until) break;
    std::this_thread::sleep_for(5ms);
  }
  const std::string ev_s = section(d, waiter.id());
  EXPECT_NE(ev_s.find("\"ev-waiter\": waiting on event " + addr(&ev)), std::string::npos) << d;
  EXPECT_NE(ev_s.find("dump_test_waits_on_event"), std::string::npos) << d;
  const std::string m_s = section(d, locker.id());
  EXPECT_NE(m_s.find("\"locker\": waiting on mutex " + addr(&m)), std::string::npos) << d;
  EXPECT_NE(m_s.find("dump_test_waits_on_mutex"), std::string::npos) << d;
  EXPECT_NE(section(d, receiver.id()).find("\"receiver\": waiting on channel recv"), std::string::npos) << d;
  const std::string sl_s = section(d, sleeper.id());
  EXPECT_NE(sl_s.find("\"sleeper\": waiting on sleep, deadline in "), std::string::npos) << d;
  EXPECT_NE(section(d, joiner.id()).find("waiting on join of fiber #" + std::to_string(target_id)),
            std::string::npos)
      << d;
  // The computing fiber holds its worker: reported as running there, with no frames read.
  const std::string c_s = section(d, computer.id());
  EXPECT_NE(c_s.find(": running on worker "), std::string::npos) << d;
  EXPECT_NE(d.find("did not reach a safe point"), std::string::npos) << d;
  // A second dump knows how long the waits have lasted (since the first saw them).
  const std::string d2 = dump_of(s);
  EXPECT_NE(section(d2, waiter.id()).find(", for >= "), std::string::npos) << d2;

  spin = false;
  waiter.request_stop();
  sleeper.request_stop();
  m.unlock();
  target_go.set();
  EXPECT_EQ(ch.send(7), weft::channel_status::ok);
  EXPECT_EQ(receiver.join(), 7);
  waiter.join();
  locker.join();
  joiner.join();
  sleeper.join();
  computer.join();
}

TEST(FiberDump, FromAFiberListsItselfAsRunningAndOthers) {
  weft::scheduler s({.workers = 1});
  const std::string d = s.block_on([&] {
    weft::event ev;
    auto other = weft::spawn([&] { ev.wait(); });
    // Let it reach its wait (one worker: it runs when we yield; under schedule fuzzing it
    // may take more yields).
    std::string out;
    for (int i = 0; i < 10000; ++i) {
      weft::this_fiber::yield();
      out = dump_of(s);
      if (section(out, other.id()).find(": waiting on event") != std::string::npos) break;
    }
    out += "\nother=" + std::to_string(other.id()) + " self=" + std::to_string(weft::this_fiber::id());
    ev.set();
    other.join();
    return out;
  });
  const std::size_t p = d.rfind("other=");
  ASSERT_NE(p, std::string::npos);
  std::uint64_t other = 0, self = 0;
  std::sscanf(d.c_str() + p, "other=%lu self=%lu", &other, &self);
  EXPECT_NE(section(d, self).find(": running on worker 0"), std::string::npos) << d;
  EXPECT_NE(section(d, other).find(": waiting on event"), std::string::npos) << d;
}

TEST(FiberDump, NullFileIsRefused) {
  weft::scheduler s({.workers = 1});
  EXPECT_THROW(s.dump(nullptr), std::invalid_argument);
}

// "; age X..Y ms" or "; age <= Y ms" in a fiber's line: X (-1: none) and Y (-1: no age).
std::pair<double, double> age_of(const std::string& sec) {
  const std::size_t p = sec.find("; age ");
  if (p == std::string::npos) return {-1, -1};
  double lo = -1, hi = -1;
  if (std::sscanf(sec.c_str() + p, "; age <= %lf ms", &hi) == 1) return {-1, hi};
  if (std::sscanf(sec.c_str() + p, "; age %lf..%lf ms", &lo, &hi) == 2) return {lo, hi};
  return {-1, -1};
}

// Ages come from when each block of ids was taken (inspect.hpp step 6). A fiber spawned
// by the worker that then used up its block (5,000 more spawns) gets both bounds, and
// the lower one covers the 30 ms slept since; a fiber spawned from outside after that gets
// an upper bound. Both upper bounds stay within the test's own clock. Mutation: drop the
// id_clock_.note call from worker::next_task_id and no age is printed.
TEST(FiberDump, AgesAreBracketedBySpawnTime) {
  weft::scheduler s({.workers = 1});
  weft::event release;
  const auto t0 = std::chrono::steady_clock::now();
  weft::join_handle<void> inner = s.block_on([&] {
    auto h = weft::spawn([&] { release.wait(); });
    for (int i = 0; i < 5000; ++i) weft::spawn_detached([] {});
    return h;
  });
  auto outside = s.spawn([&] { release.wait(); });  // an id taken alone
  std::this_thread::sleep_for(30ms);
  const std::string d = dump_of(s);
  const double elapsed_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  const auto [in_lo, in_hi] = age_of(section(d, inner.id()));
  EXPECT_GE(in_lo, 30.0) << d;
  EXPECT_GE(in_hi, in_lo) << d;
  EXPECT_LE(in_hi, elapsed_ms) << d;
  const auto [out_lo, out_hi] = age_of(section(d, outside.id()));
  EXPECT_EQ(out_lo, -1.0) << d;  // nothing was noted after it
  EXPECT_GE(out_hi, 30.0) << d;
  EXPECT_LE(out_hi, elapsed_ms) << d;
  release.set();
  inner.join();
  outside.join();
}

// Dumps while fibers ping-pong on channels, sleep and migrate: every dump must list every
// live fiber exactly once, each in a state it can be in, and never crash on a torn read.
TEST(FiberDump, DumpsWhileFibersSwitchAndMigrate) {
  weft::scheduler s({.workers = 2});
  constexpr int pairs = 4;
  std::atomic<bool> stop{false};
  std::atomic<int> started{0};
  std::vector<weft::join_handle<void>> hs;
  std::vector<std::unique_ptr<weft::channel<int>>> chans;
  for (int i = 0; i < 2 * pairs; ++i) chans.push_back(std::make_unique<weft::channel<int>>(0));
  for (int i = 0; i < pairs; ++i) {
    auto* a = chans[2 * i].get();
    auto* b = chans[2 * i + 1].get();
    hs.push_back(s.spawn([&, a, b] {
      ++started;
      while (!stop.load(std::memory_order_relaxed)) {
        if (a->send(1) != weft::channel_status::ok) break;
        if (!b->recv()) break;
        weft::this_fiber::sleep_for(std::chrono::microseconds(50));
      }
      a->close();
    }));
    hs.push_back(s.spawn([&, a, b] {
      ++started;
      while (auto v = a->recv()) {
        if (b->send(*v) != weft::channel_status::ok) break;
        weft::this_fiber::yield();
      }
      b->close();
    }));
  }
  std::vector<std::uint64_t> ids;
  for (auto& h : hs) ids.push_back(h.id());
  // Until every fiber has started, a task still queued has no fiber to list.
  while (started.load() < 2 * pairs) std::this_thread::sleep_for(1ms);
  bool ok = true;
  for (int round = 0; round < 100 && ok; ++round) {
    const std::string d = dump_of(s);
    for (std::uint64_t id : ids) {
      const std::string head = "  fiber #" + std::to_string(id) + ":";
      const std::size_t at = d.find(head);
      ok = ok && at != std::string::npos && d.find(head, at + 1) == std::string::npos;
      EXPECT_TRUE(ok) << "fiber #" << id << " missing or listed twice in round " << round << "\n" << d;
      if (!ok) break;
    }
  }
  stop = true;
  for (auto& h : hs) h.join();
}

}  // namespace

namespace {

// WEFT_DUMP_SIGNAL: the signal dumps every scheduler to stderr from weft's own thread.
// The variable is read when the first scheduler of the process starts, so this test runs
// in a process of its own (ctest runs it filtered; see tests/CMakeLists.txt).
TEST(FiberDumpSignal, SignalWritesTheDumpToStderr) {
  if (!std::getenv("WEFT_DUMP_SIGNAL")) GTEST_SKIP() << "run by ctest with WEFT_DUMP_SIGNAL=SIGUSR2";
  // stderr goes to a file we can read while it is written (the dump comes from another
  // thread, at a time of its own).
  char path[] = "/tmp/weft_dump_signal_XXXXXX";
  const int file = ::mkstemp(path);
  ASSERT_GE(file, 0);
  ::unlink(path);
  std::fflush(stderr);
  const int saved = ::dup(2);
  ::dup2(file, 2);
  std::string err;
  std::uint64_t id = 0;
  {
    weft::scheduler s({.workers = 2});
    weft::event ev;
    auto h = s.spawn(weft::spawn_options{.name = "signalled"}, [&] { ev.wait(); });
    id = h.id();
    std::this_thread::sleep_for(20ms);
    ::kill(::getpid(), SIGUSR2);
    // Bounded by ctest's timeout: a lost signal fails there.
    while (err.find("\"signalled\": waiting on event") == std::string::npos) {
      std::this_thread::sleep_for(20ms);
      char buf[4096];
      const ssize_t n = ::pread(file, buf, sizeof buf, static_cast<off_t>(err.size()));
      if (n > 0) err.append(buf, static_cast<std::size_t>(n));
    }
    ev.set();
    h.join();
  }
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  ::close(file);
  EXPECT_NE(err.find("fiber dump (WEFT_DUMP_SIGNAL)"), std::string::npos) << err;
  EXPECT_NE(err.find("fiber #" + std::to_string(id) + " \"signalled\": waiting on event"), std::string::npos)
      << err;
}

}  // namespace
