#include "grpc/server.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <chrono>
#include <fstream>
#include <sstream>
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

absl::StatusOr<std::string> readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string bioString(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(n));
}

}  // namespace

absl::StatusOr<KeyPair> generateSelfSigned(const std::string& commonName) {
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> pctx(EVP_PKEY_CTX_new_id(EVP_PKEY_EC, nullptr),
                                                                   EVP_PKEY_CTX_free);
  EVP_PKEY* rawKey = nullptr;
  if (!pctx || EVP_PKEY_keygen_init(pctx.get()) <= 0 ||
      EVP_PKEY_CTX_set_ec_paramgen_curve_nid(pctx.get(), NID_X9_62_prime256v1) <= 0 ||
      EVP_PKEY_keygen(pctx.get(), &rawKey) <= 0)
    return absl::InternalError("cannot generate an EC key");
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(rawKey, EVP_PKEY_free);
  std::unique_ptr<X509, decltype(&X509_free)> cert(X509_new(), X509_free);
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(
      X509_get_serialNumber(cert.get()),
      static_cast<long>(std::chrono::system_clock::now().time_since_epoch().count() & 0x7fffffff));
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 365L * 24 * 3600);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(commonName.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, cert.get(), cert.get(), nullptr, nullptr, 0);
  std::string san = absl::StrCat("DNS:", commonName, ",DNS:localhost,IP:127.0.0.1");
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, NID_subject_alt_name, san.c_str());
  if (ext == nullptr) return absl::InternalError("cannot build the subjectAltName");
  X509_add_ext(cert.get(), ext, -1);
  X509_EXTENSION_free(ext);
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) <= 0) return absl::InternalError("cannot sign");

  std::unique_ptr<BIO, decltype(&BIO_free)> cb(BIO_new(BIO_s_mem()), BIO_free),
      kb(BIO_new(BIO_s_mem()), BIO_free);
  if (!PEM_write_bio_X509(cb.get(), cert.get()) ||
      !PEM_write_bio_PrivateKey(kb.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr))
    return absl::InternalError("cannot write PEM");
  return KeyPair{bioString(cb.get()), bioString(kb.get())};
}

// The gRPC adapter: metadata in, absl::Status mapped out. Synchronous API:
// each call (a watch included) holds one thread of gRPC's pool, which is
// plenty for pipelines and test pods.
class GrpcServer::Service final : public v1::Patchgate::Service {
 public:
  explicit Service(PatchgateApi& api) : api_(api) {}

  grpc::Status GetPatch(grpc::ServerContext* ctx, const v1::GetPatchRequest* req, v1::Patch* resp) override {
    auto r = api_.getPatch(authorization(ctx), *req);
    if (r.ok()) *resp = std::move(*r);
    return toGrpc(r.status());
  }
  grpc::Status WatchPatch(grpc::ServerContext* ctx, const v1::WatchPatchRequest* req,
                          grpc::ServerWriter<v1::PatchEvent>* writer) override {
    return toGrpc(api_.watchPatch(
        authorization(ctx), *req, [writer](const v1::PatchEvent& ev) { return writer->Write(ev); },
        [ctx] { return ctx->IsCancelled(); }));
  }
  grpc::Status ListRevisions(grpc::ServerContext* ctx, const v1::ListRevisionsRequest* req,
                             v1::ListRevisionsResponse* resp) override {
    auto r = api_.listRevisions(authorization(ctx), *req);
    if (r.ok()) *resp = std::move(*r);
    return toGrpc(r.status());
  }
  grpc::Status GetChangeRecord(grpc::ServerContext* ctx, const v1::GetPatchRequest* req,
                               v1::ChangeRecord* resp) override {
    auto r = api_.getChangeRecord(authorization(ctx), *req);
    if (r.ok()) *resp = std::move(*r);
    return toGrpc(r.status());
  }
  grpc::Status ReportTestResults(grpc::ServerContext* ctx, const v1::ReportTestResultsRequest* req,
                                 v1::ReportTestResultsResponse* resp) override {
    auto r = api_.reportTestResults(authorization(ctx), *req);
    if (r.ok()) *resp = std::move(*r);
    return toGrpc(r.status());
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
  if (options.certFile.empty() != options.keyFile.empty())
    return absl::InvalidArgumentError("--grpc-tls-cert-file and --grpc-tls-key-file go together");
  KeyPair pair;
  if (options.certFile.empty()) {
    auto generated = generateSelfSigned("patchgate-operator");
    if (!generated.ok()) return generated.status();
    pair = std::move(*generated);
    log.warn(
        "gRPC API uses a self-signed certificate generated at start (development only); "
        "give --grpc-tls-cert-file/--grpc-tls-key-file in production");
  } else {
    auto cert = readFile(options.certFile);
    if (!cert.ok()) return cert.status();
    auto key = readFile(options.keyFile);
    if (!key.ok()) return key.status();
    pair = KeyPair{std::move(*cert), std::move(*key)};
  }
  grpc::SslServerCredentialsOptions ssl;
  ssl.pem_key_cert_pairs.push_back({pair.keyPem, pair.certPem});
  std::shared_ptr<GrpcServer> server(new GrpcServer(api, log));
  grpc::ServerBuilder builder;
  // gRPC sets SO_REUSEPORT by default on Linux: two processes could then
  // share the port silently. A taken port must fail at start instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(options.bindAddress, grpc::SslServerCredentials(ssl), &server->port_);
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
