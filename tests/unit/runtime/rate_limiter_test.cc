#include "runtime/rate_limiter.h"

#include <gtest/gtest.h>

#include "fakes/fake_clock.h"

namespace patchgate::runtime {
namespace {

using namespace std::chrono_literals;
using Ms = std::chrono::milliseconds;
using patchgate::testing::FakeClock;

TEST(ItemExponentialFailureRateLimiter, DoublesFrom5msAndCapsAt1000s) {
  ItemExponentialFailureRateLimiter l(5ms, 1000s);
  Ms expected = 5ms;
  for (int i = 0; i < 18; ++i) {  // 5 ms * 2^17 = 655 s
    EXPECT_EQ(l.when("a"), expected) << "retry " << i;
    expected *= 2;
  }
  EXPECT_EQ(l.when("a"), Ms(1000s));  // 5 ms * 2^18 = 1310 s, capped
  for (int i = 0; i < 100; ++i) EXPECT_EQ(l.when("a"), Ms(1000s));  // no overflow
  EXPECT_EQ(l.numRequeues("a"), 119);
}

TEST(ItemExponentialFailureRateLimiter, ItemsAreIndependentAndForgetResets) {
  ItemExponentialFailureRateLimiter l(5ms, 1000s);
  EXPECT_EQ(l.when("a"), 5ms);
  EXPECT_EQ(l.when("a"), 10ms);
  EXPECT_EQ(l.when("b"), 5ms);
  EXPECT_EQ(l.numRequeues("a"), 2);
  EXPECT_EQ(l.numRequeues("b"), 1);
  l.forget("a");
  EXPECT_EQ(l.numRequeues("a"), 0);
  EXPECT_EQ(l.when("a"), 5ms);
  EXPECT_EQ(l.when("b"), 10ms);
}

TEST(BucketRateLimiter, BurstOf100ThenOneEvery100msAt10qps) {
  FakeClock clock;
  BucketRateLimiter l(10, 100, clock);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(l.when("x" + std::to_string(i)), 0ms) << i;
  // Out of tokens: each further reservation waits one more 100 ms slot.
  for (int i = 1; i <= 20; ++i) EXPECT_EQ(l.when("y"), Ms(100 * i)) << i;
  EXPECT_EQ(l.numRequeues("y"), 0);
  // 2 s later 20 tokens have refilled and paid the debt: the next one waits 100 ms again.
  clock.advance(2s);
  EXPECT_EQ(l.when("z"), 100ms);
  clock.advance(100ms);
  EXPECT_EQ(l.when("z"), 100ms);
}

TEST(BucketRateLimiter, RefillsUpToTheBurstOnly) {
  FakeClock clock;
  BucketRateLimiter l(10, 100, clock);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(l.when("x"), 0ms);
  clock.advance(1h);  // refills 100 tokens, not 36000
  for (int i = 0; i < 100; ++i) ASSERT_EQ(l.when("x"), 0ms) << i;
  EXPECT_EQ(l.when("x"), 100ms);
}

// Returns scripted delays and records forget().
class ScriptedLimiter final : public RateLimiter {
 public:
  ScriptedLimiter(std::vector<Ms> delays, std::vector<std::string>* forgotten)
      : delays_(std::move(delays)), forgotten_(forgotten) {}
  Duration when(const std::string&) override { return delays_.at(i_++); }
  void forget(const std::string& item) override { forgotten_->push_back(item); }
  int numRequeues(const std::string&) override { return static_cast<int>(i_); }

 private:
  std::vector<Ms> delays_;
  std::vector<std::string>* forgotten_;
  size_t i_ = 0;
};

TEST(MaxOfRateLimiter, TakesTheLongestDelayAndForwardsForget) {
  std::vector<std::string> forgotten;
  std::vector<std::unique_ptr<RateLimiter>> ls;
  ls.push_back(std::make_unique<ScriptedLimiter>(std::vector<Ms>{5ms, 500ms, 7ms}, &forgotten));
  ls.push_back(std::make_unique<ScriptedLimiter>(std::vector<Ms>{0ms, 100ms, 9ms}, &forgotten));
  MaxOfRateLimiter l(std::move(ls));
  EXPECT_EQ(l.when("a"), 5ms);
  EXPECT_EQ(l.when("a"), 500ms);
  EXPECT_EQ(l.when("a"), 9ms);
  EXPECT_EQ(l.numRequeues("a"), 3);
  l.forget("a");
  EXPECT_EQ(forgotten, (std::vector<std::string>{"a", "a"}));
}

TEST(DefaultControllerRateLimiter, PerItemBackoffAndOverallBucket) {
  FakeClock clock;
  auto l = defaultControllerRateLimiter(clock);
  EXPECT_EQ(l->when("a"), 5ms);
  EXPECT_EQ(l->when("a"), 10ms);
  EXPECT_EQ(l->when("a"), 20ms);
  l->forget("a");
  EXPECT_EQ(l->when("a"), 5ms);
  EXPECT_EQ(l->numRequeues("a"), 1);
  // 4 tokens used; after 96 more distinct items the bucket dominates.
  for (int i = 0; i < 96; ++i) ASSERT_EQ(l->when("item" + std::to_string(i)), 5ms);
  EXPECT_EQ(l->when("late"), 100ms);
}

}  // namespace
}  // namespace patchgate::runtime
