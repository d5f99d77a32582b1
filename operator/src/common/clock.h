#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stop_token>

namespace patchgate {

// Time source. Every component that waits or timestamps takes a Clock& so that
// tests can drive time with FakeClock instead of sleeping.
class Clock {
 public:
  using TimePoint = std::chrono::system_clock::time_point;
  using Duration = std::chrono::system_clock::duration;
  using SteadyPoint = std::chrono::steady_clock::time_point;

  virtual ~Clock() = default;
  virtual TimePoint now() const = 0;
  // Monotonic time, for measuring how long something took or has been
  // silent (a lease's age): a wall-clock step (NTP, a VM resumed, a person
  // with `date -s`) must not make a lease look expired or fresh.
  virtual SteadyPoint steadyNow() const = 0;

  // Blocks on `cv` (with `lock` held, as std::condition_variable_any::wait)
  // until notified or until now() >= deadline. May return early or spuriously:
  // callers re-check their predicate in a loop.
  virtual void waitUntil(std::condition_variable_any& cv,
                         std::unique_lock<std::mutex>& lock,
                         TimePoint deadline) = 0;
  // The same with a monotonic deadline (steadyNow()'s): for waits that must
  // not stretch when the wall clock steps back.
  virtual void waitUntilSteady(std::condition_variable_any& cv, std::unique_lock<std::mutex>& lock,
                               SteadyPoint deadline) = 0;
};

// The wall clock. Waits are measured on the steady clock so that a wall-clock
// jump does not stretch or cut them.
class RealClock final : public Clock {
 public:
  TimePoint now() const override { return std::chrono::system_clock::now(); }
  SteadyPoint steadyNow() const override { return std::chrono::steady_clock::now(); }
  void waitUntil(std::condition_variable_any& cv, std::unique_lock<std::mutex>& lock,
                 TimePoint deadline) override {
    auto remaining = deadline - now();
    if (remaining <= Duration::zero()) return;
    cv.wait_for(lock, remaining);
  }
  void waitUntilSteady(std::condition_variable_any& cv, std::unique_lock<std::mutex>& lock,
                       SteadyPoint deadline) override {
    cv.wait_until(lock, deadline);
  }
};

// Waits `d` on `clock`, returning early (false) when `stop` is requested.
// Returns true when the full time passed. Measured on the monotonic clock: a
// wall-clock step back must not turn the elector's 2 s pause into an hour
// while another replica takes the lease.
inline bool sleepFor(Clock& clock, std::stop_token stop, Clock::Duration d) {
  std::mutex mu;
  std::condition_variable_any cv;
  // The callback must exist before the lock is taken: if stop was already
  // requested it runs at once, on this thread.
  std::stop_callback wake(stop, [&] {
    std::lock_guard l(mu);
    cv.notify_all();
  });
  std::unique_lock lock(mu);
  auto deadline = clock.steadyNow() + std::chrono::duration_cast<Clock::SteadyPoint::duration>(d);
  while (!stop.stop_requested() && clock.steadyNow() < deadline) clock.waitUntilSteady(cv, lock, deadline);
  return !stop.stop_requested();
}

}  // namespace patchgate
