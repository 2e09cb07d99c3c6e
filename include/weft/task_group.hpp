// weft/task_group.hpp - weft::task_group: spawn many fibers, join them all, and stop the
// rest when one fails.
//
//   weft::task_group g;
//   for (auto& shard : shards) g.spawn([&] { scan(shard); });
//   g.join();                      // all finished; rethrows the first failure
//
// The first child to throw asks every other child to stop (join_handle::request_stop:
// cooperative, see "Cancellation and deadlines" in README.md; a child sees it through
// this_fiber::stop_requested() and its sleeps end early). join() still waits for every
// child, then rethrows that first exception; later ones are dropped. The destructor asks
// every unfinished child to stop and waits for all of them: a group never leaks a child
// (and never throws from its destructor; an exception not collected by join() is dropped).
//
// Any fiber or thread may join or destroy the group; spawn() is fiber context only (as
// weft::spawn), and a child may spawn into its own group. join() and the destructor must
// not run concurrently with each other, nor from one of the group's own children.
#pragma once

#include <weft/fiber.hpp>
#include <weft/sync/mutex.hpp>

#include <cstddef>
#include <deque>
#include <exception>
#include <mutex>
#include <utility>

namespace weft {

class task_group {
public:
  task_group() = default;
  task_group(const task_group&) = delete;
  task_group& operator=(const task_group&) = delete;
  ~task_group() {
    request_stop();
    wait_all();
    std::lock_guard<mutex> g(mu_);
    for (auto& h : children_) h.join();  // all finished: returns at once, never throws
  }

  // Spawns f(args...) as a child (its result is discarded; an exception fails the group).
  template <class F, class... Args>
  void spawn(F&& f, Args&&... args) {
    std::lock_guard<mutex> g(mu_);
    children_.push_back(weft::spawn(
        [this](auto&& fn, auto&&... as) {
          try {
            (void)std::forward<decltype(fn)>(fn)(std::forward<decltype(as)>(as)...);
          } catch (...) {
            fail(std::current_exception());
          }
        },
        std::forward<F>(f), std::forward<Args>(args)...));
    if (stopping_) (void)children_.back().request_stop();  // the group already failed
  }

  // Waits until every child (including those spawned meanwhile by children) finished;
  // then rethrows the first failure, if any (once: the group is then clean again).
  void join() {
    wait_all();
    std::exception_ptr e;
    {
      std::lock_guard<mutex> g(mu_);
      for (auto& h : children_) h.join();  // finished: returns at once
      children_.clear();
      e = std::exchange(first_error_, nullptr);
      stopping_ = false;
    }
    if (e) std::rethrow_exception(e);
  }

  // Asks every child spawned so far to stop (cooperative). Any fiber or thread.
  void request_stop() {
    std::lock_guard<mutex> g(mu_);
    stop_locked();
  }

private:
  // Waits for each child without joining it (join_handle::wait_until leaves the handle
  // for request_stop(), which a failing child may call meanwhile), until no child was
  // added during the pass.
  void wait_all() {
    for (std::size_t done = 0;;) {
      const join_handle<void>* h;
      {
        std::lock_guard<mutex> g(mu_);
        if (done == children_.size()) return;
        h = &children_[done];  // a deque: push_back keeps the address
      }
      (void)h->wait_until(clock::time_point::max());
      ++done;
    }
  }
  void fail(std::exception_ptr e) noexcept {
    std::lock_guard<mutex> g(mu_);
    if (!first_error_) first_error_ = std::move(e);
    stop_locked();
  }
  void stop_locked() noexcept {
    stopping_ = true;
    for (auto& h : children_) (void)h.request_stop();
  }

  mutex mu_;
  std::deque<join_handle<void>> children_;  // guarded by mu_
  std::exception_ptr first_error_;          // guarded by mu_
  bool stopping_ = false;                   // guarded by mu_
};

}  // namespace weft
