#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "api/v1alpha1/patch.h"
#include "common/clock.h"
#include "controllers/patch/identity_admission.h"
#include "kube/client.h"
#include "runtime/controller.h"
#include "runtime/events.h"
#include "runtime/store.h"

namespace patchgate::controllers::patch {

// Domain metrics seam (patchgate_* series). Default no-op.
class PatchMetrics {
 public:
  virtual ~PatchMetrics() = default;
  // `secondsInFrom`: how long the Patch spent in `from` (0 if unknown).
  virtual void transition(const std::string& /*from*/, const std::string& /*to*/,
                          double /*secondsInFrom*/) {}
  virtual void testFinished(const std::string& /*test*/, const std::string& /*result*/,
                            double /*seconds*/) {}
  virtual void promoted(double /*leadTimeSeconds*/) {}
  virtual void rolledBack(const std::string& /*reason*/, double /*restoreSeconds*/) {}
  virtual void driftDetected() {}
  // Production was changed by someone else during verification.
  virtual void reverted() {}
  // A rollback was written but the restored workload did not become healthy.
  virtual void rollbackFailed() {}
  virtual void environmentCreated() {}
  virtual void environmentDeleted() {}
};

struct PatchReconcilerOptions {
  std::chrono::seconds pollInterval{2};  // while waiting on pods, Jobs, rollouts
  int historyLimit = 50;                 // status.history entries kept
  // How test pods reach the operator's gRPC API to ReportTestResults. When
  // enabled, provisioning resolves it once per environment and records it in
  // status.environment.testApi; then each test pod gets PATCHGATE_API_ADDRESS,
  // PATCHGATE_API_SERVER_NAME (the name to verify the certificate against),
  // PATCHGATE_API_CA_FILE (the ConfigMap patchgate-api-ca of its environment,
  // mounted) and its environment's default service-account token
  // (automounted), and the NetworkPolicy patchgate-test-api lets pods labelled
  // patchgate.dev/test (only those) reach the API. Disabled, or not
  // resolvable (a TestApiUnavailable event says why): no token, no API.
  struct TestApi {
    // The operator's API Service (in-cluster operator): test pods get its
    // ClusterIP and port (no cluster DNS needed) and the server name
    // "<name>.<namespace>.svc"; the policy admits the Service's pods.
    std::string serviceNamespace;
    std::string serviceName;
    // Or a fixed "host:port" / "[v6]:port" (an operator outside the cluster);
    // server name: `serverName`, else the host. An IP host is admitted by the
    // policy as an ipBlock; a host name cannot be (see checkTestApi).
    std::string address;
    std::string serverName;
    std::string caPem;  // what test pods trust (the API's CA or self-signed certificate)
    // What they trust now, when it can change while the operator runs (a
    // renewed pair: grpc/live_tls.h); unset: caPem.
    std::function<std::string()> currentCa;
    std::string ca() const { return currentCa ? currentCa() : caPem; }
    // The audience of the token test pods get (the API's --grpc-token-audience);
    // "": the automounted API-server token (development only).
    std::string tokenAudience = "patchgate";
    bool enabled() const { return !serviceName.empty() || !address.empty(); }
  } testApi;
  // PatchPolicies here apply to every namespace, besides each namespace's
  // own ("" : only each namespace's own).
  std::string clusterPolicyNamespace;
  // Fencing: asked right before every write to production; false (this
  // replica cannot be sure it still holds the lease) turns the write into a
  // retried error. Unset: always true (no leader election).
  std::function<bool()> leading;
  // Asked before spec.author (the author's rights) or an approval's
  // spec.approver is trusted: whether the API server checks it, and since
  // when (IdentityAdmission::check). While it does not, a Patch waits with
  // reason IdentityUnverified instead of trusting a name anyone could write;
  // a Patch or approval created before it began to was never checked (a
  // Patch fails, an approval is void). Unset: trusted (unit tests; the
  // operator's --trust-unverified-identity).
  // The second argument: the newest creationTimestamp of what is to be
  // trusted (the Patch, or its approvals), which the answer must postdate.
  std::function<absl::StatusOr<IdentityVerdict>(IdentityClaim, const std::string&)> identityCheck;
};

// Checks TestApi options at start: a malformed address is an error; the
// returned warnings (e.g. a host name the NetworkPolicy cannot admit) are for
// the log.
absl::StatusOr<std::vector<std::string>> checkTestApi(const PatchReconcilerOptions::TestApi& api);
// The host of a "host:port" or "[v6]:port" address, without brackets ("" when
// malformed).
std::string addressHost(const std::string& address);

// Index of the Patch store: "namespace/Kind/name" of each Patch's target.
inline constexpr char kIndexTarget[] = "target";
std::vector<std::string> targetIndex(const Json& patch);

// The Patch reconciler: validate -> queue -> provision -> test -> approve ->
// promote -> verify (-> roll back), one step per call, each idempotent and
// derived from status plus what exists in the cluster, so a restart resumes.
// Status is written once per reconcile, and only when it changed.
//
// RBAC: patches (get, list, watch, update, patch), patches/status (update);
// patchapprovals (get, list, watch); the target kinds and their ConfigMaps,
// Secrets, ServiceAccounts, Services (get, list, patch); controllerrevisions
// (get, list, create, delete); namespaces (create, delete, get);
// in environment namespaces: deployments, statefulsets, services, configmaps,
// secrets, serviceaccounts, jobs, pods (read), resourcequotas, networkpolicies
// (create); events (create, patch); validatingadmissionpolicies and their
// bindings (get, by name: IdentityAdmission). With the test API: the API Service (get);
// in environments, configmaps (get, update: the CA).
class PatchReconciler final : public runtime::Reconciler {
 public:
  PatchReconciler(kube::Client& client, const runtime::Store& patches,
                  runtime::EventRecorder& recorder, Clock& clock,
                  PatchMetrics* metrics = nullptr, PatchReconcilerOptions options = {});
  ~PatchReconciler() override;

