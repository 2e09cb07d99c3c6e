// tests/sync_channel_test.cpp - weft::channel<T> (rendezvous, bounded, unbounded) and
// weft::select: every operation and status, fibers and plain threads, 1/2/4 workers.
#include "weft_test.hpp"

#include <weft/sync.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using weft::channel_status;

namespace {

class SyncChannel : public ::testing::TestWithParam<std::tuple<unsigned, std::size_t>> {
protected:
  void SetUp() override {
    sched_ = std::make_unique<weft::scheduler>(
        weft::scheduler::options{.workers = std::get<0>(GetParam())});
  }
  void TearDown() override { sched_.reset(); }
  weft::scheduler& sched() { return *sched_; }
  std::size_t cap() const { return std::get<1>(GetParam()); }

private:
  std::unique_ptr<weft::scheduler> sched_;
};
INSTANTIATE_TEST_SUITE_P(kinds, SyncChannel,
                         ::testing::Combine(::testing::Values(1u, 2u, 4u),
                                            ::testing::Values(std::size_t{0}, std::size_t{1},
                                                              std::size_t{64},
                                                              weft::channel<int>::unbounded)),
                         [](const auto& info) {
                           std::size_t c = std::get<1>(info.param);
                           return "w" + std::to_string(std::get<0>(info.param)) + "_cap" +
                                  (c == weft::channel<int>::unbounded ? std::string("inf")
                                                                      : std::to_string(c));
                         });

TEST_P(SyncChannel, FifoBetweenTwoFibers) {
  weft::channel<int> ch(cap());
  sched().block_on([&] {
    auto prod = weft::spawn([&] {
      for (int i = 0; i < 2000; ++i) EXPECT_EQ(ch.send(i), channel_status::ok);
      ch.close();
    });
    int expect = 0;
    for (int v : ch) EXPECT_EQ(v, expect++);
    EXPECT_EQ(expect, 2000);
    prod.join();
  });
}

TEST_P(SyncChannel, ManyProducersManyConsumersExactlyOnce) {
  weft::channel<long> ch(cap());
  constexpr int producers = 6, consumers = 5, per = 1000;
  std::atomic<long> sum{0}, count{0};
  sched().block_on([&] {
    std::vector<weft::join_handle<void>> ps, cs;
    for (int c = 0; c < consumers; ++c)
      cs.push_back(weft::spawn([&] {
        while (auto v = ch.recv()) {
          sum.fetch_add(*v);
          count.fetch_add(1);
        }
      }));
    for (int p = 0; p < producers; ++p)
      ps.push_back(weft::spawn([&, p] {
        for (int i = 0; i < per; ++i) {
          EXPECT_EQ(ch.send(long(p) * per + i), channel_status::ok);
          if (i % 97 == 0) weft::this_fiber::yield();
        }
      }));
    for (auto& h : ps) h.join();
    ch.close();
    for (auto& h : cs) h.join();
  });
  const long n = long(producers) * per;
  EXPECT_EQ(count.load(), n);
  EXPECT_EQ(sum.load(), n * (n - 1) / 2);
}

TEST_P(SyncChannel, PlainThreadsAndFibers) {
  weft::channel<int> to_fibers(cap()), to_thread(cap());
  std::thread t([&] {
    for (int i = 0; i < 500; ++i) {
      ASSERT_EQ(to_fibers.send(i), channel_status::ok);
      auto back = to_thread.recv();
      ASSERT_TRUE(back);
      ASSERT_EQ(*back, i * 2);
    }
    to_fibers.close();
  });
  sched().block_on([&] {
    while (auto v = to_fibers.recv()) EXPECT_EQ(to_thread.send(*v * 2), channel_status::ok);
  });
  t.join();
}

TEST_P(SyncChannel, TryOperations) {
  weft::channel<int> ch(cap());
  EXPECT_EQ(ch.try_recv().status, channel_status::empty);
  if (cap() == 0) {
    EXPECT_EQ(ch.try_send(1), channel_status::full);  // no receiver waiting
  } else {
    EXPECT_EQ(ch.try_send(1), channel_status::ok);
    auto r = ch.try_recv();
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, 1);
  }
  if (cap() == 1) {
    EXPECT_EQ(ch.try_send(2), channel_status::ok);
    EXPECT_EQ(ch.try_send(3), channel_status::full);
    EXPECT_EQ(ch.size(), 1u);
  }
  ch.close();
  EXPECT_EQ(ch.try_send(4), channel_status::closed);
  if (cap() == 1) {
    EXPECT_EQ(*ch.try_recv(), 2);  // drained after close
  }
  EXPECT_EQ(ch.try_recv().status, channel_status::closed);
  EXPECT_FALSE(ch.close());  // second close reports it
}

