# weft_sanitizers.cmake - maps the WEFT_SANITIZER string to compiler and linker flags.
#
#   WEFT_SANITIZER=""                   no instrumentation
#   WEFT_SANITIZER="address;undefined"  ASan + UBSan (UBSan errors are fatal)
#   WEFT_SANITIZER="thread"             TSan
#
# The flags are added with add_compile_options/add_link_options in the calling directory,
# so the library, tests, stress tests, benchmarks and examples are all instrumented
# alike (mixing instrumented and plain TUs gives false reports). Boost.Context's
# jump_fcontext is hand-written asm and needs no instrumentation; the fiber switch hooks
# live in src/context.cpp (docs/platform.md, TSan and ASan).
#
#   WEFT_TSAN_FIBERS (TSan only, default ON): WEFT_TSAN_FIBERS=1 makes every fiber a TSan
#   thread of its own (switches create no happens-before edge; weft's internals run in
#   TSan ignore scopes; each hand-off adds one edge). OFF (=0, the tsan-checked preset):
#   every switch synchronises and weft's internals stay fully checked. See docs/tsan.md.
#
#   weft_apply_sanitizer_defines(<target>)  adds WEFT_ASAN=1 / WEFT_TSAN=1 and
#   WEFT_TSAN_FIBERS=0|1 (PRIVATE).
#
#   weft_export_sanitizer_options(<target>)  gives the *installed* target the same
#   -fsanitize compile and link options as INTERFACE options, so a program built against
#   an installed sanitizer build of weft (find_package(weft), weft::weft) is instrumented
#   and linked with the sanitizer's runtime without being told (an asan weft linked into a
#   plain program fails with undefined __asan_* / __ubsan_* symbols). Only the install
#   interface: in this build tree add_compile_options already covers every target. The
#   same flags go into weft.pc (WEFT_SANITIZER_COMPILE_OPTIONS, _LINK_OPTIONS).
#   The defines stay private: no public header tests WEFT_ASAN, WEFT_TSAN or
#   WEFT_TSAN_FIBERS (the fiber mode is chosen inside the library, src/tsan_scope.hpp), so
#   a consumer's headers need none of them to match the library.
# The sources also detect sanitizers on their own (__SANITIZE_ADDRESS__,
# __SANITIZE_THREAD__, __has_feature); the defines only make the build's intent explicit.
include_guard(GLOBAL)

set(_weft_san "${WEFT_SANITIZER}")
list(SORT _weft_san)
set(WEFT_SANITIZER_DEFINES "")
set(WEFT_SANITIZER_COMPILE_OPTIONS "")
set(WEFT_SANITIZER_LINK_OPTIONS "")

if(_weft_san STREQUAL "")
  # nothing to do
elseif(_weft_san STREQUAL "address;undefined" OR _weft_san STREQUAL "address")
  if(_weft_san STREQUAL "address")
    set(_weft_flags -fsanitize=address)
  else()
    set(_weft_flags -fsanitize=address,undefined -fno-sanitize-recover=undefined)
  endif()
  set(WEFT_SANITIZER_COMPILE_OPTIONS ${_weft_flags} -fno-omit-frame-pointer)
  set(WEFT_SANITIZER_LINK_OPTIONS ${_weft_flags})
  set(WEFT_SANITIZER_DEFINES WEFT_ASAN=1)
elseif(_weft_san STREQUAL "thread")
  set(WEFT_SANITIZER_COMPILE_OPTIONS -fsanitize=thread)
  set(WEFT_SANITIZER_LINK_OPTIONS -fsanitize=thread)
  set(WEFT_SANITIZER_DEFINES WEFT_TSAN=1)
  if(NOT DEFINED WEFT_TSAN_FIBERS OR WEFT_TSAN_FIBERS)
    list(APPEND WEFT_SANITIZER_DEFINES WEFT_TSAN_FIBERS=1)
  else()
    list(APPEND WEFT_SANITIZER_DEFINES WEFT_TSAN_FIBERS=0)
  endif()
else()
  message(FATAL_ERROR
    "WEFT_SANITIZER='${WEFT_SANITIZER}': expected \"\", \"address;undefined\" or \"thread\"")
endif()
if(NOT _weft_san STREQUAL "")
  add_compile_options(${WEFT_SANITIZER_COMPILE_OPTIONS})
  add_link_options(${WEFT_SANITIZER_LINK_OPTIONS})
  message(STATUS "weft: sanitizer build (${WEFT_SANITIZER})")
endif()
unset(_weft_san)
unset(_weft_flags)

function(weft_apply_sanitizer_defines target)
  if(WEFT_SANITIZER_DEFINES)
    target_compile_definitions(${target} PRIVATE ${WEFT_SANITIZER_DEFINES})
  endif()
endfunction()

function(weft_export_sanitizer_options target)
  foreach(opt IN LISTS WEFT_SANITIZER_COMPILE_OPTIONS)
    target_compile_options(${target} INTERFACE "$<INSTALL_INTERFACE:${opt}>")
  endforeach()
  foreach(opt IN LISTS WEFT_SANITIZER_LINK_OPTIONS)
    target_link_options(${target} INTERFACE "$<INSTALL_INTERFACE:${opt}>")
  endforeach()
endfunction()
