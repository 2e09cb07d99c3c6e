// examples/request_timeout.cpp - a per-request deadline built on cancellation.
//
//   request_timeout               runs a fast and a slow request, each with a 100 ms deadline
//   request_timeout --self-test   the same, checking the outcomes (exit 1 when one is wrong)
//
// A request's fiber asks a backend fiber for an answer and waits for it. with_deadline()
// waits for the request up to its deadline; when the deadline passes first it asks the
// request's fiber to stop (join_handle::request_stop), which ends the receive the fiber is
// blocked in (recv() returns std::nullopt), and then joins it: the request unwinds
// through its own code, destructors run, and nothing is left behind. The backend's late
// answer goes into a reply channel with room for it, so the backend never blocks on a
// requester that left.
#include <weft/weft.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>

namespace {

using namespace std::chrono_literals;

struct query {
  std::string key;
  std::shared_ptr<weft::channel<std::string>> reply;  // capacity 1: a late answer never waits
};

// Answers "fast" at once; "slow" only after an hour (or when it is asked to stop). When
// the query channel closes, the group's destructor stops the answers still pending.
void backend(weft::channel<query>& queries) {
  weft::task_group answering;
  while (auto q = queries.recv()) {
    answering.spawn([q = std::move(*q)] {
      if (q.key == "slow") weft::this_fiber::sleep_for(1h);
      (void)q.reply->try_send("value of " + q.key);
    });
  }
}

// The request handler as a server would write it: ask, wait, use the answer.
std::optional<std::string> lookup(weft::channel<query>& queries, const std::string& key) {
  auto reply = std::make_shared<weft::channel<std::string>>(1);
  if (queries.send(query{key, reply}) != weft::channel_status::ok) return std::nullopt;
  return reply->recv();  // nullopt when this fiber is asked to stop
}

// Runs f in a fiber of its own and waits for it until `limit` passed; then stops it and
// waits for it to unwind. The result, or nullopt when the deadline came first.
template <class F>
auto with_deadline(std::chrono::milliseconds limit, F f) -> decltype(f()) {
  auto h = weft::spawn(std::move(f));
  if (auto r = h.join_for(limit)) return std::move(*r);  // finished in time
  (void)h.request_stop();  // its pending wait ends now
  (void)h.join();          // returns promptly: the fiber unwinds its own way
  return std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
  const bool self_test = argc > 1 && std::strcmp(argv[1], "--self-test") == 0;
  weft::scheduler sched;
  const bool ok = sched.block_on([&] {
    weft::channel<query> queries(16);
    auto server = weft::spawn([&] { backend(queries); });
    bool good = true;
    for (const char* key : {"fast", "slow"}) {
      const auto t0 = weft::clock::now();
      auto r = with_deadline(100ms, [&, k = std::string(key)] { return lookup(queries, k); });
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(weft::clock::now() - t0);
      std::printf("%-4s -> %s (%lld ms)\n", key, r ? r->c_str() : "timed out, request cancelled",
                  static_cast<long long>(ms.count()));
      good = good && (r.has_value() == (std::strcmp(key, "fast") == 0));
    }
    queries.close();  // the backend's loop ends and it stops the slow answer
    server.join();
    return good;
  });
  if (self_test && !ok) std::fprintf(stderr, "request_timeout: wrong outcome\n");
  return self_test && !ok ? 1 : 0;
}
