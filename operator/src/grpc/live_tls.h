#pragma once

// The gRPC API's key pair kept current while the operator runs.
//
// With a shared Secret (--grpc-tls-secret), the Secret is read again every
// interval (sharedKeyPair: a pair patchgate made is renewed when it is due, by
// whichever replica gets there first) and its pair written to two private
// files, which the server watches (ServerOptions::certFile/keyFile): a deleted
// or renewed Secret is served without a restart. With PEM files
// (--grpc-tls-cert-file, cert-manager), the server watches them itself and the
// CA file is read again. In both, currentCa() is what test pods are told to
// trust now (each environment's patchgate-api-ca ConfigMap follows it).

#include <mutex>
#include <stop_token>
#include <string>

#include "absl/status/status.h"
#include "common/clock.h"
#include "common/logging.h"
#include "grpc/tls.h"
#include "kube/client.h"
#include "runtime/manager.h"

namespace patchgate::grpcapi {

class LiveApiTls final : public runtime::Runnable {
 public:
  // `tls` is what loadApiTls returned at start. `dir`: where a Secret's pair
  // is written (a private folder; made 0700 if missing).
  LiveApiTls(kube::Client& client, Clock& clock, Logger log, ApiTlsOptions options, ApiTls tls, std::string dir,
             std::chrono::seconds interval = std::chrono::seconds(60));

  // Writes the pair read at start to the files (Secret mode). Call once
  // before the server is created.
  absl::Status start();
  // One look: reads the Secret (or the CA file) again and, when the pair or
  // the CA changed, writes the files and the new CA. Returns whether anything
  // changed.
  absl::StatusOr<bool> refresh();

  // The files the server should watch ("" when it watches the PEM files given
  // on the command line, or has a pair generated at start).
  std::string certFile() const;
  std::string keyFile() const;
  std::string currentCa() const;

  std::string name() const override { return "api-tls"; }
  void run(std::stop_token stop) override;

 private:
  bool secretMode() const { return options_.certFile.empty() && !options_.secretName.empty(); }
  absl::Status writePair(const KeyPair& pair);

  kube::Client& client_;
  Clock& clock_;
  Logger log_;
  const ApiTlsOptions options_;
  const std::string dir_;
  const std::chrono::seconds interval_;
  mutable std::mutex mu_;
  KeyPair pair_;
  std::string ca_;
};

}  // namespace patchgate::grpcapi
