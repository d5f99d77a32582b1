// Controller = Informer + WorkQueue + Reconciler, driven through FakeClient
// and FakeClock.
#include "runtime/controller.h"

#include <gtest/gtest.h>

#include <thread>

#include "fakes/fake_client.h"
#include "fakes/fake_clock.h"
#include "test_util.h"

namespace patchgate::runtime {
namespace {

using namespace std::chrono_literals;
using patchgate::testing::briefly;
using patchgate::testing::eventually;
using patchgate::testing::FakeClient;
using patchgate::testing::FakeClock;
using patchgate::testing::FixedRandom;
using patchgate::testing::quietLogger;
namespace res = kube::resources;

Json patchObj(const std::string& name, int replicas = 1) {
  return {{"metadata", {{"name", name}, {"namespace", "ns"}}},
          {"spec", {{"replicas", replicas}}}};
}

// A Reconciler whose answer the test scripts; it records each call and how
// many reconciles of the same key overlap.
class TestReconciler final : public Reconciler {
 public:
  using Fn = std::function<absl::StatusOr<Action>(const Json& obj, int call)>;

  absl::StatusOr<Action> reconcile(const Object& obj, ReconcileContext& ctx) override {
    std::string key = kube::objectKey(*obj);
    int n;
    {
      std::lock_guard l(mu_);
      n = static_cast<int>(calls_.size());
      calls_.push_back(key);
      requeues_.push_back(ctx.requeues);
      if (++inFlight_[key] > 1) ++overlaps_;
      ids_.insert(ctx.reconcileId);
    }
    if (delay_ > 0ms) std::this_thread::sleep_for(delay_);
    absl::StatusOr<Action> result = fn_ ? fn_(*obj, n) : Action::await();
    {
      std::lock_guard l(mu_);
      --inFlight_[key];
    }
    return result;
  }

  void script(Fn fn) { fn_ = std::move(fn); }
  void slow(std::chrono::milliseconds d) { delay_ = d; }
  std::vector<std::string> calls() const {
    std::lock_guard l(mu_);
    return calls_;
  }
  size_t count() const { return calls().size(); }
  std::vector<int> requeues() const {
    std::lock_guard l(mu_);
    return requeues_;
  }
  int overlaps() const {
    std::lock_guard l(mu_);
    return overlaps_;
  }
  size_t distinctIds() const {
    std::lock_guard l(mu_);
    return ids_.size();
  }

 private:
  mutable std::mutex mu_;
  Fn fn_;
  std::chrono::milliseconds delay_{0};
  std::vector<std::string> calls_;
  std::vector<int> requeues_;
  std::map<std::string, int> inFlight_;
  std::set<std::string> ids_;
  int overlaps_ = 0;
};

class ControllerTest : public ::testing::Test {
 protected:
  void start(int workers = 2) {
    informer_ = std::make_unique<Informer>(
        fake_, WatcherConfig{.resource = res::kPatch, .ns = "ns"}, clock_, random_, quietLogger());
    controller_ = std::make_unique<Controller>(
        ControllerOptions{.name = "test", .workers = workers, .cacheSyncTimeout = 5s},
        *informer_, reconciler_, clock_, quietLogger());
    informerThread_ = std::jthread([this](std::stop_token st) { informer_->run(st); });
    controllerThread_ = std::jthread([this](std::stop_token st) { controller_->run(st); });
    ASSERT_TRUE(eventually([&] { return controller_->started(); }));
    ASSERT_TRUE(fake_.waitForActiveWatches(1));
  }
  void TearDown() override {
    controllerThread_.request_stop();
    informerThread_.request_stop();
    if (controllerThread_.joinable()) controllerThread_.join();
    if (informerThread_.joinable()) informerThread_.join();
  }
  // The reconciler has run `n` times and the queue has settled.
  bool reconciled(size_t n) { return eventually([&] { return reconciler_.count() >= n; }); }

