// The gRPC API for test pods: resolved once per environment while
// provisioning (recorded in status.environment.testApi, with its own
// NetworkPolicy), then handed to each test Job.
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/net.h"
#include "controllers/patch/conditions.h"
#include "controllers/patch/pass.h"
#include "controllers/patch/workload.h"
#include "kube/errors.h"

namespace patchgate::controllers::patch {

namespace v1 = api::v1alpha1;

namespace {

constexpr char kApiCaConfigMap[] = "patchgate-api-ca";
constexpr char kApiCaDir[] = "/var/run/patchgate/api";
constexpr char kApiPolicy[] = "patchgate-test-api";

struct HostPort {
  std::string host;  // without brackets
  int port = 0;
};

// "host:port" or "[v6]:port"; port 1-65535.
absl::StatusOr<HostPort> splitHostPort(const std::string& address) {
  HostPort hp;
  std::string port;
  if (!address.empty() && address[0] == '[') {
    auto close = address.find(']');
    if (close == std::string::npos || address.substr(close, 2) != "]:")
      return absl::InvalidArgumentError(absl::StrCat("'", address, "' is not [IPv6]:PORT"));
    hp.host = address.substr(1, close - 1);
    port = address.substr(close + 2);
  } else {
    auto colon = address.rfind(':');
    if (colon == std::string::npos || address.find(':') != colon)
      return absl::InvalidArgumentError(
          absl::StrCat("'", address, "' is not HOST:PORT (write an IPv6 address as [ADDR]:PORT)"));
    hp.host = address.substr(0, colon);
    port = address.substr(colon + 1);
  }
  if (hp.host.empty() || !absl::SimpleAtoi(port, &hp.port) || hp.port < 1 || hp.port > 65535)
    return absl::InvalidArgumentError(absl::StrCat("'", address, "' needs a host and a port from 1 to 65535"));
  return hp;
}

// The ipBlock CIDR of an IP literal, or "" for a host name.
std::string hostCidr(const std::string& host) {
  switch (ipVersion(host)) {
    case 4: return host + "/32";
    case 6: return host + "/128";
    default: return "";
  }
}

std::string joinHostPort(const std::string& host, int port) {
  return host.find(':') == std::string::npos ? absl::StrCat(host, ":", port)
                                             : absl::StrCat("[", host, "]:", port);
}

}  // namespace

std::string addressHost(const std::string& address) {
  auto hp = splitHostPort(address);
  return hp.ok() ? hp->host : "";
}

absl::StatusOr<std::vector<std::string>> checkTestApi(const PatchReconcilerOptions::TestApi& api) {
  std::vector<std::string> warnings;
  if (!api.serviceName.empty() && !api.address.empty())
    warnings.push_back("both a test API service and address are set; test pods use the service");
  if (api.serviceName.empty() && !api.address.empty()) {
    auto hp = splitHostPort(api.address);
    if (!hp.ok()) return absl::InvalidArgumentError(absl::StrCat("--grpc-test-api-address: ", hp.status().message()));
    if (hostCidr(hp->host).empty())
      warnings.push_back(absl::StrCat("test API host ", hp->host,
                                      " is a name: the environments' NetworkPolicy cannot admit it, so test pods "
                                      "reach the API only where NetworkPolicies are not enforced; give an IP"));
  }
  return warnings;
}

absl::StatusOr<PatchReconciler::TestApiEndpoint> PatchReconciler::testApiEndpoint() {
  const auto& o = options_.testApi;
  TestApiEndpoint ep;
  if (o.serviceName.empty()) {
    auto hp = splitHostPort(o.address);
    if (!hp.ok()) return absl::FailedPreconditionError(hp.status().message());
    ep.address = joinHostPort(hp->host, hp->port);
    ep.serverName = o.serverName.empty() ? hp->host : o.serverName;
    std::string cidr = hostCidr(hp->host);
    if (cidr.empty())
      return absl::FailedPreconditionError(
          absl::StrCat("test API host ", hp->host, " is a name, which a NetworkPolicy cannot admit"));
    ep.egress = {{"to", Json::array({{{"ipBlock", {{"cidr", cidr}}}}})},
                 {"ports", Json::array({{{"protocol", "TCP"}, {"port", hp->port}}})}};
    return ep;
  }
  const std::string where = absl::StrCat(o.serviceNamespace, "/", o.serviceName);
  auto svc = client_.get(kube::resources::kService, o.serviceNamespace, o.serviceName);
  if (!svc.ok()) {
    if (kube::isNotFound(svc.status()))
      return absl::FailedPreconditionError(absl::StrCat("API service ", where, " not found"));
    if (kube::isForbidden(svc.status()))  // will not pass by itself
      return absl::FailedPreconditionError(
          absl::StrCat("not allowed to read API service ", where, ": ", svc.status().message()));
    return svc.status();  // may pass: retried
  }
  std::string ip = jsonString(*svc, "/spec/clusterIP");
  const Json& ports = jsonAt(*svc, "/spec/ports");
  const Json& selector = jsonAt(*svc, "/spec/selector");
  if (ip.empty() || ip == "None" || !ports.is_array() || ports.empty())
    return absl::FailedPreconditionError(absl::StrCat("API service ", where, " has no cluster IP and port"));
  if (!selector.is_object() || selector.empty())
    return absl::FailedPreconditionError(
        absl::StrCat("API service ", where, " has no selector, so no NetworkPolicy can admit its pods"));
  const Json* port = &ports[0];
  for (const auto& candidate : ports)
    if (candidate.value("name", "") == "grpc") port = &candidate;
  ep.address = joinHostPort(ip, port->value("port", 0));
  ep.serverName = o.serverName.empty() ? absl::StrCat(o.serviceName, ".", o.serviceNamespace, ".svc")
                                       : o.serverName;
  // Policies see the pod behind the Service: admit its pods on the target port.
  Json target = port->contains("targetPort") ? (*port)["targetPort"] : (*port)["port"];
  ep.egress = {{"to", Json::array({{{"namespaceSelector",
                                     {{"matchLabels", {{"kubernetes.io/metadata.name", o.serviceNamespace}}}}},
                                    {"podSelector", {{"matchLabels", selector}}}}})},
               {"ports", Json::array({{{"protocol", "TCP"}, {"port", target}}})}};
  return ep;
}

absl::Status PatchReconciler::provisionTestApi(Pass& p) {
  if (!options_.testApi.enabled()) return absl::OkStatus();
  // provision() records the environment before it calls this.
  std::optional<v1::TestApiStatus>& recorded = p.status.environment->testApi;
  if (recorded) return absl::OkStatus();  // resolved once per environment
  auto api = testApiEndpoint();
  if (!api.ok()) {
    if (api.status().code() != absl::StatusCode::kFailedPrecondition) return api.status();
    std::string why(api.status().message());
    recorded = v1::TestApiStatus{.unavailable = why};
    recorder_.event(p.patch, runtime::EventType::kWarning, reason::kTestApiUnavailable, "Provision",
                    absl::StrCat("test pods run without the patchgate API (they cannot report results): ", why));
    return absl::OkStatus();
  }
  // Only test pods (label patchgate.dev/test) may reach the API, not the
  // copies under test. Policies add up: this one only widens their egress.
  Json policy = {{"apiVersion", "networking.k8s.io/v1"}, {"kind", "NetworkPolicy"},
                 {"metadata", {{"name", kApiPolicy}, {"labels", ownedLabels(p)}}},
                 {"spec",
                  {{"podSelector",
                    {{"matchExpressions", Json::array({{{"key", v1::kLabelTest}, {"operator", "Exists"}}})}}},
                   {"policyTypes", {"Egress"}},
                   {"egress", Json::array({api->egress})}}}};
  if (auto s = ensureCreated(client_, kube::resources::kNetworkPolicy, p.envNamespace(), policy); !s.ok()) return s;
  recorded = v1::TestApiStatus{.address = api->address, .serverName = api->serverName};
  return absl::OkStatus();
}

absl::StatusOr<bool> PatchReconciler::addTestApi(Pass& p, Json& podSpec) {
  const auto& environment = p.status.environment;
  const v1::TestApiStatus api =
      environment ? environment->testApi.value_or(v1::TestApiStatus{}) : v1::TestApiStatus{};
  std::string address = api.address.value_or("");
  // Also off when this operator runs without the test API (restarted with
  // other flags since the environment was provisioned).
  const std::string caPem = options_.testApi.ca();
  bool on = !address.empty() && options_.testApi.enabled() && !caPem.empty();
  // Never the environment's API-server token: a test has no business with
  // the Kubernetes API. With the test API, a token for patchgate's audience
  // only (projected below), which the API server will not take. (Without an
  // audience, development only, the automounted token.)
  const std::string& audience = options_.testApi.tokenAudience;
  podSpec["automountServiceAccountToken"] = on && audience.empty();
  if (!on) return false;
  // The CA, kept current: it changes when the API's certificate is renewed.
  const std::string envNs = p.envNamespace();
  Json ca = {{"apiVersion", "v1"}, {"kind", "ConfigMap"},
             {"metadata", {{"name", kApiCaConfigMap}, {"namespace", envNs}, {"labels", ownedLabels(p)}}},
             {"data", {{"ca.crt", caPem}}}};
  auto existing = client_.get(kube::resources::kConfigMap, envNs, kApiCaConfigMap);
  if (!existing.ok() && !kube::isNotFound(existing.status())) return existing.status();
  if (!existing.ok()) {
    if (auto s = ensureCreated(client_, kube::resources::kConfigMap, envNs, ca); !s.ok()) return s;
  } else if (jsonString(*existing, "/data/ca.crt").find(caPem) == std::string::npos) {
    // Only when ours is not in it: while replicas roll after a renewal, the
    // one with the old pair must not undo the bundle of old and new.
    ca["metadata"]["resourceVersion"] = jsonString(*existing, "/metadata/resourceVersion");
    auto updated = client_.update(kube::resources::kConfigMap, envNs, ca);
    if (!updated.ok()) return updated.status();  // a conflict is retried
  }
  Json& container = podSpec["containers"][0];
  Json& env = container["env"];
  // A value the test declares itself wins.
  auto set = [&env](const std::string& name, const std::string& value) {
    for (const auto& e : env)
      if (e.value("name", "") == name) return;
    env.push_back({{"name", name}, {"value", value}});
  };
  set("PATCHGATE_API_ADDRESS", address);
  set("PATCHGATE_API_SERVER_NAME", api.serverName.value_or(""));
  set("PATCHGATE_API_CA_FILE", absl::StrCat(kApiCaDir, "/ca.crt"));
  container["volumeMounts"] = Json::array({{{"name", "patchgate-api"}, {"mountPath", kApiCaDir}, {"readOnly", true}}});
  Json sources = Json::array({{{"configMap", {{"name", kApiCaConfigMap}}}}});
  if (!audience.empty()) {
    set("PATCHGATE_TOKEN_FILE", absl::StrCat(kApiCaDir, "/token"));
    sources.push_back({{"serviceAccountToken", {{"audience", audience}, {"expirationSeconds", 3600}, {"path", "token"}}}});
  }
  podSpec["volumes"] = Json::array({{{"name", "patchgate-api"}, {"projected", {{"sources", sources}}}}});
  return true;
}

}  // namespace patchgate::controllers::patch
