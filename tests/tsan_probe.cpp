// tests/tsan_probe.cpp - a program run by tsan_detect_test under the tsan builds, one
// scenario per process (an expected report ends the process, not the test binary):
//
//   tsan_probe <scenario> [workers]     (workers: 1 or 2; default 2)
//
// Race scenarios: two fibers write one plain int with nothing ordering them; TSan must
// report it (exit 66) whichever workers the fibers run on.
//   race          each fiber spins on its own worker (2 workers): truly parallel.
//   race_yield    a yield between increments: on 1 worker the fibers interleave on one
//                 thread, and only docs/tsan.md's fiber mode tells them apart.
//   race_sleep    the same with sleep_for: timers fire the wake-ups, not the other fiber.
// Clean scenarios: a plain int (or plain array) handed between fibers and threads only
// through one of weft's hand-offs; TSan must stay silent, and the program checks the
// values it reads (exit 1 on a wrong value). Each names the edge it relies on
// (src/tsan_scope.hpp lists them all).
#include <weft/blocking.hpp>
#include <weft/io.hpp>
#include <weft/sync.hpp>
#include <weft/weft.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <mutex>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

using namespace std::chrono_literals;

int shared_value = 0;                 // deliberately plain
std::array<int, 16> slots{};          // deliberately plain: one per fiber
std::array<int, 256> payload{};       // deliberately plain: one per message, never reused
int failures = 0;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "tsan_probe: wrong value: %s (shared_value=%d)\n", what, shared_value);
    ++failures;
  }
}

// ---------------------------------------------------------------- races

void race_spin(weft::scheduler& sched) {
  std::atomic<int> arrived{0};
  auto body = [&] {
    arrived.fetch_add(1);
    // Spin without yielding: this fiber keeps its worker, so the other fiber runs on the
    // other worker at the same time.
    while (arrived.load() < 2) {
    }
    // Many separate load/store pairs (the barrier keeps -O1 from folding the loop), so
    // the two fibers' accesses overlap in time for certain.
    for (int i = 0; i < 100000; ++i) {
      ++shared_value;
      asm volatile("" ::: "memory");
    }
  };
  auto a = sched.spawn(body);
  auto b = sched.spawn(body);
  a.join();
  b.join();
}

template <class Pause>
void race_interleaved(weft::scheduler& sched, Pause pause) {
  auto body = [pause] {
    for (int i = 0; i < 50; ++i) {
      ++shared_value;
      pause();
    }
  };
  auto a = sched.spawn(body);
  auto b = sched.spawn(body);
  a.join();
  b.join();
}

// ---------------------------------------------------------------- spawn, join, shutdown

// spawn -> start and finish -> join, from a fiber.
void spawn_join(weft::scheduler& sched) {
  sched.block_on([] {
    for (int round = 0; round < 100; ++round) {
      shared_value = round;  // read by the child: spawn -> start
      auto child = weft::spawn([round] {
        check(shared_value == round, "child sees the parent's write");
        weft::this_fiber::yield();  // may migrate (2 workers)
        shared_value = round + 1;   // read by the parent: finish -> join
        return round;
      });
      check(child.join() == round, "join result");
      check(shared_value == round + 1, "parent sees the child's write");
    }
  });
}

// The same from a plain thread (scheduler::spawn, thread join), and block_on's result.
void thread_spawn_join(weft::scheduler& sched) {
  for (int round = 0; round < 50; ++round) {
    shared_value = round;
    auto h = sched.spawn([round] {
      check(shared_value == round, "fiber sees the thread's write");
      weft::this_fiber::yield();
      shared_value = round + 1;
    });
    h.join();
    check(shared_value == round + 1, "thread sees the fiber's write after join");
    const int got = sched.block_on([round] {
      shared_value += 1;
      return shared_value * 10 + round;
    });
    check(got == (round + 2) * 10 + round && shared_value == round + 2, "block_on result");
  }
}

