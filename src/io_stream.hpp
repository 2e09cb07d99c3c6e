// src/io_stream.hpp - byte-stream reads for the net layer (tcp_stream::read), io.cpp.
#pragma once

#include <weft/result.hpp>
#include <weft/timer.hpp>

#include <cstddef>

namespace weft::detail {

// recv(2) on a stream socket: io::recv plus io_desc.hpp protocol step 7 (after a short
// read, a fiber's next read waits for the next edge before its syscall).
result<std::size_t> stream_recv(int fd, void* buf, std::size_t n, clock::time_point deadline);

}  // namespace weft::detail
