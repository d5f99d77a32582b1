// Pure logic of the Patch controller: health rules, references, change requests, diffs.
#include <gtest/gtest.h>

#include "controllers/patch/workload.h"

namespace patchgate::controllers::patch {
namespace {

Json deployment(int64_t gen, int64_t observed, int64_t replicas, int64_t updated, int64_t available,
                int64_t total) {
  return {{"kind", "Deployment"},
          {"metadata", {{"generation", gen}}},
          {"spec", {{"replicas", replicas}}},
          {"status", {{"observedGeneration", observed}, {"updatedReplicas", updated},
                      {"availableReplicas", available}, {"replicas", total}}}};
}

TEST(WorkloadHealth, DeploymentRolloutStates) {
  EXPECT_FALSE(workloadHealth(deployment(3, 2, 2, 2, 2, 2)).healthy);  // not observed yet
  EXPECT_FALSE(workloadHealth(deployment(3, 3, 2, 1, 2, 3)).healthy);  // half updated
  EXPECT_FALSE(workloadHealth(deployment(3, 3, 2, 2, 2, 3)).healthy);  // old replica left
  EXPECT_FALSE(workloadHealth(deployment(3, 3, 2, 2, 1, 2)).healthy);  // not available
  Health ok = workloadHealth(deployment(3, 3, 2, 2, 2, 2));
  EXPECT_TRUE(ok.healthy);
  EXPECT_NE(ok.message.find("2 of 2"), std::string::npos);
  // The generation promoted must be observed even if the cache shows an older object.
  EXPECT_FALSE(workloadHealth(deployment(3, 3, 2, 2, 2, 2), 4).healthy);
}

TEST(WorkloadHealth, ProgressDeadlineIsAFailureNotAWait) {
  Json d = deployment(2, 2, 2, 1, 1, 2);
  d["status"]["conditions"] = {{{"type", "Progressing"}, {"status", "False"},
                                {"reason", "ProgressDeadlineExceeded"}, {"message", "too slow"}}};
  Health h = workloadHealth(d);
  EXPECT_FALSE(h.healthy);
  EXPECT_TRUE(h.failed);
  EXPECT_NE(h.message.find("too slow"), std::string::npos);
}

TEST(WorkloadHealth, StatefulSetNeedsCurrentEqualsUpdateRevision) {
  Json s = {{"kind", "StatefulSet"}, {"metadata", {{"generation", 1}}}, {"spec", {{"replicas", 2}}},
            {"status", {{"observedGeneration", 1}, {"updatedReplicas", 2}, {"readyReplicas", 2},
                        {"currentRevision", "a"}, {"updateRevision", "b"}}}};
  EXPECT_FALSE(workloadHealth(s).healthy);
  s["status"]["currentRevision"] = "b";
  EXPECT_TRUE(workloadHealth(s).healthy);
}

TEST(WorkloadHealth, DaemonSet) {
  Json d = {{"kind", "DaemonSet"}, {"metadata", {{"generation", 1}}},
            {"status", {{"observedGeneration", 1}, {"desiredNumberScheduled", 3},
                        {"updatedNumberScheduled", 3}, {"numberAvailable", 2}}}};
  EXPECT_FALSE(workloadHealth(d).healthy);
  d["status"]["numberAvailable"] = 3;
  EXPECT_TRUE(workloadHealth(d).healthy);
}

TEST(PodReferences, FindsConfigSecretsAndServiceAccount) {
  Json tmpl = Json::parse(R"({"spec": {
    "serviceAccountName": "sa",
    "imagePullSecrets": [{"name": "pull"}],
    "volumes": [{"name": "a", "configMap": {"name": "cm1"}}, {"name": "b", "secret": {"secretName": "s1"}},
                {"name": "c", "projected": {"sources": [{"configMap": {"name": "cm2"}}, {"secret": {"name": "s2"}}]}}],
    "containers": [{"name": "x",
      "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm3", "key": "k"}}},
              {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "k"}}}],
      "envFrom": [{"configMapRef": {"name": "cm1"}}, {"secretRef": {"name": "s4"}}]}]}})");
  References r = podReferences(tmpl);
  EXPECT_EQ(r.serviceAccount, "sa");
  EXPECT_EQ(r.configMaps, (std::vector<std::string>{"cm1", "cm2", "cm3"}));
  EXPECT_EQ(r.secrets, (std::vector<std::string>{"s1", "s2", "pull", "s3", "s4"}));
}

