// stress/adversity_stress.cpp - programs written the way server authors write them, at
// random, under load; each part checks a property the scheduler owes them:
//   1. Fibers suspended inside catch blocks (yield, sleep, event, channel, contended
//      mutex) and inside destructors run during unwinding: each sees its own caught
//      exception, its own std::uncaught_exceptions(), and `throw;` rethrows its own.
//      Fails if the C++ exception state were per thread instead of per fiber
//      (worker::switch_to's eh_state swap, src/context.hpp).
//   2. Objects destroyed by the waiter the moment its wait returns (event, semaphore,
//      wait group, latch, mutex, condition variable, channels, barrier), the releaser a
//      fiber or a plain thread. Fails if a release touches the object after the waiter it
//      freed may have run (the release-window rules of src/sync/wait_list.hpp).
// Part 2 builds each object in a slot of a pool; once destroyed, the slot is filled with a
// pattern that is checked after every fiber of the round has ended, so a write after
// destruction is caught in a release build too (ASan also catches the reads).
// Not here: a destructor racing a timed-out waiter that is still leaving. A stress cannot
// know that every waiter is already queued when it destroys (a worker thread preempted
// between "about to wait" and the enqueue would make the test itself use a dead object),
// so tests/lifetime_test.cpp covers that race deterministically.
// Sized by WEFT_STRESS_SCALE; one watchdog per worker count.
#include "stress.hpp"

#include <weft/weft.hpp>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;

using stress::rng;

// ---- part 1 -------------------------------------------------------------------------

struct tagged {
  long id;
};

// Where a fiber suspends while its exception is in flight or caught.
struct suspenders {
  weft::event go;
  weft::channel<int> tokens{weft::channel<int>::unbounded};
  weft::mutex m;
};

void suspend_somehow(suspenders& s, unsigned how) {
  switch (how % 5) {
    case 0: weft::this_fiber::yield(); break;
    case 1: weft::this_fiber::sleep_for(std::chrono::microseconds(how % 50)); break;
    case 2: s.go.wait(); break;
    case 3: (void)s.tokens.recv(); break;
    default: {
      std::lock_guard<weft::mutex> g(s.m);
      weft::this_fiber::yield();  // held across a switch: the others contend
    }
  }
}

// Suspends in its destructor; records what std::uncaught_exceptions() said there.
struct suspending_guard {
  suspenders& s;
  unsigned how;
  int& seen;
  ~suspending_guard() {
    suspend_somehow(s, how);
    seen = std::uncaught_exceptions();
  }
};

long long catch_one(suspenders& s, long id, unsigned how) {
  long long bad = 0;
  // (a) suspended inside a handler: the caught object and current_exception are ours.
  try {
    throw tagged{id};
  } catch (const tagged& t) {
    suspend_somehow(s, how);
    if (t.id != id) ++bad;
    if (std::uncaught_exceptions() != 0) ++bad;
    try {
      std::rethrow_exception(std::current_exception());
    } catch (const tagged& again) {
      if (again.id != id) ++bad;
    }
    // (b) `throw;` after a second suspension rethrows this fiber's exception.
    try {
      suspend_somehow(s, how + 1);
      throw;
    } catch (const tagged& again) {
      if (again.id != id) ++bad;
    }
  }
  if (std::current_exception()) ++bad;  // every handler left
  // (c) a destructor that suspends during unwinding sees one uncaught exception.
  int seen = -1;
  try {
    suspending_guard g{s, how + 2, seen};
    throw tagged{id};
  } catch (const tagged& t) {
    if (t.id != id) ++bad;
  }
  if (seen != 1) ++bad;
  if (std::uncaught_exceptions() != 0) ++bad;
  return bad;
}

