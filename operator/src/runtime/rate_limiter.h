#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/clock.h"

namespace patchgate::runtime {

// Decides how long an item waits before it is retried. Thread-safe.
class RateLimiter {
 public:
  using Duration = std::chrono::milliseconds;
  virtual ~RateLimiter() = default;
  // The delay for the next retry of `item`; counts as a retry.
  virtual Duration when(const std::string& item) = 0;
  // Clears the item's failure history (after a success).
  virtual void forget(const std::string& item) = 0;
  // How many times `item` has been retried since it was last forgotten.
  virtual int numRequeues(const std::string& item) = 0;
};

// base * 2^failures, capped at max.
class ItemExponentialFailureRateLimiter final : public RateLimiter {
 public:
  ItemExponentialFailureRateLimiter(Duration base, Duration max) : base_(base), max_(max) {}
  Duration when(const std::string& item) override;
  void forget(const std::string& item) override;
  int numRequeues(const std::string& item) override;

 private:
  std::mutex mu_;
  std::map<std::string, int> failures_;
  Duration base_, max_;
};

// An overall token bucket: `qps` refill, `burst` capacity. Items do not
// matter; each call reserves one token and waits its turn.
class BucketRateLimiter final : public RateLimiter {
 public:
  BucketRateLimiter(double qps, int burst, Clock& clock);
  Duration when(const std::string& item) override;
  void forget(const std::string&) override {}
  int numRequeues(const std::string&) override { return 0; }

 private:
  std::mutex mu_;
  double qps_;
  double burst_;
  double tokens_;
  Clock::TimePoint last_;
  Clock& clock_;
};

// The longest delay of several limiters.
class MaxOfRateLimiter final : public RateLimiter {
 public:
  explicit MaxOfRateLimiter(std::vector<std::unique_ptr<RateLimiter>> limiters)
      : limiters_(std::move(limiters)) {}
  Duration when(const std::string& item) override;
  void forget(const std::string& item) override;
  int numRequeues(const std::string& item) override;

 private:
  std::vector<std::unique_ptr<RateLimiter>> limiters_;
};

// client-go's DefaultControllerRateLimiter: per-item 5 ms doubling to 1000 s,
// and an overall bucket of 10 qps with a burst of 100.
std::unique_ptr<RateLimiter> defaultControllerRateLimiter(Clock& clock);

}  // namespace patchgate::runtime
