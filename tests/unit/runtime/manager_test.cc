#include "runtime/manager.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>

#include "test_util.h"

namespace patchgate::runtime {
namespace {

using patchgate::testing::briefly;
using patchgate::testing::eventually;
using patchgate::testing::quietLogger;

// Runs until stopped; records that it started and that run() returned.
class TestRunnable final : public Runnable {
 public:
  explicit TestRunnable(std::string name) : name_(std::move(name)) {}
  std::string name() const override { return name_; }
  void run(std::stop_token stop) override {
    ++runs;
    started = true;
    std::mutex mu;
    std::condition_variable_any cv;
    std::unique_lock lock(mu);
    cv.wait(lock, stop, [] { return false; });
    returned = true;
  }
  std::atomic<bool> started = false, returned = false;
  std::atomic<int> runs = 0;

 private:
  std::string name_;
};

TEST(Manager, HealthAndReadinessChecksAggregate) {
  Manager m(quietLogger());
  EXPECT_EQ(m.healthz(), "");
  EXPECT_EQ(m.readyz(), "");
  std::string informerState = "";
  m.addHealthzCheck("ping", [] { return std::string(); });
  m.addReadyzCheck("informers", [&] { return informerState; });
  m.addReadyzCheck("leader", [] { return std::string("not leading"); });
  EXPECT_EQ(m.healthz(), "");
  EXPECT_EQ(m.readyz(), "leader: not leading\n");
  informerState = "patches not synced";
  EXPECT_EQ(m.readyz(), "informers: patches not synced\nleader: not leading\n");
  m.addHealthzCheck("deadlock", [] { return std::string("worker stuck"); });
  EXPECT_EQ(m.healthz(), "deadlock: worker stuck\n");
}

TEST(Manager, StartRunsRunnablesAndStopJoinsThem) {
  auto a = std::make_shared<TestRunnable>("a");
  auto b = std::make_shared<TestRunnable>("b");
  Manager m(quietLogger());
  m.add(a);
  m.add(b);
  briefly();
  EXPECT_FALSE(a->started);  // nothing runs before start()
  m.start();
  ASSERT_TRUE(eventually([&] { return a->started && b->started; }));
  EXPECT_FALSE(a->returned);
  m.stop();
  // stop() returns only after every run() has.
  EXPECT_TRUE(a->returned);
  EXPECT_TRUE(b->returned);
}

TEST(Manager, LeaderOnlyRunnablesWaitForTheLead) {
  auto always = std::make_shared<TestRunnable>("informer");
  auto leaderOnly = std::make_shared<TestRunnable>("controller");
  Manager m(quietLogger());
  m.add(always);
  m.add(leaderOnly, /*needsLeader=*/true);
  m.start();
  ASSERT_TRUE(eventually([&] { return always->started.load(); }));
  briefly();
  EXPECT_FALSE(leaderOnly->started);
  EXPECT_FALSE(m.isLeader());
  m.startLeaderRunnables();
  EXPECT_TRUE(m.isLeader());
  ASSERT_TRUE(eventually([&] { return leaderOnly->started.load(); }));

  // Added later: started at once, as its conditions already hold.
  auto late = std::make_shared<TestRunnable>("late");
  m.add(late, true);
  ASSERT_TRUE(eventually([&] { return late->started.load(); }));
  m.stop();
  EXPECT_TRUE(always->returned);
  EXPECT_TRUE(leaderOnly->returned);
  EXPECT_TRUE(late->returned);
}

// Losing the lead stops the leader-only runnables (and waits for them) but
// not the others; winning it back starts them again.
TEST(Manager, LosingTheLeadStopsLeaderRunnablesAndWinningRestartsThem) {
  auto always = std::make_shared<TestRunnable>("informer");
  auto leaderOnly = std::make_shared<TestRunnable>("controller");
  Manager m(quietLogger());
  m.add(always);
  m.add(leaderOnly, /*needsLeader=*/true);
  m.start();
  m.startLeaderRunnables();
  ASSERT_TRUE(eventually([&] { return leaderOnly->started.load(); }));
  m.stopLeaderRunnables();
  EXPECT_TRUE(leaderOnly->returned);  // joined before it returns
  EXPECT_FALSE(m.isLeader());
  EXPECT_FALSE(always->returned);
  leaderOnly->returned = false;
  m.startLeaderRunnables();
  ASSERT_TRUE(eventually([&] { return leaderOnly->runs == 2; }));
  EXPECT_FALSE(leaderOnly->returned);  // a fresh stop token, not the spent one
  m.stop();
  EXPECT_TRUE(leaderOnly->returned);
  EXPECT_TRUE(always->returned);
  m.startLeaderRunnables();  // after stop: never again
  briefly();
  EXPECT_EQ(leaderOnly->runs, 2);
}

TEST(Manager, StopWithoutTheLeadNeverStartsLeaderRunnables) {
  auto leaderOnly = std::make_shared<TestRunnable>("controller");
  {
    Manager m(quietLogger());
    m.add(leaderOnly, true);
    m.start();
    briefly();
  }  // destructor stops
  EXPECT_FALSE(leaderOnly->started);
}

}  // namespace
}  // namespace patchgate::runtime
