// bench/sync/sync_bench.cpp - weft_sync_bench: W4 chan_pingpong, W6 mutex,
// W10 parked_memory and a select fan-in, for weft and, in the same run, Boost.Fiber
// (work_stealing on every worker) and a std::thread + std::mutex baseline. Workloads:
// docs/benchmarks.md.
//
//   weft_sync_bench [--reps N] [--quick] [--workers N] [--only SUBSTR]
//
// --only runs just the workloads whose name contains SUBSTR (e.g. W4, weft, fanin).
//
// Prints `RESULT <peer> <workload> <param> <median> <unit> min=.. max=.. reps=.. [key=value ...]`
// lines (bench/result.hpp).
// Each Boost.Fiber workload runs in a forked child: Boost 1.74's work_stealing can be set up
// only once per process and its idle threads spin, which would disturb the other peers.
#include <weft/weft.hpp>

#include "../result.hpp"

#if defined(WEFT_SYNC_BENCH_HAVE_BOOST_FIBER)
#include <boost/fiber/algo/work_stealing.hpp>
#include <boost/fiber/all.hpp>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

using steady = std::chrono::steady_clock;
unsigned g_workers = std::max(1u, std::thread::hardware_concurrency());
int g_reps = 5;
long g_scale = 1;  // divisor for --quick
const char* g_only = "";  // --only: run a workload only if "<peer> <workload>" contains it

bool wanted(const char* peer, const char* workload) {
  return std::strstr((std::string(peer) + " " + workload).c_str(), g_only) != nullptr;
}

double seconds_since(steady::time_point t0) {
  return std::chrono::duration<double>(steady::now() - t0).count();
}

// One RESULT line (bench/result.hpp): median v[n/2], min and max of the repetitions.
// extra: space-separated key=value fields ("n=1000000"). The fiber runtimes' lines add
// workers=<N>, the worker count they ran on.
void report(const char* peer, const char* workload, const std::string& param, const char* unit,
            std::vector<double> v, const std::string& extra = "") {
  if (v.empty()) return;
  std::sort(v.begin(), v.end());
  weft_bench::extras fields;
  std::stringstream in(extra);
  for (std::string tok; in >> tok;) {
    const auto eq = tok.find('=');
    fields.emplace_back(tok.substr(0, eq), eq == std::string::npos ? "" : tok.substr(eq + 1));
  }
  if (std::strcmp(peer, "std_thread") != 0) {
    fields.emplace_back("workers", std::to_string(g_workers));
  }
  weft_bench::print({peer, workload, param, unit,
                     {v[v.size() / 2], v.front(), v.back(), static_cast<int>(v.size())},
                     std::move(fields)});
}

long rss_bytes() {
  long pages = 0, resident = 0;
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
  std::fclose(f);
  return resident * sysconf(_SC_PAGESIZE);
}

// ---------------------------------------------------------------- weft

double weft_pingpong(weft::scheduler& s, std::size_t cap, long n) {
  return s.block_on([&] {
    weft::channel<long> ping(cap), pong(cap);
    auto t0 = steady::now();
    auto peer = weft::spawn([&] {
      while (auto v = ping.recv()) (void)pong.send(*v + 1);
    });
    for (long i = 0; i < n; ++i) {
      (void)ping.send(std::move(i));
      (void)pong.recv();
    }
    ping.close();
    peer.join();
    return seconds_since(t0) * 1e9 / double(n);
  });
}

// W4 with deadlines on every wait (recv_for / send_for): the timed-wait path, which
// arms a timer and, for a fiber, registers a cancel hook (src/sync/wait_list.hpp step 6).
double weft_pingpong_timed(weft::scheduler& s, std::size_t cap, long n) {
  return s.block_on([&] {
    weft::channel<long> ping(cap), pong(cap);
    const auto d = std::chrono::seconds(10);
    auto t0 = steady::now();
    auto peer = weft::spawn([&] {
      for (;;) {
        auto v = ping.recv_for(d);
        if (!v) break;
        (void)pong.send_for(*v + 1, d);
      }
    });
    for (long i = 0; i < n; ++i) {
      (void)ping.send_for(std::move(i), d);
      (void)pong.recv_for(d);
    }
    ping.close();
    peer.join();
    return seconds_since(t0) * 1e9 / double(n);
  });
}

double weft_mutex(weft::scheduler& s, int fibers, int iters) {
  return s.block_on([&] {
    weft::mutex m;
    long counter = 0;
    auto t0 = steady::now();
    std::vector<weft::join_handle<void>> hs;
    hs.reserve(fibers);
    for (int f = 0; f < fibers; ++f)
      hs.push_back(weft::spawn([&] {
        for (int i = 0; i < iters; ++i) {
          std::lock_guard g(m);
          ++counter;
        }
      }));
    for (auto& h : hs) h.join();
    double ns = seconds_since(t0) * 1e9 / (double(fibers) * iters);
    if (counter != long(fibers) * iters) std::abort();
    return ns;
  });
}

