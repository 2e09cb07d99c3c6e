// weft/sync/channel.hpp - channel<T>: a multi-producer multi-consumer queue of values for
// fibers and plain threads, in three kinds:
//
//   weft::channel<int> rendezvous;                       // capacity 0: send waits for recv
//   weft::channel<int> bounded(64);                      // send waits while 64 are queued
//   weft::channel<int> unbounded(weft::channel<int>::unbounded);  // send never waits
//
//   ch.send(v);                                          // channel_status::ok or ::closed
//   while (auto v = ch.recv()) use(*v);                  // std::nullopt once closed+drained
//   for (int v : ch) use(v);                             // the same, as a range
//
// close(): further sends return `closed` and keep their value (the caller's object is not
// moved from); receivers first drain what is buffered, then get `closed`. Waiting
// senders and receivers are released with `closed`. A value is never dropped silently:
// it is received, still buffered (destroyed with the channel), or still the caller's.
// T must be nothrow move constructible. Several channels: weft/sync/select.hpp.
//
// Memory ordering: a send happens-before the recv that returns its value; close()
// happens-before every operation that returns `closed` because of it. FIFO per channel:
// values leave in the order their sends completed.
//
// Lifetime: a channel may be destroyed once no operation waits on it, even while the
// partner of the last one (the send that handed over a value, the close that released a
// receiver, a select that won) is still returning: none of them touches it afterwards. A
// select that won elsewhere but still has to leave this channel delays its destruction
// for that moment (src/sync/channel.cpp step 7).
#pragma once

#include <weft/export.hpp>
#include <weft/sync/detail/wait_queue.hpp>
#include <weft/timer.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <new>
#include <optional>
#include <type_traits>
#include <utility>

namespace weft {

// Outcome of a channel operation (boost.fiber's channel_op_status, plus timeout).
enum class channel_status {
  ok,       // the value was sent / received
  closed,   // the channel is closed (and, for receives, drained)
  full,     // try_send: no receiver waiting and no buffer space
  empty,    // try_recv: nothing buffered and no sender waiting
  timeout,  // *_for / *_until: the deadline passed first (or the fiber was asked to stop)
  canceled, // send(): the calling fiber was asked to stop (join_handle::request_stop)
};

// A receive's status and, when status == ok, its value.
template <class T>
struct recv_result {
  channel_status status = channel_status::empty;
  std::optional<T> value;
  explicit operator bool() const noexcept { return status == channel_status::ok; }
  T& operator*() noexcept { return *value; }
  T* operator->() noexcept { return &*value; }
};

template <class T>
class channel;

namespace detail {

struct wait_node;

// How the type-erased core moves and destroys a T.
struct chan_vtable {
  std::size_t size;
  std::size_t align;
  void (*move_construct)(void* dst, void* src) noexcept;  // new (dst) T(std::move(*src))
  void (*destroy)(void* p) noexcept;
};

// The non-template part of every channel<T> (src/sync/channel.cpp).
class chan_core {
public:
  static constexpr std::size_t unbounded = SIZE_MAX;

  WEFT_API chan_core(std::size_t capacity, const chan_vtable& vt);
  WEFT_API ~chan_core();  // aborts if fibers or threads still wait on it
  chan_core(const chan_core&) = delete;
  chan_core& operator=(const chan_core&) = delete;

  // src: a live T the value is moved from (only when ok). dst: raw storage for a T,
  // constructed only when ok. block = false: never waits (full / empty).
  WEFT_API channel_status send(void* src, clock::time_point deadline, bool block);
  WEFT_API channel_status recv(void* dst, clock::time_point deadline, bool block);
  WEFT_API bool close() noexcept;
  [[nodiscard]] WEFT_API bool is_closed() const noexcept;
  [[nodiscard]] WEFT_API std::size_t size() const noexcept;
  std::size_t capacity() const noexcept { return cap_; }

private:
  friend struct chan_ops;  // src/sync/channel.cpp: the locked operations and select
  const chan_vtable& vt_;
  const std::size_t cap_;
  mutable spinlock lock_;
  // All below: guarded by lock_.
  bool closed_ = false;
  unsigned char* buf_ = nullptr;  // ring of buf_cap_ slots of vt_.size bytes
  std::size_t buf_cap_ = 0, head_ = 0, count_ = 0;
  wait_queue senders_, receivers_;
};

template <class T>
struct chan_vtable_of {
  static void move_construct(void* dst, void* src) noexcept {
    ::new (dst) T(std::move(*static_cast<T*>(src)));
  }
  static void destroy(void* p) noexcept { static_cast<T*>(p)->~T(); }
  static constexpr chan_vtable value{sizeof(T), alignof(T), &move_construct, &destroy};
};

template <class T>
chan_core& core_of(channel<T>& ch) noexcept;

}  // namespace detail

template <class T>
class channel {
  static_assert(std::is_nothrow_move_constructible_v<T>,
                "weft::channel<T> needs a nothrow move constructor");

public:
  static constexpr std::size_t unbounded = detail::chan_core::unbounded;

