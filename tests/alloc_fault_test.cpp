// tests/alloc_fault_test.cpp - allocation failure and size overflow never wedge anything:
// a channel whose buffer cannot grow, a channel too large to allocate, a run_blocking
// whose submission cannot allocate, a blocking_pool that cannot start its threads. Each
// failure is injected with a test seam (src/sync/wait_list.hpp, src/blocking_pool.hpp) and must
// surface as an exception, with no lock left held, nothing queued that points at a dead
// frame, nothing lost or duplicated, and everything usable afterwards.
#include "watchdog.hpp"
#include "weft_test.hpp"

#include "blocking_pool.hpp"
#include "runtime.hpp"
#include "sync/wait_list.hpp"

#include <weft/blocking.hpp>
#include <weft/sync.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <new>
#include <stdexcept>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;

// Turns a seam off again however the test ends.
struct chan_failure_after {
  explicit chan_failure_after(long n) { weft::detail::chan_alloc_inject_failure_after(n); }
  ~chan_failure_after() { weft::detail::chan_alloc_inject_failure_after(-1); }
};
struct blocking_failure_after {
  explicit blocking_failure_after(long n) { weft::detail::blocking_alloc_inject_failure_after(n); }
  ~blocking_failure_after() { weft::detail::blocking_alloc_inject_failure_after(-1); }
};

// ---------------------------------------------------------------- channel

using value = std::unique_ptr<int>;
using chan = weft::channel<value>;

// 16 values, the first growth's worth (16 slots): the 17th send must grow the buffer.
void fill_first_buffer(chan& ch) {
  for (int i = 0; i < 16; ++i)
    ASSERT_EQ(ch.send(std::make_unique<int>(i)), weft::channel_status::ok);
}
// Receives everything: exactly 0, 1, ..., n - 1, in order, then nothing.
void expect_exactly(chan& ch, int n) {
  for (int i = 0; i < n; ++i) {
    auto r = ch.try_recv();
    ASSERT_EQ(r.status, weft::channel_status::ok) << "value " << i << " is missing";
    ASSERT_NE(*r, nullptr);
    EXPECT_EQ(**r, i);
  }
  EXPECT_EQ(ch.try_recv().status, weft::channel_status::empty) << "a value was duplicated";
}

class AllocFault : public weft_test {};
WEFT_INSTANTIATE(AllocFault);

// Each send flavour, from a fiber and from a plain thread: the growth fails, the send
// throws bad_alloc and leaves the value with the caller, the channel's lock is free (the
// next operations do not spin), and the channel works on once memory is back.
TEST_P(AllocFault, UnboundedChannelWhoseGrowthFailsStaysUsable) {
  watchdog wd("unbounded channel growth failure");
  enum class how { send, try_send, select };
  auto one = [&](how h, const char* where) {
    wd.kick(where);
    chan ch(chan::unbounded);
    fill_first_buffer(ch);
    auto v = std::make_unique<int>(16);
    {
      chan_failure_after fail(0);
      switch (h) {
        case how::send:
          EXPECT_THROW((void)ch.send(std::move(v)), std::bad_alloc) << where;
          break;
        case how::try_send:
          EXPECT_THROW((void)ch.try_send(std::move(v)), std::bad_alloc) << where;
          break;
        case how::select:
          EXPECT_THROW((void)weft::select(weft::send_case(ch, v)), std::bad_alloc) << where;
          break;
      }
    }
    ASSERT_NE(v, nullptr) << where << ": the failed send consumed the value";
    EXPECT_EQ(*v, 16);
    // Would spin forever if the failed send had left the lock held (the watchdog ends it).
    EXPECT_EQ(ch.size(), 16u) << where;
    EXPECT_FALSE(ch.is_closed());
    EXPECT_EQ(ch.send(std::move(v)), weft::channel_status::ok) << where;
    expect_exactly(ch, 17);
    EXPECT_TRUE(ch.close());
  };
  sched().block_on([&] {
    one(how::send, "send from a fiber");
    one(how::try_send, "try_send from a fiber");
    one(how::select, "select from a fiber");
  });
  std::thread t([&] {
    one(how::send, "send from a plain thread");
    one(how::select, "select from a plain thread");
  });
  t.join();
}

TEST_P(AllocFault, AFailedGrowthDoesNotStrandAWaitingReceiver) {
  // A receiver waits on an empty unbounded channel; a send to it needs no buffer, so it
  // succeeds even while allocation fails; the next sends buffer (the first needs memory).
  watchdog wd("receiver and failed growth");
  chan ch(chan::unbounded);
  std::atomic<bool> waiting{false};
  auto r = sched().spawn([&] {
    waiting.store(true);
    auto v = ch.recv();
    return v && *v ? **v : -1;
  });
  while (!waiting.load()) std::this_thread::yield();
  std::this_thread::sleep_for(2ms);  // the receiver has usually queued by now
  {
    chan_failure_after fail(0);
    // Either handed to the waiting receiver (no allocation) or, if it has not queued yet,
    // buffered, which needs the first buffer: that send throws and is retried below.
    auto v = std::make_unique<int>(5);
    try {
      EXPECT_EQ(ch.send(std::move(v)), weft::channel_status::ok);
    } catch (const std::bad_alloc&) {
      ASSERT_NE(v, nullptr);
      weft::detail::chan_alloc_inject_failure_after(-1);
      EXPECT_EQ(ch.send(std::move(v)), weft::channel_status::ok);
    }
  }
  EXPECT_EQ(r.join(), 5);
  EXPECT_EQ(ch.size(), 0u);
}