double weft_parked(weft::scheduler& s, int n) {
  return s.block_on([&] {
    weft::event ev;
    std::atomic<int> parked{0};
    const long before = rss_bytes();
    std::vector<weft::join_handle<void>> hs;
    hs.reserve(n);
    for (int i = 0; i < n; ++i)
      hs.push_back(weft::spawn([&] {
        parked.fetch_add(1, std::memory_order_relaxed);
        ev.wait();
      }));
    while (parked.load() < n) weft::this_fiber::sleep_for(std::chrono::milliseconds(1));
    weft::this_fiber::sleep_for(std::chrono::milliseconds(20));  // all suspended
    const long after = rss_bytes();
    ev.set();
    for (auto& h : hs) h.join();
    return double(after - before) / n;
  });
}

double weft_fanin(weft::scheduler& s, long per_producer) {
  return s.block_on([&] {
    constexpr int k = 8;
    std::vector<std::unique_ptr<weft::channel<long>>> chs;
    for (int i = 0; i < k; ++i) chs.push_back(std::make_unique<weft::channel<long>>(1));
    auto t0 = steady::now();
    std::vector<weft::join_handle<void>> ps;
    for (int i = 0; i < k; ++i)
      ps.push_back(weft::spawn([&, i] {
        for (long j = 0; j < per_producer; ++j) (void)chs[i]->send(std::move(j));
        chs[i]->close();
      }));
    long got = 0;
    int open = k;
    auto on = [&](std::optional<long> v) {
      if (v) ++got; else --open;
    };
    bool closed[k] = {};
    while (open > 0) {
      // Closed channels stay ready forever; point their cases at a dummy that never is.
      static weft::channel<long> never;
      auto& c0 = closed[0] ? never : *chs[0];
      auto& c1 = closed[1] ? never : *chs[1];
      auto& c2 = closed[2] ? never : *chs[2];
      auto& c3 = closed[3] ? never : *chs[3];
      auto& c4 = closed[4] ? never : *chs[4];
      auto& c5 = closed[5] ? never : *chs[5];
      auto& c6 = closed[6] ? never : *chs[6];
      auto& c7 = closed[7] ? never : *chs[7];
      std::optional<long> last;
      std::size_t i = weft::select(
          weft::recv_case(c0, [&](std::optional<long> v) { last = v; }),
          weft::recv_case(c1, [&](std::optional<long> v) { last = v; }),
          weft::recv_case(c2, [&](std::optional<long> v) { last = v; }),
          weft::recv_case(c3, [&](std::optional<long> v) { last = v; }),
          weft::recv_case(c4, [&](std::optional<long> v) { last = v; }),
          weft::recv_case(c5, [&](std::optional<long> v) { last = v; }),
          weft::recv_case(c6, [&](std::optional<long> v) { last = v; }),
          weft::recv_case(c7, [&](std::optional<long> v) { last = v; }));
      if (!last) closed[i] = true;
      on(last);
    }
    for (auto& p : ps) p.join();
    if (got != k * per_producer) std::abort();
    return seconds_since(t0) * 1e9 / double(got);
  });
}

double weft_fanin_shared(weft::scheduler& s, long per_producer) {
  return s.block_on([&] {
    constexpr int k = 8;
    weft::channel<long> ch(1);
    weft::wait_group wg(k);
    auto t0 = steady::now();
    for (int i = 0; i < k; ++i)
      weft::spawn([&] {
        for (long j = 0; j < per_producer; ++j) (void)ch.send(std::move(j));
        wg.done();
      }).detach();
    auto closer = weft::spawn([&] {
      wg.wait();
      ch.close();
    });
    long got = 0;
    for (long v : ch) got += (v >= 0);
    closer.join();
    if (got != k * per_producer) std::abort();
    return seconds_since(t0) * 1e9 / double(got);
  });
}