// Detached fibers: the scheduler's shutdown waits for them (finish -> shutdown).
void detached_shutdown(unsigned workers) {
  {
    weft::scheduler sched({.workers = workers});
    for (int i = 0; i < 16; ++i)
      sched.spawn_detached([i] {
        slots[i] = i + 1;
        weft::this_fiber::sleep_for(std::chrono::microseconds(50 * (i % 3)));
        slots[i] += 1;
      });
  }
  for (int i = 0; i < 16; ++i) check(slots[i] == i + 2, "slot written by a detached fiber");
}

// A fiber_local's destructor runs when its fiber finishes, before the join sees it.
struct noted {
  int value = 0;
  ~noted() { shared_value += value; }
};
weft::fiber_local<noted> local_note;

void fiber_local_destructor(weft::scheduler& sched) {
  sched.block_on([] {
    shared_value = 0;
    for (int round = 1; round <= 50; ++round) {
      auto child = weft::spawn([round] {
        local_note->value = round;
        weft::this_fiber::yield();
        check(local_note->value == round, "fiber_local kept across a yield");
      });
      child.join();
      check(shared_value == round * (round + 1) / 2, "fiber_local destructor seen after join");
    }
  });
}

// ---------------------------------------------------------------- sync primitives

// set -> wait, both orders (the waiter suspended first, or the event already set).
void event_handoff(weft::scheduler& sched) {
  sched.block_on([] {
    for (int round = 0; round < 100; ++round) {
      weft::event ev(round % 2 ? weft::event::reset_mode::automatic
                               : weft::event::reset_mode::manual);
      auto waiter = weft::spawn([&ev, round] {
        ev.wait();
        check(shared_value == round, "waiter sees the setter's write");
        shared_value = -round;
      });
      if (round % 3 == 0) weft::this_fiber::yield();  // let the waiter suspend first
      shared_value = round;
      ev.set();
      waiter.join();
      check(shared_value == -round, "join after event");
    }
  });
}

// unlock -> lock, with the critical section spanning a yield so that the others block
// (and, after 1 ms, get the mutex handed off).
void mutex_counter(weft::scheduler& sched) {
  weft::mutex mu;
  sched.block_on([&mu] {
    std::vector<weft::join_handle<void>> hs;
    for (int f = 0; f < 4; ++f)
      hs.push_back(weft::spawn([&mu] {
        for (int i = 0; i < 50; ++i) {
          std::lock_guard<weft::mutex> g(mu);
          const int v = shared_value;
          if (i % 4 == 0) weft::this_fiber::yield();
          if (i % 25 == 0) weft::this_fiber::sleep_for(1200us);  // starves the waiters: hand-off
          shared_value = v + 1;
        }
      }));
    for (auto& h : hs) h.join();
    check(shared_value == 200, "mutex-protected counter");
  });
}

// notify -> wait through a plain queue guarded by the mutex.
void condition_variable_queue(weft::scheduler& sched) {
  weft::mutex mu;
  weft::condition_variable cv;
  std::deque<int> queue;  // guarded by mu
  sched.block_on([&] {
    auto consumer = weft::spawn([&] {
      int sum = 0;
      for (int i = 0; i < 100; ++i) {
        std::unique_lock<weft::mutex> lk(mu);
        cv.wait(lk, [&] { return !queue.empty(); });
        sum += queue.front() + payload[static_cast<std::size_t>(queue.front())];
        queue.pop_front();
      }
      return sum;
    });
    int expected = 0;
    for (int i = 0; i < 100; ++i) {
      {
        std::lock_guard<weft::mutex> g(mu);
        payload[static_cast<std::size_t>(i)] = i;
        queue.push_back(i);
      }
      expected += 2 * i;
      cv.notify_one();
      if (i % 5 == 0) weft::this_fiber::yield();
    }
    check(consumer.join() == expected, "condition_variable consumer sum");
  });
}

