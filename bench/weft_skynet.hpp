// bench/weft_skynet.hpp - W2 (skynet) on weft, shared by the tour's weft peer and weft_scale
// so both measure the same code (docs/benchmarks.md).
#pragma once

#include <weft/weft.hpp>

#include <cstdint>

namespace weft_bench {

// A node of `size` leaves starting at ordinal `num`; children joined in order. Returns the
// sum of the leaves' ordinals (checked by the callers).
inline std::int64_t skynet_node(std::int64_t num, std::int64_t size) {
  if (size == 1) return num;
  const std::int64_t child = size / 10;
  weft::join_handle<std::int64_t> kids[10];
  for (int i = 0; i < 10; ++i) kids[i] = weft::spawn(skynet_node, num + i * child, child);
  std::int64_t sum = 0;
  for (auto& k : kids) sum += k.join();
  return sum;
}

}  // namespace weft_bench
