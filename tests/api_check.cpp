// tests/api_check.cpp - calls every non-inline function the public headers declare, so
// that linking this program against a shared libweft.so proves each one is exported.
//
// The library is built with -fvisibility=hidden (CMakeLists.txt); only declarations
// marked WEFT_API (weft/export.hpp) reach libweft.so's dynamic symbol table. A public
// function without the mark links fine against the static archive but, in the `shared`
// preset, fails this program's link with "undefined reference" (or "hidden symbol ... is
// referenced by DSO"). Dropping WEFT_API from `class scheduler` (weft/scheduler.hpp) is
// the mutation that makes it fail. When a header gains a non-inline function, call it
// here. The calls also run (ctest label "export"): each must behave, not merely link.
//
// C++17, as a consumer of the public headers would compile it.
#include <weft/weft.hpp>

#include <gtest/gtest.h>

#include <cstdio>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <exception>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>

namespace {

using namespace std::chrono_literals;

weft::fiber_local<int> local_counter;  // fls_new_key at static init, fls_get in a fiber

void ignore_unhandled(std::uint64_t, std::exception_ptr) noexcept {}

// weft/fiber.hpp: this_fiber, this_worker, fiber_local, spawn, the handler.
void fiber_api() {
  EXPECT_TRUE(weft::this_fiber::in_fiber());
  EXPECT_NE(weft::this_fiber::id(), 0u);
  EXPECT_GE(weft::this_worker::index(), 0);
  weft::this_fiber::yield();
  weft::this_fiber::sleep_for(1ms);                                  // sleep_until_after_now
  weft::this_fiber::sleep_until(weft::clock::now() + 1ms);           // sleep_until
  *local_counter += 1;
  EXPECT_EQ(*local_counter, 1);
  auto child = weft::spawn([] { return 7; });                        // spawn_here
  EXPECT_EQ(child.join(), 7);                                        // task_wait, task_release
  auto detached = weft::spawn([] {});
  detached.detach();                                                 // task_detach
  weft::spawn_detached([] {});
  { weft::this_fiber::no_suspend_scope scope; }                      // no_suspend_enter/leave
}

// weft/sync/*.hpp: each primitive's out-of-line members, contended where that is what
// reaches the slow path.
void sync_api() {
  weft::mutex mu;
  weft::condition_variable cv;
  bool ready = false;
  auto waiter = weft::spawn([&] {
    std::unique_lock<weft::mutex> lk(mu);                            // lock, lock_slow
    cv.wait(lk, [&] { return ready; });                              // wait
    (void)cv.wait_until(lk, weft::clock::now() + 1ms);               // wait_until
  });
  {
    std::unique_lock<weft::mutex> lk(mu);
    ready = true;
  }
  cv.notify_one();
  cv.notify_all();
  waiter.join();
  if (mu.try_lock()) {                                               // try_lock, set_owner
    EXPECT_FALSE(weft::spawn([&] { return mu.try_lock_for(1ms); }).join());  // lock_until
    mu.unlock();
  } else {
    ADD_FAILURE() << "try_lock of a free mutex failed";
  }

  weft::event ev;
  EXPECT_FALSE(ev.is_set());
  EXPECT_FALSE(ev.wait_for(1ms));                                    // wait_until
  ev.set();
  ev.wait();
  ev.reset();

  weft::wait_group wg;
  wg.add(1);
  weft::spawn_detached([&] { wg.done(); });
  wg.wait();
  EXPECT_TRUE(wg.wait_for(1ms));
  weft::latch l(1);
  l.arrive_and_wait();                                               // arrive_and_wait

  weft::counting_semaphore sem(1);
  sem.acquire();
  EXPECT_FALSE(sem.try_acquire());
  EXPECT_FALSE(sem.try_acquire_for(1ms));                            // try_acquire_until
  sem.release();

  weft::barrier<> b(2);                                              // phase_gate
  auto other = weft::spawn([&] { b.arrive_and_wait(); });            // unlock_and_wait_past
  b.wait(b.arrive());                                                // open, wait_past
  other.join();

  weft::channel<int> ch(1);                                          // chan_core
  EXPECT_EQ(ch.send(5), weft::channel_status::ok);
  EXPECT_EQ(ch.size(), 1u);
  EXPECT_EQ(ch.recv(), std::optional<int>(5));
  int got = 0;
  EXPECT_EQ(ch.send(6), weft::channel_status::ok);
  EXPECT_EQ(weft::select(weft::recv_case(ch, [&](std::optional<int> v) { got = *v; })), 0u);
  EXPECT_EQ(got, 6);                                                 // select_wait
  EXPECT_TRUE(ch.close());
  EXPECT_TRUE(ch.is_closed());
}

// weft/io.hpp and weft/net.hpp on a pipe and on a 127.0.0.1 connection.
void io_api() {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  ASSERT_TRUE(weft::io::set_nonblocking(p[0]));
  char buf[8] = {};
  EXPECT_EQ(weft::io::read(p[0], buf, 1, weft::clock::now()).error(),   // read: times out
            std::make_error_code(std::errc::timed_out));
  ASSERT_TRUE(weft::io::wait_writable(p[1]));
  EXPECT_EQ(*weft::io::write(p[1], "a", 1), 1u);
  EXPECT_EQ(*weft::io::write_all(p[1], "b", 1), 1u);
  iovec out{const_cast<char*>("c"), 1};
  EXPECT_EQ(*weft::io::writev(p[1], &out, 1), 1u);
  ASSERT_TRUE(weft::io::wait_readable(p[0]));
  iovec in{buf, 3};
  EXPECT_EQ(*weft::io::readv(p[0], &in, 1), 3u);
  EXPECT_EQ(std::string(buf, 3), "abc");
  EXPECT_TRUE(weft::io::close(p[0]));
  EXPECT_TRUE(weft::io::close(p[1]));

  auto ep = weft::endpoint::parse("127.0.0.1", 0);
  ASSERT_TRUE(ep);
  auto listener = weft::tcp_listener::bind(*ep);
  ASSERT_TRUE(listener) << listener.error().message();
  auto bound = listener->local_endpoint();
  ASSERT_TRUE(bound);
  EXPECT_NE(bound->port(), 0);
  EXPECT_EQ(bound->to_string().rfind("127.0.0.1:", 0), 0u);
  weft::endpoint copy(bound->data(), bound->size());
  EXPECT_EQ(copy.port(), bound->port());

  auto server = weft::spawn([&]() -> std::string {
    weft::endpoint peer;
    auto s = listener->accept(weft::io::forever, &peer);              // io::accept inside
    if (!s) return "accept: " + s.error().message();
    char b[4];
    auto n = s->read(b, sizeof b);                                    // io::recv
    if (!n) return "read: " + n.error().message();
    return std::string(b, *n);
  });
  auto client = weft::tcp_stream::connect(*bound);                  // io::connect inside
  ASSERT_TRUE(client) << client.error().message();
  EXPECT_TRUE(client->set_nodelay());
  EXPECT_TRUE(client->peer_endpoint());
  EXPECT_TRUE(client->local_endpoint());
  EXPECT_EQ(*client->write("hi", 2), 2u);                            // io::send
  EXPECT_TRUE(client->shutdown_write());
  EXPECT_EQ(server.join(), "hi");
  weft::tcp_stream moved;
  moved = std::move(*client);                                        // move assignment
  EXPECT_TRUE(moved.close());
  weft::tcp_listener other;
  other = std::move(*listener);
  EXPECT_TRUE(other.close());

  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  EXPECT_EQ(*weft::io::send(sv[0], "x", 1), 1u);
  EXPECT_EQ(*weft::io::recv(sv[1], buf, 1), 1u);
  EXPECT_TRUE(weft::io::close(sv[0]));
  EXPECT_TRUE(weft::io::close(sv[1]));
}

// weft/net.hpp's datagram, Unix-domain and name-resolution calls, weft/io.hpp's message
// calls (every class in net.hpp is WEFT_API as a whole; these calls make the link prove it).
void net_more_api() {
  auto ep = weft::endpoint::parse("127.0.0.1", 0);
  ASSERT_TRUE(ep);
  auto a = weft::udp_socket::bind(*ep);
  ASSERT_TRUE(a) << a.error().message();
  auto b = weft::udp_socket::open(AF_INET);
  ASSERT_TRUE(b) << b.error().message();
  auto a_at = a->local_endpoint();
  ASSERT_TRUE(a_at);
  EXPECT_EQ(*b->send_to("u", 1, *a_at), 1u);
  char buf[8] = {};
  weft::endpoint from;
  auto got = a->recv_from(buf, sizeof buf, &from);
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_EQ(got->size, 1u);
  EXPECT_FALSE(got->truncated);
  EXPECT_TRUE(b->connect(*a_at));
  EXPECT_TRUE(b->set_send_buffer(4096));
  EXPECT_TRUE(b->send_buffer());
  EXPECT_TRUE(b->close());
  EXPECT_TRUE(a->close());

  auto pr = weft::unix_stream::pair();
  ASSERT_TRUE(pr) << pr.error().message();
  EXPECT_EQ(*pr->first.write("v", 1), 1u);
  EXPECT_EQ(*pr->second.read(buf, 1), 1u);
  EXPECT_EQ(buf[0], 'v');
  EXPECT_TRUE(pr->first.shutdown_write());
  iovec out{const_cast<char*>("w"), 1};
  msghdr m{};
  m.msg_iov = &out;
  m.msg_iovlen = 1;
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_DGRAM, 0, sv), 0);
  ASSERT_TRUE(weft::io::set_nonblocking(sv[0]));
  ASSERT_TRUE(weft::io::set_nonblocking(sv[1]));
  EXPECT_EQ(*weft::io::sendmsg(sv[0], &m), 1u);
  iovec in{buf, sizeof buf};
  msghdr r{};
  r.msg_iov = &in;
  r.msg_iovlen = 1;
  EXPECT_EQ(*weft::io::recvmsg(sv[1], &r), 1u);
  mmsghdr mm{};
  mm.msg_hdr = m;
  EXPECT_EQ(*weft::io::sendmmsg(sv[0], &mm, 1), 1u);
  mmsghdr rr{};
  rr.msg_hdr = r;
  EXPECT_EQ(*weft::io::recvmmsg(sv[1], &rr, 1), 1u);
  EXPECT_TRUE(weft::io::close(sv[0]));
  EXPECT_TRUE(weft::io::close(sv[1]));

  auto addrs = weft::resolve("localhost", 80);
  ASSERT_TRUE(addrs) << addrs.error().message();
  EXPECT_FALSE(addrs->empty());
  EXPECT_NE(std::string(weft::resolve_category().name()), "");
}