// send -> recv: the receiver reads the sender's plain data through the index it got.
void channel_handoff(weft::scheduler& sched, std::size_t capacity) {
  weft::channel<int> ch(capacity);
  weft::channel<std::vector<int>> big(capacity);
  std::array<int, 64> data{};  // plain, written by the sender before each send
  sched.block_on([&] {
    auto receiver = weft::spawn([&] {
      long sum = 0;
      for (int i = 0; i < 200; ++i) {
        const int k = *ch.recv();
        sum += data[static_cast<std::size_t>(k) % data.size()];
        if (i % 20 == 0) {
          std::vector<int> v = *big.recv();
          sum += v.at(1);
        }
      }
      return sum;
    });
    long expected = 0;
    for (int i = 0; i < 200; ++i) {
      data[static_cast<std::size_t>(i) % data.size()] = i * 3;
      expected += i * 3;
      check(ch.send(i) == weft::channel_status::ok, "send");
      if (i % 20 == 0) {
        std::vector<int> v{0, i, 2};
        expected += i;
        check(big.send(std::move(v)) == weft::channel_status::ok, "send vector");
      }
      if (i % 7 == 0) weft::this_fiber::yield();
    }
    check(receiver.join() == expected, "channel receiver sum");
  });
}

void channel_buffered(weft::scheduler& sched) { channel_handoff(sched, 4); }
void channel_rendezvous(weft::scheduler& sched) { channel_handoff(sched, 0); }

// select over two channels and a send case; each message's plain payload is written by
// its sender before the send and read by its receiver after the hand-off.
void select_handoff(weft::scheduler& sched) {
  weft::channel<int> a(0), b(2), back(0);
  sched.block_on([&] {
    auto sa = weft::spawn([&] {
      for (int i = 0; i < 50; ++i) {
        payload[static_cast<std::size_t>(i)] = i + 1;
        (void)a.send(i);
      }
    });
    auto sb = weft::spawn([&] {
      for (int i = 50; i < 100; ++i) {
        payload[static_cast<std::size_t>(i)] = i + 1;
        (void)b.send(i);
        if (i % 4 == 0) weft::this_fiber::yield();
      }
    });
    auto taker = weft::spawn([&] {
      for (int i = 0; i < 20; ++i) {
        const int k = *back.recv();
        check(payload[static_cast<std::size_t>(k)] == k + 1, "select send case payload");
      }
    });
    int got = 0;
    auto seen = [&](std::optional<int> v) {
      check(v && payload[static_cast<std::size_t>(*v)] == *v + 1, "select recv payload");
      ++got;
    };
    while (got < 100) (void)weft::select(weft::recv_case(a, seen), weft::recv_case(b, seen));
    for (int k = 100; k < 120; ++k) {
      payload[static_cast<std::size_t>(k)] = k + 1;
      int v = k;
      check(weft::select(weft::send_case(back, v)) == 0, "select send case index");
    }
    sa.join();
    sb.join();
    taker.join();
  });
}

// done -> wait: each fiber writes its own slot. The fibers are joined only after the
// check (the join is not the edge under test; it keeps the wait_group alive while the
// last done() returns).
void wait_group_slots(weft::scheduler& sched) {
  sched.block_on([] {
    for (int round = 0; round < 20; ++round) {
      weft::wait_group wg(8);
      std::vector<weft::join_handle<void>> hs;
      for (int f = 0; f < 8; ++f)
        hs.push_back(weft::spawn([&wg, f, round] {
          if (f % 2) weft::this_fiber::yield();
          slots[f] = round * 8 + f;
          wg.done();
        }));
      wg.wait();
      for (int f = 0; f < 8; ++f) check(slots[f] == round * 8 + f, "wait_group slot");
      for (auto& h : hs) h.join();
    }
  });
}

// count_down -> wait, as above.
void latch_slots(weft::scheduler& sched) {
  sched.block_on([] {
    for (int round = 0; round < 20; ++round) {
      weft::latch done(8);
      std::vector<weft::join_handle<void>> hs;
      for (int f = 0; f < 8; ++f)
        hs.push_back(weft::spawn([&done, f, round] {
          if (f % 3) weft::this_fiber::yield();
          slots[f] = round - f;
          done.count_down();
        }));
      done.wait();
      for (int f = 0; f < 8; ++f) check(slots[f] == round - f, "latch slot");
      for (auto& h : hs) h.join();
    }
  });
}

