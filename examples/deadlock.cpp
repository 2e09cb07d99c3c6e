// examples/deadlock.cpp - what weft's deadlock report looks like (README "Diagnostics").
//
//   ./deadlock              two fibers take two mutexes in the same order: runs, exits 0
//   ./deadlock --deadlock   they take them in opposite orders and deadlock; with
//                           WEFT_DEADLOCK_MS (set to 200 here unless the environment
//                           sets it) weft prints the wait-for cycle, each fiber's wait
//                           and backtrace. The program then exits 3: a deadlocked
//                           scheduler cannot be shut down (mutex locks are not
//                           cancellable), so it leaves with _exit.
#include <weft/weft.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>
#include <unistd.h>

namespace {

// Named functions show up in the report's backtraces (built with -rdynamic).
// both_hold_one (--deadlock only): makes both fibers hold their first lock before either
// takes its second, so the crossed order deadlocks every time.
extern "C" __attribute__((noinline)) void transfer(weft::mutex& from, weft::mutex& to,
                                                    weft::latch* both_hold_one) {
  std::lock_guard<weft::mutex> a(from);
  if (both_hold_one) {
    both_hold_one->count_down();
    (void)both_hold_one->wait();
  }
  std::lock_guard<weft::mutex> b(to);
}

}  // namespace

int main(int argc, char** argv) {
  const bool deadlock = argc > 1 && std::strcmp(argv[1], "--deadlock") == 0;
  if (argc > 1 && !deadlock) {
    std::fprintf(stderr, "usage: %s [--deadlock]\n", argv[0]);
    return 2;
  }
  if (deadlock) setenv("WEFT_DEADLOCK_MS", "200", 0);  // read when the scheduler starts
  weft::scheduler::options opts;  // C++17: no designated initializers
  opts.workers = 2;
  weft::scheduler s(opts);
  weft::mutex accounts, audit;
  weft::latch both(2);
  weft::latch* sync = deadlock ? &both : nullptr;
  weft::spawn_options pay, audit_opts;
  pay.name = "pay";
  audit_opts.name = "audit";
  auto a = s.spawn(pay, [&] { transfer(accounts, audit, sync); });
  auto b = s.spawn(audit_opts, [&] {
    if (deadlock)
      transfer(audit, accounts, sync);
    else
      transfer(accounts, audit, sync);
  });
  if (!deadlock) {
    a.join();
    b.join();
    std::puts("no deadlock: both fibers finished");
    return 0;
  }
  // The report comes from weft's reactor thread WEFT_DEADLOCK_MS after the last switch.
  if (!a.wait_for(std::chrono::seconds(5))) {
    std::fprintf(stderr, "deadlock example: the fibers are deadlocked, as intended; exiting\n");
    std::fflush(stderr);
    ::_exit(3);
  }
  return 1;  // not reached: the cycle cannot resolve
}
