// Controller-level tests of the Patch reconciler: seed a FakeClient, run
// reconciles, play the cluster's part (rollouts, Jobs), assert the API calls
// and the status written.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <set>

#include "absl/strings/str_cat.h"
#include "api/v1alpha1/patch.h"
#include "controllers/patch/conditions.h"
#include "controllers/patch/reconciler.h"
#include "controllers/patch/workload.h"
#include "fakes/fake_client.h"
#include "kube/errors.h"
#include "fakes/fake_clock.h"
#include "kube/resource.h"
#include "runtime/events.h"
#include "runtime/status.h"
#include "test_util.h"

namespace patchgate::controllers::patch {
namespace {

namespace res = kube::resources;
using testing::FakeClient;
using testing::FakeClock;

class RecordingRecorder final : public runtime::EventRecorder {
 public:
  void event(const Json&, runtime::EventType type, const std::string& reason, const std::string&,
             const std::string& note) override {
    std::lock_guard lock(mu);
    events.push_back({type == runtime::EventType::kWarning ? "Warning" : "Normal", reason, note});
  }
  bool has(const std::string& reason) {
    std::lock_guard lock(mu);
    return std::any_of(events.begin(), events.end(), [&](auto& e) { return e[1] == reason; });
  }
  std::mutex mu;
  std::vector<std::array<std::string, 3>> events;
};

class PatchReconcilerTest : public ::testing::Test {
 protected:
  PatchReconcilerTest() : client_(clock_), reconciler_(client_, store_, recorder_, clock_) {
    store_.addIndexer(kIndexTarget, targetIndex);
    client_.seed(res::kConfigMap, Json::parse(R"({"apiVersion":"v1","kind":"ConfigMap",
        "metadata":{"name":"checkout-config","namespace":"shop"},"data":{"POOL":"16"}})"));
    client_.seed(res::kService, Json::parse(R"({"apiVersion":"v1","kind":"Service",
        "metadata":{"name":"checkout","namespace":"shop"},
        "spec":{"selector":{"app":"checkout"},"ports":[{"port":8080}],"clusterIP":"10.96.0.9"}})"));
    client_.seed(res::kService, Json::parse(R"({"apiVersion":"v1","kind":"Service",
        "metadata":{"name":"other","namespace":"shop"},"spec":{"selector":{"app":"other"}}})"));
    seedDeployment("v1");
  }

  void seedDeployment(const std::string& version) {
    Json d = Json::parse(R"({"apiVersion":"apps/v1","kind":"Deployment",
        "metadata":{"name":"checkout","namespace":"shop"},
        "spec":{"replicas":2,"selector":{"matchLabels":{"app":"checkout"}},
          "template":{"metadata":{"labels":{"app":"checkout"}},
            "spec":{"containers":[{"name":"app","image":"demo:1",
              "envFrom":[{"configMapRef":{"name":"checkout-config"}}]}]}}}})");
    d["spec"]["template"]["spec"]["containers"][0]["env"] = {{{"name", "VERSION"}, {"value", version}}};
    client_.seed(res::kDeployment, d);
    markHealthy(res::kDeployment, "shop", "checkout");
  }

  // What the deployment controller would do once the rollout completes.
  void markHealthy(const kube::ResourceType& rt, const std::string& ns, const std::string& name) {
    Json d = client_.object(rt, ns, name);
    int64_t replicas = jsonInt(d, "/spec/replicas", 1);
    d["status"] = {{"observedGeneration", jsonInt(d, "/metadata/generation", 1)},
                   {"replicas", replicas}, {"updatedReplicas", replicas}, {"availableReplicas", replicas}};
    client_.seed(rt, d);
  }

  void createPatch(const std::string& name, Json extra = Json::object()) {
    Json p = Json::parse(R"({"apiVersion":"patchgate.dev/v1alpha1","kind":"Patch",
        "metadata":{"namespace":"shop"},
        "spec":{"target":{"kind":"Deployment","name":"checkout"},
          "change":{"patch":"spec: {template: {spec: {containers: [{name: app, image: 'demo:1', envFrom: [{configMapRef: {name: checkout-config}}], env: [{name: VERSION, value: v2}]}]}}}",
                    "config":[{"kind":"ConfigMap","name":"checkout-config","patch":"{\"data\":{\"POOL\":\"64\"}}"}]},
          "ticket":"INC-1","rootCause":"pool exhausted",
          "environment":{"ttlSecondsAfterFinished":60},
          "tests":[{"name":"smoke","image":"t:1"}],
          "verification":{"timeoutSeconds":120}}})");
    p["metadata"]["name"] = name;
    p["spec"].merge_patch(extra);
    store_.upsert(client_.seed(res::kPatch, p));
  }

  // One reconcile of the stored Patch, with the cache up to date.
  absl::StatusOr<runtime::Action> reconcile(const std::string& name) {
    for (const auto& p : client_.objects(res::kPatch)) store_.upsert(p);  // the cache, up to date
    Json obj = client_.object(res::kPatch, "shop", name);
    runtime::ReconcileContext ctx{"test", testing::quietLogger(), 0};
    return (active_ ? *active_ : reconciler_).reconcile(std::make_shared<const Json>(obj), ctx);
  }
  Json status(const std::string& name) {
    Json s = client_.object(res::kPatch, "shop", name).value("status", Json::object());
    return s.is_object() ? s : Json::object();
  }
  std::string phase(const std::string& name) { return status(name).value("phase", ""); }

  // Reconciles until the phase is `want` (or `limit` passes).
  void reconcileUntil(const std::string& name, const std::string& want, int limit = 10) {
    for (int i = 0; i < limit && phase(name) != want; ++i) ASSERT_TRUE(reconcile(name).ok());
    ASSERT_EQ(phase(name), want) << status(name).dump(2);
  }

  std::string envNamespace(const std::string& name) { return jsonString(status(name), "/environment/namespace"); }

  void completeJobs(const std::string& ns, const std::string& condition = "Complete") {
    for (Json job : client_.objects(res::kJob, ns)) {
      job["status"] = {{"conditions", {{{"type", condition}, {"status", "True"}}}}};
      client_.seed(res::kJob, job);
    }
  }

  // Drives a Patch to Testing, up to the creation of its first test Job.
  void driveToTestJob(const std::string& name) {
    reconcileUntil(name, api::v1alpha1::phase::kProvisioning);
    ASSERT_TRUE(reconcile(name).ok());  // creates the copy
    markHealthy(res::kDeployment, envNamespace(name), "checkout");
    reconcileUntil(name, api::v1alpha1::phase::kTesting);
    ASSERT_TRUE(reconcile(name).ok());  // creates the Job
  }

  // Production healthy with the change for the whole bake (30 s default):
  // the Patch succeeds.
  void bakeToSuccess(const std::string& name) {
    markHealthy(res::kDeployment, "shop", "checkout");
    ASSERT_TRUE(reconcile(name).ok());  // rollout complete: the bake starts
    ASSERT_EQ(phase(name), api::v1alpha1::phase::kVerifying) << "succeeded without a bake";
    clock_.advance(std::chrono::seconds(31));
    reconcileUntil(name, api::v1alpha1::phase::kSucceeded);
  }

  // Drives a Patch to Promoting's first pass: tests done, the next reconcile promotes.
  void driveToPromotion(const std::string& name) {
    driveToTestJob(name);
    completeJobs(envNamespace(name));
  }