// arrive -> the waits of the same phase: each fiber reads its neighbour's slot of the
// previous phase.
void barrier_phases(weft::scheduler& sched) {
  static constexpr int n = 4, phases = 20;  // static: g++ wants a capture otherwise
  weft::barrier<> sync(n);
  sched.block_on([&] {
    std::vector<weft::join_handle<void>> hs;
    for (int f = 0; f < n; ++f)
      hs.push_back(weft::spawn([&sync, f] {
        for (int p = 0; p < phases; ++p) {
          slots[f] = p * n + f;
          sync.arrive_and_wait();
          check(slots[(f + 1) % n] == p * n + (f + 1) % n, "barrier neighbour slot");
          sync.arrive_and_wait();
        }
      }));
    for (auto& h : hs) h.join();
  });
}

// release -> acquire, ping-pong.
void semaphore_pingpong(weft::scheduler& sched) {
  weft::counting_semaphore ping(0), pong(0);
  sched.block_on([&] {
    auto other = weft::spawn([&] {
      for (int i = 0; i < 100; ++i) {
        ping.acquire();
        check(shared_value == 2 * i + 1, "semaphore ping");
        shared_value += 1;
        pong.release();
      }
    });
    shared_value = 0;
    for (int i = 0; i < 100; ++i) {
      shared_value += 1;
      ping.release();
      pong.acquire();
      check(shared_value == 2 * i + 2, "semaphore pong");
    }
    other.join();
  });
}

// Timers: sleeps and timed waits that expire, fired on either worker (or the reactor's
// watchdog); each fiber touches only its own slot, the parent reads them after join.
void sleep_timers(weft::scheduler& sched) {
  sched.block_on([] {
    std::vector<weft::join_handle<void>> hs;
    for (int f = 0; f < 8; ++f)
      hs.push_back(weft::spawn([f] {
        weft::event never;
        weft::channel<int> empty(1);
        for (int i = 0; i < 10; ++i) {
          slots[f] = i;
          weft::this_fiber::sleep_for(std::chrono::microseconds(20 + 30 * f));
          check(slots[f] == i, "own slot across a sleep");
          check(!never.wait_for(30us), "event wait_for times out");
          check(empty.recv_for(20us).status == weft::channel_status::timeout, "recv_for times out");
          slots[f] = i + 1;
        }
      }));
    for (auto& h : hs) h.join();
    for (int f = 0; f < 8; ++f) check(slots[f] == 10, "slots after join");
  });
}

// I/O readiness: the reader suspends on an empty pipe; the writer's data (and a plain int
// written before the write) reach it through write(2) -> read(2).
void pipe_handoff(weft::scheduler& sched) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
    std::perror("pipe2");
    std::exit(2);
  }
  sched.block_on([fds] {
    auto reader = weft::spawn([fds] {
      for (int i = 0; i < 50; ++i) {
        char c = 0;
        auto r = weft::io::read(fds[0], &c, 1);
        check(r && *r == 1 && c == static_cast<char>('a' + i % 26), "pipe byte");
        check(payload[static_cast<std::size_t>(i)] == i + 1, "reader sees the writer's write");
      }
    });
    for (int i = 0; i < 50; ++i) {
      weft::this_fiber::yield();  // the reader is waiting for readiness by now (1 worker)
      payload[static_cast<std::size_t>(i)] = i + 1;
      const char c = static_cast<char>('a' + i % 26);
      check(weft::io::write(fds[1], &c, 1).has_value(), "pipe write");
      weft::this_fiber::sleep_for(20us);
    }
    reader.join();
  });
  (void)weft::io::close(fds[0]);
  (void)weft::io::close(fds[1]);
}

