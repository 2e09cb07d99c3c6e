// tests/spawn_options_test.cpp - weft::spawn_options: fiber names (this_fiber::name; the
// stall report is checked in diag_test) and per-fiber stack sizes (size-classed stack
// pools, never run inline by a join, never reused for a task of another size), and clear
// errors for bad sizes, at 1, 2 and 4 workers.
#include "weft_test.hpp"

#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

class SpawnOptions : public weft_test {};
WEFT_INSTANTIATE(SpawnOptions);

// Uses `bytes` of the calling stack, touching it from the top down (the order a growing
// stack is touched in, so an overflow faults in the guard page instead of jumping it).
// Returns a value that depends on every page so nothing is optimised away.
__attribute__((noinline)) int use_stack(std::size_t bytes) {
  constexpr std::size_t chunk = 16 * 1024;
  if (bytes < chunk) return 1;
  volatile char buf[chunk];
  for (std::size_t i = chunk; i-- > 0;)
    if (i % 1024 == 0) buf[i] = static_cast<char>(i >> 10);
  return use_stack(bytes - chunk) + buf[0] + buf[chunk - 1024];
}

TEST_P(SpawnOptions, NamesAreCopiedAndSeenByTheFiberOnly) {
  sched().block_on([] {
    EXPECT_EQ(weft::this_fiber::name(), "");  // block_on's fiber: unnamed
    char name[16];
    std::strcpy(name, "conn-42");
    auto h = weft::spawn(weft::spawn_options{.name = name}, [] {
      weft::this_fiber::yield();  // names stay with the fiber wherever it resumes
      auto child = weft::spawn([] { return std::string(weft::this_fiber::name()); });
      return std::string(weft::this_fiber::name()) + "/" + child.join();
    });
    std::strcpy(name, "changed");  // copied at spawn
    EXPECT_EQ(h.join(), "conn-42/");  // children do not inherit it
    auto empty = weft::spawn(weft::spawn_options{.name = ""},
                             [] { return weft::this_fiber::name().empty(); });
    EXPECT_TRUE(empty.join());
  });
  EXPECT_EQ(weft::this_fiber::name(), "");  // a plain thread
  auto h = sched().spawn(weft::spawn_options{.name = "from-outside"},
                         [] { return std::string(weft::this_fiber::name()); });
  EXPECT_EQ(h.join(), "from-outside");
}

TEST_P(SpawnOptions, BadStackSizesAreRejectedWithNothingSpawned) {
  sched().block_on([] {
    try {
      (void)weft::spawn(weft::spawn_options{.stack_size = 1000}, [] {});
      ADD_FAILURE() << "a 1000-byte stack was accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("stack_size"), std::string::npos) << e.what();
    }
    EXPECT_THROW((void)weft::spawn(weft::spawn_options{.stack_size = (std::size_t{1} << 30) + 1}, [] {}),
                 std::invalid_argument);
  });
  EXPECT_THROW((void)sched().spawn(weft::spawn_options{.stack_size = 1}, [] {}),
               std::invalid_argument);
  // Named and rejected: the copied name is freed with the unpublished task (ASan's leak
  // check in the asan build).
  EXPECT_THROW((void)sched().spawn(weft::spawn_options{.name = "x", .stack_size = 1}, [] {}),
               std::invalid_argument);
}

// A fiber with a 1 MiB stack uses 600 KiB of it. The default stack is 64 KiB, so a fiber
// that got a default stack (or ran inline on its joiner's) would fault in the guard page.
TEST_P(SpawnOptions, BigStackFibersGetTheirOwnStack) {
  constexpr std::size_t big = 1 << 20, used = 600 * 1024;
  sched().block_on([&] {
    // Joined at once: a default-stack joiner must not run it inline (join step 2).
    EXPECT_GT(weft::spawn(weft::spawn_options{.stack_size = big}, [&] { return use_stack(used); }).join(), 0);
    // Interleaved with default-stack fibers, spawned before any runs: a finishing fiber
    // runs the next local task on its own stack only when that task's size class is its
    // own (fiber_main), and stacks are reused by class (the sized pool).
    for (int round = 0; round < 3; ++round) {
      std::vector<weft::join_handle<int>> hs;
      for (int i = 0; i < 24; ++i) {
        if (i % 2)
          hs.push_back(weft::spawn(weft::spawn_options{.stack_size = big}, [&] { return use_stack(used); }));
        else if (i % 4 == 0)
          hs.push_back(weft::spawn(weft::spawn_options{.stack_size = 32 * 1024}, [] { return use_stack(16 * 1024); }));
        else
          hs.push_back(weft::spawn([] { return use_stack(16 * 1024); }));
      }
      for (auto& h : hs) EXPECT_GT(h.join(), 0);
    }
  });
  // From a plain thread too.
  auto h = sched().spawn(weft::spawn_options{.name = "big", .stack_size = big},
                         [&] { return use_stack(used); });
  EXPECT_GT(h.join(), 0);
}

}  // namespace
