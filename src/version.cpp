// src/version.cpp - weft::version(): the WEFT_VERSION_STRING of the headers the library
// itself was compiled with (weft/version.hpp, generated from project(weft VERSION ...)),
// so a program can tell when it runs with another release's libweft.so.
#include <weft/version.hpp>

namespace weft {

const char* version() noexcept { return WEFT_VERSION_STRING; }

}  // namespace weft
