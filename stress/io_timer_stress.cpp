// I/O and timer races: the poller hand-off (reactor.hpp steps 1-5) and the timer shards
// (timers.hpp steps 1-7) under park/unpark churn.
//
//   A. echo: P socketpairs, each served by an echo fiber; half the clients are plain
//      threads (their bytes arrive while workers sleep: the reactor's watch path), half
//      are fibers (workers poll the fds themselves). Random 0-200 µs gaps keep workers
//      parking and waking. Every byte must come back intact; a wait that needs 5 s is a
//      lost wakeup.
//   C. churn (closes and fd reuse): fibers keep opening socketpairs, echo a few
//      tagged messages over them and close them, so fd numbers are reused constantly
//      while other fibers wait on live fds. Every message must come back with its own
//      connection's tag (no data or wake-up reaches the wrong fiber), and a reader of a
//      closed connection sees EOF, never a hang.
//   D. many connections at full size (see s6_round): 500 pairs, 200 client fibers x 1000
//      messages, random close and reopen.
//   E. timers vs cancel: N timed waits (deadlines 0-200 ms, 1 in 50 up to 600 ms: all
//      wheel levels up to 2, re-filing included), half of them ended early by a set()
//      from setter fibers and plain threads at random times (the cancel path: holes and
//      compaction in crowded slots). Each wait ends exactly once; one never set times
//      out, never early; one set before its deadline is notified (a timer never fires
//      early, so a set that completed first must win).
//   F. shared fds (io_desc.hpp: several waiters per direction): on each socketpair one
//      or six reader fibers read 1-3 bytes at a time from one end while writer fibers
//      and plain threads write bursts of 1-8 bytes to the other, mostly waiting until the
//      readers drained the pair before the next burst (so the burst's edge races with
//      the readers' EAGAIN and re-registration). On half the pairs the readers wait
//      without deadlines, so a byte left unread while they sleep (a lost or unshared
//      edge) stays stranded: every drain must finish within 5 s, also the last one,
//      before the write end closes (whose EOF edge would wake everyone). On the other
//      half some reads have 0-300 µs deadlines (timeouts, late wakes and
//      re-registration churn): no timeout ends early, no byte is lost or read twice
//      (count and sum).
//   B. timers: fibers sleep for random 0-300 µs, wait on events with random timeouts
//      while other fibers set them, and now and then hog their worker for ~1 ms without
//      yielding (a shard only peers or the watchdog can fire). No sleep ends early, every
//      timed wait ends (notified or timed out), and the counts add up.
// Bounded: sizes scale with WEFT_STRESS_SCALE, a watchdog turns a hang into a failure.
#include "stress.hpp"

#include <weft/io.hpp>

#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <vector>

namespace {

namespace io = weft::io;
using clk = std::chrono::steady_clock;

bool echo_round(unsigned workers, long rounds_per_client) {
  constexpr int pairs = 16;
  weft::scheduler sched({.workers = workers});
  std::atomic<long> echoed{0}, bad{0};
  stress::watchdog dog(std::chrono::seconds(240), [&] {
    return "echo workers=" + std::to_string(workers) + " echoed=" + std::to_string(echoed.load()) +
           " " + stress::stats_line(sched);
  });
  std::vector<std::array<int, 2>> fds(pairs);
  for (auto& p : fds)
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, p.data()) != 0)
      return false;
  // Echo servers: read a byte, write it back, until EOF.
  std::vector<weft::join_handle<void>> servers;
  for (auto& p : fds)
    servers.push_back(sched.spawn([&, fd = p[1]] {
      for (;;) {
        unsigned char c;
        auto r = io::read(fd, &c, 1, weft::deadline_after(std::chrono::seconds(30)));
        if (!r || *r == 0) {
          if (!r) bad.fetch_add(1);
          return;
        }
        if (!io::write_all(fd, &c, 1)) bad.fetch_add(1);
      }
    }));
  auto client = [&](int fd, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> gap(0, 200);
    const bool in_fiber = weft::this_fiber::id() != 0;
    for (long i = 0; i < rounds_per_client; ++i) {
      const unsigned char out = static_cast<unsigned char>(rng());
      unsigned char in = 0;
      if (!io::write_all(fd, &out, 1)) bad.fetch_add(1);
      auto r = io::read(fd, &in, 1, weft::deadline_after(std::chrono::seconds(5)));
      if (!r || *r != 1 || in != out) bad.fetch_add(1);
      echoed.fetch_add(1, std::memory_order_relaxed);
      const auto pause = std::chrono::microseconds(gap(rng));
      if (in_fiber)
        weft::this_fiber::sleep_for(pause);
      else
        std::this_thread::sleep_for(pause);
    }
  };
  std::vector<std::thread> threads;
  std::vector<weft::join_handle<void>> fibers;
  for (int i = 0; i < pairs; ++i) {
    if (i % 2 == 0)
      threads.emplace_back(client, fds[i][0], 100u + i);
    else
      fibers.push_back(sched.spawn([&, i] { client(fds[i][0], 100u + i); }));
  }
  for (auto& t : threads) t.join();
  for (auto& f : fibers) f.join();
  for (auto& p : fds) sched.block_on([&] { (void)io::close(p[0]); });  // servers see EOF
  for (auto& s : servers) s.join();
  sched.block_on([&] {
    for (auto& p : fds) (void)io::close(p[1]);
  });
  const long want = pairs * rounds_per_client;
  std::printf("io_timer_stress: echo workers=%u echoed=%ld/%ld bad=%ld %s\n", workers,
              echoed.load(), want, bad.load(), stress::stats_line(sched).c_str());
  return bad.load() == 0 && echoed.load() == want;
}

