#include "runtime/status.h"

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

TEST(Conditions, SetAddsThenKeepsTransitionTimeWhileStatusHolds) {
  FakeClock clock;
  auto t0 = clock.now();
  Json conditions;  // null: created
  EXPECT_TRUE(setCondition(conditions, {"Ready", "False", "Progressing", "rolling out", 3}, t0));
  ASSERT_EQ(conditions.size(), 1u);
  EXPECT_EQ(conditions[0], (Json{{"type", "Ready"},
                                 {"status", "False"},
                                 {"reason", "Progressing"},
                                 {"message", "rolling out"},
                                 {"observedGeneration", 3},
                                 {"lastTransitionTime", formatTime(t0)}}));

  // Same everything: no change.
  EXPECT_FALSE(setCondition(conditions, {"Ready", "False", "Progressing", "rolling out", 3},
                            t0 + 10s));
  // Same status, new reason/message/generation: changed, transition time kept.
  EXPECT_TRUE(setCondition(conditions, {"Ready", "False", "Waiting", "2 of 3", 4}, t0 + 20s));
  EXPECT_EQ(conditions[0]["reason"], "Waiting");
  EXPECT_EQ(conditions[0]["observedGeneration"], 4);
  EXPECT_EQ(conditions[0]["lastTransitionTime"], formatTime(t0));

  // Status flips: transition time moves.
  EXPECT_TRUE(setCondition(conditions, {"Ready", "True", "Promoted", "done", 4}, t0 + 30s));
  EXPECT_EQ(conditions[0]["lastTransitionTime"], formatTime(t0 + 30s));
  EXPECT_EQ(conditions.size(), 1u);

  EXPECT_TRUE(setCondition(conditions, {"Degraded", "False", "AsExpected", ""}, t0 + 40s));
  EXPECT_EQ(conditions.size(), 2u);
  EXPECT_FALSE(conditions[1].contains("observedGeneration"));  // 0: omitted
}

TEST(Conditions, FindIsTrueRemove) {
  Json conditions = Json::array();
  auto now = std::chrono::system_clock::now();
  setCondition(conditions, {"Ready", "True", "Ok", ""}, now);
  setCondition(conditions, {"Stalled", "False", "Ok", ""}, now);
  EXPECT_TRUE(isConditionTrue(conditions, "Ready"));
  EXPECT_FALSE(isConditionTrue(conditions, "Stalled"));
  EXPECT_FALSE(isConditionTrue(conditions, "Missing"));
  EXPECT_EQ(findCondition(conditions, "Stalled")["status"], "False");
  EXPECT_TRUE(findCondition(conditions, "Missing").is_null());
  EXPECT_TRUE(findCondition(Json(), "Ready").is_null());
  EXPECT_TRUE(removeCondition(conditions, "Ready"));
  EXPECT_FALSE(removeCondition(conditions, "Ready"));
  EXPECT_EQ(conditions.size(), 1u);
}

Json patchObj() {
  return {{"apiVersion", "patchgate.dev/v1alpha1"},
          {"kind", "Patch"},
          {"metadata", {{"name", "p"}, {"namespace", "ns"}, {"generation", 2}}},
          {"spec", {{"target", "web"}}},
          {"status", {{"phase", "Pending"}}}};
}

class UpdateStatusTest : public ::testing::Test {
 protected:
  void SetUp() override { fake_.seed(res::kPatch, patchObj()); }
  absl::StatusOr<Json> setPhase(const std::string& phase) {
    return updateStatus(fake_, res::kPatch, "ns", "p", [&](Json& obj) {
      obj["status"]["phase"] = phase;
      obj["status"]["observedGeneration"] = jsonInt(obj, "/metadata/generation");
      return absl::OkStatus();
    });
  }
  FakeClock clock_;
  FakeClient fake_{clock_};
};

