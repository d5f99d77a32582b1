#include "grpc/server.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>

#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "patchgate/v1/patchgate.grpc.pb.h"

namespace patchgate::grpcapi {

namespace {

grpc::Status toGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  // absl and gRPC share the canonical code numbers.
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

std::string authorization(const grpc::ServerContext* ctx) {
  // gRPC lower-cases metadata keys.
  auto it = ctx->client_metadata().find("authorization");
  if (it == ctx->client_metadata().end()) return "";
  return std::string(it->second.data(), it->second.size());
}

// A unary call: the API's answer into `resp`, its status mapped.
template <typename Response>
grpc::Status answer(absl::StatusOr<Response> r, Response* resp) {
  if (r.ok()) *resp = std::move(*r);
  return toGrpc(r.status());
}

}  // namespace

// The gRPC adapter: metadata in, absl::Status mapped out. Synchronous API:
// each call (a watch included) holds one thread of gRPC's pool, which is
// plenty for pipelines and test pods.
class GrpcServer::Service final : public v1::Patchgate::Service {
 public:
  explicit Service(PatchgateApi& api) : api_(api) {}

  grpc::Status GetPatch(grpc::ServerContext* ctx, const v1::GetPatchRequest* req, v1::Patch* resp) override {
    return answer(api_.getPatch(authorization(ctx), *req), resp);
  }
  grpc::Status WatchPatch(grpc::ServerContext* ctx, const v1::WatchPatchRequest* req,
                          grpc::ServerWriter<v1::PatchEvent>* writer) override {
    return toGrpc(api_.watchPatch(
        authorization(ctx), *req, [writer](const v1::PatchEvent& ev) { return writer->Write(ev); },
        [ctx] { return ctx->IsCancelled(); }));
  }
  grpc::Status ListRevisions(grpc::ServerContext* ctx, const v1::ListRevisionsRequest* req,
                             v1::ListRevisionsResponse* resp) override {
    return answer(api_.listRevisions(authorization(ctx), *req), resp);
  }
  grpc::Status GetChangeRecord(grpc::ServerContext* ctx, const v1::GetPatchRequest* req,
                               v1::ChangeRecord* resp) override {
    return answer(api_.getChangeRecord(authorization(ctx), *req), resp);
  }
  grpc::Status ReportTestResults(grpc::ServerContext* ctx, const v1::ReportTestResultsRequest* req,
                                 v1::ReportTestResultsResponse* resp) override {
    return answer(api_.reportTestResults(authorization(ctx), *req), resp);
  }

 private:
  PatchgateApi& api_;
};

GrpcServer::GrpcServer(PatchgateApi& api, Logger log)
    : api_(api), log_(std::move(log)), service_(std::make_unique<Service>(api)) {}

GrpcServer::~GrpcServer() {
  if (server_) server_->Shutdown(std::chrono::system_clock::now());
}

absl::StatusOr<std::shared_ptr<GrpcServer>> GrpcServer::create(const ServerOptions& options,
                                                               PatchgateApi& api, const Logger& log) {
  if (options.keyPair.certPem.empty() || options.keyPair.keyPem.empty())
    return absl::InvalidArgumentError("the gRPC API needs a certificate and key");
  std::shared_ptr<grpc::ServerCredentials> credentials;
  if (!options.certFile.empty() && !options.keyFile.empty()) {
    auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
        options.keyFile, options.certFile, static_cast<unsigned int>(std::max<int64_t>(1, options.reloadInterval.count())));
    grpc::experimental::TlsServerCredentialsOptions tls(provider);
    tls.watch_identity_key_cert_pairs();
    tls.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
    credentials = grpc::experimental::TlsServerCredentials(tls);
  } else {
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({options.keyPair.keyPem, options.keyPair.certPem});
    credentials = grpc::SslServerCredentials(ssl);
  }
  std::shared_ptr<GrpcServer> server(new GrpcServer(api, log));
  grpc::ServerBuilder builder;
  // gRPC sets SO_REUSEPORT by default on Linux: two processes could then
  // share the port silently. A taken port must fail at start instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(options.bindAddress, credentials, &server->port_);
  builder.RegisterService(server->service_.get());
  server->server_ = builder.BuildAndStart();
  if (!server->server_ || server->port_ == 0)
    return absl::UnavailableError(absl::StrCat("cannot serve gRPC on ", options.bindAddress));
  return server;
}

void GrpcServer::run(std::stop_token stop) {
  log_.info("serving gRPC API", {{"port", port_}});
  std::mutex mu;
  std::condition_variable_any cv;
  std::unique_lock lock(mu);
  cv.wait(lock, stop, [] { return false; });
  api_.shutdown();
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  log_.info("gRPC API stopped");
}

}  // namespace patchgate::grpcapi
