// stress/sync_stress.cpp - the sync primitives under load:
//   1. N producers x M consumers through channels of capacity 0, 1, 64 and unbounded:
//      every value received exactly once (bitmap + sum), per-producer order kept.
//   2. fiber pairs exchanging messages over rendezvous channels with random yields.
//   3. a mutex-protected plain counter incremented by thousands of fibers.
//   4. select across 8 channels while they are closed concurrently.
//   5. timed waits (event, condition_variable, channel) racing notifies: a wait reports
//      a wake only after its cause began, a timeout never before its deadline.
//   6. close racing send/recv: every value is received or returned to its sender.
// Sized by WEFT_STRESS_SCALE (smaller under sanitizers); each part under a watchdog.
#include "stress.hpp"

#include <weft/weft.hpp>

#include <atomic>
#include <cstdio>
#include <memory>
#include <random>
#include <vector>

namespace {

using namespace std::chrono_literals;
using weft::channel_status;

using stress::rng;

bool mpmc(weft::scheduler& sched, std::size_t cap) {
  const int producers = 8, consumers = 8;
  const long per = stress::scaled(20000, 200);
  std::vector<std::atomic<std::uint8_t>> seen(static_cast<std::size_t>(producers * per));
  std::atomic<long> sum{0};
  std::atomic<bool> order_ok{true};
  weft::channel<long> ch(cap);
  sched.block_on([&] {
    std::vector<weft::join_handle<void>> ps, cs;
    for (int c = 0; c < consumers; ++c)
      cs.push_back(weft::spawn([&] {
        std::vector<long> last(producers, -1);
        while (auto v = ch.recv()) {
          const long p = *v / per, i = *v % per;
          if (i <= last[p]) order_ok = false;  // per-producer order, per consumer
          last[p] = i;
          seen[*v].fetch_add(1, std::memory_order_relaxed);
          sum.fetch_add(*v, std::memory_order_relaxed);
        }
      }));
    for (int p = 0; p < producers; ++p)
      ps.push_back(weft::spawn([&, p] {
        rng r{std::uint64_t(p) * 7919 + 1};
        for (long i = 0; i < per; ++i) {
          if (ch.send(p * per + i) != channel_status::ok) std::abort();
          if (r.next() % 64 == 0) weft::this_fiber::yield();
        }
      }));
    for (auto& h : ps) h.join();
    ch.close();
    for (auto& h : cs) h.join();
  });
  const long n = producers * per;
  bool ok = order_ok && sum == n * (n - 1) / 2;
  for (auto& s : seen) ok = ok && s.load() == 1;
  std::printf("  mpmc cap=%zd: %ld values %s\n", cap == weft::channel<long>::unbounded ? -1 : (long)cap, n, ok ? "ok" : "FAILED");
  return ok;
}

bool s2_pairs(weft::scheduler& sched) {
  const long pairs = stress::scaled(1000, 20), msgs = stress::scaled(1000, 50);
  std::atomic<long> delivered{0};
  std::atomic<bool> ok{true};
  sched.block_on([&] {
    std::vector<weft::join_handle<void>> hs;
    for (long p = 0; p < pairs; ++p) {
      auto ch = std::make_shared<weft::channel<long>>(0);
      hs.push_back(weft::spawn([ch, p, msgs] {
        rng r{std::uint64_t(p) + 11};
        for (long i = 0; i < msgs; ++i) {
          (void)ch->send(std::move(i));
          if (r.next() % 8 == 0) weft::this_fiber::yield();
        }
        ch->close();
      }));
      hs.push_back(weft::spawn([ch, p, &delivered, &ok] {
        rng r{std::uint64_t(p) + 99};
        long expect = 0;
        for (long v : *ch) {
          if (v != expect++) ok = false;
          delivered.fetch_add(1, std::memory_order_relaxed);
          if (r.next() % 8 == 0) weft::this_fiber::yield();
        }
      }));
    }
    for (auto& h : hs) h.join();
  });
  const bool good = ok && delivered == pairs * msgs;
  std::printf("  S2 %ld pairs x %ld: %s\n", pairs, msgs, good ? "ok" : "FAILED");
  return good;
}

bool mutex_counter(weft::scheduler& sched) {
  const int fibers = int(stress::scaled(5000, 200));
  const int iters = 200;
  weft::mutex m;
  long counter = 0;  // plain: TSan checks the mutex's happens-before
  sched.block_on([&] {
    std::vector<weft::join_handle<void>> hs;
    for (int f = 0; f < fibers; ++f)
      hs.push_back(weft::spawn([&, f] {
        for (int i = 0; i < iters; ++i) {
          std::lock_guard g(m);
          ++counter;
          if ((i + f) % 37 == 0) weft::this_fiber::yield();
        }
      }));
    for (auto& h : hs) h.join();
  });
  const bool ok = counter == long(fibers) * iters;
  std::printf("  mutex %d fibers x %d: %s\n", fibers, iters, ok ? "ok" : "FAILED");
  return ok;
}

bool select_closes(weft::scheduler& sched) {
  const int rounds = int(stress::scaled(300, 20));
  std::atomic<bool> ok{true};
  sched.block_on([&] {
    for (int round = 0; round < rounds; ++round) {
      std::vector<std::unique_ptr<weft::channel<int>>> chs;
      for (int i = 0; i < 8; ++i) chs.push_back(std::make_unique<weft::channel<int>>(i % 2));
      std::atomic<long> sent{0}, received{0};
      std::vector<weft::join_handle<void>> hs;
      for (int i = 0; i < 8; ++i)
        hs.push_back(weft::spawn([&, i] {
          for (int j = 0; j < 20; ++j) {
            if (chs[i]->send(1) != channel_status::ok) return;  // closed under us
            sent.fetch_add(1);
          }
          chs[i]->close();
        }));
      auto closer = weft::spawn([&] {
        weft::this_fiber::yield();
        for (int i = 0; i < 8; i += 3) chs[i]->close();
      });
      auto consumer = weft::spawn([&] {
        int closed_seen = 0;
        std::vector<bool> done(8, false);
        weft::channel<int> never;
        while (closed_seen < 8) {
          auto c = [&](int i) -> weft::channel<int>& { return done[i] ? never : *chs[i]; };
          std::optional<int> got;
          bool fired = false;
          auto on = [&](std::optional<int> v) {
            got = v;
            fired = true;
          };
          std::size_t i = weft::select_for(
              5s, weft::recv_case(c(0), on), weft::recv_case(c(1), on), weft::recv_case(c(2), on),
              weft::recv_case(c(3), on), weft::recv_case(c(4), on), weft::recv_case(c(5), on),
              weft::recv_case(c(6), on), weft::recv_case(c(7), on));
          if (i == weft::select_timeout || !fired) {
            ok = false;
            return;
          }
          if (got) received.fetch_add(1);
          else if (!done[i]) {
            done[i] = true;
            ++closed_seen;
          }
        }
        // Drain what was buffered (capacity 1 channels) after their close was seen: none
        // can be left, since a closed recv case fires only on an empty channel.
      });
      for (auto& h : hs) h.join();
      closer.join();
      consumer.join();
      if (sent.load() != received.load()) ok = false;
    }
  });
  std::printf("  select over 8 channels with racing closes, %d rounds: %s\n", rounds,
              ok ? "ok" : "FAILED");
  return ok;
}

// Part 5. Every wait returns once (the joins); what is checked is its outcome: a wait
// reports a wake only if the wake had begun (set_begun / notify_begun are stored before
// set() / notify_all(), which happen-before the waits they end), a timeout never comes
// before its deadline, and the channel's receivers got exactly the values handed to
// them. Deadlines of 0-190 µs against a set 50 µs in: both outcomes are common.
bool timed_vs_notify(weft::scheduler& sched) {
  const int rounds = int(stress::scaled(200, 10));
  std::atomic<bool> ok{true};
  long woken = 0, timed_out = 0, bad_rounds = 0;
  sched.block_on([&] {
    for (int round = 0; round < rounds; ++round) {
      weft::event ev;
      weft::mutex m;
      weft::condition_variable cv;
      weft::channel<int> ch;
      std::atomic<bool> set_begun{false}, notify_begun{false};
      std::atomic<int> ended{0}, wakes{0}, chan_ok{0}, bad{0};
      // A wake must follow its cause; a timeout must not precede its deadline.
      auto check = [&](bool got, bool cause_begun, weft::clock::time_point deadline) {
        if (got ? !cause_begun : weft::clock::now() < deadline) bad.fetch_add(1);
        if (got) wakes.fetch_add(1);
        ended.fetch_add(1);
      };
      std::vector<weft::join_handle<void>> hs;
      for (int i = 0; i < 30; ++i) {
        auto d = std::chrono::microseconds(10 * (i % 20));
        hs.push_back(weft::spawn([&, d] {
          const auto deadline = weft::deadline_after(d);
          const bool got = ev.wait_until(deadline);
          check(got, set_begun.load(), deadline);
        }));
        hs.push_back(weft::spawn([&, d] {
          std::unique_lock lk(m);
          const auto deadline = weft::deadline_after(d);
          const bool got = cv.wait_until(lk, deadline) == std::cv_status::no_timeout;
          check(got, notify_begun.load(), deadline);
        }));
        hs.push_back(weft::spawn([&, d] {
          const auto deadline = weft::deadline_after(d);
          const auto r = ch.recv_until(deadline);
          if (r) chan_ok.fetch_add(1);
          check(bool(r), true, deadline);
        }));
      }
      weft::this_fiber::sleep_for(std::chrono::microseconds(50));
      set_begun = true;
      ev.set();
      notify_begun = true;
      cv.notify_all();
      int handed = 0;
      for (int i = 0; i < 30; ++i)
        if (ch.try_send(i) == channel_status::ok) ++handed;  // only to live receivers
      for (auto& h : hs) h.join();
      if (ended.load() != 90 || chan_ok.load() != handed || bad.load() != 0) {
        if (bad_rounds++ < 3)
          std::printf("    round %d: ended=%d chan_ok=%d handed=%d bad=%d\n", round,
                      ended.load(), chan_ok.load(), handed, bad.load());
        ok = false;
      }
      woken += wakes.load();
      timed_out += 90 - wakes.load();
    }
  });
  std::printf("  timed waits racing notifies, %d rounds (%ld woken, %ld timed out): %s\n", rounds,
              woken, timed_out, ok ? "ok" : "FAILED");
  return ok;
}

bool close_vs_ops(weft::scheduler& sched) {
  const int rounds = int(stress::scaled(300, 20));
  std::atomic<bool> ok{true};
  sched.block_on([&] {
    for (int round = 0; round < rounds; ++round) {
      weft::channel<std::unique_ptr<long>> ch(round % 3 == 0 ? 0 : 4);
      std::atomic<long> sent{0}, kept{0}, received{0};
      std::vector<weft::join_handle<void>> hs;
      for (int p = 0; p < 4; ++p)
        hs.push_back(weft::spawn([&] {
          for (int i = 0; i < 50; ++i) {
            auto v = std::make_unique<long>(1);
            if (ch.send(std::move(v)) == channel_status::ok) {
              sent.fetch_add(1);
            } else {
              if (!v) ok = false;  // a refused value must stay with the sender
              kept.fetch_add(1);
            }
          }
        }));
      for (int c = 0; c < 3; ++c)
        hs.push_back(weft::spawn([&] {
          while (auto v = ch.recv()) received.fetch_add(**v);
        }));
      auto closer = weft::spawn([&, round] {
        for (int i = 0; i < round % 7; ++i) weft::this_fiber::yield();
        ch.close();
      });
      closer.join();
      for (auto& h : hs) h.join();
      if (sent.load() != received.load() || sent + kept != 200) ok = false;
    }
  });
  std::printf("  close racing send/recv, %d rounds: %s\n", rounds, ok ? "ok" : "FAILED");
  return ok;
}

}  // namespace

int main() {
  int passed = 0, failed = 0;
  for (unsigned workers : {1u, 2u, 4u}) {
    std::printf("workers=%u\n", workers);
    weft::scheduler sched(weft::scheduler::options{.workers = workers});
    stress::watchdog dog(std::chrono::seconds(120), [&] { return stress::stats_line(sched); });
    for (std::size_t cap : {std::size_t{0}, std::size_t{1}, std::size_t{64},
                            weft::channel<long>::unbounded})
      (mpmc(sched, cap) ? passed : failed)++;
    (s2_pairs(sched) ? passed : failed)++;
    (mutex_counter(sched) ? passed : failed)++;
    (select_closes(sched) ? passed : failed)++;
    (timed_vs_notify(sched) ? passed : failed)++;
    (close_vs_ops(sched) ? passed : failed)++;
  }
  return stress::finish(passed, failed);
}
