#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

namespace patchgate {

// Time source. Every component that waits or timestamps takes a Clock& so that
// tests can drive time with FakeClock instead of sleeping.
class Clock {
 public:
  using TimePoint = std::chrono::system_clock::time_point;
  using Duration = std::chrono::system_clock::duration;

  virtual ~Clock() = default;
  virtual TimePoint now() const = 0;

  // Blocks on `cv` (with `lock` held, as std::condition_variable_any::wait)
  // until notified or until now() >= deadline. May return early or spuriously:
  // callers re-check their predicate in a loop.
  virtual void waitUntil(std::condition_variable_any& cv,
                         std::unique_lock<std::mutex>& lock,
                         TimePoint deadline) = 0;
};

// The wall clock. Waits are measured on the steady clock so that a wall-clock
// jump does not stretch or cut them.
class RealClock final : public Clock {
 public:
  TimePoint now() const override { return std::chrono::system_clock::now(); }
  void waitUntil(std::condition_variable_any& cv, std::unique_lock<std::mutex>& lock,
                 TimePoint deadline) override {
    auto remaining = deadline - now();
    if (remaining <= Duration::zero()) return;
    cv.wait_for(lock, remaining);
  }
};

}  // namespace patchgate
