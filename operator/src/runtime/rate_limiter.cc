#include "runtime/rate_limiter.h"

#include <algorithm>
#include <cmath>

namespace patchgate::runtime {

RateLimiter::Duration ItemExponentialFailureRateLimiter::when(const std::string& item) {
  std::lock_guard lock(mu_);
  int exp = failures_[item]++;
  double delay = static_cast<double>(base_.count()) * std::pow(2.0, std::min(exp, 62));
  if (delay > static_cast<double>(max_.count())) return max_;
  return Duration(static_cast<int64_t>(delay));
}

void ItemExponentialFailureRateLimiter::forget(const std::string& item) {
  std::lock_guard lock(mu_);
  failures_.erase(item);
}

int ItemExponentialFailureRateLimiter::numRequeues(const std::string& item) {
  std::lock_guard lock(mu_);
  auto it = failures_.find(item);
  return it == failures_.end() ? 0 : it->second;
}

BucketRateLimiter::BucketRateLimiter(double qps, int burst, Clock& clock)
    : qps_(qps), burst_(burst), tokens_(burst), last_(clock.now()), clock_(clock) {}

RateLimiter::Duration BucketRateLimiter::when(const std::string&) {
  std::lock_guard lock(mu_);
  auto now = clock_.now();
  double elapsed = std::chrono::duration<double>(now - last_).count();
  if (elapsed > 0) {
    tokens_ = std::min(burst_, tokens_ + elapsed * qps_);
    last_ = now;
  }
  tokens_ -= 1;  // reserve, possibly going into debt like rate.Limiter.Reserve
  if (tokens_ >= 0) return Duration(0);
  return Duration(static_cast<int64_t>(std::ceil(-tokens_ / qps_ * 1000.0)));
}

RateLimiter::Duration MaxOfRateLimiter::when(const std::string& item) {
  Duration longest(0);
  for (auto& l : limiters_) longest = std::max(longest, l->when(item));
  return longest;
}

void MaxOfRateLimiter::forget(const std::string& item) {
  for (auto& l : limiters_) l->forget(item);
}

int MaxOfRateLimiter::numRequeues(const std::string& item) {
  int most = 0;
  for (auto& l : limiters_) most = std::max(most, l->numRequeues(item));
  return most;
}

std::unique_ptr<RateLimiter> defaultControllerRateLimiter(Clock& clock) {
  std::vector<std::unique_ptr<RateLimiter>> limiters;
  limiters.push_back(std::make_unique<ItemExponentialFailureRateLimiter>(
      std::chrono::milliseconds(5), std::chrono::seconds(1000)));
  limiters.push_back(std::make_unique<BucketRateLimiter>(10.0, 100, clock));
  return std::make_unique<MaxOfRateLimiter>(std::move(limiters));
}

}  // namespace patchgate::runtime