bool catch_suspend(weft::scheduler& sched, std::uint64_t seed) {
  const int rounds = int(stress::scaled(40, 3));
  const long fibers = stress::scaled(400, 40);
  std::atomic<long long> bad{0};
  sched.block_on([&] {
    for (int round = 0; round < rounds; ++round) {
      suspenders s;
      rng r{seed + std::uint64_t(round) * 7919 + 1};
      std::vector<weft::join_handle<void>> hs;
      hs.reserve(std::size_t(fibers));
      for (long i = 0; i < fibers; ++i) {
        const unsigned how = r.next();
        hs.push_back(weft::spawn([&, i, how] { bad += catch_one(s, round * fibers + i, how); }));
      }
      // Release the event waiters and feed the receivers (each fiber takes at most
      // three tokens) while the others interleave.
      for (long i = 0; i < 3 * fibers; ++i) {
        (void)s.tokens.send(int(i));
        if (i % 64 == 0) weft::this_fiber::yield();
      }
      s.go.set();
      for (auto& h : hs) h.join();
    }
  });
  std::printf("  fibers suspended in handlers and unwinding destructors, %d x %ld: %s\n", rounds,
              fibers, bad == 0 ? "ok" : "FAILED");
  if (bad != 0) std::printf("    %lld wrong observations\n", bad.load());
  return bad == 0;
}

// ---- parts 2 and 3 ------------------------------------------------------------------

constexpr unsigned char k_dead = 0xA5;

// Storage for one object per slot; destroyed objects leave the pattern behind.
class slot_pool {
public:
  static constexpr std::size_t k_size = 512;
  explicit slot_pool(std::size_t n) : slots_(n) {}

  template <class T, class... A>
  T* make(std::size_t i, A&&... a) {
    static_assert(sizeof(T) <= k_size);
    return new (slots_[i].bytes) T(std::forward<A>(a)...);
  }
  template <class T>
  void destroy(std::size_t i, T* p) {
    p->~T();
    std::memset(slots_[i].bytes, k_dead, k_size);
  }
  // Slots whose pattern changed after destruction.
  std::size_t written_after_death() const {
    std::size_t n = 0;
    for (const auto& s : slots_)
      for (unsigned char b : s.bytes)
        if (b != k_dead) {
          ++n;
          break;
        }
    return n;
  }

private:
  struct alignas(64) slot {
    unsigned char bytes[k_size];
  };
  std::vector<slot> slots_;
};

// Releases from a plain thread or from a fiber, as `on_thread` says.
void release_from(bool on_thread, std::vector<std::thread>& threads,
                  std::vector<weft::join_handle<void>>& fibers, std::function<void()> f) {
  if (on_thread)
    threads.emplace_back(std::move(f));
  else
    fibers.push_back(weft::spawn(std::move(f)));
}

constexpr int k_kinds = 9;

