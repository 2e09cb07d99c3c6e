// src/inspect.cpp - the fiber registry, the pause protocol's inspector side and the fiber
// dump (protocol: inspect.hpp).
#include "inspect.hpp"

#include "runtime.hpp"
#include "sync/wait_list.hpp"
#include "tsan_scope.hpp"
#include "worker.hpp"

#include <weft/scheduler.hpp>
#include <weft/sync/mutex.hpp>

#include <map>

#include <algorithm>
#include <cinttypes>
#include <cstring>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cxxabi.h>
#include <fcntl.h>
#include <dlfcn.h>
#include <linux/membarrier.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <thread>
#include <unistd.h>

namespace weft::detail {

struct mutex_peek {
  // relaxed: a report; the holder may change right after (the report says so).
  static std::uintptr_t owner(const mutex& m) noexcept { return m.owner_.load(std::memory_order_relaxed); }
};

const char* wait_kind_name(wait_kind k) noexcept {
  switch (k) {
    case wait_kind::none: return "starting";
    case wait_kind::yield: return "yield";
    case wait_kind::sleep: return "sleep";
    case wait_kind::io: return "fd";
    case wait_kind::join: return "join";
    case wait_kind::blocking: return "run_blocking";
    case wait_kind::mutex: return "mutex";
    case wait_kind::condition_variable: return "condition_variable";
    case wait_kind::event: return "event";
    case wait_kind::semaphore: return "semaphore";
    case wait_kind::wait_group: return "wait_group";
    case wait_kind::latch: return "latch";
    case wait_kind::barrier: return "barrier";
    case wait_kind::channel_send: return "channel send";
    case wait_kind::channel_recv: return "channel recv";
    case wait_kind::select: return "select";
  }
  return "?";
}

// ---------------------------------------------------------------- registry

fiber_registry::fiber_registry(unsigned shards)
    : n_(std::max(1u, shards)), shards_(std::make_unique<shard[]>(n_)) {}

void fiber_registry::add(fiber_impl* f, unsigned shard_index) noexcept {
  f->reg_shard = shard_index % n_;
  shard& s = shards_[f->reg_shard];
  std::lock_guard<std::mutex> g(s.mu);
  f->reg_prev = nullptr;
  f->reg_next = s.head;
  if (s.head) s.head->reg_prev = f;
  s.head = f;
  ++s.n;
}

void fiber_registry::remove(fiber_impl* f) noexcept {
  shard& s = shards_[f->reg_shard];
  std::lock_guard<std::mutex> g(s.mu);
  if (f->reg_prev)
    f->reg_prev->reg_next = f->reg_next;
  else
    s.head = f->reg_next;
  if (f->reg_next) f->reg_next->reg_prev = f->reg_prev;
  f->reg_prev = f->reg_next = nullptr;
  --s.n;
}

std::size_t fiber_registry::size() noexcept {
  std::size_t n = 0;
  for (unsigned i = 0; i < n_; ++i) {
    std::lock_guard<std::mutex> g(shards_[i].mu);
    n += shards_[i].n;
  }
  return n;
}

// ---------------------------------------------------------------- membarrier (step 4)

namespace {
bool membarrier_cmd(int cmd) noexcept {
#if defined(__NR_membarrier)
  return ::syscall(__NR_membarrier, cmd, 0, 0) == 0;
#else
  (void)cmd;
  return false;
#endif
}
}  // namespace

bool membarrier_register() noexcept { return membarrier_cmd(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED); }
bool membarrier_all() noexcept { return membarrier_cmd(MEMBARRIER_CMD_PRIVATE_EXPEDITED); }

namespace {

// The saved context of a suspended fiber (Boost.Context 1.74's jump_fcontext on x86-64
// SysV, checked by objdump and by diag_test): the frame jump_fcontext left at fctx holds
// MXCSR/x87 words, r12-r15, rbx, then rbp at +0x30 and the return address at +0x38.
constexpr std::size_t fctx_rbp = 0x30, fctx_rip = 0x38;

// A frame-pointer walk over [lo, hi), the fiber's own stack: every frame must lie above
// the previous one and inside the stack, so a frame without a frame pointer (code built
// with -fomit-frame-pointer) ends the walk instead of leading it astray; nothing outside
// the mapping is read. Not sanitized: it reads words of another context's stack, which
// ASan may have poisoned around locals (never the saved rbp/return slots it follows).
__attribute__((no_sanitize("address", "thread"))) void walk_frames(
    std::uintptr_t fp, std::uintptr_t pc, std::uintptr_t lo, std::uintptr_t hi,
    std::vector<void*>& out) {
  if (pc) out.push_back(reinterpret_cast<void*>(pc));
  for (int depth = 0; depth < 48; ++depth) {
    if (fp < lo || fp + 16 > hi || (fp & 7) != 0) break;
    const auto* frame = reinterpret_cast<const std::uintptr_t*>(fp);
    const std::uintptr_t next = frame[0], ret = frame[1];
    if (ret == 0) break;
    out.push_back(reinterpret_cast<void*>(ret));
    if (next <= fp) break;
    fp = next;
  }
}

// Resident bytes of [lo, hi) (pages a fiber touched and nobody returned since): its
// stack's high-water mark, as the kernel counts it.
std::size_t resident_bytes(const void* lo, std::size_t size) noexcept {
  const std::size_t page = 4096;
  const std::size_t pages = size / page;
  std::vector<unsigned char> vec(pages);
  if (::mincore(const_cast<void*>(lo), size, vec.data()) != 0) return 0;
  std::size_t n = 0;
  for (unsigned char c : vec) n += c & 1u;
  return n * page;
}

// What an inspection reads of one fiber held still (steps 3-5). Inside the internal scope.
__attribute__((no_sanitize("address"))) void view_suspended(fiber_impl* f, fiber_view& v,
                                                            unsigned flags, std::int64_t now,
                                                            std::uintptr_t pause_fp) {
  task* t = f->current ? f->current : f->root;
  v.id = t->id_;
  v.self = t;
  if (const char* n = f->current ? task_name(t) : nullptr) v.name = n;
  v.stack_size = f->stk.size;
  v.kind = f->current ? f->wait.kind : wait_kind::none;
  if (v.st == fiber_view::state::waiting) {
    v.obj = f->wait.obj;
    v.deadline = f->wait.deadline;
    if (v.kind == wait_kind::join && v.obj) v.join_id = static_cast<const task*>(v.obj)->id_;
    if (v.kind == wait_kind::mutex && v.obj) v.holder = mutex_peek::owner(*static_cast<const mutex*>(v.obj));
    if (v.kind == wait_kind::none || v.kind == wait_kind::yield) {
      v.st = fiber_view::state::runnable;
    } else if (f->wait.claim &&
               f->wait.claim->load(std::memory_order_acquire) != outcome_waiting) {
      v.woken = true;
      v.st = fiber_view::state::runnable;
    }
    // The wait's duration, from the first inspection that saw this wait (fiber_impl).
    if (f->seen_waits == f->waits && f->seen_since != 0) {
      v.waiting_ns = now - f->seen_since;
    } else {
      f->seen_waits = f->waits;
      f->seen_since = now;
    }
  }
  const auto lo = reinterpret_cast<std::uintptr_t>(f->stk.lo);
  const auto hi = lo + f->stk.size;
  if (v.st == fiber_view::state::resuming) {
    if (flags & inspect_backtraces) walk_frames(pause_fp, 0, lo, hi, v.frames);
  } else if (f->current && f->ctx.fctx) {
    const auto sp = reinterpret_cast<std::uintptr_t>(f->ctx.fctx);
    if (sp >= lo && sp < hi) {
      v.stack_in_use = hi - sp;
      if (flags & inspect_backtraces) {
        const auto* saved = reinterpret_cast<const std::uintptr_t*>(sp);
        walk_frames(saved[fctx_rbp / 8], saved[fctx_rip / 8], lo, hi, v.frames);
      }
    }
  }
  if (flags & inspect_backtraces) v.stack_touched = resident_bytes(f->stk.lo, f->stk.size);
  if ((flags & inspect_retain) && f->current && v.st != fiber_view::state::resuming) {
    task_add_ref(f->current);  // released by release_retained, after the pause
    v.retained = f->current;
  }
}

}  // namespace

inspection inspect(runtime& rt, unsigned flags, std::int64_t ack_wait_ns) {
  tsan_internal_scope internal;  // tsan_scope.hpp step 2: the scheduler's own bookkeeping
  std::lock_guard<std::mutex> one(rt.inspect_mu_);
  inspection in;
  const unsigned n = rt.worker_count();
  worker* self = current_worker();
  const unsigned self_index = (self && &self->rt() == &rt) ? self->index() : n;
  // Step 1. seq_cst: the store half of step 4's StoreLoad pair (with the membarrier).
  const std::uint32_t g = ++rt.pause_gen_ == 0 ? ++rt.pause_gen_ : rt.pause_gen_;
  const std::int64_t began = steady_ns();
  rt.pause_.store(g, std::memory_order_seq_cst);
  // Step 4: wait for the acknowledgements, up to the bound. A parked worker is not waited
  // for (nor unparked: a wake outside the idle protocol would be taken for a producer's):
  // it runs no fiber, and if it wakes, its first landing pauses it (or, had it checked
  // pause_ before our store, its running_ is read below, after the barrier).
  std::vector<char> acked(n, 0), done(n, 0);
  for (;;) {
    bool all = true;
    for (unsigned i = 0; i < n; ++i) {
      if (done[i] || i == self_index) continue;
      worker& w = rt.worker_at(i);
      // acquire: pairs with the worker's release of g (step 3).
      if (w.pause_ack() == g) acked[i] = done[i] = 1;
      else if (!w.thread_live() || w.sleeping()) done[i] = 1;
      else all = false;
    }
    if (all || steady_ns() - began > ack_wait_ns) break;
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  std::vector<fiber_impl*> running(n, nullptr);
  std::vector<std::uintptr_t> pause_fp(n, 0);
  bool any_unpaused = false;
  for (unsigned i = 0; i < n; ++i) {
    if (acked[i]) continue;
    any_unpaused = true;
    worker& w = rt.worker_at(i);
    if (i == self_index || (w.thread_live() && !w.sleeping())) in.unpaused.push_back(i);
  }
  if (any_unpaused) in.fenced = rt.membarrier_ok_ && membarrier_all();
  for (unsigned i = 0; i < n; ++i) {
    worker& w = rt.worker_at(i);
    running[i] = w.running();  // acquire: pairs with step 2's release store
    pause_fp[i] = acked[i] ? w.pause_fp() : 0;
  }
  in.at = steady_ns();
  const std::vector<id_clock::entry> id_log = rt.id_clock_.snapshot();  // step 6
  // Step 5.
  rt.registry_.for_each([&](fiber_impl* f) {
    unsigned on = n;
    for (unsigned i = 0; i < n; ++i)
      if (running[i] == f) on = i;
    fiber_view v;
    if (on < n && !acked[on]) {
      // Step 4: it may run; only its published task id is read.
      v.st = fiber_view::state::running;
      v.worker = static_cast<int>(on);
      v.id = f->current_id.load(std::memory_order_relaxed);
      v.stack_size = f->stk.size;
      in.fibers.push_back(std::move(v));
      return;
    }
    if (!f->current && !f->root) {
      ++in.idle_fibers;
      return;
    }
    if (on < n) {  // paused right after landing in f (step 3)
      v.st = fiber_view::state::resuming;
      v.worker = static_cast<int>(on);
    }
    view_suspended(f, v, flags, in.at, on < n ? pause_fp[on] : 0);
    in.fibers.push_back(std::move(v));
  });
  in.paused_ns = steady_ns() - began;
  for (fiber_view& v : in.fibers)
    if (v.id) id_clock::age(id_log, v.id, in.at, v.age_lo_ns, v.age_hi_ns);
  // Step 5's end. seq_cst, not only release (which pairs with the paused workers'
  // acquire loads): libstdc++'s notify_all first loads its waiter count, and a release
  // store may still sit in this core's store buffer then (StoreLoad). A worker that
  // registered as a waiter just after that load could then find the old value in its
  // futex check and sleep with nobody left to wake it. The seq_cst store (xchg) is
  // visible before the count is read; one per inspection.
  rt.pause_.store(0, std::memory_order_seq_cst);
  rt.pause_.notify_all();
  std::sort(in.fibers.begin(), in.fibers.end(),
            [](const fiber_view& a, const fiber_view& b) { return a.id < b.id; });
  return in;
}

// ---------------------------------------------------------------- spawn times (step 6)

void id_clock::note(std::uint64_t start, unsigned worker) noexcept {
  const std::uint64_t n = n_.fetch_add(1, std::memory_order_relaxed);  // a ticket
  slot& s = slots_[n % size];
  s.seq.store(2 * n + 1, std::memory_order_relaxed);  // odd: being written
  // release fence: a reader that sees a field below also sees the odd word (or later).
  std::atomic_thread_fence(std::memory_order_release);
  s.start.store(start, std::memory_order_relaxed);
  s.worker.store(worker, std::memory_order_relaxed);
  s.at.store(steady_ns(), std::memory_order_relaxed);
  s.seq.store(2 * n + 2, std::memory_order_release);  // pairs with snapshot's first load
}

std::vector<id_clock::entry> id_clock::snapshot() const {
  std::vector<entry> out;
  out.reserve(size);
  for (const slot& s : slots_) {
    const std::uint64_t q = s.seq.load(std::memory_order_acquire);
    if (q == 0 || (q & 1)) continue;  // never written, or being written
    entry e{s.start.load(std::memory_order_relaxed), s.worker.load(std::memory_order_relaxed),
            s.at.load(std::memory_order_relaxed)};
    // acquire fence: the loads above complete before the re-check below.
    std::atomic_thread_fence(std::memory_order_acquire);
    if (s.seq.load(std::memory_order_relaxed) != q) continue;  // rewritten meanwhile
    out.push_back(e);
  }
  std::sort(out.begin(), out.end(), [](const entry& a, const entry& b) { return a.start < b.start; });
  return out;
}

void id_clock::age(const std::vector<entry>& log, std::uint64_t id, std::int64_t now,
                   std::int64_t& lo, std::int64_t& hi) noexcept {
  lo = hi = -1;
  if (log.empty() || id < log.front().start) return;  // older than the log
  // The last block starting at or before id.
  auto it = std::upper_bound(log.begin(), log.end(), id,
                             [](std::uint64_t x, const entry& e) { return x < e.start; });
  const entry& b = *(it - 1);
  if (id < b.start + block) {  // a worker's block: spawned after b was noted...
    hi = std::max<std::int64_t>(0, now - b.at);
    for (auto j = it; j != log.end(); ++j)  // ...and before that worker's next block
      if (j->worker == b.worker) {
        lo = std::max<std::int64_t>(0, now - j->at);
        break;
      }
    return;
  }
  // An id taken alone (an outside spawn), between blocks b and *it.
  hi = std::max<std::int64_t>(0, now - b.at);
  if (it != log.end()) lo = std::max<std::int64_t>(0, now - it->at);
}

void release_retained(inspection& in) noexcept {
  for (fiber_view& v : in.fibers) {
    if (v.retained) task_release(v.retained);
    v.retained = nullptr;
  }
}

namespace {

void print_frame(std::FILE* out, void* pc) {
  Dl_info info{};
  // A return address points after the call: look up pc - 1 so the frame names the caller.
  void* const at = static_cast<char*>(pc) - 1;
  if (::dladdr(at, &info) != 0 && info.dli_sname) {
    int status = 0;
    char* dem = abi::__cxa_demangle(info.dli_sname, nullptr, nullptr, &status);
    const char* name = status == 0 && dem ? dem : info.dli_sname;
    std::fprintf(out, "      %s+0x%zx", name,
                 static_cast<std::size_t>(static_cast<char*>(pc) - static_cast<char*>(info.dli_saddr)));
    std::free(dem);
  } else {
    std::fprintf(out, "      %p", pc);
  }
  if (info.dli_fname) {
    const char* base = std::strrchr(info.dli_fname, '/');
    std::fprintf(out, " (%s+0x%zx)", base ? base + 1 : info.dli_fname,
                 static_cast<std::size_t>(static_cast<char*>(pc) - static_cast<char*>(info.dli_fbase)));
  }
  std::fputc('\n', out);
}

const char* state_name(fiber_view::state s) noexcept {
  switch (s) {
    case fiber_view::state::running: return "running";
    case fiber_view::state::resuming: return "resuming";
    case fiber_view::state::runnable: return "runnable";
    case fiber_view::state::waiting: return "waiting";
  }
  return "?";
}

}  // namespace

void write_dump(std::FILE* out, const inspection& in, const char* title) {
  std::size_t counts[4] = {};
  for (const fiber_view& v : in.fibers) ++counts[static_cast<int>(v.st)];
  std::fprintf(out,
               "weft: %s: %zu fiber(s): %zu running, %zu resuming, %zu runnable, %zu waiting; "
               "%zu idle pooled; workers held %.3f ms\n",
               title, in.fibers.size(), counts[0], counts[1], counts[2], counts[3], in.idle_fibers,
               static_cast<double>(in.paused_ns) / 1e6);
  for (unsigned w : in.unpaused)
    std::fprintf(out, "weft: worker %u did not reach a safe point (it runs one fiber)%s\n", w,
                 in.fenced ? "" : "; read without membarrier");
  for (const fiber_view& v : in.fibers) {
    std::fprintf(out, "  fiber #%" PRIu64, v.id);
    if (!v.name.empty()) std::fprintf(out, " \"%s\"", v.name.c_str());
    std::fprintf(out, ": %s", state_name(v.st));
    switch (v.st) {
      case fiber_view::state::running:
      case fiber_view::state::resuming:
        std::fprintf(out, " on worker %d", v.worker);
        break;
      case fiber_view::state::runnable:
      case fiber_view::state::waiting:
        if (v.kind == wait_kind::none) {
          std::fputs(" (a task about to start)", out);
          break;
        }
        if (v.kind == wait_kind::yield) {
          std::fputs(" (yielded)", out);
          break;
        }
        std::fprintf(out, "%s %s", v.woken ? " (woken from" : " on", wait_kind_name(v.kind));
        if (v.kind == wait_kind::io)
          std::fprintf(out, " %d", static_cast<int>(reinterpret_cast<std::intptr_t>(v.obj)));
        else if (v.kind == wait_kind::join)
          std::fprintf(out, " of fiber #%" PRIu64, v.join_id);
        else if (v.obj)
          std::fprintf(out, " %p", v.obj);
        if (v.woken) std::fputc(')', out);
        if (v.deadline) {
          const double left = static_cast<double>(v.deadline - in.at) / 1e6;
          std::fprintf(out, ", deadline in %.3f ms", left);
        }
        if (v.waiting_ns >= 0)
          std::fprintf(out, ", for >= %.3f ms", static_cast<double>(v.waiting_ns) / 1e6);
        break;
    }
    if (v.age_lo_ns >= 0 && v.age_hi_ns >= 0)
      std::fprintf(out, "; age %.3f..%.3f ms", static_cast<double>(v.age_lo_ns) / 1e6,
                   static_cast<double>(std::max(v.age_lo_ns, v.age_hi_ns)) / 1e6);
    else if (v.age_hi_ns >= 0)
      std::fprintf(out, "; age <= %.3f ms", static_cast<double>(v.age_hi_ns) / 1e6);
    if (v.stack_in_use || v.stack_touched)
      std::fprintf(out, "; stack %zu B in use, %zu B touched of %zu", v.stack_in_use, v.stack_touched,
                   v.stack_size);
    std::fputc('\n', out);
    for (void* pc : v.frames) print_frame(out, pc);
  }
  std::fflush(out);
}

// ---------------------------------------------------------------- deadlock report

namespace {
// A wait that nothing inside the scheduler can end by itself: no deadline, not a sleep,
// an fd, run_blocking (a pool thread ends it) or a yield.
bool blocked_for_good(const fiber_view& v) noexcept {
  if (v.st != fiber_view::state::waiting || v.deadline != 0) return false;
  switch (v.kind) {
    case wait_kind::none:
    case wait_kind::yield:
    case wait_kind::sleep:
    case wait_kind::io:
    case wait_kind::blocking:
      return false;
    default:
      return true;
  }
}
}  // namespace

bool report_deadlock(runtime& rt, std::int64_t blocked_ns) noexcept {
  try {
    inspection in = inspect(rt, inspect_backtraces, 0);  // every worker is parked
    if (in.fibers.empty()) return false;
    for (const fiber_view& v : in.fibers)
      if (!blocked_for_good(v)) return false;
    // Wait-for edges: a mutex waiter -> the fiber holding it; a joiner -> the joined.
    std::map<const void*, std::size_t> by_task;
    std::map<std::uint64_t, std::size_t> by_id;
    for (std::size_t i = 0; i < in.fibers.size(); ++i) {
      by_task[in.fibers[i].self] = i;
      by_id[in.fibers[i].id] = i;
    }
    std::vector<long> next(in.fibers.size(), -1);
    for (std::size_t i = 0; i < in.fibers.size(); ++i) {
      const fiber_view& v = in.fibers[i];
      if (v.kind == wait_kind::mutex && v.holder && !(v.holder & 1u)) {
        auto it = by_task.find(reinterpret_cast<const void*>(v.holder));
        if (it != by_task.end()) next[i] = static_cast<long>(it->second);
      } else if (v.kind == wait_kind::join) {
        auto it = by_id.find(v.join_id);
        if (it != by_id.end()) next[i] = static_cast<long>(it->second);
      }
    }
    std::fprintf(stderr,
                 "weft: deadlock: all %zu fiber(s) have waited for %.0f ms on weft primitives, "
                 "with no fiber runnable and no deadline, sleep, fd or run_blocking pending "
                 "(nothing in the scheduler can wake them; a thread outside it still could)\n",
                 in.fibers.size(), static_cast<double>(blocked_ns) / 1e6);
    // Cycles: each fiber has at most one out-edge, so a walk from each finds any cycle.
    std::vector<int> color(in.fibers.size(), 0);  // 0 new, 1 on this walk, 2 done
    for (std::size_t s = 0; s < in.fibers.size(); ++s) {
      std::vector<std::size_t> path;
      long i = static_cast<long>(s);
      while (i >= 0 && color[static_cast<std::size_t>(i)] == 0) {
        color[static_cast<std::size_t>(i)] = 1;
        path.push_back(static_cast<std::size_t>(i));
        i = next[static_cast<std::size_t>(i)];
      }
      if (i >= 0 && color[static_cast<std::size_t>(i)] == 1) {  // a new cycle, from i
        std::string line = "weft: deadlock: cycle:";
        long j = i;
        do {
          const fiber_view& v = in.fibers[static_cast<std::size_t>(j)];
          char buf[192];
          char what[48];
          if (v.kind == wait_kind::mutex)
            std::snprintf(what, sizeof what, "mutex %p", v.obj);
          else
            std::snprintf(what, sizeof what, "join");
          std::snprintf(buf, sizeof buf, " fiber #%llu%s%s%s -(%s)->",
                        static_cast<unsigned long long>(v.id), v.name.empty() ? "" : " \"",
                        v.name.c_str(), v.name.empty() ? "" : "\"", what);
          line += buf;
          j = next[static_cast<std::size_t>(j)];
        } while (j != i);
        line += " fiber #" + std::to_string(in.fibers[static_cast<std::size_t>(i)].id) + "\n";
        std::fputs(line.c_str(), stderr);
      }
      for (std::size_t k : path) color[k] = 2;
    }
    for (const fiber_view& v : in.fibers) {
      if (v.kind != wait_kind::mutex) continue;
      if (!v.holder)
        std::fprintf(stderr, "weft: deadlock: fiber #%llu waits for mutex %p, free by now\n",
                     static_cast<unsigned long long>(v.id), v.obj);
      else if (v.holder & 1u)
        std::fprintf(stderr, "weft: deadlock: fiber #%llu waits for mutex %p, held by a plain thread\n",
                     static_cast<unsigned long long>(v.id), v.obj);
      else if (auto it = by_task.find(reinterpret_cast<const void*>(v.holder)); it != by_task.end())
        std::fprintf(stderr, "weft: deadlock: fiber #%llu waits for mutex %p, held by fiber #%llu\n",
                     static_cast<unsigned long long>(v.id), v.obj,
                     static_cast<unsigned long long>(in.fibers[it->second].id));
    }
    write_dump(stderr, in, "deadlock");
    return true;
  } catch (...) {
    return false;  // out of memory: no report this time
  }
}

// ---------------------------------------------------------------- WEFT_DUMP_SIGNAL
//
// The handler only writes a byte to a pipe (async-signal-safe); a thread of weft's own,
// started with the first scheduler that sees the variable, reads it and dumps every
// runtime on the list, holding the list's mutex, so a runtime leaves the list (first
// thing in ~runtime) only between dumps. The thread lives as long as the process.

namespace {

std::mutex dump_list_mu;
std::vector<runtime*> dump_list;  // guarded by dump_list_mu
int dump_pipe[2] = {-1, -1};      // written once, under dump_signal_once
std::once_flag dump_signal_once;
bool dump_signal_on = false;      // written once, under dump_signal_once

void dump_signal_handler(int) {
  const int saved = errno;
  const char c = 'd';
  (void)!::write(dump_pipe[1], &c, 1);  // full pipe: a dump is pending anyway
  errno = saved;
}

int parse_signal(const char* v) noexcept {
  if (!v || !*v) return 0;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  if (*end == '\0') return n > 0 && n < NSIG ? static_cast<int>(n) : -1;
  std::string name(v);
  if (name.rfind("SIG", 0) == 0) name = name.substr(3);
  static const std::pair<const char*, int> known[] = {
      {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"QUIT", SIGQUIT}, {"HUP", SIGHUP}, {"WINCH", SIGWINCH}};
  for (const auto& k : known)
    if (name == k.first) return k.second;
  if (name.rfind("RTMIN+", 0) == 0) {
    const long off = std::strtol(name.c_str() + 6, &end, 10);
    if (*end == '\0' && off >= 0 && SIGRTMIN + off <= SIGRTMAX) return SIGRTMIN + static_cast<int>(off);
  }
  return -1;
}

void dump_thread_main() {
  for (;;) {
    char buf[64];
    const ssize_t n = ::read(dump_pipe[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    std::lock_guard<std::mutex> g(dump_list_mu);
    for (runtime* rt : dump_list) {
      try {
        inspection in = inspect(*rt, inspect_backtraces, 100'000'000);
        write_dump(stderr, in, "fiber dump (WEFT_DUMP_SIGNAL)");
      } catch (...) {
        std::fprintf(stderr, "weft: WEFT_DUMP_SIGNAL: out of memory for the dump\n");
      }
    }
  }
}

void dump_signal_install() noexcept {
  const char* v = std::getenv("WEFT_DUMP_SIGNAL");
  if (!v || !*v) return;
  const int sig = parse_signal(v);
  if (sig < 0 || sig == SIGKILL || sig == SIGSTOP) {
    std::fprintf(stderr, "weft: ignoring WEFT_DUMP_SIGNAL=%s (expected a signal name such as "
                         "SIGUSR2, or its number)\n", v);
    return;
  }
  struct sigaction old {};
  if (::sigaction(sig, nullptr, &old) != 0) return;
  if ((old.sa_flags & SA_SIGINFO) || (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN)) {
    std::fprintf(stderr, "weft: WEFT_DUMP_SIGNAL: signal %d has a handler of the program's; "
                         "no dump on it\n", sig);
    return;
  }
  if (::pipe2(dump_pipe, O_CLOEXEC) != 0) return;
  (void)::fcntl(dump_pipe[1], F_SETFL, O_NONBLOCK);  // the handler never blocks
  try {
    std::thread(dump_thread_main).detach();
  } catch (...) {
    std::fprintf(stderr, "weft: WEFT_DUMP_SIGNAL: cannot start the dump thread\n");
    return;
  }
  struct sigaction sa {};
  sa.sa_handler = dump_signal_handler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  if (::sigaction(sig, &sa, nullptr) == 0) dump_signal_on = true;
}

}  // namespace

void dump_signal_join(runtime& rt) noexcept {
  std::call_once(dump_signal_once, dump_signal_install);
  if (!dump_signal_on) return;
  std::lock_guard<std::mutex> g(dump_list_mu);
  try {
    dump_list.push_back(&rt);
  } catch (...) {  // out of memory: this runtime is not dumped
  }
}

void dump_signal_leave(runtime& rt) noexcept {
  if (!dump_signal_on) return;  // written before any join returned (call_once)
  std::lock_guard<std::mutex> g(dump_list_mu);
  dump_list.erase(std::remove(dump_list.begin(), dump_list.end(), &rt), dump_list.end());
}

}  // namespace weft::detail

namespace weft {

void scheduler::dump(std::FILE* out) const {
  if (!out) throw std::invalid_argument("weft::scheduler::dump: null FILE*");
  detail::inspection in = detail::inspect(*rt_, detail::inspect_backtraces, 100'000'000);
  detail::write_dump(out, in, "fiber dump");
}

}  // namespace weft