bool churn_round(unsigned workers, long connections) {
  weft::scheduler sched({.workers = workers});
  std::atomic<long> done{0}, bad{0}, messages{0};
  stress::watchdog dog(std::chrono::seconds(240), [&] {
    return "churn workers=" + std::to_string(workers) + " done=" + std::to_string(done.load()) +
           " " + stress::stats_line(sched);
  });
  constexpr int lanes = 32;  // connections open at once
  sched.block_on([&] {
    std::vector<weft::join_handle<void>> hs;
    for (int lane = 0; lane < lanes; ++lane)
      hs.push_back(weft::spawn([&, lane] {
        std::mt19937 rng(static_cast<unsigned>(lane) * 7919u);
        for (long c = lane; c < connections; c += lanes) {
          int sv[2];
          if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
            bad.fetch_add(1);
            return;
          }
          const std::uint32_t tag = static_cast<std::uint32_t>(c);
          const int msgs = 1 + static_cast<int>(rng() % 8);
          auto echo = weft::spawn([&, fd = sv[1]] {  // echoes 4-byte tags until EOF
            for (;;) {
              std::uint32_t v;
              auto r = io::read(fd, &v, sizeof v, weft::deadline_after(std::chrono::seconds(30)));
              if (!r) {
                bad.fetch_add(1);
                return;
              }
              if (*r == 0) return;  // the client closed: EOF
              if (*r != sizeof v || !io::write_all(fd, &v, sizeof v)) bad.fetch_add(1);
            }
          });
          for (int m = 0; m < msgs; ++m) {
            std::uint32_t in = 0;
            if (!io::write_all(sv[0], &tag, sizeof tag)) bad.fetch_add(1);
            auto r = io::read(sv[0], &in, sizeof in, weft::deadline_after(std::chrono::seconds(30)));
            if (!r || *r != sizeof in || in != tag) bad.fetch_add(1);
            messages.fetch_add(1, std::memory_order_relaxed);
            if (rng() % 4 == 0) weft::this_fiber::yield();
          }
          if (!io::close(sv[0])) bad.fetch_add(1);  // the echo fiber reads EOF
          echo.join();
          if (!io::close(sv[1])) bad.fetch_add(1);  // its number is reused next round
          done.fetch_add(1);
        }
      }));
    for (auto& h : hs) h.join();
  });
  std::printf("io_timer_stress: churn workers=%u connections=%ld done=%ld messages=%ld bad=%ld\n",
              workers, connections, done.load(), messages.load(), bad.load());
  return bad.load() == 0 && done.load() == connections;
}

