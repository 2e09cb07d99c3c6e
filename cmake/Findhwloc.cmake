# Findhwloc.cmake - locate the hwloc library (https://www.open-mpi.org/projects/hwloc/).
#
# pkg-config is asked first; its answers only seed the hints of find_path/find_library,
# so the module also works without pkg-config or with a hand-built hwloc (hwloc_ROOT).
#
# Defines:
#   hwloc::hwloc        imported target (include directory + library)
#   hwloc_FOUND, hwloc_VERSION, hwloc_INCLUDE_DIR, hwloc_LIBRARY
include(FindPackageHandleStandardArgs)

find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(PC_hwloc QUIET hwloc)
endif()

find_path(hwloc_INCLUDE_DIR NAMES hwloc.h HINTS ${PC_hwloc_INCLUDEDIR} ${PC_hwloc_INCLUDE_DIRS})
find_library(hwloc_LIBRARY NAMES hwloc HINTS ${PC_hwloc_LIBDIR} ${PC_hwloc_LIBRARY_DIRS})

if(PC_hwloc_VERSION)
  set(hwloc_VERSION "${PC_hwloc_VERSION}")
elseif(hwloc_INCLUDE_DIR)
  # hwloc/autogen/config.h may sit in a multiarch directory (Debian: include/<triplet>/).
  find_path(hwloc_CONFIG_DIR NAMES hwloc/autogen/config.h HINTS "${hwloc_INCLUDE_DIR}")
  if(hwloc_CONFIG_DIR)
    file(STRINGS "${hwloc_CONFIG_DIR}/hwloc/autogen/config.h" _hwloc_version_line
         REGEX "^#define HWLOC_VERSION \"[^\"]*\"")
    string(REGEX REPLACE ".*\"([^\"]*)\".*" "\\1" hwloc_VERSION "${_hwloc_version_line}")
    unset(_hwloc_version_line)
  endif()
  mark_as_advanced(hwloc_CONFIG_DIR)
endif()

find_package_handle_standard_args(hwloc
  REQUIRED_VARS hwloc_LIBRARY hwloc_INCLUDE_DIR
  VERSION_VAR hwloc_VERSION)

if(hwloc_FOUND AND NOT TARGET hwloc::hwloc)
  add_library(hwloc::hwloc UNKNOWN IMPORTED)
  set_target_properties(hwloc::hwloc PROPERTIES
    IMPORTED_LOCATION "${hwloc_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${hwloc_INCLUDE_DIR}")
endif()

mark_as_advanced(hwloc_INCLUDE_DIR hwloc_LIBRARY)
