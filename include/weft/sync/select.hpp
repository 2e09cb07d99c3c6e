// weft/sync/select.hpp - wait on several channel operations at once; exactly one happens.
//
//   int out = 7;
//   std::size_t i = weft::select(
//       weft::recv_case(requests, [](std::optional<request> r) { ... }),  // nullopt: closed
//       weft::send_case(replies, out, [](weft::channel_status s) { ... }), // ok or closed
//       weft::default_case([] { ... }));                                   // optional
//   // i: position of the case that ran (0, 1 or 2 here)
//
//   weft::select_for(100ms, recv_case(a, on_a), recv_case(b, on_b)) == weft::select_timeout
//
// Semantics (Go's select): a case is ready when its operation could complete now: a recv
// from a channel with a value or a waiting sender, or from a closed channel (its handler
// gets std::nullopt); a send to a channel with room or a waiting receiver, or to a closed
// channel (its handler gets channel_status::closed and the value stays in the caller's
// variable: send_case refers to it and moves from it only when the send happened). If
// several cases are ready, one is chosen uniformly at random (random start), so no case
// starves. If none is ready: with a default case, it runs; otherwise the caller waits
// (fiber: suspends; plain thread: blocks) until one case completes, or the deadline
// (select_for/until). Then exactly that case's handler runs, in the caller, after all
// channel locks are released. At most 32 channel cases and one default case.
//
// Memory ordering: as for the single operations (channel.hpp): the send that completes a
// recv case happens-before its handler; close() happens-before a handler that sees it.
#pragma once

#include <weft/export.hpp>
#include <weft/sync/channel.hpp>
#include <weft/timer.hpp>

#include <cstddef>
#include <functional>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>

namespace weft {

// Returned by select_for/select_until when the deadline passed with no case ready.
// select() (no deadline) returns it when the calling fiber was asked to stop
// (join_handle::request_stop): no case ran.
inline constexpr std::size_t select_timeout = static_cast<std::size_t>(-1);

namespace detail {

struct select_case {
  chan_core* ch;
  void* slot;  // send: the caller's T; recv: raw storage for a T
  bool send;
};
struct select_outcome {
  std::size_t index;  // into the cases array; SIZE_MAX: none (timeout or default)
  channel_status status;
};
// src/sync/channel.cpp. has_default: never waits.
WEFT_API select_outcome select_wait(select_case* cases, std::size_t n, clock::time_point deadline,
                                    bool has_default);

template <class T, class F>
struct recv_case_t {
  static constexpr bool is_default = false;
  channel<T>* ch;
  F f;
  alignas(T) unsigned char raw[sizeof(T)];
  select_case erase() noexcept { return {&core_of(*ch), raw, false}; }
  void complete(channel_status st) {
    std::optional<T> v;
    if (st == channel_status::ok) {
      T* p = std::launder(reinterpret_cast<T*>(raw));
      v.emplace(std::move(*p));
      p->~T();
    }
    std::invoke(f, std::move(v));
  }
};

template <class T, class F>
struct send_case_t {
  static constexpr bool is_default = false;
  channel<T>* ch;
  T* value;
  F f;
  select_case erase() noexcept { return {&core_of(*ch), value, true}; }
  void complete(channel_status st) {
    if constexpr (std::is_invocable_v<F&, channel_status>)
      std::invoke(f, st);
    else
      std::invoke(f);
  }
};

template <class F>
struct default_case_t {
  static constexpr bool is_default = true;
  F f;
  void complete(channel_status) { std::invoke(f); }
};

template <class... Cases>
std::size_t select_impl(clock::time_point deadline, Cases&... cases) {
  constexpr std::size_t n_default = (std::size_t{0} + ... + (Cases::is_default ? 1 : 0));
  constexpr std::size_t n_chan = sizeof...(Cases) - n_default;
  static_assert(n_default <= 1, "weft::select: at most one default_case");
  static_assert(n_chan >= 1 || n_default == 1, "weft::select: no cases");
  static_assert(n_chan <= 32, "weft::select: at most 32 channel cases");
  select_case erased[n_chan > 0 ? n_chan : 1];
  std::size_t position[n_chan > 0 ? n_chan : 1];  // channel case -> argument position
  std::size_t k = 0, pos = 0, default_pos = select_timeout;
  auto collect = [&](auto& c) {
    if constexpr (std::remove_reference_t<decltype(c)>::is_default) {
      default_pos = pos;
    } else {
      erased[k] = c.erase();
      position[k++] = pos;
    }
    ++pos;
  };
  (collect(cases), ...);
  const select_outcome o = select_wait(erased, n_chan, deadline, n_default == 1);
  const std::size_t chosen = o.index == static_cast<std::size_t>(-1) ? default_pos : position[o.index];
  if (chosen == select_timeout) return select_timeout;
  std::size_t at = 0;
  auto run = [&](auto& c) {
    if (at++ == chosen) c.complete(o.status);
  };
  (run(cases), ...);
  return chosen;
}

}  // namespace detail

// A receive case: f(std::optional<T>) runs with the value, or std::nullopt if closed.
template <class T, class F>
detail::recv_case_t<T, std::decay_t<F>> recv_case(channel<T>& ch, F&& f) {
  return {&ch, std::forward<F>(f), {}};
}
// A receive case whose value is ignored.
template <class T>
auto recv_case(channel<T>& ch) {
  return recv_case(ch, [](std::optional<T>) {});
}
// A send case: moves from `value` (the caller's variable) only when the send happens;
// f(channel_status) (ok or closed) or f() runs when the case is chosen.
template <class T, class F>
detail::send_case_t<T, std::decay_t<F>> send_case(channel<T>& ch, T& value, F&& f) {
  return {&ch, &value, std::forward<F>(f)};
}
template <class T>
auto send_case(channel<T>& ch, T& value) {
  return send_case(ch, value, [] {});
}
// Runs when no other case is ready; makes select non-blocking.
template <class F>
detail::default_case_t<std::decay_t<F>> default_case(F&& f) {
  return {std::forward<F>(f)};
}
inline auto default_case() {
  return default_case([] {});
}

// Waits until one case completes and runs its handler; returns the case's position, or
// select_timeout (no handler runs) when the calling fiber was asked to stop. Any fiber or
// thread.
template <class... Cases>
std::size_t select(Cases&&... cases) {
  return detail::select_impl(clock::time_point::max(), cases...);
}
// As select(), giving up at the deadline (returns select_timeout, no handler runs). A
// deadline in the past still takes a ready case.
template <class Duration, class... Cases>
std::size_t select_until(const std::chrono::time_point<clock, Duration>& tp, Cases&&... cases) {
  return detail::select_impl(to_deadline(tp), cases...);
}
template <class Rep, class Period, class... Cases>
std::size_t select_for(const std::chrono::duration<Rep, Period>& d, Cases&&... cases) {
  return detail::select_impl(deadline_after(d), cases...);
}

}  // namespace weft
