#include "grpc/tls.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <chrono>
#include <memory>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/json.h"
#include "common/net.h"
#include "kube/config/rest_config.h"
#include "kube/errors.h"
#include "kube/resource.h"

namespace patchgate::grpcapi {

namespace {

std::string bioString(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(n));
}

// The PEM of data[key] of a Secret, or "" when absent or not base64.
std::string secretPem(const Json& secret, const std::string& key) {
  const Json& data = jsonAt(secret, "/data");
  std::string decoded;
  if (!data.is_object() || !absl::Base64Unescape(data.value(key, ""), &decoded)) return "";
  return decoded;
}

constexpr int kRenewDays = 30;

// Why a certificate we made must be replaced ("" if it is fine): a name
// clients verify is missing, or it expires within kRenewDays.
std::string renewalReason(const std::string& pem, const std::vector<std::string>& names) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())),
                                                BIO_free);
  std::unique_ptr<X509, decltype(&X509_free)> cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr),
                                                   X509_free);
  if (!cert) return "the certificate cannot be parsed";
  for (const auto& name : names) {
    bool covered = ipVersion(name) != 0 ? X509_check_ip_asc(cert.get(), name.c_str(), 0) == 1
                                     : X509_check_host(cert.get(), name.c_str(), name.size(), 0, nullptr) == 1;
    if (!covered) return absl::StrCat("the certificate does not cover ", name);
  }
  int days = 0, secs = 0;
  if (!ASN1_TIME_diff(&days, &secs, nullptr, X509_get0_notAfter(cert.get())) || days < kRenewDays)
    return absl::StrCat("the certificate expires within ", kRenewDays, " days");
  return "";
}

absl::StatusOr<KeyPair> fromSecret(const Json& secret, const std::string& where) {
  KeyPair pair{secretPem(secret, "tls.crt"), secretPem(secret, "tls.key"), secretPem(secret, "ca.crt")};
  if (pair.certPem.find("BEGIN CERTIFICATE") == std::string::npos ||
      pair.keyPem.find("PRIVATE KEY") == std::string::npos)
    return absl::FailedPreconditionError(
        absl::StrCat("secret ", where, " has no PEM tls.crt and tls.key; delete it to have a new one made"));
  return pair;
}

}  // namespace

absl::StatusOr<KeyPair> generateSelfSigned(const std::string& commonName,
                                           const std::vector<std::string>& dnsNames, int validDays) {
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
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(validDays) * 24 * 3600);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(commonName.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, cert.get(), cert.get(), nullptr, nullptr, 0);
  std::string san = absl::StrCat("DNS:", commonName);
  for (const auto& name : dnsNames) absl::StrAppend(&san, ipVersion(name) != 0 ? ",IP:" : ",DNS:", name);
  absl::StrAppend(&san, ",DNS:localhost,IP:127.0.0.1");
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, NID_subject_alt_name, san.c_str());
  if (ext == nullptr) return absl::InternalError(absl::StrCat("cannot build the subjectAltName ", san));
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

absl::StatusOr<KeyPair> readKeyPair(const std::string& certFile, const std::string& keyFile) {
  auto cert = kube::readFile(certFile);
  if (!cert.ok()) return cert.status();
  auto key = kube::readFile(keyFile);
  if (!key.ok()) return key.status();
  return KeyPair{std::move(*cert), std::move(*key)};
}

