// patchctl's output, from plain JSON as the API server returns it.
#include "cli/format.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_split.h"

namespace patchgate::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TimePoint at(const char* ts) { return *parseTime(ts); }
const TimePoint kNow = at("2026-05-01T10:10:00Z");

Json succeeded() {
  return Json::parse(R"({
    "apiVersion": "patchgate.dev/v1alpha1", "kind": "Patch",
    "metadata": {"name": "fix-pool", "namespace": "shop", "uid": "u-1", "generation": 1,
                 "creationTimestamp": "2026-05-01T10:00:00Z",
                 "managedFields": [{"manager": "kubectl"}]},
    "spec": {
      "target": {"kind": "Deployment", "name": "checkout"},
      "change": {"patch": "spec: {template: {spec: {containers: [{name: app, env: [{name: VERSION, value: v2}]}]}}}\n",
                 "config": [{"kind": "ConfigMap", "name": "checkout-config", "patch": "{\"data\":{\"POOL\":\"64\"}}"}]},
      "ticket": "INC-4211", "rootCause": "retry storm exhausts the pool", "description": "ship v2",
      "author": "alice",
      "promotion": {"approval": {"required": true, "approvers": 1}},
      "tests": [{"name": "smoke", "image": "t:1"}]},
    "status": {
      "phase": "Succeeded", "message": "production is healthy with the patch",
      "startedAt": "2026-05-01T10:00:01Z", "finishedAt": "2026-05-01T10:02:13Z",
      "diff": "/template/spec/containers/0/env/0/value: \"v1\" -> \"v2\"\nConfigMap/checkout-config:\n/POOL: \"16\" -> \"64\"\n",
      "conditions": [
        {"type": "Ready", "status": "True", "reason": "Succeeded", "message": "healthy", "lastTransitionTime": "2026-05-01T10:02:13Z"},
        {"type": "Verified", "status": "True", "reason": "Verified", "message": "rollout complete: 2 of 2 replicas available", "lastTransitionTime": "2026-05-01T10:02:13Z"}],
      "environment": {"namespace": "pg-fix-pool-abc123", "services": ["checkout"],
                      "createdAt": "2026-05-01T10:00:02Z", "readyAt": "2026-05-01T10:00:30Z",
                      "deletedAt": "2026-05-01T10:08:00Z"},
      "tests": [{"name": "smoke", "result": "Passed", "attempts": 1, "durationSeconds": 72,
                 "startedAt": "2026-05-01T10:00:31Z", "finishedAt": "2026-05-01T10:01:43Z",
                 "message": "version ok: v2"}],
      "approvals": [{"user": "bob", "at": "2026-05-01T10:01:50Z", "comment": "diff | reviewed",
                     "decision": "approve", "valid": true, "name": "a1"}],
      "revision": {"name": "checkout-pg-1", "number": 1, "rollbackTarget": "checkout-pg-1"},
      "promotion": {"promotedAt": "2026-05-01T10:02:00Z", "verifiedAt": "2026-05-01T10:02:13Z", "generation": 2},
      "history": [
        {"at": "2026-05-01T10:00:01Z", "phase": "Pending", "reason": "Created", "actor": "patchgate", "message": "patch received"},
        {"at": "2026-05-01T10:00:31Z", "phase": "Testing", "reason": "EnvironmentReady", "actor": "patchgate", "message": "environment ready"},
        {"at": "2026-05-01T10:02:13Z", "phase": "Succeeded", "reason": "Succeeded", "actor": "patchgate", "message": "production is healthy with the patch"}]}})");
}

Json failed() {
  Json p = succeeded();
  p["metadata"]["name"] = "bad-fix";
  p["status"] = Json::parse(R"({
    "phase": "Failed", "message": "test smoke failed after 1 attempt(s): saw: v2",
    "startedAt": "2026-05-01T10:00:01Z", "finishedAt": "2026-05-01T10:01:00Z",
    "diff": "/x: 1 -> 2\n",
    "conditions": [{"type": "TestsPassed", "status": "False", "reason": "TestFailed", "message": "smoke failed", "lastTransitionTime": "2026-05-01T10:01:00Z"}],
    "environment": {"namespace": "pg-bad-fix-1", "createdAt": "2026-05-01T10:00:02Z", "kept": true},
    "tests": [{"name": "smoke", "result": "Failed", "attempts": 1, "durationSeconds": 5, "message": "saw: v2"}],
    "history": [{"at": "2026-05-01T10:01:00Z", "phase": "Failed", "reason": "TestFailed", "actor": "patchgate", "message": "test smoke failed"}]})");
  return p;
}

