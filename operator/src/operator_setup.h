#pragma once

#include <string>

#include "absl/status/status.h"
#include "common/clock.h"
#include "common/logging.h"
#include "common/random.h"
#include "controllers/patch/reconciler.h"
#include "kube/client.h"
#include "metrics/metrics.h"
#include "runtime/informer.h"
#include "runtime/leader_election.h"
#include "runtime/manager.h"

namespace patchgate {

struct OperatorOptions {
  int workers = 2;
  std::string watchNamespaces;  // comma-separated; empty = all
  std::string identity;
  controllers::patch::PatchReconcilerOptions::TestApi testApi;
  std::string clusterPolicyNamespace;  // PatchPolicies here apply to every namespace
  // Fencing of production writes (PatchReconcilerOptions::leading).
  std::function<bool()> leading;
  // Trust spec.author and spec.approver without patchgate's admission
  // policies (--trust-unverified-identity). Otherwise the operator checks
  // that they are installed and Patches wait while they are not.
  bool trustUnverifiedIdentity = false;
};

// Adds the informers and controllers of the operator to `manager`, with their
// health and readiness checks. Controllers run only on the leader; informers
// run on every replica so that a new leader starts with warm caches.
// `patchInformer`, when given, receives the Patch informer (for the gRPC API,
// which reads the same cache; add its event handlers before manager.start()).
absl::Status setupOperator(runtime::Manager& manager, kube::Client& client, Clock& clock,
                           Random& random, metrics::Metrics& metrics, const Logger& log,
                           const OperatorOptions& options,
                           std::shared_ptr<runtime::Informer>* patchInformer = nullptr);

// The operator's leader elector: when it leads, the manager's leader-only
// runnables start and leader_election_master_status{name=<lease>} reads 1;
// when leadership is lost the gauge reads 0, the leader-only runnables stop
// (waiting for in-flight reconciles), `onLost` runs if given, and the elector
// campaigns again. The callbacks own copies of everything they name except
// the references passed in, which must outlive the elector.
std::unique_ptr<runtime::LeaderElector> makeLeaderElector(runtime::Manager& manager,
                                                          kube::Client& client, Clock& clock,
                                                          metrics::Metrics& metrics, const Logger& log,
                                                          runtime::LeaderElectionConfig config,
                                                          std::function<void()> onLost = {});

}  // namespace patchgate