api::v1alpha1::PatchSpec specWith(const std::string& type, const std::string& patch) {
  api::v1alpha1::PatchSpec s;
  s.change.type = type;
  s.change.patch = patch;
  return s;
}

TEST(WorkloadChange, PreconditionIsTheResourceVersion) {
  Json current = {{"metadata", {{"resourceVersion", "42"}}}};
  auto merge = workloadChange(specWith("merge", "spec: {paused: true}"), current, nullptr, true);
  ASSERT_TRUE(merge.ok());
  EXPECT_EQ(merge->type, kube::PatchType::kMerge);
  EXPECT_EQ(Json::parse(merge->body)["metadata"]["resourceVersion"], "42");
  auto json = workloadChange(specWith("json", R"([{"op":"replace","path":"/spec/paused","value":true}])"),
                             current, nullptr, true);
  ASSERT_TRUE(json.ok());
  Json ops = Json::parse(json->body);
  ASSERT_EQ(ops.size(), 2u);
  EXPECT_EQ(ops[0]["op"], "test");
  EXPECT_EQ(ops[0]["value"], "42");
  auto dry = workloadChange(specWith("strategic", "spec: {paused: true}"), current, nullptr, false);
  ASSERT_TRUE(dry.ok());
  EXPECT_FALSE(Json::parse(dry->body).contains("metadata"));
}

TEST(WorkloadChange, ImageNeedsAContainerNameWhenThereAreSeveral) {
  api::v1alpha1::PatchSpec s;
  s.change.image = "repo/app:2";
  Json one = {{"spec", {{"template", {{"spec", {{"containers", {{{"name", "app"}}}}}}}}}}};
  auto r = workloadChange(s, one, nullptr, false);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(Json::parse(r->body)["spec"]["template"]["spec"]["containers"][0]["name"], "app");
  Json two = one;
  two["spec"]["template"]["spec"]["containers"].push_back({{"name", "sidecar"}});
  EXPECT_FALSE(workloadChange(s, two, nullptr, false).ok());
  s.change.image = "sidecar=repo/side:9";
  auto named = workloadChange(s, two, nullptr, false);
  ASSERT_TRUE(named.ok());
  EXPECT_EQ(Json::parse(named->body)["spec"]["template"]["spec"]["containers"][0]["image"], "repo/side:9");
}

TEST(WorkloadChange, RollbackReplacesTheTemplate) {
  api::v1alpha1::PatchSpec s;
  s.change.rollbackTo = 1;
  Json tmpl = {{"spec", {{"containers", {{{"name", "app"}, {"image", "old"}}}}}}};
  auto r = workloadChange(s, {{"metadata", {{"resourceVersion", "7"}}}}, &tmpl, true);
  ASSERT_TRUE(r.ok());
  Json ops = Json::parse(r->body);
  EXPECT_EQ(ops[1]["op"], "replace");
  EXPECT_EQ(ops[1]["path"], "/spec/template");
  EXPECT_EQ(ops[1]["value"], tmpl);
  EXPECT_FALSE(workloadChange(s, {}, nullptr, false).ok());
}

