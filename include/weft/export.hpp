// weft/export.hpp - symbol visibility. The library is built with -fvisibility=hidden;
// WEFT_API marks the entry points that public headers call.
#pragma once

#if defined(_WIN32)
#define WEFT_API
#else
#define WEFT_API __attribute__((visibility("default")))
#endif
