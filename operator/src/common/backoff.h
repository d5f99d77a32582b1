#pragma once

#include <algorithm>
#include <chrono>

#include "common/random.h"

namespace patchgate {

// Exponential backoff with jitter: each step multiplies the base delay by
// `factor` up to `cap`, and adds up to `jitter` times the delay at random.
// Not thread-safe: one Backoff per retry loop.
class Backoff {
 public:
  using Duration = std::chrono::milliseconds;

  Backoff(Duration initial, Duration cap, double factor, double jitter, Random& random)
      : initial_(initial), cap_(cap), factor_(factor), jitter_(jitter), random_(random),
        current_(initial) {}

  // client-go's reflector numbers: 800 ms doubling to 30 s, jitter 1.0.
  static Backoff forWatch(Random& random) {
    return Backoff(Duration(800), Duration(30000), 2.0, 1.0, random);
  }

  // The delay to wait before the next attempt; advances the sequence.
  Duration next() {
    Duration base = current_;
    // In double on purpose: delays are milliseconds, far below 2^53.
    current_ = std::min(cap_, Duration(static_cast<int64_t>(static_cast<double>(current_.count()) * factor_)));
    auto extra = static_cast<int64_t>(static_cast<double>(base.count()) * jitter_ * random_.uniform01());
    return base + Duration(extra);
  }

  void reset() { current_ = initial_; }
  Duration current() const { return current_; }

 private:
  Duration initial_;
  Duration cap_;
  double factor_;
  double jitter_;
  Random& random_;
  Duration current_;
};

}  // namespace patchgate