bool shared_fd_round(unsigned workers, long bytes_per_writer) {
  constexpr int pairs = 8, writers = 2;
  weft::scheduler sched({.workers = workers});
  struct pair_state {
    int fd[2] = {-1, -1};
    bool timed = false;
    std::atomic<long> written{0}, read{0}, sum_written{0}, sum_read{0};
  };
  std::vector<std::unique_ptr<pair_state>> ps;
  std::atomic<long> bad{0}, early{0}, timeouts{0}, stranded{0};
  stress::watchdog dog(std::chrono::seconds(240), [&] {
    std::string st;
    for (auto& p : ps)
      st += " " + std::to_string(p->read.load()) + "/" + std::to_string(p->written.load());
    return "shared workers=" + std::to_string(workers) +
           " stranded=" + std::to_string(stranded.load()) + " read/written:" + st + " " +
           stress::stats_line(sched);
  });
  for (int i = 0; i < pairs; ++i) {
    auto p = std::make_unique<pair_state>();
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, p->fd) != 0) return false;
    p->timed = i % 2 == 1;
    ps.push_back(std::move(p));
  }
  auto write_side = [&](pair_state& p, unsigned seed, bool in_fiber) {
    std::mt19937 rng(seed);
    long left = bytes_per_writer;
    while (left > 0) {
      unsigned char buf[8];
      const long n = std::min<long>(left, 1 + static_cast<long>(rng() % 8));
      long sum = 0;
      for (long k = 0; k < n; ++k) sum += buf[k] = static_cast<unsigned char>(rng());
      // Counted before the write: a reader may see the bytes before write_all returns.
      p.written.fetch_add(n);
      p.sum_written.fetch_add(sum);
      if (!io::write_all(p.fd[0], buf, static_cast<std::size_t>(n))) bad.fetch_add(1);
      left -= n;
      // Mostly wait until the readers drained the pair, so the next burst's edge is the
      // only thing that can wake them, and it races with their EAGAIN and re-register
      // (io_desc.hpp step 3). A drain that takes 5 s means an edge was lost.
      if (rng() % 8 != 0) {
        const auto give_up = clk::now() + std::chrono::seconds(5);
        while (p.read.load() < p.written.load()) {
          if (clk::now() > give_up) {
            stranded.fetch_add(1);
            break;
          }
          if (in_fiber)
            weft::this_fiber::yield();
          else
            std::this_thread::sleep_for(std::chrono::microseconds(20));
        }
      }
    }
  };
  std::vector<std::thread> threads;
  std::atomic<int> threads_done{0};
  for (int i = 0; i < pairs; i += 2)  // a plain-thread writer on every other pair
    threads.emplace_back([&, i] {
      write_side(*ps[i], 500u + i, false);
      threads_done.fetch_add(1);
    });
  sched.block_on([&] {
    std::vector<weft::join_handle<void>> rs, ws;
    for (int i = 0; i < pairs; ++i) {
      pair_state& p = *ps[i];
      const int readers = i / 2 % 2 ? 6 : 1;  // one reader: the slot only
      for (int r = 0; r < readers; ++r)
        rs.push_back(weft::spawn([&, r, i] {
          std::mt19937 rng(static_cast<unsigned>(i * 131 + r));
          for (;;) {
            unsigned char buf[3];
            const bool timed = p.timed && rng() % 2 == 0;
            const auto deadline =
                timed ? clk::now() + std::chrono::microseconds(rng() % 300) : io::forever;
            auto n = io::read(p.fd[1], buf, 1 + rng() % 3, deadline);
            if (!n) {
              if (timed && n.error() == std::make_error_code(std::errc::timed_out)) {
                timeouts.fetch_add(1, std::memory_order_relaxed);
                if (clk::now() < deadline) early.fetch_add(1);
                continue;
              }
              bad.fetch_add(1);
              return;
            }
            if (*n == 0) return;  // the write end closed
            long sum = 0;
            for (std::size_t k = 0; k < *n; ++k) sum += buf[k];
            p.sum_read.fetch_add(sum);
            p.read.fetch_add(static_cast<long>(*n));
          }
        }));
      const int fiber_writers = i % 2 == 0 ? writers - 1 : writers;
      for (int w = 0; w < fiber_writers; ++w)
        ws.push_back(weft::spawn(write_side, std::ref(p), 900u + i * 7 + w, true));
    }
    for (auto& w : ws) w.join();
    while (threads_done.load() < static_cast<int>(threads.size()))  // no join: a worker
      weft::this_fiber::sleep_for(std::chrono::milliseconds(1));
    // Every byte is read before the write ends close (their EOF edge would wake all).
    for (auto& p : ps) {
      const auto give_up = clk::now() + std::chrono::seconds(5);
      while (p->read.load() < p->written.load() && clk::now() < give_up)
        weft::this_fiber::sleep_for(std::chrono::milliseconds(1));
      if (p->read.load() != p->written.load()) stranded.fetch_add(1);
      (void)io::close(p->fd[0]);
    }
    for (auto& r : rs) r.join();
    for (auto& p : ps) (void)io::close(p->fd[1]);
  });
  for (auto& t : threads) t.join();
  long want = 0, got = 0, sums_bad = 0;
  for (auto& p : ps) {
    want += p->written.load();
    got += p->read.load();
    if (p->sum_read.load() != p->sum_written.load()) ++sums_bad;
  }
  std::printf("io_timer_stress: shared workers=%u bytes=%ld/%ld timeouts=%ld early=%ld "
              "stranded=%ld bad_sums=%ld bad=%ld %s\n",
              workers, got, want, timeouts.load(), early.load(), stranded.load(), sums_bad,
              bad.load(), stress::stats_line(sched).c_str());
  return bad.load() == 0 && early.load() == 0 && stranded.load() == 0 && sums_bad == 0 &&
         got == want && want == pairs * writers * bytes_per_writer;
}

