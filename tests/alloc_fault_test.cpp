// tests/alloc_fault_test.cpp - allocation failure and size overflow never wedge anything:
// a channel whose buffer cannot grow, a channel too large to allocate. Each failure is
// injected with a test seam (src/wait_list.hpp) and must surface as an exception, with no
// lock left held, nothing lost or duplicated, and everything usable afterwards.
#include "watchdog.hpp"
#include "weft_test.hpp"

#include "wait_list.hpp"

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

// ---------------------------------------------------------------- channel

using value = std::unique_ptr<int>;
using chan = weft::channel<value>;

// 16 values, the first growth's worth (16 slots): the 17th send must grow the buffer.
void fill_first_buffer(chan& ch) {
  for (int i = 0; i < 16; ++i) ASSERT_EQ(ch.send(std::make_unique<int>(i)), weft::channel_status::ok);
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

}  // namespace