TEST_P(SyncChannel, TimedOperations) {
  weft::channel<int> ch(cap());
  sched().block_on([&] {
    EXPECT_EQ(ch.recv_for(5ms).status, channel_status::timeout);
    EXPECT_EQ(ch.recv_for(-5ms).status, channel_status::timeout);
    if (cap() == 0) {
      EXPECT_EQ(ch.send_for(1, 5ms), channel_status::timeout);
      EXPECT_EQ(ch.send_for(1, -1s), channel_status::timeout);
    }
    auto h = weft::spawn([&] { return ch.recv_for(10s); });
    weft::this_fiber::sleep_for(2ms);
    EXPECT_EQ(ch.send_for(9, 10s), channel_status::ok);
    auto r = h.join();
    EXPECT_EQ(r.status, channel_status::ok);
    EXPECT_EQ(*r, 9);
  });
  // A plain thread's timed waits.
  auto t0 = weft::clock::now();
  EXPECT_EQ(ch.recv_for(10ms).status, channel_status::timeout);
  EXPECT_GE(weft::clock::now() - t0, 10ms);
}

TEST_P(SyncChannel, CloseReleasesWaitersAndKeepsUnsentValues) {
  weft::channel<std::unique_ptr<int>> ch(cap());
  sched().block_on([&] {
    std::vector<weft::join_handle<bool>> rs;
    for (int i = 0; i < 4; ++i) rs.push_back(weft::spawn([&] { return !ch.recv().has_value(); }));
    weft::this_fiber::sleep_for(2ms);
    ch.close();
    for (auto& h : rs) EXPECT_TRUE(h.join());
    auto p = std::make_unique<int>(5);
    EXPECT_EQ(ch.send(std::move(p)), channel_status::closed);
    ASSERT_TRUE(p);  // never lost: the caller still has it
    EXPECT_EQ(*p, 5);
  });
  // Senders blocked on a full channel get `closed` and keep their value.
  if (cap() != weft::channel<int>::unbounded) {
    weft::channel<std::unique_ptr<int>> full(cap());
    for (std::size_t i = 0; i < cap(); ++i)
      ASSERT_EQ(full.send(std::make_unique<int>(0)), channel_status::ok);
    sched().block_on([&] {
      auto h = weft::spawn([&] {
        auto v = std::make_unique<int>(7);
        EXPECT_EQ(full.send(std::move(v)), channel_status::closed);
        return v ? *v : -1;
      });
      weft::this_fiber::sleep_for(2ms);
      full.close();
      EXPECT_EQ(h.join(), 7);
      std::size_t drained = 0;
      while (full.recv()) ++drained;
      EXPECT_EQ(drained, cap());
    });
  }
}

TEST_P(SyncChannel, BufferedValuesDestroyedWithChannel) {
  auto probe = std::make_shared<int>(1);
  {
    weft::channel<std::shared_ptr<int>> ch(cap() == 0 ? 4 : cap());
    ASSERT_EQ(ch.send(probe), channel_status::ok);
    EXPECT_EQ(probe.use_count(), 2);
  }
  EXPECT_EQ(probe.use_count(), 1);
}