bool timer_round(unsigned workers, long fibers) {
  weft::scheduler sched({.workers = workers});
  std::atomic<long> early{0}, notified{0}, timed_out{0}, done{0};
  stress::watchdog dog(std::chrono::seconds(240), [&] {
    return "timers workers=" + std::to_string(workers) + " done=" + std::to_string(done.load()) +
           " " + stress::stats_line(sched);
  });
  constexpr int events = 32;
  std::vector<std::unique_ptr<weft::event>> evs;
  for (int i = 0; i < events; ++i)
    evs.push_back(std::make_unique<weft::event>(weft::event::reset_mode::automatic));
  sched.block_on([&] {
    std::vector<weft::join_handle<void>> hs;
    for (long f = 0; f < fibers; ++f)
      hs.push_back(weft::spawn([&, f] {
        std::mt19937 rng(static_cast<unsigned>(f));
        for (int k = 0; k < 8; ++k) {
          const int what = static_cast<int>(rng() % 8);
          const auto d = std::chrono::microseconds(rng() % 300);
          if (what < 3) {
            const auto deadline = clk::now() + d;
            weft::this_fiber::sleep_until(deadline);
            if (clk::now() < deadline) early.fetch_add(1);
          } else if (what < 6) {
            const auto deadline = clk::now() + d;
            if (evs[rng() % events]->wait_until(deadline)) {
              notified.fetch_add(1);
            } else {
              timed_out.fetch_add(1);
              if (clk::now() < deadline) early.fetch_add(1);
            }
          } else if (what < 7) {
            evs[rng() % events]->set();
          } else if (rng() % 16 == 0) {
            const auto until = clk::now() + std::chrono::milliseconds(1);  // a hog
            while (clk::now() < until) {
            }
          }
        }
        done.fetch_add(1);
      }));
    for (auto& h : hs) h.join();
  });
  std::printf("io_timer_stress: timers workers=%u fibers=%ld done=%ld notified=%ld timed_out=%ld "
              "early=%ld timers_fired=%llu\n",
              workers, fibers, done.load(), notified.load(), timed_out.load(), early.load(),
              static_cast<unsigned long long>(sched.stats().total().timers_fired));
  return early.load() == 0 && done.load() == fibers;
}