// run_blocking: the caller's writes reach the pool thread, the pool thread's the caller.
void run_blocking_handoff(weft::scheduler& sched) {
  weft::blocking_pool pool({.min_threads = 0, .max_threads = 2});
  sched.block_on([&pool] {
    std::vector<weft::join_handle<void>> hs;
    for (int f = 0; f < 4; ++f)
      hs.push_back(weft::spawn([f, &pool] {
        for (int i = 0; i < 10; ++i) {
          slots[f] = i;
          const int got = f % 2 ? weft::run_blocking([f] { return slots[f] += 100; })
                                : pool.run([f] { return slots[f] += 100; });
          check(got == i + 100 && slots[f] == i + 100, "run_blocking result");
        }
      }));
    for (auto& h : hs) h.join();
  });
}

}  // namespace

// A worker thread's thread_locals, initialised when the thread started and only read by
// its fibers afterwards (at a fiber's start, after a yield, after a wait; the fibers
// migrate between workers): no report. External linkage, or the compiler folds the reads.
thread_local int tls_config = 42;

namespace {

void tls_read(weft::scheduler& sched) {
  sched.block_on([] {
    std::vector<weft::join_handle<int>> hs;
    for (int f = 0; f < 8; ++f)
      hs.push_back(weft::spawn([] {
        int sum = tls_config;
        for (int i = 0; i < 10; ++i) {
          weft::this_fiber::yield();
          sum += tls_config;
          weft::this_fiber::sleep_for(20us);
          sum += tls_config;
        }
        return sum;
      }));
    for (auto& h : hs) check(h.join() == 42 * 21, "thread_local read by fibers");
  });
}

// The runtime's own hand-offs: spawn, yield, sleep wake-ups, steals and migrations.
void runtime_handoffs(weft::scheduler& sched) {
  sched.block_on([] {
    shared_value = 0;
    for (int round = 0; round < 200; ++round) {
      shared_value += 1;  // written by the parent...
      auto child = weft::spawn([] {
        shared_value += 1;  // ...then by the child, possibly on another worker
        weft::this_fiber::yield();
        if (shared_value % 7 == 0) weft::this_fiber::sleep_for(std::chrono::microseconds(10));
        shared_value += 1;
      });
      child.join();
      shared_value += 1;  // and by the parent again after join
    }
    check(shared_value == 800, "runtime hand-offs");
  });
}

struct scenario {
  const char* name;
  void (*run)(weft::scheduler&);
};

const scenario scenarios[] = {
    {"race", race_spin},
    {"race_yield",
     [](weft::scheduler& s) { race_interleaved(s, [] { weft::this_fiber::yield(); }); }},
    {"race_sleep",
     [](weft::scheduler& s) { race_interleaved(s, [] { weft::this_fiber::sleep_for(50us); }); }},
    {"clean", runtime_handoffs},
    {"spawn_join", spawn_join},
    {"thread_spawn_join", thread_spawn_join},
    {"fiber_local", fiber_local_destructor},
    {"event", event_handoff},
    {"mutex", mutex_counter},
    {"condition_variable", condition_variable_queue},
    {"channel_buffered", channel_buffered},
    {"channel_rendezvous", channel_rendezvous},
    {"select", select_handoff},
    {"wait_group", wait_group_slots},
    {"latch", latch_slots},
    {"barrier", barrier_phases},
    {"semaphore", semaphore_pingpong},
    {"sleep", sleep_timers},
    {"pipe", pipe_handoff},
    {"run_blocking", run_blocking_handoff},
    {"tls_read", tls_read},
};

}  // namespace

int main(int argc, char** argv) {
  const std::string name = argc > 1 ? argv[1] : "";
  const unsigned workers = argc > 2 ? static_cast<unsigned>(std::atoi(argv[2])) : 2;
  if (name == "detached_shutdown") {
    detached_shutdown(workers);
  } else {
    const scenario* s = nullptr;
    for (const scenario& c : scenarios)
      if (name == c.name) s = &c;
    if (!s) {
      std::fprintf(stderr, "tsan_probe: unknown scenario '%s'\n", name.c_str());
      return 2;
    }
    weft::scheduler sched({.workers = workers});
    s->run(sched);
  }
  std::printf("shared_value=%d failures=%d\n", shared_value, failures);
  return failures ? 1 : 0;
}
