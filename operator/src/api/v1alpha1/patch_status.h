#pragma once

// The status of a Patch: the state machine's one memory. Every pass of the
// reconciler parses it from the cached object, works on these fields, and
// writes it back (only when toJson differs from what is stored). Other
// writers: the gRPC API adds testReports. The CRD schema
// (crds/patchgate.dev_patches.yaml) declares every field below; the API
// server drops undeclared fields, so a field added here must be added there
// (tests/unit/api/patch_status_test.cc fails until it is).
//
// JSON mapping: names as in the comments ("json: ..."); a std::optional is
// omitted when empty; a list or map marked "omitted when empty" is never
// written empty by the operator. Times are RFC 3339 strings as formatTime
// writes them, kept as text so that a status read back compares equal.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/json.h"

namespace patchgate::api::v1alpha1 {

// A metav1.Condition.
struct Condition {
  std::string type;
  std::string status;  // "True", "False", "Unknown"
  std::string reason;
  std::string message;
  std::optional<int64_t> observedGeneration;
  // Absent only in a status written by hand; setCondition then sets it.
  std::optional<std::string> lastTransitionTime;
  bool operator==(const Condition&) const = default;
};

// One phase change: the audit trail (json: history[]).
struct HistoryEntry {
  std::string at;
  std::string phase;
  std::string reason;
  std::string actor;
  std::string message;
  bool operator==(const HistoryEntry&) const = default;
};

// The workload as validated (json: target).
struct TargetRef {
  std::string kind;
  std::string name;
  std::string uid;
  bool operator==(const TargetRef&) const = default;
};

// The revision a rollbackTo Patch restores (json: rollbackSource).
struct RollbackSource {
  std::string name;  // the ControllerRevision
  int64_t revision = 0;
  bool operator==(const RollbackSource&) const = default;
};

// The rollback point recorded before promotion (json: revision).
struct RollbackPoint {
  std::string name;  // the ControllerRevision
  int64_t number = 0;
  std::string rollbackTarget;  // the same name, for people and printer columns
  bool operator==(const RollbackPoint&) const = default;
};

// How test pods reach the operator's API, resolved once per environment:
// address and serverName, or why it is unavailable (json: environment.testApi).
struct TestApiStatus {
  std::optional<std::string> address;
  std::optional<std::string> serverName;
  std::optional<std::string> unavailable;
  bool operator==(const TestApiStatus&) const = default;
};

// The ephemeral copy of production (json: environment).
struct EnvironmentStatus {
  std::string namespace_;  // json: namespace
  std::string createdAt;
  std::optional<TestApiStatus> testApi;
  std::optional<std::string> baseResourceVersion;  // production's, when copied
  std::optional<std::vector<std::string>> services;  // copied Services (may be none)
  std::optional<std::string> message;  // the copy's health
  std::optional<std::string> readyAt;
  std::vector<std::string> omittedSecrets;  // referenced, not copied (secrets: omit); omitted when empty
  std::optional<bool> kept;  // kept for debugging after a failure
  std::optional<std::string> deletedAt;
  bool operator==(const EnvironmentStatus&) const = default;
};

// One declared test's Job(s) (json: tests[]).
struct TestResult {
  std::string name;
  std::string result = "Pending";  // Pending | Running | Passed | Failed
  int64_t attempts = 0;
  std::optional<std::string> job;
  std::optional<std::string> startedAt;
  std::optional<std::string> finishedAt;
  std::optional<int64_t> durationSeconds;
  std::optional<std::string> message;  // the container's termination message, or why it failed
  bool operator==(const TestResult&) const = default;
};

// What a test pod reported through the gRPC API (ReportTestResults): the
// shape is fixed by the API, not free-form (json: testReports.<test>[]).
struct TestCaseReport {
  std::string name;
  bool passed = false;
  double durationSeconds = 0;
  std::string output;  // cut to 4 KiB
  bool operator==(const TestCaseReport&) const = default;
};
struct TestSuiteReport {
  std::string name;
  std::vector<TestCaseReport> cases;  // written even when empty
  bool operator==(const TestSuiteReport&) const = default;
};

// A PatchApproval as judged for this Patch (json: approvals[]).
struct ApprovalRecord {
  std::string name;  // the PatchApproval
  std::string user;
  std::string at;
  std::string comment;
  std::string decision;  // approve | reject
  std::optional<bool> valid;  // absent on a rejection
  std::optional<std::string> why;  // why it does not count
  bool operator==(const ApprovalRecord&) const = default;
};

// The write to production about to be made, recorded (and persisted) before
// it is sent, so that a later pass continues it (json: intent).
struct Intent {
  std::string action;  // Promote | Rollback
  std::string revision;  // the rollback point
  std::string at;
  std::optional<std::string> baseHash;  // Promote: production's spec before
  std::optional<std::string> expectedHash;  // Promote: and after
  std::optional<std::string> cause;  // Rollback: a bounded label, for metrics
  std::optional<std::string> reason;  // Rollback: the sentence for people
  bool operator==(const Intent&) const = default;
};

// The promotion once written, and its verification (json: promotion).
struct Promotion {
  std::string promotedAt;
  int64_t generation = 0;  // production's, after the write
  std::map<std::string, std::string> configHashes;  // "Kind/name" -> digest; written even when empty
  std::optional<std::string> healthyAt;  // start of the current bake
  std::optional<std::string> firstHealthyAt;
  std::optional<std::map<std::string, int64_t>> restartsAtHealthy;  // pod uid -> restarts then
  std::optional<std::string> verifiedAt;
  bool operator==(const Promotion&) const = default;
};

// The rollback once written (json: rollback).
struct RollbackRecord {
  std::string at;
  std::string reason;
  std::string cause;
  std::string revision;
  int64_t generation = 0;  // production's, after the restore
  std::optional<std::string> verifiedAt;
  bool operator==(const RollbackRecord&) const = default;
};

// The PatchPolicies that applied and what they changed (json: policy).
struct PolicyStatus {
  std::vector<std::string> sources;  // "<namespace>/<name>" of each PatchPolicy; written even when empty
  std::vector<std::string> notes;  // what the policies raised ("approval required by ..."); omitted when empty
  std::optional<std::string> schedule;  // why promotion waits (a window, a freeze), or an emergency's bypass
  bool operator==(const PolicyStatus&) const = default;
};

struct PatchStatus {
  std::optional<std::string> phase;  // for people; the conditions are the truth
  std::optional<std::string> message;
  std::optional<std::string> startedAt;
  std::optional<std::string> finishedAt;
  std::optional<int64_t> observedGeneration;
  std::vector<Condition> conditions;  // omitted when empty
  std::vector<HistoryEntry> history;  // omitted when empty; bounded by the reconciler
  std::optional<TargetRef> target;
  std::optional<std::string> baseHash;  // production's spec hash the tests ran against
  std::optional<std::string> expectedHash;  // the spec hash production gets
  std::optional<std::string> diff;
  std::optional<RollbackSource> rollbackSource;
  std::optional<EnvironmentStatus> environment;
  std::vector<TestResult> tests;  // omitted when empty
  std::map<std::string, std::vector<TestSuiteReport>> testReports;  // by test; omitted when empty
  std::optional<std::vector<ApprovalRecord>> approvals;  // written empty while none are given
  std::vector<std::string> refusedApprovals;  // PatchApprovals refused (and told) once; omitted when empty
  std::optional<int64_t> retests;  // re-tests after production drifted
  std::optional<std::string> retestedAt;  // approvals given before this are void
  // fromSecret sources: name -> resourceVersion when first read; a source
  // that changes before promotion fails the Patch. Omitted when empty.
  std::map<std::string, std::string> secretSources;
  std::optional<RollbackPoint> revision;
  std::optional<Intent> intent;
  std::optional<Promotion> promotion;
  std::optional<RollbackRecord> rollback;
  std::optional<PolicyStatus> policy;
  bool operator==(const PatchStatus&) const = default;
};

// The JSON of a status. For every status, parsePatchStatus(toJson(s)) == s;
// for every JSON the operator writes, toJson(parsePatchStatus(j)) == j, so an
// unchanged pass compares equal and writes nothing.
Json toJson(const PatchStatus& status);
// Parses .status (null: an empty status). A field of the wrong type is an
// InvalidArgument error naming it ("status.tests[0].attempts: must be an
// integer"), never an exception. Absent fields keep the defaults above;
// unknown fields are dropped (the API server prunes them anyway).
absl::StatusOr<PatchStatus> parsePatchStatus(const Json& status);

Json toJson(const Condition& condition);
Json toJson(const std::vector<TestSuiteReport>& suites);

// For tests: a status with every optional field set and every list and map
// holding one element, built from the same field lists as the mapping, so a
// test can check that the CRD schema declares everything the mapping writes.
PatchStatus fullyPopulatedPatchStatus();

// The phase in a Patch object's status ("" when absent), for reading other
// Patches in the cache without parsing their whole status.
std::string phaseOf(const Json& patch);

// Conditions, as runtime/status.h does on JSON (apimachinery's
// meta.SetStatusCondition): setCondition keeps lastTransitionTime while the
// status stays the same; `now` is formatTime's. Returns whether anything
// changed.
bool setCondition(std::vector<Condition>& conditions, Condition condition, const std::string& now);
const Condition* findCondition(const std::vector<Condition>& conditions, std::string_view type);
bool isConditionTrue(const std::vector<Condition>& conditions, std::string_view type);
bool removeCondition(std::vector<Condition>& conditions, std::string_view type);

}  // namespace patchgate::api::v1alpha1
