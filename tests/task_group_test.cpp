// tests/task_group_test.cpp - weft::task_group at 1, 2 and 4 workers: join waits for every
// child (also those spawned by children), the first failure stops the others and is
// rethrown once, and the destructor stops and joins whatever is still running.
#include "weft_test.hpp"
#include "watchdog.hpp"

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>

namespace {

using namespace std::chrono_literals;

class TaskGroup : public weft_test {};
WEFT_INSTANTIATE(TaskGroup);

// Runs until its stop is requested (a child that only a cancellation ends).
void until_stopped(std::atomic<int>& ended) {
  while (!weft::this_fiber::stop_requested()) weft::this_fiber::sleep_for(1ms);
  ended.fetch_add(1);
}

TEST_P(TaskGroup, JoinWaitsForEveryChildIncludingGrandchildren) {
  std::atomic<int> ran{0};
  sched().block_on([&] {
    weft::task_group g;
    for (int i = 0; i < 50; ++i)
      g.spawn([&, i] {
        if (i % 10 == 0) g.spawn([&] { ran.fetch_add(1); });  // into its own group
        weft::this_fiber::yield();
        ran.fetch_add(1);
      });
    g.join();
    EXPECT_EQ(ran.load(), 55);
    g.join();  // empty: returns at once
  });
}

TEST_P(TaskGroup, FirstFailureStopsTheRestAndIsRethrownOnce) {
  watchdog dog("FirstFailureStopsTheRestAndIsRethrownOnce");
  std::atomic<int> ended{0};
  sched().block_on([&] {
    weft::task_group g;
    for (int i = 0; i < 8; ++i) g.spawn([&] { until_stopped(ended); });
    g.spawn([] {
      weft::this_fiber::sleep_for(2ms);
      throw std::runtime_error("first");
    });
    try {
      g.join();
      ADD_FAILURE() << "join did not rethrow";
    } catch (const std::runtime_error& e) {
      EXPECT_EQ(std::string(e.what()), "first");
    }
    EXPECT_EQ(ended.load(), 8);  // all stopped and finished before join returned
    // Later failures (while stopping) are dropped; a child spawned after the failure is
    // stopped at once.
    g.spawn([] { throw std::runtime_error("a"); });
    g.spawn([] {
      weft::this_fiber::sleep_for(1ms);
      throw std::logic_error("b");
    });
    weft::this_fiber::sleep_for(3ms);
    g.spawn([&] { until_stopped(ended); });
    int caught = 0;
    try {
      g.join();
    } catch (const std::exception&) {
      ++caught;
    }
    EXPECT_EQ(caught, 1);
    EXPECT_EQ(ended.load(), 9);
    g.join();  // the error was collected: clean again
  });
}

TEST_P(TaskGroup, DestructorStopsAndJoinsTheChildren) {
  watchdog dog("DestructorStopsAndJoinsTheChildren");
  std::atomic<int> ended{0};
  sched().block_on([&] {
    {
      weft::task_group g;  // only the destructor's request ends these
      for (int i = 0; i < 10; ++i) g.spawn([&] { until_stopped(ended); });
    }
    EXPECT_EQ(ended.load(), 10);
    {
      weft::task_group g;
      g.spawn([] { throw std::runtime_error("never collected"); });  // dropped, not terminate
    }
  });
  // Joined from a plain thread too (the children were spawned from a fiber).
  weft::task_group* g = nullptr;
  sched().block_on([&] {
    g = new weft::task_group;
    for (int i = 0; i < 4; ++i) g->spawn([&] { until_stopped(ended); });
  });
  g->request_stop();
  g->join();
  EXPECT_EQ(ended.load(), 14);
  delete g;
}

// A stopped fiber's group still waits for every child: its stop ends the children's waits,
// not the group's wait for them. Here the child holds out on an uncancellable mutex and
// then fails, which takes the group's lock: had the destructor's wait for the children
// returned early (ended by the parent's own stop request), it would join under that lock
// and the child's failure would deadlock with it. Mutation: make a join_handle's
// wait_until(time_point::max()) cancellable (task_wait_until, w.cancellable = true) - the
// test hangs (watchdog).
TEST_P(TaskGroup, StoppedParentStillWaitsForItsChildren) {
  watchdog dog("StoppedParentStillWaitsForItsChildren");
  weft::mutex m;
  std::atomic<bool> child_failed{false};
  weft::event child_waiting;
  m.lock();  // from this plain thread (a weft::mutex works from threads too)
  auto parent = sched().spawn([&] {
    weft::task_group g;
    g.spawn([&] {
      child_waiting.set();
      std::lock_guard<weft::mutex> hold(m);  // not cancellable: waits for the test
      child_failed = true;
      throw std::runtime_error("child failed after its parent was stopped");
    });
    (void)child_waiting.wait();
    weft::this_fiber::sleep_for(std::chrono::hours(1));  // ended by the stop request
    // ~task_group: stops the child (its mutex wait goes on) and must wait for it.
  });
  sched().block_on([&] { (void)child_waiting.wait(); });
  EXPECT_TRUE(parent.request_stop());
  // Give the parent time to reach the group's destructor and wait there; the check below
  // does not depend on it (either order must end).
  std::this_thread::sleep_for(20ms);
  m.unlock();
  parent.join();
  EXPECT_TRUE(child_failed.load());
}

}  // namespace
