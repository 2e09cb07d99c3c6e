// tests/watchdog.hpp - bounds a test that a bug would hang: when the test makes no progress
// (no kick()) for 30 s, the binary prints what it was doing and aborts. For hangs that a
// timeout cannot end from inside the test (a thread spinning on a lock nobody releases).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

class watchdog {
public:
  explicit watchdog(std::string what) : what_(std::move(what)), thread_([this] { run(); }) {}
  ~watchdog() {
    stop_.store(true);
    thread_.join();
  }
  void kick(std::string where) {
    std::lock_guard<std::mutex> g(mu_);
    where_ = std::move(where);
    ticks_.fetch_add(1);
  }

private:
  void run() {
    long last = -1;
    auto since = std::chrono::steady_clock::now();
    while (!stop_.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      const long now = ticks_.load();
      if (now != last) {
        last = now;
        since = std::chrono::steady_clock::now();
      } else if (std::chrono::steady_clock::now() - since > std::chrono::seconds(30)) {
        std::lock_guard<std::mutex> g(mu_);
        std::fprintf(stderr,
                     "%s: no progress for 30 s after %s: stuck (a touch of a destroyed object, "
                     "or a lock left held)\n",
                     what_.c_str(), where_.c_str());
        std::fflush(stderr);
        std::abort();
      }
    }
  }
  std::string what_;
  std::mutex mu_;
  std::string where_ = "the start";
  std::atomic<long> ticks_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};