absl::StatusOr<KeyPair> sharedKeyPair(kube::Client& client, const std::string& ns, const std::string& name,
                                      const std::string& commonName, const std::vector<std::string>& dnsNames) {
  const std::string where = absl::StrCat(ns, "/", name);
  auto existing = client.get(kube::resources::kSecret, ns, name);
  if (!existing.ok() && !kube::isNotFound(existing.status()))
    return absl::UnavailableError(absl::StrCat("cannot read secret ", where, ": ", existing.status().message()));
  std::string renewing;
  if (existing.ok()) {
    auto current = fromSecret(*existing, where);
    if (!current.ok()) return current.status();
    // Only a pair we made is replaced; someone else's is served as it is.
    if (jsonString(*existing, "/metadata/labels/app.kubernetes.io~1managed-by") != "patchgate") return current;
    renewing = renewalReason(current->certPem, dnsNames);
    if (renewing.empty()) return current;
  }
  auto pair = generateSelfSigned(commonName, dnsNames);
  if (!pair.ok()) return pair.status();
  // While replicas restart one by one, some still serve the old certificate.
  pair->caPem = pair->certPem;
  if (existing.ok()) pair->caPem += secretPem(*existing, "tls.crt");
  Json secret = {{"apiVersion", "v1"},
                 {"kind", "Secret"},
                 {"type", "kubernetes.io/tls"},
                 {"metadata",
                  {{"name", name},
                   {"namespace", ns},
                   {"labels", {{"app.kubernetes.io/managed-by", "patchgate"}}},
                   {"annotations", {{"patchgate.dev/description", "key pair of the patchgate gRPC API, "
                                                                   "made by the operator; delete to renew"}}}}},
                 {"data",
                  {{"tls.crt", absl::Base64Escape(pair->certPem)},
                   {"tls.key", absl::Base64Escape(pair->keyPem)},
                   {"ca.crt", absl::Base64Escape(pair->caPem)}}}};
  if (!renewing.empty()) secret["metadata"]["annotations"]["patchgate.dev/renewed-because"] = renewing;
  absl::StatusOr<Json> written;
  if (existing.ok()) {
    // Guarded by the version read: when replicas race, one renewal wins.
    secret["metadata"]["resourceVersion"] = jsonString(*existing, "/metadata/resourceVersion");
    written = client.update(kube::resources::kSecret, ns, secret);
  } else {
    written = client.create(kube::resources::kSecret, ns, secret);
  }
  if (written.ok()) return pair;
  if (!kube::isAlreadyExists(written.status()) && !kube::isConflict(written.status()))
    return absl::UnavailableError(
        absl::StrCat("cannot write secret ", where, ": ", written.status().message()));
  // Another replica won the race: serve its certificate.
  auto winner = client.get(kube::resources::kSecret, ns, name);
  if (!winner.ok())
    return absl::UnavailableError(absl::StrCat("cannot read secret ", where, ": ", winner.status().message()));
  return fromSecret(*winner, where);
}

absl::StatusOr<ApiTls> loadApiTls(kube::Client& client, const ApiTlsOptions& options) {
  if (options.certFile.empty() != options.keyFile.empty())
    return absl::InvalidArgumentError("--grpc-tls-cert-file and --grpc-tls-key-file go together");
  ApiTls tls;
  if (!options.certFile.empty()) {
    auto pair = readKeyPair(options.certFile, options.keyFile);
    if (!pair.ok()) return pair.status();
    tls.keyPair = std::move(*pair);
  } else if (!options.secretName.empty()) {
    auto pair = sharedKeyPair(client, options.secretNamespace, options.secretName, "patchgate-operator",
                              options.dnsNames);
    if (!pair.ok()) return pair.status();
    tls.keyPair = std::move(*pair);
  } else {
    auto pair = generateSelfSigned("patchgate-operator", options.dnsNames);
    if (!pair.ok()) return pair.status();
    tls.keyPair = std::move(*pair);
    tls.generatedAtStart = true;
  }
  if (options.caFile.empty()) {
    tls.caPem = tls.keyPair.caPem.empty() ? tls.keyPair.certPem : tls.keyPair.caPem;
  } else {
    auto ca = kube::readFile(options.caFile);
    // A Secret from a public CA may have no ca.crt: clients then use the chain.
    tls.caFileMissing = !ca.ok();
    tls.caPem = ca.ok() ? std::move(*ca) : tls.keyPair.certPem;
  }
  return tls;
}

std::vector<std::string> serviceDnsNames(const std::string& ns, const std::string& name) {
  return {name, absl::StrCat(name, ".", ns), absl::StrCat(name, ".", ns, ".svc"),
          absl::StrCat(name, ".", ns, ".svc.cluster.local")};
}

}  // namespace patchgate::grpcapi
