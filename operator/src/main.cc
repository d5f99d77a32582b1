// patchgate operator: wiring only. This is the one place that knows the
// concrete classes; everything else receives interfaces.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/logging.h"
#include "common/random.h"
#include "grpc/api.h"
#include "grpc/auth.h"
#include "grpc/live_tls.h"
#include "grpc/server.h"
#include "grpc/tls.h"
#include "kube/client_impl.h"
#include "kube/failpoint_client.h"
#include "kube/config/rest_config.h"
#include "kube/transport/cpprest_transport.h"
#include "metrics/metrics.h"
#include "metrics/servers.h"
#include "operator_setup.h"
#include "runtime/leader_election.h"
#include "runtime/manager.h"

ABSL_FLAG(std::string, kubeconfig, "", "Path to a kubeconfig; default $KUBECONFIG, ~/.kube/config, then in-cluster");
ABSL_FLAG(std::string, context, "", "kubeconfig context to use (default: current-context)");
ABSL_FLAG(bool, leader_elect, true, "Elect a leader on a Lease so that only one replica acts");
ABSL_FLAG(std::string, leader_election_namespace, "", "Namespace of the Lease (default: the pod's, or kubeconfig's)");
ABSL_FLAG(std::string, leader_election_id, "patchgate-operator", "Name of the Lease");
ABSL_FLAG(std::string, id, "", "Identity in the Lease (default: hostname + random suffix)");
ABSL_FLAG(std::string, metrics_bind_address, "0.0.0.0:8080", "Where /metrics is served ('0' disables)");
ABSL_FLAG(std::string, health_probe_bind_address, "0.0.0.0:8081", "Where /healthz and /readyz are served");
ABSL_FLAG(std::string, grpc_bind_address, "0.0.0.0:9443", "Where the patchgate.v1 gRPC API is served over TLS ('0' disables)");
ABSL_FLAG(std::string, grpc_tls_cert_file, "", "PEM certificate of the gRPC API (e.g. a mounted kubernetes.io/tls Secret)");
ABSL_FLAG(std::string, grpc_tls_key_file, "", "PEM private key of the gRPC API");
ABSL_FLAG(std::string, grpc_tls_ca_file, "",
          "PEM bundle that test pods trust for the gRPC API (default: the serving certificate)");
ABSL_FLAG(std::string, grpc_tls_secret, "",
          "Without cert/key files: a kubernetes.io/tls Secret in the operator's namespace holding the API's key "
          "pair, created with a self-signed certificate when missing so that every replica serves the same one "
          "(default: none; a certificate is generated at start, for development)");
ABSL_FLAG(std::string, grpc_service, "",
          "The API's Service, NAME or NAMESPACE/NAME (default namespace: the operator's): its DNS names go on a "
          "certificate the operator makes, and test pods reach the API through its ClusterIP");
ABSL_FLAG(bool, grpc_test_pods, true,
          "Give test pods the API (address, CA, a service-account token) so they can report results; needs "
          "--grpc-service or --grpc-test-api-address");
ABSL_FLAG(std::string, grpc_test_api_address, "",
          "Without --grpc-service: the HOST:PORT ([V6]:PORT) at which test pods reach the API (an operator "
          "outside the cluster; an IP, so that the environments' NetworkPolicy can admit it)");
ABSL_FLAG(std::string, grpc_test_api_server_name, "",
          "Name test pods verify the API's certificate against (default: SERVICE.NAMESPACE.svc, or the host)");
ABSL_FLAG(std::string, grpc_token_audience, "patchgate",
          "Audience callers' tokens must be issued for (kubectl create token SA --audience patchgate); "
          "'' accepts API-server tokens (development only)");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warn or error");
ABSL_FLAG(int, workers, 2, "Concurrent reconciles of the Patch controller");
ABSL_FLAG(std::string, cluster_policy_namespace, "",
          "PatchPolicies in this namespace apply to Patches in every namespace (default: the operator's own; "
          "'-' for none)");
ABSL_FLAG(std::string, watch_namespaces, "", "Comma-separated namespaces to watch (default: all)");
ABSL_FLAG(bool, trust_unverified_identity, false,
          "Trust spec.author and spec.approver even when patchgate's admission policies "
          "(crds/patchgate.dev_admission-policies.yaml) are not installed; by default Patches then wait "
          "(reason IdentityUnverified), since anyone could write any name there");

