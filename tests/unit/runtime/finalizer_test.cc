#include "runtime/finalizer.h"

#include <gtest/gtest.h>

#include "fakes/fake_client.h"
#include "fakes/fake_clock.h"
#include "kube/errors.h"
#include "test_util.h"

namespace patchgate::runtime {
namespace {

using namespace std::chrono_literals;
using patchgate::testing::FakeClient;
using patchgate::testing::FakeClock;
namespace res = kube::resources;

constexpr char kFinalizer[] = "patchgate.dev/cleanup";

class FinalizerTest : public ::testing::Test {
 protected:
  Json seed(Json finalizers = nullptr) {
    Json obj = {{"metadata", {{"name", "p"}, {"namespace", "ns"}}}, {"spec", {{"target", "web"}}}};
    if (!finalizers.is_null()) obj["metadata"]["finalizers"] = finalizers;
    return fake_.seed(res::kPatch, obj);
  }
  Json current() { return fake_.object(res::kPatch, "ns", "p"); }
  absl::StatusOr<Action> run(const Json& obj, absl::StatusOr<Action> result = Action::await()) {
    return withFinalizer(fake_, res::kPatch, obj, kFinalizer, [&](FinalizerEvent ev) {
      events_.push_back(ev);
      return result;
    });
  }
  FakeClock clock_;
  FakeClient fake_{clock_};
  std::vector<FinalizerEvent> events_;
};

TEST_F(FinalizerTest, AddsTheFinalizerFirstThenApplies) {
  Json obj = seed();
  auto r = run(obj);
  ASSERT_OK(r);
  EXPECT_EQ(*r, Action::await());
  EXPECT_TRUE(events_.empty());  // stops after adding: the watch brings a fresh snapshot
  auto patches = fake_.calls("patch");
  ASSERT_EQ(patches.size(), 1u);
  EXPECT_EQ(patches[0].patchType, "json");
  EXPECT_EQ(patches[0].body[0],
            (Json{{"op", "test"}, {"path", "/metadata/resourceVersion"}, {"value", "1"}}));
  EXPECT_TRUE(hasFinalizer(current(), kFinalizer));

  auto again = run(current(), Action::requeue(5min));
  ASSERT_OK(again);
  EXPECT_EQ(*again, Action::requeue(5min));
  EXPECT_EQ(events_, std::vector<FinalizerEvent>{FinalizerEvent::kApply});
  EXPECT_EQ(fake_.calls("patch").size(), 1u);  // nothing more to write
}

TEST_F(FinalizerTest, AppendsToExistingFinalizers) {
  Json obj = seed({"someone.else/keep"});
  ASSERT_OK(addFinalizer(fake_, res::kPatch, obj, kFinalizer));
  EXPECT_EQ(current()["metadata"]["finalizers"], (Json{"someone.else/keep", kFinalizer}));
  // Idempotent: no call when already there.
  fake_.clearCalls();
  ASSERT_OK(addFinalizer(fake_, res::kPatch, current(), kFinalizer));
  EXPECT_TRUE(fake_.calls().empty());
}

TEST_F(FinalizerTest, OnDeletionRunsCleanupThenRemovesTheFinalizer) {
  seed({kFinalizer});
  ASSERT_OK(fake_.remove(res::kPatch, "ns", "p"));
  Json deleting = current();
  ASSERT_TRUE(isDeleting(deleting));
  auto r = run(deleting);
  ASSERT_OK(r);
  EXPECT_EQ(events_, std::vector<FinalizerEvent>{FinalizerEvent::kCleanup});
  EXPECT_TRUE(current().is_null());  // last finalizer gone: the object is deleted
}

TEST_F(FinalizerTest, OtherFinalizersKeepTheObject) {
  seed({"someone.else/keep", kFinalizer});
  ASSERT_OK(fake_.remove(res::kPatch, "ns", "p"));
  ASSERT_OK(run(current()));
  ASSERT_FALSE(current().is_null());
  EXPECT_EQ(current()["metadata"]["finalizers"], Json::array({"someone.else/keep"}));
}

TEST_F(FinalizerTest, CleanupInProgressOrFailedKeepsTheFinalizer) {
  seed({kFinalizer});
  ASSERT_OK(fake_.remove(res::kPatch, "ns", "p"));
  auto waiting = run(current(), Action::requeue(10s));
  ASSERT_OK(waiting);
  EXPECT_EQ(*waiting, Action::requeue(10s));
  auto failed = run(current(), absl::UnavailableError("downstream busy"));
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(hasFinalizer(current(), kFinalizer));
  EXPECT_TRUE(fake_.calls("patch").empty());
}

TEST_F(FinalizerTest, DeletingWithoutOurFinalizerDoesNothing) {
  seed({"someone.else/keep"});
  ASSERT_OK(fake_.remove(res::kPatch, "ns", "p"));
  auto r = run(current());
  ASSERT_OK(r);
  EXPECT_TRUE(events_.empty());
  EXPECT_TRUE(fake_.calls("patch").empty());
}

TEST_F(FinalizerTest, AStaleSnapshotGetsAConflict) {
  Json stale = seed();
  fake_.seed(res::kPatch, stale);  // someone wrote meanwhile: resourceVersion moved
  auto s = addFinalizer(fake_, res::kPatch, stale, kFinalizer);
  EXPECT_TRUE(kube::isConflict(s)) << s;
  EXPECT_FALSE(hasFinalizer(current(), kFinalizer));
  EXPECT_TRUE(kube::isConflict(run(stale).status()));
}

TEST_F(FinalizerTest, RemovingFromAStaleListGetsAConflict) {
  Json stale = seed({"someone.else/first", kFinalizer});
  ASSERT_OK(fake_.remove(res::kPatch, "ns", "p"));
  // The other finalizer goes first; our index in the snapshot is now wrong.
  ASSERT_OK(fake_.patch(res::kPatch, "ns", "p", kube::PatchType::kMerge,
                        R"({"metadata":{"finalizers":["patchgate.dev/cleanup"]}})"));
  auto s = removeFinalizer(fake_, res::kPatch, stale, kFinalizer);
  EXPECT_TRUE(kube::isConflict(s)) << s;
  EXPECT_TRUE(hasFinalizer(current(), kFinalizer));
  // With a fresh snapshot it works.
  ASSERT_OK(removeFinalizer(fake_, res::kPatch, current(), kFinalizer));
  EXPECT_TRUE(current().is_null());
}

TEST_F(FinalizerTest, RemovingFromAVanishedObjectIsFine) {
  Json obj = seed({kFinalizer});
  fake_.erase(res::kPatch, "ns", "p");
  EXPECT_OK(removeFinalizer(fake_, res::kPatch, obj, kFinalizer));
}

}  // namespace
}  // namespace patchgate::runtime
