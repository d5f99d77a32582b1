#include "runtime/workqueue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <set>
#include <thread>

#include "fakes/fake_clock.h"
#include "test_util.h"

namespace patchgate::runtime {
namespace {

using namespace std::chrono_literals;
using patchgate::testing::briefly;
using patchgate::testing::eventually;
using patchgate::testing::FakeClock;

std::unique_ptr<RateLimiter> exponential() {
  return std::make_unique<ItemExponentialFailureRateLimiter>(5ms, 1000s);
}

class WorkQueueTest : public ::testing::Test {
 protected:
  FakeClock clock_;
  WorkQueue q_{"test", clock_, exponential()};

  using Result = std::shared_future<std::optional<std::string>>;

  // get() on another thread, so a test can show it blocks. The fixture keeps
  // a copy and shuts the queue down first, so a failing test cannot hang on
  // a blocked get().
  Result asyncGet() {
    Result f = std::async(std::launch::async, [this] { return q_.get(); }).share();
    pending_.push_back(f);
    return f;
  }
  static bool ready(const Result& f, std::chrono::milliseconds wait = 20ms) {
    return f.wait_for(wait) == std::future_status::ready;
  }
  void TearDown() override {
    q_.shutDown();
    pending_.clear();
  }

  std::vector<Result> pending_;
};

TEST_F(WorkQueueTest, DeduplicatesQueuedItems) {
  q_.add("a");
  q_.add("b");
  q_.add("a");
  q_.add("a");
  EXPECT_EQ(q_.len(), 2u);
  EXPECT_EQ(q_.get(), "a");
  EXPECT_EQ(q_.get(), "b");
  EXPECT_EQ(q_.len(), 0u);
}

TEST_F(WorkQueueTest, AnItemAddedWhileProcessingIsRequeuedOnlyAfterDone) {
  q_.add("a");
  ASSERT_EQ(q_.get(), "a");
  q_.add("a");
  q_.add("a");
  EXPECT_EQ(q_.len(), 0u);  // held back while "a" is processed

  auto second = asyncGet();
  EXPECT_FALSE(ready(second));  // a second worker does not get "a"
  q_.done("a");
  ASSERT_TRUE(ready(second, 5s));
  EXPECT_EQ(second.get(), "a");  // once, though added twice
  q_.done("a");
  EXPECT_EQ(q_.len(), 0u);
}

TEST_F(WorkQueueTest, DoneWithoutNewAddsDoesNotRequeue) {
  q_.add("a");
  ASSERT_EQ(q_.get(), "a");
  q_.done("a");
  EXPECT_EQ(q_.len(), 0u);
}

TEST_F(WorkQueueTest, NeverHandsAnItemToTwoWorkersAtOnce) {
  constexpr int kWorkers = 4;
  constexpr int kAdds = 2000;
  std::mutex mu;
  std::map<std::string, int> inFlight;
  std::atomic<int> violations = 0, processed = 0;
  std::vector<std::jthread> workers;
  struct ShutDownFirst {  // destroyed before `workers` joins them
    WorkQueue& q;
    ~ShutDownFirst() { q.shutDown(); }
  } guard{q_};
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&] {
      while (auto item = q_.get()) {
        {
          std::lock_guard l(mu);
          if (++inFlight[*item] > 1) ++violations;
        }
        std::this_thread::yield();
        {
          std::lock_guard l(mu);
          --inFlight[*item];
        }
        ++processed;
        q_.done(*item);
      }
    });
  }
  std::jthread producer([&] {
    for (int i = 0; i < kAdds; ++i) q_.add(i % 2 ? "x" : "y");
  });
  producer.join();
  // Every add after the last get is honoured: both items get processed once more.
  ASSERT_TRUE(eventually([&] { return q_.len() == 0; }));
  int before = processed;
  q_.add("x");
  q_.add("y");
  ASSERT_TRUE(eventually([&] { return processed >= before + 2; }));
  q_.shutDown();
  for (auto& w : workers) w.join();
  EXPECT_EQ(violations, 0);
  EXPECT_LE(processed, kAdds + 2);  // deduplicated
}

TEST_F(WorkQueueTest, AddAfterWaitsForTheClock) {
  q_.addAfter("a", 10s);
  EXPECT_EQ(q_.len(), 0u);
  EXPECT_EQ(q_.waitingLen(), 1u);
  auto got = asyncGet();
  EXPECT_FALSE(ready(got));
  clock_.advance(9999ms);
  EXPECT_FALSE(ready(got));
  clock_.advance(1ms);
  ASSERT_TRUE(ready(got, 5s));
  EXPECT_EQ(got.get(), "a");
  EXPECT_EQ(q_.waitingLen(), 0u);
}

TEST_F(WorkQueueTest, AddAfterWithNoDelayAddsAtOnce) {
  q_.addAfter("a", 0s);
  EXPECT_EQ(q_.len(), 1u);
  q_.addAfter("b", -1s);
  EXPECT_EQ(q_.len(), 2u);
}

