// bench/tour/floor_fcontext.cpp - the context-switch floor for W3: two raw Boost.Context
// fcontexts (make_fcontext / jump_fcontext, the primitive weft's context.cpp wraps)
// bouncing control back and forth on one thread, with no scheduler in between. The figure
// is ns per one-direction switch, the same unit as W3, so W3's ratio to this floor is what
// a scheduler adds per yield.
// Benchmark workloads cited here (W3): docs/benchmarks.md.
#include "tour.hpp"

#include <boost/context/detail/fcontext.hpp>

#include <sys/mman.h>

#include <cerrno>
#include <cstring>

namespace tour {
namespace {

namespace bcd = boost::context::detail;

constexpr std::size_t kStackSize = 64 * 1024;

// The partner context: returns control to whoever jumped in, forever. It never returns
// (returning from an fcontext entry ends the thread), and its stack holds nothing that
// needs destroying, so unmapping the stack afterwards is its whole clean-up.
void bounce(bcd::transfer_t t) {
  for (;;) t = bcd::jump_fcontext(t.fctx, nullptr);
}

class fcontext_floor final : public peer {
public:
  const char* name() const noexcept override { return "fcontext"; }
  std::string describe() const override {
    return "fcontext: raw make_fcontext/jump_fcontext round trips on one thread, mmap'd "
           "64 KiB stack (floor for W3)";
  }
  bool supports(workload w) const noexcept override { return w == workload::yield_pingpong; }
  void start(unsigned) override {}
  void stop() override {}

  // `yields` per fiber as in W3: 2 * yields one-direction switches in all.
  double yield_pingpong(std::size_t yields) override {
    void* stack = mmap(nullptr, kStackSize, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) fail(std::string("mmap: ") + std::strerror(errno));
    bcd::fcontext_t partner =
        bcd::make_fcontext(static_cast<char*>(stack) + kStackSize, kStackSize, bounce);
    partner = bcd::jump_fcontext(partner, nullptr).fctx;  // first entry, not timed
    const auto t0 = clock::now();
    for (std::size_t i = 0; i < yields; ++i) partner = bcd::jump_fcontext(partner, nullptr).fctx;
    const double ns = ns_since(t0) / (2.0 * static_cast<double>(yields));
    munmap(stack, kStackSize);
    return ns;
  }
};

}  // namespace

std::unique_ptr<peer> make_fcontext_floor() { return std::make_unique<fcontext_floor>(); }

}  // namespace tour