TEST(WorkloadChange, ConfigChangesPutTheirDigestOnThePodTemplateAndTheWriteMarkOnTheWorkload) {
  api::v1alpha1::PatchSpec s = specWith("strategic", "spec: {paused: true}");
  s.change.config.push_back({"ConfigMap", "cfg", "merge", R"({"data":{"A":"1"}})"});
  std::string digest = configChangeDigest(s);
  ASSERT_FALSE(digest.empty());
  Json current = {{"metadata", {{"resourceVersion", "9"}}}};
  auto r = workloadChange(s, current, nullptr, true, "uid-1/Promote");
  ASSERT_TRUE(r.ok()) << r.status();
  Json body = Json::parse(r->body);
  EXPECT_EQ(body["spec"]["template"]["metadata"]["annotations"]["patchgate.dev/config-hash"], digest);
  EXPECT_EQ(body["metadata"]["annotations"]["patchgate.dev/last-write"], "uid-1/Promote");
  EXPECT_EQ(body["spec"]["paused"], true);
  // Another config text, another digest (the pods roll again).
  s.change.config[0].patch = R"({"data":{"A":"2"}})";
  EXPECT_NE(configChangeDigest(s), digest);
  // Without config: no digest, the template is left alone.
  s.change.config.clear();
  auto plain = workloadChange(s, current, nullptr, false);
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(Json::parse(plain->body)["spec"].contains("template"));

  // JSON patches: the annotation maps are created when missing, extended when present.
  api::v1alpha1::PatchSpec j = specWith("json", R"([{"op":"replace","path":"/spec/paused","value":true}])");
  j.change.config.push_back({"ConfigMap", "cfg", "merge", "{}"});
  auto bare = workloadChange(j, current, nullptr, true, "u/Promote");
  ASSERT_TRUE(bare.ok());
  Json ops = Json::parse(bare->body);
  EXPECT_EQ(ops[1]["path"], "/metadata/annotations");
  EXPECT_EQ(ops[1]["value"]["patchgate.dev/last-write"], "u/Promote");
  EXPECT_EQ(ops[2]["path"], "/spec/template/metadata/annotations");
  Json annotated = current;
  annotated["metadata"]["annotations"] = {{"x", "y"}};
  annotated["spec"]["template"]["metadata"]["annotations"] = {{"x", "y"}};
  ops = Json::parse(workloadChange(j, annotated, nullptr, true, "u/Promote")->body);
  EXPECT_EQ(ops[1]["path"], "/metadata/annotations/patchgate.dev~1last-write");
  EXPECT_EQ(ops[2]["path"], "/spec/template/metadata/annotations/patchgate.dev~1config-hash");
}

Json statefulSet(int64_t replicas, int64_t updated, int64_t ready, Json strategy) {
  return {{"kind", "StatefulSet"},
          {"metadata", {{"generation", 2}}},
          {"spec", {{"replicas", replicas}, {"updateStrategy", strategy}}},
          {"status", {{"observedGeneration", 2}, {"updatedReplicas", updated}, {"readyReplicas", ready},
                      {"currentRevision", "r1"}, {"updateRevision", "r2"}}}};
}

TEST(WorkloadHealth, StatefulSetPartitionAndOnDelete) {
  Json part = {{"type", "RollingUpdate"}, {"rollingUpdate", {{"partition", 1}}}};
  // replicas 2, partition 1: one pod is to be updated; the other stays.
  EXPECT_FALSE(workloadHealth(statefulSet(2, 0, 2, part)).healthy);
  Health h = workloadHealth(statefulSet(2, 1, 2, part));
  EXPECT_TRUE(h.healthy) << h.message;
  EXPECT_NE(h.message.find("partition 1"), std::string::npos);
  EXPECT_FALSE(workloadHealth(statefulSet(2, 1, 1, part)).healthy);  // all must be ready
  // A partition at or above replicas updates nothing: healthy when all are ready.
  Json all = {{"type", "RollingUpdate"}, {"rollingUpdate", {{"partition", 5}}}};
  EXPECT_TRUE(workloadHealth(statefulSet(2, 0, 2, all)).healthy);
  // OnDelete: the controller replaces no pod; all ready is healthy.
  Json onDelete = {{"type", "OnDelete"}};
  EXPECT_TRUE(workloadHealth(statefulSet(3, 0, 3, onDelete)).healthy);
  EXPECT_FALSE(workloadHealth(statefulSet(3, 0, 2, onDelete)).healthy);
  // Without either, the whole set must roll.
  EXPECT_FALSE(workloadHealth(statefulSet(2, 1, 2, {{"type", "RollingUpdate"}})).healthy);
}

