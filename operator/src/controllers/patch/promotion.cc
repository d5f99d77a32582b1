// Promotion, verification and rollback: the steps that touch production.
//
// Write-ahead intent: before the first write to production, status.intent
// records the action (Promote or Rollback), the rollback point and the spec
// hashes before and after, and that status is written (persist) before the
// production write is sent. The workload write itself carries the annotation
// patchgate.dev/last-write = "<patch uid>/<action>". A later pass, on this
// replica or another, after a crash, a refused status write or a failover,
// finds the intent and continues it: each write below is idempotent (config
// merge patches, a workload write skipped when production already has the
// expected spec), so nothing is re-decided and nothing is done twice.
// Config goes before the workload in both directions, so new pods start with
// the config that belongs to their template.
#include <algorithm>
#include <map>
#include <random>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/failpoint.h"
#include "controllers/patch/conditions.h"
#include "controllers/patch/pass.h"
#include "controllers/patch/workload.h"
#include "kube/errors.h"

namespace patchgate::controllers::patch {

namespace v1 = api::v1alpha1;
using runtime::Action;

namespace {

constexpr char kActionPromote[] = "Promote";
constexpr char kActionRollback[] = "Rollback";

std::string targetLabel(const v1::PatchSpec& spec) { return spec.target.kind + "." + spec.target.name; }

// Digest of what a ConfigMap holds (or a Secret, salted, marked "s1:": see
// configDigestFor).
constexpr char kSaltedPrefix[] = "s1:";
std::string configDigest(const Json& obj, const std::string& salt = "") {
  Json content = {{"data", obj.value("data", Json::object())}, {"binaryData", obj.value("binaryData", Json::object())}};
  if (salt.empty()) return hashJson(content);
  content["salt"] = salt;
  return kSaltedPrefix + hashJson(content);
}

// A rollback point keeps no Secret content: the Secrets' data go into a
// Secret of their own, "<revision>-secrets", immutable, owned by the
// revision (deleted with it), readable only by those who may read Secrets.
// It also holds a random salt for the digests of Secrets in
// status.promotion.configHashes, so that a digest (which people who may only
// read Patches see) cannot be matched against guessed values offline.
constexpr char kSnapshotType[] = "patchgate.dev/rollback-snapshot";
constexpr char kSaltKey[] = "salt";
std::string snapshotName(const std::string& revision) { return revision + "-secrets"; }
std::string snapshotKey(const std::string& secret) { return secret + ".json"; }

std::string randomSalt() {
  std::random_device rd;
  std::string raw;
  for (int i = 0; i < 4; ++i) absl::StrAppend(&raw, absl::Hex(rd(), absl::kZeroPad8));
  return raw;
}

// A value of the snapshot Secret's data, decoded ("" when absent or bad).
std::string snapshotValue(const Json& snapshot, const std::string& key) {
  std::string out;
  const Json& v = jsonAt(snapshot, "/data");
  if (!v.is_object() || !v.contains(key) || !v[key].is_string() || !absl::Base64Unescape(v[key].get<std::string>(), &out))
    return "";
  return out;
}

// The revision's configs with each Secret's content put back from the
// snapshot (entries of older revisions carry their data inline). A Secret
// whose content is not there (the snapshot is gone, or the Secret was gone
// when it was taken) is marked "missing": restoring it is for a person, and
// it must not block restoring the rest.
Json withSecretContent(const Json& configs, const Json* snapshot) {
  Json out = Json::array();
  for (Json c : configs) {
    if (c.value("kind", "") == "Secret" && c.value("inSnapshot", false)) {
      std::string text = snapshot ? snapshotValue(*snapshot, snapshotKey(c.value("name", ""))) : "";
      auto content = text.empty() ? absl::StatusOr<Json>(absl::NotFoundError("")) : parseJson(text);
      if (!content.ok() || !content->is_object()) {
        c["missing"] = true;
      } else {
        c["data"] = content->value("data", Json::object());
        if (content->contains("binaryData")) c["binaryData"] = (*content)["binaryData"];
      }
    }
    out.push_back(std::move(c));
  }
  return out;
}

// The Secrets of `configs` whose content could not be found, by name.
std::vector<std::string> missingSecrets(const Json& configs) {
  std::vector<std::string> names;
  for (const auto& c : configs)
    if (c.value("missing", false)) names.push_back(c.value("name", ""));
  return names;
}

// Whether `snapshot` belongs to `rev` (a revision re-made under the same
// name must not adopt the snapshot of the one it replaced).
bool ownedBy(const Json& snapshot, const Json& rev) {
  for (const auto& o : jsonAt(snapshot, "/metadata/ownerReferences"))
    if (o.value("uid", "") == jsonString(rev, "/metadata/uid")) return true;
  return false;
}

// A 4xx that retrying cannot fix: the server refused the request itself.
bool refusedForGood(const absl::Status& s) {
  int code = kube::httpCode(s);
  return code >= 400 && code < 500 && code != 404 && code != 408 && code != 409 && code != 429;
}

// The newest manager other than patchgate in a workload's managedFields, with
// its time: who changed production, as far as the API server knows.
std::string lastOtherWriter(const Json& obj) {
  std::string who, at;
  for (const auto& mf : jsonAt(obj, "/metadata/managedFields")) {
    std::string manager = mf.value("manager", ""), time = mf.value("time", "");
    // Status writes (controllers) are not changes to what was promoted.
    if (manager.empty() || manager == "patchgate" || time < at || !mf.value("subresource", "").empty()) continue;
    who = manager;
    at = time;
  }
  return who.empty() ? "" : absl::StrCat(" (last written by ", who, at.empty() ? "" : " at " + at, ")");
}
}  // namespace

absl::Status PatchReconciler::fence() const {
  if (options_.leading && !options_.leading())
    return absl::UnavailableError("this replica is not sure it still leads (lease not renewed in time); "
                                  "leaving production alone");
  return absl::OkStatus();
}

absl::Status PatchReconciler::persist(Pass& p) { return syncStatus(p); }

// Puts back the config the Patch may already have written (from its rollback
// point) and closes the promotion intent: the promotion stops short.
absl::Status PatchReconciler::putConfigBack(Pass& p) {
  auto rev = client_.get(kube::resources::kControllerRevision, p.ns, p.revisionName());
  if (!rev.ok()) return rev.status();
  auto configs = revisionConfigs(p, *rev);
  if (!configs.ok()) return configs.status();
  if (auto s = restoreConfigs(p, *configs, kActionRollback); !s.ok()) return s;
  p.status.intent.reset();
  return absl::OkStatus();
}

// Production changed under the Patch: re-test on the new base, or give up
// after maxRetests.
PatchReconciler::Step PatchReconciler::retestOrGiveUp(Pass& p, const std::string& why) {
  if (p.status.retests.value_or(0) >= p.spec.maxRetests) {
    fail(p, reason::kDriftLimit, absl::StrCat("production changed under the patch ", p.spec.maxRetests + 1,
                                              " times; giving up instead of promoting untested changes"));
    return Action::await();
  }
  if (auto s = resetForRetest(p, why); !s.ok()) return s;
  return Action::requeue(options_.pollInterval);
}

// After a JSON patch of the target got a 422: a failed "test" op (the target
// moved since `read`) or a refusal of the change itself (it did not move).
absl::StatusOr<bool> PatchReconciler::targetMoved(Pass& p, const Json& read) {
  auto again = client_.get(p.targetType, p.ns, p.spec.target.name);
  if (!again.ok()) return again.status();
  return jsonString(*again, "/metadata/resourceVersion") != jsonString(read, "/metadata/resourceVersion");
}

// Puts back the data and binaryData of the ConfigMaps/Secrets stored in a
// revision (data.configs) that this Patch changes (all of them for a
// rollbackTo Patch, which restores a revision's configs), each guarded by the
// resourceVersion just read; one that no longer exists is skipped. Config
// the Patch does not change is left alone: a person's edit to it is theirs.
absl::Status PatchReconciler::restoreConfigs(Pass& p, const Json& configs, const char* action) {
  for (const auto& c : configs) {
    if (c.value("missing", false)) continue;  // no content to restore (missingSecrets)
    const auto& rt = configType(c.value("kind", ""));
    std::string name = c.value("name", "");
    bool changedByUs = p.spec.change.rollbackTo.has_value() ||
                       std::any_of(p.spec.change.config.begin(), p.spec.change.config.end(),
                                   [&](const auto& cc) { return cc.kind == c.value("kind", "") && cc.name == name; });
    if (!changedByUs) continue;
    auto cur = client_.get(rt, p.ns, name);
    if (!cur.ok()) {
      if (kube::isNotFound(cur.status())) continue;
      return cur.status();
    }
    Json want = {{"data", c.value("data", Json::object())}, {"binaryData", c.value("binaryData", Json::object())}};
    if (configDigest(*cur) == configDigest(want)) continue;
    Json ops = Json::array({{{"op", "test"}, {"path", "/metadata/resourceVersion"},
                             {"value", jsonString(*cur, "/metadata/resourceVersion")}},
                            {{"op", "add"}, {"path", "/data"}, {"value", want["data"]}}});
    if (!want["binaryData"].empty())
      ops.push_back({{"op", "add"}, {"path", "/binaryData"}, {"value", want["binaryData"]}});
    else if (cur->contains("binaryData"))
      ops.push_back({{"op", "remove"}, {"path", "/binaryData"}});
    // A production Secret is written only in a request that says which
    // Patch writes it, and why (the operator's admission policy checks it).
    if (c.value("kind", "") == "Secret") {
      std::string mark = absl::StrCat(p.uid, "/", action);
      if (jsonAt(*cur, "/metadata/annotations").is_object())
        ops.push_back({{"op", "add"}, {"path", "/metadata/annotations/patchgate.dev~1last-write"}, {"value", mark}});
      else
        ops.push_back({{"op", "add"}, {"path", "/metadata/annotations"}, {"value", {{v1::kAnnotationLastWrite, mark}}}});
    }
    if (auto s = fence(); !s.ok()) return s;
    auto r = client_.patch(rt, p.ns, name, kube::PatchType::kJson, ops.dump());
    if (!r.ok() && !kube::isNotFound(r.status())) return r.status();  // a conflict is retried with backoff
  }
  return absl::OkStatus();
}

absl::Status PatchReconciler::resetForRetest(Pass& p, const std::string& why) {
  if (auto s = deleteEnvironment(p); !s.ok()) return s;
  int64_t retests = p.status.retests.value_or(0) + 1;
  p.status.retests = retests;
  p.status.retestedAt = timeString(p.now);  // approvals given before this are void
  p.status.environment.reset();
  p.status.tests.clear();
  for (const char* c : {condition::kEnvironmentReady, condition::kTestsPassed, condition::kApproved,
                        condition::kValidated})
    v1::removeCondition(p.status.conditions, c);
  p.afterWrite.push_back([m = metrics_] { m->driftDetected(); });
  transition(p, v1::phase::kProvisioning, reason::kDriftDetected,
             absl::StrCat(why, "; the tests no longer prove anything: re-testing on the new base (retest ",
                          retests, " of ", p.spec.maxRetests, ")"),
             runtime::EventType::kWarning);
  return absl::OkStatus();
}

// The revision's Secret snapshot, made now if missing (a crash between the
// revision and its snapshot, or a revision made before snapshots existed)
// from the Secrets as they are: production is not written before the
// promotion intent, which comes after this.
absl::StatusOr<Json> PatchReconciler::ensureSnapshot(Pass& p, const Json& rev) {
  std::string revName = jsonString(rev, "/metadata/name");
  auto existing = client_.get(kube::resources::kSecret, p.ns, snapshotName(revName));
  if (existing.ok() && !ownedBy(*existing, rev)) {
    // Left by an earlier revision of the same name (its garbage collection
    // has not run yet): not this revision's content. Removed, then made anew.
    auto gone = client_.remove(kube::resources::kSecret, p.ns, snapshotName(revName), {});
    if (!gone.ok() && !kube::isNotFound(gone.status())) return gone.status();
    return absl::UnavailableError(absl::StrCat("removed a stale Secret snapshot ", snapshotName(revName),
                                               "; making it anew"));
  }
  if (existing.ok() || !kube::isNotFound(existing.status())) return existing;
  Json data = {{kSaltKey, absl::Base64Escape(randomSalt())}};
  for (const auto& c : jsonAt(rev, "/data/configs")) {
    if (c.value("kind", "") != "Secret" || !c.value("inSnapshot", false)) continue;
    auto secret = client_.get(kube::resources::kSecret, p.ns, c.value("name", ""));
    if (!secret.ok()) {
      if (kube::isNotFound(secret.status())) continue;  // gone: nothing to restore
      return secret.status();
    }
    Json content = {{"data", secret->value("data", Json::object())}};
    if (secret->contains("binaryData")) content["binaryData"] = (*secret)["binaryData"];
    data[snapshotKey(c.value("name", ""))] = absl::Base64Escape(content.dump());
  }
  Json labels = ownedLabels(p);
  labels[v1::kLabelTarget] = targetLabel(p.spec);
  Json snapshot = {{"apiVersion", "v1"}, {"kind", "Secret"}, {"type", kSnapshotType}, {"immutable", true},
                   {"metadata", {{"name", snapshotName(revName)}, {"namespace", p.ns}, {"labels", labels},
                                 {"ownerReferences", Json::array({{{"apiVersion", "apps/v1"},
                                                                   {"kind", "ControllerRevision"},
                                                                   {"name", revName},
                                                                   {"uid", jsonString(rev, "/metadata/uid")}}})}}},
                   {"data", data}};
  auto created = client_.create(kube::resources::kSecret, p.ns, snapshot);
  if (kube::isAlreadyExists(created.status())) return client_.get(kube::resources::kSecret, p.ns, snapshotName(revName));
  return created;
}

absl::StatusOr<Json> PatchReconciler::revisionConfigs(Pass& p, const Json& rev) {
  const Json& configs = jsonAt(rev, "/data/configs");
  bool anySecret = false;
  for (const auto& c : configs) anySecret = anySecret || c.value("inSnapshot", false);
  if (!anySecret) return configs.is_array() ? configs : Json::array();
  auto snapshot = client_.get(kube::resources::kSecret, p.ns, snapshotName(jsonString(rev, "/metadata/name")));
  if (!snapshot.ok() && !kube::isNotFound(snapshot.status())) return snapshot.status();
  bool usable = snapshot.ok() && ownedBy(*snapshot, rev);
  return withSecretContent(configs, usable ? &*snapshot : nullptr);
}

absl::StatusOr<std::string> PatchReconciler::configDigestFor(Pass& p, const std::string& kind, const Json& obj) {
  if (kind != "Secret") return configDigest(obj);
  if (p.secretSalt.empty()) {
    auto snapshot = client_.get(kube::resources::kSecret, p.ns, snapshotName(p.revisionName()));
    // No snapshot, no salt: "" (the caller cannot compare a salted digest).
    if (!snapshot.ok() && kube::isNotFound(snapshot.status())) return std::string();
    if (!snapshot.ok()) return snapshot.status();
    p.secretSalt = snapshotValue(*snapshot, kSaltKey);
    if (p.secretSalt.empty()) return absl::FailedPreconditionError("the rollback point's Secret snapshot has no salt");
  }
  return configDigest(obj, p.secretSalt);
}

// The rollback point: production's spec (all but replicas) and the data of
// every ConfigMap/Secret the pods use or the Patch changes, stored before
// production is touched. Found again by the Patch's uid label.
absl::StatusOr<Json> PatchReconciler::ensureRevision(Pass& p, const Json& prod) {
  kube::ListOptions lo;
  lo.labelSelector = absl::StrCat(v1::kLabelTarget, "=", targetLabel(p.spec));
  auto revs = client_.list(kube::resources::kControllerRevision, p.ns, lo);
  if (!revs.ok()) return revs.status();
  int64_t highest = 0;
  std::vector<std::pair<int64_t, std::string>> all;
  for (const auto& r : (*revs)["items"]) {
    int64_t n = r.value("revision", int64_t{0});
    highest = std::max(highest, n);
    all.emplace_back(n, jsonString(r, "/metadata/name"));
    const Json& lbl = jsonAt(r, "/metadata/labels");
    if (lbl.is_object() && lbl.value(v1::kLabelPatchUid, "") == p.uid) {
      if (jsonString(r, "/data/specHash") == specHash(prod)) {
        if (auto snap = ensureSnapshot(p, r); !snap.ok()) return snap.status();
        return r;
      }
      // Made for an earlier base (production changed and the Patch was
      // re-tested): it would restore the wrong spec. Made anew below.
      auto gone = client_.remove(kube::resources::kControllerRevision, p.ns, jsonString(r, "/metadata/name"), {});
      if (!gone.ok() && !kube::isNotFound(gone.status())) return gone.status();
      all.pop_back();
    }
  }
  int64_t number = highest + 1;
  Json configs = Json::array();
  References refs = podReferences(podTemplate(prod));
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
    // A Secret's content goes to the snapshot Secret (ensureSnapshot), not here.
    if (kind == "Secret") {
      configs.push_back({{"kind", kind}, {"name", name}, {"inSnapshot", true}});
      continue;
    }
    Json entry = {{"kind", kind}, {"name", name}, {"data", obj->value("data", Json::object())}};
    if (obj->contains("binaryData")) entry["binaryData"] = (*obj)["binaryData"];
    configs.push_back(entry);
  }
  Json spec = prod.value("spec", Json::object());
  spec.erase("replicas");  // scaling is not ours to restore
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
                        {"template", podTemplate(prod)}, {"spec", spec}, {"specHash", specHash(prod)},
                        {"resourceVersion", jsonString(prod, "/metadata/resourceVersion")},
                        {"configs", configs}}}};
  auto created = client_.create(kube::resources::kControllerRevision, p.ns, rev);
  if (!created.ok()) return created.status();  // AlreadyExists: another pass raced us; retried
  failpoint("promote.afterRevision");
  if (auto snap = ensureSnapshot(p, *created); !snap.ok()) return snap.status();
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
  return *created;
}