TEST(AllocFaultChannel, BufferAllocationFailureThrowsFromTheConstructor) {
  chan_failure_after fail(0);
  EXPECT_THROW(weft::channel<int> ch(64), std::bad_alloc);
}

TEST(AllocFaultChannel, CapacityWhoseByteSizeOverflowsThrowsLengthError) {
  // capacity * sizeof(T) wraps around: (2^61 + 1) * 8 = 2^64 + 8 would allocate 8 bytes.
  constexpr std::size_t wraps_to_8 = (std::size_t{1} << 61) + 1;
  EXPECT_THROW(weft::channel<std::uint64_t> ch(wraps_to_8), std::length_error);
  using kib = std::array<char, 1024>;
  EXPECT_THROW(weft::channel<kib> ch(SIZE_MAX / 512), std::length_error);
  // No wrap, but more than any allocation can be (above PTRDIFF_MAX bytes).
  EXPECT_THROW(weft::channel<char> ch(SIZE_MAX - 1), std::length_error);
  // The message says what was asked.
  try {
    weft::channel<std::uint64_t> ch(wraps_to_8);
  } catch (const std::length_error& e) {
    EXPECT_NE(std::string(e.what()).find("weft::channel"), std::string::npos) << e.what();
  }
  weft::channel<std::uint64_t> fine(1024);  // and an ordinary one still works
  EXPECT_EQ(fine.send(7), weft::channel_status::ok);
  EXPECT_EQ(fine.recv().value_or(0), 7u);
}

// ---------------------------------------------------------------- run_blocking

// The calling fiber's scheduler's pool (run_blocking's), for its queue length.
weft::detail::blocking_pool_impl& default_pool(weft::scheduler& s) {
  return weft::detail::default_blocking_pool(s.runtime_());
}

TEST_P(AllocFault, RunBlockingWhoseSubmissionFailsThrowsAndLeavesNothingQueued) {
  watchdog wd("run_blocking submission failure");
  sched().block_on([&] {
    bool ran = false;
    // The queue slot fails: nothing was queued.
    {
      blocking_failure_after fail(0);
      EXPECT_THROW(weft::run_blocking([&] { ran = true; }), std::bad_alloc);
    }
    EXPECT_EQ(default_pool(sched()).queued(), 0u);
    // The slot succeeds, the pool's first thread cannot be started: with no thread to
    // run it, the job must not stay queued (it lives in this fiber's frame).
    {
      blocking_failure_after fail(1);
      EXPECT_THROW(weft::run_blocking([&] { ran = true; }), std::bad_alloc);
    }
    ASSERT_EQ(default_pool(sched()).queued(), 0u) << "a failed submission left its job queued";
    EXPECT_FALSE(ran);
    // The pool works afterwards, and runs only the new job.
    EXPECT_EQ(weft::run_blocking([] { return 42; }), 42);
    EXPECT_FALSE(ran);
  });
  wd.kick("scheduler destruction");  // must not wait for a phantom job
}

TEST_P(AllocFault, RunBlockingWhoseThreadStartFailsQueuesBehindARunningThread) {
  // The pool has a thread, busy: a submission that cannot start a second thread still
  // queues its job for the first one and does not throw (the job runs, the call returns).
  watchdog wd("thread start failure with a live thread");
  weft::event release_first;
  sched().block_on([&] {
    std::atomic<bool> first_running{false}, second_threw{false};
    auto first = weft::spawn([&] {
      return weft::run_blocking([&] {
        first_running.store(true);
        release_first.wait();
        return 1;
      });
    });
    while (!first_running.load()) weft::this_fiber::sleep_for(100us);
    blocking_failure_after fail(1);  // the queue slot succeeds, the thread start fails
    auto second = weft::spawn([&] {
      try {
        return weft::run_blocking([] { return 2; });
      } catch (const std::bad_alloc&) {
        second_threw.store(true);
        return -1;
      }
    });
    while (default_pool(sched()).queued() == 0 && !second_threw.load())
      weft::this_fiber::sleep_for(100us);
    weft::detail::blocking_alloc_inject_failure_after(-1);
    EXPECT_FALSE(second_threw.load()) << "the submission threw although its job was queued";
    release_first.set();
    EXPECT_EQ(first.join(), 1);
    EXPECT_EQ(second.join(), 2);
    EXPECT_EQ(default_pool(sched()).queued(), 0u);
  });
}

// ---------------------------------------------------------------- blocking_pool

TEST(AllocFaultBlockingPool, AConstructorThatCannotStartItsThreadsThrowsCleanly) {
  // min_threads = 3 and the second thread cannot start: the constructor throws, after
  // stopping and joining the thread it did start (no std::terminate from a joinable
  // std::thread, no thread left running on a destroyed pool).
  for (long fail_at : {0L, 1L, 2L}) {
    {
      blocking_failure_after fail(fail_at);
      EXPECT_THROW(weft::blocking_pool pool({.min_threads = 3, .max_threads = 4}), std::bad_alloc)
          << "failing thread start " << fail_at;
    }
    weft::blocking_pool pool({.min_threads = 3, .max_threads = 4});  // and then it works
    EXPECT_EQ(pool.threads(), 3u);
  }
}

}  // namespace
