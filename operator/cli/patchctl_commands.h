#pragma once

// patchctl's commands over a kube::Client. The client, clock, randomness and
// the caller's identity are injected, so each command runs in unit tests
// against FakeClient.
//
// RBAC the user needs (namespace of the Patch): patches get/list/watch
// (get, describe, watch, diff, report), create (create, rollback);
// controllerrevisions list (history, rollback); patchapprovals create
// (approve, reject); events list (describe, optional). SelfSubjectReview
// (approve, reject, create with approval) is allowed to every user.

#include <chrono>
#include <functional>
#include <iosfwd>
#include <string>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "cli/args.h"
#include "common/clock.h"
#include "common/json.h"
#include "common/random.h"
#include "kube/client.h"

namespace patchgate::cli {

inline constexpr char kVersion[] = "0.1.0";

// authentication.k8s.io/v1 SelfSubjectReview (GA in Kubernetes 1.28): "who am I".
extern const kube::ResourceType kSelfSubjectReview;

// Who the API server sees for `client`'s credentials, and their groups.
struct SelfReview {
  std::string user;
  std::vector<std::string> groups;
};
absl::StatusOr<SelfReview> selfSubjectReview(kube::Client& client);
// Just the user name.
absl::StatusOr<std::string> selfSubjectReviewUser(kube::Client& client);

struct Env {
  kube::Client& client;
  std::string ns;      // effective namespace
  std::string server;  // API server URL, for messages
  std::ostream& out;
  std::ostream& err;
  Clock& clock;
  Random& random;
  // Who is asking; defaults to a SelfSubjectReview through `client`.
  std::function<absl::StatusOr<std::string>()> whoAmI;
  // Their groups (spec.authorGroups, spec.approverGroups); defaults to a
  // SelfSubjectReview when whoAmI is unset, else none.
  std::function<absl::StatusOr<std::vector<std::string>>()> whoAmIGroups;
  // The groups of the SelfSubjectReview that told who is asking (one review
  // per command, however often it asks).
  std::optional<std::vector<std::string>> reviewedGroups;
};

// Runs a parsed command that needs the cluster; returns the exit code.
// Errors are printed to env.err as "error: ...".
int run(const Invocation& inv, Env& env);

// An API error as a person should read it: unreachable server, rejected
// credentials, missing CRD, forbidden (with the server's message).
std::string describeError(const absl::Status& s, const std::string& server);

// Follows one Patch with a watch until it ends; prints progress to env.out.
// Exit code: 0 Succeeded, 1 Failed/RolledBack/deleted/timeout/error.
int followPatch(Env& env, const std::string& name, std::chrono::seconds timeout);

// Splits a multi-document YAML stream on "---" lines.
std::vector<std::string> splitYamlDocuments(const std::string& text);

// The Patch that `rollback` creates (not yet sent): change.rollbackTo
// `revision` of `kind/name`, named rollback-<name>-<suffix>.
Json rollbackPatch(const std::string& ns, const std::string& kind, const std::string& name,
                   int64_t revision, const std::string& ticket, const std::string& reason,
                   const std::string& suffix, const Json& revisionObject);

}  // namespace patchgate::cli
