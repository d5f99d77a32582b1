#pragma once

// The key pair of the gRPC API: from files, from a Secret shared by the
// replicas, or generated for development.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kube/client.h"

namespace patchgate::grpcapi {

struct KeyPair {
  std::string certPem;
  std::string keyPem;
  std::string caPem;  // what clients trust, when known (a Secret's ca.crt)
};

// A new key and self-signed certificate (EC P-256, valid `validDays`) whose
// subjectAltNames are commonName, dnsNames (IP literals as IP entries),
// localhost and 127.0.0.1.
absl::StatusOr<KeyPair> generateSelfSigned(const std::string& commonName,
                                           const std::vector<std::string>& dnsNames = {}, int validDays = 365);

// PEM files, e.g. a mounted kubernetes.io/tls Secret.
absl::StatusOr<KeyPair> readKeyPair(const std::string& certFile, const std::string& keyFile);

// The key pair kept in the kubernetes.io/tls Secret ns/name. When the Secret
// does not exist, a self-signed pair (generateSelfSigned) is made and the
// Secret created with it (ca.crt = the certificate); when another replica
// created it first, that one is read. So every replica serves the same
// certificate and clients trust one ca.crt. A pair made by patchgate (label
// app.kubernetes.io/managed-by=patchgate) is replaced at start when it lacks
// one of dnsNames or expires within 30 days (the winner of racing replicas is
// served by all); its ca.crt then holds the new and the old certificate, so
// that clients trust both while the replicas restart one by one.
// RBAC: get, create and update the Secret in ns.
absl::StatusOr<KeyPair> sharedKeyPair(kube::Client& client, const std::string& ns, const std::string& name,
                                      const std::string& commonName, const std::vector<std::string>& dnsNames);

// Where the API's key pair comes from, in this order: PEM files; a Secret
// shared by the replicas (sharedKeyPair); else a pair generated at start
// (development: each replica then has its own).
struct ApiTlsOptions {
  std::string certFile;
  std::string keyFile;
  std::string secretNamespace;
  std::string secretName;
  std::vector<std::string> dnsNames;  // for a generated certificate
  std::string caFile;                 // what clients should trust; default the certificate
};
struct ApiTls {
  KeyPair keyPair;
  std::string caPem;
  bool generatedAtStart = false;
  bool caFileMissing = false;  // caFile unreadable: caPem is the certificate
};
absl::StatusOr<ApiTls> loadApiTls(kube::Client& client, const ApiTlsOptions& options);

// "name", "name.ns", "name.ns.svc", "name.ns.svc.cluster.local".
std::vector<std::string> serviceDnsNames(const std::string& ns, const std::string& name);

}  // namespace patchgate::grpcapi
