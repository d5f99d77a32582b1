#include "runtime/events.h"

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
using patchgate::testing::quietLogger;
namespace res = kube::resources;

class EventsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    regarding_ = fake_.seed(res::kPatch, {{"apiVersion", "patchgate.dev/v1alpha1"},
                                          {"kind", "Patch"},
                                          {"metadata", {{"name", "p1"}, {"namespace", "team-a"}}}});
  }
  FakeClock clock_;
  FakeClient fake_{clock_};
  EventRecorderImpl recorder_{fake_, clock_, "patchgate-controller", "patchgate-0", quietLogger()};
  Json regarding_;
};

TEST_F(EventsTest, TheFirstEventCreatesAnEventsV1Event) {
  recorder_.event(regarding_, EventType::kWarning, "InvalidSpec", "Validate",
                  "spec.target is required");
  auto creates = fake_.calls("create", "events");
  ASSERT_EQ(creates.size(), 1u);
  EXPECT_EQ(creates[0].ns, "team-a");
  const Json& ev = creates[0].body;
  EXPECT_EQ(ev["apiVersion"], "events.k8s.io/v1");
  EXPECT_EQ(ev["kind"], "Event");
  EXPECT_EQ(ev["type"], "Warning");
  EXPECT_EQ(ev["reason"], "InvalidSpec");
  EXPECT_EQ(ev["action"], "Validate");
  EXPECT_EQ(ev["note"], "spec.target is required");
  EXPECT_EQ(ev["reportingController"], "patchgate-controller");
  EXPECT_EQ(ev["reportingInstance"], "patchgate-0");
  EXPECT_EQ(ev["eventTime"], formatMicroTime(clock_.now()));
  EXPECT_EQ(ev["regarding"], (Json{{"apiVersion", "patchgate.dev/v1alpha1"},
                                   {"kind", "Patch"},
                                   {"name", "p1"},
                                   {"namespace", "team-a"},
                                   {"uid", jsonString(regarding_, "/metadata/uid")},
                                   {"resourceVersion", "1"}}));
  EXPECT_EQ(jsonString(ev, "/metadata/name").rfind("p1.", 0), 0u);
  EXPECT_EQ(fake_.objects(res::kEvent, "team-a").size(), 1u);
}

TEST_F(EventsTest, ARepeatPatchesTheSeriesInsteadOfCreating) {
  recorder_.event(regarding_, EventType::kNormal, "Promoted", "Promote", "step 2 of 3");
  clock_.advance(30s);
  recorder_.event(regarding_, EventType::kNormal, "Promoted", "Promote", "step 2 of 3");
  EXPECT_EQ(fake_.calls("create", "events").size(), 1u);
  auto patches = fake_.calls("patch", "events");
  ASSERT_EQ(patches.size(), 1u);
  EXPECT_EQ(patches[0].patchType, "merge");
  EXPECT_EQ(patches[0].body["series"]["count"], 2);
  EXPECT_EQ(patches[0].body["series"]["lastObservedTime"], formatMicroTime(clock_.now()));
  std::string name = jsonString(fake_.calls("create", "events")[0].body, "/metadata/name");
  EXPECT_EQ(patches[0].name, name);
  EXPECT_EQ(fake_.object(res::kEvent, "team-a", name)["series"]["count"], 2);

  recorder_.event(regarding_, EventType::kNormal, "Promoted", "Promote", "step 2 of 3");
  EXPECT_EQ(fake_.calls("patch", "events").back().body["series"]["count"], 3);
}

TEST_F(EventsTest, DifferentReasonOrNoteIsANewEvent) {
  recorder_.event(regarding_, EventType::kNormal, "Promoted", "Promote", "step 1");
  recorder_.event(regarding_, EventType::kNormal, "Promoted", "Promote", "step 2");
  recorder_.event(regarding_, EventType::kWarning, "Promoted", "Promote", "step 2");
  recorder_.event(regarding_, EventType::kNormal, "Paused", "Pause", "step 2");
  EXPECT_EQ(fake_.calls("create", "events").size(), 4u);
  EXPECT_TRUE(fake_.calls("patch").empty());
}

TEST_F(EventsTest, AfterTenQuietMinutesASeriesStartsOver) {
  recorder_.event(regarding_, EventType::kNormal, "Promoted", "Promote", "x");
  clock_.advance(11min);
  recorder_.event(regarding_, EventType::kNormal, "Promoted", "Promote", "x");
  EXPECT_EQ(fake_.calls("create", "events").size(), 2u);
  EXPECT_TRUE(fake_.calls("patch").empty());
}

TEST_F(EventsTest, AGarbageCollectedEventIsCreatedAgain) {
  recorder_.event(regarding_, EventType::kNormal, "Promoted", "Promote", "x");
  std::string name = jsonString(fake_.calls("create", "events")[0].body, "/metadata/name");
  fake_.erase(res::kEvent, "team-a", name);
  recorder_.event(regarding_, EventType::kNormal, "Promoted", "Promote", "x");
  EXPECT_EQ(fake_.calls("patch", "events").size(), 1u);
  EXPECT_EQ(fake_.calls("create", "events").size(), 2u);
  EXPECT_EQ(fake_.objects(res::kEvent).size(), 1u);
}

TEST_F(EventsTest, FailuresAreSwallowedAndNotRemembered) {
  fake_.failNext("create", kube::apiError(403, "Forbidden", "no RBAC"));
  recorder_.event(regarding_, EventType::kNormal, "Promoted", "Promote", "x");  // no throw, no crash
  recorder_.event(regarding_, EventType::kNormal, "Promoted", "Promote", "x");
  EXPECT_EQ(fake_.calls("create", "events").size(), 2u);
  EXPECT_TRUE(fake_.calls("patch").empty());
  EXPECT_EQ(fake_.objects(res::kEvent).size(), 1u);
}

TEST_F(EventsTest, ClusterScopedObjectsGetEventsInDefault) {
  Json ns = fake_.seed(res::kNamespace, {{"apiVersion", "v1"}, {"kind", "Namespace"},
                                         {"metadata", {{"name", "team-a"}}}});
  recorder_.event(ns, EventType::kNormal, "Labelled", "Label", "x");
  EXPECT_EQ(fake_.calls("create", "events")[0].ns, "default");
}

TEST_F(EventsTest, LongNotesAreTruncated) {
  recorder_.event(regarding_, EventType::kNormal, "R", "A", std::string(5000, 'x'));
  EXPECT_EQ(fake_.calls("create", "events")[0].body["note"].get<std::string>().size(), 1000u);
}

}  // namespace
}  // namespace patchgate::runtime