Json rolledBack() {
  Json p = succeeded();
  p["metadata"]["name"] = "crash";
  p["status"]["phase"] = "RolledBack";
  p["status"]["promotion"].erase("verifiedAt");
  p["status"]["conditions"][1] = {{"type", "Verified"}, {"status", "False"}, {"reason", "VerificationFailed"},
                                  {"message", "rollout exceeded its progress deadline"}};
  p["status"]["rollback"] = {{"at", "2026-05-01T10:03:00Z"},
                             {"reason", "production did not become healthy within 25s"},
                             {"revision", "checkout-pg-1"}};
  return p;
}

std::vector<std::string> lines(const std::string& s) { return absl::StrSplit(s, '\n', absl::SkipEmpty()); }

TEST(HumanDuration, AsKubectl) {
  EXPECT_EQ(humanDuration(std::chrono::seconds(45)), "45s");
  EXPECT_EQ(humanDuration(std::chrono::seconds(119)), "119s");
  EXPECT_EQ(humanDuration(std::chrono::seconds(150)), "2m30s");
  EXPECT_EQ(humanDuration(std::chrono::minutes(42)), "42m");
  EXPECT_EQ(humanDuration(std::chrono::minutes(200)), "3h20m");
  EXPECT_EQ(humanDuration(std::chrono::hours(30)), "30h");
  EXPECT_EQ(humanDuration(std::chrono::hours(24 * 3)), "3d");
  EXPECT_EQ(humanDuration(std::chrono::hours(24 * 400)), "400d");
  EXPECT_EQ(humanDuration(std::chrono::hours(24 * 800)), "2y");
  EXPECT_EQ(age("garbage", kNow), "<unknown>");
  EXPECT_EQ(age("2026-05-01T10:05:00Z", kNow), "5m");
  EXPECT_EQ(shortSeconds(72), "1m12s");
  EXPECT_EQ(elapsed("2026-05-01T10:00:00Z", "2026-05-01T10:02:13Z"), "2m13s");
  EXPECT_EQ(elapsed("", "2026-05-01T10:02:13Z"), "");
}

TEST(RenderTable, PadsColumnsLikeKubectl) {
  EXPECT_EQ(renderTable({{"NAME", "PHASE"}, {"a-long-name", "Succeeded"}, {"b", ""}}),
            "NAME          PHASE\n"
            "a-long-name   Succeeded\n"
            "b\n");
}

TEST(PatchTable, ColumnsAndRows) {
  Json list = {{"items", Json::array({succeeded(), failed()})}};
  auto out = lines(patchTable(list, false, false, kNow));
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0], "NAME       TARGET                PHASE       TICKET     AGE");
  EXPECT_EQ(out[1], "fix-pool   Deployment/checkout   Succeeded   INC-4211   10m");
  EXPECT_EQ(out[2], "bad-fix    Deployment/checkout   Failed      INC-4211   10m");
  std::string all = patchTable(list, true, true, kNow);
  EXPECT_THAT(all, HasSubstr("NAMESPACE"));
  EXPECT_THAT(all, HasSubstr("REVISION"));
  EXPECT_THAT(all, HasSubstr("shop"));
  Json pending = {{"metadata", {{"name", "new"}}}, {"spec", {{"ticket", "T"}}}};
  EXPECT_THAT(patchTable({{"items", {pending}}}, false, false, kNow), HasSubstr("new    -        Pending"));
}

TEST(ToYaml, QuotesWhatYamlWouldMisread) {
  Json v = {{"a", "true"}, {"b", "123"}, {"c", "plain"}, {"d", ""}, {"e", "x\ny\n"}, {"f", 5},
            {"g", false}, {"h", nullptr}, {"i", Json::array()}, {"j", Json::object()}, {"k", {1, 2}}};
  std::string y = toYaml(v);
  EXPECT_THAT(y, HasSubstr("a: \"true\""));
  EXPECT_THAT(y, HasSubstr("b: \"123\""));
  EXPECT_THAT(y, HasSubstr("c: plain"));
  EXPECT_THAT(y, HasSubstr("d: \"\""));
  EXPECT_THAT(y, HasSubstr("e: |"));
  EXPECT_THAT(y, HasSubstr("f: 5"));
  EXPECT_THAT(y, HasSubstr("g: false"));
  EXPECT_THAT(y, HasSubstr("i: []"));
  EXPECT_THAT(y, HasSubstr("j: {}"));
  EXPECT_THAT(y, HasSubstr("- 1"));
}

TEST(ForDisplay, DropsManagedFields) {
  Json p = forDisplay(succeeded());
  EXPECT_FALSE(p["metadata"].contains("managedFields"));
  Json list = forDisplay({{"items", {succeeded()}}});
  EXPECT_FALSE(list["items"][0]["metadata"].contains("managedFields"));
}