PatchReconciler::Step PatchReconciler::promote(Pass& p) {
  if (p.status.promotion) return std::nullopt;
  if (p.phase() != v1::phase::kPromoting) transition(p, v1::phase::kPromoting, reason::kPromoting, "promoting");
  auto prod = client_.get(p.targetType, p.ns, p.spec.target.name);
  if (!prod.ok()) {
    if (kube::isNotFound(prod.status())) {
      if (p.status.intent)  // our config may be written already
        if (auto s = putConfigBack(p); !s.ok()) return s;
      fail(p, reason::kTargetVanished, absl::StrCat(p.spec.target.key(), " disappeared before promotion"));
      return Action::await();
    }
    return prod.status();
  }
  const std::string base = p.status.baseHash.value_or(""), expected = p.status.expectedHash.value_or("");
  const std::string mark = absl::StrCat(p.uid, "/", kActionPromote);
  std::string current = specHash(*prod);
  bool ours = jsonString(*prod, "/metadata/annotations/patchgate.dev~1last-write") == mark;

  // 1. Decide, record the rollback point and the intent, and make them durable.
  if (!p.status.intent || p.status.intent->action != kActionPromote) {
    // An operator from before write-ahead intents may have landed the write.
    bool landedEarlier = current == expected && p.status.revision.has_value();
    if (current != base && !landedEarlier)  // drift: not what the tests ran against
      return retestOrGiveUp(p, absl::StrCat(p.spec.target.key(), " was changed since it was copied"));
    // The author may still make this change themself (rights taken away
    // while it was tested or waited end it here, production untouched).
    if (!landedEarlier)
      if (Step r = checkRights(p, Json::object(), Json::array(), /*atPromotion=*/true); !r.ok() || r->has_value())
        return r;
    auto rev = ensureRevision(p, *prod);
    if (!rev.ok()) return rev.status();
    std::string revName = jsonString(*rev, "/metadata/name");
    p.status.revision = v1::RollbackPoint{revName, rev->value("revision", int64_t{0}), revName};
    p.status.intent = v1::Intent{
        .action = kActionPromote, .revision = revName, .at = timeString(p.now), .baseHash = base,
        .expectedHash = expected};
    if (auto s = persist(p); !s.ok()) return s;
    failpoint("promote.afterIntent");
  }
  if (auto s = fence(); !s.ok()) return s;

  // 2. Where production is decides what is left to write; config always goes
  // before the workload, so a landed workload write means config landed too.
  Json source;  // a rollbackTo Patch restores the template and configs of its source revision
  if (p.spec.change.rollbackTo) {
    auto src = client_.get(kube::resources::kControllerRevision, p.ns, p.rollbackSourceName());
    if (!src.ok()) return src.status();
    source = *src;
  }
  int64_t generation = jsonInt(*prod, "/metadata/generation");
  std::map<std::string, std::string> configHashes;
  if (current == expected || ours) {
    // Landed already (an earlier pass died before recording it). If someone
    // changed it since, verification says so (Reverted).
    std::vector<std::pair<std::string, std::string>> names;
    for (const auto& cc : p.spec.change.config) names.emplace_back(cc.kind, cc.name);
    for (const auto& c : jsonAt(source, "/data/configs")) names.emplace_back(c.value("kind", ""), c.value("name", ""));
    for (const auto& [kind, name] : names) {
      auto cfg = client_.get(configType(kind), p.ns, name);
      if (!cfg.ok()) {
        if (kube::isNotFound(cfg.status())) continue;
        return cfg.status();
      }
      auto digest = configDigestFor(p, kind, *cfg);
      if (!digest.ok()) return digest.status();
      if (!digest->empty()) configHashes[absl::StrCat(kind, "/", name)] = *digest;  // "": cannot be checked
    }
  } else if (current == base) {
    for (const auto& cc : p.spec.change.config) {
      auto req = configChange(cc);
      if (!req.ok()) return req.status();
      if (cc.kind == "Secret") {  // a merge patch (fromSecret): stamped like the workload
        auto body = parseJson(req->body);
        if (!body.ok()) return body.status();
        (*body)["metadata"]["annotations"][v1::kAnnotationLastWrite] = mark;
        req->body = body->dump();
      }
      if (auto s = fence(); !s.ok()) return s;
      auto r = client_.patch(configType(cc.kind), p.ns, cc.name, req->type, req->body);
      if (!r.ok()) {
        if (refusedForGood(r.status()) || kube::isNotFound(r.status()))
          return abandonPromotion(p, absl::StrCat("the API server refused the change to ", cc.kind, " ", cc.name,
                                                  ": ", r.status().message()));
        return r.status();
      }
      auto digest = configDigestFor(p, cc.kind, *r);
      if (!digest.ok()) return digest.status();
      if (!digest->empty()) configHashes[absl::StrCat(cc.kind, "/", cc.name)] = *digest;
    }
    if (p.spec.change.rollbackTo) {
      auto configs = revisionConfigs(p, source);
      if (!configs.ok()) return configs.status();
      if (auto missing = missingSecrets(*configs); !missing.empty())
        return abandonPromotion(p, absl::StrCat("revision ", p.rollbackSourceName(), " cannot restore Secret(s) ",
                                                absl::StrJoin(missing, ", "), ": their snapshot is gone"));
      if (auto s = restoreConfigs(p, *configs, kActionPromote); !s.ok()) return s;
      for (const auto& c : *configs) {
        auto digest = configDigestFor(p, c.value("kind", ""), c);
        if (!digest.ok()) return digest.status();
        if (!digest->empty()) configHashes[absl::StrCat(c.value("kind", ""), "/", c.value("name", ""))] = *digest;
      }
    }
    if (!p.spec.change.config.empty() || p.spec.change.rollbackTo) failpoint("promote.afterConfig");

    // 3. The workload: the tested change on the exact base that was tested.
    const Json* revTemplate = p.spec.change.rollbackTo ? &jsonAt(source, "/data/template") : nullptr;
    auto change = workloadChange(p.spec, *prod, revTemplate, /*precondition=*/true, mark);
    if (!change.ok()) return change.status();
    if (auto s = fence(); !s.ok()) return s;
    auto applied = client_.patch(p.targetType, p.ns, p.spec.target.name, change->type, change->body);
    if (!applied.ok()) {
      // A conflict means production changed between our read and our write:
      // the error is retried with backoff and the next pass sees what changed.
      bool raced = kube::isConflict(applied.status());
      if (!raced && change->type == kube::PatchType::kJson && kube::isInvalid(applied.status())) {
        auto moved = targetMoved(p, *prod);
        if (!moved.ok()) return moved.status();
        raced = *moved;
      }
      if (!raced && refusedForGood(applied.status()))
        return abandonPromotion(p, absl::StrCat("the API server refused the change to ", p.spec.target.key(), ": ",
                                                applied.status().message()));
      if (raced)
        recorder_.event(p.patch, runtime::EventType::kWarning, reason::kPromotionConflict, "Promote",
                        "production changed while promoting; checking again");
      return applied.status();
    }
    generation = jsonInt(*applied, "/metadata/generation");
    failpoint("promote.afterWorkload");
  } else {
    // Someone changed production after the intent was recorded and before our
    // write: put back the config we may have written and re-test on the new base.
    if (auto s = putConfigBack(p); !s.ok()) return s;
    return retestOrGiveUp(p, absl::StrCat(p.spec.target.key(), " was changed while promoting"));
  }

  p.status.intent.reset();
  p.status.promotion = v1::Promotion{
      .promotedAt = timeString(p.now), .generation = generation, .configHashes = std::move(configHashes)};
  setCondition(p, condition::kPromoted, true, reason::kPromoted,
               absl::StrCat("applied to ", p.spec.target.key(), " (generation ", generation, "); rollback point ",
                            p.revisionName()));
  transition(p, v1::phase::kVerifying, reason::kPromoted,
             absl::StrCat("promoted to production; verifying the rollout (up to ", p.spec.verificationTimeoutSeconds,
                          "s, then ", p.spec.bakeSeconds, "s of bake)"));
  return Action::requeue(options_.pollInterval);
}

