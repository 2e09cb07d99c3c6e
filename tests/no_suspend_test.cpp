// tests/no_suspend_test.cpp - this_fiber::no_suspend_scope: a suspension inside one aborts
// with a message naming it (at the suspension, whichever kind), a leaked scope aborts when
// its fiber finishes, and code that does not suspend runs inside one as written, under
// schedule fuzzing too (which must not inject its yields there).
#include "weft_test.hpp"

#include <atomic>
#include <chrono>
#include <optional>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;

constexpr const char* suspended_msg = "suspended inside a this_fiber::no_suspend_scope";

// Each death test: a scheduler whose fiber opens a scope and then suspends in one way.
// Mutation: drop the no_suspend_ check from worker::switch_hook and none of them dies.
TEST(NoSuspendDeathTest, YieldInsideAScopeAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        weft::scheduler s({.workers = 2});
        s.block_on([] {
          weft::this_fiber::no_suspend_scope scope;
          weft::this_fiber::yield();
        });
      },
      suspended_msg);
}

TEST(NoSuspendDeathTest, SleepInsideANestedScopeAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        weft::scheduler s({.workers = 1});
        s.block_on([] {
          weft::this_fiber::no_suspend_scope outer;
          { weft::this_fiber::no_suspend_scope inner; }
          weft::this_fiber::sleep_for(1ms);  // the outer scope is still open
        });
      },
      suspended_msg);
}

TEST(NoSuspendDeathTest, BlockingWaitInsideAScopeAbortsAndNamesTheFiber) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        weft::scheduler s({.workers = 2});
        weft::event e;
        std::thread setter([&] {  // ends the wait, so that a missed trap fails, not hangs
          std::this_thread::sleep_for(100ms);
          e.set();
        });
        s.spawn(weft::spawn_options{.name = "holds-tls"}, [&] {
           weft::this_fiber::no_suspend_scope scope;
           e.wait();
         }).join();
        setter.join();
      },
      "\\(holds-tls\\) on worker [0-9]+ suspended");
}

// The task ends with a child queued on its worker, which the fiber would run next on the
// same stack without a switch. Mutation: drop the end-of-task check from
// worker::task_hook and the child runs inside the leaked scope (its yield is then what
// aborts, with the other message).
TEST(NoSuspendDeathTest, AFiberThatFinishesWithAScopeOpenAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        weft::scheduler s({.workers = 1});
        s.block_on([] {
          weft::spawn([] { weft::this_fiber::yield(); }).detach();
          new weft::this_fiber::no_suspend_scope;  // leaked on purpose
        });
      },
      "finished with a this_fiber::no_suspend_scope still open");
}

// Code that does not suspend runs inside a scope, and after the scope closes the fiber may
// suspend again. Under schedule fuzzing: spawn, channel sends and uncontended locks are
// points where fuzzing injects yields; inside a scope it must not (mutation: drop the
// suspension_forbidden() check from fuzz_point and this test aborts).
TEST(NoSuspendScope, CodeThatDoesNotSuspendRunsInsideAScope) {
  for (std::uint64_t seed : {0ull, 1ull, 7ull, 42ull}) {
    weft::scheduler s({.workers = 2, .schedule_seed = seed});
    std::atomic<int> children{0};
    const int total = s.block_on([&] {
      int sum = 0;
      weft::channel<int> ch(64);
      weft::mutex m;
      std::vector<weft::join_handle<void>> hs;
      for (int round = 0; round < 50; ++round) {
        {
          weft::this_fiber::no_suspend_scope scope;
          weft::this_fiber::no_suspend_scope nested;
          hs.push_back(weft::spawn([&] { children.fetch_add(1); }));
          EXPECT_EQ(ch.send(round), weft::channel_status::ok);  // buffered: never blocks
          m.lock();  // uncontended: only this fiber takes it
          ++sum;
          m.unlock();
          weft::event e;
          e.set();
          e.wait();  // already set: returns without suspending
        }
        weft::this_fiber::yield();  // outside the scope: allowed
        const std::optional<int> v = ch.recv();
        EXPECT_EQ(v, std::optional<int>(round));
      }
      for (auto& h : hs) h.join();
      return sum;
    });
    EXPECT_EQ(total, 50) << "seed " << seed;
    EXPECT_EQ(children.load(), 50) << "seed " << seed;
  }
}

// A join that runs its not-yet-started child inline, on the joiner's own stack, does not
// suspend; the child's end is not the end of the task that opened the scope. (One worker:
// nobody can steal the child first, so the join always runs it inline.) Mutation: make
// task_hook's end check ignore whether the ending task ran inline and this aborts.
TEST(NoSuspendScope, AJoinThatRunsItsChildInlineIsNotASuspension) {
  weft::scheduler s({.workers = 1});
  const int v = s.block_on([] {
    weft::this_fiber::no_suspend_scope scope;
    auto child = weft::spawn([] { return 42; });
    return child.join();
  });
  EXPECT_EQ(v, 42);
}

TEST(NoSuspendScope, OnAPlainThreadItForbidsNothing) {
  weft::this_fiber::no_suspend_scope scope;
  weft::event e;
  std::thread t([&] {
    std::this_thread::sleep_for(2ms);
    e.set();
  });
  e.wait();  // blocks this thread: not a fiber suspension
  weft::this_fiber::yield();
  t.join();
  SUCCEED();
}

}  // namespace