void run_weft() {
  weft::scheduler s(weft::scheduler::options{.workers = g_workers});
  const long n4 = 1'000'000 / g_scale;
  for (std::size_t cap : {std::size_t{1}, std::size_t{0}}) {
    if (!wanted("weft", "W4_chan_pingpong")) break;
    std::vector<double> v;
    for (int r = 0; r < g_reps; ++r) v.push_back(weft_pingpong(s, cap, n4));
    report("weft", "W4_chan_pingpong", cap ? "cap1" : "cap0", "ns/roundtrip", v,
           "n=" + std::to_string(n4));
  }
  for (std::size_t cap : {std::size_t{1}, std::size_t{0}}) {
    if (!wanted("weft", "W4t_chan_pingpong_timed")) break;
    std::vector<double> v;
    for (int r = 0; r < g_reps; ++r) v.push_back(weft_pingpong_timed(s, cap, n4));
    report("weft", "W4t_chan_pingpong_timed", cap ? "cap1" : "cap0", "ns/roundtrip", v,
           "n=" + std::to_string(n4));
  }
  std::vector<double> v6;
  for (int r = 0; r < g_reps && wanted("weft", "W6_mutex"); ++r)
    v6.push_back(weft_mutex(s, 1000, int(1000 / g_scale)));
  report("weft", "W6_mutex", "fibers=1000", "ns/lock", v6);
  std::vector<double> vs, vsh;
  const long per = 100'000 / g_scale;
  for (int r = 0; r < g_reps && wanted("weft", "select_fanin"); ++r) vs.push_back(weft_fanin(s, per));
  report("weft", "select_fanin", "k=8,cap1", "ns/msg", vs, "n=" + std::to_string(8 * per));
  for (int r = 0; r < g_reps && wanted("weft", "shared_chan_fanin"); ++r)
    vsh.push_back(weft_fanin_shared(s, per));
  report("weft", "shared_chan_fanin", "k=8,cap1", "ns/msg", vsh, "n=" + std::to_string(8 * per));
}