// The workload write was refused for good after config was changed: config
// goes back to the rollback point and the Patch fails with the server's words.
PatchReconciler::Step PatchReconciler::abandonPromotion(Pass& p, const std::string& why) {
  if (auto s = putConfigBack(p); !s.ok()) return s;
  fail(p, reason::kChangeRejected, absl::StrCat(why, "; production left as it was"));
  return Action::await();
}

PatchReconciler::Step PatchReconciler::verify(Pass& p) {
  if (v1::isConditionTrue(p.status.conditions, condition::kVerified)) return std::nullopt;
  // promote() records the promotion before verification starts.
  if (!p.status.promotion) return absl::InternalError("verifying without a promotion record in status");
  auto prod = client_.get(p.targetType, p.ns, p.spec.target.name);
  if (!prod.ok()) {
    if (kube::isNotFound(prod.status())) {
      fail(p, reason::kTargetVanished, absl::StrCat(p.spec.target.key(), " disappeared during verification"));
      return Action::await();
    }
    return prod.status();
  }
  // Production must still be what was promoted, config included.
  std::string reverted;
  v1::Promotion& promo = *p.status.promotion;
  if (specHash(*prod) != p.status.expectedHash.value_or("")) {
    reverted = absl::StrCat(p.spec.target.key(), " no longer has the promoted spec", lastOtherWriter(*prod));
  } else {
    for (const auto& [key, digest] : promo.configHashes) {
      auto slash = key.find('/');
      auto cfg = client_.get(configType(key.substr(0, slash)), p.ns, key.substr(slash + 1));
      if (!cfg.ok() && !kube::isNotFound(cfg.status())) return cfg.status();
      // A digest recorded by an operator before snapshots is unsalted.
      bool salted = digest.starts_with(kSaltedPrefix);
      absl::StatusOr<std::string> now =
          !cfg.ok() ? std::string() : salted ? configDigestFor(p, key.substr(0, slash), *cfg) : configDigest(*cfg);
      if (!now.ok()) return now.status();
      if (cfg.ok() && now->empty()) {  // the snapshot (and its salt) is gone: this Secret cannot be compared
        p.ctx.log.warn("cannot check a Secret for reverts: its rollback point's snapshot is gone", {{"config", key}});
        continue;
      }
      if (!cfg.ok() || *now != digest) {
        reverted = absl::StrCat(key, " no longer has the promoted data",
                                cfg.ok() ? lastOtherWriter(*cfg) : std::string(" (deleted)"));
        break;
      }
    }
  }
  if (!reverted.empty()) {
    std::string msg = absl::StrCat("production was changed by someone else during verification: ", reverted,
                                   "; the patch is not what runs, so it is not verified (nothing rolled back)");
    setCondition(p, condition::kVerified, false, reason::kReverted, msg);
    p.afterWrite.push_back([m = metrics_] { m->reverted(); });
    fail(p, reason::kReverted, msg);
    return Action::await();
  }

  Health h = workloadHealth(*prod, promo.generation);
  double elapsed = secondsSince(promo.promotedAt, p.now);
  bool everHealthy = promo.firstHealthyAt.has_value();
  double deadline = static_cast<double>(p.spec.verificationTimeoutSeconds) +
                    (everHealthy ? static_cast<double>(p.spec.bakeSeconds) : 0.0);
  PodTrouble trouble;
  bool timedOut = h.failed || elapsed > deadline;
  if (h.healthy || everHealthy || timedOut) {
    auto selector = workloadSelector(*prod);
    if (!selector.ok()) return selector.status();
    kube::ListOptions lo;
    lo.labelSelector = *selector;
    auto pods = client_.list(kube::resources::kPod, p.ns, lo);
    if (!pods.ok()) return pods.status();
    trouble = podTrouble(*pods);
  }
  auto failVerification = [&](const std::string& cause, const std::string& why) -> Step {
    setCondition(p, condition::kVerified, false, reason::kVerificationFailed, why);
    if (!p.spec.automaticRollback) {
      fail(p, reason::kVerificationFailed, why + " (automatic rollback is off; production keeps the patch)");
      return Action::await();
    }
    return rollback(p, cause, why);
  };
  int64_t more = 0;
  if (everHealthy) more = trouble.restartsSince(promo.restartsAtHealthy.value_or(decltype(trouble.byPod){}));
  if (more > 0) {
    return failVerification("Unhealthy", absl::StrCat("containers restarted during the bake (", more, " restart(s))",
                                                      trouble.problem.empty() ? "" : ": " + trouble.problem));
  }
  if (h.healthy) {
    if (!promo.healthyAt) {
      promo.healthyAt = timeString(p.now);
      if (!everHealthy) {
        promo.firstHealthyAt = timeString(p.now);
        promo.restartsAtHealthy = trouble.byPod;
      }
    }
    double baked = secondsSince(*promo.healthyAt, p.now);
    if (baked >= static_cast<double>(p.spec.bakeSeconds)) {
      promo.verifiedAt = timeString(p.now);
      setCondition(p, condition::kVerified, true, reason::kVerified,
                   absl::StrCat(h.message, "; healthy and unchanged for ", p.spec.bakeSeconds, "s"));
      p.status.finishedAt = timeString(p.now);
      double lead = secondsSince(p.status.startedAt.value_or(""), p.now);
      p.afterWrite.push_back([m = metrics_, lead] { m->promoted(lead); });
      transition(p, v1::phase::kSucceeded, reason::kSucceeded,
                 absl::StrCat("production is healthy with the patch: ", h.message, "; rollback point ",
                              p.revisionName()));
      return std::nullopt;
    }
    std::string msg = absl::StrCat(h.message, "; baking: ", static_cast<int64_t>(baked), " of ", p.spec.bakeSeconds,
                                   "s healthy");
    setCondition(p, condition::kVerified, false, reason::kBaking, msg);
    p.status.message = absl::StrCat("verifying production: ", msg);
    auto left = std::chrono::duration<double>(static_cast<double>(p.spec.bakeSeconds) - baked + 0.1);
    return Action::requeue(std::min<Clock::Duration>(options_.pollInterval,
                                                     std::chrono::duration_cast<Clock::Duration>(left)));
  }
  promo.healthyAt.reset();  // not ready any more: the bake starts over
  if (timedOut) {
    std::string why = h.failed ? h.message
                               : absl::StrCat("not healthy within ", static_cast<int64_t>(deadline), "s: ", h.message);
    if (!trouble.problem.empty()) absl::StrAppend(&why, "; ", trouble.problem);
    return failVerification(h.failed ? "ProgressDeadlineExceeded" : "VerificationTimeout", why);
  }
  setCondition(p, condition::kVerified, false, reason::kVerifying, h.message);
  p.status.message = absl::StrCat("verifying production: ", h.message, everHealthy ? " (bake starts over)" : "");
  return Action::requeue(options_.pollInterval);
}

