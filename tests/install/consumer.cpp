// tests/install/consumer.cpp - a program that uses an installed weft the way a stranger
// would: only <weft/weft.hpp>, built once through find_package(weft CONFIG) and once
// through pkg-config (install_consume.cmake). Prints "sum=338350" (the squares 1..100,
// each computed by its own fiber) and the library's version.
#include <weft/weft.hpp>

#include <cstdio>
#include <cstring>
#include <vector>

int main() {
  if (std::strcmp(weft::version(), WEFT_VERSION_STRING) != 0) {
    std::fprintf(stderr, "consumer: headers %s, library %s\n", WEFT_VERSION_STRING,
                 weft::version());
    return 1;
  }
  weft::scheduler::options opts;  // C++17: no designated initializers
  opts.workers = 2;
  weft::scheduler sched(opts);
  const long sum = sched.block_on([] {
    std::vector<weft::join_handle<long>> children;
    for (long i = 1; i <= 100; ++i) children.push_back(weft::spawn([i] { return i * i; }));
    long s = 0;
    for (auto& c : children) s += c.join();
    return s;
  });
  std::printf("consumer: sum=%ld version=%s\n", sum, weft::version());
  return 0;
}