TEST(HistoryTable, SortedByRevisionWithOutcome) {
  auto rev = [](int n, const char* patch, const char* ticket) {
    return Json{{"metadata",
                 {{"name", "checkout-pg-" + std::to_string(n)},
                  {"annotations",
                   {{"patchgate.dev/patch-name", patch}, {"patchgate.dev/ticket", ticket},
                    {"patchgate.dev/root-cause", "why"}, {"patchgate.dev/recorded-at", "2026-05-01T10:00:00Z"}}}}},
                {"revision", n}};
  };
  Json revs = {{"items", {rev(2, "gone", "INC-2"), rev(10, "fix-pool", "INC-10"), rev(1, "bad-fix", "INC-1")}}};
  Json patches = {{"items", {succeeded(), failed()}}};
  auto out = lines(historyTable(revs, patches, kNow));
  ASSERT_EQ(out.size(), 4u);
  EXPECT_THAT(out[0], HasSubstr("REVISION   NAME"));
  EXPECT_THAT(out[0], HasSubstr("RECORDED"));
  EXPECT_THAT(out[0], HasSubstr("PATCH"));
  EXPECT_THAT(out[0], HasSubstr("TICKET"));
  EXPECT_THAT(out[1], ::testing::StartsWith("1          checkout-pg-1"));
  EXPECT_THAT(out[1], HasSubstr("bad-fix"));
  EXPECT_THAT(out[1], HasSubstr("Failed"));
  EXPECT_THAT(out[2], ::testing::StartsWith("2 "));
  EXPECT_THAT(out[2], HasSubstr("<deleted>"));
  EXPECT_THAT(out[3], ::testing::StartsWith("10 "));
  EXPECT_THAT(out[3], HasSubstr("2026-05-01T10:00:00Z (10m ago)"));
}

TEST(DescribePatch, ShowsEverythingAPersonNeeds) {
  std::string d = describePatch(succeeded(), kNow);
  for (const char* s : {"Name:         fix-pool", "Namespace:    shop", "Target:       Deployment/checkout",
                        "Ticket:       INC-4211", "Root cause:   retry storm exhausts the pool",
                        "Author:       alice", "Phase:        Succeeded", "took 2m12s",
                        "Change:       strategic patch", "ConfigMap/checkout-config (merge)",
                        "Conditions:", "Verified   True     Verified", "Namespace:  pg-fix-pool-abc123",
                        "Services:   checkout", "Deleted:", "smoke   Passed   1          1m12s      version ok: v2",
                        "Approval:     required (1 approver(s), not the author)", "bob ", "diff | reviewed",
                        "  /POOL: \"16\" -> \"64\"", "Rollback point: checkout-pg-1 (revision 1)",
                        "Promoted:", "Verified:", "History:", "EnvironmentReady   environment ready"})
    EXPECT_THAT(d, HasSubstr(s));
  EXPECT_THAT(d, Not(HasSubstr("Rolled back")));
}

TEST(DescribePatch, NewPatchHasPlaceholders) {
  Json p = {{"metadata", {{"name", "new"}, {"namespace", "shop"}}},
            {"spec", {{"target", {{"kind", "Deployment"}, {"name", "c"}}}, {"tests", {{{"name", "smoke"}}}}}}};
  std::string d = describePatch(p, kNow);
  EXPECT_THAT(d, HasSubstr("Phase:        Pending"));
  EXPECT_THAT(d, HasSubstr("not run yet: smoke"));
  EXPECT_THAT(d, HasSubstr("<not computed yet>"));
  EXPECT_THAT(d, HasSubstr("Environment:\n  <none yet>"));
}

TEST(DescribePatch, RollbackSection) {
  std::string d = describePatch(rolledBack(), kNow);
  EXPECT_THAT(d, HasSubstr("Rolled back:"));
  EXPECT_THAT(d, HasSubstr("production did not become healthy within 25s"));
}

TEST(ReportMarkdown, PromotedPatchIsACompleteRecord) {
  Json rev = {{"metadata", {{"annotations", {{"patchgate.dev/recorded-at", "2026-05-01T10:01:59Z"}}}}}};
  std::string r = reportMarkdown(succeeded(), rev, kNow);
  for (const char* s : {"# INC-4211: fix-pool", "| Outcome | **Succeeded** — production is healthy",
                        "| Author | alice |", "| Target | Deployment/checkout |", "(took 2m12s)",
                        "## Root cause\n\nretry storm exhausts the pool", "## Description\n\nship v2",
                        "```yaml\nspec: {template:", "ConfigMap `checkout-config` (merge)",
                        "## Diff", "```text\n/template/spec/containers/0/env/0/value: \"v1\" -> \"v2\"",
                        "- Namespace: `pg-fix-pool-abc123`", "- Ready: 2026-05-01T10:00:30Z (after 28s)",
                        "| smoke | Passed | 1 | 1m12s | 2026-05-01T10:00:31Z | version ok: v2 |",
                        "Required: 1 approver(s)", "| bob | approve | true | 2026-05-01T10:01:50Z | diff \\| reviewed |",
                        "- Rollback point: revision 1 (`checkout-pg-1`), recorded 2026-05-01T10:01:59Z",
                        "- Promoted: 2026-05-01T10:02:00Z (Deployment/checkout generation 2)",
                        "Production became healthy at 2026-05-01T10:02:13Z (after 13s): rollout complete",
                        "No rollback was needed", "patchctl rollback Deployment/checkout --to-revision 1 -n shop",
                        "## Timeline", "| 2026-05-01T10:00:01Z | Pending | Created | patchgate | patch received |",
                        "generated by patchctl at 2026-05-01T10:10:00Z"})
    EXPECT_THAT(r, HasSubstr(s));
}