// Restores the rollback point: config first, then the whole workload spec
// but replicas (strategy, template and its metadata, everything a Patch could
// change), each guarded by the resourceVersion just read. Written as an
// intent first; then the Patch waits in RollingBack until the restored
// workload is healthy (RolledBack) or is not in time (Failed/RollbackFailed).
PatchReconciler::Step PatchReconciler::rollback(Pass& p, const std::string& cause, const std::string& why) {
  if (!p.status.intent || p.status.intent->action != kActionRollback) {
    p.status.intent = v1::Intent{
        .action = kActionRollback, .revision = p.revisionName(), .at = timeString(p.now), .cause = cause,
        .reason = why};
    transition(p, v1::phase::kRollingBack, reason::kRollingBack,
               absl::StrCat("rolling back to ", p.revisionName(), ": ", why),
               runtime::EventType::kWarning);
    if (auto s = persist(p); !s.ok()) return s;
    failpoint("rollback.afterIntent");
  }
  if (auto s = fence(); !s.ok()) return s;
  std::string revName = p.status.intent->revision;
  auto rev = client_.get(kube::resources::kControllerRevision, p.ns, revName);
  if (!rev.ok()) {
    if (!kube::isNotFound(rev.status()) && !refusedForGood(rev.status())) return rev.status();
    return rollbackFailed(p, absl::StrCat("cannot roll back: rollback point ", revName, " is unreadable (",
                                          rev.status().message(), "); production keeps the patch and needs a person"));
  }
  std::vector<std::string> missing;  // Secrets whose content is gone: restored by a person
  absl::Status restored = absl::OkStatus();
  if (auto configs = revisionConfigs(p, *rev); !configs.ok()) {
    restored = configs.status();
  } else {
    missing = missingSecrets(*configs);
    restored = restoreConfigs(p, *configs, kActionRollback);
  }
  if (auto s = restored; !s.ok()) {
    if (!refusedForGood(s)) return s;
    return rollbackFailed(p, absl::StrCat("cannot restore config: ", s.message(), "; production needs a person"));
  }
  failpoint("rollback.afterConfig");
  auto prod = client_.get(p.targetType, p.ns, p.spec.target.name);
  if (!prod.ok() && !kube::isNotFound(prod.status())) return prod.status();
  int64_t generation = 0;
  if (prod.ok()) {
    generation = jsonInt(*prod, "/metadata/generation");
    // Revisions written before the whole spec was stored hold the template only.
    Json spec = rev->value("data", Json::object()).value("spec", Json());
    if (!spec.is_object()) {
      spec = prod->value("spec", Json::object());
      spec["template"] = jsonAt(*rev, "/data/template");
    }
    if (prod->value("spec", Json::object()).contains("replicas")) spec["replicas"] = (*prod)["spec"]["replicas"];
    Json cur = prod->value("spec", Json::object());
    if (specHash({{"spec", cur}}) != specHash({{"spec", spec}})) {
      Json ops = Json::array({{{"op", "test"}, {"path", "/metadata/resourceVersion"},
                               {"value", jsonString(*prod, "/metadata/resourceVersion")}},
                              {{"op", "replace"}, {"path", "/spec"}, {"value", spec}}});
      addAnnotationOp(ops, *prod, "/metadata/annotations", v1::kAnnotationLastWrite,
                      absl::StrCat(p.uid, "/", kActionRollback));
      if (auto s = fence(); !s.ok()) return s;
      auto r = client_.patch(p.targetType, p.ns, p.spec.target.name, kube::PatchType::kJson, ops.dump());
      if (!r.ok() && !kube::isNotFound(r.status())) {
        if (kube::isInvalid(r.status())) {  // a failed "test" op (production moved) or a refused spec
          auto moved = targetMoved(p, *prod);
          if (!moved.ok()) return moved.status();
          if (!*moved)
            return rollbackFailed(p, absl::StrCat("the API server refused the restored spec of ", p.spec.target.key(),
                                                  ": ", r.status().message(), "; production needs a person"));
        }
        return r.status();  // a conflict: read again, with backoff
      }
      if (r.ok()) generation = jsonInt(*r, "/metadata/generation");
      failpoint("rollback.afterWorkload");
    }
  }
  v1::Intent intent = *std::exchange(p.status.intent, std::nullopt);
  p.status.rollback = v1::RollbackRecord{.at = timeString(p.now), .reason = intent.reason.value_or(""),
                                         .cause = intent.cause.value_or(""), .revision = revName,
                                         .generation = generation};
  if (!missing.empty()) {
    return rollbackFailed(p, absl::StrCat("restored ", p.spec.target.key(), " and its other config to ", revName,
                                          ", but not Secret(s) ", absl::StrJoin(missing, ", "),
                                          ": the rollback point's Secret snapshot ", snapshotName(revName),
                                          " is gone; a person must restore them"));
  }
  setCondition(p, condition::kRolledBack, false, reason::kRollingBack,
               absl::StrCat("restored ", p.spec.target.key(), " and its config to ", revName,
                            "; waiting for it to be healthy"));
  if (!prod.ok()) {  // nothing left to verify
    return finishRollback(p, absl::StrCat(p.spec.target.key(), " no longer exists"));
  }
  return Action::requeue(options_.pollInterval);
}

