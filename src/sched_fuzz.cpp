// src/sched_fuzz.cpp - seed resolution and the injected-yield point of the schedule fuzzer
// (the protocol and what it randomizes: sched_fuzz.hpp).
#include "sched_fuzz.hpp"

#include "tsan_scope.hpp"
#include "sync/wait_list.hpp"
#include "worker.hpp"

#include <weft/fiber.hpp>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>

namespace weft::detail {

namespace {
std::atomic<std::uint64_t> last_seed{0};
}  // namespace

std::uint64_t last_schedule_seed() noexcept { return last_seed.load(std::memory_order_relaxed); }

void note_schedule_seed(std::uint64_t seed) noexcept {
  last_seed.store(seed, std::memory_order_relaxed);  // relaxed: printed in reports only
}

std::uint64_t resolve_schedule_seed(std::uint64_t option) noexcept {
  std::uint64_t seed = option;
  if (seed == 0) {
    const char* env = std::getenv("WEFT_SCHED_SEED");
    if (env && *env) {
      if (std::strcmp(env, "random") == 0) {
        std::random_device rd;
        seed = (std::uint64_t{rd()} << 32) | rd();
      } else {
        char* end = nullptr;
        seed = std::strtoull(env, &end, 0);
        if (end == env || *end != '\0') {
          std::fprintf(stderr,
                       "weft: WEFT_SCHED_SEED=%s is not a number or 'random'; schedule "
                       "fuzzing stays off\n",
                       env);
          seed = 0;
        }
      }
    }
  }
  if (seed != 0) {
    std::fprintf(stderr,
                 "weft: schedule fuzzing on, seed %llu (WEFT_SCHED_SEED=%llu replays it; "
                 "exactly so on one worker)\n",
                 static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
    note_schedule_seed(seed);
  }
  return seed;
}

void fuzz_point() noexcept {
  worker* w = current_worker();
  if (!w || !w->fuzz().on() || !w->current()) return;
  // An injected yield inside a no_suspend_scope would be a suspension the program did not
  // make (and would abort it): the scope's code is run as written.
  if (w->suspension_forbidden()) return;
  bool go;
  {
    // The generator is the worker's, shared by every fiber it runs: an internal access
    // (tsan_scope.hpp), or TSan's fiber mode would see fibers race on it.
    tsan_internal_scope internal;
    go = w->fuzz().one_in(4);
  }
  if (go) w->yield(w->current());
}

namespace {

// Choice 8, the release-window hook. Only on a fuzzing runtime's worker: a plain thread
// has no generator (and no seed to replay).
void fuzz_window(const void*, release_point p) noexcept {
  if (p == release_point::done) return;  // nothing of the object is left to touch
  worker* w = current_worker();
  if (!w || !w->fuzz().on()) return;
  std::int64_t spin;
  {
    tsan_internal_scope internal;  // the worker's generator, as in fuzz_point
    if (!w->fuzz().one_in(8)) return;
    spin = static_cast<std::int64_t>(w->fuzz().below(linger_ns));
  }
  const std::int64_t until = steady_ns() + spin;
  while (steady_ns() < until)
    for (int i = 0; i < 32; ++i) __builtin_ia32_pause();
}

std::mutex windows_mu;
int windows_refs = 0;  // guarded by windows_mu

}  // namespace

fuzz_windows_ref::fuzz_windows_ref(bool on) noexcept : on_(on) {
  if (!on_) return;
  std::lock_guard<std::mutex> g(windows_mu);
  if (windows_refs++ == 0) {
    release_hook expected = nullptr;
    // relaxed: as set_release_hook (installed before this runtime's workers start).
    release_hook_now.compare_exchange_strong(expected, &fuzz_window, std::memory_order_relaxed);
  }
}

fuzz_windows_ref::~fuzz_windows_ref() {
  if (!on_) return;
  std::lock_guard<std::mutex> g(windows_mu);
  if (--windows_refs == 0) {
    release_hook expected = &fuzz_window;
    // relaxed: this runtime's workers are joined; a worker of another runtime that still
    // loaded the old value calls a function that stays valid.
    release_hook_now.compare_exchange_strong(expected, nullptr, std::memory_order_relaxed);
  }
}

int fuzz_one_in(unsigned n) noexcept {
  worker* w = current_worker();
  if (!w || !w->fuzz().on()) return -1;
  tsan_internal_scope internal;  // the worker's generator, as in fuzz_point
  return w->fuzz().one_in(n) ? 1 : 0;
}

}  // namespace weft::detail
