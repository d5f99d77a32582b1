// The Patch spec rules patchgate checks itself (the same as the CRD's).
#include <gtest/gtest.h>

#include "api/v1alpha1/patch.h"

namespace patchgate::api::v1alpha1 {
namespace {

Json validPatch() {
  return Json::parse(R"({
    "apiVersion": "patchgate.dev/v1alpha1", "kind": "Patch",
    "metadata": {"name": "p", "namespace": "shop"},
    "spec": {
      "target": {"kind": "Deployment", "name": "checkout"},
      "change": {"patch": "spec: {template: {spec: {containers: [{name: app, image: x}]}}}"},
      "ticket": "INC-1", "rootCause": "pool exhausted",
      "tests": [{"name": "smoke", "image": "t:1", "command": ["true"]}]}})");
}

std::string errorOf(const Json& p) {
  auto s = parseSpec(p);
  return s.ok() ? "" : std::string(s.status().message());
}

TEST(PatchSpec, ValidSpecGetsDefaults) {
  auto s = parseSpec(validPatch());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->change.type, "strategic");
  EXPECT_EQ(s->priority, "normal");
  EXPECT_EQ(s->envReplicas, 1);
  EXPECT_EQ(s->secrets, "omit");
  EXPECT_EQ(s->ttlSecondsAfterFinished, 600);
  EXPECT_TRUE(s->keepOnFailure);
  EXPECT_EQ(s->keepOnFailureSeconds, 86400);
  EXPECT_EQ(s->verificationTimeoutSeconds, 300);
  EXPECT_TRUE(s->automaticRollback);
  EXPECT_EQ(s->revisionHistoryLimit, 10);
  ASSERT_EQ(s->tests.size(), 1u);
  EXPECT_EQ(s->tests[0].timeoutSeconds, 300);
}

// Without an author there is no one an approval must differ from.
TEST(PatchSpec, APatchThatNeedsApprovalNamesItsAuthor) {
  Json p = validPatch();
  p["spec"]["promotion"] = {{"approval", {{"required", true}}}};
  auto s = parseSpec(p);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("spec.author"), std::string::npos) << s.status();
  p["spec"]["author"] = "alice";
  ASSERT_TRUE(parseSpec(p).ok());
  EXPECT_EQ(parseSpec(p)->author, "alice");
}

TEST(PatchSpec, AFailedEnvironmentIsKeptAWeekAtMost) {
  Json p = validPatch();
  p["spec"]["environment"]["keepOnFailureSeconds"] = 604801;
  auto s = parseSpec(p);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("spec.environment.keepOnFailureSeconds"), std::string::npos) << s.status();
  p["spec"]["environment"]["keepOnFailureSeconds"] = 3600;
  ASSERT_TRUE(parseSpec(p).ok());
  EXPECT_EQ(parseSpec(p)->keepOnFailureSeconds, 3600);
}

TEST(PatchSpec, RequiresTicketAndRootCause) {
  Json p = validPatch();
  p["spec"].erase("ticket");
  EXPECT_NE(errorOf(p).find("spec.ticket"), std::string::npos);
  p = validPatch();
  p["spec"]["rootCause"] = "";
  EXPECT_NE(errorOf(p).find("spec.rootCause"), std::string::npos);
}

TEST(PatchSpec, ExactlyOneKindOfChange) {
  Json p = validPatch();
  p["spec"]["change"]["image"] = "app=x:2";
  EXPECT_NE(errorOf(p).find("exactly one of patch, image or rollbackTo"), std::string::npos);
  p["spec"]["change"] = Json::object();
  EXPECT_NE(errorOf(p).find("exactly one"), std::string::npos);
  p["spec"]["change"] = {{"rollbackTo", {{"revision", 0}}}};
  EXPECT_NE(errorOf(p).find("rollbackTo.revision"), std::string::npos);
}