// Capacity-specific, and used from a plain thread: not parameterised.
TEST(SyncChannelUnbounded, GrowsKeepingOrder) {
  weft::channel<std::string> ch(weft::channel<std::string>::unbounded);
  for (int i = 0; i < 5000; ++i) ASSERT_EQ(ch.try_send(std::to_string(i)), channel_status::ok);
  for (int i = 0; i < 2500; ++i) ASSERT_EQ(*ch.try_recv(), std::to_string(i));
  for (int i = 5000; i < 9000; ++i) ASSERT_EQ(ch.send(std::to_string(i)), channel_status::ok);
  for (int i = 2500; i < 9000; ++i) ASSERT_EQ(*ch.recv(), std::to_string(i));
  EXPECT_EQ(ch.size(), 0u);
}

// ---------------------------------------------------------------- select

class SyncSelect : public weft_test {};
WEFT_INSTANTIATE(SyncSelect);

TEST_P(SyncSelect, DefaultCaseWhenNothingReady) {
  weft::channel<int> a(1), b;
  bool ran_default = false;
  std::size_t i = weft::select(weft::recv_case(a, [](std::optional<int>) { FAIL(); }),
                               weft::recv_case(b, [](std::optional<int>) { FAIL(); }),
                               weft::default_case([&] { ran_default = true; }));
  EXPECT_EQ(i, 2u);
  EXPECT_TRUE(ran_default);
}

TEST_P(SyncSelect, ReadyCaseRunsItsHandler) {
  weft::channel<int> a(1), b(1);
  ASSERT_EQ(b.send(5), channel_status::ok);
  int got = 0;
  std::size_t i = weft::select(weft::recv_case(a, [](std::optional<int>) { FAIL(); }),
                               weft::recv_case(b, [&](std::optional<int> v) { got = *v; }));
  EXPECT_EQ(i, 1u);
  EXPECT_EQ(got, 5);
  int out = 3;
  weft::channel_status st = weft::channel_status::timeout;
  i = weft::select(weft::send_case(a, out, [&](weft::channel_status s) { st = s; }),
                   weft::default_case());
  EXPECT_EQ(i, 0u);
  EXPECT_EQ(st, channel_status::ok);
  EXPECT_EQ(*a.recv(), 3);
}

TEST_P(SyncSelect, FairAmongReadyCases) {
  weft::channel<int> a(weft::channel<int>::unbounded), b(weft::channel<int>::unbounded);
  int hits[2] = {0, 0};
  for (int i = 0; i < 2000; ++i) {
    ASSERT_EQ(a.send(1), channel_status::ok);
    ASSERT_EQ(b.send(2), channel_status::ok);
    std::size_t k = weft::select(weft::recv_case(a, [](std::optional<int>) {}),
                                 weft::recv_case(b, [](std::optional<int>) {}));
    ASSERT_LT(k, 2u);
    ++hits[k];
    // drain the other so both are ready next round
    (void)(k == 0 ? b : a).try_recv();
  }
  EXPECT_GT(hits[0], 800);
  EXPECT_GT(hits[1], 800);
}

TEST_P(SyncSelect, BlocksUntilOneCaseHappensExactlyOnce) {
  weft::channel<int> a, b, c(1);
  sched().block_on([&] {
    auto sender = weft::spawn([&] {
      weft::this_fiber::sleep_for(2ms);
      EXPECT_EQ(b.send(42), channel_status::ok);
    });
    int got = 0;
    int out = 9;
    std::size_t i = weft::select(weft::recv_case(a, [](std::optional<int>) { FAIL(); }),
                                 weft::recv_case(b, [&](std::optional<int> v) { got = *v; }),
                                 weft::send_case(a, out, [] { FAIL(); }));
    EXPECT_EQ(i, 1u);
    EXPECT_EQ(got, 42);
    EXPECT_EQ(out, 9);  // the send case did not happen
    sender.join();
    // Nobody else may find leftover nodes of that select: a rendezvous send now times out.
    EXPECT_EQ(a.send_for(1, 1ms), channel_status::timeout);
    EXPECT_EQ(c.try_recv().status, channel_status::empty);
  });
}

