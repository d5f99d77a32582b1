// Provisioning: the ephemeral copy of production in a namespace of its own.
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

// On the environment's copy of the target: the spec hash production gets
// (status.expectedHash) when it was made, to tell a copy of this change from
// one made for an earlier edit of the spec.
constexpr char kAnnotationCopyOf[] = "patchgate.dev/copy-of";
constexpr char kAnnotationCopyOfPath[] = "/metadata/annotations/patchgate.dev~1copy-of";

// A copy of a production object for the environment: same name, data and
// labels; none of the server-owned metadata.
Json copyMeta(const Json& src, const std::string& envNs, const Json& owned) {
  Json meta = {{"name", jsonString(src, "/metadata/name")}, {"namespace", envNs}};
  Json labels = Json::object();
  if (jsonAt(src, "/metadata/labels").is_object())
    for (auto& [k, v] : jsonAt(src, "/metadata/labels").items())
      if (!isGitOpsTrackingKey(k)) labels[k] = v;
  for (auto& [k, v] : owned.items()) labels[k] = v;
  meta["labels"] = labels;
  if (jsonAt(src, "/metadata/annotations").is_object()) {
    Json ann = Json::object();
    for (auto& [k, v] : jsonAt(src, "/metadata/annotations").items())
      if (!isGitOpsTrackingKey(k)) ann[k] = v;
    ann.erase("kubectl.kubernetes.io/last-applied-configuration");
    ann.erase("deployment.kubernetes.io/revision");
    if (!ann.empty()) meta["annotations"] = ann;
  }
  return meta;
}

Json copyObject(const Json& src, const std::string& envNs, const Json& owned) {
  Json out = {{"apiVersion", src.value("apiVersion", "v1")}, {"kind", src.value("kind", "")},
              {"metadata", copyMeta(src, envNs, owned)}};
  std::string kind = src.value("kind", "");
  if (kind == "ConfigMap" || kind == "Secret") {
    for (const char* f : {"data", "binaryData", "stringData", "type", "immutable"})
      if (src.contains(f)) out[f] = src[f];
  } else if (kind == "Service") {
    Json spec = src.value("spec", Json::object());
    bool headless = spec.value("clusterIP", "") == "None";  // StatefulSets' governing Services
    for (const char* f : {"clusterIP", "clusterIPs", "healthCheckNodePort", "loadBalancerIP",
                          "externalIPs", "ipFamilies", "ipFamilyPolicy"})
      spec.erase(f);
    if (headless) spec["clusterIP"] = "None";
    if (spec.value("type", "") != "ExternalName") spec["type"] = "ClusterIP";
    for (auto& port : spec["ports"]) port.erase("nodePort");
    out["spec"] = spec;
  } else if (kind == "ServiceAccount") {
    // Token secrets and pull secrets are per namespace: nothing to carry over.
  } else {
    out["spec"] = src.value("spec", Json::object());
  }
  return out;
}

// The smaller of two quantities ("" when neither is set).
std::string smaller(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  auto c = v1::compareQuantity(a, b);
  return c && *c > 0 ? b : a;
}

}  // namespace

Json environmentQuota(const v1::PolicyEnvironment& limits, const Json& labels) {
  Json hard = {{"pods", std::to_string(limits.pods > 0 ? limits.pods : 50)}, {"services", "20"},
               {"configmaps", "50"}, {"secrets", "50"}, {"count/jobs.batch", "50"},
               {"services.loadbalancers", "0"}, {"services.nodeports", "0"}};
  if (!limits.cpu.empty()) hard["requests.cpu"] = hard["limits.cpu"] = limits.cpu;
  if (!limits.memory.empty()) hard["requests.memory"] = hard["limits.memory"] = limits.memory;
  if (!limits.storage.empty())  // ephemeral storage, and the claims of converted volumeClaimTemplates
    hard["requests.ephemeral-storage"] = hard["limits.ephemeral-storage"] = hard["requests.storage"] =
        limits.storage;
  return {{"apiVersion", "v1"}, {"kind", "ResourceQuota"},
          {"metadata", {{"name", "patchgate-environment"}, {"labels", labels}}},
          {"spec", {{"hard", hard}}}};
}