  // capacity 0: rendezvous (each send waits for its receiver, Go's unbuffered channel);
  // N: at most N values buffered; channel<T>::unbounded: sends never wait. Throws
  // std::length_error when N values of T are more than any allocation can hold
  // (N * sizeof(T) overflows), std::bad_alloc when the buffer cannot be allocated.
  explicit channel(std::size_t capacity = 0) : core_(capacity, detail::chan_vtable_of<T>::value) {}
  // Destroys buffered values. Aborts (contract violation) if fibers or threads wait on it.
  ~channel() = default;
  channel(const channel&) = delete;
  channel& operator=(const channel&) = delete;

  // Sends v, waiting (fiber: suspends; plain thread: blocks) for buffer space or, with
  // capacity 0, for a receiver. Returns ok, or closed (v is left untouched), or canceled
  // when the calling fiber was asked to stop (v untouched; "Cancellation" in README.md).
  // Any fiber or thread. An unbounded channel whose buffer cannot grow throws std::bad_alloc (from
  // every send flavour and select): v is left untouched and the channel unchanged.
  [[nodiscard]] channel_status send(T&& v) { return core_.send(&v, clock::time_point::max(), true); }
  [[nodiscard]] channel_status send(const T& v) {
    T copy(v);
    return send(std::move(copy));
  }
  // Never waits: ok, full or closed (v untouched unless ok).
  [[nodiscard]] channel_status try_send(T&& v) { return core_.send(&v, clock::time_point::max(), false); }
  [[nodiscard]] channel_status try_send(const T& v) {
    T copy(v);
    return try_send(std::move(copy));
  }
  // As send(), giving up at the deadline: ok, closed or timeout (v untouched unless ok).
  // A deadline in the past still sends when that needs no wait.
  [[nodiscard]] channel_status send_until(T&& v, clock::time_point deadline) {
    return core_.send(&v, deadline, true);
  }
  template <class Rep, class Period>
  [[nodiscard]] channel_status send_for(T&& v, const std::chrono::duration<Rep, Period>& d) {
    return send_until(std::move(v), deadline_after(d));
  }

  // Receives a value, waiting while the channel is empty and open; std::nullopt once the
  // channel is closed and drained, or when the calling fiber was asked to stop (nothing
  // is taken; tell them apart with this_fiber::stop_requested()). Any fiber or thread.
  [[nodiscard]] std::optional<T> recv() {
    std::optional<T> v;  // filled in place: no recv_result to move it out of
    (void)recv_into(v, clock::time_point::max(), true);
    return v;
  }
  // Never waits: ok (with the value), empty or closed.
  [[nodiscard]] recv_result<T> try_recv() { return recv_impl(clock::time_point::max(), false); }
  // As recv(), giving up at the deadline: ok, closed or timeout.
  [[nodiscard]] recv_result<T> recv_until(clock::time_point deadline) {
    return recv_impl(deadline, true);
  }
  template <class Rep, class Period>
  [[nodiscard]] recv_result<T> recv_for(const std::chrono::duration<Rep, Period>& d) {
    return recv_until(deadline_after(d));
  }

  // Closes the channel (see the header comment). Returns false if it was already closed.
  // Any fiber or thread; never blocks.
  bool close() noexcept { return core_.close(); }
  [[nodiscard]] bool is_closed() const noexcept { return core_.is_closed(); }
  // Buffered values now (a snapshot).
  [[nodiscard]] std::size_t size() const noexcept { return core_.size(); }
  [[nodiscard]] std::size_t capacity() const noexcept { return core_.capacity(); }

  // Input range over received values, ending when the channel is closed and drained.
  class iterator {
  public:
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    explicit iterator(channel* ch) : ch_(ch) { ++*this; }
    T& operator*() noexcept { return *cur_; }
    iterator& operator++() {
      cur_ = ch_->recv();
      if (!cur_) ch_ = nullptr;
      return *this;
    }
    struct sentinel {};
    bool operator==(sentinel) const noexcept { return ch_ == nullptr; }
    bool operator!=(sentinel) const noexcept { return ch_ != nullptr; }

  private:
    channel* ch_;
    std::optional<T> cur_;
  };
  iterator begin() { return iterator(this); }
  typename iterator::sentinel end() noexcept { return {}; }

private:
  friend detail::chan_core& detail::core_of<T>(channel<T>&) noexcept;

  // Receives into v (engaged only when ok).
  channel_status recv_into(std::optional<T>& v, clock::time_point deadline, bool block) {
    alignas(T) unsigned char raw[sizeof(T)];
    const channel_status st = core_.recv(raw, deadline, block);
    if (st == channel_status::ok) {
      T* p = std::launder(reinterpret_cast<T*>(raw));
      v.emplace(std::move(*p));
      p->~T();
    }
    return st;
  }
  recv_result<T> recv_impl(clock::time_point deadline, bool block) {
    recv_result<T> r;
    r.status = recv_into(r.value, deadline, block);
    return r;
  }

  detail::chan_core core_;
};

namespace detail {
template <class T>
chan_core& core_of(channel<T>& ch) noexcept {
  return ch.core_;
}
}  // namespace detail

}  // namespace weft