// Terminal: the rollback could not be written or did not become healthy.
PatchReconciler::Step PatchReconciler::rollbackFailed(Pass& p, const std::string& msg) {
  p.status.intent.reset();
  setCondition(p, condition::kRolledBack, false, reason::kRollbackFailed, msg);
  p.afterWrite.push_back([m = metrics_] { m->rollbackFailed(); });
  if (!p.status.finishedAt) p.status.finishedAt = timeString(p.now);
  setCondition(p, condition::kReady, false, reason::kRollbackFailed, msg);
  transition(p, v1::phase::kFailed, reason::kRollbackFailed, msg, runtime::EventType::kWarning);
  return Action::await();
}

PatchReconciler::Step PatchReconciler::finishRollback(Pass& p, const std::string& health) {
  // rollback() recorded it (an empty one only for a status from elsewhere).
  v1::RollbackRecord& record = p.status.rollback ? *p.status.rollback : p.status.rollback.emplace();
  const std::string revName = record.revision, why = record.reason, cause = record.cause;
  double restore = secondsSince(p.promotedAt(), p.now);
  record.verifiedAt = timeString(p.now);
  p.status.finishedAt = timeString(p.now);
  p.afterWrite.push_back([m = metrics_, cause, restore] { m->rolledBack(cause, restore); });
  setCondition(p, condition::kRolledBack, true, reason::kRolledBack,
               absl::StrCat("restored ", p.spec.target.key(), " and its config to ", revName, ": ", health));
  setCondition(p, condition::kReady, false, reason::kRolledBack, why);
  transition(p, v1::phase::kRolledBack, reason::kRolledBack, absl::StrCat("rolled back to ", revName, ": ", why),
             runtime::EventType::kWarning);
  return Action::await();
}