TEST(PodTrouble, CountsRestartsAndNamesTheFirstStuckContainer) {
  Json pods = {{"items",
                {{{"metadata", {{"name", "a"}}},
                  {"status", {{"containerStatuses", {{{"name", "app"}, {"restartCount", 2}}}}}}},
                 {{"metadata", {{"name", "b"}}},
                  {"status", {{"containerStatuses",
                               {{{"name", "app"}, {"restartCount", 1},
                                 {"state", {{"waiting", {{"reason", "CrashLoopBackOff"}}}}},
                                 {"lastState", {{"terminated", {{"exitCode", 1}, {"reason", "Error"}}}}}}}}}}},
                 {{"metadata", {{"name", "gone"}, {"deletionTimestamp", "2026-01-01T00:00:00Z"}}},
                  {"status", {{"containerStatuses", {{{"name", "app"}, {"restartCount", 9}}}}}}}}}};
  PodTrouble t = podTrouble(pods);
  EXPECT_EQ(t.restarts, 3);  // pods going away do not count
  EXPECT_EQ(t.problem, "pod b container app: CrashLoopBackOff (last exit code 1, Error)");
}

// The pods of a workload are listed by its whole selector: an expression
// left out would count another workload's restarts against this one.
TEST(WorkloadSelector, MatchLabelsAndEveryExpressionOperator) {
  auto sel = [](Json selector) { return workloadSelector({{"spec", {{"selector", selector}}}}); };
  EXPECT_EQ(*sel({{"matchLabels", {{"app", "x"}, {"tier", "web"}}}}), "app=x,tier=web");
  Json both = Json::parse(R"({"matchLabels": {"app": "x"}, "matchExpressions": [
      {"key": "track", "operator": "In", "values": ["stable", "canary"]},
      {"key": "env", "operator": "NotIn", "values": ["test"]},
      {"key": "owner", "operator": "Exists"},
      {"key": "legacy", "operator": "DoesNotExist"}]})");
  EXPECT_EQ(*sel(both), "app=x,track in (stable,canary),env notin (test),owner,!legacy");
  Json onlyExpr = Json::parse(R"({"matchExpressions": [{"key": "app", "operator": "In", "values": ["x"]}]})");
  EXPECT_EQ(*sel(onlyExpr), "app in (x)");
  EXPECT_FALSE(sel(Json::object()).ok()) << "an empty selector would list every pod of the namespace";
  EXPECT_FALSE(sel(Json::parse(R"({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]})")).ok());
  EXPECT_FALSE(sel(Json::parse(R"({"matchExpressions": [{"key": "a", "operator": "In"}]})")).ok());
}

TEST(DescribeDiff, OneLinePerChangedPath) {
  Json before = {{"a", 1}, {"b", {{"c", "x"}}}, {"gone", true}};
  Json after = {{"a", 2}, {"b", {{"c", "x"}, {"d", "new"}}}};
  std::string d = describeDiff(before, after);
  EXPECT_NE(d.find("/a: 1 -> 2"), std::string::npos) << d;
  EXPECT_NE(d.find("/b/d: (none) -> \"new\""), std::string::npos) << d;
  EXPECT_NE(d.find("/gone: true -> (removed)"), std::string::npos) << d;
  EXPECT_EQ(describeDiff(before, before), "");
}

TEST(HashJson, StableAndSensitive) {
  Json a = {{"x", 1}, {"y", {1, 2}}};
  Json b = Json::parse(R"({"y":[1,2],"x":1})");
  EXPECT_EQ(hashJson(a), hashJson(b));  // key order does not matter
  b["y"][1] = 3;
  EXPECT_NE(hashJson(a), hashJson(b));
  EXPECT_EQ(hashJson(a).size(), 16u);
}

