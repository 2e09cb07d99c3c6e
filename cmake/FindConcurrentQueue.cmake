# FindConcurrentQueue.cmake - locate moodycamel::ConcurrentQueue (header only).
#
# Debian's libconcurrentqueue-dev installs /usr/include/concurrentqueue/concurrentqueue.h
# and no pkg-config or CMake package file. weft includes it as
# <concurrentqueue/concurrentqueue.h>, so the include directory is the parent of
# "concurrentqueue/". Set ConcurrentQueue_ROOT for a hand-installed copy.
#
# Defines:
#   concurrentqueue::concurrentqueue   INTERFACE imported target
#   ConcurrentQueue_FOUND, ConcurrentQueue_INCLUDE_DIR
include(FindPackageHandleStandardArgs)

find_path(ConcurrentQueue_INCLUDE_DIR NAMES concurrentqueue/concurrentqueue.h)

find_package_handle_standard_args(ConcurrentQueue REQUIRED_VARS ConcurrentQueue_INCLUDE_DIR)

if(ConcurrentQueue_FOUND AND NOT TARGET concurrentqueue::concurrentqueue)
  add_library(concurrentqueue::concurrentqueue INTERFACE IMPORTED)
  set_target_properties(concurrentqueue::concurrentqueue PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${ConcurrentQueue_INCLUDE_DIR}")
endif()

mark_as_advanced(ConcurrentQueue_INCLUDE_DIR)
