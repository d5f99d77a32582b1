// The API's key pair: generated with the names clients verify, read from
// files, and shared by the replicas through one Secret (created once, reused,
// and the loser of a creation race serving the winner's).
#include "grpc/tls.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <filesystem>
#include <functional>
#include <utility>
#include <fstream>
#include <memory>

#include "absl/strings/escaping.h"
#include "fakes/fake_client.h"
#include "fakes/forwarding_client.h"
#include "kube/errors.h"
#include "kube/resource.h"

namespace patchgate::grpcapi {
namespace {

namespace res = kube::resources;

// Whether the PEM certificate is valid for `host` (a DNS name or an IP).
bool certCovers(const std::string& pem, const std::string& host) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())),
                                                BIO_free);
  std::unique_ptr<X509, decltype(&X509_free)> cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr),
                                                   X509_free);
  if (!cert) return false;
  if (host.find_first_not_of("0123456789.") == std::string::npos)
    return X509_check_ip_asc(cert.get(), host.c_str(), 0) == 1;
  return X509_check_host(cert.get(), host.c_str(), host.size(), 0, nullptr) == 1;
}

TEST(GenerateSelfSigned, CoversTheNamesClientsVerify) {
  auto pair = generateSelfSigned("patchgate-operator", serviceDnsNames("patchgate-system", "patchgate-api"));
  ASSERT_TRUE(pair.ok()) << pair.status();
  EXPECT_NE(pair->keyPem.find("PRIVATE KEY"), std::string::npos);
  for (const char* host : {"patchgate-operator", "patchgate-api", "patchgate-api.patchgate-system",
                           "patchgate-api.patchgate-system.svc",
                           "patchgate-api.patchgate-system.svc.cluster.local", "localhost", "127.0.0.1"})
    EXPECT_TRUE(certCovers(pair->certPem, host)) << host;
  EXPECT_FALSE(certCovers(pair->certPem, "other.example"));
  EXPECT_FALSE(certCovers(pair->certPem, "10.0.0.1"));
}