// weft/blocking.hpp.
void blocking_api() {
  EXPECT_EQ(weft::run_blocking([] { return 3; }), 3);                // run_blocking_job
  weft::blocking_pool pool(weft::blocking_options{1, 2, std::chrono::milliseconds(1000)});
  EXPECT_EQ(pool.run([] { return 4; }), 4);
  EXPECT_GE(pool.threads(), 1u);
}

// Cancellation and deadlines: weft/fiber.hpp's spawn options, names, stop requests and
// timed joins, weft/task_group.hpp, and the timed waits of latch, barrier and blocking.hpp.
void cancel_api() {
  weft::spawn_options named;  // C++17: no designated initializers
  named.name = "api-check";
  named.stack_size = 64 << 10;
  auto child = weft::spawn(named, [] {                               // apply_spawn_options
    return std::string(weft::this_fiber::name());                    // name
  });
  EXPECT_EQ(child.join(), "api-check");
  EXPECT_EQ(weft::this_fiber::name(), "");
  EXPECT_FALSE(weft::this_fiber::stop_requested());                  // stop_requested

  // Sleeps until asked to stop; reports what it saw of the request.
  auto stoppable = weft::spawn([] {
    const weft::stop_token own = weft::this_fiber::get_stop_token();  // current_task_ref
    weft::this_fiber::sleep_until(weft::clock::time_point::max());    // ended by the request
    return weft::this_fiber::stop_requested() && own.stop_requested();
  });
  const weft::stop_token token = stoppable.get_stop_token();
  EXPECT_TRUE(token.stop_possible());
  EXPECT_FALSE(stoppable.wait_for(1ms));                             // task_wait_until
  EXPECT_FALSE(stoppable.join_for(1ms).has_value());                 // still asleep: empty
  EXPECT_TRUE(stoppable.request_stop());                             // task_request_stop
  EXPECT_FALSE(stoppable.request_stop());                            // made once only
  EXPECT_TRUE(token.stop_requested());
  const auto stopped = stoppable.join_until(weft::clock::now() + std::chrono::minutes(1));
  ASSERT_TRUE(stopped.has_value());
  EXPECT_TRUE(*stopped);
  EXPECT_FALSE(stoppable.joinable());

  // A stop passed on to a linked child; its untimed wait reports it.
  auto parent = weft::spawn([] {
    weft::spawn_options linked;
    linked.stop_with_parent = true;
    weft::event never;
    auto kid = weft::spawn(linked, [&never] { return never.wait(); });  // commit_stop_link
    weft::this_fiber::sleep_until(weft::clock::time_point::max());
    return kid.join();
  });
  EXPECT_TRUE(parent.request_stop());
  EXPECT_FALSE(parent.join());  // the child's wait() was ended: false

  std::atomic<int> ran{0};
  {
    weft::task_group g;
    for (int i = 0; i < 3; ++i) g.spawn([&] { ran.fetch_add(1, std::memory_order_relaxed); });
    g.join();
  }
  EXPECT_EQ(ran.load(), 3);
  weft::task_group failing;
  failing.spawn([] { weft::this_fiber::sleep_until(weft::clock::time_point::max()); });
  failing.spawn([] { throw std::runtime_error("first"); });          // stops the sleeper
  EXPECT_THROW(failing.join(), std::runtime_error);

  weft::latch l(1);
  EXPECT_FALSE(l.wait_for(1ms));                                     // wait_group::wait_until
  l.count_down();
  EXPECT_TRUE(l.wait_for(1ms));
  weft::barrier<> pair(2);
  EXPECT_FALSE(pair.arrive_and_wait_for(1ms));                       // unlock_and_wait_past_until
  weft::barrier<> solo(1);
  EXPECT_TRUE(solo.arrive_and_wait_for(1ms));                        // completes the phase itself

  const auto v = weft::run_blocking_for(std::chrono::minutes(1), [] { return 8; });  // submit_owned_job
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(*v, 8);
  EXPECT_TRUE(weft::run_blocking_until(weft::clock::now() + std::chrono::minutes(1), [] {}));
  weft::blocking_pool pool(weft::blocking_options{1, 1, std::chrono::milliseconds(1000)});
  const auto w = pool.run_for(std::chrono::minutes(1), [] { return 9; });
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(*w, 9);
}

