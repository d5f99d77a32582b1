#pragma once

// The gRPC server of the operator: serves patchgate.v1.Patchgate over TLS.

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/logging.h"
#include "grpc/api.h"
#include "grpc/tls.h"
#include "runtime/manager.h"

namespace grpc {
class Server;
}

namespace patchgate::grpcapi {

struct ServerOptions {
  std::string bindAddress = "0.0.0.0:9443";  // port 0 picks a free one
  KeyPair keyPair;                            // see grpc/tls.h
  // When set, the pair is served from these PEM files and re-read every
  // reloadInterval, so a renewed certificate (a mounted Secret that
  // cert-manager rotates) is served without a restart; keyPair is then only
  // checked at start. A half-written pair (key and certificate not matching)
  // is not taken: the old one stays until both files agree.
  std::string certFile;
  std::string keyFile;
  std::chrono::seconds reloadInterval{60};
};

// A Runnable: binds in create() (so a bad address fails at start), serves
// until stop is requested, then ends open watches and shuts down with a short
// grace period. Runs on every replica (reads come from the local cache;
// writes go to the API server).
class GrpcServer final : public runtime::Runnable {
 public:
  static absl::StatusOr<std::shared_ptr<GrpcServer>> create(const ServerOptions& options, PatchgateApi& api,
                                                            const Logger& log);
  ~GrpcServer() override;

  std::string name() const override { return "grpc-server"; }
  void run(std::stop_token stop) override;
  int port() const { return port_; }

 private:
  class Service;
  GrpcServer(PatchgateApi& api, Logger log);

  PatchgateApi& api_;
  Logger log_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace patchgate::grpcapi
