#pragma once

// Whether the API server vouches for who a Patch's author and an approval's
// approver are. The ValidatingAdmissionPolicies of
// crds/patchgate.dev_admission-policies.yaml tie spec.author and
// spec.approver to the user who sent the request; without them those fields
// are text anyone may write, and the author's rights (SubjectAccessReview) or
// "someone other than the author" would check a name, not a person. The
// operator therefore looks for them (each policy and its Deny binding, both
// named alike) before it trusts either field.

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "kube/client.h"

namespace patchgate::controllers::patch {

enum class IdentityClaim {
  kAuthor,    // spec.author of a Patch: patchgate-patch-author
  kApprover,  // spec.approver of a PatchApproval: patchgate-approval-identity, -not-author
};

// The policies (each with a binding of the same name) behind a claim.
const std::vector<std::string>& identityPolicies(IdentityClaim claim);

struct IdentityVerdict {
  // What keeps the API server from checking the claim, one sentence per
  // policy or binding ("the ValidatingAdmissionPolicyBinding
  // patchgate-patch-author is not installed"); empty when it checks it.
  std::vector<std::string> missing;
  // When it began to: the newest creationTimestamp of those policies and
  // bindings (RFC 3339). An object created before then (while one was
  // missing, say) was not checked.
  std::string since;
  // This process saw the claim unchecked before `since` (a gap it knows of):
  // an object stamped with the very second of `since` (timestamps have
  // whole seconds) may then be from the gap, and is not trusted either.
  bool afterGap = false;
  static constexpr std::chrono::seconds kEnforcementLag{5};
  // Whether an object created at `createdAt` (RFC 3339) was checked.
  // After a known gap, the API server may take a few seconds to enforce a
  // policy made again: objects of those seconds are not trusted either.
  bool checked(const std::string& createdAt) const;
};

class IdentityAdmission {
 public:
  // Reads the policies at most once per `ttl` (six GETs), so that a policy
  // installed or removed is seen within it.
  IdentityAdmission(kube::Client& client, Clock& clock, std::chrono::seconds ttl = std::chrono::seconds(30));

  // Whether the API server checks `claim`, and since when, as read after
  // `createdAt` (RFC 3339; the object whose name is to be trusted): a read
  // older than the object (with a margin for the seconds the API server's
  // timestamps drop) is made again, so that a policy removed just before
  // the object was created is seen missing, or seen made again after it
  // (`since`). An error reading (other than NotFound or Forbidden, which are
  // answers) is returned for a retry.
  absl::StatusOr<IdentityVerdict> check(IdentityClaim claim, std::string_view createdAt = {});

 private:
  absl::Status refreshLocked();
  std::string problem(const kube::ResourceType& rt, const std::string& name, const absl::StatusOr<Json>& got) const;

  kube::Client& client_;
  Clock& clock_;
  const std::chrono::seconds ttl_;
  std::mutex mu_;
  std::optional<Clock::SteadyPoint> readAt_;
  Clock::TimePoint readWall_{};  // the same, on the wall clock
  std::map<std::string, IdentityVerdict> byPolicy_;  // policy name -> its state
  std::map<IdentityClaim, bool> sawMissing_;          // seen unchecked by this process
};

}  // namespace patchgate::controllers::patch
