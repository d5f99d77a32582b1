#include "operator_setup.h"

#include <memory>

#include "api/v1alpha1/patch.h"
#include "controllers/patch/reconciler.h"
#include "kube/resource.h"
#include "metrics/patch_metrics.h"
#include "runtime/controller.h"
#include "runtime/events.h"
#include "runtime/informer.h"

namespace patchgate {

namespace {

// Owns the pieces of the Patch controller for the life of the process.
struct PatchControllerBundle {
  std::shared_ptr<runtime::Informer> informer;
  std::shared_ptr<runtime::Informer> approvals;
  std::unique_ptr<runtime::EventRecorderImpl> recorder;
  std::unique_ptr<metrics::PatchMetricsImpl> patchMetrics;
  std::shared_ptr<metrics::PatchStoreCollector> storeMetrics;
  std::shared_ptr<controllers::patch::IdentityAdmission> identity;
  std::unique_ptr<controllers::patch::PatchReconciler> reconciler;
  std::shared_ptr<runtime::Controller> controller;
};

// Keeps the bundle alive as long as the manager holds the controller.
class OwningController final : public runtime::Runnable {
 public:
  explicit OwningController(std::unique_ptr<PatchControllerBundle> b) : b_(std::move(b)) {}
  std::string name() const override { return b_->controller->name(); }
  void run(std::stop_token stop) override { b_->controller->run(stop); }

 private:
  std::unique_ptr<PatchControllerBundle> b_;
};

}  // namespace

absl::Status setupOperator(runtime::Manager& manager, kube::Client& client, Clock& clock,
                           Random& random, metrics::Metrics& metrics, const Logger& log,
                           const OperatorOptions& options,
                           std::shared_ptr<runtime::Informer>* patchInformer) {
  if (options.workers < 1) return absl::InvalidArgumentError("--workers must be at least 1");
  if (options.watchNamespaces.find(',') != std::string::npos)
    return absl::InvalidArgumentError("--watch-namespaces takes one namespace (or none, for all)");

  auto b = std::make_unique<PatchControllerBundle>();
  runtime::WatcherConfig wc{kube::resources::kPatch, options.watchNamespaces};
  // Resync every 10 minutes: a level-based safety net for missed changes.
  b->informer = std::make_shared<runtime::Informer>(client, wc, clock, random, log.withName("patches"),
                                                    std::chrono::minutes(10));
  b->informer->store().addIndexer(controllers::patch::kIndexTarget, controllers::patch::targetIndex);
  b->recorder = std::make_unique<runtime::EventRecorderImpl>(client, clock, "patchgate.dev/patch-controller",
                                                             options.identity, log.withName("events"));
  b->patchMetrics = std::make_unique<metrics::PatchMetricsImpl>(*metrics.registry());
  b->storeMetrics = std::make_shared<metrics::PatchStoreCollector>(b->informer->store());
  metrics.addCollectable(b->storeMetrics);
  controllers::patch::PatchReconcilerOptions ro{.testApi = options.testApi,
                                                .clusterPolicyNamespace = options.clusterPolicyNamespace,
                                                .leading = options.leading};
  if (!options.trustUnverifiedIdentity) {
    b->identity = std::make_shared<controllers::patch::IdentityAdmission>(client, clock);
    ro.identityCheck = [identity = b->identity](controllers::patch::IdentityClaim claim,
                                                const std::string& createdAt) {
      return identity->check(claim, createdAt);
    };
  } else {
    log.warn("--trust-unverified-identity: spec.author and spec.approver are trusted as written; "
             "without patchgate's admission policies anyone can claim any name");
  }
  b->reconciler = std::make_unique<controllers::patch::PatchReconciler>(
      client, b->informer->store(), *b->recorder, clock, b->patchMetrics.get(), std::move(ro));
  runtime::ControllerOptions co{"patch", options.workers};
  b->controller = std::make_shared<runtime::Controller>(co, *b->informer, *b->reconciler, clock,
                                                        log.withName("controller"), metrics.queue("patch"),
                                                        metrics.controller("patch"));
  // When one Patch changes (finishes, say), the others on the same target
  // may move up the queue.
  auto* store = &b->informer->store();
  b->controller->watches(*b->informer, [store](const Json& patch) {
    std::vector<std::string> keys;
    for (const auto& idx : controllers::patch::targetIndex(patch))
      for (const auto& other : store->byIndex(controllers::patch::kIndexTarget, idx))
        keys.push_back(kube::objectKey(*other));
    return keys;
  });

  // A new approval moves its Patch at once, not at the next poll.
  runtime::WatcherConfig ac{kube::resources::kPatchApproval, options.watchNamespaces};
  b->approvals = std::make_shared<runtime::Informer>(client, ac, clock, random, log.withName("approvals"));
  b->controller->watches(*b->approvals, [](const Json& approval) {
    std::string patch = jsonString(approval, "/spec/patch");
    if (patch.empty()) return std::vector<std::string>{};
    return std::vector<std::string>{kube::makeKey(jsonString(approval, "/metadata/namespace"), patch)};
  });

  auto informer = b->informer;
  if (patchInformer != nullptr) *patchInformer = informer;
  auto controller = b->controller;
  manager.add(informer, /*needsLeader=*/false);
  manager.add(b->approvals, /*needsLeader=*/false);
  manager.add(std::make_shared<OwningController>(std::move(b)), /*needsLeader=*/true);

  // Liveness stays up while the API server is away (a restart would not
  // bring it back, and both replicas would crash-loop through an API server
  // upgrade); readiness says why.
  manager.addReadyzCheck("patch-informer", [informer] {
    if (!informer->hasSynced()) return std::string("patch cache not synced yet");
    return informer->healthy() ? std::string() : std::string("watch on patches is failing (API server unreachable?)");
  });
  return absl::OkStatus();
}

std::unique_ptr<runtime::LeaderElector> makeLeaderElector(runtime::Manager& manager,
                                                          kube::Client& client, Clock& clock,
                                                          metrics::Metrics& metrics, const Logger& log,
                                                          runtime::LeaderElectionConfig config,
                                                          std::function<void()> onLost) {
  // By value: the callbacks run on the elector's thread long after the
  // caller's locals are gone (a by-reference capture of the config here once
  // put garbage into the gauge's label).
  const std::string lease = config.leaseName;
  const std::string identity = config.identity;
  metrics.leaderElection(lease, false);
  runtime::LeaderCallbacks cb;
  cb.onStartedLeading = [&metrics, &manager, log, lease, identity] {
    metrics.leaderElection(lease, true);
    log.info("became leader; starting controllers", {{"identity", identity}});
    manager.startLeaderRunnables();
  };
  cb.onStoppedLeading = [&metrics, &manager, log, lease, onLost = std::move(onLost)] {
    metrics.leaderElection(lease, false);
    log.error("leader election lost; stopping controllers, then campaigning again");
    manager.stopLeaderRunnables();  // in-flight reconciles end; their production writes are fenced
    log.info("controllers stopped; campaigning for the lease again");
    if (onLost) onLost();
  };
  cb.onNewLeader = [log, identity](const std::string& who) {
    if (who != identity) log.info("new leader observed", {{"leader", who}});
  };
  return std::make_unique<runtime::LeaderElector>(client, std::move(config), std::move(cb), clock,
                                                  log.withName("leaderelection"));
}

}  // namespace patchgate