namespace {

std::string defaultIdentity(patchgate::Random& random) {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  char suffix[16];
  std::snprintf(suffix, sizeof(suffix), "%06x", static_cast<unsigned>(random.uniform01() * 0xffffff));
  return absl::StrCat(host, "_", suffix);
}

// The API's key pair (files, the shared Secret, or generated) and what test
// pods get (`testApi`), from the --grpc-* flags.
absl::StatusOr<patchgate::grpcapi::ApiTls> configureApi(patchgate::kube::Client& client,
                                                        const patchgate::Logger& log,
                                                        const std::string& operatorNamespace,
                                                        patchgate::controllers::patch::PatchReconcilerOptions::TestApi& testApi,
                                                        patchgate::grpcapi::ApiTlsOptions& to) {
  using namespace patchgate;
  std::string service = absl::GetFlag(FLAGS_grpc_service), serviceNs = operatorNamespace;
  if (auto slash = service.find('/'); slash != std::string::npos) {
    serviceNs = service.substr(0, slash);
    service = service.substr(slash + 1);
  }
  if (absl::GetFlag(FLAGS_grpc_test_pods)) {
    testApi.serviceNamespace = service.empty() ? "" : serviceNs;
    testApi.serviceName = service;
    testApi.address = absl::GetFlag(FLAGS_grpc_test_api_address);
    testApi.serverName = absl::GetFlag(FLAGS_grpc_test_api_server_name);
    testApi.tokenAudience = absl::GetFlag(FLAGS_grpc_token_audience);
    auto warnings = controllers::patch::checkTestApi(testApi);
    if (!warnings.ok()) return warnings.status();
    for (const auto& w : *warnings) log.warn(w);
  }

  to.certFile = absl::GetFlag(FLAGS_grpc_tls_cert_file);
  to.keyFile = absl::GetFlag(FLAGS_grpc_tls_key_file);
  to.caFile = absl::GetFlag(FLAGS_grpc_tls_ca_file);
  to.secretNamespace = operatorNamespace;
  to.secretName = absl::GetFlag(FLAGS_grpc_tls_secret);
  // The names clients verify: the Service's, and the test pods' server name.
  if (!service.empty()) to.dnsNames = grpcapi::serviceDnsNames(serviceNs, service);
  std::string testHost =
      testApi.serverName.empty() ? controllers::patch::addressHost(testApi.address) : testApi.serverName;
  if (!testHost.empty()) to.dnsNames.push_back(testHost);
  // The API server may still be starting: retry a shared Secret briefly
  // (the health probes start only after this).
  absl::StatusOr<grpcapi::ApiTls> tls;
  for (int attempt = 1;; ++attempt) {
    tls = grpcapi::loadApiTls(client, to);
    if (tls.ok() || tls.status().code() != absl::StatusCode::kUnavailable || attempt == 5) break;
    log.warn("cannot load the gRPC API's key pair yet; retrying",
             {{"error", std::string(tls.status().message())}, {"attempt", attempt}});
    std::this_thread::sleep_for(std::chrono::seconds(attempt));
  }
  if (!tls.ok()) return tls.status();
  if (tls->generatedAtStart)
    log.warn(absl::StrCat(
        "gRPC API uses a self-signed certificate generated at start (development only)",
        testApi.enabled() ? ": with several replicas each serves its own, and test pods trust only this one's" : "",
        "; give --grpc-tls-secret or --grpc-tls-cert-file/--grpc-tls-key-file in production"));
  if (tls->caFileMissing && testApi.enabled())
    log.warn("cannot read --grpc-tls-ca-file; test pods trust the serving certificate instead",
             {{"file", to.caFile}});
  testApi.caPem = tls->caPem;
  return tls;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace patchgate;
  absl::SetProgramUsageMessage("patchgate operator: tested, approved, reversible production patches");
  // Kubernetes tools spell flags with dashes (--leader-elect); absl with
  // underscores. Accept both.
  std::vector<std::string> args(argv, argv + argc);
  for (size_t i = 1; i < args.size(); ++i) {
    std::string& a = args[i];
    if (a.rfind("--", 0) != 0) continue;
    size_t end = a.find('=');
    for (size_t j = 2; j < std::min(end, a.size()); ++j)
      if (a[j] == '-') a[j] = '_';
  }
  std::vector<char*> argvFixed;
  for (auto& a : args) argvFixed.push_back(a.data());
  absl::ParseCommandLine(static_cast<int>(argvFixed.size()), argvFixed.data());

  auto level = parseLogLevel(absl::GetFlag(FLAGS_log_level));
  if (!level.ok()) {
    std::cerr << level.status().message() << "\n";
    return 2;
  }
  Logger log(std::make_shared<LogSink>(std::cerr, *level));

  // Block SIGTERM/SIGINT before any thread starts; main waits for them below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto config = kube::loadDefaultConfig(absl::GetFlag(FLAGS_kubeconfig), absl::GetFlag(FLAGS_context));
  if (!config.ok()) {
    log.error("cannot load Kubernetes config", {{"error", std::string(config.status().message())}});
    return 1;
  }
  config->userAgent = "patchgate-operator";
  log.info("using Kubernetes API", {{"server", config->server}, {"source", config->source}});

  RealClock clock;
  RandomImpl random;
  metrics::Metrics metrics;
  auto transport = kube::makeCpprestTransport(*config);
  if (!transport.ok()) {
    log.error("cannot create transport", {{"error", std::string(transport.status().message())}});
    return 1;
  }
  kube::ClientImpl apiClient(std::move(*transport), "patchgate", config->qps, config->burst);
  apiClient.setRequestObserver([&metrics](const std::string& verb, int code, double secs) {
    metrics.restRequest(verb, code, secs);
  });
  // Crash tests name points right after a write (kube/failpoint_client.h).
  std::unique_ptr<kube::FailpointClient> failpointClient;
  if (std::getenv("PATCHGATE_FAILPOINTS") != nullptr) {
    failpointClient = std::make_unique<kube::FailpointClient>(apiClient);
    log.warn("failpoints armed (PATCHGATE_FAILPOINTS): this process exits at them; for tests only",
             {{"failpoints", std::string(std::getenv("PATCHGATE_FAILPOINTS"))}});
  }
  kube::Client& client = failpointClient ? static_cast<kube::Client&>(*failpointClient) : apiClient;

  runtime::Manager manager(log);
  std::string identity = absl::GetFlag(FLAGS_id).empty() ? defaultIdentity(random) : absl::GetFlag(FLAGS_id);

  OperatorOptions options;
  options.workers = absl::GetFlag(FLAGS_workers);
  options.watchNamespaces = absl::GetFlag(FLAGS_watch_namespaces);
  options.identity = identity;
  options.trustUnverifiedIdentity = absl::GetFlag(FLAGS_trust_unverified_identity);
  // Production writes are fenced by the lease (set once the elector exists;
  // without leader election there is no one to fence against).
  auto electorForFence = std::make_shared<std::atomic<runtime::LeaderElector*>>(nullptr);
  options.leading = [electorForFence] {
    auto* e = electorForFence->load();
    return e == nullptr || e->leadingWithMargin(std::chrono::seconds(2));
  };
  // The operator's own namespace: the Lease's, the API's Secret and Service.
  const std::string operatorNamespace = absl::GetFlag(FLAGS_leader_election_namespace).empty()
                                            ? config->defaultNamespace
                                            : absl::GetFlag(FLAGS_leader_election_namespace);
  options.clusterPolicyNamespace = absl::GetFlag(FLAGS_cluster_policy_namespace).empty()
                                       ? operatorNamespace
                                       : absl::GetFlag(FLAGS_cluster_policy_namespace);
  if (options.clusterPolicyNamespace == "-") options.clusterPolicyNamespace.clear();

  // The gRPC API's certificate, and how test pods reach the API.
  const bool apiEnabled = absl::GetFlag(FLAGS_grpc_bind_address) != "0";
  grpcapi::ApiTls apiTls;
  std::shared_ptr<grpcapi::LiveApiTls> liveTls;
  if (apiEnabled) {
    grpcapi::ApiTlsOptions tlsOptions;
    auto tls = configureApi(client, log, operatorNamespace, options.testApi, tlsOptions);
    if (!tls.ok()) {
      log.error("cannot set up the gRPC API", {{"error", std::string(tls.status().message())}});
      return 1;
    }
    apiTls = std::move(*tls);
    // Kept current while it runs: a Secret's pair (renewed or replaced) is
    // served from private files the server watches; test pods get the CA of now.
    const char* tmp = std::getenv("TMPDIR");
    liveTls = std::make_shared<grpcapi::LiveApiTls>(
        client, clock, log.withName("api-tls"), tlsOptions, apiTls,
        absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/patchgate-api-tls-", ::getpid()));
    if (auto s = liveTls->start(); !s.ok()) {
      log.error("cannot set up the gRPC API", {{"error", std::string(s.message())}});
      return 1;
    }
    options.testApi.currentCa = [live = liveTls] { return live->currentCa(); };
  }
  std::shared_ptr<runtime::Informer> patchInformer;
  auto setup = setupOperator(manager, client, clock, random, metrics, log, options, &patchInformer);
  if (!setup.ok()) {
    log.error("cannot set up the operator", {{"error", std::string(setup.message())}});
    return 1;
  }

  // The gRPC API reads the Patch cache and runs on every replica.
  std::unique_ptr<grpcapi::Authenticator> authenticator;
  std::unique_ptr<grpcapi::PatchgateApi> api;
  if (apiEnabled) {
    authenticator = std::make_unique<grpcapi::Authenticator>(client, clock, std::chrono::seconds(60),
                                                             absl::GetFlag(FLAGS_grpc_token_audience));
    api = std::make_unique<grpcapi::PatchgateApi>(patchInformer->store(), client, *authenticator, clock);
    auto* apiPtr = api.get();
    patchInformer->addEventHandler(runtime::EventHandler{
        [apiPtr](const runtime::Object&) { apiPtr->notify(); },
        [apiPtr](const runtime::Object&, const runtime::Object&) { apiPtr->notify(); },
        [apiPtr](const runtime::Object&) { apiPtr->notify(); }});
    grpcapi::ServerOptions so;
    so.bindAddress = absl::GetFlag(FLAGS_grpc_bind_address);
    so.keyPair = apiTls.keyPair;
    // Mounted files (cert-manager, say) are re-read as they are renewed; so
    // are the files a shared Secret's pair is kept in.
    so.certFile = absl::GetFlag(FLAGS_grpc_tls_cert_file);
    so.keyFile = absl::GetFlag(FLAGS_grpc_tls_key_file);
    if (!liveTls->certFile().empty()) {
      so.certFile = liveTls->certFile();
      so.keyFile = liveTls->keyFile();
    }
    auto server = grpcapi::GrpcServer::create(so, *api, log.withName("grpc"));
    if (!server.ok()) {
      log.error("cannot serve the gRPC API", {{"error", std::string(server.status().message())}});
      return 1;
    }
    manager.add(*server, /*needsLeader=*/false);
    manager.add(liveTls, /*needsLeader=*/false);
  }

  std::unique_ptr<metrics::MetricsServer> metricsServer;
  if (absl::GetFlag(FLAGS_metrics_bind_address) != "0") {
    auto ms = metrics::MetricsServer::create(absl::GetFlag(FLAGS_metrics_bind_address), metrics);
    if (!ms.ok()) {
      log.error("cannot serve metrics", {{"error", std::string(ms.status().message())}});
      return 1;
    }
    metricsServer = std::move(*ms);
    log.info("serving metrics", {{"port", metricsServer->port()}});
  }
  auto health = metrics::HealthServer::create(absl::GetFlag(FLAGS_health_probe_bind_address), manager);
  if (!health.ok()) {
    log.error("cannot serve health probes", {{"error", std::string(health.status().message())}});
    return 1;
  }
  log.info("serving health probes", {{"port", (*health)->port()}});

  // The lease is renewed on connections and a rate limit of its own, so the
  // controllers' traffic cannot delay a renewal, with requests that give up
  // after 3 s: a get and an update fit twice in the 8 s renew deadline, and
  // a hung API server is noticed in time.
  std::unique_ptr<kube::ClientImpl> leaseClient;
  if (absl::GetFlag(FLAGS_leader_elect)) {
    auto leaseTransport = kube::makeCpprestTransport(*config);
    if (!leaseTransport.ok()) {
      log.error("cannot create transport", {{"error", std::string(leaseTransport.status().message())}});
      return 1;
    }
    leaseClient = std::make_unique<kube::ClientImpl>(std::move(*leaseTransport), "patchgate", 5, 10);
    leaseClient->setRequestTimeout(std::chrono::seconds(3));
    leaseClient->setRequestObserver([&metrics](const std::string& verb, int code, double secs) {
      metrics.restRequest(verb, code, secs);
    });
  }
  std::unique_ptr<runtime::LeaderElector> elector;
  std::jthread electorThread;
  if (absl::GetFlag(FLAGS_leader_elect)) {
    runtime::LeaderElectionConfig le;
    le.leaseNamespace = operatorNamespace;
    le.leaseName = absl::GetFlag(FLAGS_leader_election_id);
    le.identity = identity;
    elector = makeLeaderElector(manager, *leaseClient, clock, metrics, log, std::move(le));
    electorForFence->store(elector.get());
  }

  manager.start();
  std::stop_source electorStop;
  if (elector) {
    electorThread = std::jthread([&] { elector->run(electorStop.get_token()); });
  } else {
    manager.startLeaderRunnables();
  }

  int sig = 0;
  sigwait(&signals, &sig);
  log.info("shutting down", {{"signal", sig}});
  manager.stop();  // controllers finish their current reconcile, informers stop
  // Hand over now, not after a renewal that may be in flight on the
  // elector's thread: the standby leads within about a second.
  if (elector) elector->releaseNow();
  electorStop.request_stop();
  if (electorThread.joinable()) electorThread.join();  // releases the Lease
  log.info("stopped");
  // As patchctl: no atexit handlers, so OpenSSL's cleanup can't race
  // cpprestsdk's pool threads and hang the exit.
  std::fflush(nullptr);
  std::_Exit(0);
}
