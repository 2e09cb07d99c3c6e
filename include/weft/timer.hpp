// weft/timer.hpp - deadlines. Every timeout in weft is a std::chrono::steady_clock
// deadline; durations are converted with saturation, so duration::max() means "never"
// and a negative duration means "already expired" (no arithmetic overflow either way).
#pragma once

#include <chrono>

namespace weft {

using clock = std::chrono::steady_clock;

// now() + d, saturated to [time_point::min(), time_point::max()].
template <class Rep, class Period>
clock::time_point deadline_after(const std::chrono::duration<Rep, Period>& d) noexcept {
  const auto now = clock::now();
  if (d <= d.zero()) return now;
  // Compare in the caller's units (as long double) so that huge durations cannot overflow.
  using ld = std::chrono::duration<long double, std::nano>;
  const ld room = ld(clock::time_point::max() - now);
  if (ld(d) >= room) return clock::time_point::max();
  return now + std::chrono::ceil<clock::duration>(d);
}

// A deadline on steady_clock, from any duration type; saturated like deadline_after.
template <class Duration>
clock::time_point to_deadline(const std::chrono::time_point<clock, Duration>& tp) noexcept {
  using ld = std::chrono::duration<long double, std::nano>;
  if (ld(tp.time_since_epoch()) >= ld(clock::time_point::max().time_since_epoch()))
    return clock::time_point::max();
  if (ld(tp.time_since_epoch()) <= ld(clock::time_point::min().time_since_epoch()))
    return clock::time_point::min();
  return std::chrono::time_point_cast<clock::duration>(tp);
}

}  // namespace weft