bool cancel_round(unsigned workers, long n) {
  weft::scheduler sched({.workers = workers});
  struct waiter {
    weft::event ev{weft::event::reset_mode::manual};
    std::atomic<std::int64_t> deadline{0}, set_at{-1}, ended_at{0};
    std::atomic<int> outcome{0};  // 1 notified, 2 timed out
  };
  std::vector<std::unique_ptr<waiter>> ws;
  for (long i = 0; i < n; ++i) ws.push_back(std::make_unique<waiter>());
  std::atomic<long> done{0};
  stress::watchdog dog(std::chrono::seconds(240), [&] {
    return "cancel workers=" + std::to_string(workers) + " done=" + std::to_string(done.load()) +
           " " + stress::stats_line(sched);
  });
  auto ns_now = [] { return clk::now().time_since_epoch().count(); };
  // Setters: half the indices, shuffled, split over fibers and two plain threads.
  std::vector<long> to_set;
  for (long i = 0; i < n; i += 2) to_set.push_back(i);
  std::shuffle(to_set.begin(), to_set.end(), std::mt19937(static_cast<unsigned>(n)));
  constexpr int setter_fibers = 14, setter_threads = 2, setters = setter_fibers + setter_threads;
  auto run_setter = [&](int k, bool in_fiber) {
    std::mt19937 rng(static_cast<unsigned>(k * 7919));
    for (std::size_t j = static_cast<std::size_t>(k); j < to_set.size(); j += setters) {
      const auto gap = std::chrono::microseconds(rng() % 40);
      if (in_fiber)
        weft::this_fiber::sleep_for(gap);
      else
        std::this_thread::sleep_for(gap);
      waiter& w = *ws[static_cast<std::size_t>(to_set[j])];
      w.ev.set();
      w.set_at.store(ns_now());  // after set() returned
    }
  };
  std::vector<std::thread> threads;
  for (int k = setter_fibers; k < setters; ++k) threads.emplace_back(run_setter, k, false);
  sched.block_on([&] {
    std::vector<weft::join_handle<void>> hs;
    for (int k = 0; k < setter_fibers; ++k) hs.push_back(weft::spawn(run_setter, k, true));
    for (long i = 0; i < n; ++i)
      hs.push_back(weft::spawn([&, i] {
        std::mt19937 rng(static_cast<unsigned>(i + 1));
        const auto d = rng() % 50 == 0 ? std::chrono::microseconds(rng() % 600000)
                                       : std::chrono::microseconds(rng() % 200000);
        waiter& w = *ws[static_cast<std::size_t>(i)];
        const auto deadline = clk::now() + d;
        w.deadline.store(deadline.time_since_epoch().count());
        const bool got = w.ev.wait_until(deadline);
        w.ended_at.store(ns_now());
        w.outcome.fetch_add(got ? 1 : 2);
        done.fetch_add(1);
      }));
    for (auto& h : hs) h.join();
  });
  for (auto& t : threads) t.join();
  long notified = 0, timed_out = 0, bad = 0;
  for (long i = 0; i < n; ++i) {
    const waiter& w = *ws[static_cast<std::size_t>(i)];
    const int o = w.outcome.load();
    const std::int64_t set_at = w.set_at.load(), deadline = w.deadline.load();
    const bool ok = (o == 1 || o == 2) &&
                    (o != 2 || w.ended_at.load() >= deadline) &&  // never early
                    (set_at >= 0 || o == 2) &&                    // never set: timed out
                    (set_at < 0 || set_at >= deadline || o == 1);  // set first: notified
    if (!ok && bad++ < 5)
      std::fprintf(stderr, "cancel: waiter %ld outcome %d deadline %lld set_at %lld ended %lld\n", i,
                   o, static_cast<long long>(deadline), static_cast<long long>(set_at),
                   static_cast<long long>(w.ended_at.load()));
    (o == 1 ? notified : timed_out) += 1;
  }
  std::printf("io_timer_stress: cancel workers=%u waits=%ld notified=%ld timed_out=%ld bad=%ld "
              "timers_fired=%llu\n",
              workers, n, notified, timed_out, bad,
              static_cast<unsigned long long>(sched.stats().total().timers_fired));
  return bad == 0 && done.load() == n;
}

