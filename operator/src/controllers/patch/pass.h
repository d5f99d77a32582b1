#pragma once

// Internal to the Patch controller: the working state of one reconcile.
#include <functional>
#include <string>
#include <vector>

#include "api/v1alpha1/patch.h"
#include "api/v1alpha1/patch_policy.h"
#include "api/v1alpha1/patch_status.h"
#include "common/json.h"
#include "controllers/patch/reconciler.h"
#include "kube/resource.h"

namespace patchgate::controllers::patch {

struct PatchReconciler::Pass {
  Json patch;  // the object as last read or written by this pass (starts as the cache snapshot)
  runtime::ReconcileContext& ctx;
  std::string ns, name, uid;
  int64_t generation = 0;
  api::v1alpha1::PatchSpec spec;
  kube::ResourceType targetType;
  api::v1alpha1::PatchStatus status;  // the status this reconcile will write
  Clock::TimePoint now;
  // Events, metrics and logs of what this pass decided: run once the status
  // that records it is written, dropped if that write fails (the next pass
  // decides again), so each transition is counted once.
  std::vector<std::function<void()>> afterWrite;
  api::v1alpha1::PolicySpec policy;  // merged PatchPolicies (applyPolicies)
  std::string secretSalt;  // read once per pass when a Secret digest is needed (promotion.cc)

  std::string phase() const { return status.phase.value_or(""); }
  // "" until an environment is recorded.
  std::string envNamespace() const { return status.environment ? status.environment->namespace_ : ""; }
  // The rollback point's ControllerRevision ("" until recorded).
  std::string revisionName() const { return status.revision ? status.revision->name : ""; }
  // The revision a rollbackTo Patch restores ("" until validated).
  std::string rollbackSourceName() const { return status.rollbackSource ? status.rollbackSource->name : ""; }
  // When production was promoted ("" before).
  std::string promotedAt() const { return status.promotion ? status.promotion->promotedAt : ""; }
};

// Small helpers shared by the step files.
inline std::string timeString(Clock::TimePoint t) { return formatTime(t); }
inline double secondsSince(const std::string& rfc3339, Clock::TimePoint now) {
  auto t = parseTime(rfc3339);
  if (!t.ok()) return 0;
  return std::chrono::duration<double>(now - *t).count();
}
std::string specHash(const Json& workload);  // spec without replicas (reconciler.cc)
std::string environmentNamespaceName(const std::string& patchName, const std::string& uid,
                                     int64_t retests);
// A test environment's ResourceQuota and LimitRange (null: none needed)
// within a PatchPolicy's limits (environment.cc).
Json environmentQuota(const api::v1alpha1::PolicyEnvironment& limits, const Json& labels);
Json environmentLimitRange(const api::v1alpha1::PolicyEnvironment& limits, const Json& labels);
// Labels put on everything patchgate creates for a Patch.
Json ownedLabels(const PatchReconciler::Pass& p);

}  // namespace patchgate::controllers::patch
