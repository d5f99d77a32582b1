#pragma once

// Internal to the Patch controller: the working state of one reconcile.
#include <functional>
#include <string>
#include <vector>

#include "api/v1alpha1/patch.h"
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
  Json status;  // the status this reconcile will write
  Clock::TimePoint now;
  // Events, metrics and logs of what this pass decided: run once the status
  // that records it is written, dropped if that write fails (the next pass
  // decides again), so each transition is counted once.
  std::vector<std::function<void()>> afterWrite;

  std::string phase() const { return status.value("phase", ""); }
  std::string envNamespace() const { return jsonString(status, "/environment/namespace"); }
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
// Labels put on everything patchgate creates for a Patch.
Json ownedLabels(const PatchReconciler::Pass& p);

}  // namespace patchgate::controllers::patch