TEST_F(WorkQueueTest, AnEarlierAddAfterSupersedesALaterOne) {
  q_.addAfter("a", 10s);
  q_.addAfter("a", 1s);
  EXPECT_EQ(q_.waitingLen(), 1u);
  clock_.advance(1s);
  EXPECT_EQ(q_.get(), "a");
  q_.done("a");
  // The superseded 10 s entry must not bring "a" back.
  clock_.advance(20s);
  q_.add("b");
  EXPECT_EQ(q_.get(), "b");
  EXPECT_EQ(q_.len(), 0u);
  EXPECT_EQ(q_.waitingLen(), 0u);
}

TEST_F(WorkQueueTest, ALaterAddAfterDoesNotPostponeAnEarlierOne) {
  q_.addAfter("a", 1s);
  q_.addAfter("a", 10s);
  clock_.advance(1s);
  auto got = asyncGet();
  ASSERT_TRUE(ready(got, 5s));
  EXPECT_EQ(got.get(), "a");
}

TEST_F(WorkQueueTest, AddAfterOfAQueuedItemDoesNotDuplicateIt) {
  q_.add("a");
  q_.addAfter("a", 1s);
  clock_.advance(1s);
  EXPECT_EQ(q_.get(), "a");
  q_.done("a");
  q_.add("b");
  EXPECT_EQ(q_.get(), "b");  // the delayed add merged with the queued "a"
}

TEST_F(WorkQueueTest, AddRateLimitedUsesTheLimiter) {
  q_.addRateLimited("a");  // 5 ms
  EXPECT_EQ(q_.numRequeues("a"), 1);
  auto got = asyncGet();
  clock_.advance(4ms);
  EXPECT_FALSE(ready(got));
  clock_.advance(1ms);
  ASSERT_TRUE(ready(got, 5s));
  EXPECT_EQ(got.get(), "a");
  q_.done("a");

  q_.addRateLimited("a");  // 10 ms
  auto again = asyncGet();
  clock_.advance(9ms);
  EXPECT_FALSE(ready(again));
  clock_.advance(1ms);
  ASSERT_TRUE(ready(again, 5s));
  q_.done("a");

  q_.forget("a");
  EXPECT_EQ(q_.numRequeues("a"), 0);
  q_.addRateLimited("a");  // back to 5 ms
  clock_.advance(5ms);
  EXPECT_EQ(q_.get(), "a");
}

TEST_F(WorkQueueTest, ShutDownUnblocksGetAndRefusesAdds) {
  auto got = asyncGet();
  EXPECT_FALSE(ready(got));
  q_.shutDown();
  ASSERT_TRUE(ready(got, 5s));
  EXPECT_EQ(got.get(), std::nullopt);
  EXPECT_TRUE(q_.shuttingDown());
  q_.add("a");
  q_.addAfter("b", 1s);
  EXPECT_EQ(q_.len(), 0u);
  EXPECT_EQ(q_.waitingLen(), 0u);
  EXPECT_EQ(q_.get(), std::nullopt);
}

TEST_F(WorkQueueTest, ShutDownUnblocksAGetWaitingForADelayedItem) {
  q_.addAfter("a", 1h);
  auto got = asyncGet();
  EXPECT_FALSE(ready(got));
  q_.shutDown();
  ASSERT_TRUE(ready(got, 5s));
  EXPECT_EQ(got.get(), std::nullopt);
}

// After a restart the queue hands out what was queued before the shutdown,
// and an item re-added while it was being processed (left dirty by done()
// during the shutdown) is not lost.
TEST_F(WorkQueueTest, RestartKeepsWhatWasQueuedAndWhatWasReAddedWhileProcessing) {
  q_.add("a");
  q_.add("b");
  ASSERT_EQ(q_.get(), "a");
  q_.add("a");  // changed while being processed
  q_.shutDown();
  q_.done("a");
  EXPECT_EQ(q_.get(), std::nullopt);
  q_.restart();
  EXPECT_FALSE(q_.shuttingDown());
  std::set<std::string> got{*q_.get(), *q_.get()};
  EXPECT_EQ(got, (std::set<std::string>{"a", "b"}));
  EXPECT_EQ(q_.len(), 0u);
  q_.add("c");
  EXPECT_EQ(q_.get(), "c");
}

class RecordingMetrics final : public QueueMetrics {
 public:
  void add() override { ++adds; }
  void depth(int64_t d) override { depths.push_back(d); }
  void queueDuration(double s) override { queued.push_back(s); }
  void workDuration(double s) override { worked.push_back(s); }
  void retry() override { ++retries; }
  int adds = 0, retries = 0;
  std::vector<int64_t> depths;
  std::vector<double> queued, worked;
};

TEST(WorkQueueMetrics, HooksAreCalled) {
  FakeClock clock;
  RecordingMetrics m;
  WorkQueue q("m", clock, exponential(), &m);
  q.add("a");
  q.add("b");
  q.add("a");  // deduplicated: not counted
  EXPECT_EQ(m.adds, 2);
  EXPECT_EQ(m.depths, (std::vector<int64_t>{1, 2}));
  clock.advance(2s);
  ASSERT_EQ(q.get(), "a");
  EXPECT_EQ(m.queued, std::vector<double>{2.0});
  EXPECT_EQ(m.depths.back(), 1);
  clock.advance(3s);
  q.done("a");
  EXPECT_EQ(m.worked, std::vector<double>{3.0});
  q.addRateLimited("a");
  EXPECT_EQ(m.retries, 1);
}

}  // namespace
}  // namespace patchgate::runtime