TEST_F(UpdateStatusTest, WritesTheStatusSubresourceWhenChanged) {
  auto r = setPhase("Ready");
  ASSERT_OK(r);
  EXPECT_EQ((*r)["status"]["phase"], "Ready");
  auto writes = fake_.calls("updateStatus", "patches");
  ASSERT_EQ(writes.size(), 1u);
  EXPECT_EQ(writes[0].ns, "ns");
  EXPECT_EQ(writes[0].body["status"],
            (Json{{"phase", "Ready"}, {"observedGeneration", 2}}));
  EXPECT_EQ(writes[0].body["metadata"]["resourceVersion"], "1");  // optimistic lock
  EXPECT_EQ(fake_.object(res::kPatch, "ns", "p")["status"]["phase"], "Ready");
}

TEST_F(UpdateStatusTest, WritesNothingWhenUnchanged) {
  ASSERT_OK(setPhase("Ready"));
  fake_.clearCalls();
  auto r = setPhase("Ready");
  ASSERT_OK(r);
  EXPECT_EQ((*r)["status"]["phase"], "Ready");
  auto calls = fake_.calls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].verb, "get");
}

TEST_F(UpdateStatusTest, RetriesOnConflict) {
  for (int i = 0; i < 3; ++i)
    fake_.failNext("updateStatus", kube::apiError(409, "Conflict", "the object has been modified"));
  auto r = setPhase("Ready");
  ASSERT_OK(r);
  EXPECT_EQ(fake_.calls("updateStatus").size(), 4u);
  EXPECT_EQ(fake_.calls("get").size(), 4u);  // re-read before every attempt
  EXPECT_EQ(fake_.object(res::kPatch, "ns", "p")["status"]["phase"], "Ready");
}

TEST_F(UpdateStatusTest, RetriesAfterARealConcurrentWrite) {
  int attempts = 0;
  auto r = updateStatus(fake_, res::kPatch, "ns", "p", [&](Json& obj) {
    if (++attempts == 1) {
      // Someone else writes between our read and our write.
      Json other = obj;
      other["spec"]["target"] = "api";
      fake_.seed(res::kPatch, other);
    }
    obj["status"]["phase"] = "Ready";
    return absl::OkStatus();
  });
  ASSERT_OK(r);
  EXPECT_EQ(attempts, 2);
  Json stored = fake_.object(res::kPatch, "ns", "p");
  EXPECT_EQ(stored["spec"]["target"], "api");  // their write survived
  EXPECT_EQ(stored["status"]["phase"], "Ready");
}

TEST_F(UpdateStatusTest, GivesUpAfterFiveConflicts) {
  for (int i = 0; i < 6; ++i)
    fake_.failNext("updateStatus", kube::apiError(409, "Conflict", "the object has been modified"));
  auto r = setPhase("Ready");
  EXPECT_TRUE(kube::isConflict(r.status())) << r.status();
  EXPECT_EQ(fake_.calls("updateStatus").size(), 5u);
  EXPECT_EQ(fake_.object(res::kPatch, "ns", "p")["status"]["phase"], "Pending");
}

TEST_F(UpdateStatusTest, OtherErrorsAreNotRetried) {
  fake_.failNext("updateStatus", kube::apiError(422, "Invalid", "status.phase: Unsupported value"));
  EXPECT_TRUE(kube::isInvalid(setPhase("Bogus").status()));
  EXPECT_EQ(fake_.calls("updateStatus").size(), 1u);

  auto missing = updateStatus(fake_, res::kPatch, "ns", "nope", [](Json&) { return absl::OkStatus(); });
  EXPECT_TRUE(kube::isNotFound(missing.status()));
}

TEST_F(UpdateStatusTest, AMutateErrorStopsWithoutWriting) {
  auto r = updateStatus(fake_, res::kPatch, "ns", "p",
                        [](Json&) { return absl::FailedPreconditionError("not yet"); });
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(fake_.calls("updateStatus").empty());
}

TEST(RetryOnConflict, StopsAtTheFirstNonConflict) {
  int calls = 0;
  auto s = retryOnConflict([&] {
    ++calls;
    return calls < 3 ? kube::apiError(409, "Conflict", "x") : absl::OkStatus();
  });
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(calls, 3);
  calls = 0;
  // AlreadyExists is a 409 too, but retrying would not help.
  s = retryOnConflict([&] {
    ++calls;
    return kube::apiError(409, "AlreadyExists", "x");
  });
  EXPECT_TRUE(kube::isAlreadyExists(s));
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace patchgate::runtime
