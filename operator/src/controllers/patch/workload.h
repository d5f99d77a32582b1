#pragma once

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "api/v1alpha1/patch.h"
#include "common/json.h"
#include "kube/client.h"

namespace patchgate::controllers::patch {

// Stable 64-bit FNV-1a hash (hex) of a JSON value's canonical text.
std::string hashJson(const Json& value);

// The part of a workload a Patch changes and a revision restores.
const Json& podTemplate(const Json& workload);
// Hash of the pod template: equal hashes mean the same pods.
std::string templateHash(const Json& workload);

// Health of a workload, per kind:
// - Deployment: status.observedGeneration >= generation, updated == available
//   == spec.replicas, no extra (old) replicas, not ProgressDeadlineExceeded;
// - StatefulSet: observedGeneration, updated == ready == replicas, and
//   currentRevision == updateRevision;
// - DaemonSet: observedGeneration, updatedNumberScheduled == numberAvailable
//   == desiredNumberScheduled.
struct Health {
  bool healthy = false;
  bool failed = false;  // will not get healthy by waiting (progress deadline)
  std::string message;
};
// StatefulSets: with updateStrategy OnDelete, all pods ready (the controller
// replaces none; each takes the change when deleted); with a partition P,
// replicas - P pods updated and all ready.
Health workloadHealth(const Json& workload, int64_t minGeneration = 0);

// The label selector (list syntax: "k=v,k in (a,b),!k") of a workload's
// spec.selector, matchLabels and matchExpressions both, so that its pods and
// only its pods are listed. InvalidArgument for an empty selector (it would
// select every pod of the namespace) or an operator Kubernetes does not have.
absl::StatusOr<std::string> workloadSelector(const Json& workload);

// What a list of a workload's pods says beyond readiness: container restarts
// in total, and the first container that is crash-looping or cannot start.
struct PodTrouble {
  int64_t restarts = 0;
  std::map<std::string, int64_t> byPod;  // pod uid -> restarts of its containers
  std::string problem;
  // Restarts since `baseline` (a byPod of earlier), pod by pod: pods that
  // went away do not hide new restarts; new pods count from zero.
  int64_t restartsSince(const std::map<std::string, int64_t>& baseline) const;
};
PodTrouble podTrouble(const Json& podList);

// Why a workload must not be copied into a test environment ("" when it
// may): host access (hostNetwork, hostPID, hostIPC, a hostPath volume, a
// privileged container, a hostPort) would let a test reach the node, and
// through it production. Environment namespaces also enforce the baseline
// Pod Security Standard, which refuses these and more for every pod.
std::string hostAccess(const Json& workload);

// Makes a workload's copy safe to run beside production: no priority class
// (a copy must never preempt production pods), no pinning to a node, and a
// StatefulSet's volumeClaimTemplates become ephemeral volumes (storage that
// goes with the pod, not claims that outlive the environment).
void hardenForEnvironment(Json& workloadCopy);

// Labels and annotations by which a GitOps tool tracks what it owns (Flux's
// *.toolkit.fluxcd.io/*, Argo CD's argocd.argoproj.io/*): not carried to a
// copy, which no GitOps tool owns.
bool isGitOpsTrackingKey(std::string_view key);

// The ConfigMaps, Secrets and ServiceAccount a pod template refers to.
struct References {
  std::vector<std::string> configMaps;
  std::vector<std::string> secrets;
  std::string serviceAccount;
};
References podReferences(const Json& podTemplate);

// A change to send to the API server for one object.
struct ChangeRequest {
  kube::PatchType type;
  std::string body;
};

kube::PatchType patchTypeFromName(const std::string& name);

// ConfigMap or Secret, by the kind named in a spec or a revision.
const kube::ResourceType& configType(const std::string& kind);

// Creates `obj` unless it exists. An existing object is left as it is: it was
// made by an earlier pass of the same step (names are deterministic).
absl::Status ensureCreated(kube::Client& client, const kube::ResourceType& rt, const std::string& ns,
                           const Json& obj);

// The request that applies a Patch's workload change, given the current
// production object. `revisionTemplate` is the pod template of the revision
// for rollbackTo. With `precondition`, the request fails with a conflict if
// production changed since `current` was read (optimistic concurrency).
//
// When the Patch changes config, the pod template gets the annotation
// patchgate.dev/config-hash (configChangeDigest), so the pods roll and start
// with the new config. A non-empty `lastWrite` goes into the workload's
// annotation patchgate.dev/last-write in the same request.
absl::StatusOr<ChangeRequest> workloadChange(const api::v1alpha1::PatchSpec& spec,
                                             const Json& current, const Json* revisionTemplate,
                                             bool precondition, const std::string& lastWrite = {});

// A digest of spec.change.config ("" when there is none).
std::string configChangeDigest(const api::v1alpha1::PatchSpec& spec);

// Appends the JSON-patch op that sets `key` in the string map at `mapPath`
// (creating the map when `current` has none there).
void addAnnotationOp(Json& ops, const Json& current, const std::string& mapPath, const std::string& key,
                     const std::string& value);

// The request that applies a config change.
absl::StatusOr<ChangeRequest> configChange(const api::v1alpha1::ConfigChange& change);

// A readable diff: one line per changed path, "path: old -> new".
std::string describeDiff(const Json& before, const Json& after);

}  // namespace patchgate::controllers::patch
