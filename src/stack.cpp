// src/stack.cpp - see stack.hpp for the layout and the VMA cost of guard pages.
#include "stack.hpp"

#include "sanitizers.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <string>
#include <system_error>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102  // Linux 6.13 uapi value; older headers lack it
#endif
#ifndef PIDFD_SELF
#define PIDFD_SELF (-10000)  // Linux 6.14 uapi value (PIDFD_SELF_THREAD): "this process' mm"
#endif

namespace weft::detail {
namespace {

long read_long_file(const char* path) {
  std::ifstream in(path);
  long v = -1;
  if (in) in >> v;
  return v;
}

long count_maps() {
  std::ifstream in("/proc/self/maps");
  long n = 0;
  std::string line;
  while (std::getline(in, line)) ++n;
  return n;
}

// 0 = not probed yet, 1 = madvise guards work, 2 = mprotect fallback. Relaxed: a benign
// race probes twice with the same answer.
std::atomic<int> guard_mode{0};
// Whether process_madvise(PIDFD_SELF, ..., MADV_GUARD_INSTALL) works: 0 = not tried, 1 =
// it does, 2 = it does not (older kernel, seccomp). Relaxed, as guard_mode.
std::atomic<int> batch_mode{0};

}  // namespace

bool stack_install_guard(void* base, std::size_t guard) noexcept {
  int mode = guard_mode.load(std::memory_order_relaxed);
  if (mode != 2) {
    if (madvise(base, guard, MADV_GUARD_INSTALL) == 0) {
      guard_mode.store(1, std::memory_order_relaxed);
      return true;
    }
    if (errno != EINVAL) return false;
    guard_mode.store(2, std::memory_order_relaxed);
  }
  return mprotect(base, guard, PROT_NONE) == 0;
}

// Guards for a carve batch (stack_arena.hpp step 1). One syscall for the batch instead of
// one per stack: W11's first round carves 10^6 stacks, and the per-stack madvise cost
// ~1.1 us against ~0.6 us per guard batched 32 to a call (docs/benchmarks.md, W11). The
// kernel applies the vector in order and stops at the first range that fails, returning
// the bytes done, so a short count means "the stacks before it are guarded"; the failing
// stack is then retried alone, which reports its errno (or succeeds: a transient error).
std::size_t stack_install_guards(char* first, std::size_t stride, std::size_t guard,
                                 std::size_t n) noexcept {
  std::size_t done = 0;
  // The first guard of the process probes guard_mode (madvise or mprotect).
  if (guard_mode.load(std::memory_order_relaxed) == 0 && n > 0) {
    if (!stack_install_guard(first, guard)) return 0;
    done = 1;
  }
  constexpr std::size_t max_iov = 64;  // well under UIO_MAXIOV (1024)
  while (done < n && guard_mode.load(std::memory_order_relaxed) == 1 &&
         batch_mode.load(std::memory_order_relaxed) != 2) {
    iovec iov[max_iov];
    const std::size_t k = std::min(max_iov, n - done);
    for (std::size_t i = 0; i < k; ++i) iov[i] = {first + (done + i) * stride, guard};
    const long r = syscall(SYS_process_madvise, PIDFD_SELF, iov, k, MADV_GUARD_INSTALL, 0u);
    if (r < 0) {
      // Not this kernel's (no PIDFD_SELF, or process_madvise restricted to a few advices):
      // every later batch takes the per-stack path. Any other error belongs to a range
      // and is reported by the per-stack retry below.
      if (errno == EBADF || errno == EINVAL || errno == ENOSYS || errno == EPERM ||
          errno == ESRCH)
        batch_mode.store(2, std::memory_order_relaxed);
      break;
    }
    batch_mode.store(1, std::memory_order_relaxed);
    const std::size_t whole = static_cast<std::size_t>(r) / guard;
    done += whole;
    if (whole < k) break;  // the stack at `done` failed: retried alone below
  }
  for (; done < n; ++done)
    if (!stack_install_guard(first + done * stride, guard)) break;
  return done;
}

[[noreturn]] void throw_stack_error(const char* call, int err) {
  std::string msg = std::string("weft: cannot allocate a fiber stack: ") + call + " failed";
  if (err == ENOMEM) {
    long max = read_long_file("/proc/sys/vm/max_map_count");
    long cur = count_maps();
    if (max > 0 && cur + 64 >= max)
      msg += " (the process has " + std::to_string(cur) + " of vm.max_map_count=" +
             std::to_string(max) + " mappings)";
    else
      msg += " (out of memory or address space, e.g. RLIMIT_AS)";
  }
  throw std::system_error(err, std::generic_category(), msg);
}

std::size_t page_size() noexcept {
  static const std::size_t p = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  return p;
}

std::size_t round_to_pages(std::size_t n) noexcept {
  const std::size_t p = page_size();
  return (n + p - 1) / p * p;
}

namespace {
// relaxed: a test seam; tests set it before the allocations they want to fail.
std::atomic<long> inject_countdown{-1};
}  // namespace

void stack_inject_failure_after(long n) noexcept {
  inject_countdown.store(n, std::memory_order_relaxed);
}

std::size_t stack_injection_allows(std::size_t n) noexcept {
  const long c = inject_countdown.load(std::memory_order_relaxed);
  if (c < 0) return n;
  const std::size_t k = std::min(n, static_cast<std::size_t>(c));
  inject_countdown.store(c - static_cast<long>(k), std::memory_order_relaxed);
  return k;
}

stack stack_allocate(std::size_t usable, std::size_t guard) {
  stack s;
  s.map_size = usable + guard;
  if (long c = inject_countdown.load(std::memory_order_relaxed); c >= 0) {
    if (c == 0) throw_stack_error("mmap", ENOMEM);
    inject_countdown.store(c - 1, std::memory_order_relaxed);
  }
  void* p = mmap(nullptr, s.map_size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (p == MAP_FAILED) throw_stack_error("mmap", errno);
  if (guard > 0 && !stack_install_guard(p, guard)) {
    int err = errno;
    munmap(p, s.map_size);
    throw_stack_error("mprotect (guard page)", err);
  }
  s.base = p;
  s.lo = static_cast<char*>(p) + guard;
  s.size = usable;
  return s;
}

void stack_release(const stack& s) noexcept {
  if (!s.base) return;
#if defined(WEFT_ASAN)
  // A fiber abandoned while suspended leaves poisoned frames (docs/platform.md, ASan).
  ASAN_UNPOISON_MEMORY_REGION(s.lo, s.size);
#endif
  if (!s.in_arena) munmap(s.base, s.map_size);
}

bool guard_without_vma() noexcept {
  if (guard_mode.load(std::memory_order_relaxed) == 0) {
    try {
      stack_release(stack_allocate(page_size(), page_size()));
    } catch (...) {
    }
  }
  return guard_mode.load(std::memory_order_relaxed) == 1;
}

std::size_t stack_cap_from_map_count() noexcept {
  if (guard_without_vma()) return SIZE_MAX;
  long max = read_long_file("/proc/sys/vm/max_map_count");
  if (max <= 0) return SIZE_MAX;
  // Keep a reserve so that pthread_create and malloc still work at the cap (at the limit
  // both fail: docs/platform.md, guard pages).
  long room = max - count_maps() - 2048;
  return room > 0 ? static_cast<std::size_t>(room / 2) : 0;
}

// ---------------------------------------------------------------- overflow report

namespace {

struct sigaction previous_segv;
std::once_flag handler_once;
thread_local void* alt_stack_mem = nullptr;
constexpr std::size_t alt_stack_size = 64 * 1024;

// Async-signal-safe formatting: no stdio, no malloc.
char* put_str(char* p, const char* s) {
  while (*s) *p++ = *s++;
  return p;
}
char* put_dec(char* p, std::uint64_t v) {
  char tmp[24];
  int n = 0;
  do tmp[n++] = static_cast<char>('0' + v % 10); while ((v /= 10) != 0);
  while (n) *p++ = tmp[--n];
  return p;
}
char* put_hex(char* p, std::uintptr_t v) {
  p = put_str(p, "0x");
  for (int i = 60; i >= 0; i -= 4) *p++ = "0123456789abcdef"[(v >> i) & 0xf];
  return p;
}

void chain_previous(int sig, siginfo_t* info, void* uctx) {
  if (previous_segv.sa_flags & SA_SIGINFO) {
    if (previous_segv.sa_sigaction) {
      previous_segv.sa_sigaction(sig, info, uctx);
      return;
    }
  } else if (previous_segv.sa_handler != SIG_DFL && previous_segv.sa_handler != SIG_IGN) {
    previous_segv.sa_handler(sig);
    return;
  }
  // Default action: restore it and return; the faulting instruction faults again and the
  // process dies with SIGSEGV as it would have without us.
  signal(sig, SIG_DFL);
}

void on_segv(int sig, siginfo_t* info, void* uctx) {
  std::uintptr_t lo = 0, hi = 0;
  std::size_t usable = 0;
  std::uint64_t id = 0;
  auto addr = reinterpret_cast<std::uintptr_t>(info->si_addr);
  if (current_fiber_guard(lo, hi, usable, id) && addr >= lo && addr < hi) {
    char buf[256];
    char* p = put_str(buf, "weft: fiber ");
    p = put_dec(p, id);
    p = put_str(p, " overflowed its ");
    p = put_dec(p, usable / 1024);
    p = put_str(p, " KiB stack (fault address ");
    p = put_hex(p, addr);
    p = put_str(p, " is in its guard page [");
    p = put_hex(p, lo);
    p = put_str(p, ", ");
    p = put_hex(p, hi);
    p = put_str(p, "))\n");
    ssize_t ignored = write(STDERR_FILENO, buf, static_cast<std::size_t>(p - buf));
    (void)ignored;
    signal(sig, SIG_DFL);  // re-fault and die with SIGSEGV (core dump possible)
    return;
  }
  chain_previous(sig, info, uctx);
}

}  // namespace

void install_overflow_handler_for_this_thread() {
  std::call_once(handler_once, [] {
    struct sigaction sa {};
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &previous_segv);
  });
  if (alt_stack_mem) return;
  alt_stack_mem = std::malloc(alt_stack_size);
  if (!alt_stack_mem) return;  // no report on this thread; overflow still kills the process
  stack_t ss{};
  ss.ss_sp = alt_stack_mem;
  ss.ss_size = alt_stack_size;
  if (sigaltstack(&ss, nullptr) != 0) {
    std::free(alt_stack_mem);
    alt_stack_mem = nullptr;
  }
}

void remove_overflow_handler_for_this_thread() noexcept {
  if (!alt_stack_mem) return;
  stack_t ss{};
  ss.ss_flags = SS_DISABLE;
  sigaltstack(&ss, nullptr);
  std::free(alt_stack_mem);
  alt_stack_mem = nullptr;
}

}  // namespace weft::detail