Json environmentLimitRange(const v1::PolicyEnvironment& limits, const Json& labels) {
  // With a quota on a resource, the API server refuses pods that do not
  // declare it: containers that declare nothing get a small request and a
  // limit of the whole quota (a default limit below a container's own
  // request would get its pod refused).
  Json def = Json::object(), req = Json::object(), max = Json::object();
  auto add = [&](const char* res, const std::string& quota, const char* request) {
    if (quota.empty()) return;
    def[res] = quota;
    req[res] = smaller(request, quota);
    max[res] = quota;
  };
  add("cpu", limits.cpu, "50m");
  add("memory", limits.memory, "64Mi");
  add("ephemeral-storage", limits.storage, "64Mi");
  if (def.empty()) return nullptr;
  return {{"apiVersion", "v1"}, {"kind", "LimitRange"},
          {"metadata", {{"name", "patchgate-environment"}, {"labels", labels}}},
          {"spec", {{"limits", Json::array({{{"type", "Container"}, {"default", def},
                                              {"defaultRequest", req}, {"max", max}}})}}}};
}

PatchReconciler::Step PatchReconciler::provision(Pass& p) {
  if (v1::isConditionTrue(p.status.conditions, condition::kEnvironmentReady)) return std::nullopt;
  std::string envNs = p.envNamespace();
  int64_t retests = p.status.retests.value_or(0);
  if (envNs.empty()) {
    envNs = environmentNamespaceName(p.name, p.uid, retests);
    p.status.environment = v1::EnvironmentStatus{.namespace_ = envNs, .createdAt = timeString(p.now)};
  }
  v1::EnvironmentStatus& env = *p.status.environment;
  Json owned = ownedLabels(p);

  // 1. The namespace, labelled as ours and linked to the Patch.
  auto existing = client_.get(kube::resources::kNamespace, "", envNs);
  if (!existing.ok() && !kube::isNotFound(existing.status())) return existing.status();
  if (existing.ok()) {
    const Json& nsLabels = jsonAt(*existing, "/metadata/labels");
    if (!nsLabels.is_object() || nsLabels.value(v1::kLabelPatchUid, "") != p.uid) {
      std::string msg = absl::StrCat("namespace ", envNs, " exists and does not belong to this patch");
      fail(p, reason::kEnvironmentTimeout, msg);
      return Action::await();
    }
    if (!jsonString(*existing, "/metadata/deletionTimestamp").empty())
      return Action::requeue(options_.pollInterval);  // an old copy is still going away
  } else {
    Json labels = owned;
    labels[v1::kLabelEnvironment] = "true";
    // Every pod here (copies and tests) meets the baseline Pod Security
    // Standard: no host namespaces, host paths, host ports or privilege.
    labels["pod-security.kubernetes.io/enforce"] = "baseline";
    Json ns = {{"apiVersion", "v1"}, {"kind", "Namespace"},
               {"metadata", {{"name", envNs}, {"labels", labels},
                             {"annotations", {{v1::kAnnotationTicket, p.spec.ticket},
                                              {"patchgate.dev/source-namespace", p.ns}}}}}};
    if (auto s = ensureCreated(client_, kube::resources::kNamespace, "", ns); !s.ok()) return s;
    metrics_->environmentCreated();
    recorder_.event(p.patch, runtime::EventType::kNormal, reason::kProvisioning, "Provision",
                    absl::StrCat("created test environment namespace ", envNs));
    failpoint("provision.afterNamespace");
  }

  // 2. Guard rails: a quota and a NetworkPolicy that admits traffic only from
  // inside the environment and lets it reach only itself and DNS (test pods
  // may also reach the operator's API: provisionTestApi).
  // CPU, memory and storage as the PatchPolicies allow (with a LimitRange
  // giving containers that declare none a share within them).
  Json quota = environmentQuota(p.policy.environment, owned);
  if (auto s = ensureCreated(client_, kube::resources::kResourceQuota, envNs, quota); !s.ok()) return s;
  if (Json limits = environmentLimitRange(p.policy.environment, owned); !limits.is_null())
    if (auto s = ensureCreated(client_, kube::resources::kLimitRange, envNs, limits); !s.ok()) return s;
  Json netpol = {
      {"apiVersion", "networking.k8s.io/v1"}, {"kind", "NetworkPolicy"},
      {"metadata", {{"name", "patchgate-isolation"}, {"labels", owned}}},
      {"spec",
       {{"podSelector", Json::object()},
        {"policyTypes", {"Ingress", "Egress"}},
        {"ingress", Json::array({{{"from", Json::array({{{"podSelector", Json::object()}}})}}})},
        {"egress",
         Json::array({{{"to", Json::array({{{"podSelector", Json::object()}}})}},
                      {{"to", Json::array({{{"namespaceSelector",
                                             {{"matchLabels", {{"kubernetes.io/metadata.name", "kube-system"}}}}}}})},
                       {"ports", Json::array({{{"protocol", "UDP"}, {"port", 53}},
                                              {{"protocol", "TCP"}, {"port", 53}}})}}})}}}};
  if (auto s = ensureCreated(client_, kube::resources::kNetworkPolicy, envNs, netpol); !s.ok()) return s;
  if (auto s = provisionTestApi(p); !s.ok()) return s;

  // 3. The target with the change applied, from a fresh server-side dry run
  // against production: the tests prove this exact spec on this exact base.
  auto envCopy = client_.get(p.targetType, envNs, p.spec.target.name);
  if (!envCopy.ok() && !kube::isNotFound(envCopy.status())) return envCopy.status();
  if (!envCopy.ok()) {
    auto prod = client_.get(p.targetType, p.ns, p.spec.target.name);
    if (!prod.ok()) {
      if (kube::isNotFound(prod.status())) {
        fail(p, reason::kTargetVanished, absl::StrCat(p.spec.target.key(), " disappeared from ", p.ns,
                                                       " before it could be copied"));
        return Action::await();
      }
      return prod.status();
    }
    Json revTemplate;
    if (p.spec.change.rollbackTo) {
      auto rev = client_.get(kube::resources::kControllerRevision, p.ns, p.rollbackSourceName());
      if (!rev.ok()) return rev.status();
      revTemplate = jsonAt(*rev, "/data/template");
    }
    auto change = workloadChange(p.spec, *prod, revTemplate.is_null() ? nullptr : &revTemplate, false);
    if (!change.ok()) return change.status();
    kube::PatchOptions dry;
    dry.dryRun = true;
    auto patched = client_.patch(p.targetType, p.ns, p.spec.target.name, change->type, change->body, dry);
    if (!patched.ok()) {
      if (kube::isInvalid(patched.status())) {
        fail(p, reason::kChangeRejected, absl::StrCat("the change no longer applies: ", patched.status().message()));
        return Action::await();
      }
      return patched.status();
    }
    if (std::string why = hostAccess(*patched); !why.empty()) {  // production changed since validation
      fail(p, reason::kUnsafeForEnvironment,
           absl::StrCat(p.spec.target.key(), " cannot be copied into a test environment: ", why));
      return Action::await();
    }
    p.status.baseHash = specHash(*prod);
    p.status.expectedHash = specHash(*patched);
    env.baseResourceVersion = jsonString(*prod, "/metadata/resourceVersion");

    // ConfigMaps, Secrets and the ServiceAccount the pods use, with the
    // config part of the change applied (dry run on production again).
    References refs = podReferences(podTemplate(*patched));
    auto changeOf = [&](const std::string& kind, const std::string& name) -> const v1::ConfigChange* {
      const v1::ConfigChange* cc = nullptr;
      for (const auto& c : p.spec.change.config)
        if (c.kind == kind && c.name == name) cc = &c;
      return cc;
    };
    auto copyConfig = [&](const kube::ResourceType& rt, const std::string& kind,
                          const std::string& name) -> absl::Status {
      const v1::ConfigChange* cc = changeOf(kind, name);
      absl::StatusOr<Json> src = client_.get(rt, p.ns, name);
      if (!src.ok()) return kube::isNotFound(src.status()) ? absl::OkStatus() : src.status();  // optional refs
      if (cc) {
        auto req = configChange(*cc);
        if (!req.ok()) return req.status();
        src = client_.patch(rt, p.ns, name, req->type, req->body, dry);
        if (!src.ok()) return src.status();
      }
      return ensureCreated(client_, rt, envNs, copyObject(*src, envNs, owned));
    };
    for (const auto& cm : refs.configMaps)
      if (auto s = copyConfig(kube::resources::kConfigMap, "ConfigMap", cm); !s.ok()) return s;
    // Without `secrets: copy`, production's Secrets stay in production. A
    // Secret this Patch changes is the change under test, though: its copy
    // holds the new values alone (the keys of its fromSecret, which the
    // author was checked to be allowed to read), none of production's.
    auto copyNewValuesOnly = [&](const std::string& name) -> absl::StatusOr<bool> {
      const v1::ConfigChange* cc = changeOf("Secret", name);
      if (cc == nullptr || cc->fromSecret.empty()) return false;
      Json body = Json::parse(cc->patch, nullptr, /*allow_exceptions=*/false);
      if (body.is_discarded() || !jsonAt(body, "/data").is_object())
        return absl::InternalError(absl::StrCat("the new values of Secret ", name, " were not read from ",
                                                cc->fromSecret));
      Json copy = {{"apiVersion", "v1"},
                   {"kind", "Secret"},
                   {"metadata", {{"name", name}}},
                   {"type", "Opaque"},
                   {"data", body["data"]}};
      if (auto s = ensureCreated(client_, kube::resources::kSecret, envNs, copyObject(copy, envNs, owned)); !s.ok())
        return s;
      return true;
    };
    if (p.spec.secrets == "copy") {
      for (const auto& sec : refs.secrets)
        if (auto s = copyConfig(kube::resources::kSecret, "Secret", sec); !s.ok()) return s;
    } else {
      env.omittedSecrets.clear();
      for (const auto& sec : refs.secrets) {
        auto copied = copyNewValuesOnly(sec);
        if (!copied.ok()) return copied.status();
        if (!*copied) env.omittedSecrets.push_back(sec);
      }
    }
    if (!refs.serviceAccount.empty() && refs.serviceAccount != "default") {
      auto sa = client_.get(kube::resources::kServiceAccount, p.ns, refs.serviceAccount);
      if (sa.ok()) {
        if (auto s = ensureCreated(client_, kube::resources::kServiceAccount, envNs, copyObject(*sa, envNs, owned)); !s.ok())
          return s;
      }
    }
    // Services that select the target's pods, under the same names.
    const Json& podLabels = jsonAt(*patched, "/spec/template/metadata/labels");
    auto services = client_.list(kube::resources::kService, p.ns, {});
    if (!services.ok()) return services.status();
    std::vector<std::string> serviceNames;
    for (const auto& svc : (*services)["items"]) {
      const Json& sel = jsonAt(svc, "/spec/selector");
      if (!sel.is_object() || sel.empty()) continue;
      bool matches = true;
      for (auto& [k, v] : sel.items())
        if (!podLabels.is_object() || podLabels.value(k, Json()) != v) matches = false;
      if (!matches) continue;
      Json s2 = svc;
      s2["kind"] = "Service";
      s2["apiVersion"] = "v1";
      if (auto s = ensureCreated(client_, kube::resources::kService, envNs, copyObject(s2, envNs, owned)); !s.ok()) return s;
      serviceNames.push_back(jsonString(svc, "/metadata/name"));
    }
    env.services = std::move(serviceNames);
    // Declared dependencies.
    for (const auto& inc : p.spec.include) {
      auto irt = inc.kind == "Service"     ? kube::resources::kService
                 : inc.kind == "ConfigMap" ? kube::resources::kConfigMap
                 : inc.kind == "Secret"    ? kube::resources::kSecret
                 : inc.kind == "StatefulSet" ? kube::resources::kStatefulSet
                                             : kube::resources::kDeployment;
      if (inc.kind == "Secret" && p.spec.secrets == "omit") {
        auto copied = copyNewValuesOnly(inc.name);
        if (!copied.ok()) return copied.status();
        continue;
      }
      auto src = client_.get(irt, p.ns, inc.name);
      if (!src.ok()) {
        if (kube::isNotFound(src.status())) {
          fail(p, reason::kTargetNotFound, absl::StrCat("included ", inc.kind, " ", inc.name, " not found in ", p.ns));
          return Action::await();
        }
        return src.status();
      }
      Json copy = copyObject(*src, envNs, owned);
      if (inc.kind == "Deployment" || inc.kind == "StatefulSet") {
        if (std::string why = hostAccess(copy); !why.empty()) {
          fail(p, reason::kUnsafeForEnvironment,
               absl::StrCat("included ", inc.kind, " ", inc.name, " cannot be copied into a test environment: ", why));
          return Action::await();
        }
        hardenForEnvironment(copy);
        copy["spec"]["replicas"] = 1;
      }
      if (auto s = ensureCreated(client_, irt, envNs, copy); !s.ok()) return s;
      if (inc.kind == "Deployment" || inc.kind == "StatefulSet") {
        for (const auto& cm : podReferences(copy["spec"]["template"]).configMaps)
          if (auto s = copyConfig(kube::resources::kConfigMap, "ConfigMap", cm); !s.ok()) return s;
      }
    }
    // Last, the workload itself.
    Json copy = copyObject(*patched, envNs, owned);
    copy["apiVersion"] = "apps/v1";
    copy["kind"] = p.spec.target.kind;
    if (p.spec.target.kind != "DaemonSet") copy["spec"]["replicas"] = p.spec.envReplicas;
    copy["spec"]["template"]["metadata"]["labels"][v1::kLabelPatchUid] = p.uid;
    copy["metadata"]["annotations"][kAnnotationCopyOf] = p.status.expectedHash.value_or("");
    hardenForEnvironment(copy);
    if (auto s = ensureCreated(client_, p.targetType, envNs, copy); !s.ok()) return s;
    return Action::requeue(options_.pollInterval);
  }

  // A copy made for another version of the spec: an edit landed while the
  // pass that built it could not record it (its status write got a 409, or
  // it crashed), so the tests would prove the wrong change. The environment
  // is made anew, under the same name once the old namespace is gone.
  if (jsonString(*envCopy, kAnnotationCopyOfPath) !=
      p.status.expectedHash.value_or("")) {
    kube::DeleteOptions opts;
    opts.propagationPolicy = "Background";
    auto gone = client_.remove(kube::resources::kNamespace, "", envNs, opts);
    if (!gone.ok() && !kube::isNotFound(gone.status())) return gone.status();
    recorder_.event(p.patch, runtime::EventType::kNormal, reason::kProvisioning, "Provision",
                    absl::StrCat("the copy in ", envNs, " was made for another version of the spec; making it anew"));
    return Action::requeue(options_.pollInterval);
  }

  // 4. Wait until the copy is Ready.
  Health h = workloadHealth(*envCopy);
  if (!h.healthy && !env.omittedSecrets.empty())
    h.message = absl::StrCat("not ready: Secret ", absl::StrJoin(env.omittedSecrets, ", Secret "),
                             " was not copied (spec.environment.secrets is omit",
                             p.policy.allowSecretCopy ? "; set it to copy to give the copy production's Secrets"
                                                      : absl::StrCat(", as policy ", p.policy.source, " demands"),
                             "); ", h.message);
  env.message = h.message;
  if (h.healthy) {
    env.readyAt = timeString(p.now);
    setCondition(p, condition::kEnvironmentReady, true, reason::kEnvironmentReady,
                 absl::StrCat("copy of ", p.spec.target.key(), " ready in ", envNs, ": ", h.message));
    transition(p, v1::phase::kTesting, reason::kEnvironmentReady,
               absl::StrCat("environment ", envNs, " ready; running ", p.spec.tests.size(), " test(s)"));
    return std::nullopt;
  }
  double waited = secondsSince(env.createdAt, p.now);
  if (waited > static_cast<double>(p.spec.readyTimeoutSeconds) || h.failed) {
    std::string msg = absl::StrCat("the copy of ", p.spec.target.key(), " in ", envNs,
                                   " did not become ready within ", p.spec.readyTimeoutSeconds, "s: ", h.message);
    setCondition(p, condition::kEnvironmentReady, false, reason::kEnvironmentTimeout, msg);
    fail(p, reason::kEnvironmentTimeout, msg);
    return Action::await();
  }
  setCondition(p, condition::kEnvironmentReady, false, reason::kProvisioning, h.message);
  p.status.message = absl::StrCat("waiting for the copy in ", envNs, ": ", h.message);
  return Action::requeue(options_.pollInterval);
}

}  // namespace patchgate::controllers::patch