// weft/version.hpp: the macros agree with each other, and the library was built from the
// same version as these headers. Mutation: src/version.cpp returning another string.
TEST(api_check, version) {
  EXPECT_STREQ(weft::version(), WEFT_VERSION_STRING);
  const std::string parts = std::to_string(WEFT_VERSION_MAJOR) + "." +
                            std::to_string(WEFT_VERSION_MINOR) + "." +
                            std::to_string(WEFT_VERSION_PATCH);
  EXPECT_EQ(parts, WEFT_VERSION_STRING);
}

TEST(api_check, every_public_function_links_and_runs) {
  weft::detail::task_alloc_inject_failure_after(-1);                 // the test seam: off
  const auto previous = weft::set_unhandled_exception_handler(&ignore_unhandled);
  EXPECT_EQ(weft::set_unhandled_exception_handler(previous), &ignore_unhandled);
  EXPECT_EQ(weft::scheduler::current(), nullptr);
  EXPECT_FALSE(weft::this_fiber::in_fiber());

  {
    weft::scheduler defaults;                                        // scheduler()
    EXPECT_GE(defaults.worker_count(), 1u);
  }
  weft::scheduler::options opts;
  opts.workers = 2;
  weft::scheduler sched(opts);                                       // scheduler(options)
  EXPECT_EQ(sched.worker_count(), 2u);
  (void)sched.schedule_seed();
  EXPECT_EQ(sched.spawn([] { return 6 * 7; }).join(), 42);           // spawn_on
  std::atomic<bool> ran{false};
  sched.spawn_detached([&] { ran.store(true); });
  EXPECT_TRUE(sched.block_on([&] { return weft::scheduler::current() == &sched; }));
  sched.block_on(fiber_api);
  sched.block_on(sync_api);
  sched.block_on(io_api);
  sched.block_on(net_more_api);
  sched.block_on(blocking_api);
  sched.block_on(cancel_api);
  weft::spawn_options outside;
  outside.name = "outside";
  EXPECT_EQ(sched.spawn(outside, [] { return std::string(weft::this_fiber::name()); }).join(),
            "outside");                                              // scheduler::spawn(options)
  EXPECT_EQ(sched.stats().workers.size(), 2u);
  const weft::scheduler_stats snapshot = sched.stats();
  weft::duration_histogram h = snapshot.total().wait_time;              // total()
  h.merge(snapshot.workers[0].schedule_latency);                       // merge
  EXPECT_GE(h.quantile_ns(0.5), h.samples() ? 1u : 0u);                // quantile_ns, samples
  EXPECT_EQ(weft::duration_histogram::bucket_of(1024), 10u);           // bucket_of
  EXPECT_FALSE(weft::format_stats(snapshot).empty());                  // format_stats
  sched.trace_start(64);                                               // trace_start
  EXPECT_FALSE(sched.trace_stop().empty());                            // trace_stop()
  sched.trace_start();
  EXPECT_THROW(sched.trace_stop(std::string("/nonexistent-dir/t.json")),
               std::system_error);                                     // trace_stop(path)
  {
    std::FILE* null = std::fopen("/dev/null", "w");
    ASSERT_NE(null, nullptr);
    sched.dump(null);                                                  // dump
    std::fclose(null);
  }
  EXPECT_TRUE(sched.shutdown(weft::clock::now() + std::chrono::seconds(30)));  // shutdown(deadline)
  sched.shutdown();
  EXPECT_TRUE(ran.load());
}

}  // namespace