TEST(ReadKeyPair, ReadsPemFilesAndNamesAMissingOne) {
  auto pair = generateSelfSigned("localhost");
  ASSERT_TRUE(pair.ok());
  auto dir = std::filesystem::temp_directory_path() / ("pg-tls-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "tls.crt") << pair->certPem;
  std::ofstream(dir / "tls.key") << pair->keyPem;
  auto read = readKeyPair((dir / "tls.crt").string(), (dir / "tls.key").string());
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->certPem, pair->certPem);
  EXPECT_EQ(read->keyPem, pair->keyPem);
  auto missing = readKeyPair((dir / "tls.crt").string(), (dir / "nope.key").string());
  EXPECT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("nope.key"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(SharedKeyPair, CreatesTheSecretOnceAndReusesIt) {
  testing::FakeClient client;
  auto first = sharedKeyPair(client, "patchgate-system", "patchgate-api-tls", "patchgate-operator",
                             serviceDnsNames("patchgate-system", "patchgate-api"));
  ASSERT_TRUE(first.ok()) << first.status();
  Json secret = client.object(res::kSecret, "patchgate-system", "patchgate-api-tls");
  ASSERT_TRUE(secret.is_object());
  EXPECT_EQ(secret["type"], "kubernetes.io/tls");
  std::string crt, ca;
  ASSERT_TRUE(absl::Base64Unescape(secret["data"]["tls.crt"].get<std::string>(), &crt));
  ASSERT_TRUE(absl::Base64Unescape(secret["data"]["ca.crt"].get<std::string>(), &ca));
  EXPECT_EQ(crt, first->certPem);
  EXPECT_EQ(ca, first->certPem);  // self-signed: its own CA
  EXPECT_TRUE(certCovers(first->certPem, "patchgate-api.patchgate-system.svc"));

  // A second replica (or a restart) serves the same pair.
  auto second = sharedKeyPair(client, "patchgate-system", "patchgate-api-tls", "patchgate-operator", {});
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->certPem, first->certPem);
  EXPECT_EQ(second->keyPem, first->keyPem);
  EXPECT_EQ(client.calls("create", "secrets").size(), 1u);
}

TEST(SharedKeyPair, TheLoserOfACreationRaceServesTheWinnersPair) {
  testing::FakeClient client;
  auto winner = generateSelfSigned("patchgate-operator");
  ASSERT_TRUE(winner.ok());
  // Both replicas saw no Secret; the other one created it first.
  client.failNext("get", kube::apiError(404, "NotFound", "secrets \"patchgate-api-tls\" not found"), "secrets");
  client.seed(res::kSecret, {{"apiVersion", "v1"},
                             {"kind", "Secret"},
                             {"type", "kubernetes.io/tls"},
                             {"metadata", {{"name", "patchgate-api-tls"}, {"namespace", "patchgate-system"}}},
                             {"data",
                              {{"tls.crt", absl::Base64Escape(winner->certPem)},
                               {"tls.key", absl::Base64Escape(winner->keyPem)}}}});
  auto pair = sharedKeyPair(client, "patchgate-system", "patchgate-api-tls", "patchgate-operator", {});
  ASSERT_TRUE(pair.ok()) << pair.status();
  EXPECT_EQ(pair->certPem, winner->certPem);
  EXPECT_EQ(pair->keyPem, winner->keyPem);
}

// A kubernetes.io/tls Secret holding `pair`, made by patchgate or not.
Json tlsSecret(const KeyPair& pair, bool ours) {
  Json s = {{"apiVersion", "v1"},
            {"kind", "Secret"},
            {"type", "kubernetes.io/tls"},
            {"metadata", {{"name", "patchgate-api-tls"}, {"namespace", "patchgate-system"}}},
            {"data", {{"tls.crt", absl::Base64Escape(pair.certPem)}, {"tls.key", absl::Base64Escape(pair.keyPem)}}}};
  if (ours) s["metadata"]["labels"] = {{"app.kubernetes.io/managed-by", "patchgate"}};
  return s;
}

TEST(SharedKeyPair, RenewsOurPairWhenANameIsMissingOrItExpiresSoon) {
  const auto names = serviceDnsNames("patchgate-system", "patchgate-api");
  for (bool expiring : {false, true}) {
    testing::FakeClient client;
    auto old = expiring ? generateSelfSigned("patchgate-operator", names, /*validDays=*/10)
                        : generateSelfSigned("patchgate-operator", {"patchgate-api"});
    ASSERT_TRUE(old.ok());
    client.seed(res::kSecret, tlsSecret(*old, /*ours=*/true));
    auto pair = sharedKeyPair(client, "patchgate-system", "patchgate-api-tls", "patchgate-operator", names);
    ASSERT_TRUE(pair.ok()) << pair.status();
    EXPECT_NE(pair->certPem, old->certPem) << "expiring=" << expiring;
    EXPECT_TRUE(certCovers(pair->certPem, "patchgate-api.patchgate-system.svc"));
    ASSERT_EQ(client.calls("update", "secrets").size(), 1u);
    EXPECT_FALSE(client.calls("update", "secrets")[0].body["metadata"]["resourceVersion"].get<std::string>().empty());
    // Clients trust both while the replicas restart.
    EXPECT_EQ(pair->caPem, pair->certPem + old->certPem);
    Json stored = client.object(res::kSecret, "patchgate-system", "patchgate-api-tls");
    EXPECT_NE(stored["metadata"]["annotations"]["patchgate.dev/renewed-because"].get<std::string>().find(
                  expiring ? "expires" : "does not cover"),
              std::string::npos);
  }
}

// FakeClient, with another replica's write slipped in before our first update.
class RacingClient final : public testing::ForwardingClient {
 public:
  RacingClient(testing::FakeClient& fake, std::function<void()> otherWrite)
      : ForwardingClient(fake), otherWrite_(std::move(otherWrite)) {}
  absl::StatusOr<Json> update(const kube::ResourceType& rt, const std::string& ns, const Json& obj,
                              const kube::WriteOptions& o) override {
    if (otherWrite_) std::exchange(otherWrite_, nullptr)();
    return next_.update(rt, ns, obj, o);
  }

 private:
  std::function<void()> otherWrite_;
};

TEST(SharedKeyPair, TheLoserOfARenewalRaceServesTheWinnersPair) {
  testing::FakeClient fake;
  const auto names = serviceDnsNames("patchgate-system", "patchgate-api");
  auto old = generateSelfSigned("patchgate-operator", {});
  auto winner = generateSelfSigned("patchgate-operator", names);
  ASSERT_TRUE(old.ok() && winner.ok());
  fake.seed(res::kSecret, tlsSecret(*old, true));
  // Both replicas read the old pair; the other one writes its renewal first.
  RacingClient client(fake, [&] { fake.seed(res::kSecret, tlsSecret(*winner, true)); });
  auto pair = sharedKeyPair(client, "patchgate-system", "patchgate-api-tls", "patchgate-operator", names);
  ASSERT_TRUE(pair.ok()) << pair.status();
  EXPECT_EQ(pair->certPem, winner->certPem);
  EXPECT_EQ(pair->keyPem, winner->keyPem);
  ASSERT_EQ(fake.calls("update", "secrets").size(), 1u);  // ours, refused as stale
}

TEST(SharedKeyPair, ServesSomeoneElsesPairAsItIs) {
  testing::FakeClient client;
  auto theirs = generateSelfSigned("their-ca", {});
  ASSERT_TRUE(theirs.ok());
  client.seed(res::kSecret, tlsSecret(*theirs, /*ours=*/false));
  auto pair = sharedKeyPair(client, "patchgate-system", "patchgate-api-tls", "patchgate-operator",
                            serviceDnsNames("patchgate-system", "patchgate-api"));
  ASSERT_TRUE(pair.ok()) << pair.status();
  EXPECT_EQ(pair->certPem, theirs->certPem);
  EXPECT_TRUE(client.calls("update", "secrets").empty());
}

TEST(SharedKeyPair, ASecretWithoutAKeyPairIsAClearError) {
  testing::FakeClient client;
  client.seed(res::kSecret, {{"apiVersion", "v1"},
                             {"kind", "Secret"},
                             {"metadata", {{"name", "patchgate-api-tls"}, {"namespace", "patchgate-system"}}},
                             {"data", {{"password", absl::Base64Escape("hunter2")}}}});
  auto pair = sharedKeyPair(client, "patchgate-system", "patchgate-api-tls", "patchgate-operator", {});
  ASSERT_FALSE(pair.ok());
  EXPECT_EQ(pair.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(pair.status().message().find("patchgate-system/patchgate-api-tls"), std::string::npos);
  EXPECT_TRUE(client.calls("create", "secrets").empty());
}

TEST(SharedKeyPair, AnUnreachableApiServerIsUnavailable) {
  testing::FakeClient client;
  client.failNext("get", kube::transportError("connection refused"), "secrets");
  auto pair = sharedKeyPair(client, "patchgate-system", "patchgate-api-tls", "patchgate-operator", {});
  ASSERT_FALSE(pair.ok());
  EXPECT_EQ(pair.status().code(), absl::StatusCode::kUnavailable);
}

TEST(LoadApiTls, PrefersFilesThenTheSecretThenGenerates) {
  testing::FakeClient client;
  ApiTlsOptions o;
  o.secretNamespace = "patchgate-system";
  o.secretName = "patchgate-api-tls";
  o.dnsNames = serviceDnsNames("patchgate-system", "patchgate-api");
  auto fromSecret = loadApiTls(client, o);
  ASSERT_TRUE(fromSecret.ok()) << fromSecret.status();
  EXPECT_FALSE(fromSecret->generatedAtStart);
  EXPECT_EQ(fromSecret->caPem, fromSecret->keyPair.certPem);
  EXPECT_EQ(client.calls("create", "secrets").size(), 1u);

  ApiTlsOptions dev;
  dev.dnsNames = {"patchgate.local"};
  auto generated = loadApiTls(client, dev);
  ASSERT_TRUE(generated.ok()) << generated.status();
  EXPECT_TRUE(generated->generatedAtStart);
  EXPECT_TRUE(certCovers(generated->keyPair.certPem, "patchgate.local"));
  EXPECT_EQ(client.calls("create", "secrets").size(), 1u);  // no Secret for the development pair

  auto dir = std::filesystem::temp_directory_path() / ("pg-tls-load-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "tls.crt") << generated->keyPair.certPem;
  std::ofstream(dir / "tls.key") << generated->keyPair.keyPem;
  std::ofstream(dir / "ca.crt") << "-----BEGIN CERTIFICATE-----\nour CA\n-----END CERTIFICATE-----\n";
  ApiTlsOptions files = o;
  files.certFile = (dir / "tls.crt").string();
  files.keyFile = (dir / "tls.key").string();
  files.caFile = (dir / "ca.crt").string();
  auto fromFiles = loadApiTls(client, files);
  ASSERT_TRUE(fromFiles.ok()) << fromFiles.status();
  EXPECT_EQ(fromFiles->keyPair.certPem, generated->keyPair.certPem);
  EXPECT_NE(fromFiles->caPem.find("our CA"), std::string::npos);

  EXPECT_FALSE(fromFiles->caFileMissing);
  files.caFile = (dir / "no-ca.crt").string();  // e.g. a Secret without ca.crt
  auto noCa = loadApiTls(client, files);
  ASSERT_TRUE(noCa.ok()) << noCa.status();
  EXPECT_TRUE(noCa->caFileMissing);
  EXPECT_EQ(noCa->caPem, generated->keyPair.certPem);

  files.keyFile.clear();
  EXPECT_EQ(loadApiTls(client, files).status().code(), absl::StatusCode::kInvalidArgument);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace patchgate::grpcapi