// One object of kind `kind` in slot i: the waiter destroys it as soon as its wait
// returns; the releaser runs on a plain thread or a fiber.
void waiter_destroys(slot_pool& pool, std::size_t i, int kind, bool on_thread,
                     std::vector<std::thread>& threads, std::vector<weft::join_handle<void>>& hs,
                     std::atomic<long>& done) {
  auto finish = [&done] { done.fetch_add(1, std::memory_order_relaxed); };
  switch (kind) {
    case 0:
    case 1: {  // manual / automatic event
      auto* e = pool.make<weft::event>(
          i, kind == 0 ? weft::event::reset_mode::manual : weft::event::reset_mode::automatic);
      hs.push_back(weft::spawn([&pool, i, e, finish] { e->wait(); pool.destroy(i, e); finish(); }));
      release_from(on_thread, threads, hs, [e] { e->set(); });
      break;
    }
    case 2: {  // semaphore
      auto* s = pool.make<weft::counting_semaphore>(i, 0);
      hs.push_back(weft::spawn([&pool, i, s, finish] { s->acquire(); pool.destroy(i, s); finish(); }));
      release_from(on_thread, threads, hs, [s] { s->release(); });
      break;
    }
    case 3: {  // wait group with two parties
      auto* wg = pool.make<weft::wait_group>(i, 2);
      hs.push_back(weft::spawn([&pool, i, wg, finish] { wg->wait(); pool.destroy(i, wg); finish(); }));
      release_from(on_thread, threads, hs, [wg] { wg->done(); });
      release_from(!on_thread, threads, hs, [wg] { wg->done(); });
      break;
    }
    case 4: {  // latch: the last arriver frees a waiter that destroys it
      auto* l = pool.make<weft::latch>(i, 2);
      hs.push_back(weft::spawn([&pool, i, l, finish] {
        l->arrive_and_wait();
        pool.destroy(i, l);
        finish();
      }));
      release_from(on_thread, threads, hs, [l] { l->count_down(); });
      break;
    }
    case 5: {  // mutex handed to a waiter that destroys it after unlocking
      auto* m = pool.make<weft::mutex>(i);
      auto* held = new std::atomic<bool>(false);
      hs.push_back(weft::spawn([m, held] {
        m->lock();
        held->store(true);
        weft::this_fiber::sleep_for(20us);
        m->unlock();
      }));
      hs.push_back(weft::spawn([&pool, i, m, held, finish] {
        while (!held->load()) weft::this_fiber::yield();
        m->lock();
        m->unlock();
        pool.destroy(i, m);
        delete held;
        finish();
      }));
      break;
    }
    case 6: {  // condition variable and its mutex, destroyed by the woken waiter
      struct cvm {
        weft::mutex m;
        weft::condition_variable cv;
        bool ready = false;
      };
      auto* c = pool.make<cvm>(i);
      hs.push_back(weft::spawn([&pool, i, c, finish] {
        {
          std::unique_lock<weft::mutex> lk(c->m);
          c->cv.wait(lk, [c] { return c->ready; });
        }
        pool.destroy(i, c);
        finish();
      }));
      // Notified under the lock: otherwise the waiter could see `ready`, return and
      // destroy the pair before the notify (the test's bug, not weft's). The unlock then
      // hands the mutex to the woken waiter, which may destroy it at once.
      release_from(on_thread, threads, hs, [c] {
        std::lock_guard<weft::mutex> g(c->m);
        c->ready = true;
        c->cv.notify_one();
      });
      break;
    }
    case 7: {  // rendezvous channel: the receiver destroys it once the value arrived
      auto* ch = pool.make<weft::channel<int>>(i, 0);
      hs.push_back(weft::spawn([&pool, i, ch, finish] {
        (void)ch->recv();
        pool.destroy(i, ch);
        finish();
      }));
      release_from(on_thread, threads, hs, [ch] { (void)ch->send(1); });
      break;
    }
    default: {  // barrier of two: the waiter destroys it once the phase completed
      auto* b = pool.make<weft::barrier<>>(i, 2);
      hs.push_back(weft::spawn([&pool, i, b, finish] {
        b->arrive_and_wait();
        pool.destroy(i, b);
        finish();
      }));
      release_from(on_thread, threads, hs, [b] { (void)b->arrive(); });
      break;
    }
  }
}

bool destroyed_on_return(weft::scheduler& sched, std::uint64_t seed) {
  const int rounds = int(stress::scaled(200, 8));
  const std::size_t per_round = 64;
  long long written = 0, missing = 0;
  for (int round = 0; round < rounds; ++round) {
    slot_pool pool(per_round);
    std::vector<std::thread> threads;
    std::atomic<long> done{0};
    rng r{seed * 31 + std::uint64_t(round) + 1};
    sched.block_on([&] {
      std::vector<weft::join_handle<void>> hs;
      for (std::size_t i = 0; i < per_round; ++i) {
        const std::uint32_t x = r.next();
        // At most a few plain threads per round: thread creation is slow under TSan.
        const bool on_thread = (x >> 8) % 16 == 0;
        waiter_destroys(pool, i, int(x % k_kinds), on_thread, threads, hs, done);
      }
      for (auto& h : hs) h.join();
    });
    for (auto& t : threads) t.join();
    written += static_cast<long long>(pool.written_after_death());
    missing += static_cast<long long>(per_round) - done.load();
  }
  const bool ok = written == 0 && missing == 0;
  std::printf("  objects destroyed by the waiter as its wait returns, %d x %zu: %s\n", rounds,
              per_round, ok ? "ok" : "FAILED");
  if (!ok) std::printf("    %lld written after destruction, %lld waiters missing\n", written, missing);
  return ok;
}

}  // namespace

int main() {
  int passed = 0, failed = 0;
  std::uint64_t seed = 0x9e3779b97f4a7c15ull;
  for (unsigned workers : {1u, 2u, 4u}) {
    std::printf("workers=%u\n", workers);
    weft::scheduler sched(weft::scheduler::options{.workers = workers});
    stress::watchdog dog(std::chrono::seconds(120), [&] { return stress::stats_line(sched); });
    (catch_suspend(sched, seed + workers) ? passed : failed)++;
    (destroyed_on_return(sched, seed + workers) ? passed : failed)++;
  }
  return stress::finish(passed, failed);
}
