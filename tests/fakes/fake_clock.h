#pragma once

#include <chrono>
#include <mutex>

#include "common/clock.h"
#include "common/random.h"

namespace patchgate::testing {

// A clock that moves only when the test says so. Waiters poll briefly (1 ms of
// real time) and re-check, so advance() needs no handle on their locks.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(TimePoint start = TimePoint(std::chrono::seconds(1'700'000'000)))
      : now_(start) {}

  TimePoint now() const override {
    std::lock_guard lock(mu_);
    return now_;
  }
  SteadyPoint steadyNow() const override {
    std::lock_guard lock(mu_);
    return steady_;
  }
  void waitUntil(std::condition_variable_any& cv, std::unique_lock<std::mutex>& lock,
                 TimePoint deadline) override {
    if (now() >= deadline) return;
    cv.wait_for(lock, std::chrono::milliseconds(1));
  }
  // Time passes: both clocks move.
  void waitUntilSteady(std::condition_variable_any& cv, std::unique_lock<std::mutex>& lock,
                       SteadyPoint deadline) override {
    if (steadyNow() >= deadline) return;
    cv.wait_for(lock, std::chrono::milliseconds(1));
  }
  void advance(Duration d) {
    std::lock_guard lock(mu_);
    now_ += d;
    steady_ += std::chrono::duration_cast<std::chrono::steady_clock::duration>(d);
  }
  // The wall clock is set (a step): monotonic time does not move.
  void set(TimePoint t) {
    std::lock_guard lock(mu_);
    now_ = t;
  }

 private:
  mutable std::mutex mu_;
  TimePoint now_;
  SteadyPoint steady_{std::chrono::hours(1)};
};

// Deterministic randomness for jitter.
class FixedRandom final : public Random {
 public:
  explicit FixedRandom(double value = 0.5) : value_(value) {}
  double uniform01() override { return value_; }

 private:
  double value_;
};

}  // namespace patchgate::testing