// Closes and fd reuse at scale: `pairs` socketpairs, each served by an echo fiber;
// `clients` fibers each exchange `msgs` 16-byte messages over randomly chosen pairs, and
// one exchange in 64 first closes its pair and opens a new one (fd numbers are reused).
// Checked: every message comes back unchanged over its own connection (it carries the
// pair, generation, client and sequence), bytes written == bytes read per connection
// when it closes, and each closed connection's echo fiber sees EOF and then an error
// (EPIPE) for a write, never a hang or a SIGPIPE.
bool s6_round(unsigned workers, int pairs, int clients, long msgs) {
  weft::scheduler sched({.workers = workers});
  std::atomic<long> exchanged{0}, bad{0}, reopened{0}, closed_seen{0};
  stress::watchdog dog(std::chrono::seconds(240), [&] {
    return "s6 workers=" + std::to_string(workers) + " exchanged=" + std::to_string(exchanged.load()) +
           " " + stress::stats_line(sched);
  });
  struct conn {
    weft::mutex mu;  // held for a whole exchange: one request in flight per stream
    int fd = -1;     // the client side; the echo fiber owns the other
    std::uint32_t gen = 0;
    long written = 0, read = 0;  // bytes, this generation
    weft::join_handle<void> echo;
  };
  std::vector<std::unique_ptr<conn>> cs(static_cast<std::size_t>(pairs));
  auto open = [&](conn& c) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) return false;
    c.fd = sv[0];
    ++c.gen;
    c.written = c.read = 0;
    c.echo = weft::spawn([&, fd = sv[1]] {
      unsigned char buf[64];
      for (;;) {
        auto r = io::read(fd, buf, sizeof buf, weft::deadline_after(std::chrono::seconds(60)));
        if (!r) {
          bad.fetch_add(1);
          break;
        }
        if (*r == 0) break;  // the client closed its side
        if (!io::write_all(fd, buf, *r)) {
          bad.fetch_add(1);
          break;
        }
      }
      const unsigned char z = 0;
      if (io::write(fd, &z, 1)) bad.fetch_add(1); else closed_seen.fetch_add(1);
      (void)io::close(fd);
    });
    return true;
  };
  auto close_conn = [&](conn& c) {
    if (c.written != c.read) bad.fetch_add(1);
    if (!io::close(c.fd)) bad.fetch_add(1);
    c.echo.join();
  };
  sched.block_on([&] {
    for (auto& c : cs) {
      c = std::make_unique<conn>();
      if (!open(*c)) bad.fetch_add(1);
    }
    std::vector<weft::join_handle<void>> hs;
    for (int k = 0; k < clients; ++k)
      hs.push_back(weft::spawn([&, k] {
        std::mt19937 rng(static_cast<unsigned>(k) * 2654435761u + 1u);
        for (long m = 0; m < msgs; ++m) {
          const std::uint32_t slot = static_cast<std::uint32_t>(rng() % static_cast<unsigned>(pairs));
          conn& c = *cs[slot];
          std::lock_guard<weft::mutex> g(c.mu);
          if (rng() % 64 == 0) {
            close_conn(c);
            if (!open(c)) {
              bad.fetch_add(1);
              return;
            }
            reopened.fetch_add(1);
          }
          const std::uint32_t out[4] = {slot, c.gen, static_cast<std::uint32_t>(k),
                                        static_cast<std::uint32_t>(m)};
          if (!io::write_all(c.fd, out, sizeof out)) {
            bad.fetch_add(1);
            continue;
          }
          c.written += sizeof out;
          std::uint32_t back[4] = {};
          std::size_t got = 0;
          while (got < sizeof back) {
            auto r = io::read(c.fd, reinterpret_cast<char*>(back) + got, sizeof back - got,
                              weft::deadline_after(std::chrono::seconds(10)));
            if (!r || *r == 0) break;
            got += *r;
          }
          c.read += static_cast<long>(got);
          if (got != sizeof back || std::memcmp(back, out, sizeof out) != 0) bad.fetch_add(1);
          exchanged.fetch_add(1, std::memory_order_relaxed);
        }
      }));
    for (auto& h : hs) h.join();
    for (auto& c : cs) close_conn(*c);
  });
  const long want = static_cast<long>(clients) * msgs;
  std::printf("io_timer_stress: s6 workers=%u pairs=%d exchanged=%ld/%ld reopened=%ld "
              "closed_seen=%ld bad=%ld %s\n",
              workers, pairs, exchanged.load(), want, reopened.load(), closed_seen.load(),
              bad.load(), stress::stats_line(sched).c_str());
  return bad.load() == 0 && exchanged.load() == want &&
         closed_seen.load() == pairs + reopened.load();
}

}  // namespace

int main() {
  int passed = 0, failed = 0;
  const long rounds = stress::scaled(4000, 100);
  const long fibers = stress::scaled(20000, 1000);
  const long connections = stress::scaled(20000, 400);
  const long shared_bytes = stress::scaled(20000, 1000);
  // 500 pairs, 200 clients x 1000 messages at full scale; 50 x 100 at the least.
  const int s6_pairs = static_cast<int>(stress::scaled(500, 50));
  const int s6_clients = static_cast<int>(stress::scaled(200, 50));
  const long s6_msgs = stress::scaled(1000, 100);
  for (unsigned workers : {1u, 2u, 4u}) {
    (s6_round(workers, s6_pairs, s6_clients, s6_msgs) ? passed : failed) += 1;
    (echo_round(workers, rounds) ? passed : failed) += 1;
    (churn_round(workers, connections) ? passed : failed) += 1;
    (shared_fd_round(workers, shared_bytes) ? passed : failed) += 1;
    (timer_round(workers, fibers) ? passed : failed) += 1;
    (cancel_round(workers, fibers) ? passed : failed) += 1;
  }
  return stress::finish(passed, failed);
}
