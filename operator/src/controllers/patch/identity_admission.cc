#include "controllers/patch/identity_admission.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kube/errors.h"
#include "kube/resource.h"

namespace patchgate::controllers::patch {

const std::vector<std::string>& identityPolicies(IdentityClaim claim) {
  static const std::vector<std::string> kAuthor = {"patchgate-patch-author"};
  static const std::vector<std::string> kApprover = {"patchgate-approval-identity", "patchgate-approval-not-author"};
  return claim == IdentityClaim::kAuthor ? kAuthor : kApprover;
}

bool IdentityVerdict::checked(const std::string& createdAt) const {
  if (since.empty() || createdAt.empty()) return true;
  if (!afterGap) return createdAt >= since;
  auto from = parseTime(since);
  auto created = parseTime(createdAt);
  if (!from.ok() || !created.ok()) return createdAt > since;
  return *created > *from + kEnforcementLag;
}

IdentityAdmission::IdentityAdmission(kube::Client& client, Clock& clock, std::chrono::seconds ttl)
    : client_(client), clock_(clock), ttl_(ttl) {}

std::string IdentityAdmission::problem(const kube::ResourceType& rt, const std::string& name,
                                       const absl::StatusOr<Json>& got) const {
  if (got.ok()) return "";
  if (kube::isNotFound(got.status())) return absl::StrCat("the ", rt.kind, " ", name, " is not installed");
  return absl::StrCat("the operator may not read the ", rt.kind, " ", name, " (get ", rt.resource, ".", rt.group,
                      ": ", got.status().message(), ")");
}

absl::Status IdentityAdmission::refreshLocked() {
  std::map<std::string, IdentityVerdict> byPolicy;
  for (auto claim : {IdentityClaim::kAuthor, IdentityClaim::kApprover}) {
    for (const auto& name : identityPolicies(claim)) {
      auto& wrong = byPolicy[name].missing;
      auto& since = byPolicy[name].since;
      for (const auto* rt : {&kube::resources::kValidatingAdmissionPolicy,
                             &kube::resources::kValidatingAdmissionPolicyBinding}) {
        auto got = client_.get(*rt, "", name);
        if (!got.ok() && !kube::isNotFound(got.status()) && !kube::isForbidden(got.status())) return got.status();
        if (std::string why = problem(*rt, name, got); !why.empty()) {
          wrong.push_back(std::move(why));
          continue;
        }
        // Checked since it was last made or changed (a binding set to Warn
        // and back, a policy edited): its creation, or its newest write in
        // managedFields. RFC 3339 UTC strings of one format order like the
        // times they name.
        since = std::max(since, jsonString(*got, "/metadata/creationTimestamp"));
        for (const auto& m : jsonAt(*got, "/metadata/managedFields"))
          since = std::max(since, jsonString(m, "/time"));
        if (rt != &kube::resources::kValidatingAdmissionPolicyBinding) continue;
        // Narrowed to some namespaces or objects, it checks the rest nowhere.
        if (const Json& narrowed = jsonAt(*got, "/spec/matchResources");
            narrowed.is_object() && !narrowed.empty()) {
          wrong.push_back(absl::StrCat("the ValidatingAdmissionPolicyBinding ", name,
                                       " is narrowed by matchResources, so it does not check every namespace"));
          continue;
        }
        // A binding that only warns or audits lets the request through.
        if (jsonString(*got, "/spec/policyName") != name) {
          wrong.push_back(absl::StrCat("the ValidatingAdmissionPolicyBinding ", name, " binds ",
                                       jsonString(*got, "/spec/policyName"), ", not ", name));
          continue;
        }
        const Json& actions = jsonAt(*got, "/spec/validationActions");
        bool denies = actions.is_array() && std::any_of(actions.begin(), actions.end(), [](const Json& a) {
                        return a.is_string() && a.get<std::string>() == "Deny";
                      });
        if (!denies)
          wrong.push_back(absl::StrCat("the ValidatingAdmissionPolicyBinding ", name,
                                       " does not deny (validationActions: ", actions.dump(), ")"));
      }
    }
  }
  byPolicy_ = std::move(byPolicy);
  readAt_ = clock_.steadyNow();
  readWall_ = clock_.now();
  return absl::OkStatus();
}

absl::StatusOr<IdentityVerdict> IdentityAdmission::check(IdentityClaim claim, std::string_view createdAt) {
  std::lock_guard lock(mu_);
  // The read must postdate the object. The object's time is the API
  // server's and the read's this process's: allow for clocks up to 30 s
  // apart, and read again at most once a second for it.
  bool olderThanObject = false;
  if (auto created = parseTime(createdAt); created.ok())
    olderThanObject = readWall_ <= *created + std::chrono::seconds(30) &&
                      (!readAt_ || clock_.steadyNow() - *readAt_ >= std::chrono::seconds(1));
  if (!readAt_ || olderThanObject || clock_.steadyNow() - *readAt_ >= ttl_) {
    if (auto s = refreshLocked(); !s.ok()) return s;
  }
  IdentityVerdict out;
  for (const auto& name : identityPolicies(claim)) {
    const auto& v = byPolicy_[name];
    out.missing.insert(out.missing.end(), v.missing.begin(), v.missing.end());
    out.since = std::max(out.since, v.since);
  }
  if (!out.missing.empty()) {
    out.since.clear();
    sawMissing_[claim] = true;
  }
  out.afterGap = sawMissing_[claim];
  return out;
}

}  // namespace patchgate::controllers::patch
