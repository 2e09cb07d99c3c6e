// weft/result.hpp - result<T>: a value or a std::error_code, the return type of every
// I/O call. It uses std::expected's member names (has_value, value, error, operator bool,
// operator*, operator->, value_or), so it can become an alias of
// std::expected<T, std::error_code> once the public headers move to C++23.
//
//   weft::result<std::size_t> r = weft::io::read(fd, buf, sizeof buf);
//   if (!r) return r.error();          // std::error_code, e.g. std::errc::timed_out
//   if (*r == 0) ...                   // end of file
//
// result<void> carries only the error. value() on an error throws std::system_error
// holding that error (std::expected would throw bad_expected_access).
#pragma once

#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>

namespace weft {

template <class T>
class [[nodiscard]] result {
public:
  using value_type = T;
  using error_type = std::error_code;

  // A value (implicit, as std::expected's converting constructor).
  template <class U = T,
            class = std::enable_if_t<std::is_constructible_v<T, U&&> &&
                                     !std::is_same_v<std::decay_t<U>, result> &&
                                     !std::is_same_v<std::decay_t<U>, std::error_code>>>
  result(U&& v) : v_(std::forward<U>(v)) {}  // NOLINT(google-explicit-constructor)
  // An error. Precondition: e is an error (non-zero); an empty code is stored as-is.
  result(std::error_code e) noexcept : e_(e) {}  // NOLINT(google-explicit-constructor)

  bool has_value() const noexcept { return v_.has_value(); }
  explicit operator bool() const noexcept { return has_value(); }
  // The value; throws std::system_error(error()) when there is none.
  T& value() & { check(); return *v_; }
  const T& value() const& { check(); return *v_; }
  T&& value() && { check(); return std::move(*v_); }
  // Precondition: has_value().
  T& operator*() & noexcept { return *v_; }
  const T& operator*() const& noexcept { return *v_; }
  T&& operator*() && noexcept { return std::move(*v_); }
  T* operator->() noexcept { return &*v_; }
  const T* operator->() const noexcept { return &*v_; }
  template <class U>
  T value_or(U&& other) const& { return v_ ? *v_ : static_cast<T>(std::forward<U>(other)); }
  // The error; an empty std::error_code when has_value().
  std::error_code error() const noexcept { return e_; }

private:
  void check() const {
    if (!v_) throw std::system_error(e_);
  }
  std::optional<T> v_;
  std::error_code e_;
};

template <>
class [[nodiscard]] result<void> {
public:
  using value_type = void;
  using error_type = std::error_code;

  result() noexcept = default;  // success
  result(std::error_code e) noexcept : e_(e) {}  // NOLINT(google-explicit-constructor)

  bool has_value() const noexcept { return !e_; }
  explicit operator bool() const noexcept { return has_value(); }
  // Throws std::system_error(error()) on an error.
  void value() const {
    if (e_) throw std::system_error(e_);
  }
  void operator*() const noexcept {}
  std::error_code error() const noexcept { return e_; }

private:
  std::error_code e_;
};

}  // namespace weft