void run_weft_parked() {
  // A fresh scheduler per repetition: RSS growth must not be hidden by pooled stacks.
  const int n = int(100'000 / g_scale);
  std::vector<double> v;
  for (int r = 0; r < g_reps && wanted("weft", "W10_parked_memory"); ++r) {
    weft::scheduler s(weft::scheduler::options{.workers = g_workers, .max_fibers = std::size_t(n) + 16});
    v.push_back(weft_parked(s, n));
  }
  report("weft", "W10_parked_memory", "n=" + std::to_string(n), "bytes/fiber", v);
}

// ---------------------------------------------------------------- std::thread baseline

struct std_chan {  // capacity-1 blocking queue on std::mutex + std::condition_variable
  std::mutex m;
  std::condition_variable cv;
  std::deque<long> q;
  void send(long v) {
    std::unique_lock lk(m);
    cv.wait(lk, [&] { return q.empty(); });
    q.push_back(v);
    cv.notify_all();
  }
  long recv() {
    std::unique_lock lk(m);
    cv.wait(lk, [&] { return !q.empty(); });
    long v = q.front();
    q.pop_front();
    cv.notify_all();
    return v;
  }
};

void run_std() {
  const long n4 = 100'000 / g_scale;  // futex round trips are ~45 us here: fewer of them
  std::vector<double> v4;
  for (int r = 0; r < g_reps && wanted("std_thread", "W4_chan_pingpong"); ++r) {
    std_chan ping, pong;
    auto t0 = steady::now();
    std::thread peer([&] {
      for (long i = 0; i < n4; ++i) pong.send(ping.recv() + 1);
    });
    for (long i = 0; i < n4; ++i) {
      ping.send(i);
      (void)pong.recv();
    }
    peer.join();
    v4.push_back(seconds_since(t0) * 1e9 / double(n4));
  }
  report("std_thread", "W4_chan_pingpong", "cap1", "ns/roundtrip", v4, "n=" + std::to_string(n4));
  std::vector<double> v6;
  const long total = 1'000'000 / g_scale;
  for (int r = 0; r < g_reps && wanted("std_thread", "W6_mutex"); ++r) {
    std::mutex m;
    long counter = 0;
    auto t0 = steady::now();
    std::vector<std::thread> ts;
    for (unsigned t = 0; t < g_workers; ++t)
      ts.emplace_back([&] {
        for (long i = 0; i < total / g_workers; ++i) {
          std::lock_guard g(m);
          ++counter;
        }
      });
    for (auto& t : ts) t.join();
    v6.push_back(seconds_since(t0) * 1e9 / double(counter));
  }
  report("std_thread", "W6_mutex", "threads=" + std::to_string(g_workers), "ns/lock", v6);
}

// ---------------------------------------------------------------- Boost.Fiber

#if defined(WEFT_SYNC_BENCH_HAVE_BOOST_FIBER)
namespace bf = boost::fibers;

// Runs body() as a fiber on a work_stealing pool of g_workers threads, in this process.
template <class F>
void boost_pool(F body) {
  std::atomic<bool> done{false};
  bf::mutex dm;
  bf::condition_variable dcv;
  std::vector<std::thread> helpers;
  for (unsigned i = 1; i < g_workers; ++i)
    helpers.emplace_back([&] {
      bf::use_scheduling_algorithm<bf::algo::work_stealing>(g_workers);
      std::unique_lock lk(dm);
      dcv.wait(lk, [&] { return done.load(); });
    });
  bf::use_scheduling_algorithm<bf::algo::work_stealing>(g_workers);
  bf::fiber(bf::launch::post, [&] { body(); }).join();
  {
    std::unique_lock lk(dm);
    done = true;
  }
  dcv.notify_all();
  for (auto& t : helpers) t.join();
}

// Forks, runs fn in the child (which prints RESULT lines) and waits for it.
void in_child(const std::function<void()>& fn) {
  std::fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    fn();
    std::fflush(stdout);
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
}

void run_boost() {
  // --only: Boost.Fiber's workloads run as one group (they share forked children).
  if (!wanted("boost_fiber", "W4_chan_pingpong") && !wanted("boost_fiber", "W6_mutex") &&
      !wanted("boost_fiber", "W10_parked_memory"))
    return;
  const long n4 = 1'000'000 / g_scale;
  in_child([&] {
    boost_pool([&] {
      for (int kind = 0; kind < 2; ++kind) {
        std::vector<double> v;
        for (int r = 0; r < g_reps; ++r) {
          // One round-trip loop for both channel kinds (they share the push/pop API).
          auto pingpong = [&](auto& ping, auto& pong) {
            auto t0 = steady::now();
            bf::fiber peer([&] {
              long x;
              while (ping.pop(x) == bf::channel_op_status::success) pong.push(x + 1);
            });
            for (long i = 0; i < n4; ++i) {
              ping.push(i);
              (void)pong.value_pop();
            }
            ping.close();
            peer.join();
            return seconds_since(t0) * 1e9 / double(n4);
          };
          double ns = 0;
          if (kind == 0) {
            bf::buffered_channel<long> ping(2), pong(2);  // capacity: power of two >= 2
            ns = pingpong(ping, pong);
          } else {
            bf::unbuffered_channel<long> ping, pong;
            ns = pingpong(ping, pong);
          }
          v.push_back(ns);
        }
        report("boost_fiber", "W4_chan_pingpong", kind == 0 ? "buffered2" : "unbuffered",
               "ns/roundtrip", v, "n=" + std::to_string(n4));
      }
      std::vector<double> v6;
      const int iters = int(1000 / g_scale);
      for (int r = 0; r < g_reps; ++r) {
        bf::mutex m;
        long counter = 0;
        auto t0 = steady::now();
        std::vector<bf::fiber> fs;
        for (int f = 0; f < 1000; ++f)
          fs.emplace_back([&] {
            for (int i = 0; i < iters; ++i) {
              std::lock_guard g(m);
              ++counter;
            }
          });
        for (auto& f : fs) f.join();
        v6.push_back(seconds_since(t0) * 1e9 / double(counter));
      }
      report("boost_fiber", "W6_mutex", "fibers=1000", "ns/lock", v6);
    });
  });
  in_child([&] {
    // W10: one repetition per process (Boost keeps stacks of finished fibers pooled).
    const int n = int(100'000 / g_scale);
    boost_pool([&] {
      bf::mutex m;
      bf::condition_variable cv;
      bool go = false;
      std::atomic<int> parked{0};
      const long before = rss_bytes();
      std::vector<bf::fiber> fs;
      fs.reserve(n);
      for (int i = 0; i < n; ++i)
        fs.emplace_back([&] {
          std::unique_lock lk(m);
          parked.fetch_add(1);
          cv.wait(lk, [&] { return go; });
        });
      while (parked.load() < n) boost::this_fiber::sleep_for(std::chrono::milliseconds(1));
      const long after = rss_bytes();
      {
        std::unique_lock lk(m);
        go = true;
      }
      cv.notify_all();
      for (auto& f : fs) f.join();
      report("boost_fiber", "W10_parked_memory", "n=" + std::to_string(n), "bytes/fiber",
             {double(after - before) / n}, "reps_per_process=1");
    });
  });
}
#endif

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) g_reps = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--quick")) g_scale = 10;
    else if (!std::strcmp(argv[i], "--workers") && i + 1 < argc) g_workers = unsigned(std::atoi(argv[++i]));
    else if (!std::strcmp(argv[i], "--only") && i + 1 < argc) g_only = argv[++i];
  }
  std::printf("# weft_sync_bench: workers=%u reps=%d scale=1/%ld\n", g_workers, g_reps, g_scale);
  run_weft();
  run_weft_parked();
  run_std();
#if defined(WEFT_SYNC_BENCH_HAVE_BOOST_FIBER)
  run_boost();
#else
  std::printf("# boost_fiber: not built (Boost.Fiber not found)\n");
#endif
  return 0;
}