// Host access in any form makes a workload unfit for a test environment.
TEST(HostAccess, EachFormIsNamed) {
  auto wl = [](Json podSpec) { return Json{{"spec", {{"template", {{"spec", podSpec}}}}}}; };
  EXPECT_EQ(hostAccess(wl({{"containers", Json::array()}})), "");
  EXPECT_EQ(hostAccess(wl({{"hostNetwork", false}})), "");
  EXPECT_EQ(hostAccess(wl({{"hostNetwork", true}})), "its pods use hostNetwork");
  EXPECT_EQ(hostAccess(wl({{"hostPID", true}})), "its pods use hostPID");
  EXPECT_EQ(hostAccess(wl({{"hostIPC", true}})), "its pods use hostIPC");
  EXPECT_EQ(hostAccess(wl({{"volumes", {{{"name", "logs"}, {"hostPath", {{"path", "/var/log"}}}}}}})),
            "its pods mount the node's /var/log (hostPath volume logs)");
  EXPECT_EQ(hostAccess(wl({{"volumes", {{{"name", "cfg"}, {"configMap", {{"name", "x"}}}}}}})), "");
  EXPECT_EQ(hostAccess(wl({{"containers", {{{"name", "app"}, {"securityContext", {{"privileged", true}}}}}}})),
            "container app is privileged");
  EXPECT_EQ(hostAccess(wl({{"initContainers", {{{"name", "init"}, {"ports", {{{"containerPort", 80}, {"hostPort", 80}}}}}}}})),
            "container init binds the node's port 80");
  EXPECT_EQ(hostAccess(wl({{"containers", {{{"name", "app"}, {"ports", {{{"containerPort", 80}}}}}}}})), "");
}

TEST(HardenForEnvironment, StatefulSetClaimsBecomeEphemeralVolumes) {
  Json sts = Json::parse(R"({"kind": "StatefulSet", "spec": {
      "template": {"spec": {"priorityClassName": "critical", "preemptionPolicy": "PreemptLowerPriority",
                            "volumes": [{"name": "tmp", "emptyDir": {}}]}},
      "volumeClaimTemplates": [{"metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                 "dataSource": {"kind": "VolumeSnapshot", "name": "prod-snap"}}}]}})");
  hardenForEnvironment(sts);
  EXPECT_FALSE(sts["spec"].contains("volumeClaimTemplates"));
  const Json& pod = sts["spec"]["template"]["spec"];
  EXPECT_FALSE(pod.contains("priorityClassName"));
  EXPECT_FALSE(pod.contains("preemptionPolicy"));
  ASSERT_EQ(pod["volumes"].size(), 2u);
  const Json& data = pod["volumes"][1];
  EXPECT_EQ(data["name"], "data");
  EXPECT_EQ(data["ephemeral"]["volumeClaimTemplate"]["spec"]["resources"]["requests"]["storage"], "1Gi");
  EXPECT_FALSE(data["ephemeral"]["volumeClaimTemplate"]["spec"].contains("dataSource"))
      << "production's snapshot is not cloned into a test environment";
}

TEST(GitOpsTrackingKey, FluxAndArgoCdKeysOnly) {
  EXPECT_TRUE(isGitOpsTrackingKey("kustomize.toolkit.fluxcd.io/name"));
  EXPECT_TRUE(isGitOpsTrackingKey("helm.toolkit.fluxcd.io/namespace"));
  EXPECT_TRUE(isGitOpsTrackingKey("argocd.argoproj.io/tracking-id"));
  EXPECT_TRUE(isGitOpsTrackingKey("app.kubernetes.io/instance"));  // Argo CD's default label tracking
  EXPECT_FALSE(isGitOpsTrackingKey("app.kubernetes.io/name"));
  EXPECT_FALSE(isGitOpsTrackingKey("team"));
  EXPECT_FALSE(isGitOpsTrackingKey("evil.argocd.argoproj.io.example/x"));
}

}  // namespace
}  // namespace patchgate::controllers::patch
