// What PatchPolicies demand of a Patch, and what its author may do themself.
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "controllers/patch/conditions.h"
#include "controllers/patch/pass.h"
#include "controllers/patch/workload.h"
#include "kube/errors.h"

namespace patchgate::controllers::patch {

namespace v1 = api::v1alpha1;
using runtime::Action;

PatchReconciler::Step PatchReconciler::applyPolicies(Pass& p, bool lenient) {
  std::vector<std::string> namespaces = {p.ns};
  if (!options_.clusterPolicyNamespace.empty() && options_.clusterPolicyNamespace != p.ns)
    namespaces.push_back(options_.clusterPolicyNamespace);
  std::vector<v1::PolicySpec> policies;
  for (const auto& ns : namespaces) {
    auto list = client_.list(kube::resources::kPatchPolicy, ns, {});
    if (!list.ok()) {
      // Fail closed: a Patch never moves on without the policies that apply.
      // (NotFound: the CRD is not installed, so no policy can exist.)
      if (kube::isNotFound(list.status())) continue;
      if (lenient) return std::nullopt;
      return list.status();
    }
    for (const auto& item : (*list)["items"]) {
      auto parsed = v1::parsePolicy(item);
      if (!parsed.ok()) {
        std::string msg = absl::StrCat("PatchPolicy ", ns, "/", jsonString(item, "/metadata/name"),
                                       " cannot be applied: ", parsed.status().message());
        if (lenient) {
          p.ctx.log.warn("policy skipped", {{"error", msg}});
          continue;
        }
        setCondition(p, condition::kPolicyReady, false, reason::kPolicyInvalid,
                     absl::StrCat(msg, "; this patch waits until it is fixed"));
        p.status.message = absl::StrCat(msg, "; this patch waits until it is fixed");
        return Action::requeue(std::chrono::seconds(30));
      }
      policies.push_back(std::move(*parsed));
    }
  }
  v1::removeCondition(p.status.conditions, condition::kPolicyReady);
  v1::PolicyStatus ps;
  if (!policies.empty()) {
    p.policy = v1::mergePolicies(policies);
    ps.notes = v1::applyPolicy(p.policy, p.spec);
    for (const auto& pol : policies) ps.sources.push_back(pol.source);
  } else {
    p.policy = v1::PolicySpec{};
  }
  if (p.status.policy) ps.schedule = p.status.policy->schedule;
  if (!policies.empty() || p.status.policy) p.status.policy = std::move(ps);
  if (p.spec.approvalRequired && p.spec.author.empty() && !lenient) {
    std::string msg = absl::StrCat("policy ", p.policy.source,
                                   " requires approval, so the patch must name its author (spec.author; ",
                                   "`patchctl create` fills it in), who then cannot approve it");
    setCondition(p, condition::kValidated, false, reason::kInvalidSpec, msg);
    fail(p, reason::kInvalidSpec, msg);
    return Action::await();
  }
  return std::nullopt;
}

PatchReconciler::Step PatchReconciler::resolveSecretSources(Pass& p) {
  // Once production may have been written, nothing here may fail the Patch:
  // its rollback must go on whatever happens to the source.
  const bool committed = p.status.intent || p.status.promotion;
  for (auto& cc : p.spec.change.config) {
    if (cc.fromSecret.empty()) continue;
    auto src = client_.get(kube::resources::kSecret, p.ns, cc.fromSecret);
    if (!src.ok()) {
      if (!kube::isNotFound(src.status())) return src.status();
      if (committed) continue;  // written already, or restored from the snapshot
      std::string msg = absl::StrCat("Secret ", p.ns, "/", cc.fromSecret, " (the new values of Secret ", cc.name,
                                     ", spec.change.config[].fromSecret) not found");
      setCondition(p, condition::kValidated, false, reason::kTargetNotFound, msg);
      fail(p, reason::kTargetNotFound, msg);
      return Action::await();
    }
    std::string version = jsonString(*src, "/metadata/resourceVersion");
    auto pinned = p.status.secretSources.find(cc.fromSecret);
    if (pinned == p.status.secretSources.end()) {
      if (committed) continue;
      p.status.secretSources[cc.fromSecret] = version;
    } else if (pinned->second != version) {
      if (committed) continue;  // a repeated write keeps what it wrote (the digests tell a revert)
      std::string msg = absl::StrCat("Secret ", cc.fromSecret, " (the new values of Secret ", cc.name,
                                     ") changed after the patch was validated: what was tested is not what "
                                     "would be promoted; create a new Patch");
      fail(p, reason::kChangeRejected, msg);
      return Action::await();
    }
    Json data = src->value("data", Json::object());
    if (!data.is_object() || data.empty()) {
      if (committed) continue;
      std::string msg = absl::StrCat("Secret ", cc.fromSecret, " (the new values of Secret ", cc.name, ") has no data");
      setCondition(p, condition::kValidated, false, reason::kChangeRejected, msg);
      fail(p, reason::kChangeRejected, msg);
      return Action::await();
    }
    cc.type = "merge";
    cc.patch = Json{{"data", data}}.dump();
    cc.fromSecretVersion = p.status.secretSources[cc.fromSecret];
  }
  return std::nullopt;
}

namespace {

struct Right {
  std::string verb, group, resource, name, what, why;
};

}  // namespace

std::optional<std::string> PatchReconciler::identityUnverified(IdentityClaim claim, const std::string& createdAt,
                                                              IdentityVerdict* out, absl::Status* error) {
  if (!options_.identityCheck) return std::nullopt;
  auto verdict = options_.identityCheck(claim, createdAt);
  if (!verdict.ok()) {
    *error = verdict.status();
    return std::nullopt;
  }
  *out = *verdict;
  if (verdict->missing.empty()) return std::nullopt;
  return absl::StrCat(claim == IdentityClaim::kAuthor ? "spec.author" : "spec.approver of a PatchApproval",
                      " is not checked by the API server (", absl::StrJoin(verdict->missing, "; "),
                      "), so anyone could write any name there; install patchgate's admission policies ",
                      "(kubectl apply -f crds/patchgate.dev_admission-policies.yaml, or the chart's "
                      "admissionPolicies.install) or run the operator with --trust-unverified-identity");
}

PatchReconciler::Step PatchReconciler::checkAuthorRights(Pass& p, const Json& patchedTarget,
                                                         const Json& restoredConfigs) {
  // The author's rights are worth checking only if the author is who they
  // say: without the admission policy, wait (nothing is created yet).
  absl::Status error;
  IdentityVerdict identity;
  const std::string created = jsonString(p.patch, "/metadata/creationTimestamp");
  if (auto why = identityUnverified(IdentityClaim::kAuthor, created, &identity, &error)) {
    std::string msg = absl::StrCat(*why, "; this patch waits");
    warnOnce(p, condition::kValidated, reason::kIdentityUnverified, "Validate", msg);
    setCondition(p, condition::kValidated, false, reason::kIdentityUnverified, msg);
    p.status.message = msg;
    return Action::requeue(std::chrono::seconds(30));
  }
  if (!error.ok()) return error;
  // Created before the policy was (re)installed, by whoever wrote whatever
  // name: never checked, and never trusted later (a Patch that waited above
  // ends here once the policy is back).
  if (!identity.checked(created)) {
    std::string msg = absl::StrCat("this patch was created at ", created,
                                   " before the API server checked spec.author (patchgate's admission policy "
                                   "patchgate-patch-author is in place since ",
                                   identity.since, "): nobody checked that ", p.spec.author.empty() ? "its author" : p.spec.author,
                                   " wrote it; create it again");
    setCondition(p, condition::kValidated, false, reason::kIdentityUnverified, msg);
    fail(p, reason::kIdentityUnverified, msg);
    return Action::await();
  }
  return checkRights(p, patchedTarget, restoredConfigs, false);
}

PatchReconciler::Step PatchReconciler::checkRights(Pass& p, const Json& patchedTarget, const Json& restoredConfigs,
                                                   bool atPromotion) {
  // Only on a cluster trusted without the admission policies (which require
  // an author): no one to check.
  if (p.spec.author.empty()) return std::nullopt;
  std::vector<Right> rights;
  rights.push_back({"patch", p.targetType.group, p.targetType.resource, p.spec.target.name,
                    absl::StrCat("patch ", p.spec.target.key())});
  for (const auto& cc : p.spec.change.config) {
    const auto& rt = configType(cc.kind);
    rights.push_back({"patch", "", rt.resource, cc.name, absl::StrCat("patch ", cc.kind, "/", cc.name)});
    if (!cc.fromSecret.empty())
      rights.push_back({"get", "", "secrets", cc.fromSecret, absl::StrCat("read Secret/", cc.fromSecret),
                        absl::StrCat("; it holds the new values of Secret ", cc.name)});
  }
  // A rollback to a recorded revision puts its ConfigMaps and Secrets back
  // too (a rotated credential among them): the author must be allowed that.
  for (const auto& c : restoredConfigs) {
    std::string kind = c.value("kind", ""), name = c.value("name", "");
    if ((kind != "ConfigMap" && kind != "Secret") || name.empty()) continue;
    rights.push_back({"patch", "", configType(kind).resource, name, absl::StrCat("patch ", kind, "/", name),
                      "; the rollback would restore it"});
  }
  if (p.spec.secrets == "copy" && !atPromotion) {  // copied already by then
    std::set<std::string> secrets;
    const Json& tmpl = jsonAt(patchedTarget, "/spec/template");
    if (tmpl.is_object())
      for (const auto& s : podReferences(tmpl).secrets) secrets.insert(s);
    for (const auto& inc : p.spec.include)
      if (inc.kind == "Secret") secrets.insert(inc.name);
    for (const auto& s : secrets)
      rights.push_back({"get", "", "secrets", s, absl::StrCat("read Secret/", s),
                        "; the test environment would get a copy of it (environment.secrets: copy)"});
  }
  // Without recorded groups, only the one every signed-in user has: rights
  // that come through other groups must be listed (patchctl does).
  std::vector<std::string> groups = p.spec.authorGroups;
  if (groups.empty()) groups.push_back("system:authenticated");
  for (const auto& r : rights) {
    Json review = {{"apiVersion", "authorization.k8s.io/v1"},
                   {"kind", "SubjectAccessReview"},
                   {"spec",
                    {{"user", p.spec.author},
                     {"groups", groups},
                     {"resourceAttributes",
                      {{"namespace", p.ns}, {"verb", r.verb}, {"group", r.group},
                       {"resource", r.resource}, {"name", r.name}}}}}};
    auto answer = client_.create(kube::resources::kSubjectAccessReview, "", review);
    if (!answer.ok()) return answer.status();
    if (jsonAt(*answer, "/status/allowed") == Json(true)) continue;
    std::string why = jsonString(*answer, "/status/reason");
    std::string asked = p.spec.authorGroups.empty()
                            ? "asked without groups: if your rights come from groups, list them in "
                              "spec.authorGroups (`kubectl auth whoami`; `patchctl create` fills them in)"
                            : absl::StrCat("asked with groups ", absl::StrJoin(p.spec.authorGroups, ", "));
    std::string msg = absl::StrCat(atPromotion ? "at promotion, " : "", "the author ", p.spec.author, " may not ",
                                   r.what, " in ", p.ns, atPromotion ? " themself any more (" : " themself (",
                                   r.verb, " ", r.resource, r.group.empty() ? "" : absl::StrCat(".", r.group), "; ",
                                   asked, ")", why.empty() ? "" : absl::StrCat(": ", why), r.why,
                                   "; patchgate makes no change its author could not make");
    if (!atPromotion) setCondition(p, condition::kValidated, false, reason::kForbidden, msg);
    fail(p, reason::kForbidden, msg);
    return Action::await();
  }
  return std::nullopt;
}

std::string PatchReconciler::approverRefusal(const Pass& p, const std::string& who,
                                             const std::vector<std::string>& groups) const {
  // An approval is a second person's judgement: not the author's, and not a
  // ServiceAccount's (anyone who can create a pod or mint a token in some
  // namespace could otherwise add "approvers" at will) unless policy allows.
  if (!p.spec.author.empty() && who == p.spec.author) return "the author cannot approve their own patch";
  if (who.starts_with("system:serviceaccount:")) {
    if (!p.policy.approval.allowServiceAccounts)
      return "a ServiceAccount is not a person: its approval does not count";
  } else if (who.starts_with("system:")) {
    return "a system identity is not a person: its approval does not count";
  }
  std::string why;
  if (!v1::mayApprove(p.policy, who, groups, &why)) return why;
  return "";
}

}  // namespace patchgate::controllers::patch
