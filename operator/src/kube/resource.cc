#include "kube/resource.h"

#include <array>
#include <cctype>

#include "absl/strings/str_cat.h"

namespace patchgate::kube {

std::string ResourceType::basePath() const {
  return group.empty() ? absl::StrCat("/api/", version) : absl::StrCat("/apis/", group, "/", version);
}

namespace {

// One path segment, percent-encoded: a name or namespace from a request
// ("a/../secrets", "x?watch=1") must not become another path or a query.
// Valid Kubernetes names pass unchanged ("." and ".." are not valid names and
// are encoded too, so they cannot walk up).
std::string pathSegment(std::string_view s) {
  // "." and ".." would climb the path: encoded whole. Colons stay (RBAC names).
  if (s == "." || s == "..") return s.size() == 1 ? "%2E" : "%2E%2E";
  return percentEncode(s, ":");
}

}  // namespace

std::string percentEncode(std::string_view value, std::string_view alsoKeep) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : value) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' ||
        alsoKeep.find(static_cast<char>(c)) != std::string_view::npos) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string ResourceType::path(std::string_view ns, std::string_view name,
                               std::string_view subresource) const {
  std::string p = basePath();
  if (namespaced && !ns.empty()) absl::StrAppend(&p, "/namespaces/", pathSegment(ns));
  absl::StrAppend(&p, "/", resource);
  if (!name.empty()) absl::StrAppend(&p, "/", pathSegment(name));
  if (!subresource.empty()) absl::StrAppend(&p, "/", std::string(subresource));
  return p;
}

namespace resources {
const ResourceType kNamespace{"", "v1", "namespaces", "Namespace", false};
const ResourceType kPod{"", "v1", "pods", "Pod", true};
const ResourceType kService{"", "v1", "services", "Service", true};
const ResourceType kConfigMap{"", "v1", "configmaps", "ConfigMap", true};
const ResourceType kSecret{"", "v1", "secrets", "Secret", true};
const ResourceType kServiceAccount{"", "v1", "serviceaccounts", "ServiceAccount", true};
const ResourceType kResourceQuota{"", "v1", "resourcequotas", "ResourceQuota", true};
const ResourceType kEvent{"events.k8s.io", "v1", "events", "Event", true};
const ResourceType kDeployment{"apps", "v1", "deployments", "Deployment", true};
const ResourceType kStatefulSet{"apps", "v1", "statefulsets", "StatefulSet", true};
const ResourceType kDaemonSet{"apps", "v1", "daemonsets", "DaemonSet", true};
const ResourceType kReplicaSet{"apps", "v1", "replicasets", "ReplicaSet", true};
const ResourceType kControllerRevision{"apps", "v1", "controllerrevisions", "ControllerRevision", true};
const ResourceType kJob{"batch", "v1", "jobs", "Job", true};
const ResourceType kLease{"coordination.k8s.io", "v1", "leases", "Lease", true};
const ResourceType kNetworkPolicy{"networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", true};
const ResourceType kCustomResourceDefinition{"apiextensions.k8s.io", "v1",
                                             "customresourcedefinitions",
                                             "CustomResourceDefinition", false};
const ResourceType kTokenReview{"authentication.k8s.io", "v1", "tokenreviews", "TokenReview", false};
const ResourceType kSubjectAccessReview{"authorization.k8s.io", "v1", "subjectaccessreviews",
                                        "SubjectAccessReview", false};
const ResourceType kPatch{"patchgate.dev", "v1alpha1", "patches", "Patch", true};
const ResourceType kPatchApproval{"patchgate.dev", "v1alpha1", "patchapprovals", "PatchApproval", true};
const ResourceType kPatchPolicy{"patchgate.dev", "v1alpha1", "patchpolicies", "PatchPolicy", true};
const ResourceType kLimitRange{"", "v1", "limitranges", "LimitRange", true};
const ResourceType kValidatingAdmissionPolicy{"admissionregistration.k8s.io", "v1", "validatingadmissionpolicies",
                                              "ValidatingAdmissionPolicy", false};
const ResourceType kValidatingAdmissionPolicyBinding{"admissionregistration.k8s.io", "v1",
                                                     "validatingadmissionpolicybindings",
                                                     "ValidatingAdmissionPolicyBinding", false};

absl::StatusOr<ResourceType> forKind(std::string_view apiVersion, std::string_view kind) {
  static const std::array<const ResourceType*, 25> kAll = {
      &kNamespace, &kPod, &kService, &kConfigMap, &kSecret, &kServiceAccount, &kResourceQuota,
      &kEvent, &kDeployment, &kStatefulSet, &kDaemonSet, &kReplicaSet, &kControllerRevision,
      &kJob, &kLease, &kNetworkPolicy, &kCustomResourceDefinition, &kTokenReview,
      &kSubjectAccessReview, &kPatch, &kPatchApproval, &kPatchPolicy, &kLimitRange,
      &kValidatingAdmissionPolicy, &kValidatingAdmissionPolicyBinding};
  for (const auto* rt : kAll) {
    if (rt->apiVersion() == apiVersion && rt->kind == kind) return *rt;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unsupported kind ", std::string(kind), " in ", std::string(apiVersion)));
}
}  // namespace resources

std::string makeKey(std::string_view ns, std::string_view name) {
  return ns.empty() ? std::string(name) : absl::StrCat(std::string(ns), "/", std::string(name));
}

std::string objectKey(const Json& obj) {
  return makeKey(jsonString(obj, "/metadata/namespace"), jsonString(obj, "/metadata/name"));
}

std::pair<std::string, std::string> splitKey(std::string_view key) {
  auto slash = key.find('/');
  if (slash == std::string_view::npos) return {"", std::string(key)};
  return {std::string(key.substr(0, slash)), std::string(key.substr(slash + 1))};
}

}  // namespace patchgate::kube