// RollingBack: the restore is written; RolledBack once the restored workload
// is healthy, RollbackFailed when it is not within the verification timeout.
PatchReconciler::Step PatchReconciler::verifyRollback(Pass& p) {
  if (p.status.intent && p.status.intent->action == kActionRollback)  // the restore itself is not done yet
    return rollback(p, p.status.intent->cause.value_or(""), p.status.intent->reason.value_or(""));
  auto prod = client_.get(p.targetType, p.ns, p.spec.target.name);
  if (!prod.ok()) {
    if (kube::isNotFound(prod.status())) return finishRollback(p, absl::StrCat(p.spec.target.key(), " no longer exists"));
    return prod.status();
  }
  const v1::RollbackRecord record = p.status.rollback.value_or(v1::RollbackRecord{});
  Health h = workloadHealth(*prod, record.generation);
  if (h.healthy) return finishRollback(p, h.message);
  double waited = secondsSince(record.at, p.now);
  if (h.failed || waited > static_cast<double>(p.spec.verificationTimeoutSeconds)) {
    return rollbackFailed(p, absl::StrCat("rolled back to ", record.revision,
                                          " but the restored workload is not healthy", h.failed ? ": " : " within ",
                                          h.failed ? "" : absl::StrCat(p.spec.verificationTimeoutSeconds, "s: "),
                                          h.message, "; production needs a person"));
  }
  p.status.message = absl::StrCat("rolling back to ", record.revision, ": ", h.message);
  return Action::requeue(options_.pollInterval);
}

}  // namespace patchgate::controllers::patch
