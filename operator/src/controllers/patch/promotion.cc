// Promotion, verification and rollback: the steps that touch production.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/failpoint.h"
#include "controllers/patch/conditions.h"
#include "controllers/patch/pass.h"
#include "controllers/patch/workload.h"
#include "kube/errors.h"
#include "runtime/status.h"

namespace patchgate::controllers::patch {

namespace v1 = api::v1alpha1;
using runtime::Action;

namespace {

std::string targetLabel(const v1::PatchSpec& spec) { return spec.target.kind + "." + spec.target.name; }

// Puts back the data of the ConfigMaps/Secrets stored in a revision
// (data.configs); one that no longer exists is skipped.
absl::Status restoreConfigs(kube::Client& client, const std::string& ns, const Json& configs) {
  for (const auto& c : configs) {
    Json ops = Json::array({{{"op", "add"}, {"path", "/data"}, {"value", c.value("data", Json::object())}}});
    auto r = client.patch(configType(c.value("kind", "")), ns, c.value("name", ""), kube::PatchType::kJson,
                          ops.dump());
    if (!r.ok() && !kube::isNotFound(r.status())) return r.status();
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status PatchReconciler::resetForRetest(Pass& p, const std::string& why) {
  if (auto s = deleteEnvironment(p); !s.ok()) return s;
  int64_t retests = p.status.value("retests", int64_t{0}) + 1;
  p.status["retests"] = retests;
  p.status["retestedAt"] = timeString(p.now);  // approvals given before this are void
  p.status.erase("environment");
  p.status.erase("tests");
  for (const char* c : {condition::kEnvironmentReady, condition::kTestsPassed, condition::kApproved,
                        condition::kValidated})
    runtime::removeCondition(p.status["conditions"], c);
  metrics_->driftDetected();
  transition(p, v1::phase::kProvisioning, reason::kDriftDetected,
             absl::StrCat(why, "; the tests no longer prove anything: re-testing on the new base (retest ",
                          retests, " of ", p.spec.maxRetests, ")"),
             runtime::EventType::kWarning);
  return absl::OkStatus();
}

PatchReconciler::Step PatchReconciler::promote(Pass& p) {
  if (p.status.contains("promotion")) return std::nullopt;
  if (p.phase() != v1::phase::kPromoting) transition(p, v1::phase::kPromoting, reason::kPromoting, "promoting");
  auto prod = client_.get(p.targetType, p.ns, p.spec.target.name);
  if (!prod.ok()) {
    if (kube::isNotFound(prod.status())) {
      fail(p, reason::kTargetVanished, absl::StrCat(p.spec.target.key(), " disappeared before promotion"));
      return Action::await();
    }
    return prod.status();
  }
  std::string current = specHash(*prod);
  bool alreadyApplied = current == p.status.value("expectedHash", "") && p.status.contains("revision");
  if (!alreadyApplied && current != p.status.value("baseHash", "")) {
    // Drift: production is no longer what the tests ran against.
    if (p.status.value("retests", int64_t{0}) >= p.spec.maxRetests) {
      std::string msg = absl::StrCat("production changed under the patch ", p.spec.maxRetests + 1,
                                     " times; giving up instead of promoting untested changes");
      fail(p, reason::kDriftLimit, msg);
      return Action::await();
    }
    if (auto s = resetForRetest(p, absl::StrCat(p.spec.target.key(), " was changed since it was copied")); !s.ok())
      return s;
    return Action::requeue(options_.pollInterval);
  }

  // 1. The rollback point, stored before production is touched.
  kube::ListOptions lo;
  lo.labelSelector = absl::StrCat(v1::kLabelTarget, "=", targetLabel(p.spec));
  auto revs = client_.list(kube::resources::kControllerRevision, p.ns, lo);
  if (!revs.ok()) return revs.status();
  Json mine;
  int64_t highest = 0;
  std::vector<std::pair<int64_t, std::string>> all;
  for (const auto& r : (*revs)["items"]) {
    int64_t n = r.value("revision", int64_t{0});
    highest = std::max(highest, n);
    all.emplace_back(n, jsonString(r, "/metadata/name"));
    const Json& lbl = jsonAt(r, "/metadata/labels");
    if (lbl.is_object() && lbl.value(v1::kLabelPatchUid, "") == p.uid) mine = r;
  }
  if (mine.is_null()) {
    if (alreadyApplied) return absl::InternalError("production carries the change but no rollback point exists");
    int64_t number = highest + 1;
    Json configs = Json::array();
    References refs = podReferences(podTemplate(*prod));
    std::vector<std::pair<std::string, std::string>> wanted;
    for (const auto& cm : refs.configMaps) wanted.emplace_back("ConfigMap", cm);
    for (const auto& s : refs.secrets) wanted.emplace_back("Secret", s);
    for (const auto& cc : p.spec.change.config)
      if (std::find(wanted.begin(), wanted.end(), std::make_pair(cc.kind, cc.name)) == wanted.end())
        wanted.emplace_back(cc.kind, cc.name);
    for (const auto& [kind, name] : wanted) {
      auto obj = client_.get(configType(kind), p.ns, name);
      if (!obj.ok()) {
        if (kube::isNotFound(obj.status())) continue;
        return obj.status();
      }
      Json entry = {{"kind", kind}, {"name", name}, {"data", obj->value("data", Json::object())}};
      if (obj->contains("binaryData")) entry["binaryData"] = (*obj)["binaryData"];
      configs.push_back(entry);
    }
    Json labels = ownedLabels(p);
    labels[v1::kLabelTarget] = targetLabel(p.spec);
    std::string revName = absl::StrCat(p.spec.target.name.substr(0, 200), "-pg-", number);
    Json rev = {{"apiVersion", "apps/v1"}, {"kind", "ControllerRevision"},
                {"metadata", {{"name", revName}, {"namespace", p.ns}, {"labels", labels},
                              {"annotations", {{v1::kAnnotationTicket, p.spec.ticket},
                                               {"patchgate.dev/patch-name", p.name},
                                               {"patchgate.dev/root-cause", p.spec.rootCause.substr(0, 1000)},
                                               {"patchgate.dev/recorded-at", timeString(p.now)}}}}},
                {"revision", number},
                {"data", {{"kind", p.spec.target.kind}, {"name", p.spec.target.name},
                          {"template", podTemplate(*prod)}, {"specHash", current},
                          {"resourceVersion", jsonString(*prod, "/metadata/resourceVersion")},
                          {"configs", configs}}}};
    auto created = client_.create(kube::resources::kControllerRevision, p.ns, rev);
    if (!created.ok()) {
      if (kube::isAlreadyExists(created.status())) return Action::requeue(std::chrono::milliseconds(200));
      return created.status();
    }
    mine = *created;
    failpoint("promote.afterRevision");
    all.emplace_back(number, revName);
    recorder_.event(p.patch, runtime::EventType::kNormal, reason::kRevisionRecorded, "Promote",
                    absl::StrCat("recorded rollback point ", revName, " (revision ", number, ") of ",
                                 p.spec.target.key()));
    // Keep revisionHistoryLimit revisions per target; the oldest go.
    std::sort(all.begin(), all.end());
    while (static_cast<int64_t>(all.size()) > p.spec.revisionHistoryLimit) {
      auto r = client_.remove(kube::resources::kControllerRevision, p.ns, all.front().second, {});
      if (!r.ok() && !kube::isNotFound(r.status())) return r.status();
      all.erase(all.begin());
    }
  }
  p.status["revision"] = {{"name", jsonString(mine, "/metadata/name")},
                          {"number", mine.value("revision", int64_t{0})},
                          {"rollbackTarget", jsonString(mine, "/metadata/name")}};

  // 2. The tested change, on the exact base that was tested.
  int64_t generation = jsonInt(*prod, "/metadata/generation");
  // A rollbackTo Patch restores the template and configs of its source revision.
  Json source;
  if (p.spec.change.rollbackTo) {
    auto src = client_.get(kube::resources::kControllerRevision, p.ns, jsonString(p.status, "/rollbackSource/name"));
    if (!src.ok()) return src.status();
    source = *src;
  }
  if (!alreadyApplied) {
    const Json* revTemplate = p.spec.change.rollbackTo ? &jsonAt(source, "/data/template") : nullptr;
    auto change = workloadChange(p.spec, *prod, revTemplate, /*precondition=*/true);
    if (!change.ok()) return change.status();
    auto applied = client_.patch(p.targetType, p.ns, p.spec.target.name, change->type, change->body);
    if (!applied.ok()) {
      if (kube::isConflict(applied.status()) || kube::isInvalid(applied.status())) {
        // The resourceVersion precondition failed: someone changed production
        // between our read and our write. Next pass sees the drift.
        recorder_.event(p.patch, runtime::EventType::kWarning, reason::kPromotionConflict, "Promote",
                        "production changed while promoting; checking for drift");
        return Action::requeue(std::chrono::milliseconds(500));
      }
      return applied.status();
    }
    generation = jsonInt(*applied, "/metadata/generation");
  }
  // Config changes follow the workload (merge patches: re-applying is harmless).
  for (const auto& cc : p.spec.change.config) {
    auto req = configChange(cc);
    if (!req.ok()) return req.status();
    auto r = client_.patch(configType(cc.kind), p.ns, cc.name, req->type, req->body);
    if (!r.ok()) return r.status();
  }
  if (auto s = restoreConfigs(client_, p.ns, jsonAt(source, "/data/configs")); !s.ok()) return s;
  p.status["promotion"] = {{"promotedAt", timeString(p.now)}, {"generation", generation}};
  setCondition(p, condition::kPromoted, true, reason::kPromoted,
               absl::StrCat("applied to ", p.spec.target.key(), " (generation ", generation, "); rollback point ",
                            p.status["revision"]["name"].get<std::string>()));
  transition(p, v1::phase::kVerifying, reason::kPromoted,
             absl::StrCat("promoted to production; verifying the rollout (up to ",
                          p.spec.verificationTimeoutSeconds, "s)"));
  return Action::requeue(options_.pollInterval);
}

PatchReconciler::Step PatchReconciler::verify(Pass& p) {
  if (runtime::isConditionTrue(p.status.value("conditions", Json()), condition::kVerified)) return std::nullopt;
  auto prod = client_.get(p.targetType, p.ns, p.spec.target.name);
  if (!prod.ok()) {
    if (kube::isNotFound(prod.status())) {
      fail(p, reason::kTargetVanished, absl::StrCat(p.spec.target.key(), " disappeared during verification"));
      return Action::await();
    }
    return prod.status();
  }
  Health h = workloadHealth(*prod, jsonInt(p.status, "/promotion/generation"));
  double elapsed = secondsSince(jsonString(p.status, "/promotion/promotedAt"), p.now);
  if (h.healthy) {
    p.status["promotion"]["verifiedAt"] = timeString(p.now);
    setCondition(p, condition::kVerified, true, reason::kVerified, h.message);
    p.status["finishedAt"] = timeString(p.now);
    double lead = secondsSince(p.status.value("startedAt", ""), p.now);
    metrics_->promoted(lead);
    transition(p, v1::phase::kSucceeded, reason::kSucceeded,
               absl::StrCat("production is healthy with the patch: ", h.message, "; rollback point ",
                            jsonString(p.status, "/revision/name")));
    return std::nullopt;
  }
  if (h.failed || elapsed > static_cast<double>(p.spec.verificationTimeoutSeconds)) {
    std::string why = h.failed ? h.message
                               : absl::StrCat("not healthy within ", p.spec.verificationTimeoutSeconds,
                                              "s: ", h.message);
    setCondition(p, condition::kVerified, false, reason::kVerificationFailed, why);
    if (!p.spec.automaticRollback) {
      fail(p, reason::kVerificationFailed, why + " (automatic rollback is off; production keeps the patch)");
      return Action::await();
    }
    if (auto s = rollback(p, h.failed ? "ProgressDeadlineExceeded" : "VerificationTimeout", why); !s.ok())
      return s;
    return std::nullopt;
  }
  setCondition(p, condition::kVerified, false, reason::kVerifying, h.message);
  p.status["message"] = absl::StrCat("verifying production: ", h.message);
  return Action::requeue(options_.pollInterval);
}

absl::Status PatchReconciler::rollback(Pass& p, const std::string& cause, const std::string& why) {
  std::string revName = jsonString(p.status, "/revision/name");
  auto rev = client_.get(kube::resources::kControllerRevision, p.ns, revName);
  if (!rev.ok()) {
    std::string msg = absl::StrCat("cannot roll back: rollback point ", revName, " unreadable: ", rev.status().message());
    setCondition(p, condition::kRolledBack, false, reason::kRollbackFailed, msg);
    recorder_.event(p.patch, runtime::EventType::kWarning, reason::kRollbackFailed, "Rollback", msg);
    return rev.status();
  }
  // The stored template replaces production's; no precondition: restoring
  // must win over whatever happened meanwhile.
  Json ops = Json::array({{{"op", "replace"}, {"path", "/spec/template"}, {"value", jsonAt(*rev, "/data/template")}}});
  auto r = client_.patch(p.targetType, p.ns, p.spec.target.name, kube::PatchType::kJson, ops.dump());
  if (!r.ok() && !kube::isNotFound(r.status())) return r.status();
  if (auto s = restoreConfigs(client_, p.ns, jsonAt(*rev, "/data/configs")); !s.ok()) return s;
  double restore = secondsSince(jsonString(p.status, "/promotion/promotedAt"), p.now);
  p.status["rollback"] = {{"at", timeString(p.now)}, {"reason", why}, {"revision", revName}};
  p.status["finishedAt"] = timeString(p.now);
  metrics_->rolledBack(cause, restore);
  setCondition(p, condition::kRolledBack, true, reason::kRolledBack,
               absl::StrCat("restored ", p.spec.target.key(), " and its config to ", revName));
  setCondition(p, condition::kReady, false, reason::kRolledBack, why);
  transition(p, v1::phase::kRolledBack, reason::kRolledBack,
             absl::StrCat("rolled back to ", revName, ": ", why), runtime::EventType::kWarning);
  return absl::OkStatus();
}

}  // namespace patchgate::controllers::patch
