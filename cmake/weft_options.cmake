# weft_options.cmake - warning flags shared by the library, tests, stress and benchmarks.
#
#   weft_set_target_options(<target>)
#
# -Wall -Wextra -Wpedantic for every target; -Werror when WEFT_WERROR is ON; clang adds
# -Wthread-safety so the WEFT_GUARDED_BY / WEFT_REQUIRES annotations
# (include/weft/thread_annotations.hpp) are checked. Flags are PRIVATE: they never leak
# into a consumer's build.
include_guard(GLOBAL)

function(weft_set_target_options target)
  target_compile_options(${target} PRIVATE
    -Wall -Wextra -Wpedantic
    $<$<CXX_COMPILER_ID:Clang,AppleClang>:-Wthread-safety>)
  if(WEFT_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
