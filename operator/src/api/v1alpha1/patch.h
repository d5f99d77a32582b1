#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/json.h"

namespace patchgate::api::v1alpha1 {

inline constexpr char kGroup[] = "patchgate.dev";
inline constexpr char kVersion[] = "v1alpha1";
inline constexpr char kApiVersion[] = "patchgate.dev/v1alpha1";
inline constexpr char kFinalizer[] = "patchgate.dev/cleanup";

// Labels and annotations patchgate puts on what it creates.
inline constexpr char kLabelManagedBy[] = "app.kubernetes.io/managed-by";
inline constexpr char kManagedByValue[] = "patchgate";
inline constexpr char kLabelPatch[] = "patchgate.dev/patch";             // patch name
inline constexpr char kLabelPatchNamespace[] = "patchgate.dev/patch-namespace";
inline constexpr char kLabelPatchUid[] = "patchgate.dev/patch-uid";
inline constexpr char kLabelEnvironment[] = "patchgate.dev/environment";  // "true" on env namespaces
inline constexpr char kLabelTarget[] = "patchgate.dev/target";            // kind.name on revisions
inline constexpr char kLabelTest[] = "patchgate.dev/test";
inline constexpr char kAnnotationTicket[] = "patchgate.dev/ticket";
inline constexpr char kAnnotationRevision[] = "patchgate.dev/revision";
// On a production workload: "<patch uid>/<Promote|Rollback>" of patchgate's
// last write to it, written in the same request as the change, so a later
// pass (after a crash or a failover) recognises its own write.
inline constexpr char kAnnotationLastWrite[] = "patchgate.dev/last-write";
// On the pod template when a Patch changes config: a digest of the config
// change, so the pods roll and start with the new config.
inline constexpr char kAnnotationConfigHash[] = "patchgate.dev/config-hash";

// Phases: for people; the conditions are the truth.
namespace phase {
inline constexpr char kPending[] = "Pending";
inline constexpr char kValidated[] = "Validated";
inline constexpr char kQueued[] = "Queued";
inline constexpr char kProvisioning[] = "Provisioning";
inline constexpr char kTesting[] = "Testing";
inline constexpr char kAwaitingApproval[] = "AwaitingApproval";
// Tested (and approved where needed); waiting for a change window or the end
// of a freeze (PatchPolicy).
inline constexpr char kAwaitingWindow[] = "AwaitingWindow";
inline constexpr char kPromoting[] = "Promoting";
inline constexpr char kVerifying[] = "Verifying";
inline constexpr char kRollingBack[] = "RollingBack";  // restoring, then verifying the restore
inline constexpr char kSucceeded[] = "Succeeded";
inline constexpr char kFailed[] = "Failed";
inline constexpr char kRolledBack[] = "RolledBack";
bool isTerminal(const std::string& p);
}  // namespace phase

struct Target {
  std::string apiVersion;  // apps/v1
  std::string kind;        // Deployment | StatefulSet | DaemonSet
  std::string name;
  std::string key() const { return kind + "/" + name; }
};

struct ConfigChange {
  std::string kind;  // ConfigMap | Secret
  std::string name;
  std::string type;  // strategic | merge | json
  std::string patch;  // ConfigMaps only; for a fromSecret, filled in by the controller
  // Secrets only: the Secret (same namespace) whose data keys the change
  // sets, so that no Secret value is ever written in a Patch.
  std::string fromSecret;
  std::string fromSecretVersion;  // its resourceVersion, set with `patch` by the controller
};

struct Change {
  std::string type = "strategic";       // for patch
  std::string patch;                    // YAML or JSON text
  std::string image;                    // "container=image" or "image" (single container)
  std::optional<int64_t> rollbackTo;    // revision number
  std::vector<ConfigChange> config;
};

struct Include {
  std::string kind;
  std::string name;
};

struct TestSpec {
  std::string name;
  std::string image;
  std::vector<std::string> command;
  std::vector<std::string> args;
  Json env = Json::array();
  int64_t timeoutSeconds = 300;
  int64_t retries = 0;
};

struct PatchSpec {
  Target target;
  Change change;
  std::string ticket;
  std::string rootCause;
  std::string description;
  std::string priority = "normal";  // normal | emergency
  // environment
  int64_t envReplicas = 1;
  std::vector<Include> include;
  std::string secrets = "omit";  // copy | omit (production Secrets stay in production)
  int64_t ttlSecondsAfterFinished = 600;
  bool keepOnFailure = true;
  // A failed environment may hold copies of production Secrets: kept this
  // long for debugging, then deleted.
  int64_t keepOnFailureSeconds = 86400;
  int64_t readyTimeoutSeconds = 300;
  std::vector<TestSpec> tests;
  std::string author;  // who wrote it (admission checks it is the creator); cannot change
  // The author's groups (admission checks they are the creator's): their
  // rights are checked with these (SubjectAccessReview).
  std::vector<std::string> authorGroups;
  bool approvalRequired = false;
  int64_t approvers = 1;
  int64_t verificationTimeoutSeconds = 300;
  // After the rollout completes, production must stay healthy (ready, no
  // container restarts) and unchanged this long before the Patch succeeds.
  int64_t bakeSeconds = 30;
  bool automaticRollback = true;
  int64_t revisionHistoryLimit = 10;
  int64_t maxRetests = 3;
};

// Bounds on what a Patch author can make the operator parse: hostile input
// ends in a validation error (the Validated condition), never a crash, a hang
// or unbounded memory.
// - change text (spec.change.patch, spec.change.config[].patch): at most 1 MiB
//   each, like an object in etcd (~1.5 MiB), and the CRD's maxLength;
// - YAML/JSON nesting: at most 100 levels (a Deployment patch needs ~15;
//   yaml-cpp and nlohmann::json recurse, so depth is also stack);
// - values after YAML aliases are expanded: at most 100,000 (aliases make a
//   small text expand exponentially: "billion laughs");
// - list lengths as the CRD's maxItems: 20 tests, 20 config changes, 20
//   includes.
inline constexpr size_t kMaxChangeTextBytes = 1 << 20;
inline constexpr int kMaxNestingDepth = 100;
inline constexpr size_t kMaxValues = 100000;
inline constexpr size_t kMaxTests = 20;
inline constexpr size_t kMaxConfigChanges = 20;
inline constexpr size_t kMaxIncludes = 20;

// Parses and validates a Patch's spec with the same rules the CRD's schema and
// CEL rules enforce, so patchctl can refuse a bad manifest before sending it
// and the controller can explain one that slipped past an older CRD.
// Errors name the field, as the API server would.
absl::StatusOr<PatchSpec> parseSpec(const Json& patch);

// Converts YAML (or JSON) text to JSON; errors carry the parser's message.
// Refuses (InvalidArgument) text over kMaxChangeTextBytes, text that is not
// UTF-8 or holds NUL bytes, nesting deeper than kMaxNestingDepth, more than
// kMaxValues values, and numbers out of a double's range.
absl::StatusOr<Json> yamlToJson(const std::string& text);

}  // namespace patchgate::api::v1alpha1