  // A Patch that raises POOL and rotates Secret db's password (hunter2 ->
  // s3cr3t; base64 in the API).
  void createPatchRotatingASecret(const std::string& name) {
    client_.seed(res::kSecret, Json::parse(R"({"apiVersion":"v1","kind":"Secret",
        "metadata":{"name":"db","namespace":"shop"},"data":{"password":"aHVudGVyMg=="}})"));
    // The new value comes from another Secret, never from the Patch.
    client_.seed(res::kSecret, Json::parse(R"({"apiVersion":"v1","kind":"Secret",
        "metadata":{"name":"db-rotated","namespace":"shop"},"data":{"password":"czNjcjN0"}})"));
    createPatch(name, {{"change", {{"config", Json::parse(R"([
        {"kind": "ConfigMap", "name": "checkout-config", "patch": "{\"data\":{\"POOL\":\"64\"}}"},
        {"kind": "Secret", "name": "db", "fromSecret": "db-rotated"}])")}}}});
  }

  // Drives a Patch that needs approval to AwaitingApproval (tests passed).
  void driveToAwaitingApproval(const std::string& name) {
    driveToPromotion(name);
    reconcileUntil(name, api::v1alpha1::phase::kAwaitingApproval);
  }
  // A PatchApproval by `who` for the Patch as it is now.
  void approve(const std::string& patch, const std::string& approval, const std::string& who) {
    Json p = client_.object(res::kPatch, "shop", patch);
    client_.seed(res::kPatchApproval,
                 {{"apiVersion", "patchgate.dev/v1alpha1"}, {"kind", "PatchApproval"},
                  {"metadata", {{"name", approval}, {"namespace", "shop"}}},
                  {"spec", {{"patch", patch}, {"patchUID", p["metadata"]["uid"]},
                            {"patchGeneration", p["metadata"]["generation"]}, {"approver", who}}}});
  }

  // Drives a Patch to Verifying: provisioned, tests passed, promoted.
  void driveToVerifying(const std::string& name) {
    driveToTestJob(name);
    completeJobs(envNamespace(name));
    reconcileUntil(name, api::v1alpha1::phase::kVerifying);
  }

  FakeClock clock_;
  FakeClient client_;
  runtime::Store store_;
  RecordingRecorder recorder_;
  PatchReconciler reconciler_;
  // Reconciles with other options from here on.
  void useOptions(PatchReconcilerOptions options) {
    custom_ = std::make_unique<PatchReconciler>(client_, store_, recorder_, clock_, nullptr, std::move(options));
    active_ = custom_.get();
  }
  std::unique_ptr<PatchReconciler> custom_;
  PatchReconciler* active_ = nullptr;  // another reconciler (other options) when set
};

// The value of env var `name` in the first container of a Job, or "".
std::string jobEnv(const Json& job, const std::string& name) {
  for (const auto& e : jsonAt(job, "/spec/template/spec/containers/0/env"))
    if (e.value("name", "") == name) return e.value("value", "");
  return "";
}

// The seeded API Service of the operator (an in-cluster install).
void seedApiService(FakeClient& client, bool withSelector = true) {
  Json spec = {{"clusterIP", "10.96.0.42"},
               {"ports", {{{"name", "metrics"}, {"port", 8080}},
                          {{"name", "grpc"}, {"port", 9443}, {"targetPort", "api"}}}}};
  if (withSelector) spec["selector"] = {{"app.kubernetes.io/name", "patchgate"}};
  client.seed(res::kService, {{"apiVersion", "v1"}, {"kind", "Service"},
                              {"metadata", {{"name", "patchgate-api"}, {"namespace", "patchgate-system"}}},
                              {"spec", spec}});
}

PatchReconcilerOptions serviceApiOptions() {
  PatchReconcilerOptions options;
  options.testApi.serviceNamespace = "patchgate-system";
  options.testApi.serviceName = "patchgate-api";
  options.testApi.caPem = "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n";
  return options;
}

TEST_F(PatchReconcilerTest, WithTheApiServiceTestPodsCanReportResults) {
  seedApiService(client_);
  auto options = serviceApiOptions();
  useOptions(options);
  createPatch("fix");
  driveToTestJob("fix");
  std::string env = envNamespace("fix");
  EXPECT_EQ(jsonString(status("fix"), "/environment/testApi/address"), "10.96.0.42:9443");

  // Address without DNS, the name on the certificate, the CA, a token.
  Json job = client_.object(res::kJob, env, "pgt-smoke-1");
  ASSERT_FALSE(job.is_null());
  const Json& pod = job["spec"]["template"]["spec"];
  // No API-server token: one for patchgate's audience only.
  EXPECT_EQ(pod["automountServiceAccountToken"], false);
  EXPECT_EQ(jobEnv(job, "PATCHGATE_API_ADDRESS"), "10.96.0.42:9443");
  EXPECT_EQ(jobEnv(job, "PATCHGATE_API_SERVER_NAME"), "patchgate-api.patchgate-system.svc");
  EXPECT_EQ(jobEnv(job, "PATCHGATE_API_CA_FILE"), "/var/run/patchgate/api/ca.crt");
  EXPECT_EQ(jobEnv(job, "PATCHGATE_TOKEN_FILE"), "/var/run/patchgate/api/token");
  const Json& sources = pod["volumes"][0]["projected"]["sources"];
  EXPECT_EQ(sources[0]["configMap"]["name"], "patchgate-api-ca") << pod.dump();
  EXPECT_EQ(sources[1]["serviceAccountToken"]["audience"], "patchgate") << pod.dump();
  EXPECT_EQ(sources[1]["serviceAccountToken"]["path"], "token");
  EXPECT_EQ(pod["containers"][0]["volumeMounts"][0]["mountPath"], "/var/run/patchgate/api");
  EXPECT_EQ(client_.object(res::kConfigMap, env, "patchgate-api-ca")["data"]["ca.crt"], options.testApi.caPem);

  // Only test pods may reach the API's pods, on the API port; the isolation
  // policy of the environment stays as it is.
  Json policy = client_.object(res::kNetworkPolicy, env, "patchgate-test-api");
  ASSERT_FALSE(policy.is_null());
  EXPECT_EQ(policy["spec"]["podSelector"]["matchExpressions"][0]["key"], api::v1alpha1::kLabelTest);
  EXPECT_EQ(policy["spec"]["policyTypes"], Json::array({"Egress"}));
  const Json& rule = policy["spec"]["egress"][0];
  EXPECT_EQ(rule["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"], "patchgate");
  EXPECT_EQ(rule["to"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"], "patchgate-system");
  EXPECT_EQ(rule["ports"][0]["port"], "api");
  EXPECT_EQ(client_.object(res::kNetworkPolicy, env, "patchgate-isolation")["spec"]["egress"].size(), 2u);
  EXPECT_EQ(job["spec"]["template"]["metadata"]["labels"][api::v1alpha1::kLabelTest], "smoke");
  // Resolved once per environment.
  EXPECT_EQ(client_.calls("get", "services").size(), 1u);
}

TEST_F(PatchReconcilerTest, TheApiCaInAnEnvironmentFollowsARenewedCertificate) {
  seedApiService(client_);
  auto options = serviceApiOptions();
  useOptions(options);
  createPatch("fix");
  reconcileUntil("fix", api::v1alpha1::phase::kProvisioning);
  ASSERT_TRUE(reconcile("fix").ok());
  std::string env = envNamespace("fix");
  // A CA from before a renewal is already there.
  client_.seed(res::kConfigMap, {{"apiVersion", "v1"}, {"kind", "ConfigMap"},
                                 {"metadata", {{"name", "patchgate-api-ca"}, {"namespace", env}}},
                                 {"data", {{"ca.crt", "old CA"}}}});
  markHealthy(res::kDeployment, env, "checkout");
  reconcileUntil("fix", api::v1alpha1::phase::kTesting);
  ASSERT_TRUE(reconcile("fix").ok());
  EXPECT_FALSE(client_.object(res::kJob, env, "pgt-smoke-1").is_null());
  EXPECT_EQ(client_.object(res::kConfigMap, env, "patchgate-api-ca")["data"]["ca.crt"], options.testApi.caPem);
}

// The operator's pair renewed while it runs (grpc/live_tls.h): environments
// made afterwards, and test pods started afterwards, get the CA of now.
TEST_F(PatchReconcilerTest, TestPodsTrustTheApiCaOfNowNotOfTheStart) {
  seedApiService(client_);
  auto options = serviceApiOptions();
  std::string ca = "CA at start\n";
  options.testApi.currentCa = [&ca] { return ca; };
  useOptions(options);
  createPatch("fix");
  reconcileUntil("fix", api::v1alpha1::phase::kProvisioning);
  ASSERT_TRUE(reconcile("fix").ok());
  std::string env = envNamespace("fix");
  ca = "CA renewed while it ran\n";
  markHealthy(res::kDeployment, env, "checkout");
  reconcileUntil("fix", api::v1alpha1::phase::kTesting);
  ASSERT_TRUE(reconcile("fix").ok());
  EXPECT_EQ(client_.object(res::kConfigMap, env, "patchgate-api-ca")["data"]["ca.crt"], ca);
}

TEST_F(PatchReconcilerTest, WithAFixedApiAddressTestPodsGetItAndAToken) {
  PatchReconcilerOptions options;
  options.testApi.address = "[fd00::1]:9443";
  options.testApi.caPem = "ca";
  useOptions(options);
  createPatch("fix");
  driveToTestJob("fix");
  std::string env = envNamespace("fix");
  Json job = client_.object(res::kJob, env, "pgt-smoke-1");
  EXPECT_EQ(job["spec"]["template"]["spec"]["automountServiceAccountToken"], false);
  EXPECT_EQ(jobEnv(job, "PATCHGATE_TOKEN_FILE"), "/var/run/patchgate/api/token");
  EXPECT_EQ(jobEnv(job, "PATCHGATE_API_ADDRESS"), "[fd00::1]:9443");
  EXPECT_EQ(jobEnv(job, "PATCHGATE_API_SERVER_NAME"), "fd00::1");
  Json rule = client_.object(res::kNetworkPolicy, env, "patchgate-test-api")["spec"]["egress"][0];
  EXPECT_EQ(rule["to"][0]["ipBlock"]["cidr"], "fd00::1/128");
  EXPECT_EQ(rule["ports"][0]["port"], 9443);
}

TEST_F(PatchReconcilerTest, AnOperatorRestartedWithoutTheTestApiGivesNoTokenWhereItWasProvisioned) {
  seedApiService(client_);
  useOptions(serviceApiOptions());
  createPatch("fix");
  for (int i = 0; i < 10 && jsonString(status("fix"), "/environment/testApi/address").empty(); ++i)
    ASSERT_TRUE(reconcile("fix").ok());
  ASSERT_FALSE(jsonString(status("fix"), "/environment/testApi/address").empty());
  useOptions({});  // restarted with --grpc-test-pods=false
  std::string env = envNamespace("fix");
  markHealthy(res::kDeployment, env, "checkout");
  reconcileUntil("fix", api::v1alpha1::phase::kTesting);
  ASSERT_TRUE(reconcile("fix").ok());
  Json job = client_.object(res::kJob, env, "pgt-smoke-1");
  ASSERT_FALSE(job.is_null());
  EXPECT_EQ(job["spec"]["template"]["spec"]["automountServiceAccountToken"], false);
  EXPECT_EQ(jobEnv(job, "PATCHGATE_API_ADDRESS"), "");
  EXPECT_TRUE(client_.object(res::kConfigMap, env, "patchgate-api-ca").is_null());
}

TEST_F(PatchReconcilerTest, AMissingApiServiceLetsTestsRunWithoutTheApiAndSaysSo) {
  useOptions(serviceApiOptions());  // the Service was never created
  createPatch("fix");
  driveToTestJob("fix");
  std::string env = envNamespace("fix");
  Json job = client_.object(res::kJob, env, "pgt-smoke-1");
  ASSERT_FALSE(job.is_null());
  EXPECT_EQ(job["spec"]["template"]["spec"]["automountServiceAccountToken"], false);
  EXPECT_EQ(jobEnv(job, "PATCHGATE_API_ADDRESS"), "");
  EXPECT_TRUE(recorder_.has("TestApiUnavailable"));
  EXPECT_NE(jsonString(status("fix"), "/environment/testApi/unavailable").find("not found"), std::string::npos);
  EXPECT_TRUE(client_.object(res::kNetworkPolicy, env, "patchgate-test-api").is_null());
  // The tests still decide: the Patch goes on.
  completeJobs(env);
  reconcileUntil("fix", api::v1alpha1::phase::kVerifying);
}

TEST_F(PatchReconcilerTest, AServiceWithoutSelectorCannotBeAdmittedSoTestsRunWithoutTheApi) {
  seedApiService(client_, /*withSelector=*/false);
  useOptions(serviceApiOptions());
  createPatch("fix");
  driveToTestJob("fix");
  EXPECT_EQ(jobEnv(client_.object(res::kJob, envNamespace("fix"), "pgt-smoke-1"), "PATCHGATE_API_ADDRESS"), "");
  EXPECT_NE(jsonString(status("fix"), "/environment/testApi/unavailable").find("no selector"), std::string::npos);
}

TEST_F(PatchReconcilerTest, AnApiServiceTheOperatorMayNotReadIsRecordedAsUnavailable) {
  seedApiService(client_);
  useOptions(serviceApiOptions());
  createPatch("fix");
  client_.failNext("get", kube::apiError(403, "Forbidden", "services is forbidden"), "services");
  driveToTestJob("fix");  // every reconcile succeeds: nothing to wait for
  EXPECT_NE(jsonString(status("fix"), "/environment/testApi/unavailable").find("not allowed"), std::string::npos);
  EXPECT_TRUE(recorder_.has("TestApiUnavailable"));
  EXPECT_EQ(jobEnv(client_.object(res::kJob, envNamespace("fix"), "pgt-smoke-1"), "PATCHGATE_API_ADDRESS"), "");
}

TEST_F(PatchReconcilerTest, ATestsOwnApiVariablesWinOverTheOperators) {
  seedApiService(client_);
  useOptions(serviceApiOptions());
  createPatch("fix", {{"tests", {{{"name", "smoke"}, {"image", "t:1"},
                                  {"env", {{{"name", "PATCHGATE_API_ADDRESS"}, {"value", "10.1.2.3:443"}}}}}}}});
  driveToTestJob("fix");
  Json job = client_.object(res::kJob, envNamespace("fix"), "pgt-smoke-1");
  int addresses = 0;
  for (const auto& e : job["spec"]["template"]["spec"]["containers"][0]["env"])
    if (e["name"] == "PATCHGATE_API_ADDRESS") ++addresses;
  EXPECT_EQ(addresses, 1);
  EXPECT_EQ(jobEnv(job, "PATCHGATE_API_ADDRESS"), "10.1.2.3:443");
  EXPECT_EQ(jobEnv(job, "PATCHGATE_API_SERVER_NAME"), "patchgate-api.patchgate-system.svc");  // still given
}

TEST_F(PatchReconcilerTest, AnApiServerHiccupWhileResolvingTheApiIsRetriedNotRecorded) {
  seedApiService(client_);
  useOptions(serviceApiOptions());
  createPatch("fix");
  client_.failNext("get", kube::transportError("connection refused"), "services");
  int errors = 0;
  for (int i = 0; i < 10 && jsonString(status("fix"), "/environment/testApi/address").empty(); ++i)
    if (!reconcile("fix").ok()) ++errors;
  EXPECT_EQ(errors, 1);
  EXPECT_FALSE(recorder_.has("TestApiUnavailable"));
  EXPECT_EQ(jsonString(status("fix"), "/environment/testApi/address"), "10.96.0.42:9443");
  EXPECT_EQ(client_.calls("get", "services").size(), 2u);
}

TEST(CheckTestApi, RefusesMalformedAddressesAndWarnsAboutNames) {
  auto check = [](const std::string& address) {
    PatchReconcilerOptions::TestApi api;
    api.address = address;
    return checkTestApi(api);
  };
  for (const char* bad : {"10.0.0.1", "10.0.0.1:0", "10.0.0.1:65536", "10.0.0.1:99999999999", "10.0.0.1:x",
                          ":9443", "fd00::1:9443", "[fd00::1]9443", "[fd00::1"}) {
    auto r = check(bad);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  ASSERT_TRUE(check("10.0.0.1:9443").ok());
  EXPECT_TRUE(check("10.0.0.1:9443")->empty());
  EXPECT_TRUE(check("[fd00::1]:9443")->empty());
  ASSERT_TRUE(check("operator.example:9443").ok());
  EXPECT_EQ(check("operator.example:9443")->size(), 1u);  // a NetworkPolicy cannot admit a name
}

TEST_F(PatchReconcilerTest, GoodPatchIsTestedPromotedVerifiedAndCleanedUp) {
  createPatch("fix");
  driveToVerifying("fix");
  std::string env = envNamespace("fix");

  // The environment: labelled namespace, patched copy at 1 replica, patched
  // config, the selecting Service (not the other one), quota and policy.
  Json ns = client_.object(res::kNamespace, "", env);
  EXPECT_EQ(ns["metadata"]["labels"][api::v1alpha1::kLabelEnvironment], "true");
  Json copy = client_.object(res::kDeployment, env, "checkout");
  EXPECT_EQ(copy["spec"]["replicas"], 1);
  EXPECT_EQ(copy["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"], "v2") << copy.dump();
  EXPECT_EQ(client_.object(res::kConfigMap, env, "checkout-config")["data"]["POOL"], "64");
  EXPECT_FALSE(client_.object(res::kService, env, "checkout").is_null());
  EXPECT_FALSE(client_.object(res::kService, env, "checkout")["spec"].contains("clusterIP"));
  EXPECT_TRUE(client_.object(res::kService, env, "other").is_null());
  EXPECT_FALSE(client_.object(res::kResourceQuota, env, "patchgate-environment").is_null());
  EXPECT_FALSE(client_.object(res::kNetworkPolicy, env, "patchgate-isolation").is_null());
  Json job = client_.object(res::kJob, env, "pgt-smoke-1");
  ASSERT_FALSE(job.is_null());
  EXPECT_EQ(job["spec"]["activeDeadlineSeconds"], 300);
  // No gRPC API address configured: test pods get no token.
  EXPECT_EQ(job["spec"]["template"]["spec"]["automountServiceAccountToken"], false);

  // Promotion: the rollback point (v1 + POOL=16) is created before production
  // is patched, and the patch carries the resourceVersion precondition.
  auto calls = client_.calls();
  auto revIt = std::find_if(calls.begin(), calls.end(), [](auto& c) {
    return c.verb == "create" && c.resource == "controllerrevisions";
  });
  auto prodIt = std::find_if(calls.begin(), calls.end(), [](auto& c) {
    return c.verb == "patch" && c.resource == "deployments" && c.ns == "shop" && !c.dryRun &&
           c.body.is_object() && c.body.contains("metadata");
  });
  ASSERT_NE(revIt, calls.end());
  ASSERT_NE(prodIt, calls.end());
  EXPECT_LT(revIt - calls.begin(), prodIt - calls.begin());
  EXPECT_FALSE(prodIt->body["metadata"].value("resourceVersion", "").empty());
  Json rev = client_.object(res::kControllerRevision, "shop", "checkout-pg-1");
  EXPECT_EQ(rev["revision"], 1);
  EXPECT_EQ(rev["data"]["template"]["spec"]["containers"][0]["env"][0]["value"], "v1");
  EXPECT_EQ(rev["data"]["configs"][0]["data"]["POOL"], "16");
  EXPECT_EQ(rev["metadata"]["annotations"][api::v1alpha1::kAnnotationTicket], "INC-1");

  // Production now runs the change; once healthy the Patch succeeds. (The
  // fake applies strategic patches as merge patches: lists are replaced,
  // which is why the test's patch repeats envFrom.)
  Json prod = client_.object(res::kDeployment, "shop", "checkout");
  EXPECT_EQ(prod["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"], "v2");
  EXPECT_EQ(client_.object(res::kConfigMap, "shop", "checkout-config")["data"]["POOL"], "64");
  bakeToSuccess("fix");
  EXPECT_TRUE(runtime::isConditionTrue(status("fix")["conditions"], condition::kReady));
  EXPECT_TRUE(runtime::isConditionTrue(status("fix")["conditions"], condition::kVerified));
  EXPECT_EQ(status("fix")["tests"][0]["result"], "Passed");
  EXPECT_TRUE(recorder_.has(reason::kPromoted));

  // The environment goes after its TTL, not before.
  ASSERT_TRUE(reconcile("fix").ok());
  EXPECT_FALSE(client_.object(res::kNamespace, "", env).is_null());
  clock_.advance(std::chrono::seconds(61));
  ASSERT_TRUE(reconcile("fix").ok());
  Json gone = client_.object(res::kNamespace, "", env);
  EXPECT_TRUE(gone.is_null() || gone["metadata"].contains("deletionTimestamp"));
}

TEST_F(PatchReconcilerTest, MissingTargetFailsWithoutRetryOrSideEffects) {
  client_.erase(res::kDeployment, "shop", "checkout");
  createPatch("fix");
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(reconcile("fix").ok());
  EXPECT_EQ(phase("fix"), api::v1alpha1::phase::kFailed);
  Json st = status("fix");
  const Json& c = runtime::findCondition(st["conditions"], condition::kValidated);
  EXPECT_EQ(c["reason"], reason::kTargetNotFound);
  EXPECT_NE(c["message"].get<std::string>().find("Deployment shop/checkout not found"), std::string::npos);
  EXPECT_TRUE(client_.calls("create", "namespaces").empty());
  EXPECT_TRUE(recorder_.has(reason::kTargetNotFound));
  auto r = reconcile("fix");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->requeueAfter.has_value());  // no retry storm
}

// A target with host access is never copied next to test images someone
// chose: it fails validation, before any namespace exists.
TEST_F(PatchReconcilerTest, ATargetWithHostAccessIsNotCopiedIntoATestEnvironment) {
  Json prod = client_.object(res::kDeployment, "shop", "checkout");
  prod["spec"]["template"]["spec"]["volumes"] = Json::parse(R"([{"name": "docker", "hostPath": {"path": "/var/run"}}])");
  client_.seed(res::kDeployment, prod);
  createPatch("fix");
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(reconcile("fix").ok());
  EXPECT_EQ(phase("fix"), api::v1alpha1::phase::kFailed);
  Json st = status("fix");
  const Json& c = runtime::findCondition(st["conditions"], condition::kValidated);
  EXPECT_EQ(c["reason"], reason::kUnsafeForEnvironment);
  EXPECT_NE(c["message"].get<std::string>().find("/var/run (hostPath volume docker)"), std::string::npos) << c.dump();
  EXPECT_TRUE(client_.calls("create", "namespaces").empty());
}

// The copy cannot preempt production (no priority class), is not pinned to
// production's node, and carries no GitOps tracking metadata.
TEST_F(PatchReconcilerTest, TheCopyHasNoPriorityNodeOrGitOpsTracking) {
  Json prod = client_.object(res::kDeployment, "shop", "checkout");
  prod["spec"]["template"]["spec"]["priorityClassName"] = "system-cluster-critical";
  prod["spec"]["template"]["spec"]["priority"] = 2000000000;
  prod["spec"]["template"]["spec"]["nodeName"] = "prod-node-1";
  prod["metadata"]["labels"] = {{"kustomize.toolkit.fluxcd.io/name", "apps"}, {"team", "payments"}};
  prod["metadata"]["annotations"] = {{"argocd.argoproj.io/tracking-id", "shop:apps/Deployment:shop/checkout"}};
  client_.seed(res::kDeployment, prod);
  createPatch("fix");
  reconcileUntil("fix", api::v1alpha1::phase::kProvisioning);
  ASSERT_TRUE(reconcile("fix").ok());
  Json copy = client_.object(res::kDeployment, envNamespace("fix"), "checkout");
  ASSERT_TRUE(copy.is_object()) << "no copy";
  const Json& pod = copy["spec"]["template"]["spec"];
  EXPECT_FALSE(pod.contains("priorityClassName")) << pod.dump();
  EXPECT_FALSE(pod.contains("priority"));
  EXPECT_FALSE(pod.contains("nodeName"));
  EXPECT_EQ(jsonString(client_.object(res::kNamespace, "", envNamespace("fix")),
                       "/metadata/labels/pod-security.kubernetes.io~1enforce"), "baseline");
  EXPECT_EQ(jsonString(copy, "/metadata/labels/team"), "payments");
  EXPECT_FALSE(copy["metadata"]["labels"].contains("kustomize.toolkit.fluxcd.io/name"));
  EXPECT_FALSE(copy["metadata"].contains("annotations") &&
               copy["metadata"]["annotations"].contains("argocd.argoproj.io/tracking-id"));
}

// A Secret change's diff names the keys that change, never anything derived
// from a value.
TEST_F(PatchReconcilerTest, ASecretChangesDiffSaysChangedAndNothingMore) {
  client_.seed(res::kSecret, Json::parse(R"({"apiVersion":"v1","kind":"Secret",
      "metadata":{"name":"db","namespace":"shop"},"data":{"password":"aHVudGVyMg==","user":"YXBw"}})"));
  client_.seed(res::kSecret, Json::parse(R"({"apiVersion":"v1","kind":"Secret",
      "metadata":{"name":"db-new","namespace":"shop"},"data":{"password":"czNjcjN0"}})"));
  createPatch("fix", {{"change", {{"patch", "{}"},
                                  {"config", {{{"kind", "Secret"}, {"name", "db"}, {"fromSecret", "db-new"}}}}}}});
  reconcileUntil("fix", api::v1alpha1::phase::kProvisioning);
  std::string diff = status("fix").value("diff", "");
  EXPECT_NE(diff.find("Secret/db:"), std::string::npos) << diff;
  EXPECT_NE(diff.find("/password: \"(hidden)\" -> \"(changed)\""), std::string::npos) << diff;
  EXPECT_EQ(diff.find("user"), std::string::npos) << "an unchanged key is not in the diff: " << diff;
  for (const char* leak : {"czNjcjN0", "aHVudGVyMg", "s3cr3t", "hunter2"})
    EXPECT_EQ(diff.find(leak), std::string::npos) << leak << " in " << diff;
  Json st = status("fix");
  EXPECT_EQ(st.dump().find("czNjcjN0"), std::string::npos);
}

TEST_F(PatchReconcilerTest, AHostileChangeTextFailsValidationWithAShortMessage) {
  // 10 MiB of change text (the API server's CRD allows 1 MiB; an older CRD
  // did not bound it): Validated=False, InvalidSpec, no retry, nothing created.
  createPatch("huge", {{"change", {{"patch", "a: '" + std::string(10 << 20, 'x') + "'"}}}});
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(reconcile("huge").ok());
  EXPECT_EQ(phase("huge"), api::v1alpha1::phase::kFailed);
  Json st = status("huge");
  const Json& c = runtime::findCondition(st["conditions"], condition::kValidated);
  EXPECT_EQ(c["status"], "False");
  EXPECT_EQ(c["reason"], reason::kInvalidSpec);
  EXPECT_NE(c["message"].get<std::string>().find("spec.change.patch: too long"), std::string::npos);
  EXPECT_LT(c["message"].get<std::string>().size(), 200u);
  EXPECT_TRUE(client_.calls("create", "namespaces").empty());
}

TEST_F(PatchReconcilerTest, FailedTestLeavesProductionUntouchedAndKeepsTheEnvironment) {
  createPatch("fix");
  reconcileUntil("fix", api::v1alpha1::phase::kProvisioning);
  ASSERT_TRUE(reconcile("fix").ok());
  markHealthy(res::kDeployment, envNamespace("fix"), "checkout");
  reconcileUntil("fix", api::v1alpha1::phase::kTesting);
  ASSERT_TRUE(reconcile("fix").ok());
  completeJobs(envNamespace("fix"), "Failed");
  reconcileUntil("fix", api::v1alpha1::phase::kFailed);
  EXPECT_EQ(status("fix")["tests"][0]["result"], "Failed");
  EXPECT_TRUE(client_.calls("create", "controllerrevisions").empty());
  for (const auto& c : client_.calls("patch", "deployments")) {
    if (!c.dryRun) {
      EXPECT_NE(c.ns, "shop") << "production patched";
    }
  }
  clock_.advance(std::chrono::hours(1));
  ASSERT_TRUE(reconcile("fix").ok());
  EXPECT_FALSE(client_.object(res::kNamespace, "", envNamespace("fix")).is_null());  // keepOnFailure
  EXPECT_EQ(status("fix")["environment"]["kept"], true);
  // Kept for a day (keepOnFailureSeconds), not for ever: it may hold
  // copies of production Secrets.
  clock_.advance(std::chrono::hours(22));
  auto r = reconcile("fix");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->requeueAfter.has_value()) << "looked at again when it expires";
  EXPECT_FALSE(client_.object(res::kNamespace, "", envNamespace("fix")).is_null());
  clock_.advance(std::chrono::hours(1) + std::chrono::seconds(1));
  ASSERT_TRUE(reconcile("fix").ok());
  Json ns = client_.object(res::kNamespace, "", envNamespace("fix"));
  EXPECT_TRUE(ns.is_null() || ns["metadata"].contains("deletionTimestamp")) << "a failed environment never expired";
  EXPECT_TRUE(status("fix")["environment"].contains("deletedAt"));
}

TEST_F(PatchReconcilerTest, DriftForcesARetestInsteadOfPromotion) {
  createPatch("fix");
  reconcileUntil("fix", api::v1alpha1::phase::kProvisioning);
  ASSERT_TRUE(reconcile("fix").ok());
  std::string firstEnv = envNamespace("fix");
  markHealthy(res::kDeployment, firstEnv, "checkout");
  reconcileUntil("fix", api::v1alpha1::phase::kTesting);
  ASSERT_TRUE(reconcile("fix").ok());
  // Someone edits production while the tests run.
  Json prod = client_.object(res::kDeployment, "shop", "checkout");
  prod["spec"]["template"]["spec"]["containers"][0]["env"].push_back({{"name", "HOTFIX"}, {"value", "1"}});
  client_.seed(res::kDeployment, prod);
  completeJobs(firstEnv);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(reconcile("fix").ok());
  EXPECT_EQ(status("fix")["retests"], 1);
  EXPECT_TRUE(recorder_.has(reason::kDriftDetected));
  EXPECT_TRUE(client_.calls("create", "controllerrevisions").empty());
  EXPECT_NE(envNamespace("fix"), firstEnv);
  Json old = client_.object(res::kNamespace, "", firstEnv);
  EXPECT_TRUE(old.is_null() || old["metadata"].contains("deletionTimestamp"));
}

TEST_F(PatchReconcilerTest, UnhealthyPromotionIsRolledBackAfterTheTimeout) {
  createPatch("fix");
  driveToVerifying("fix");
  // Production never becomes healthy with the change.
  clock_.advance(std::chrono::seconds(121));
  reconcileUntil("fix", api::v1alpha1::phase::kRollingBack);
  // RolledBack only once the restored workload is healthy.
  ASSERT_TRUE(reconcile("fix").ok());
  EXPECT_EQ(phase("fix"), api::v1alpha1::phase::kRollingBack);
  markHealthy(res::kDeployment, "shop", "checkout");
  reconcileUntil("fix", api::v1alpha1::phase::kRolledBack);
  Json prod = client_.object(res::kDeployment, "shop", "checkout");
  EXPECT_EQ(prod["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"], "v1");
  EXPECT_EQ(client_.object(res::kConfigMap, "shop", "checkout-config")["data"]["POOL"], "16");
  EXPECT_TRUE(runtime::isConditionTrue(status("fix")["conditions"], condition::kRolledBack));
  EXPECT_TRUE(runtime::isConditionTrue(status("fix")["conditions"], condition::kStalled));
  EXPECT_NE(status("fix")["rollback"]["reason"].get<std::string>().find("not healthy within 120s"),
            std::string::npos);
}

TEST_F(PatchReconcilerTest, OneChangePerTargetEmergenciesFirst) {
  createPatch("first");
  reconcileUntil("first", api::v1alpha1::phase::kProvisioning);
  clock_.advance(std::chrono::seconds(1));
  createPatch("second");
  clock_.advance(std::chrono::seconds(1));
  createPatch("urgent", {{"priority", "emergency"}});
  ASSERT_TRUE(reconcile("second").ok());
  ASSERT_TRUE(reconcile("second").ok());
  ASSERT_TRUE(reconcile("urgent").ok());
  ASSERT_TRUE(reconcile("urgent").ok());
  EXPECT_EQ(phase("second"), api::v1alpha1::phase::kQueued);
  EXPECT_EQ(phase("urgent"), api::v1alpha1::phase::kQueued);
  EXPECT_NE(status("second")["message"].get<std::string>().find("waiting for patch first"), std::string::npos);
  // first finishes (fails here); urgent goes next although second is older.
  Json first = client_.object(res::kPatch, "shop", "first");
  first["status"]["phase"] = api::v1alpha1::phase::kFailed;
  store_.upsert(client_.seed(res::kPatch, first));
  ASSERT_TRUE(reconcile("second").ok());
  ASSERT_TRUE(reconcile("urgent").ok());
  EXPECT_EQ(phase("second"), api::v1alpha1::phase::kQueued);
  EXPECT_NE(status("second")["message"].get<std::string>().find("next up: urgent"), std::string::npos);
  EXPECT_EQ(phase("urgent"), api::v1alpha1::phase::kProvisioning);
}

TEST_F(PatchReconcilerTest, StatusIsNotWrittenWhenNothingChanged) {
  createPatch("fix");
  client_.erase(res::kDeployment, "shop", "checkout");
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(reconcile("fix").ok());
  client_.clearCalls();
  ASSERT_TRUE(reconcile("fix").ok());
  EXPECT_TRUE(client_.calls("updateStatus").empty());
}

TEST_F(PatchReconcilerTest, AStaleSnapshotIsSkipped) {
  createPatch("fix");
  Json stale = client_.object(res::kPatch, "shop", "fix");
  reconcileUntil("fix", api::v1alpha1::phase::kProvisioning);
  client_.clearCalls();
  runtime::ReconcileContext ctx{"test", testing::quietLogger(), 0};
  auto r = reconciler_.reconcile(std::make_shared<const Json>(stale), ctx);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, runtime::Action::retryWithBackoff()) << "looked at again through the rate limiter";
  EXPECT_TRUE(client_.calls().empty()) << "acted on a snapshot older than its own write";
}

TEST_F(PatchReconcilerTest, DeletionRemovesTheEnvironmentThenTheFinalizer) {
  createPatch("fix");
  reconcileUntil("fix", api::v1alpha1::phase::kProvisioning);
  ASSERT_TRUE(reconcile("fix").ok());
  std::string env = envNamespace("fix");
  ASSERT_TRUE(client_.remove(res::kPatch, "shop", "fix", {}).ok());
  ASSERT_TRUE(reconcile("fix").ok());
  Json ns = client_.object(res::kNamespace, "", env);
  EXPECT_TRUE(ns.is_null() || ns["metadata"].contains("deletionTimestamp"));
  EXPECT_TRUE(client_.object(res::kPatch, "shop", "fix").is_null()) << "finalizer not removed";
}

TEST_F(PatchReconcilerTest, StatefulSetTargetKeepsItsHeadlessServiceAndUsesItsHealthRule) {
  client_.seed(res::kStatefulSet, Json::parse(R"({"apiVersion":"apps/v1","kind":"StatefulSet",
      "metadata":{"name":"db","namespace":"shop"},
      "spec":{"replicas":3,"serviceName":"db","selector":{"matchLabels":{"app":"db"}},
        "template":{"metadata":{"labels":{"app":"db"}},"spec":{"containers":[{"name":"db","image":"db:1"}]}}}})"));
  client_.seed(res::kService, Json::parse(R"({"apiVersion":"v1","kind":"Service",
      "metadata":{"name":"db","namespace":"shop"},"spec":{"clusterIP":"None","selector":{"app":"db"}}})"));
  Json p = Json::parse(R"({"apiVersion":"patchgate.dev/v1alpha1","kind":"Patch",
      "metadata":{"name":"db-fix","namespace":"shop"},
      "spec":{"target":{"kind":"StatefulSet","name":"db"},"change":{"image":"db:2"},
        "ticket":"INC-9","rootCause":"slow queries","tests":[{"name":"smoke","image":"t:1"}]}})");
  store_.upsert(client_.seed(res::kPatch, p));
  auto markSts = [&](const std::string& ns, bool rolled) {
    Json s = client_.object(res::kStatefulSet, ns, "db");
    int64_t n = jsonInt(s, "/spec/replicas", 1);
    s["status"] = {{"observedGeneration", jsonInt(s, "/metadata/generation", 1)}, {"replicas", n},
                   {"updatedReplicas", n}, {"readyReplicas", n}, {"currentRevision", rolled ? "r2" : "r1"},
                   {"updateRevision", "r2"}};
    client_.seed(res::kStatefulSet, s);
  };
  reconcileUntil("db-fix", api::v1alpha1::phase::kProvisioning);
  ASSERT_TRUE(reconcile("db-fix").ok());
  std::string env = envNamespace("db-fix");
  EXPECT_EQ(client_.object(res::kService, env, "db")["spec"]["clusterIP"], "None");
  EXPECT_EQ(client_.object(res::kStatefulSet, env, "db")["spec"]["replicas"], 1);
  markSts(env, true);
  reconcileUntil("db-fix", api::v1alpha1::phase::kTesting);
  ASSERT_TRUE(reconcile("db-fix").ok());
  completeJobs(env);
  reconcileUntil("db-fix", api::v1alpha1::phase::kVerifying);
  EXPECT_EQ(client_.object(res::kStatefulSet, "shop", "db")["spec"]["template"]["spec"]["containers"][0]["image"],
            "db:2");
  markSts("shop", false);  // pods updated but the revision has not settled yet
  ASSERT_TRUE(reconcile("db-fix").ok());
  EXPECT_EQ(phase("db-fix"), api::v1alpha1::phase::kVerifying);
  markSts("shop", true);
  ASSERT_TRUE(reconcile("db-fix").ok());  // the bake starts
  clock_.advance(std::chrono::seconds(31));
  reconcileUntil("db-fix", api::v1alpha1::phase::kSucceeded);
}

TEST_F(PatchReconcilerTest, ApprovalByTheAuthorIsRefusedAnotherUsersPromotesStaleOnesAreVoid) {
  createPatch("fix", {{"author", "alice"}, {"promotion", {{"approval", {{"required", true}}}}}});
  driveToAwaitingApproval("fix");
  auto approval = [&](const std::string& name, const std::string& who) { approve("fix", name, who); };
  approval("self", "alice");
  ASSERT_TRUE(reconcile("fix").ok());
  EXPECT_EQ(phase("fix"), api::v1alpha1::phase::kAwaitingApproval);
  EXPECT_TRUE(recorder_.has(reason::kApprovalRefused));
  EXPECT_TRUE(client_.calls("create", "controllerrevisions").empty());

  clock_.advance(std::chrono::seconds(5));
  approval("bob-early", "bob");
  // Production changed under the patch afterwards and it was re-tested:
  // bob's earlier approval no longer counts.
  Json p = client_.object(res::kPatch, "shop", "fix");
  p["status"]["retestedAt"] = formatTime(clock_.now() + std::chrono::seconds(10));
  client_.seed(res::kPatch, p);
  ASSERT_TRUE(reconcile("fix").ok());
  EXPECT_EQ(phase("fix"), api::v1alpha1::phase::kAwaitingApproval);

  clock_.advance(std::chrono::seconds(30));
  approval("bob", "bob");
  reconcileUntil("fix", api::v1alpha1::phase::kVerifying);
  Json st = status("fix");
  const Json& approved = runtime::findCondition(st["conditions"], condition::kApproved);
  EXPECT_EQ(approved["status"], "True");
  EXPECT_NE(approved["message"].get<std::string>().find("bob"), std::string::npos);
}


// ---- crash safety: the write-ahead intent ------------------------------------

absl::Status conflict() { return kube::apiError(409, "Conflict", "the object has been modified"); }
absl::Status unavailable() { return absl::UnavailableError("connection reset"); }

int countEvents(RecordingRecorder& r, const std::string& reason) {
  std::lock_guard lock(r.mu);
  return static_cast<int>(std::count_if(r.events.begin(), r.events.end(), [&](auto& e) { return e[1] == reason; }));
}

// Whoever may create PatchApprovals cannot grow the status without bound with
// refused ones: the records that count are kept, then the newest others.
TEST_F(PatchReconcilerTest, RefusedApprovalsCannotGrowTheStatusWithoutBound) {
  createPatch("fix", {{"author", "alice"}, {"promotion", {{"approval", {{"required", true}, {"approvers", 2}}}}}});
  driveToAwaitingApproval("fix");
  approve("fix", "bob", "bob");
  for (int i = 0; i < 100; ++i) {
    clock_.advance(std::chrono::seconds(1));
    approve("fix", absl::StrCat("self-", 100 + i), "alice");
    approve("fix", absl::StrCat("bob-again-", 100 + i), "bob");
  }
  ASSERT_TRUE(reconcile("fix").ok());
  Json st = status("fix");
  ASSERT_EQ(st["approvals"].size(), 20u) << st["approvals"].dump();
  EXPECT_EQ(st["approvals"][0]["name"], "bob");
  EXPECT_EQ(st["approvals"][0]["valid"], true);
  EXPECT_EQ(st["approvals"][1]["name"], "self-199") << "the newest refused ones are kept";
  EXPECT_EQ(st["refusedApprovals"].size(), 80u);
  EXPECT_EQ(countEvents(recorder_, reason::kApprovalRefused), 80);
  // Settled: another pass writes nothing and tells nothing again.
  client_.clearCalls();
  ASSERT_TRUE(reconcile("fix").ok());
  EXPECT_TRUE(client_.calls("updateStatus").empty()) << "the status churns";
  EXPECT_EQ(countEvents(recorder_, reason::kApprovalRefused), 80);
  EXPECT_EQ(phase("fix"), api::v1alpha1::phase::kAwaitingApproval);
  clock_.advance(std::chrono::seconds(1));
  approve("fix", "carol", "carol");
  reconcileUntil("fix", api::v1alpha1::phase::kVerifying);
}

// Two approvals are two people: a ServiceAccount (any pod's token, or one a
// user mints) or a system identity never counts, however many of them.
TEST_F(PatchReconcilerTest, ServiceAccountsAndSystemIdentitiesDoNotCountAsApprovers) {
  createPatch("fix", {{"author", "alice"}, {"promotion", {{"approval", {{"required", true}, {"approvers", 2}}}}}});
  driveToAwaitingApproval("fix");
  auto approval = [&](const std::string& name, const std::string& who) { approve("fix", name, who); };
  approval("bob", "bob");
  approval("bot", "system:serviceaccount:shop:ci-bot");
  approval("bot2", "system:serviceaccount:other:deployer");
  approval("admin", "system:admin");
  ASSERT_TRUE(reconcile("fix").ok());
  EXPECT_EQ(phase("fix"), api::v1alpha1::phase::kAwaitingApproval) << "one person and three non-persons approved";
  Json st = status("fix");
  int refused = 0;
  for (const auto& a : st["approvals"])
    if (a.value("valid", true) == false) {
      ++refused;
      EXPECT_NE(a.value("why", "").find("not a person"), std::string::npos) << a.dump();
    }
  EXPECT_EQ(refused, 3);
  EXPECT_EQ(countEvents(recorder_, reason::kApprovalRefused), 3);
  ASSERT_TRUE(reconcile("fix").ok());
  EXPECT_EQ(countEvents(recorder_, reason::kApprovalRefused), 3) << "each refusal is told once";
  approval("carol", "carol");
  reconcileUntil("fix", api::v1alpha1::phase::kVerifying);
}

// Index of the first call matching, or -1.
int callIndex(const std::vector<FakeClient::Call>& calls, const std::string& verb, const std::string& resource,
              const std::string& ns = "shop") {
  for (size_t i = 0; i < calls.size(); ++i)
    if (calls[i].verb == verb && calls[i].resource == resource && calls[i].ns == ns && !calls[i].dryRun)
      return static_cast<int>(i);
  return -1;
}

std::string prodVersion(FakeClient& c) {
  return jsonString(c.object(res::kDeployment, "shop", "checkout"), "/spec/template/spec/containers/0/env/0/value");
}

TEST_F(PatchReconcilerTest, TheIntentIsDurableBeforeProductionIsTouchedAndALostStatusWriteIsRecognised) {
  createPatch("fix");
  driveToPromotion("fix");
  client_.clearCalls();
  // Pass 1 dies at the workload write (a crash, a network cut).
  client_.failNext("patch", unavailable(), "deployments");
  EXPECT_FALSE(reconcile("fix").ok());
  Json st = status("fix");
  EXPECT_EQ(jsonString(st, "/intent/action"), "Promote") << st.dump(2);
  EXPECT_EQ(jsonString(st, "/intent/revision"), "checkout-pg-1");
  auto calls = client_.calls();
  int intentWrite = callIndex(calls, "updateStatus", "patches");
  int configWrite = callIndex(calls, "patch", "configmaps");
  int workloadWrite = callIndex(calls, "patch", "deployments");
  ASSERT_GE(intentWrite, 0);
  EXPECT_LT(intentWrite, configWrite) << "config written before the intent was durable";
  EXPECT_LT(configWrite, workloadWrite) << "config must go before the workload";
  EXPECT_EQ(prodVersion(client_), "v1");

  // Pass 2 writes production, then its status write is refused (409).
  client_.failNext("updateStatus", conflict(), "patches");
  auto refused = reconcile("fix");
  ASSERT_TRUE(refused.ok()) << refused.status();
  EXPECT_EQ(*refused, runtime::Action::retryWithBackoff()) << "a conflict is retried through the rate limiter";
  EXPECT_EQ(prodVersion(client_), "v2");
  Json prod = client_.object(res::kDeployment, "shop", "checkout");
  EXPECT_EQ(jsonString(prod, "/metadata/annotations/patchgate.dev~1last-write"),
            jsonString(client_.object(res::kPatch, "shop", "fix"), "/metadata/uid") + "/Promote");
  EXPECT_EQ(jsonString(status("fix"), "/intent/action"), "Promote") << "the status write was refused";
  EXPECT_EQ(countEvents(recorder_, reason::kPromoted), 0) << "an event for a transition that did not land";

  // Pass 3 recognises the landed write: Verifying, no drift, no re-test.
  reconcileUntil("fix", api::v1alpha1::phase::kVerifying);
  EXPECT_FALSE(status("fix").contains("intent"));
  EXPECT_FALSE(status("fix").contains("retests"));
  EXPECT_FALSE(recorder_.has(reason::kDriftDetected));
  EXPECT_EQ(client_.objects(res::kControllerRevision, "shop").size(), 1u);
  EXPECT_EQ(countEvents(recorder_, reason::kPromoted), 1);
  bakeToSuccess("fix");
}

TEST_F(PatchReconcilerTest, ProductionChangedBetweenTheIntentAndTheWritePutsConfigBackAndRetests) {
  createPatch("fix");
  driveToPromotion("fix");
  client_.failNext("patch", unavailable(), "deployments");
  EXPECT_FALSE(reconcile("fix").ok());
  EXPECT_EQ(client_.object(res::kConfigMap, "shop", "checkout-config")["data"]["POOL"], "64");
  Json prod = client_.object(res::kDeployment, "shop", "checkout");
  prod["spec"]["template"]["spec"]["containers"][0]["env"].push_back({{"name", "HOTFIX"}, {"value", "1"}});
  client_.seed(res::kDeployment, prod);
  ASSERT_TRUE(reconcile("fix").ok());
  EXPECT_EQ(client_.object(res::kConfigMap, "shop", "checkout-config")["data"]["POOL"], "16");
  EXPECT_EQ(phase("fix"), api::v1alpha1::phase::kProvisioning);
  EXPECT_EQ(status("fix")["retests"], 1);
  EXPECT_FALSE(status("fix").contains("intent"));
  EXPECT_EQ(prodVersion(client_), "v1");
}

TEST_F(PatchReconcilerTest, OurLandedWriteChangedAfterwardsIsReportedAsReverted) {
  createPatch("fix");
  driveToPromotion("fix");
  client_.failNext("patch", unavailable(), "deployments");
  EXPECT_FALSE(reconcile("fix").ok());
  client_.failNext("updateStatus", conflict(), "patches");
  EXPECT_TRUE(reconcile("fix").ok());  // production written, status lost
  Json prod = client_.object(res::kDeployment, "shop", "checkout");
  prod["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = "v1";  // a person undoes it
  client_.seed(res::kDeployment, prod);
  markHealthy(res::kDeployment, "shop", "checkout");
  reconcileUntil("fix", api::v1alpha1::phase::kFailed);
  Json c = runtime::findCondition(status("fix")["conditions"], condition::kReady);
  EXPECT_EQ(c["reason"], reason::kReverted) << status("fix").dump(2);
  EXPECT_EQ(client_.objects(res::kControllerRevision, "shop").size(), 1u);
}

TEST_F(PatchReconcilerTest, AWorkloadWriteRefusedForGoodFailsWithTheServersWordsAndPutsConfigBack) {
  createPatch("fix");
  driveToPromotion("fix");
  client_.failNext("patch", kube::apiError(422, "Invalid", "spec.template.spec.containers[0].image: Required value"),
                   "deployments");
  auto r = reconcile("fix");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->requeueAfter.has_value()) << "a lasting 4xx must not be retried";
  EXPECT_EQ(phase("fix"), api::v1alpha1::phase::kFailed);
  Json c = runtime::findCondition(status("fix")["conditions"], condition::kReady);
  EXPECT_EQ(c["reason"], reason::kChangeRejected);
  EXPECT_NE(c["message"].get<std::string>().find("image: Required value"), std::string::npos);
  EXPECT_EQ(client_.object(res::kConfigMap, "shop", "checkout-config")["data"]["POOL"], "16");
  EXPECT_EQ(prodVersion(client_), "v1");
  EXPECT_FALSE(status("fix").contains("intent"));
}

TEST_F(PatchReconcilerTest, ProductionWritesAreFencedByTheLease) {
  bool leading = true;
  PatchReconcilerOptions o;
  o.leading = [&leading] { return leading; };
  useOptions(o);
  createPatch("fix");
  driveToPromotion("fix");
  leading = false;  // the lease could not be renewed in time
  client_.clearCalls();
  auto r = reconcile("fix");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  for (const auto& c : client_.calls()) {
    if (c.ns == "shop" && !c.dryRun && (c.resource == "deployments" || c.resource == "configmaps")) {
      EXPECT_NE(c.verb, "patch") << "wrote production without the lease";
    }
  }
  leading = true;
  reconcileUntil("fix", api::v1alpha1::phase::kVerifying);
  EXPECT_EQ(prodVersion(client_), "v2");
}

TEST_F(PatchReconcilerTest, TransitionEventsAreEmittedOnceTheirStatusLanded) {
  createPatch("fix");
  // Up to the pass that validates: it is the one whose status write fails.
  for (int i = 0; i < 5 && !client_.object(res::kPatch, "shop", "fix")["metadata"].contains("finalizers"); ++i)
    ASSERT_TRUE(reconcile("fix").ok());
  ASSERT_EQ(countEvents(recorder_, reason::kValidated), 0);
  client_.failNext("updateStatus", conflict(), "patches");
  ASSERT_TRUE(reconcile("fix").ok());
  EXPECT_TRUE(phase("fix").empty() || phase("fix") == api::v1alpha1::phase::kPending) << "the write was refused";
  EXPECT_EQ(countEvents(recorder_, reason::kValidated), 0) << "an event for a transition that did not land";
  ASSERT_TRUE(reconcile("fix").ok());
  EXPECT_EQ(phase("fix"), api::v1alpha1::phase::kProvisioning);
  EXPECT_EQ(countEvents(recorder_, reason::kValidated), 1);
}

TEST_F(PatchReconcilerTest, AnExactRevertOfOurLandedWriteIsNotWrittenAgain) {
  createPatch("fix");
  driveToPromotion("fix");
  Json base = client_.object(res::kDeployment, "shop", "checkout");
  client_.failNext("patch", unavailable(), "deployments");
  EXPECT_FALSE(reconcile("fix").ok());
  client_.failNext("updateStatus", conflict(), "patches");
  EXPECT_TRUE(reconcile("fix").ok());  // our write landed, its status did not
  // GitOps puts the old spec back exactly; our annotation stays on the object.
  Json prod = client_.object(res::kDeployment, "shop", "checkout");
  prod["spec"] = base["spec"];
  client_.seed(res::kDeployment, prod);
  markHealthy(res::kDeployment, "shop", "checkout");
  client_.clearCalls();
  reconcileUntil("fix", api::v1alpha1::phase::kFailed);
  for (const auto& c : client_.calls("patch", "deployments")) {
    EXPECT_TRUE(c.dryRun || c.ns != "shop") << "wrote production again over a revert: " << c.body.dump();
  }
  EXPECT_EQ(runtime::findCondition(status("fix")["conditions"], condition::kReady)["reason"], reason::kReverted);
}

TEST_F(PatchReconcilerTest, AnApprovalChangeAfterTheIntentCannotStrandProduction) {
  createPatch("fix", {{"author", "alice"}, {"promotion", {{"approval", {{"required", true}}}}}});
  driveToTestJob("fix");
  completeJobs(envNamespace("fix"));
  reconcileUntil("fix", api::v1alpha1::phase::kAwaitingApproval);
  Json patch = client_.object(res::kPatch, "shop", "fix");
  auto approval = [&](const std::string& name, const std::string& who, const std::string& decision) {
    client_.seed(res::kPatchApproval,
                 {{"apiVersion", "patchgate.dev/v1alpha1"}, {"kind", "PatchApproval"},
                  {"metadata", {{"name", name}, {"namespace", "shop"}}},
                  {"spec", {{"patch", "fix"}, {"patchUID", patch["metadata"]["uid"]}, {"decision", decision},
                            {"patchGeneration", patch["metadata"]["generation"]}, {"approver", who}}}});
  };
  approval("bob", "bob", "approve");
  client_.failNext("patch", unavailable(), "deployments");
  EXPECT_FALSE(reconcile("fix").ok());  // the intent is recorded, config written
  ASSERT_EQ(jsonString(status("fix"), "/intent/action"), "Promote");
  approval("carol", "carol", "reject");  // too late: the write may have landed
  client_.erase(res::kPatchApproval, "shop", "bob");
  reconcileUntil("fix", api::v1alpha1::phase::kVerifying);
  EXPECT_EQ(prodVersion(client_), "v2");
}

TEST_F(PatchReconcilerTest, ARollbackPointMadeForAnOlderBaseIsMadeAgain) {
  createPatch("fix");
  driveToPromotion("fix");
  client_.failNext("updateStatus", unavailable(), "patches");  // dies after the revision, before the intent
  EXPECT_FALSE(reconcile("fix").ok());
  ASSERT_EQ(client_.objects(res::kControllerRevision, "shop").size(), 1u);
  Json prod = client_.object(res::kDeployment, "shop", "checkout");
  prod["spec"]["template"]["spec"]["containers"][0]["env"].push_back({{"name", "HOTFIX"}, {"value", "1"}});
  client_.seed(res::kDeployment, prod);
  markHealthy(res::kDeployment, "shop", "checkout");
  reconcileUntil("fix", api::v1alpha1::phase::kProvisioning);  // drift: re-test on the new base
  ASSERT_TRUE(reconcile("fix").ok());
  markHealthy(res::kDeployment, envNamespace("fix"), "checkout");
  reconcileUntil("fix", api::v1alpha1::phase::kTesting);
  ASSERT_TRUE(reconcile("fix").ok());
  completeJobs(envNamespace("fix"));
  reconcileUntil("fix", api::v1alpha1::phase::kVerifying);
  auto revs = client_.objects(res::kControllerRevision, "shop");
  ASSERT_EQ(revs.size(), 1u);
  bool hasHotfix = false;
  for (const auto& e : jsonAt(revs[0], "/data/template/spec/containers/0/env"))
    hasHotfix = hasHotfix || e.value("name", "") == "HOTFIX";
  EXPECT_TRUE(hasHotfix) << "the rollback point would restore the spec from before the hotfix";
}

TEST_F(PatchReconcilerTest, APatchRollingBackHoldsTheQueueOfItsTarget) {
  createPatch("fix");
  driveToVerifying("fix");
  clock_.advance(std::chrono::seconds(121));
  reconcileUntil("fix", api::v1alpha1::phase::kRollingBack);
  createPatch("next", {{"priority", "emergency"}});
  reconcileUntil("next", api::v1alpha1::phase::kQueued);
  EXPECT_NE(status("next")["message"].get<std::string>().find("fix (RollingBack)"), std::string::npos);
}

TEST_F(PatchReconcilerTest, RollbackWritesAreFencedToo) {
  bool leading = true;
  PatchReconcilerOptions o;
  o.leading = [&leading] { return leading; };
  useOptions(o);
  createPatch("fix");
  driveToVerifying("fix");
  clock_.advance(std::chrono::seconds(121));
  leading = false;
  client_.clearCalls();
  EXPECT_FALSE(reconcile("fix").ok());
  EXPECT_EQ(prodVersion(client_), "v2");
  EXPECT_EQ(client_.object(res::kConfigMap, "shop", "checkout-config")["data"]["POOL"], "64");
  EXPECT_EQ(phase("fix"), api::v1alpha1::phase::kRollingBack);  // the intent is recorded; nothing written
  leading = true;
  ASSERT_TRUE(reconcile("fix").ok());
  EXPECT_EQ(prodVersion(client_), "v1");
}

// ---- verification ------------------------------------------------------------

TEST_F(PatchReconcilerTest, ARevertDuringVerificationIsRevertedNeverSucceeded) {
  createPatch("fix");
  driveToVerifying("fix");
  Json prod = client_.object(res::kDeployment, "shop", "checkout");
  prod["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = "v1";  // GitOps puts v1 back
  client_.seed(res::kDeployment, prod);
  markHealthy(res::kDeployment, "shop", "checkout");
  reconcileUntil("fix", api::v1alpha1::phase::kFailed);
  Json c = runtime::findCondition(status("fix")["conditions"], condition::kVerified);
  EXPECT_EQ(c["reason"], reason::kReverted);
  EXPECT_NE(c["message"].get<std::string>().find("no longer has the promoted spec"), std::string::npos);
  EXPECT_TRUE(recorder_.has(reason::kReverted));
  EXPECT_FALSE(runtime::isConditionTrue(status("fix")["conditions"], condition::kReady));
}

TEST_F(PatchReconcilerTest, AConfigRevertDuringTheBakeIsRevertedToo) {
  createPatch("fix");
  driveToVerifying("fix");
  markHealthy(res::kDeployment, "shop", "checkout");
  ASSERT_TRUE(reconcile("fix").ok());  // baking
  Json cm = client_.object(res::kConfigMap, "shop", "checkout-config");
  cm["data"]["POOL"] = "16";
  client_.seed(res::kConfigMap, cm);
  clock_.advance(std::chrono::seconds(31));
  reconcileUntil("fix", api::v1alpha1::phase::kFailed);
  EXPECT_EQ(runtime::findCondition(status("fix")["conditions"], condition::kReady)["reason"], reason::kReverted);
  EXPECT_NE(status("fix")["message"].get<std::string>().find("ConfigMap/checkout-config"), std::string::npos);
}

TEST_F(PatchReconcilerTest, AWorkloadThatStopsBeingReadyStartsTheBakeOver) {
  createPatch("fix");
  driveToVerifying("fix");
  markHealthy(res::kDeployment, "shop", "checkout");
  ASSERT_TRUE(reconcile("fix").ok());
  clock_.advance(std::chrono::seconds(20));
  Json prod = client_.object(res::kDeployment, "shop", "checkout");
  prod["status"]["availableReplicas"] = 1;
  client_.seed(res::kDeployment, prod);
  ASSERT_TRUE(reconcile("fix").ok());
  EXPECT_FALSE(status("fix")["promotion"].contains("healthyAt"));
  markHealthy(res::kDeployment, "shop", "checkout");
  ASSERT_TRUE(reconcile("fix").ok());
  clock_.advance(std::chrono::seconds(20));
  ASSERT_TRUE(reconcile("fix").ok());
  EXPECT_EQ(phase("fix"), api::v1alpha1::phase::kVerifying) << "40 s healthy but only 20 s in a row";
  clock_.advance(std::chrono::seconds(11));
  reconcileUntil("fix", api::v1alpha1::phase::kSucceeded);
}

TEST_F(PatchReconcilerTest, ContainerRestartsDuringTheBakeRollBack) {
  createPatch("fix");
  driveToVerifying("fix");
  Json pod = {{"apiVersion", "v1"}, {"kind", "Pod"},
              {"metadata", {{"name", "checkout-abc"}, {"namespace", "shop"}, {"labels", {{"app", "checkout"}}}}},
              {"status", {{"containerStatuses", {{{"name", "app"}, {"restartCount", 1}}}}}}};
  client_.seed(res::kPod, pod);
  markHealthy(res::kDeployment, "shop", "checkout");
  ASSERT_TRUE(reconcile("fix").ok());  // baking; one restart from before is the baseline
  pod = client_.object(res::kPod, "shop", "checkout-abc");  // the same pod (same uid), restarting
  pod["status"]["containerStatuses"][0]["restartCount"] = 3;
  pod["status"]["containerStatuses"][0]["state"] = {{"waiting", {{"reason", "CrashLoopBackOff"}}}};
  pod["status"]["containerStatuses"][0]["lastState"] = {{"terminated", {{"exitCode", 137}, {"reason", "OOMKilled"}}}};
  client_.seed(res::kPod, pod);
  reconcileUntil("fix", api::v1alpha1::phase::kRollingBack);
  std::string why = status("fix")["rollback"]["reason"];
  EXPECT_NE(why.find("2 restart(s)"), std::string::npos) << why;
  EXPECT_NE(why.find("CrashLoopBackOff (last exit code 137, OOMKilled)"), std::string::npos) << why;
  EXPECT_EQ(status("fix")["rollback"]["cause"], "Unhealthy");
}

// Restarts are counted over the workload's own pods, by its whole selector:
// a crash-looping pod of another workload that shares the matchLabels but
// not the matchExpressions does not roll this one back.
TEST_F(PatchReconcilerTest, RestartsOfAnotherWorkloadsPodsDoNotCount) {
  Json prod = client_.object(res::kDeployment, "shop", "checkout");
  prod["spec"]["selector"]["matchExpressions"] = Json::parse(R"([{"key": "track", "operator": "In", "values": ["stable"]}])");
  prod["spec"]["template"]["metadata"]["labels"]["track"] = "stable";
  client_.seed(res::kDeployment, prod);
  createPatch("fix");
  driveToVerifying("fix");
  Json canary = {{"apiVersion", "v1"}, {"kind", "Pod"},
                 {"metadata", {{"name", "checkout-canary"}, {"namespace", "shop"},
                               {"labels", {{"app", "checkout"}, {"track", "canary"}}}}},
                 {"status", {{"containerStatuses", {{{"name", "app"}, {"restartCount", 0}}}}}}};
  client_.seed(res::kPod, canary);
  markHealthy(res::kDeployment, "shop", "checkout");
  ASSERT_TRUE(reconcile("fix").ok());
  canary = client_.object(res::kPod, "shop", "checkout-canary");
  canary["status"]["containerStatuses"][0]["restartCount"] = 5;
  client_.seed(res::kPod, canary);
  clock_.advance(std::chrono::seconds(31));
  reconcileUntil("fix", api::v1alpha1::phase::kSucceeded);
}

TEST_F(PatchReconcilerTest, AConfigOnlyChangeRollsThePods) {
  createPatch("fix", {{"change", {{"patch", "{}"}}}});
  driveToVerifying("fix");
  Json prod = client_.object(res::kDeployment, "shop", "checkout");
  std::string digest = jsonString(prod, "/spec/template/metadata/annotations/patchgate.dev~1config-hash");
  EXPECT_FALSE(digest.empty()) << prod.dump(2);
  EXPECT_EQ(jsonString(client_.object(res::kDeployment, envNamespace("fix"), "checkout"),
                       "/spec/template/metadata/annotations/patchgate.dev~1config-hash"),
            digest) << "the copy must be what production becomes";
  EXPECT_EQ(client_.object(res::kConfigMap, "shop", "checkout-config")["data"]["POOL"], "64");
  bakeToSuccess("fix");
}

// ---- rollback ----------------------------------------------------------------

TEST_F(PatchReconcilerTest, RollbackRestoresTheWholeSpecAndBinaryDataConfigFirstWithPreconditions) {
  Json cm = client_.object(res::kConfigMap, "shop", "checkout-config");
  cm["binaryData"] = {{"blob", "AAEC"}};
  client_.seed(res::kConfigMap, cm);
  createPatch("fix", {{"change", {{"patch",
      "spec: {minReadySeconds: 5, strategy: {type: Recreate}, template: {metadata: {annotations: {tuned: 'yes'}}, spec: {containers: [{name: app, image: 'demo:1', envFrom: [{configMapRef: {name: checkout-config}}], env: [{name: VERSION, value: v2}]}]}}}"},
      {"config", {{{"kind", "ConfigMap"}, {"name", "checkout-config"}, {"type", "merge"},
                   {"patch", R"({"data":{"POOL":"64"},"binaryData":{"blob":"/w=="}})"}}}}}}});
  driveToVerifying("fix");
  Json prod = client_.object(res::kDeployment, "shop", "checkout");
  ASSERT_EQ(prod["spec"]["minReadySeconds"], 5);
  prod["spec"]["replicas"] = 5;  // an HPA scaled it meanwhile
  client_.seed(res::kDeployment, prod);
  Json p = client_.object(res::kPatch, "shop", "fix");
  p["spec"]["cancel"] = true;
  client_.seed(res::kPatch, p);
  client_.clearCalls();
  reconcileUntil("fix", api::v1alpha1::phase::kRollingBack);
  prod = client_.object(res::kDeployment, "shop", "checkout");
  EXPECT_FALSE(prod["spec"].contains("minReadySeconds")) << prod.dump(2);
  EXPECT_FALSE(prod["spec"].contains("strategy"));
  EXPECT_FALSE(jsonAt(prod, "/spec/template/metadata").contains("annotations"));
  EXPECT_EQ(prodVersion(client_), "v1");
  EXPECT_EQ(prod["spec"]["replicas"], 5) << "scaling is not the Patch's to restore";
  cm = client_.object(res::kConfigMap, "shop", "checkout-config");
  EXPECT_EQ(cm["data"]["POOL"], "16");
  EXPECT_EQ(cm["binaryData"]["blob"], "AAEC");
  auto calls = client_.calls();
  int cfg = callIndex(calls, "patch", "configmaps"), wl = callIndex(calls, "patch", "deployments");
  ASSERT_GE(cfg, 0);
  ASSERT_GE(wl, 0);
  EXPECT_LT(cfg, wl) << "config must be restored before the workload";
  for (int i : {cfg, wl}) {
    EXPECT_EQ(calls[i].patchType, "json");
    EXPECT_EQ(calls[i].body[0]["op"], "test") << "no resourceVersion precondition: " << calls[i].body.dump();
  }
  markHealthy(res::kDeployment, "shop", "checkout");
  reconcileUntil("fix", api::v1alpha1::phase::kRolledBack);
}

TEST_F(PatchReconcilerTest, RollbackLeavesConfigThePatchDidNotChangeAlone) {
  // The pods also read a ConfigMap the Patch does not change; a person edits
  // it during verification. The rollback restores only what the Patch changed.
  client_.seed(res::kConfigMap, Json::parse(R"({"apiVersion":"v1","kind":"ConfigMap",
      "metadata":{"name":"flags","namespace":"shop"},"data":{"NEW_UI":"off"}})"));
  Json prod = client_.object(res::kDeployment, "shop", "checkout");
  prod["spec"]["template"]["spec"]["containers"][0]["envFrom"].push_back({{"configMapRef", {{"name", "flags"}}}});
  client_.seed(res::kDeployment, prod);
  markHealthy(res::kDeployment, "shop", "checkout");
  createPatch("fix", {{"change", {{"patch",
      "spec: {template: {spec: {containers: [{name: app, image: 'demo:1', envFrom: [{configMapRef: {name: checkout-config}}, {configMapRef: {name: flags}}], env: [{name: VERSION, value: v2}]}]}}}"}}}});
  driveToVerifying("fix");
  Json flags = client_.object(res::kConfigMap, "shop", "flags");
  flags["data"]["NEW_UI"] = "on";  // someone else's change, not the Patch's
  client_.seed(res::kConfigMap, flags);
  clock_.advance(std::chrono::seconds(121));
  reconcileUntil("fix", api::v1alpha1::phase::kRollingBack);
  EXPECT_EQ(client_.object(res::kConfigMap, "shop", "flags")["data"]["NEW_UI"], "on");
  EXPECT_EQ(client_.object(res::kConfigMap, "shop", "checkout-config")["data"]["POOL"], "16");
  EXPECT_EQ(prodVersion(client_), "v1");
}

TEST_F(PatchReconcilerTest, ARollbackThatDoesNotBecomeHealthyIsRollbackFailed) {
  createPatch("fix");
  driveToVerifying("fix");
  clock_.advance(std::chrono::seconds(121));
  reconcileUntil("fix", api::v1alpha1::phase::kRollingBack);
  clock_.advance(std::chrono::seconds(121));  // the restored workload never gets healthy
  reconcileUntil("fix", api::v1alpha1::phase::kFailed);
  Json c = runtime::findCondition(status("fix")["conditions"], condition::kRolledBack);
  EXPECT_EQ(c["reason"], reason::kRollbackFailed);
  EXPECT_NE(c["message"].get<std::string>().find("needs a person"), std::string::npos);
  EXPECT_TRUE(recorder_.has(reason::kRollbackFailed));
  EXPECT_TRUE(runtime::isConditionTrue(status("fix")["conditions"], condition::kStalled));
}

TEST_F(PatchReconcilerTest, ARollbackInterruptedAfterItsIntentFinishesOnTheNextPass) {
  createPatch("fix");
  driveToVerifying("fix");
  clock_.advance(std::chrono::seconds(121));
  client_.failNext("patch", unavailable(), "configmaps");  // dies right after the intent
  EXPECT_FALSE(reconcile("fix").ok());
  EXPECT_EQ(phase("fix"), api::v1alpha1::phase::kRollingBack);
  EXPECT_EQ(jsonString(status("fix"), "/intent/action"), "Rollback");
  EXPECT_EQ(prodVersion(client_), "v2");
  ASSERT_TRUE(reconcile("fix").ok());
  EXPECT_EQ(prodVersion(client_), "v1");
  EXPECT_FALSE(status("fix").contains("intent"));
  markHealthy(res::kDeployment, "shop", "checkout");
  reconcileUntil("fix", api::v1alpha1::phase::kRolledBack);
  EXPECT_NE(status("fix")["rollback"]["reason"].get<std::string>().find("not healthy within 120s"), std::string::npos);
}

TEST_F(PatchReconcilerTest, StatusOfTheWrongShapeIsAnErrorNotAGuess) {
  createPatch("fix");
  reconcileUntil("fix", api::v1alpha1::phase::kProvisioning);
  Json p = client_.object(res::kPatch, "shop", "fix");
  p["status"]["retests"] = "three";  // written by hand
  store_.upsert(client_.seed(res::kPatch, p));
  client_.clearCalls();
  absl::StatusOr<runtime::Action> r;
  ASSERT_NO_THROW(r = reconcile("fix"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("status.retests: must be an integer"), std::string::npos) << r.status();
  EXPECT_TRUE(client_.calls().empty()) << "acted on (or overwrote) a status it could not read";
  // Once a person fixes it, the Patch goes on.
  p["status"]["retests"] = 0;
  store_.upsert(client_.seed(res::kPatch, p));
  ASSERT_TRUE(reconcile("fix").ok());
  EXPECT_FALSE(client_.calls().empty());
}


// ---- the fault table ----------------------------------------------------------

// The failpoints (kube/failpoint_client.h) of every write a Patch's life makes.
std::set<std::string> writePoints(const std::vector<FakeClient::Call>& calls) {
  std::set<std::string> out;
  for (const auto& c : calls) {
    if (c.dryRun || (c.verb != "create" && c.verb != "update" && c.verb != "updateStatus" && c.verb != "patch" &&
                     c.verb != "delete"))
      continue;
    // A Patch's status write is named by the phase it writes (the plain name
    // is the same write).
    if (c.verb == "updateStatus" && c.resource == "patches")
      out.insert(absl::StrCat("after:updateStatus:patches:", jsonString(c.body, "/status/phase")));
    else
      out.insert(absl::StrCat("after:", c.verb, ":", c.resource));
  }
  return out;
}

TEST_F(PatchReconcilerTest, EveryWriteOfTheLifecycleHasAFailpointInTheFaultTable) {
  // A promoted, verified Patch whose environment goes after its TTL, and one
  // that is rolled back.
  createPatch("fix");
  driveToVerifying("fix");
  bakeToSuccess("fix");
  clock_.advance(std::chrono::seconds(61));
  ASSERT_TRUE(reconcile("fix").ok());
  createPatch("bad", {{"change", {{"patch", "spec: {template: {spec: {containers: [{name: app, image: 'demo:1', "
                                              "envFrom: [{configMapRef: {name: checkout-config}}], "
                                              "env: [{name: VERSION, value: v3}]}]}}}"}}}});
  driveToVerifying("bad");
  clock_.advance(std::chrono::seconds(121));
  reconcileUntil("bad", api::v1alpha1::phase::kRollingBack);
  markHealthy(res::kDeployment, "shop", "checkout");
  reconcileUntil("bad", api::v1alpha1::phase::kRolledBack);
  std::set<std::string> points = writePoints(client_.calls());

  std::ifstream table(PATCHGATE_FAULT_TABLE);
  ASSERT_TRUE(table.good()) << PATCHGATE_FAULT_TABLE;
  std::set<std::string> listed;
  for (std::string line; std::getline(table, line);) {
    if (line.empty() || line[0] == '#') continue;
    listed.insert(line.substr(0, line.find(' ')));
  }
  for (const auto& pt : points) EXPECT_TRUE(listed.count(pt)) << pt << " is a write without a row in faults.txt";
}

// Secrets stay Secrets: the rollback point (a ControllerRevision, readable
// with the built-in view role) holds no Secret content; an immutable Secret
// owned by it does, and a rollback restores the Secret from there. The
// Secret's digest in status is salted with a value only Secret readers see.
TEST_F(PatchReconcilerTest, ARollbackPointKeepsSecretContentInASecretOfItsOwn) {
  createPatchRotatingASecret("fix");
  driveToVerifying("fix");
  EXPECT_EQ(client_.object(res::kSecret, "shop", "db")["data"]["password"], "czNjcjN0");
  auto revs = client_.objects(res::kControllerRevision, "shop");
  ASSERT_EQ(revs.size(), 1u);
  std::string revDump = revs[0].dump();
  EXPECT_EQ(revDump.find("aHVudGVyMg"), std::string::npos) << "Secret content in the revision: " << revDump;
  Json snapshot = client_.object(res::kSecret, "shop", "checkout-pg-1-secrets");
  ASSERT_TRUE(snapshot.is_object()) << "no snapshot Secret";
  EXPECT_EQ(snapshot["immutable"], true);
  EXPECT_EQ(snapshot["type"], "patchgate.dev/rollback-snapshot");
  EXPECT_EQ(snapshot["metadata"]["ownerReferences"][0]["kind"], "ControllerRevision");
  EXPECT_EQ(snapshot["metadata"]["ownerReferences"][0]["uid"], revs[0]["metadata"]["uid"]);
  EXPECT_TRUE(snapshot["data"].contains("salt"));
  EXPECT_TRUE(snapshot["data"].contains("db.json"));
  // The digest in status is not the plain digest of the new content.
  Json st = status("fix");
  std::string digest = jsonString(st, "/promotion/configHashes/Secret~1db");
  ASSERT_FALSE(digest.empty()) << st.dump(2);
  EXPECT_NE(digest, hashJson({{"data", {{"password", "czNjcjN0"}}}, {"binaryData", Json::object()}}));
  EXPECT_EQ(st.dump().find("czNjcjN0"), std::string::npos);
  // Production never becomes healthy: the rollback restores the Secret.
  clock_.advance(std::chrono::seconds(121));
  reconcileUntil("fix", api::v1alpha1::phase::kRollingBack);
  EXPECT_EQ(client_.object(res::kSecret, "shop", "db")["data"]["password"], "aHVudGVyMg==");
}

// A crash between the rollback point and its snapshot: the next pass makes
// the snapshot before anything is written to production.
TEST_F(PatchReconcilerTest, ASnapshotLostToACrashIsMadeBeforeTheIntent) {
  client_.seed(res::kSecret, Json::parse(R"({"apiVersion":"v1","kind":"Secret",
      "metadata":{"name":"db","namespace":"shop"},"data":{"password":"aHVudGVyMg=="}})"));
  Json prod = client_.object(res::kDeployment, "shop", "checkout");
  prod["spec"]["template"]["spec"]["containers"][0]["envFrom"].push_back({{"secretRef", {{"name", "db"}}}});
  client_.seed(res::kDeployment, prod);
  createPatch("fix", {{"change", {{"patch", "spec: {template: {spec: {containers: [{name: app, image: 'demo:1', envFrom: [{configMapRef: {name: checkout-config}}, {secretRef: {name: db}}], env: [{name: VERSION, value: v2}]}]}}}"}}}});
  driveToPromotion("fix");
  client_.failNext("create", unavailable(), "secrets");
  EXPECT_FALSE(reconcile("fix").ok());
  EXPECT_EQ(client_.objects(res::kControllerRevision, "shop").size(), 1u);
  EXPECT_TRUE(client_.object(res::kSecret, "shop", "checkout-pg-1-secrets").is_null());
  EXPECT_FALSE(status("fix").contains("intent")) << "the intent must wait for the snapshot";
  EXPECT_EQ(prodVersion(client_), "v1");
  reconcileUntil("fix", api::v1alpha1::phase::kVerifying);
  EXPECT_FALSE(client_.object(res::kSecret, "shop", "checkout-pg-1-secrets").is_null());
}

// The snapshot is gone when a rollback is needed: the workload and the
// other config are still restored, and the Patch ends RollbackFailed naming
// the Secret a person must restore (not stuck retrying, production patched).
TEST_F(PatchReconcilerTest, ARollbackWithoutItsSecretSnapshotRestoresTheRestAndSaysWhatIsMissing) {
  createPatchRotatingASecret("fix");
  driveToVerifying("fix");
  client_.erase(res::kSecret, "shop", "checkout-pg-1-secrets");
  clock_.advance(std::chrono::seconds(121));
  reconcileUntil("fix", api::v1alpha1::phase::kFailed);
  EXPECT_EQ(prodVersion(client_), "v1") << "the workload must be restored all the same";
  EXPECT_EQ(client_.object(res::kConfigMap, "shop", "checkout-config")["data"]["POOL"], "16");
  Json st = status("fix");
  const Json& ready = runtime::findCondition(st["conditions"], condition::kReady);
  EXPECT_EQ(ready["reason"], reason::kRollbackFailed);
  EXPECT_NE(ready["message"].get<std::string>().find("not Secret(s) db"), std::string::npos) << ready.dump();
}

// A snapshot left by an earlier revision of the same name (not yet garbage
// collected) is not adopted: it is replaced by one owned by this revision.
TEST_F(PatchReconcilerTest, AStaleSnapshotOfAnEarlierRevisionIsReplaced) {
  client_.seed(res::kSecret, Json::parse(R"({"apiVersion":"v1","kind":"Secret",
      "metadata":{"name":"db","namespace":"shop"},"data":{"password":"aHVudGVyMg=="}})"));
  client_.seed(res::kSecret, Json::parse(R"({"apiVersion":"v1","kind":"Secret","immutable":true,
      "metadata":{"name":"checkout-pg-1-secrets","namespace":"shop",
                  "ownerReferences":[{"apiVersion":"apps/v1","kind":"ControllerRevision","name":"checkout-pg-1","uid":"gone"}]},
      "data":{"salt":"b2xk","db.json":"e30="}})"));
  client_.seed(res::kSecret, Json::parse(R"({"apiVersion":"v1","kind":"Secret",
      "metadata":{"name":"db-rotated","namespace":"shop"},"data":{"password":"czNjcjN0"}})"));
  createPatch("fix", {{"change", {{"config", Json::parse(R"([
      {"kind": "Secret", "name": "db", "fromSecret": "db-rotated"}])")}}}});
  driveToPromotion("fix");
  for (int i = 0; i < 10 && phase("fix") != api::v1alpha1::phase::kVerifying; ++i) (void)reconcile("fix");
  ASSERT_EQ(phase("fix"), api::v1alpha1::phase::kVerifying);
  Json rev = client_.objects(res::kControllerRevision, "shop").at(0);
  Json snapshot = client_.object(res::kSecret, "shop", "checkout-pg-1-secrets");
  EXPECT_EQ(snapshot["metadata"]["ownerReferences"][0]["uid"], rev["metadata"]["uid"]);
  // Each write to the production Secret says which Patch made it, and why.
  std::string uid = jsonString(client_.object(res::kPatch, "shop", "fix"), "/metadata/uid");
  EXPECT_EQ(jsonString(client_.object(res::kSecret, "shop", "db"), "/metadata/annotations/patchgate.dev~1last-write"),
            uid + "/Promote");
  clock_.advance(std::chrono::seconds(121));
  reconcileUntil("fix", api::v1alpha1::phase::kRollingBack);
  EXPECT_EQ(jsonString(client_.object(res::kSecret, "shop", "db"), "/metadata/annotations/patchgate.dev~1last-write"),
            uid + "/Rollback");
  EXPECT_EQ(client_.object(res::kSecret, "shop", "db")["data"]["password"], "aHVudGVyMg==")
      << "restored from the stale snapshot";
}

// An edit that lands while the pass building the copy cannot record it (its
// status write gets a 409): the next pass must not test the copy of the old
// spec; the environment is made anew for the new one.
TEST_F(PatchReconcilerTest, ACopyMadeForAnEarlierEditOfTheSpecIsMadeAnew) {
  createPatch("fix");
  ASSERT_TRUE(reconcile("fix").ok());  // the finalizer
  client_.failNext("updateStatus", conflict(), "patches");
  ASSERT_TRUE(reconcile("fix").ok());  // builds the copy; its status write is refused
  std::string env;
  for (const auto& ns : client_.objects(res::kNamespace, ""))
    if (jsonString(ns, "/metadata/name").starts_with("pg-fix-")) env = jsonString(ns, "/metadata/name");
  ASSERT_FALSE(env.empty()) << "no environment namespace";
  ASSERT_FALSE(client_.object(res::kDeployment, env, "checkout").is_null());
  Json patch = client_.object(res::kPatch, "shop", "fix");
  std::string text = patch["spec"]["change"]["patch"];
  text.replace(text.find("value: v2"), 9, "value: v3");
  patch["spec"]["change"]["patch"] = text;
  patch["metadata"]["generation"] = 2;
  client_.seed(res::kPatch, patch);
  bool removed = false;
  for (int i = 0; i < 8; ++i) {
    (void)reconcile("fix");
    Json ns = client_.object(res::kNamespace, "", env);
    if (!removed && (ns.is_null() || ns["metadata"].contains("deletionTimestamp"))) {
      // What the namespace controller does: the namespace goes with its content.
      removed = true;
      for (const auto& rt : {res::kDeployment, res::kConfigMap, res::kService})
        for (const auto& o : client_.objects(rt, env)) client_.erase(rt, env, jsonString(o, "/metadata/name"));
      if (!ns.is_null()) client_.erase(res::kNamespace, "", env);
    }
  }
  EXPECT_TRUE(removed) << "the environment built for the old spec was kept";
  Json copy = client_.object(res::kDeployment, env, "checkout");
  ASSERT_FALSE(copy.is_null()) << "not made anew";
  EXPECT_EQ(copy["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"], "v3") << copy.dump(2);
}

// ---- PatchPolicy: approvals, windows, freezes, limits; the author's rights ---

void seedPolicy(FakeClient& client, const std::string& ns, const std::string& name, Json spec) {
  client.seed(res::kPatchPolicy, {{"apiVersion", "patchgate.dev/v1alpha1"}, {"kind", "PatchPolicy"},
                                  {"metadata", {{"name", name}, {"namespace", ns}}}, {"spec", spec}});
}

Json approvalBy(FakeClient& client, const std::string& patch, const std::string& name, const std::string& who,
                const std::vector<std::string>& groups) {
  Json p = client.object(res::kPatch, "shop", patch);
  Json a = {{"apiVersion", "patchgate.dev/v1alpha1"}, {"kind", "PatchApproval"},
            {"metadata", {{"name", name}, {"namespace", "shop"}}},
            {"spec", {{"patch", patch}, {"patchUID", p["metadata"]["uid"]},
                      {"patchGeneration", p["metadata"]["generation"]}, {"approver", who}}}};
  if (!groups.empty()) a["spec"]["approverGroups"] = groups;
  return client.seed(res::kPatchApproval, a);
}

// Cancels a Patch (as `kubectl patch --type merge -p '{"spec":{"cancel":true}}'`)
// and reconciles it to its end.
void cancelPatch(FakeClient& client, const std::string& name) {
  Json p = client.object(res::kPatch, "shop", name);
  p["spec"]["cancel"] = true;
  client.seed(res::kPatch, p);
}

// A Patch that asks for no approval gets the policy's; only the people the
// policy names count, and the Patch says which policy asked.
TEST_F(PatchReconcilerTest, APolicyRaisesApprovalAndOnlyThePeopleItNamesCount) {
  seedPolicy(client_, "shop", "default",
             {{"approval", {{"required", true}, {"allowedGroups", {"sre-leads"}}}}});
  createPatch("fix", {{"author", "alice"}});
  driveToAwaitingApproval("fix");
  Json st = status("fix");
  EXPECT_EQ(st["policy"]["sources"], Json({"shop/default"}));
  EXPECT_NE(st["policy"]["notes"].dump().find("shop/default"), std::string::npos) << st["policy"].dump();

  approvalBy(client_, "fix", "bob", "bob", {"developers"});
  ASSERT_TRUE(reconcile("fix").ok());
  EXPECT_EQ(phase("fix"), api::v1alpha1::phase::kAwaitingApproval) << "bob is not in sre-leads";
  EXPECT_TRUE(recorder_.has(reason::kApprovalRefused));
  EXPECT_NE(status("fix")["approvals"][0].value("why", "").find("sre-leads"), std::string::npos)
      << status("fix")["approvals"].dump();

  approvalBy(client_, "fix", "carol", "carol", {"sre-leads"});
  reconcileUntil("fix", api::v1alpha1::phase::kVerifying);
}

// A cluster-wide policy (the operator's policy namespace) applies to every
// namespace; a Patch asking for more keeps it.
TEST_F(PatchReconcilerTest, AClusterPolicyAppliesInEveryNamespaceAndAPatchMayAskForMore) {
  PatchReconcilerOptions options;
  options.clusterPolicyNamespace = "patchgate-system";
  useOptions(options);
  seedPolicy(client_, "patchgate-system", "cluster", {{"approval", {{"required", true}, {"approvers", 1}}}});
  createPatch("fix", {{"author", "alice"}, {"promotion", {{"approval", {{"required", true}, {"approvers", 2}}}}}});
  driveToAwaitingApproval("fix");
  EXPECT_EQ(status("fix")["policy"]["sources"], Json({"patchgate-system/cluster"}));
  approvalBy(client_, "fix", "bob", "bob", {});
  ASSERT_TRUE(reconcile("fix").ok());
  EXPECT_EQ(phase("fix"), api::v1alpha1::phase::kAwaitingApproval) << "the Patch asked for two";
  approvalBy(client_, "fix", "carol", "carol", {});
  reconcileUntil("fix", api::v1alpha1::phase::kVerifying);
}

// Tested at once, promoted only inside the window: production is untouched
// until then. (The fake clock starts on Tuesday 2023-11-14 22:13:20 UTC.)
TEST_F(PatchReconcilerTest, APatchWaitsForItsChangeWindowThenPromotes) {
  seedPolicy(client_, "shop", "windows",
             Json::parse(R"({"changeWindows": [{"days": ["Wed"], "start": "09:00", "end": "17:00",
                                                "timeZone": "Europe/Berlin"}]})"));
  createPatch("fix");
  driveToPromotion("fix");
  reconcileUntil("fix", api::v1alpha1::phase::kAwaitingWindow);
  Json st = status("fix");
  const Json& scheduled = runtime::findCondition(st["conditions"], condition::kScheduled);
  EXPECT_EQ(scheduled["reason"], reason::kOutsideWindow);
  // 09:00 in Berlin is 08:00 UTC in November.
  EXPECT_NE(st.value("message", "").find("2023-11-15T08:00:00Z"), std::string::npos) << st.dump(2);
  int64_t generation = jsonInt(client_.object(res::kDeployment, "shop", "checkout"), "/metadata/generation");
  auto wait = reconcile("fix");
  ASSERT_TRUE(wait.ok());
  ASSERT_TRUE(wait->requeueAfter.has_value());
  EXPECT_LE(*wait->requeueAfter, std::chrono::seconds(60));
  EXPECT_TRUE(client_.calls("create", "controllerrevisions").empty()) << "no rollback point before the window";

  clock_.advance(std::chrono::hours(9) + std::chrono::minutes(46));  // Wed 07:59:20 UTC: still closed
  ASSERT_TRUE(reconcile("fix").ok());
  EXPECT_EQ(phase("fix"), api::v1alpha1::phase::kAwaitingWindow);
  EXPECT_EQ(jsonInt(client_.object(res::kDeployment, "shop", "checkout"), "/metadata/generation"), generation);

  clock_.advance(std::chrono::minutes(1));  // 08:00:20 UTC = 09:00:20 in Berlin
  reconcileUntil("fix", api::v1alpha1::phase::kVerifying);
  EXPECT_GT(jsonInt(client_.object(res::kDeployment, "shop", "checkout"), "/metadata/generation"), generation);
}

// In a freeze a normal Patch waits; an emergency passes it, but only with
// the approvals the policy asks of emergencies, and says so.
TEST_F(PatchReconcilerTest, AnEmergencyPassesAFreezeOnlyWithThePolicysApprovals) {
  Json freeze = {{"start", formatTime(clock_.now() - std::chrono::hours(1))},
                 {"end", formatTime(clock_.now() + std::chrono::hours(48))},
                 {"reason", "year-end freeze"}};
  seedPolicy(client_, "shop", "freeze",
             {{"freezes", {freeze}}, {"emergency", {{"bypassFreezes", true}, {"approvers", 1}}}});
  createPatch("normal");
  driveToPromotion("normal");
  reconcileUntil("normal", api::v1alpha1::phase::kAwaitingWindow);
  EXPECT_NE(status("normal").value("message", "").find("year-end freeze"), std::string::npos);
  EXPECT_EQ(runtime::findCondition(status("normal")["conditions"], condition::kScheduled)["reason"],
            reason::kFrozen);
  cancelPatch(client_, "normal");
  reconcileUntil("normal", api::v1alpha1::phase::kFailed);

  createPatch("urgent", {{"author", "alice"}, {"priority", "emergency"}});
  driveToPromotion("urgent");
  reconcileUntil("urgent", api::v1alpha1::phase::kAwaitingApproval);
  EXPECT_NE(status("urgent").value("message", "").find("freeze"), std::string::npos) << status("urgent").dump(2);
  approvalBy(client_, "urgent", "self", "alice", {});
  ASSERT_TRUE(reconcile("urgent").ok());
  EXPECT_EQ(phase("urgent"), api::v1alpha1::phase::kAwaitingApproval) << "the author's approval does not count";
  approvalBy(client_, "urgent", "bob", "bob", {});
  reconcileUntil("urgent", api::v1alpha1::phase::kVerifying);
  EXPECT_TRUE(recorder_.has(reason::kEmergencyBypass));
  EXPECT_NE(status("urgent")["policy"].value("schedule", "").find("year-end freeze"), std::string::npos);
}

// patchgate makes no change its author could not make: a SubjectAccessReview
// for the author (with their groups) before anything is created.
TEST_F(PatchReconcilerTest, AnAuthorWithoutTheRightToPatchTheTargetFailsForbiddenBeforeAnythingIsCreated) {
  std::vector<Json> reviews;
  client_.setAccessReviewer([&](const Json& spec) {
    reviews.push_back(spec);
    bool sre = false;
    for (const auto& g : spec.value("groups", Json::array())) sre = sre || g == "sre";
    bool deployments = spec["resourceAttributes"]["resource"] == "deployments";
    return Json{{"allowed", !deployments || sre}, {"reason", deployments && !sre ? "no RBAC rule" : ""}};
  });
  createPatch("fix", {{"author", "alice"}});  // no groups: only the one every signed-in user has
  reconcileUntil("fix", api::v1alpha1::phase::kFailed);
  Json st = status("fix");
  const Json& validated = runtime::findCondition(st["conditions"], condition::kValidated);
  EXPECT_EQ(validated["reason"], reason::kForbidden);
  EXPECT_NE(st.value("message", "").find("may not patch Deployment/checkout"), std::string::npos) << st.dump(2);
  EXPECT_TRUE(client_.calls("create", "namespaces").empty());
  ASSERT_FALSE(reviews.empty());
  EXPECT_EQ(reviews[0]["user"], "alice");
  EXPECT_EQ(reviews[0]["resourceAttributes"]["verb"], "patch");
  EXPECT_EQ(reviews[0]["resourceAttributes"]["group"], "apps");
  EXPECT_EQ(reviews[0]["resourceAttributes"]["name"], "checkout");
  EXPECT_EQ(reviews[0]["groups"], Json({"system:authenticated"}));

  // In the group that may: the same change goes ahead, and the config
  // object it changes was checked too.
  reviews.clear();
  createPatch("fix2", {{"author", "alice"}, {"authorGroups", {"sre"}}});
  reconcileUntil("fix2", api::v1alpha1::phase::kProvisioning);
  EXPECT_EQ(reviews.at(0)["groups"], Json({"sre"}));
  bool configChecked = false;
  for (const auto& r : reviews)
    configChecked = configChecked || (r["resourceAttributes"]["resource"] == "configmaps" &&
                                      r["resourceAttributes"]["name"] == "checkout-config");
  EXPECT_TRUE(configChecked);
}

// ---- identity: trusted only while the API server checks it ---------------------

void seedIdentityPolicy(FakeClient& client, const std::string& name, Json actions = Json::array({"Deny"})) {
  client.seed(res::kValidatingAdmissionPolicy,
              {{"apiVersion", "admissionregistration.k8s.io/v1"}, {"kind", "ValidatingAdmissionPolicy"},
               {"metadata", {{"name", name}}}, {"spec", Json::object()}});
  client.seed(res::kValidatingAdmissionPolicyBinding,
              {{"apiVersion", "admissionregistration.k8s.io/v1"}, {"kind", "ValidatingAdmissionPolicyBinding"},
               {"metadata", {{"name", name}}},
               {"spec", {{"policyName", name}, {"validationActions", std::move(actions)}}}});
}

TEST(IdentityAdmission, NamesWhatIsMissingAndSeesItInstalledAfterItsTtl) {
  FakeClock clock;
  FakeClient client(clock);
  IdentityAdmission identity(client, clock, std::chrono::seconds(30));
  auto author = identity.check(IdentityClaim::kAuthor);
  ASSERT_TRUE(author.ok());
  ASSERT_EQ(author->missing.size(), 2u);  // the policy and its binding
  EXPECT_EQ(author->missing.at(0), "the ValidatingAdmissionPolicy patchgate-patch-author is not installed");
  EXPECT_EQ(identity.check(IdentityClaim::kApprover)->missing.size(), 4u);

  // Installed, one binding only warning: seen at the next read, not before.
  clock.advance(std::chrono::seconds(5));
  const std::string installedAt = formatTime(clock.now());
  seedIdentityPolicy(client, "patchgate-patch-author");
  seedIdentityPolicy(client, "patchgate-approval-identity");
  seedIdentityPolicy(client, "patchgate-approval-not-author", Json::array({"Warn", "Audit"}));
  client.clearCalls();
  EXPECT_EQ(identity.check(IdentityClaim::kAuthor)->missing.size(), 2u);
  EXPECT_TRUE(client.calls("get").empty()) << "read again before its ttl";
  clock.advance(std::chrono::seconds(30));
  author = identity.check(IdentityClaim::kAuthor);
  EXPECT_TRUE(author->missing.empty());
  EXPECT_EQ(author->since, installedAt);
  // A binding removed within the ttl: an object made after the last read
  // makes it read again, so the gap is seen however short it was.
  client.erase(res::kValidatingAdmissionPolicyBinding, "", "patchgate-patch-author");
  EXPECT_TRUE(identity.check(IdentityClaim::kAuthor)->missing.empty()) << "cached";
  clock.advance(std::chrono::seconds(1));
  author = identity.check(IdentityClaim::kAuthor, formatTime(clock.now()));
  ASSERT_EQ(author->missing.size(), 1u);
  EXPECT_EQ(author->missing[0], "the ValidatingAdmissionPolicyBinding patchgate-patch-author is not installed");
  EXPECT_TRUE(author->since.empty());
  seedIdentityPolicy(client, "patchgate-patch-author");
  clock.advance(std::chrono::seconds(30));
  auto approver = identity.check(IdentityClaim::kApprover);
  ASSERT_EQ(approver->missing.size(), 1u);
  EXPECT_NE(approver->missing.at(0).find("patchgate-approval-not-author does not deny"), std::string::npos)
      << approver->missing.at(0);

  // An answer the operator may not read is a reason, not an error; a server
  // error is an error (retried), and nothing is cached from it.
  clock.advance(std::chrono::seconds(30));
  client.failNext("get", kube::apiError(403, "Forbidden", "cannot get"), "validatingadmissionpolicies");
  auto forbidden = identity.check(IdentityClaim::kAuthor);
  ASSERT_TRUE(forbidden.ok());
  ASSERT_EQ(forbidden->missing.size(), 1u);
  EXPECT_NE(forbidden->missing.at(0).find(
                "the operator may not read the ValidatingAdmissionPolicy patchgate-patch-author"),
            std::string::npos);
  clock.advance(std::chrono::seconds(30));
  client.failNext("get", absl::UnavailableError("connection reset"), "validatingadmissionpolicybindings");
  EXPECT_FALSE(identity.check(IdentityClaim::kAuthor).ok());
  // The binding deleted and made again (a re-install): checked since then.
  clock.advance(std::chrono::seconds(5));
  client.erase(res::kValidatingAdmissionPolicyBinding, "", "patchgate-approval-not-author");
  seedIdentityPolicy(client, "patchgate-approval-not-author");
  approver = identity.check(IdentityClaim::kApprover);
  EXPECT_TRUE(approver->missing.empty());
  EXPECT_EQ(approver->since, formatTime(clock.now()));
  // Timestamps have whole seconds: after a gap this process saw, an object
  // of the very second the policies came back may be from the gap.
  EXPECT_TRUE(approver->afterGap);
  EXPECT_FALSE(approver->checked(approver->since));
  EXPECT_FALSE(approver->checked(formatTime(clock.now() + std::chrono::seconds(5))))
      << "admission may take seconds to enforce a policy made again";
  EXPECT_TRUE(approver->checked(formatTime(clock.now() + std::chrono::seconds(6))));
  EXPECT_FALSE(approver->checked(formatTime(clock.now() - std::chrono::seconds(1))));
  IdentityVerdict fresh{{}, approver->since};  // installed before this process ever looked
  EXPECT_TRUE(fresh.checked(fresh.since));
  EXPECT_FALSE(fresh.checked(formatTime(clock.now() - std::chrono::seconds(1))));
}

// Without the admission policy on spec.author, anyone could name a more
// powerful author and have the operator act with that person's rights: the
// Patch waits and nothing is created. Once the policy is there, a Patch made
// before it (nobody checked its author) fails; one made after goes ahead.
TEST_F(PatchReconcilerTest, WithoutTheAuthorPolicyAPatchWaitsAndOneMadeBeforeItNeverGoesAhead) {
  IdentityVerdict verdict{{"the ValidatingAdmissionPolicy patchgate-patch-author is not installed"}, ""};
  PatchReconcilerOptions options;
  options.identityCheck = [&](IdentityClaim claim, const std::string&) -> absl::StatusOr<IdentityVerdict> {
    return claim == IdentityClaim::kAuthor ? verdict : IdentityVerdict{};
  };
  useOptions(options);
  std::vector<Json> reviews;
  client_.setAccessReviewer([&](const Json& spec) {
    reviews.push_back(spec);
    return Json{{"allowed", true}};
  });
  createPatch("forged", {{"author", "cluster-admin-by-name"}});
  ASSERT_TRUE(reconcile("forged").ok());  // the finalizer
  auto r = reconcile("forged");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->requeueAfter, std::chrono::seconds(30));
  ASSERT_TRUE(reconcile("forged").ok());
  Json st = status("forged");
  EXPECT_EQ(runtime::findCondition(st["conditions"], condition::kValidated)["reason"], reason::kIdentityUnverified);
  EXPECT_NE(st.value("message", "").find("spec.author is not checked by the API server (the "
                                         "ValidatingAdmissionPolicy patchgate-patch-author is not installed)"),
            std::string::npos)
      << st.dump(2);
  EXPECT_NE(phase("forged"), api::v1alpha1::phase::kFailed);
  EXPECT_EQ(countEvents(recorder_, reason::kIdentityUnverified), 1) << "told once, not every 30 s";
  EXPECT_TRUE(reviews.empty()) << "the rights of a name nobody vouches for were asked";
  EXPECT_TRUE(client_.calls("create", "namespaces").empty());

  clock_.advance(std::chrono::seconds(10));
  verdict = IdentityVerdict{{}, formatTime(clock_.now())};  // installed now
  reconcileUntil("forged", api::v1alpha1::phase::kFailed);
  st = status("forged");
  EXPECT_EQ(runtime::findCondition(st["conditions"], condition::kReady)["reason"], reason::kIdentityUnverified);
  EXPECT_NE(st.value("message", "").find("nobody checked that cluster-admin-by-name wrote it; create it again"),
            std::string::npos)
      << st.dump(2);
  EXPECT_TRUE(reviews.empty());
  EXPECT_TRUE(client_.calls("create", "namespaces").empty());

  clock_.advance(std::chrono::seconds(1));
  createPatch("checked", {{"author", "alice"}});
  reconcileUntil("checked", api::v1alpha1::phase::kProvisioning);
  ASSERT_FALSE(reviews.empty());
  EXPECT_EQ(reviews[0]["user"], "alice");
}

// Approvals count only while the API server checks who gives them: without
// those policies "bob" could be alice, so even a valid-looking approval
// waits; and one given before the policies were installed stays void.
TEST_F(PatchReconcilerTest, WithoutTheApprovalPoliciesApprovalsAreNotCounted) {
  IdentityVerdict verdict{{"the ValidatingAdmissionPolicyBinding patchgate-approval-not-author is not installed"}, ""};
  PatchReconcilerOptions options;
  options.identityCheck = [&](IdentityClaim claim, const std::string&) -> absl::StatusOr<IdentityVerdict> {
    return claim == IdentityClaim::kApprover ? verdict : IdentityVerdict{};
  };
  useOptions(options);
  createPatch("fix", {{"author", "alice"}, {"promotion", {{"approval", {{"required", true}}}}}});
  driveToAwaitingApproval("fix");
  approve("fix", "unchecked", "bob");
  ASSERT_TRUE(reconcile("fix").ok());
  ASSERT_TRUE(reconcile("fix").ok());
  EXPECT_EQ(phase("fix"), api::v1alpha1::phase::kAwaitingApproval);
  Json st = status("fix");
  const Json& approved = runtime::findCondition(st["conditions"], condition::kApproved);
  EXPECT_EQ(approved["reason"], reason::kIdentityUnverified);
  EXPECT_NE(approved["message"].get<std::string>().find("approvals are not counted: spec.approver of a "
                                                         "PatchApproval is not checked by the API server"),
            std::string::npos)
      << approved.dump();
  EXPECT_TRUE(client_.calls("create", "controllerrevisions").empty());

  clock_.advance(std::chrono::seconds(10));
  verdict = IdentityVerdict{{}, formatTime(clock_.now())};
  ASSERT_TRUE(reconcile("fix").ok());
  EXPECT_EQ(phase("fix"), api::v1alpha1::phase::kAwaitingApproval);
  st = status("fix");
  EXPECT_NE(st["approvals"][0].value("why", "").find("nobody checked who gave it"), std::string::npos) << st.dump(2);
  EXPECT_TRUE(client_.calls("create", "controllerrevisions").empty());

  clock_.advance(std::chrono::seconds(1));
  approve("fix", "checked", "bob");
  reconcileUntil("fix", api::v1alpha1::phase::kVerifying);
}

// Rights can be taken away while a Patch is tested or waits for approval:
// they are asked again right before production is written.
TEST_F(PatchReconcilerTest, RightsTakenAwayBeforePromotionEndItWithProductionUntouched) {
  bool mayPatch = true;
  client_.setAccessReviewer([&](const Json&) { return Json{{"allowed", mayPatch}, {"reason", "no RBAC rule"}}; });
  createPatch("fix", {{"author", "alice"}, {"promotion", {{"approval", {{"required", true}}}}}});
  driveToAwaitingApproval("fix");
  mayPatch = false;  // alice's RoleBinding was removed meanwhile
  approve("fix", "lgtm", "bob");
  reconcileUntil("fix", api::v1alpha1::phase::kFailed);
  Json st = status("fix");
  EXPECT_EQ(runtime::findCondition(st["conditions"], condition::kReady)["reason"], reason::kForbidden);
  EXPECT_NE(st.value("message", "").find("at promotion, the author alice may not patch Deployment/checkout in shop "
                                         "themself any more"),
            std::string::npos)
      << st.dump(2);
  EXPECT_TRUE(client_.calls("create", "controllerrevisions").empty());
  EXPECT_FALSE(st.contains("intent"));
  EXPECT_EQ(jsonString(client_.object(res::kDeployment, "shop", "checkout"),
                       "/spec/template/spec/containers/0/env/0/value"), "v1");
}

// Production Secrets stay in production unless the Patch asks (and its author
// may read them, and no policy forbids it); the copy says what it lacks.
TEST_F(PatchReconcilerTest, SecretsAreCopiedOnlyWhenAskedAndAllowed) {
  client_.seed(res::kSecret, Json::parse(R"({"apiVersion":"v1","kind":"Secret",
      "metadata":{"name":"db","namespace":"shop"},"data":{"password":"aHVudGVyMg=="}})"));
  Json d = client_.object(res::kDeployment, "shop", "checkout");
  d["spec"]["template"]["spec"]["containers"][0]["envFrom"].push_back({{"secretRef", {{"name", "db"}}}});
  client_.seed(res::kDeployment, d);
  std::string change = "spec: {template: {spec: {containers: [{name: app, image: 'demo:1', envFrom: [{configMapRef: {name: checkout-config}}, {secretRef: {name: db}}], env: [{name: VERSION, value: v2}]}]}}}";

  createPatch("default", {{"change", {{"patch", change}}}});
  reconcileUntil("default", api::v1alpha1::phase::kProvisioning);
  ASSERT_TRUE(reconcile("default").ok());  // builds the copy
  std::string env = envNamespace("default");
  EXPECT_TRUE(client_.object(res::kSecret, env, "db").is_null()) << "copied without being asked";
  ASSERT_TRUE(reconcile("default").ok());
  EXPECT_NE(status("default").value("message", "").find("Secret db was not copied"), std::string::npos)
      << status("default").dump(2);
  EXPECT_EQ(status("default")["environment"]["omittedSecrets"], Json({"db"}));
  cancelPatch(client_, "default");
  reconcileUntil("default", api::v1alpha1::phase::kFailed);

  createPatch("asks", {{"change", {{"patch", change}}}, {"environment", {{"secrets", "copy"}}}});
  reconcileUntil("asks", api::v1alpha1::phase::kProvisioning, 20);
  ASSERT_TRUE(reconcile("asks").ok());
  EXPECT_FALSE(client_.object(res::kSecret, envNamespace("asks"), "db").is_null());
  cancelPatch(client_, "asks");
  reconcileUntil("asks", api::v1alpha1::phase::kFailed);

  seedPolicy(client_, "shop", "no-secrets", {{"secrets", {{"allowCopy", false}}}});
  createPatch("forbidden", {{"change", {{"patch", change}}}, {"environment", {{"secrets", "copy"}}}});
  reconcileUntil("forbidden", api::v1alpha1::phase::kProvisioning, 20);
  ASSERT_TRUE(reconcile("forbidden").ok());
  EXPECT_TRUE(client_.object(res::kSecret, envNamespace("forbidden"), "db").is_null());
  EXPECT_NE(status("forbidden")["policy"].dump().find("shop/no-secrets"), std::string::npos);
}

// The Secret a Patch changes is what its tests must try: without `secrets:
// copy` (and where policy forbids copying) its copy still gets the new values,
// and only those (none of production's other keys).
TEST_F(PatchReconcilerTest, ASecretThePatchChangesIsCopiedWithItsNewValuesOnly) {
  seedPolicy(client_, "shop", "no-secrets", {{"secrets", {{"allowCopy", false}}}});
  client_.seed(res::kSecret, Json::parse(R"({"apiVersion":"v1","kind":"Secret","type":"kubernetes.io/basic-auth",
      "metadata":{"name":"db","namespace":"shop"},"data":{"password":"aHVudGVyMg==","username":"YWRtaW4="}})"));
  client_.seed(res::kSecret, Json::parse(R"({"apiVersion":"v1","kind":"Secret",
      "metadata":{"name":"db-rotated","namespace":"shop"},"data":{"password":"czNjcjN0"}})"));
  client_.seed(res::kSecret, Json::parse(R"({"apiVersion":"v1","kind":"Secret",
      "metadata":{"name":"api-key","namespace":"shop"},"data":{"key":"c2VjcmV0"}})"));
  Json d = client_.object(res::kDeployment, "shop", "checkout");
  d["spec"]["template"]["spec"]["containers"][0]["envFrom"].push_back({{"secretRef", {{"name", "db"}}}});
  d["spec"]["template"]["spec"]["containers"][0]["envFrom"].push_back({{"secretRef", {{"name", "api-key"}}}});
  client_.seed(res::kDeployment, d);
  std::string change = "spec: {template: {spec: {containers: [{name: app, image: 'demo:1', envFrom: [{configMapRef: {name: checkout-config}}, {secretRef: {name: db}}, {secretRef: {name: api-key}}], env: [{name: VERSION, value: v2}]}]}}}";
  createPatch("rotate", {{"change", {{"patch", change}, {"config", Json::parse(R"([
      {"kind": "Secret", "name": "db", "fromSecret": "db-rotated"}])")}}},
                         {"environment", {{"secrets", "copy"}}}});
  reconcileUntil("rotate", api::v1alpha1::phase::kProvisioning, 20);
  ASSERT_TRUE(reconcile("rotate").ok());  // builds the copy
  std::string env = envNamespace("rotate");
  Json copy = client_.object(res::kSecret, env, "db");
  ASSERT_FALSE(copy.is_null()) << "the changed Secret is not in the copy: " << status("rotate").dump(2);
  EXPECT_EQ(copy["data"], Json({{"password", "czNjcjN0"}})) << "production's other keys were copied";
  EXPECT_EQ(copy.value("type", ""), "Opaque");
  EXPECT_TRUE(client_.object(res::kSecret, env, "api-key").is_null()) << "an unchanged Secret was copied";
  EXPECT_EQ(status("rotate")["environment"]["omittedSecrets"], Json({"api-key"}));
  EXPECT_EQ(client_.object(res::kSecret, "shop", "db")["data"]["password"], "aHVudGVyMg==") << "production changed";
}

TEST_F(PatchReconcilerTest, EnvironmentLimitsComeFromThePolicy) {
  seedPolicy(client_, "shop", "limits",
             {{"environment", {{"cpu", "2"}, {"memory", "256Mi"}, {"storage", "1Gi"}, {"pods", 10}}}});
  createPatch("fix");
  reconcileUntil("fix", api::v1alpha1::phase::kProvisioning);
  ASSERT_TRUE(reconcile("fix").ok());
  std::string env = envNamespace("fix");
  Json hard = client_.object(res::kResourceQuota, env, "patchgate-environment")["spec"]["hard"];
  EXPECT_EQ(hard["pods"], "10");
  EXPECT_EQ(hard["requests.cpu"], "2");
  EXPECT_EQ(hard["limits.memory"], "256Mi");
  EXPECT_EQ(hard["requests.ephemeral-storage"], "1Gi");
  Json limits = client_.object(res::kLimitRange, env, "patchgate-environment")["spec"]["limits"][0];
  // Containers that declare nothing get a small request and may use up to
  // the quota; one that asks for more than the small default is not refused.
  EXPECT_EQ(limits["defaultRequest"]["cpu"], "50m");
  EXPECT_EQ(limits["default"]["cpu"], "2");
  EXPECT_EQ(limits["default"]["memory"], "256Mi");
  EXPECT_EQ(limits["max"]["cpu"], "2");
}

// A policy that cannot be read stops Patches where it applies: fail closed.
TEST_F(PatchReconcilerTest, AnUnreadablePolicyHoldsThePatch) {
  seedPolicy(client_, "shop", "broken",
             Json::parse(R"({"changeWindows": [{"start": "09:00", "end": "17:00", "timeZone": "Mars/Olympus"}]})"));
  createPatch("fix");
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(reconcile("fix").ok());
  Json st = status("fix");
  EXPECT_EQ(runtime::findCondition(st["conditions"], condition::kPolicyReady)["reason"], reason::kPolicyInvalid);
  EXPECT_NE(st.value("message", "").find("shop/broken"), std::string::npos) << st.dump(2);
  EXPECT_TRUE(client_.calls("create", "namespaces").empty());
  client_.erase(res::kPatchPolicy, "shop", "broken");
  reconcileUntil("fix", api::v1alpha1::phase::kProvisioning);
  EXPECT_TRUE(runtime::findCondition(status("fix")["conditions"], condition::kPolicyReady).is_null())
      << "the condition goes with the broken policy";
}

// Once production may be written, a broken policy must not stall the Patch:
// its verification and rollback go on, and validation is not redone.
TEST_F(PatchReconcilerTest, ABrokenPolicyNeverStallsAPromotionOrItsRollback) {
  createPatch("fix");
  driveToVerifying("fix");
  seedPolicy(client_, "shop", "broken",
             Json::parse(R"({"changeWindows": [{"start": "09:00", "end": "17:00", "timeZone": "Mars/Olympus"}]})"));
  clock_.advance(std::chrono::seconds(121));  // never healthy: verification times out
  reconcileUntil("fix", api::v1alpha1::phase::kRollingBack);
  markHealthy(res::kDeployment, "shop", "checkout");
  reconcileUntil("fix", api::v1alpha1::phase::kRolledBack);
  Json st = status("fix");
  EXPECT_TRUE(runtime::findCondition(st["conditions"], condition::kPolicyReady).is_null()) << st.dump(2);
  EXPECT_EQ(runtime::findCondition(st["conditions"], condition::kValidated)["status"], "True");
}

// A Secret's new values come from another Secret: never in the Patch, and
// what the tests ran with is what is promoted.
TEST_F(PatchReconcilerTest, ASecretSourceThatChangesAfterValidationFailsThePatch) {
  createPatchRotatingASecret("fix");
  driveToTestJob("fix");
  EXPECT_FALSE(status("fix")["secretSources"]["db-rotated"].get<std::string>().empty());
  EXPECT_EQ(client_.object(res::kPatch, "shop", "fix").dump().find("czNjcjN0"), std::string::npos)
      << "the new value appears in the Patch";
  Json src = client_.object(res::kSecret, "shop", "db-rotated");
  src["data"]["password"] = "b3RoZXI=";
  client_.seed(res::kSecret, src);
  completeJobs(envNamespace("fix"));
  reconcileUntil("fix", api::v1alpha1::phase::kFailed);
  EXPECT_NE(status("fix").value("message", "").find("changed after the patch was validated"), std::string::npos);
  EXPECT_EQ(client_.object(res::kSecret, "shop", "db")["data"]["password"], "aHVudGVyMg==") << "production untouched";
}

TEST_F(PatchReconcilerTest, AMissingSecretSourceFailsValidation) {
  client_.seed(res::kSecret, Json::parse(R"({"apiVersion":"v1","kind":"Secret",
      "metadata":{"name":"db","namespace":"shop"},"data":{"password":"aHVudGVyMg=="}})"));
  createPatch("fix", {{"change", {{"config", Json::parse(R"([
      {"kind": "Secret", "name": "db", "fromSecret": "no-such-secret"}])")}}}});
  reconcileUntil("fix", api::v1alpha1::phase::kFailed);
  EXPECT_NE(status("fix").value("message", "").find("no-such-secret"), std::string::npos);
  EXPECT_TRUE(client_.calls("create", "namespaces").empty());
}

// A rollback to a recorded revision puts its ConfigMaps and Secrets back too:
// its author must be allowed to change them (a rotated credential could
// otherwise come back through a rollback).
TEST_F(PatchReconcilerTest, ARollbackToARevisionChecksTheRightToRestoreItsConfig) {
  createPatch("fix");
  driveToVerifying("fix");
  bakeToSuccess("fix");
  client_.setAccessReviewer([](const Json& spec) {
    bool configmaps = spec["resourceAttributes"]["resource"] == "configmaps";
    return Json{{"allowed", !configmaps}};
  });
  createPatch("undo", {{"author", "alice"},
                       {"change", {{"patch", nullptr}, {"config", nullptr}, {"rollbackTo", {{"revision", 1}}}}},
                       {"tests", nullptr}});
  reconcileUntil("undo", api::v1alpha1::phase::kFailed);
  Json st = status("undo");
  EXPECT_EQ(runtime::findCondition(st["conditions"], condition::kValidated)["reason"], reason::kForbidden) << st.dump(2);
  EXPECT_NE(st.value("message", "").find("patch ConfigMap/checkout-config"), std::string::npos) << st.dump(2);
  EXPECT_NE(st.value("message", "").find("the rollback would restore it"), std::string::npos);
}

}  // namespace
}  // namespace patchgate::controllers::patch