TEST(ReportMarkdown, FailedPatchShowsTheTestAndNoPromotion) {
  std::string r = reportMarkdown(failed(), Json(), kNow);
  EXPECT_THAT(r, HasSubstr("| Outcome | **Failed** — test smoke failed after 1 attempt(s): saw: v2 |"));
  EXPECT_THAT(r, HasSubstr("| smoke | Failed | 1 | 5s | - | saw: v2 |"));
  EXPECT_THAT(r, HasSubstr("- Kept for debugging (keepOnFailure)"));
  EXPECT_THAT(r, HasSubstr("_Not promoted: production was not changed by this patch._"));
  EXPECT_THAT(r, HasSubstr("Not applicable: production was not changed."));
  EXPECT_THAT(r, HasSubstr("_None given._"));
}

TEST(ReportMarkdown, RolledBackPatchSaysWhy) {
  std::string r = reportMarkdown(rolledBack(), Json(), kNow);
  EXPECT_THAT(r, HasSubstr("**RolledBack**"));
  EXPECT_THAT(r, HasSubstr("Not verified: rollout exceeded its progress deadline"));
  EXPECT_THAT(r, HasSubstr("Production was rolled back at 2026-05-01T10:03:00Z to `checkout-pg-1`."));
  EXPECT_THAT(r, HasSubstr("Reason: production did not become healthy within 25s"));
}

TEST(ReportMarkdown, RollbackPatchNamesTheRevision) {
  Json p = {{"metadata", {{"name", "rollback-checkout-x"}, {"namespace", "shop"}}},
            {"spec", {{"target", {{"kind", "Deployment"}, {"name", "checkout"}}},
                      {"change", {{"rollbackTo", {{"revision", 3}}}}}, {"ticket", "INC-9"}, {"rootCause", "r"}}},
            {"status", {{"phase", "Pending"}, {"rollbackSource", {{"name", "checkout-pg-3"}, {"revision", 3}}}}}};
  std::string r = reportMarkdown(p, Json(), kNow);
  EXPECT_THAT(r, HasSubstr("| Change | rollback to revision 3 |"));
  EXPECT_THAT(r, HasSubstr("Roll Deployment/checkout back to revision 3 (`checkout-pg-3`)"));
  EXPECT_THAT(r, HasSubstr("_No tests declared._"));
}

TEST(ReportMarkdown, FencesSurviveBackticks) {
  Json p = failed();
  p["status"]["diff"] = "a ``` b\n";
  EXPECT_THAT(reportMarkdown(p, Json(), kNow), HasSubstr("````text\na ``` b\n````"));
  EXPECT_EQ(markdownCell("a|b\nc"), "a\\|b<br>c");
  EXPECT_EQ(markdownCell(""), "-");
}

TEST(ProgressPrinter, PrintsNewHistoryThenMessageChanges) {
  ProgressPrinter printer;
  Json p = succeeded();
  Json first = p;
  first["status"]["history"] = Json::array({p["status"]["history"][0]});
  first["status"]["phase"] = "Pending";
  first["status"]["message"] = "patch received";
  auto l = printer.update(first);
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0], "10:00:01  Pending           patch received");
  EXPECT_TRUE(printer.update(first).empty()) << "nothing new, nothing printed";

  Json testing = p;
  testing["status"]["history"].erase(2);
  testing["status"]["phase"] = "Testing";
  testing["status"]["message"] = "running tests: 0 of 1 passed";
  l = printer.update(testing);
  ASSERT_EQ(l.size(), 2u);
  EXPECT_EQ(l[0], "10:00:31  Testing           environment ready");
  EXPECT_EQ(l[1], "          Testing           running tests: 0 of 1 passed");

  l = printer.update(p);
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0], "10:02:13  Succeeded         production is healthy with the patch");
}

}  // namespace
}  // namespace patchgate::cli