TEST_P(SyncSelect, SendCaseHandsToWaitingReceiver) {
  weft::channel<std::unique_ptr<int>> ch;
  sched().block_on([&] {
    auto r = weft::spawn([&] { return **ch.recv(); });
    auto v = std::make_unique<int>(11);
    weft::channel<int> never;
    std::size_t i = weft::select(weft::recv_case(never), weft::send_case(ch, v));
    EXPECT_EQ(i, 1u);
    EXPECT_FALSE(v);  // moved only because it was sent
    EXPECT_EQ(r.join(), 11);
  });
}

TEST_P(SyncSelect, TimeoutAndClose) {
  weft::channel<int> a, b;
  sched().block_on([&] {
    auto t0 = weft::clock::now();
    EXPECT_EQ(weft::select_for(5ms, weft::recv_case(a), weft::recv_case(b)),
              weft::select_timeout);
    EXPECT_GE(weft::clock::now() - t0, 5ms);
    EXPECT_EQ(weft::select_for(-1ms, weft::recv_case(a)), weft::select_timeout);
    auto closer = weft::spawn([&] {
      weft::this_fiber::sleep_for(2ms);
      a.close();
    });
    bool saw_closed = false;
    std::size_t i = weft::select(
        weft::recv_case(a, [&](std::optional<int> v) { saw_closed = !v; }), weft::recv_case(b));
    EXPECT_EQ(i, 0u);
    EXPECT_TRUE(saw_closed);
    closer.join();
    int keep = 4;
    weft::channel_status st = channel_status::ok;
    EXPECT_EQ(weft::select(weft::send_case(a, keep, [&](weft::channel_status s) { st = s; })), 0u);
    EXPECT_EQ(st, channel_status::closed);
    EXPECT_EQ(keep, 4);
  });
}

TEST_P(SyncSelect, PlainThreadSelects) {
  weft::channel<int> a, b;
  auto h = sched().spawn([&] {
    weft::this_fiber::sleep_for(2ms);
    EXPECT_EQ(a.send(1), channel_status::ok);
  });
  int got = 0;
  EXPECT_EQ(weft::select(weft::recv_case(a, [&](std::optional<int> v) { got = *v; }),
                         weft::recv_case(b)),
            0u);
  EXPECT_EQ(got, 1);
  h.join();
}

TEST_P(SyncSelect, TwoSelectsMeet) {
  // A send-select and a recv-select on the same rendezvous channel must pair up.
  weft::channel<int> ch, other;
  sched().block_on([&] {
    for (int round = 0; round < 200; ++round) {
      auto r = weft::spawn([&] {
        int got = -1;
        weft::select(weft::recv_case(ch, [&](std::optional<int> v) { got = *v; }),
                     weft::recv_case(other, [](std::optional<int>) { FAIL(); }));
        return got;
      });
      int v = round;
      weft::select(weft::send_case(ch, v), weft::recv_case(other, [](std::optional<int>) {
                     FAIL();
                   }));
      EXPECT_EQ(r.join(), round);
    }
  });
}

TEST(SyncChannelDeathTest, DestroyWithWaitersAborts) {
  EXPECT_DEATH(
      {
        weft::scheduler s(weft::scheduler::options{.workers = 1});
        auto* ch = new weft::channel<int>;
        std::atomic<bool> started{false};
        auto h = s.spawn([ch, &started] {
          started.store(true);
          (void)ch->recv();
        });
        // As in sync_mutex_test: wait for the fiber (tens of ms under TSan and load).
        for (int i = 0; i < 10'000 && !started.load(); ++i) std::this_thread::sleep_for(1ms);
        std::this_thread::sleep_for(50ms);  // the fiber waits by now
        delete ch;
      },
      "channel destroyed while");
}

}  // namespace
