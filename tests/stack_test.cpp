// tests/stack_test.cpp - guarded stacks: sizes, the guard page, the overflow report,
// allocation failure reported through join(), and the stack-clash caveat.
#include "runtime.hpp"
#include "stack.hpp"


#include "weft_test.hpp"

#include <csignal>
#include <cstring>
#include <string>
#include <sys/mman.h>
#include <sys/resource.h>
#include <system_error>
#include <thread>
#include <unistd.h>

namespace {

using weft::detail::page_size;

TEST(Stack, SizesAreRoundedToPagesAndUsable) {
  auto s = weft::detail::stack_allocate(weft::detail::round_to_pages(20000), page_size());
  EXPECT_EQ(s.size % page_size(), 0u);
  EXPECT_GE(s.size, 20000u);
  EXPECT_EQ(static_cast<char*>(s.lo) - static_cast<char*>(s.base),
            static_cast<std::ptrdiff_t>(page_size()));
  std::memset(s.lo, 0xab, s.size);  // the whole usable range is writable
  weft::detail::stack_release(s);
}

TEST(StackDeathTest, TouchingTheGuardFaults) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto s = weft::detail::stack_allocate(16 * 1024, page_size());
  EXPECT_DEATH(static_cast<volatile char*>(s.lo)[-1] = 1, "");
  weft::detail::stack_release(s);
}

// Recurses until the guard page stops it.
int recurse(int n) {
  volatile char frame[512];
  frame[0] = static_cast<char>(n);
  return n == 0 ? frame[0] : recurse(n + 1) + frame[0];
}

TEST(StackDeathTest, OverflowIsReportedWithFiberIdAndSize) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        weft::scheduler s({.workers = 1});
        s.block_on([] { return recurse(1); });
      },
      ::testing::KilledBySignal(SIGSEGV),
      "weft: fiber [0-9]+ overflowed its [0-9]+ KiB stack \\(fault address 0x[0-9a-f]+");
}

void user_segv_handler(int, siginfo_t*, void*) {
  const char msg[] = "user handler ran\n";
  ssize_t r = write(2, msg, sizeof msg - 1);
  (void)r;
  _exit(7);
}

TEST(StackDeathTest, OtherSegfaultsChainToThePreviousHandler) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        struct sigaction sa {};
        sa.sa_sigaction = user_segv_handler;
        sa.sa_flags = SA_SIGINFO;
        sigaction(SIGSEGV, &sa, nullptr);
        weft::scheduler s({.workers = 1});
        // A PROT_NONE page that is no fiber's guard (a null store would be caught by UBSan).
        void* p = mmap(nullptr, page_size(), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        s.block_on([p] { *static_cast<volatile int*>(p) = 1; });
      },
      ::testing::ExitedWithCode(7), "user handler ran");
}

// Spawns 64 sleeping fibers and returns the first join error (empty if none).
std::string first_join_error(int fibers = 64) {
  std::vector<weft::join_handle<void>> hs;
  for (int i = 0; i < fibers; ++i)
    hs.push_back(weft::spawn([] { weft::this_fiber::sleep_for(std::chrono::milliseconds(20)); }));
  std::string first_error;
  for (auto& h : hs) {
    try {
      h.join();
    } catch (const std::system_error& e) {
      if (first_error.empty()) first_error = e.what();
    }
  }
  return first_error;
}

TEST(Stack, InjectedAllocationFailureIsReportedThroughJoin) {
  // Stack mapping fails for new fibers; those fibers fail with a system_error naming
  // the cause, the ones that got a stack complete normally, and the scheduler recovers.
  weft::scheduler s({.workers = 1, .stack_cache = 0});
  weft::detail::stack_inject_failure_after(8);
  std::string msg = s.block_on([] { return first_join_error(); });
  weft::detail::stack_inject_failure_after(-1);
  EXPECT_NE(msg.find("cannot allocate a fiber stack: mmap failed"), std::string::npos) << msg;
  EXPECT_EQ(s.block_on([] { return first_join_error(); }), "");
}

TEST(Stack, AWaveBeyondThePoolIsServedFromTheSpareList) {
  // 30 fibers alive at once against a pool of 8: the first wave's stacks end up in the
  // worker's pool and, moved in batches, in the runtime's spare list (its capacity is at
  // least 4 pools: all fit). The second wave, with new mappings failing, must get every
  // stack back from there.
  weft::scheduler s({.workers = 1, .stack_cache = 8});
  EXPECT_EQ(s.block_on([] { return first_join_error(30); }), "");
  weft::detail::stack_inject_failure_after(0);
  const std::string second = s.block_on([] { return first_join_error(30); });
  weft::detail::stack_inject_failure_after(-1);
  EXPECT_EQ(second, "") << "a stack of the first wave was lost between pool and spare list";
}

TEST(Stack, ABurstsSpareFibersAreUnmappedAfterASecondIdle) {
  // 600 fibers alive at once: beyond the per-worker pools (16 each here) their stacks go to
  // the runtime's spare list for the next burst. Once the process goes idle, the list is
  // unmapped a second after its last use, although no work or timer wakes the workers.
  weft::scheduler s({.workers = 2, .stack_cache = 16});
  s.block_on([] {
    std::vector<weft::join_handle<void>> hs;
    for (int i = 0; i < 600; ++i)
      hs.push_back(weft::spawn([] { weft::this_fiber::sleep_for(std::chrono::milliseconds(20)); }));
    for (auto& h : hs) h.join();
  });
  weft::detail::runtime& rt = s.runtime_();
  EXPECT_GT(rt.spare_fiber_count(), 0u) << "the burst left no spare fibers to trim";
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (rt.spare_fiber_count() != 0 && std::chrono::steady_clock::now() < give_up)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(rt.spare_fiber_count(), 0u) << "spare fibers kept by an idle scheduler";
  // The next burst still works (maps new stacks).
  EXPECT_EQ(s.block_on([] { return first_join_error(); }), "");
}

}  // namespace
