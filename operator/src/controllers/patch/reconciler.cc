#include "controllers/patch/reconciler.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_join.h"
#include "absl/time/time.h"

#include "absl/strings/str_cat.h"
#include "controllers/patch/conditions.h"
#include "controllers/patch/pass.h"
#include "controllers/patch/workload.h"
#include "kube/errors.h"
#include "runtime/finalizer.h"

namespace patchgate::controllers::patch {

namespace v1 = api::v1alpha1;
using runtime::Action;

std::vector<std::string> targetIndex(const Json& patch) {
  std::string kind = jsonString(patch, "/spec/target/kind");
  std::string name = jsonString(patch, "/spec/target/name");
  if (kind.empty() || name.empty()) return {};
  return {absl::StrCat(jsonString(patch, "/metadata/namespace"), "/", kind, "/", name)};
}

std::string specHash(const Json& workload) {
  Json spec = workload.value("spec", Json::object());
  spec.erase("replicas");  // scaling (by people or an HPA) is not drift
  return hashJson(spec);
}

std::string environmentNamespaceName(const std::string& patchName, const std::string& uid,
                                     int64_t retests) {
  std::string base = patchName.substr(0, 40);
  while (!base.empty() && base.back() == '-') base.pop_back();
  return absl::StrCat("pg-", base, "-", hashJson(Json(uid + "/" + std::to_string(retests))).substr(0, 6));
}

Json ownedLabels(const PatchReconciler::Pass& p) {
  return {{v1::kLabelManagedBy, v1::kManagedByValue},
          {v1::kLabelPatch, p.name.substr(0, 63)},
          {v1::kLabelPatchNamespace, p.ns},
          {v1::kLabelPatchUid, p.uid}};
}

PatchReconciler::PatchReconciler(kube::Client& client, const runtime::Store& patches,
                                 runtime::EventRecorder& recorder, Clock& clock,
                                 PatchMetrics* metrics, PatchReconcilerOptions options)
    : client_(client), patches_(patches), recorder_(recorder), clock_(clock),
      metrics_(metrics ? metrics : &defaultMetrics_), options_(options) {}

PatchReconciler::~PatchReconciler() = default;

void PatchReconciler::setCondition(Pass& p, const std::string& type, bool status,
                                   const std::string& reason, const std::string& message) {
  v1::Condition c{type, status ? "True" : "False", reason, message};
  if (p.generation > 0) c.observedGeneration = p.generation;
  v1::setCondition(p.status.conditions, std::move(c), timeString(p.now));
}

void PatchReconciler::transition(Pass& p, const std::string& phase, const std::string& reason,
                                 const std::string& message, runtime::EventType type) {
  std::string from = p.phase();
  p.status.message = message;
  if (from == phase) return;
  p.status.phase = phase;
  auto& history = p.status.history;
  double inFrom = history.empty() ? 0 : secondsSince(history.back().at, p.now);
  history.push_back({timeString(p.now), phase, reason, "patchgate", message});
  while (history.size() > static_cast<size_t>(options_.historyLimit)) history.erase(history.begin());
  // Told once the status recording it is written (syncStatus).
  p.afterWrite.push_back([this, &p, type, reason, phase, message, from, inFrom] {
    recorder_.event(p.patch, type, reason, phase, message);
    metrics_->transition(from, phase, inFrom);
    p.ctx.log.info("patch phase changed", {{"from", from}, {"to", phase}, {"reason", reason},
                                           {"message", message}});
  });
}

void PatchReconciler::warnOnce(Pass& p, const char* type, const char* reason, const char* action,
                               std::string message) {
  const v1::Condition* was = v1::findCondition(p.status.conditions, type);
  if (was && was->reason == reason) return;
  p.afterWrite.push_back([this, &p, reason, action, message = std::move(message)] {
    recorder_.event(p.patch, runtime::EventType::kWarning, reason, action, message);
  });
}

void PatchReconciler::flushAfterWrite(Pass& p) {
  auto pending = std::move(p.afterWrite);
  p.afterWrite.clear();
  for (auto& f : pending) f();
}

void PatchReconciler::fail(Pass& p, const std::string& reason, const std::string& message) {
  if (!p.status.finishedAt) p.status.finishedAt = timeString(p.now);
  setCondition(p, condition::kReady, false, reason, message);
  transition(p, v1::phase::kFailed, reason, message, runtime::EventType::kWarning);
}

absl::Status PatchReconciler::syncStatus(Pass& p) {
  std::string phase = p.phase();
  bool terminal = v1::phase::isTerminal(phase);
  p.status.observedGeneration = p.generation;
  const std::string message = p.status.message.value_or("");
  // kstatus: Reconciling while work is in progress; Stalled when it ended
  // badly and only a person can help; Ready when it ended well.
  setCondition(p, condition::kReconciling, !terminal, terminal ? "Finished" : phase, terminal ? "" : message);
  bool stalled = phase == v1::phase::kFailed || phase == v1::phase::kRolledBack;
  setCondition(p, condition::kStalled, stalled, stalled ? phase : "NotStalled", stalled ? message : "");
  if (phase == v1::phase::kSucceeded) {
    setCondition(p, condition::kReady, true, reason::kSucceeded, message);
  } else if (!terminal) {
    setCondition(p, condition::kReady, false, phase, message);
  } else if (phase == v1::phase::kRolledBack) {
    setCondition(p, condition::kReady, false, reason::kRolledBack, message);
  }
  // The mapping round-trips what it wrote, so an unchanged pass compares equal.
  Json status = v1::toJson(p.status);
  if (p.patch.value("status", Json()) == status) {
    flushAfterWrite(p);
    return absl::OkStatus();
  }
  // Written against the snapshot's resourceVersion: if the object changed
  // since, this status was derived from stale data and must not overwrite
  // newer progress. The conflict requeues; the next pass sees fresh data.
  Json obj = p.patch;
  obj["status"] = std::move(status);
  auto written = client_.updateStatus(kube::resources::kPatch, p.ns, obj);
  if (!written.ok()) {
    p.afterWrite.clear();  // not recorded: the next pass decides again
    return written.status();
  }
  rememberWrite(kube::makeKey(p.ns, p.name), jsonString(*written, "/metadata/resourceVersion"));
  p.patch = *written;
  flushAfterWrite(p);
  return absl::OkStatus();
}

namespace {
// resourceVersions are opaque, but etcd-backed servers issue increasing
// integers; when one is not a number the check is simply skipped.
bool parseVersion(const std::string& rv, uint64_t& out) {
  if (rv.empty() || rv.size() > 19) return false;
  out = 0;
  for (char c : rv) {
    if (c < '0' || c > '9') return false;
    out = out * 10 + static_cast<uint64_t>(c - '0');
  }
  return true;
}
}  // namespace

bool PatchReconciler::staleSnapshot(const std::string& key, const std::string& rv) {
  uint64_t v = 0;
  if (!parseVersion(rv, v)) return false;
  std::lock_guard lock(writesMu_);
  auto it = lastWritten_.find(key);
  return it != lastWritten_.end() && v < it->second;
}

void PatchReconciler::rememberWrite(const std::string& key, const std::string& rv) {
  uint64_t v = 0;
  if (!parseVersion(rv, v)) return;
  std::lock_guard lock(writesMu_);
  lastWritten_[key] = v;
}

absl::StatusOr<Action> PatchReconciler::reconcile(const runtime::Object& obj,
                                                  runtime::ReconcileContext& ctx) {
  // The JSON library reports type mismatches by exception; one in a step is a
  // bug or an object shaped as we did not expect: an error for this Patch,
  // retried with backoff, never a crashed worker.
  try {
    return reconcileOnce(obj, ctx);
  } catch (const Json::exception& e) {
    ctx.log.error("unexpected object shape", {{"error", e.what()}});
    return absl::InternalError(absl::StrCat("unexpected object shape: ", e.what()));
  }
}

absl::StatusOr<Action> PatchReconciler::reconcileOnce(const runtime::Object& obj,
                                                      runtime::ReconcileContext& ctx) {
  std::string key = kube::objectKey(*obj);
  if (staleSnapshot(key, jsonString(*obj, "/metadata/resourceVersion"))) {
    ctx.log.debug("cache behind our last write; waiting for it");
    return Action::retryWithBackoff();  // our write's watch event usually comes first
  }
  Json stored = obj->value("status", Json::object());
  if (!stored.is_object()) stored = Json::object();
  auto status = v1::parsePatchStatus(stored);
  if (!status.ok()) {
    // Written by hand or by something else: acting on a guess could repeat
    // or skip a write to production, and writing it back would lose what
    // it holds. An error for this Patch, retried with backoff, until a
    // person fixes the status.
    ctx.log.error("unexpected status shape", {{"error", std::string(status.status().message())}});
    return absl::InternalError(absl::StrCat("unexpected status shape: ", status.status().message()));
  }
  Pass p{*obj, ctx};
  p.ns = jsonString(*obj, "/metadata/namespace");
  p.name = jsonString(*obj, "/metadata/name");
  p.uid = jsonString(*obj, "/metadata/uid");
  p.generation = jsonInt(*obj, "/metadata/generation", 1);
  p.status = std::move(*status);
  p.now = clock_.now();
  if (p.phase().empty()) {
    p.status.startedAt = timeString(p.now);
    transition(p, v1::phase::kPending, "Created", "patch received");
  }
  // The pass that puts the finalizer on ends there: its status would be
  // written against the snapshot the finalizer write just outdated (a certain
  // 409). The watch event of that write brings the next pass.
  const bool addingFinalizer = !runtime::isDeleting(*obj) && !runtime::hasFinalizer(*obj, v1::kFinalizer);
  auto action = runtime::withFinalizer(
      client_, kube::resources::kPatch, *obj, v1::kFinalizer,
      [&](runtime::FinalizerEvent ev) -> absl::StatusOr<Action> {
        return ev == runtime::FinalizerEvent::kCleanup ? cleanup(p) : apply(p);
      });
  if (runtime::isDeleting(*obj)) {  // the object is going away: forget it
    flushAfterWrite(p);
    std::lock_guard lock(writesMu_);
    lastWritten_.erase(key);
    return action;
  }
  if (addingFinalizer && action.ok()) return action;
  // Even when a step failed, what it learned (a condition, a phase) is kept.
  absl::Status written = syncStatus(p);
  if (!action.ok()) return action;
  if (!written.ok()) {
    if (kube::isNotFound(written)) return Action::await();
    if (kube::isConflict(written)) return Action::retryWithBackoff();
    return written;
  }
  return action;
}

absl::StatusOr<Action> PatchReconciler::apply(Pass& p) {
  // A Patch that failed before anything was built (bad spec, missing target)
  // may be fixed in place; the CRD allows that edit. Start it over.
  if (p.phase() == v1::phase::kFailed && !p.status.environment &&
      p.status.observedGeneration.value_or(0) < p.generation) {
    v1::PatchStatus fresh;
    fresh.history = std::move(p.status.history);
    fresh.startedAt = timeString(p.now);
    p.status = std::move(fresh);
    transition(p, v1::phase::kPending, "SpecChanged", "spec changed after it failed; starting over");
  }
  auto spec = v1::parseSpec(p.patch);
  if (!spec.ok()) {
    setCondition(p, condition::kValidated, false, reason::kInvalidSpec, std::string(spec.status().message()));
    if (p.phase() != v1::phase::kFailed)
      fail(p, reason::kInvalidSpec, absl::StrCat("invalid spec: ", spec.status().message()));
    return Action::await();  // terminal: wait for the spec to change
  }
  p.spec = std::move(*spec);
  auto rt = kube::resources::forKind(p.spec.target.apiVersion, p.spec.target.kind);
  if (!rt.ok()) {
    fail(p, reason::kInvalidSpec, std::string(rt.status().message()));
    return Action::await();
  }
  p.targetType = *rt;
  if (!v1::phase::isTerminal(p.phase())) {
    Step r = resolveSecretSources(p);
    if (!r.ok()) return r.status();
    if (r->has_value()) return **r;
  }
  // Policies raise what the spec asks (approvals, limits, lifetimes); they
  // are read on every pass, so a freeze declared now holds a waiting Patch.
  // Once production may have been written, or the Patch ended, they decide
  // nothing that may hold it: a broken policy must never stall a rollback or
  // a cleanup.
  const bool committed = p.status.intent || p.status.promotion || p.phase() == v1::phase::kPromoting ||
                         p.phase() == v1::phase::kVerifying || p.phase() == v1::phase::kRollingBack ||
                         v1::phase::isTerminal(p.phase());
  if (!v1::phase::isTerminal(p.phase()) || (p.status.environment && !p.status.environment->deletedAt)) {
    Step r = applyPolicies(p, /*lenient=*/committed);
    if (!r.ok()) return r.status();
    if (r->has_value()) return **r;
  }

  if (v1::phase::isTerminal(p.phase())) {
    auto r = finished(p);
    if (!r.ok()) return r.status();
    return r->value_or(Action::await());
  }
  // Cancellation: before promotion the Patch just stops; after it, production
  // goes back to the rollback point.
  if (p.phase() == v1::phase::kRollingBack) {
    Step r = verifyRollback(p);
    if (!r.ok()) return r.status();
    return r->value_or(Action::await());
  }
  if (jsonAt(p.patch, "/spec/cancel") == true) {
    if (p.status.promotion || p.status.intent) {
      Step r = rollback(p, "Cancelled", "cancelled by a user during promotion or verification");
      if (!r.ok()) return r.status();
      return r->value_or(Action::await());
    } else {
      fail(p, reason::kCancelled, "cancelled by a user before promotion; production untouched");
    }
    auto r = finished(p);
    if (!r.ok()) return r.status();
    return r->value_or(Action::await());
  }

  for (Step (PatchReconciler::*step)(Pass&) :
       {&PatchReconciler::validate, &PatchReconciler::queue, &PatchReconciler::provision,
        &PatchReconciler::runTests, &PatchReconciler::approve, &PatchReconciler::promote,
        &PatchReconciler::verify}) {
    Step r = (this->*step)(p);
    if (!r.ok()) return r.status();
    if (r->has_value()) return **r;
    if (v1::phase::isTerminal(p.phase())) break;
  }
  auto r = finished(p);
  if (!r.ok()) return r.status();
  return r->value_or(Action::await());
}

// ---- validate ---------------------------------------------------------------

PatchReconciler::Step PatchReconciler::validate(Pass& p) {
  const v1::Condition* cond = v1::findCondition(p.status.conditions, condition::kValidated);
  if (cond && cond->status == "True" && cond->observedGeneration.value_or(0) == p.generation) {
    return std::nullopt;
  }
  p.ctx.log.debug("validating",
                  {{"condition", cond ? v1::toJson(*cond) : Json()}, {"generation", p.generation}});
  auto target = client_.get(p.targetType, p.ns, p.spec.target.name);
  if (!target.ok()) {
    if (kube::isNotFound(target.status())) {
      std::string msg = absl::StrCat(p.spec.target.kind, " ", p.ns, "/", p.spec.target.name, " not found");
      setCondition(p, condition::kValidated, false, reason::kTargetNotFound, msg);
      fail(p, reason::kTargetNotFound, msg);
      return Action::await();
    }
    return target.status();
  }
  Json revisionTemplate;
  Json restoredConfigs = Json::array();  // a rollbackTo restores these too
  if (p.spec.change.rollbackTo) {
    kube::ListOptions lo;
    lo.labelSelector = absl::StrCat(v1::kLabelTarget, "=", p.spec.target.kind, ".", p.spec.target.name);
    auto revs = client_.list(kube::resources::kControllerRevision, p.ns, lo);
    if (!revs.ok()) return revs.status();
    for (const auto& r : (*revs)["items"]) {
      if (r.value("revision", int64_t{0}) == *p.spec.change.rollbackTo) {
        revisionTemplate = jsonAt(r, "/data/template");
        if (jsonAt(r, "/data/configs").is_array()) restoredConfigs = jsonAt(r, "/data/configs");
        p.status.rollbackSource =
            v1::RollbackSource{jsonString(r, "/metadata/name"), *p.spec.change.rollbackTo};
      }
    }
    if (revisionTemplate.is_null()) {
      std::string msg = absl::StrCat("revision ", *p.spec.change.rollbackTo, " of ", p.spec.target.key(),
                                     " not found (see `patchctl history ", p.spec.target.key(), "`)");
      setCondition(p, condition::kValidated, false, reason::kRevisionNotFound, msg);
      fail(p, reason::kRevisionNotFound, msg);
      return Action::await();
    }
  }
  auto change = workloadChange(p.spec, *target, revisionTemplate.is_null() ? nullptr : &revisionTemplate,
                               false);
  if (!change.ok()) {
    setCondition(p, condition::kValidated, false, reason::kChangeRejected, std::string(change.status().message()));
    fail(p, reason::kChangeRejected, std::string(change.status().message()));
    return Action::await();
  }
  kube::PatchOptions dry;
  dry.dryRun = true;
  auto result = client_.patch(p.targetType, p.ns, p.spec.target.name, change->type, change->body, dry);
  if (!result.ok()) {
    if (kube::isInvalid(result.status()) || kube::isConflict(result.status()) ||
        kube::httpCode(result.status()) == 415) {
      std::string msg = absl::StrCat("the API server refused the change: ", result.status().message());
      setCondition(p, condition::kValidated, false, reason::kChangeRejected, msg);
      fail(p, reason::kChangeRejected, msg);
      return Action::await();
    }
    return result.status();
  }
  if (std::string why = hostAccess(*result); !why.empty()) {
    std::string msg = absl::StrCat(p.spec.target.key(), " cannot be copied into a test environment: ", why,
                                   "; a test copy with host access could reach production through the node");
    setCondition(p, condition::kValidated, false, reason::kUnsafeForEnvironment, msg);
    fail(p, reason::kUnsafeForEnvironment, msg);
    return Action::await();
  }
  for (const auto& inc : p.spec.include) {  // copied too: the same rule, before any namespace exists
    if (inc.kind != "Deployment" && inc.kind != "StatefulSet") continue;
    auto irt = kube::resources::forKind("apps/v1", inc.kind);
    if (!irt.ok()) return irt.status();
    auto dep = client_.get(*irt, p.ns, inc.name);
    if (!dep.ok()) {
      if (kube::isNotFound(dep.status())) continue;  // provisioning says it is missing
      return dep.status();
    }
    if (std::string why = hostAccess(*dep); !why.empty()) {
      std::string msg = absl::StrCat("included ", inc.kind, " ", inc.name, " cannot be copied into a test environment: ",
                                     why);
      setCondition(p, condition::kValidated, false, reason::kUnsafeForEnvironment, msg);
      fail(p, reason::kUnsafeForEnvironment, msg);
      return Action::await();
    }
  }
  if (Step r = checkAuthorRights(p, *result, restoredConfigs); !r.ok() || r->has_value()) return r;
  std::string diff = describeDiff(target->value("spec", Json::object()), result->value("spec", Json::object()));
  // Config changes must apply too.
  Json configDiffs = Json::array();
  for (const auto& cc : p.spec.change.config) {
    const auto& crt = configType(cc.kind);
    auto current = client_.get(crt, p.ns, cc.name);
    if (!current.ok()) {
      if (kube::isNotFound(current.status())) {
        std::string msg = absl::StrCat(cc.kind, " ", p.ns, "/", cc.name, " (in spec.change.config) not found");
        setCondition(p, condition::kValidated, false, reason::kTargetNotFound, msg);
        fail(p, reason::kTargetNotFound, msg);
        return Action::await();
      }
      return current.status();
    }
    auto req = configChange(cc);
    if (!req.ok()) return req.status();
    auto applied = client_.patch(crt, p.ns, cc.name, req->type, req->body, dry);
    if (!applied.ok()) {
      if (kube::isInvalid(applied.status())) {
        std::string msg = absl::StrCat("the API server refused the change to ", cc.kind, " ", cc.name, ": ",
                                       applied.status().message());
        setCondition(p, condition::kValidated, false, reason::kChangeRejected, msg);
        fail(p, reason::kChangeRejected, msg);
        return Action::await();
      }
      return applied.status();
    }
    // Secret values are never shown, only which keys change.
    Json before = cc.kind == "Secret" ? Json::object() : current->value("data", Json::object());
    Json after = cc.kind == "Secret" ? Json::object() : applied->value("data", Json::object());
    if (cc.kind == "Secret") {
      // Which keys change, never a value or anything derived from one (even
      // a short hash lets a weak value be guessed offline).
      const Json currentData = current->value("data", Json::object());
      const Json appliedData = applied->value("data", Json::object());
      for (auto& [k, v] : currentData.items()) before[k] = "(hidden)";
      for (auto& [k, v] : appliedData.items())
        after[k] = currentData.contains(k) && currentData[k] == v ? "(hidden)" : "(changed)";
    }
    std::string d = describeDiff(before, after);
    if (!d.empty()) absl::StrAppend(&diff, cc.kind, "/", cc.name, ":\n", d);
  }
  std::string base = specHash(*target), expected = specHash(*result);
  if (base == expected && p.spec.change.config.empty()) {
    std::string msg = "the change leaves the workload exactly as it is; nothing to patch";
    setCondition(p, condition::kValidated, false, reason::kNoChange, msg);
    fail(p, reason::kNoChange, msg);
    return Action::await();
  }
  p.status.target =
      v1::TargetRef{p.spec.target.kind, p.spec.target.name, jsonString(*target, "/metadata/uid")};
  p.status.baseHash = base;
  p.status.expectedHash = expected;
  p.status.diff = diff.size() > 16000 ? diff.substr(0, 16000) + "...(truncated)\n" : diff;
  setCondition(p, condition::kValidated, true, reason::kValidated,
               "target exists, the change applies (server-side dry run) and the documentation is present");
  transition(p, v1::phase::kValidated, reason::kValidated,
             absl::StrCat("validated against ", p.spec.target.key(), "; ",
                          std::count(diff.begin(), diff.end(), '\n'), " field(s) change"));
  return std::nullopt;
}

// ---- queue ------------------------------------------------------------------

namespace {
bool inFlight(const std::string& phase) {
  return phase == v1::phase::kProvisioning || phase == v1::phase::kTesting ||
         phase == v1::phase::kAwaitingApproval || phase == v1::phase::kAwaitingWindow ||
         phase == v1::phase::kPromoting ||
         phase == v1::phase::kVerifying || phase == v1::phase::kRollingBack;
}
}  // namespace

PatchReconciler::Step PatchReconciler::queue(Pass& p) {
  if (inFlight(p.phase())) return std::nullopt;
  std::string key = absl::StrCat(p.ns, "/", p.spec.target.kind, "/", p.spec.target.name);
  struct Entry {
    bool emergency;
    std::string created, name, phase;
  };
  std::vector<Entry> waiting;
  for (const auto& other : patches_.byIndex(kIndexTarget, key)) {
    std::string name = jsonString(*other, "/metadata/name");
    std::string phase = v1::phaseOf(*other);
    if (name == p.name) continue;
    if (v1::phase::isTerminal(phase) || runtime::isDeleting(*other)) continue;
    if (inFlight(phase)) {
      std::string msg = absl::StrCat("waiting for patch ", name, " (", phase, ") on ", p.spec.target.key(),
                                     ": one change in flight per target");
      setCondition(p, "Queued", true, reason::kQueued, msg);
      transition(p, v1::phase::kQueued, reason::kQueued, msg);
      return Action::requeue(std::chrono::seconds(10));
    }
    waiting.push_back({jsonString(*other, "/spec/priority") == "emergency",
                       jsonString(*other, "/metadata/creationTimestamp"), name, phase});
  }
  Entry self{p.spec.priority == "emergency", jsonString(p.patch, "/metadata/creationTimestamp"), p.name, p.phase()};
  auto before = [](const Entry& a, const Entry& b) {
    if (a.emergency != b.emergency) return a.emergency;
    if (a.created != b.created) return a.created < b.created;
    return a.name < b.name;
  };
  std::vector<Entry> ahead;
  for (const auto& e : waiting)
    if (before(e, self)) ahead.push_back(e);
  std::string first = ahead.empty() ? "" : std::min_element(ahead.begin(), ahead.end(), before)->name;
  if (!ahead.empty()) {
    std::string msg = absl::StrCat("position ", ahead.size() + 1, " in the queue of ", p.spec.target.key(),
                                   " (FIFO, emergencies first); next up: ", first);
    setCondition(p, "Queued", true, reason::kQueued, msg);
    transition(p, v1::phase::kQueued, reason::kQueued, msg);
    return Action::requeue(std::chrono::seconds(10));
  }
  if (p.phase() == v1::phase::kQueued)
    setCondition(p, "Queued", false, reason::kDequeued, "first in line");
  transition(p, v1::phase::kProvisioning, reason::kProvisioning,
             "creating the ephemeral copy of production");
  return std::nullopt;
}

// ---- approve ----------------------------------------------------------------

// status.approvals keeps at most this many records (all that count, then the
// newest others); status.refusedApprovals four times as many names.
constexpr size_t kMaxApprovalRecords = 20;

// Bounded: whoever may create PatchApprovals could otherwise post refused ones
// until the status is too large to write. The ones that count (one per
// person) are always kept, then the newest of the rest, in an order that
// depends only on the approvals (no status churn).
std::vector<v1::ApprovalRecord> boundApprovals(std::vector<v1::ApprovalRecord> approvals) {
  if (approvals.size() <= kMaxApprovalRecords) return approvals;
  auto rest = std::stable_partition(approvals.begin(), approvals.end(),
                                    [](const v1::ApprovalRecord& r) { return r.valid.value_or(false); });
  const auto counting = static_cast<size_t>(rest - approvals.begin());
  std::stable_sort(rest, approvals.end(), [](const auto& a, const auto& b) { return a.at > b.at; });
  approvals.resize(std::max(kMaxApprovalRecords, counting));
  return approvals;
}

PatchReconciler::Step PatchReconciler::approve(Pass& p) {
  // Decided once: after the promotion intent, approvals cannot undo a write
  // that may have landed (a rejection then is a cancel, which rolls back).
  if (p.status.intent || p.status.promotion) return std::nullopt;
  // When may it land? Windows and freezes (PatchPolicy); an emergency may
  // pass what its policy lets it pass, with the approvals that asks for.
  auto verdict = v1::evaluateSchedule(p.policy, p.spec.priority == "emergency", absl::FromChrono(p.now));
  if (p.status.policy) {
    if (!verdict.open || verdict.bypassed)
      p.status.policy->schedule = verdict.why;
    else
      p.status.policy->schedule.reset();
  }
  int64_t needed = p.spec.approvalRequired ? p.spec.approvers : 0;
  if (verdict.bypassed) needed = std::max(needed, p.policy.emergency.approvers);
  std::set<std::string> approvers;
  if (needed == 0) {
    setCondition(p, condition::kApproved, true, reason::kNotRequired, "this patch needs no approval");
  } else {
    kube::ListOptions lo;
    lo.fieldSelector = "";  // PatchApprovals are few per namespace; filter here
    auto list = client_.list(kube::resources::kPatchApproval, p.ns, lo);
    if (!list.ok()) return list.status();
    // Approvals count only if the API server checked who gave them, as read
    // after the newest of them was given.
    std::string newest;
    for (const auto& a : (*list)["items"])
      if (jsonString(a, "/spec/patch") == p.name)
        newest = std::max(newest, jsonString(a, "/metadata/creationTimestamp"));
    absl::Status error;
    IdentityVerdict approverCheck;
    if (auto why = identityUnverified(IdentityClaim::kApprover, newest, &approverCheck, &error)) {
      std::string msg = absl::StrCat("tests passed; approvals are not counted: ", *why);
      warnOnce(p, condition::kApproved, reason::kIdentityUnverified, "Approve", msg);
      setCondition(p, condition::kApproved, false, reason::kIdentityUnverified, msg);
      transition(p, v1::phase::kAwaitingApproval, reason::kIdentityUnverified, msg);
      return Action::requeue(std::chrono::seconds(30));
    }
    if (!error.ok()) return error;
    std::vector<v1::ApprovalRecord> approvals;
    for (const auto& a : (*list)["items"]) {
      if (jsonString(a, "/spec/patch") != p.name) continue;
      std::string who = jsonString(a, "/spec/approver");
      std::vector<std::string> groups;
      for (const auto& g : jsonAt(a, "/spec/approverGroups"))
        if (g.is_string()) groups.push_back(g.get<std::string>());
      std::string decision = jsonString(a, "/spec/decision");
      if (decision.empty()) decision = "approve";
      std::string comment = jsonString(a, "/spec/comment");
      std::string at = jsonString(a, "/metadata/creationTimestamp");
      v1::ApprovalRecord record{jsonString(a, "/metadata/name"), who, at, comment, decision};
      // Approvals are for one Patch generation and one tested base.
      std::string retestedAt = p.status.retestedAt.value_or("");
      if (jsonInt(a, "/spec/patchGeneration", p.generation) != p.generation ||
          jsonString(a, "/spec/patchUID") != p.uid) {
        record.valid = false;
        record.why = "given for an earlier version of this patch";
      } else if (!approverCheck.checked(at)) {
        record.valid = false;
        record.why = absl::StrCat("given before the API server checked approvers (patchgate's approval admission "
                                  "policies are in place since ", approverCheck.since,
                                  "): nobody checked who gave it");
      } else if (!retestedAt.empty() && at < retestedAt) {
        // RFC 3339 UTC strings of one format order like the times they name.
        record.valid = false;
        record.why = "given before production changed under the patch and it was re-tested";
      } else if (std::string why = approverRefusal(p, who, groups); !why.empty()) {
        record.valid = false;
        record.why = why;
        // Told once each; past the bound no longer told (never pruned, so
        // that a told one is not told again).
        auto& refused = p.status.refusedApprovals;
        if (refused.size() < kMaxApprovalRecords * 4 &&
            std::find(refused.begin(), refused.end(), record.name) == refused.end()) {
          refused.push_back(record.name);
          // Told once the status that records the refusal is written.
          p.afterWrite.push_back([this, &p, who, why] {
            recorder_.event(p.patch, runtime::EventType::kWarning, reason::kApprovalRefused, "Approve",
                            absl::StrCat(who, " cannot approve: ", why));
          });
        }
      } else if (decision == "reject") {
        approvals.push_back(record);
        p.status.approvals = boundApprovals(std::move(approvals));
        setCondition(p, condition::kApproved, false, reason::kRejected, absl::StrCat("rejected by ", who, ": ", comment));
        fail(p, reason::kRejected, absl::StrCat("rejected by ", who, comment.empty() ? "" : ": " + comment));
        return Action::await();
      } else {
        record.valid = true;
        // One record per person who counts: more of theirs add nothing.
        if (!approvers.insert(who).second) continue;
      }
      approvals.push_back(std::move(record));
    }
    p.status.approvals = boundApprovals(std::move(approvals));
    if (static_cast<int64_t>(approvers.size()) < needed) {
      std::string msg = absl::StrCat("tests passed; waiting for ", needed - approvers.size(),
                                     " more approval(s) from someone other than the author (",
                                     p.spec.author.empty() ? "unknown" : p.spec.author, ")");
      if (verdict.bypassed)
        absl::StrAppend(&msg, "; ", verdict.why, " with ", p.policy.emergency.approvers, " approval(s)");
      if (!verdict.open) absl::StrAppend(&msg, "; then ", verdict.why);
      setCondition(p, condition::kApproved, false, reason::kAwaitingApproval, msg);
      transition(p, v1::phase::kAwaitingApproval, reason::kAwaitingApproval, msg);
      return Action::requeue(std::chrono::seconds(15));
    }
    setCondition(p, condition::kApproved, true, reason::kApproved,
                 absl::StrCat("approved by ", absl::StrJoin(approvers, ", ")));
  }
  if (!verdict.open) {
    bool frozen = verdict.why.starts_with("freeze");
    std::string msg = absl::StrCat("tested", approvers.empty() ? "" : " and approved", "; promotion waits: ",
                                   verdict.why);
    setCondition(p, condition::kScheduled, false, frozen ? reason::kFrozen : reason::kOutsideWindow, msg);
    transition(p, v1::phase::kAwaitingWindow, frozen ? reason::kFrozen : reason::kOutsideWindow, msg);
    // Looked at again when it may open, and at least every minute (policies change).
    auto wait = std::chrono::seconds(60);
    if (verdict.next) {
      auto until = absl::ToChronoTime(*verdict.next) - p.now;
      if (until < wait) wait = std::max(std::chrono::seconds(1), std::chrono::ceil<std::chrono::seconds>(until));
    }
    return Action::requeue(wait);
  }
  if (verdict.bypassed) warnOnce(p, condition::kScheduled, reason::kEmergencyBypass, "Promote", verdict.why);
  if (!p.policy.changeWindows.empty() || !p.policy.freezes.empty())
    setCondition(p, condition::kScheduled, true, verdict.bypassed ? reason::kEmergencyBypass : reason::kInWindow,
                 verdict.bypassed ? verdict.why : "inside a change window; no freeze");
  if (p.phase() == v1::phase::kAwaitingApproval || p.phase() == v1::phase::kAwaitingWindow)
    transition(p, v1::phase::kPromoting,
               approvers.empty() ? reason::kInWindow : reason::kApproved,
               approvers.empty() ? "promotion may start" : absl::StrCat("approved by ", absl::StrJoin(approvers, ", ")));
  return std::nullopt;
}

// ---- finished / cleanup -----------------------------------------------------

PatchReconciler::Step PatchReconciler::finished(Pass& p) {
  if (!v1::phase::isTerminal(p.phase())) return std::nullopt;
  if (!p.status.finishedAt) p.status.finishedAt = timeString(p.now);
  std::string envNs = p.envNamespace();
  if (envNs.empty() || p.status.environment->deletedAt) return Action::await();
  bool keep = p.phase() == v1::phase::kFailed && p.spec.keepOnFailure;
  if (keep) p.status.environment->kept = true;  // for debugging, for keepOnFailureSeconds
  double age = secondsSince(*p.status.finishedAt, p.now);
  double ttl = static_cast<double>(keep ? p.spec.keepOnFailureSeconds : p.spec.ttlSecondsAfterFinished);
  if (age < ttl) {
    return Action::requeue(std::chrono::duration_cast<Clock::Duration>(
        std::chrono::duration<double>(ttl - age + 1)));
  }
  if (auto s = deleteEnvironment(p); !s.ok()) return s;
  return Action::await();
}

absl::StatusOr<Action> PatchReconciler::cleanup(Pass& p) {
  // A Patch deleted between promotion and verification must not leave
  // production half-way: restore the rollback point.
  std::string phase = p.phase();
  if ((phase == v1::phase::kPromoting || phase == v1::phase::kVerifying || phase == v1::phase::kRollingBack) &&
      (p.status.promotion || p.status.intent) && p.status.revision) {
    auto spec = v1::parseSpec(p.patch);
    if (spec.ok()) {
      p.spec = *spec;
      auto rt = kube::resources::forKind(p.spec.target.apiVersion, p.spec.target.kind);
      if (rt.ok()) {
        p.targetType = *rt;
        // Restored, not waited for: the Patch is going away.
        if (phase != v1::phase::kRollingBack || p.status.intent) {
          Step r = rollback(p, "PatchDeleted", "the patch was deleted before production was verified");
          if (!r.ok()) return r.status();
          double restore = secondsSince(p.promotedAt(), p.now);
          metrics_->rolledBack("PatchDeleted", restore);
        }
      }
    }
  }
  if (!p.envNamespace().empty()) {
    auto s = client_.remove(kube::resources::kNamespace, "", p.envNamespace(), {});
    if (!s.ok() && !kube::isNotFound(s.status())) return s.status();
    metrics_->environmentDeleted();
  }
  return Action::await();
}

absl::Status PatchReconciler::deleteEnvironment(Pass& p) {
  std::string envNs = p.envNamespace();
  if (envNs.empty()) return absl::OkStatus();
  kube::DeleteOptions opts;
  opts.propagationPolicy = "Background";
  auto r = client_.remove(kube::resources::kNamespace, "", envNs, opts);
  if (!r.ok() && !kube::isNotFound(r.status())) return r.status();
  p.status.environment->deletedAt = timeString(p.now);
  recorder_.event(p.patch, runtime::EventType::kNormal, reason::kEnvironmentDeleted, "Cleanup",
                  absl::StrCat("deleted test environment ", envNs));
  metrics_->environmentDeleted();
  return absl::OkStatus();
}

}  // namespace patchgate::controllers::patch
