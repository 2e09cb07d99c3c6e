// bench/result_check.cpp - weft_result_check: prints RESULT lines through bench/result.hpp
// for tests/bench_report_test.sh, which converts them with scripts/bench_json.py, so the
// printer and the converter cannot drift apart (a checked-in log alone would not notice).
//
//   weft_result_check            five RESULT lines: small, large and single figures, extras
//   weft_result_check --bad F    one line whose field F (peer, param, extra) has a space:
//                                must abort with a message naming the field
#include "result.hpp"

#include <cstring>
#include <string>

int main(int argc, char** argv) {
  using weft_bench::print;
  if (argc == 3 && std::strcmp(argv[1], "--bad") == 0) {
    const std::string f = argv[2];
    print({f == "peer" ? "we ft" : "weft", "bad_field", f == "param" ? "workers 2" : "workers=2",
           "ns", {1, 1, 1, 1}, {{"note", f == "extra" ? "two words" : "one"}}});
    return 0;  // not reached when f names a field
  }
  print({"weft", "tiny", "workers=1", "ns/op", {0.000123, 0.0001, 0.0002, 5}, {}});
  print({"weft", "huge", "workers=2", "msgs/s", {987654.4, 900000, 1.2e6, 3}, {{"c", "64"}}});
  print({"peer_b", "huge", "workers=2", "msgs/s", weft_bench::single(123456.7),
         {{"p50", "12.5us"}, {"workers", "2"}}});
  print({"weft", "mid", "cap1", "ns/roundtrip", {57.25, 56.5, 61, 7}, {{"n", "1000000"}}});
  print({"peer_b", "mid", "cap1", "ns/roundtrip", {1234.56, 1000, 2000, 7},
         {{"work_factor", "10"}}});
  return 0;
}
