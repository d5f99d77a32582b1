#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/json.h"

namespace patchgate::kube {

// What the client needs to know to address a kind: its group/version, plural
// resource name and scope. The built-ins patchgate uses are constants below;
// others can be declared the same way (no discovery round-trips).
struct ResourceType {
  std::string group;     // "" for the core group
  std::string version;
  std::string resource;  // plural, lower case
  std::string kind;
  bool namespaced = true;

  std::string apiVersion() const { return group.empty() ? version : group + "/" + version; }
  // "/api/v1" or "/apis/apps/v1"
  std::string basePath() const;
  // Collection or item path; empty namespace means all namespaces (or cluster scope).
  // The namespace and name are percent-encoded, so neither can add a path or a query.
  std::string path(std::string_view ns, std::string_view name = {},
                   std::string_view subresource = {}) const;
  bool operator==(const ResourceType& o) const {
    return group == o.group && version == o.version && resource == o.resource;
  }
};

namespace resources {
extern const ResourceType kNamespace, kPod, kService, kConfigMap, kSecret, kServiceAccount,
    kEvent, kResourceQuota, kDeployment, kStatefulSet, kDaemonSet, kReplicaSet,
    kControllerRevision, kJob, kLease, kNetworkPolicy, kCustomResourceDefinition,
    kTokenReview, kSubjectAccessReview, kPatch, kPatchApproval, kPatchPolicy, kLimitRange,
    kValidatingAdmissionPolicy, kValidatingAdmissionPolicyBinding;

// The ResourceType for an apiVersion/kind among the known ones.
absl::StatusOr<ResourceType> forKind(std::string_view apiVersion, std::string_view kind);
}  // namespace resources

// "namespace/name", or "name" for cluster-scoped objects: the key used by
// stores and work queues, as client-go's MetaNamespaceKeyFunc.
// Percent-encodes every byte but RFC 3986's unreserved characters (letters,
// digits, - _ . ~) and those in `alsoKeep`.
std::string percentEncode(std::string_view value, std::string_view alsoKeep = {});

std::string objectKey(const Json& obj);
std::string makeKey(std::string_view ns, std::string_view name);
// Splits a key back; namespace is "" for cluster-scoped keys.
std::pair<std::string, std::string> splitKey(std::string_view key);

}  // namespace patchgate::kube