  absl::StatusOr<runtime::Action> reconcile(const runtime::Object& obj,
                                            runtime::ReconcileContext& ctx) override;

  struct Pass;  // one reconcile's working state (reconciler.cc)

 private:
  absl::StatusOr<runtime::Action> reconcileOnce(const runtime::Object& obj,
                                                runtime::ReconcileContext& ctx);
  absl::StatusOr<runtime::Action> apply(Pass& p);
  absl::StatusOr<runtime::Action> cleanup(Pass& p);

  // Steps: each returns nullopt when done (go on), or the Action to stop with.
  using Step = absl::StatusOr<std::optional<runtime::Action>>;
  // policy.cc: a Secret change's new values, read from its fromSecret into
  // p.spec (as a merge patch of data), pinned to the version first read.
  Step resolveSecretSources(Pass& p);
  // policy.cc: the PatchPolicies that apply, raised into p.spec (p.policy).
  // `lenient` (production may be written already, or the Patch ended): a
  // policy that cannot be read is skipped, never holds the Patch.
  Step applyPolicies(Pass& p, bool lenient);
  // The author's own rights over what the Patch changes and copies
  // (SubjectAccessReview); nullopt when they have them.
  // `restoredConfigs`: the ConfigMaps/Secrets a rollbackTo puts back (its
  // revision's data.configs).
  Step checkAuthorRights(Pass& p, const Json& patchedTarget, const Json& restoredConfigs);
  // The rights alone (the identity was checked at validation); atPromotion:
  // asked again right before production is written.
  Step checkRights(Pass& p, const Json& patchedTarget, const Json& restoredConfigs, bool atPromotion);
  // Why `claim` cannot be trusted now (options_.identityCheck), or nullopt;
  // *verdict: from when it can be; an error asking sets *error.
  std::optional<std::string> identityUnverified(IdentityClaim claim, const std::string& createdAt,
                                                IdentityVerdict* verdict, absl::Status* error);
  // Whether an approval by `who` (in `groups`) counts ("" when it does).
  std::string approverRefusal(const Pass& p, const std::string& who,
                              const std::vector<std::string>& groups) const;
  Step validate(Pass& p);
  Step queue(Pass& p);
  Step provision(Pass& p);
  Step runTests(Pass& p);
  // The test API (options_.testApi): resolved once per environment while
  // provisioning, then handed to each test Job (test_api.cc).
  struct TestApiEndpoint {
    std::string address;     // host:port
    std::string serverName;  // TLS name
    Json egress;             // the NetworkPolicy egress rule to the API
  };
  absl::StatusOr<TestApiEndpoint> testApiEndpoint();
  absl::Status provisionTestApi(Pass& p);
  // Adds the API's env, volume and token to a test Job's pod spec when the
  // environment has it; returns whether it did.
  absl::StatusOr<bool> addTestApi(Pass& p, Json& podSpec);
  Step approve(Pass& p);
  Step promote(Pass& p);
  Step verify(Pass& p);
  Step finished(Pass& p);
  // promotion.cc: the writes to production and their intent records.
  absl::StatusOr<Json> ensureRevision(Pass& p, const Json& prod);
  // A revision's Secret snapshot (its Secrets' content and a salt), made if missing.
  absl::StatusOr<Json> ensureSnapshot(Pass& p, const Json& rev);
  // A revision's data.configs with the Secrets' content from its snapshot.
  absl::StatusOr<Json> revisionConfigs(Pass& p, const Json& rev);
  // Digest of a ConfigMap/Secret for status.promotion.configHashes; a
  // Secret's is salted with its rollback point's snapshot salt ("" when the
  // snapshot is gone: then it cannot be computed, nor checked).
  absl::StatusOr<std::string> configDigestFor(Pass& p, const std::string& kind, const Json& obj);
  Step abandonPromotion(Pass& p, const std::string& why);
  absl::Status putConfigBack(Pass& p);
  Step retestOrGiveUp(Pass& p, const std::string& why);
  absl::StatusOr<bool> targetMoved(Pass& p, const Json& read);
  // `action` (Promote | Rollback) stamps the Secrets it writes.
  absl::Status restoreConfigs(Pass& p, const Json& configs, const char* action);
  // `cause` is a bounded label for metrics; `why` the sentence for people.
  Step rollback(Pass& p, const std::string& cause, const std::string& why);
  Step verifyRollback(Pass& p);
  Step finishRollback(Pass& p, const std::string& health);
  Step rollbackFailed(Pass& p, const std::string& message);
  absl::Status fence() const;
  // Writes status now (the write-ahead intent), not at the end of the pass.
  absl::Status persist(Pass& p);
  absl::Status deleteEnvironment(Pass& p);
  absl::Status resetForRetest(Pass& p, const std::string& why);

