// examples/http_hello.cpp - minimal HTTP/1.1 server: answers every request with a fixed
// body; keep-alive and pipelined requests are handled (curl and wrk work against it).
//
//   http_hello PORT                (listens on 127.0.0.1; 0 picks a free port)
//
// SIGINT or SIGTERM stops it cleanly: see graceful.hpp.
#include "graceful.hpp"

#include <weft/weft.hpp>

#include <cstdio>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

constexpr char body[] = "Hello from weft\n";

std::string response(bool close) {
  return "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
         std::to_string(sizeof body - 1) + (close ? "\r\nConnection: close" : "") + "\r\n\r\n" +
         body;
}

bool wants_close(const std::string& head) {
  // Case-insensitive enough for the example: "Connection: close" ends the connection, and
  // HTTP/1.0 does unless it asks for keep-alive.
  std::string h = head;
  for (char& c : h) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (h.find("\r\nconnection: close") != std::string::npos) return true;
  return h.find(" http/1.0\r\n") != std::string::npos &&
         h.find("\r\nconnection: keep-alive") == std::string::npos;
}

void serve(weft::tcp_stream conn) {
  std::string in, out;
  char buf[4096];
  for (;;) {
    auto n = conn.read(buf, sizeof buf);
    if (!n || *n == 0) return;
    in.append(buf, *n);
    if (in.size() > 64 * 1024) return;  // header too large: drop the connection
    bool close = false;
    std::size_t end;
    while (!close && (end = in.find("\r\n\r\n")) != std::string::npos) {  // pipelining
      close = wants_close(in.substr(0, end + 2));
      out += response(close);
      in.erase(0, end + 4);  // requests with a body are not supported by this example
    }
    if (!out.empty() && !conn.write_all(out.data(), out.size())) return;
    out.clear();
    if (close) return;
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int sfd = example::block_stop_signals();  // before the scheduler starts threads
  const int port = argc > 1 ? std::atoi(argv[1]) : -1;
  if (port < 0 || port > 65535) {
    std::fprintf(stderr, "usage: %s PORT\n", argv[0]);
    return 2;
  }
  auto listener = weft::tcp_listener::bind(*weft::endpoint::parse("127.0.0.1", port));
  if (!listener) {
    std::fprintf(stderr, "http_hello: port %d: %s\n", port, listener.error().message().c_str());
    return 1;
  }
  std::printf("http_hello: http://%s/\n", listener->local_endpoint()->to_string().c_str());
  std::fflush(stdout);
  weft::scheduler sched;
  return example::serve_until_signal(sched, *listener, sfd, serve, std::chrono::seconds(5));
}
