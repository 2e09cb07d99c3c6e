# install_consume.cmake - the ctest test "install_consume" (label "install"), run as
#   cmake -DWEFT_BUILD_DIR=... -DWORK_DIR=... -DSOURCE_DIR=... -DCXX=... -DBUILD_TYPE=...
#         -DPKG_CONFIG=... -DWEFT_VERSION=... -P install_consume.cmake
#
# 1. Installs the weft build in WEFT_BUILD_DIR to WORK_DIR/prefix (cmake --install).
# 2. Configures and builds the consumer project in SOURCE_DIR (this directory) against
#    that prefix with find_package(weft CONFIG REQUIRED), with the compiler weft was
#    built with and no flags of its own: whatever else it needs (a sanitizer's flags,
#    the dependencies) must come from the installed package.
# 3. Compiles consumer.cpp again with nothing but `pkg-config --cflags --libs weft`.
# 4. Runs both; each must exit 0 and print "sum=338350 version=<WEFT_VERSION>".
foreach(var WEFT_BUILD_DIR WORK_DIR SOURCE_DIR CXX BUILD_TYPE PKG_CONFIG WEFT_VERSION)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "install_consume.cmake: -D${var}=... is required")
  endif()
endforeach()
if(NOT EXISTS "${PKG_CONFIG}")
  message(FATAL_ERROR "install_consume: pkg-config not found (scripts/common.sh installs it)")
endif()

set(prefix "${WORK_DIR}/prefix")
set(expected "sum=338350 version=${WEFT_VERSION}")
file(REMOVE_RECURSE "${WORK_DIR}")

# run(<what> <command...>): runs the command; a non-zero exit fails the test with its
# output. Leaves the standard output in run_out.
function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " cmd "${ARGN}")
    message(FATAL_ERROR "install_consume: ${what} failed (${rc}):\n  ${cmd}\n${out}\n${err}")
  endif()
  set(run_out "${out}" PARENT_SCOPE)
endfunction()

function(check_output what)
  string(FIND "${run_out}" "${expected}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "install_consume: ${what} printed\n  ${run_out}\nexpected \"${expected}\"")
  endif()
  message(STATUS "${what}: ${run_out}")
endfunction()

# 1.
run("cmake --install" "${CMAKE_COMMAND}" --install "${WEFT_BUILD_DIR}" --prefix "${prefix}")

# 2.
run("consumer configure (find_package)" "${CMAKE_COMMAND}" -S "${SOURCE_DIR}"
    -B "${WORK_DIR}/cmake-build" "-DCMAKE_BUILD_TYPE=${BUILD_TYPE}"
    "-DCMAKE_CXX_COMPILER=${CXX}" "-DCMAKE_PREFIX_PATH=${prefix}")
run("consumer build (find_package)" "${CMAKE_COMMAND}" --build "${WORK_DIR}/cmake-build")
run("consumer run (find_package)" "${WORK_DIR}/cmake-build/consumer")
check_output("find_package consumer")

# 3. weft.pc sits in <libdir>/pkgconfig; libdir is lib, lib64 or lib/<multiarch>.
file(GLOB_RECURSE pc_files "${prefix}/weft.pc")
list(LENGTH pc_files n)
if(NOT n EQUAL 1)
  message(FATAL_ERROR "install_consume: expected one installed weft.pc, found: ${pc_files}")
endif()
get_filename_component(pc_dir "${pc_files}" DIRECTORY)
get_filename_component(lib_dir "${pc_dir}" DIRECTORY)
set(ENV{PKG_CONFIG_PATH} "${pc_dir}")
run("pkg-config --modversion weft" "${PKG_CONFIG}" --modversion weft)
string(STRIP "${run_out}" pc_version)
if(NOT pc_version STREQUAL WEFT_VERSION)
  message(FATAL_ERROR "install_consume: weft.pc says version ${pc_version}, expected ${WEFT_VERSION}")
endif()
run("pkg-config --cflags --libs weft" "${PKG_CONFIG}" --cflags --libs weft)
string(STRIP "${run_out}" pc_flags)
message(STATUS "pkg-config --cflags --libs weft: ${pc_flags}")
separate_arguments(pc_flags UNIX_COMMAND "${pc_flags}")
run("consumer compile (pkg-config)" "${CXX}" -std=c++17 "${SOURCE_DIR}/consumer.cpp" ${pc_flags}
    -o "${WORK_DIR}/consumer_pc")

# 4. A shared libweft.so in the prefix is found through LD_LIBRARY_PATH (pkg-config adds
#    no rpath; the find_package build has CMake's build rpath).
set(ENV{LD_LIBRARY_PATH} "${lib_dir}:$ENV{LD_LIBRARY_PATH}")
run("consumer run (pkg-config)" "${WORK_DIR}/consumer_pc")
check_output("pkg-config consumer")
