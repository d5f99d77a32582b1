#pragma once

#include <mutex>
#include <random>

namespace patchgate {

// Source of randomness (jitter, names). Injected so that tests are repeatable.
class Random {
 public:
  virtual ~Random() = default;
  // Uniform in [0, 1).
  virtual double uniform01() = 0;
};

class RandomImpl final : public Random {
 public:
  RandomImpl() : engine_(std::random_device{}()) {}
  explicit RandomImpl(unsigned seed) : engine_(seed) {}
  double uniform01() override {
    std::lock_guard lock(mu_);
    return std::uniform_real_distribution<double>(0.0, 1.0)(engine_);
  }

 private:
  std::mutex mu_;
  std::mt19937_64 engine_;
};

}  // namespace patchgate