  absl::Status syncStatus(Pass& p);
  void flushAfterWrite(Pass& p);
  void transition(Pass& p, const std::string& phase, const std::string& reason,
                  const std::string& message, runtime::EventType type = runtime::EventType::kNormal);
  void fail(Pass& p, const std::string& reason, const std::string& message);
  // A Warning event told once per stretch: when condition `type` does not
  // already carry `reason` (call before setting it), once the status is written.
  void warnOnce(Pass& p, const char* type, const char* reason, const char* action, std::string message);
  void setCondition(Pass& p, const std::string& type, bool status, const std::string& reason,
                    const std::string& message);

  // Read-your-writes: the resourceVersion of our last status write per Patch.
  // A snapshot older than that is stale (the watch lags our own write), and
  // acting on it could repeat a step with side effects; it is skipped.
  bool staleSnapshot(const std::string& key, const std::string& resourceVersion);
  void rememberWrite(const std::string& key, const std::string& resourceVersion);
  std::mutex writesMu_;
  std::map<std::string, uint64_t> lastWritten_;

  kube::Client& client_;
  const runtime::Store& patches_;
  runtime::EventRecorder& recorder_;
  Clock& clock_;
  PatchMetrics defaultMetrics_;
  PatchMetrics* metrics_;
  PatchReconcilerOptions options_;
};

}  // namespace patchgate::controllers::patch