TEST(PatchSpec, PatchTextMustParseAndMatchItsType) {
  Json p = validPatch();
  p["spec"]["change"]["patch"] = "spec: [unclosed";
  EXPECT_NE(errorOf(p).find("spec.change.patch"), std::string::npos);
  p["spec"]["change"]["patch"] = R"({"op":"replace"})";
  p["spec"]["change"]["type"] = "json";
  EXPECT_NE(errorOf(p).find("list of operations"), std::string::npos);
  p["spec"]["change"]["type"] = "yaml";
  EXPECT_NE(errorOf(p).find("spec.change.type"), std::string::npos);
}

TEST(PatchSpec, TestsRequiredExceptForRollbacks) {
  Json p = validPatch();
  p["spec"].erase("tests");
  EXPECT_NE(errorOf(p).find("spec.tests"), std::string::npos);
  p["spec"]["change"] = {{"rollbackTo", {{"revision", 3}}}};
  auto s = parseSpec(p);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(*s->change.rollbackTo, 3);
}

TEST(PatchSpec, RejectsDuplicateAndBadTestNames) {
  Json p = validPatch();
  p["spec"]["tests"].push_back(p["spec"]["tests"][0]);
  EXPECT_NE(errorOf(p).find("Duplicate"), std::string::npos);
  p = validPatch();
  p["spec"]["tests"][0]["name"] = "Not_A_Label";
  EXPECT_NE(errorOf(p).find("spec.tests[0].name"), std::string::npos);
}

TEST(PatchSpec, UnsupportedTargetKind) {
  Json p = validPatch();
  p["spec"]["target"]["kind"] = "CronJob";
  EXPECT_NE(errorOf(p).find("spec.target.kind"), std::string::npos);
}

TEST(PatchSpec, WrongTypesAreReportedNotThrown) {
  Json p = validPatch();
  p["spec"]["environment"] = {{"replicas", "three"}};
  EXPECT_NE(errorOf(p).find("spec"), std::string::npos);
}

TEST(YamlToJson, ScalarsKeepTheirTypes) {
  auto j = yamlToJson("a: 1\nb: '1'\nc: true\nd: 1.5\ne: null\nf: [x, 2]\n");
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ((*j)["a"], 1);
  EXPECT_EQ((*j)["b"], "1");
  EXPECT_EQ((*j)["c"], true);
  EXPECT_DOUBLE_EQ((*j)["d"].get<double>(), 1.5);
  EXPECT_TRUE((*j)["e"].is_null());
  EXPECT_EQ((*j)["f"][1], 2);
}

TEST(PatchSpec, ASecretChangeComesFromAnotherSecretNeverFromText) {
  Json p = validPatch();
  p["spec"]["change"]["config"] = Json::parse(R"([{"kind": "Secret", "name": "db", "patch": "{\"data\":{}}"}])");
  EXPECT_NE(errorOf(p).find("spec.change.config[0].patch: Forbidden"), std::string::npos) << errorOf(p);
  p["spec"]["change"]["config"] = Json::parse(R"([{"kind": "Secret", "name": "db"}])");
  EXPECT_NE(errorOf(p).find("spec.change.config[0].fromSecret: Required"), std::string::npos) << errorOf(p);
  p["spec"]["change"]["config"] = Json::parse(R"([{"kind": "Secret", "name": "db", "fromSecret": "db"}])");
  EXPECT_NE(errorOf(p).find("the Secret itself"), std::string::npos) << errorOf(p);
  p["spec"]["change"]["config"] =
      Json::parse(R"([{"kind": "ConfigMap", "name": "c", "patch": "{}", "fromSecret": "x"}])");
  EXPECT_NE(errorOf(p).find("fromSecret: Forbidden"), std::string::npos) << errorOf(p);
  p["spec"]["change"]["config"] = Json::parse(R"([{"kind": "Secret", "name": "db", "fromSecret": "db-new"}])");
  auto s = parseSpec(p);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->change.config[0].fromSecret, "db-new");
  EXPECT_EQ(s->change.config[0].type, "merge");
}

}  // namespace
}  // namespace patchgate::api::v1alpha1