  FakeClock clock_;
  FixedRandom random_{0.0};
  FakeClient fake_{clock_};
  TestReconciler reconciler_;
  std::unique_ptr<Informer> informer_;
  std::unique_ptr<Controller> controller_;
  std::jthread informerThread_, controllerThread_;
};

TEST_F(ControllerTest, ReconcilesExistingAndCreatedObjects) {
  fake_.seed(res::kPatch, patchObj("existing"));
  start();
  ASSERT_TRUE(reconciled(1));
  ASSERT_OK(fake_.create(res::kPatch, "ns", patchObj("created")));
  ASSERT_TRUE(reconciled(2));
  briefly();
  EXPECT_EQ(reconciler_.calls(), (std::vector<std::string>{"ns/existing", "ns/created"}));
  EXPECT_EQ(reconciler_.distinctIds(), 2u);  // a reconcile id each
  EXPECT_EQ(controller_->queue().len(), 0u);
  EXPECT_EQ(controller_->queue().waitingLen(), 0u);
}

TEST_F(ControllerTest, ReconcilesTheLatestSnapshot) {
  std::vector<int64_t> seen;
  std::mutex mu;
  reconciler_.script([&](const Json& obj, int) -> absl::StatusOr<Action> {
    std::lock_guard l(mu);
    seen.push_back(jsonInt(obj, "/spec/replicas"));
    return Action::await();
  });
  start();
  ASSERT_OK(fake_.create(res::kPatch, "ns", patchObj("p", 1)));
  ASSERT_TRUE(reconciled(1));
  ASSERT_OK(fake_.patch(res::kPatch, "ns", "p", kube::PatchType::kMerge, R"({"spec":{"replicas":3}})"));
  ASSERT_TRUE(eventually([&] {
    std::lock_guard l(mu);
    return !seen.empty() && seen.back() == 3;
  }));
}

TEST_F(ControllerTest, HonoursRequeueAfter) {
  reconciler_.script([](const Json&, int call) -> absl::StatusOr<Action> {
    return call == 0 ? Action::requeue(30s) : Action::await();
  });
  start();
  ASSERT_OK(fake_.create(res::kPatch, "ns", patchObj("p")));
  ASSERT_TRUE(reconciled(1));
  ASSERT_TRUE(eventually([&] { return controller_->queue().waitingLen() == 1; }));
  clock_.advance(29s);
  briefly();
  EXPECT_EQ(reconciler_.count(), 1u);
  clock_.advance(1s);
  ASSERT_TRUE(reconciled(2));
  briefly();
  EXPECT_EQ(reconciler_.count(), 2u);
  EXPECT_EQ(controller_->queue().waitingLen(), 0u);
  EXPECT_EQ(reconciler_.requeues(), (std::vector<int>{0, 0}));  // a requeue is not a failure
}

TEST_F(ControllerTest, RetriesErrorsWithPerItemBackoff) {
  reconciler_.script([](const Json&, int call) -> absl::StatusOr<Action> {
    if (call < 2) return absl::UnavailableError("downstream not ready");
    return Action::await();
  });
  start();
  ASSERT_OK(fake_.create(res::kPatch, "ns", patchObj("p")));
  ASSERT_TRUE(reconciled(1));
  // First retry after 5 ms.
  ASSERT_TRUE(eventually([&] { return controller_->queue().waitingLen() == 1; }));
  clock_.advance(4ms);
  briefly();
  EXPECT_EQ(reconciler_.count(), 1u);
  clock_.advance(1ms);
  ASSERT_TRUE(reconciled(2));
  // Second retry after 10 ms.
  ASSERT_TRUE(eventually([&] { return controller_->queue().waitingLen() == 1; }));
  clock_.advance(9ms);
  briefly();
  EXPECT_EQ(reconciler_.count(), 2u);
  clock_.advance(1ms);
  ASSERT_TRUE(reconciled(3));
  briefly();
  EXPECT_EQ(reconciler_.count(), 3u);
  EXPECT_EQ(reconciler_.requeues(), (std::vector<int>{0, 1, 2}));
  // Success forgets the failures.
  ASSERT_TRUE(eventually([&] { return controller_->queue().numRequeues("ns/p") == 0; }));
}

// retryWithBackoff goes through the same per-item backoff as an error (5 ms,
// then 10 ms, ...), without being counted as one.
TEST_F(ControllerTest, RetryWithBackoffUsesThePerItemBackoff) {
  reconciler_.script([](const Json&, int call) -> absl::StatusOr<Action> {
    return call < 2 ? Action::retryWithBackoff() : Action::await();
  });
  start();
  ASSERT_OK(fake_.create(res::kPatch, "ns", patchObj("p")));
  ASSERT_TRUE(reconciled(1));
  ASSERT_TRUE(eventually([&] { return controller_->queue().waitingLen() == 1; }));
  clock_.advance(5ms);
  ASSERT_TRUE(reconciled(2));
  ASSERT_TRUE(eventually([&] { return controller_->queue().waitingLen() == 1; }));
  clock_.advance(9ms);
  briefly();
  EXPECT_EQ(reconciler_.count(), 2u) << "the second retry waits longer than the first";
  clock_.advance(1ms);
  ASSERT_TRUE(reconciled(3));
  EXPECT_EQ(reconciler_.requeues(), (std::vector<int>{0, 1, 2}));
}

TEST_F(ControllerTest, DoesNotRetryATerminalError) {
  reconciler_.script([](const Json&, int) -> absl::StatusOr<Action> {
    return terminalError("spec.replicas must be positive");
  });
  start();
  ASSERT_OK(fake_.create(res::kPatch, "ns", patchObj("p", -1)));
  ASSERT_TRUE(reconciled(1));
  briefly();
  EXPECT_EQ(controller_->queue().waitingLen(), 0u);
  EXPECT_EQ(controller_->queue().len(), 0u);
  clock_.advance(1h);
  briefly();
  EXPECT_EQ(reconciler_.count(), 1u);
  // A change to the object brings it back.
  ASSERT_OK(fake_.patch(res::kPatch, "ns", "p", kube::PatchType::kMerge, R"({"spec":{"replicas":2}})"));
  ASSERT_TRUE(reconciled(2));
}

TEST_F(ControllerTest, ADeletedObjectIsNotReconciled) {
  fake_.seed(res::kPatch, patchObj("p"));
  start();
  ASSERT_TRUE(reconciled(1));
  fake_.erase(res::kPatch, "ns", "p");
  ASSERT_TRUE(eventually([&] { return informer_->store().size() == 0; }));
  briefly();
  EXPECT_EQ(reconciler_.count(), 1u);
}

TEST_F(ControllerTest, TwoWorkersNeverReconcileTheSameKeyAtOnce) {
  std::mutex mu;
  std::map<std::string, int64_t> last;
  reconciler_.slow(2ms);
  reconciler_.script([&](const Json& obj, int) -> absl::StatusOr<Action> {
    std::lock_guard l(mu);
    last[kube::objectKey(obj)] = jsonInt(obj, "/spec/replicas");
    return Action::await();
  });
  for (auto n : {"a", "b", "c"}) fake_.seed(res::kPatch, patchObj(n));
  start(4);
  for (int i = 0; i < 30; ++i) {
    for (auto n : {"a", "b", "c"}) {
      ASSERT_OK(fake_.patch(res::kPatch, "ns", n, kube::PatchType::kMerge,
                            Json{{"spec", {{"replicas", i + 2}}}}.dump()));
    }
    std::this_thread::sleep_for(1ms);
  }
  // Every key ends up reconciled at its last version.
  ASSERT_TRUE(eventually([&] {
    std::lock_guard l(mu);
    return last == std::map<std::string, int64_t>{{"ns/a", 31}, {"ns/b", 31}, {"ns/c", 31}};
  }));
  briefly();
  EXPECT_EQ(reconciler_.overlaps(), 0);
}

// A controller stopped (the lead was lost) and run again (won back) looks at
// every object once more, including one that changed while it was stopped.
TEST_F(ControllerTest, RunAgainAfterAStopLooksAtEverything) {
  fake_.seed(res::kPatch, patchObj("a"));
  start();
  ASSERT_TRUE(reconciled(1));
  controllerThread_.request_stop();
  controllerThread_.join();
  ASSERT_OK(fake_.create(res::kPatch, "ns", patchObj("b")));
  ASSERT_TRUE(eventually([&] { return informer_->store().keys().size() == 2; }));
  briefly();
  EXPECT_EQ(reconciler_.count(), 1u);  // stopped: nothing runs
  controllerThread_ = std::jthread([this](std::stop_token st) { controller_->run(st); });
  ASSERT_TRUE(reconciled(3));
  auto calls = reconciler_.calls();
  std::set<std::string> again(calls.begin() + 1, calls.end());
  EXPECT_EQ(again, (std::set<std::string>{"ns/a", "ns/b"}));
}

TEST(ReconcilerDefaults, TerminalErrorsAwaitOthersUseTheRateLimiter) {
  class Noop final : public Reconciler {
    absl::StatusOr<Action> reconcile(const Object&, ReconcileContext&) override {
      return Action::await();
    }
  } r;
  ReconcileContext ctx{"id", quietLogger(), 0};
  Object obj = std::make_shared<const Json>(Json::object());
  auto t = r.errorPolicy(obj, terminalError("bad spec"), ctx);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(*t, Action::await());
  EXPECT_FALSE(r.errorPolicy(obj, absl::UnavailableError("x"), ctx).has_value());
  EXPECT_TRUE(isTerminal(terminalError("x")));
  EXPECT_FALSE(isTerminal(absl::FailedPreconditionError("x")));
}

}  // namespace
}  // namespace patchgate::runtime
