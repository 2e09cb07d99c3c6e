// tests/fiber_exception_test.cpp - exception state belongs to the fiber, not to the worker
// thread: a fiber that suspends inside a catch block, or while its stack unwinds, keeps its
// own current_exception(), `throw;` target and uncaught_exceptions() however many other
// fibers throw, catch and suspend on the same thread (or it resumes on another).
//
// Mutation that fails every test here: drop the save/restore of the thread's exception
// globals in worker::switch_to (src/worker.cpp). On one worker the first two tests then see
// the other fiber's exception (or crash when the caught-exception stack is popped twice).
#include "weft_test.hpp"

#include <atomic>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

class FiberException : public weft_test {};
WEFT_INSTANTIATE(FiberException);

struct tagged_error : std::runtime_error {
  explicit tagged_error(int t) : std::runtime_error("tagged " + std::to_string(t)), tag(t) {}
  int tag;
};

// The tag of the exception currently handled by this fiber, or -1.
int current_tag() {
  std::exception_ptr p = std::current_exception();
  if (!p) return -1;
  try {
    std::rethrow_exception(p);
  } catch (const tagged_error& e) {
    return e.tag;
  } catch (...) {
    return -2;
  }
}

// Two fibers, forced to interleave inside their catch blocks by events: A catches 1 and
// suspends; B catches 2 and suspends; A resumes and must still be handling 1, `throw;`
// must rethrow 1; then B must still be handling 2.
TEST_P(FiberException, SuspendedCatchBlocksKeepTheirOwnException) {
  weft::event a_caught, b_caught, a_checked;
  std::atomic<int> a_seen{0}, a_rethrown{0}, b_seen{0}, b_rethrown{0};
  auto a = sched().spawn([&] {
    try {
      throw tagged_error(1);
    } catch (...) {
      a_caught.set();
      b_caught.wait();  // B throws and catches 2 meanwhile, maybe on this thread
      a_seen = current_tag();
      try {
        throw;
      } catch (const tagged_error& e) {
        a_rethrown = e.tag;
      }
    }
    a_checked.set();
  });
  auto b = sched().spawn([&] {
    a_caught.wait();
    try {
      throw tagged_error(2);
    } catch (...) {
      b_caught.set();
      a_checked.wait();  // A inspects and leaves its catch block meanwhile
      b_seen = current_tag();
      try {
        throw;
      } catch (const tagged_error& e) {
        b_rethrown = e.tag;
      }
    }
  });
  a.join();
  b.join();
  EXPECT_EQ(a_seen.load(), 1);
  EXPECT_EQ(a_rethrown.load(), 1);
  EXPECT_EQ(b_seen.load(), 2);
  EXPECT_EQ(b_rethrown.load(), 2);
}

// A fiber whose stack is unwinding (a destructor suspends during the unwind) counts one
// uncaught exception; another fiber running meanwhile on the same thread counts none.
TEST_P(FiberException, UncaughtExceptionsIsPerFiber) {
  weft::event unwinding, other_checked;
  std::atomic<int> in_dtor_before{-1}, in_dtor_after{-1}, other{-1};
  struct suspends_in_dtor {
    weft::event& unwinding;
    weft::event& other_checked;
    std::atomic<int>& before;
    std::atomic<int>& after;
    ~suspends_in_dtor() {
      before = std::uncaught_exceptions();
      unwinding.set();
      other_checked.wait();
      after = std::uncaught_exceptions();
    }
  };
  auto a = sched().spawn([&] {
    try {
      suspends_in_dtor guard{unwinding, other_checked, in_dtor_before, in_dtor_after};
      throw tagged_error(7);
    } catch (const tagged_error&) {
    }
  });
  auto b = sched().spawn([&] {
    unwinding.wait();
    other = std::uncaught_exceptions();
    other_checked.set();
  });
  a.join();
  b.join();
  EXPECT_EQ(in_dtor_before.load(), 1);
  EXPECT_EQ(in_dtor_after.load(), 1);
  EXPECT_EQ(other.load(), 0);
}

// Many fibers catch, suspend inside the handler (yield, sleep), inspect and rethrow,
// across workers; each must only ever see its own exception. Before exception state was
// per fiber, 200 such fibers on 2 workers crashed (the caught stack was freed twice).
TEST_P(FiberException, ManyFibersSuspendInsideHandlers) {
  constexpr int fibers = 200;
  constexpr int rounds = 10;
  std::atomic<int> wrong{0}, ok{0};
  std::vector<weft::join_handle<void>> hs;
  for (int f = 0; f < fibers; ++f) {
    hs.push_back(sched().spawn([&, f] {
      for (int r = 0; r < rounds; ++r) {
        const int tag = f * rounds + r;
        try {
          try {
            throw tagged_error(tag);
          } catch (...) {
            if (r % 3 == 0)
              weft::this_fiber::sleep_for(std::chrono::microseconds(50));
            else
              weft::this_fiber::yield();
            if (current_tag() != tag) wrong.fetch_add(1);
            if (std::uncaught_exceptions() != 0) wrong.fetch_add(1);
            throw;  // must rethrow this fiber's own exception
          }
        } catch (const tagged_error& e) {
          if (e.tag == tag)
            ok.fetch_add(1);
          else
            wrong.fetch_add(1);
        }
        if (std::current_exception()) wrong.fetch_add(1);  // no handler active here
      }
    }));
  }
  for (auto& h : hs) h.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(ok.load(), fibers * rounds);
}

// A fiber that leaves its catch block by suspending and coming back on (possibly) another
// worker: nothing of its handler leaks into the thread it left, and an exception_ptr taken
// inside the handler stays valid and names its own exception.
TEST_P(FiberException, ExceptionPtrTakenInsideHandlerSurvivesMigration) {
  std::atomic<int> wrong{0};
  std::vector<weft::join_handle<void>> hs;
  for (int f = 0; f < 64; ++f) {
    hs.push_back(sched().spawn([&, f] {
      std::exception_ptr kept;
      try {
        throw tagged_error(f);
      } catch (...) {
        for (int i = 0; i < 5; ++i) weft::this_fiber::yield();
        kept = std::current_exception();
      }
      weft::this_fiber::yield();
      try {
        std::rethrow_exception(kept);
      } catch (const tagged_error& e) {
        if (e.tag != f) wrong.fetch_add(1);
      }
    }));
  }
  for (auto& h : hs) h.join();
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
