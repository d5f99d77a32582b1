// The API's key pair kept current while the operator runs: a shared Secret's
// pair is written to files the server watches and followed when the Secret is
// deleted (renewed) or replaced; with PEM files, the CA test pods are told to
// trust follows the CA file.
#include "grpc/live_tls.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "fakes/fake_clock.h"
#include "fakes/fake_client.h"
#include "kube/resource.h"
#include "absl/strings/escaping.h"

namespace patchgate::grpcapi {
namespace {

namespace res = kube::resources;

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void spit(const std::filesystem::path& path, const std::string& text) { std::ofstream(path) << text; }

class LiveApiTlsTest : public ::testing::Test {
 protected:
  LiveApiTlsTest() : client_(clock_) {
    dir_ = std::filesystem::temp_directory_path() / ("pg-live-tls-" + std::to_string(::getpid()) + "-" +
                                                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
  }
  ~LiveApiTlsTest() override { std::filesystem::remove_all(dir_); }

  testing::FakeClock clock_;
  testing::FakeClient client_;
  std::filesystem::path dir_;
  Logger log_;
};

TEST_F(LiveApiTlsTest, ASharedSecretsPairIsServedFromPrivateFilesAndFollowedWhenRenewed) {
  ApiTlsOptions options;
  options.secretNamespace = "patchgate-system";
  options.secretName = "patchgate-api-tls";
  options.dnsNames = serviceDnsNames("patchgate-system", "patchgate-api");
  auto tls = loadApiTls(client_, options);
  ASSERT_TRUE(tls.ok()) << tls.status();
  LiveApiTls live(client_, clock_, log_, options, *tls, (dir_ / "pair").string());
  ASSERT_TRUE(live.start().ok());
  ASSERT_FALSE(live.certFile().empty());
  EXPECT_EQ(slurp(live.certFile()), tls->keyPair.certPem);
  EXPECT_EQ(slurp(live.keyFile()), tls->keyPair.keyPem);
  struct stat st {};
  ASSERT_EQ(::stat((dir_ / "pair").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u) << "the key's folder is readable by others";
  ASSERT_EQ(::stat(live.keyFile().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(live.currentCa(), tls->caPem);

  // Nothing changed: nothing written.
  auto changed = live.refresh();
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_FALSE(*changed);

  // Deleted to renew it (as the chart's README says): the next look makes a
  // new pair, serves it and hands its CA to test pods.
  client_.erase(res::kSecret, "patchgate-system", "patchgate-api-tls");
  changed = live.refresh();
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_TRUE(*changed);
  std::string renewed = slurp(live.certFile());
  EXPECT_NE(renewed, tls->keyPair.certPem);
  EXPECT_NE(slurp(live.keyFile()), tls->keyPair.keyPem);
  EXPECT_NE(live.currentCa().find(renewed), std::string::npos);
  EXPECT_FALSE(client_.object(res::kSecret, "patchgate-system", "patchgate-api-tls").is_null());

  // Replaced by someone else's pair (not made by patchgate): served as it is.
  auto theirs = generateSelfSigned("theirs");
  ASSERT_TRUE(theirs.ok());
  Json secret = client_.object(res::kSecret, "patchgate-system", "patchgate-api-tls");
  secret["metadata"].erase("labels");
  secret["data"] = {{"tls.crt", absl::Base64Escape(theirs->certPem)},
                    {"tls.key", absl::Base64Escape(theirs->keyPem)},
                    {"ca.crt", absl::Base64Escape("their CA\n")}};
  client_.seed(res::kSecret, secret);
  changed = live.refresh();
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_TRUE(*changed);
  EXPECT_EQ(slurp(live.certFile()), theirs->certPem);
  EXPECT_EQ(live.currentCa(), "their CA\n");

  // The API server away: an error, and the pair it has stays.
  client_.failNext("get", absl::UnavailableError("connection refused"), "secrets");
  EXPECT_FALSE(live.refresh().ok());
  EXPECT_EQ(slurp(live.certFile()), theirs->certPem);
}

TEST_F(LiveApiTlsTest, WithMountedFilesTheServerWatchesThemAndTheCaFollowsItsFile) {
  std::filesystem::create_directories(dir_);
  auto pair = generateSelfSigned("patchgate-operator");
  ASSERT_TRUE(pair.ok());
  spit(dir_ / "tls.crt", pair->certPem);
  spit(dir_ / "tls.key", pair->keyPem);
  spit(dir_ / "ca.crt", "first CA\n");
  ApiTlsOptions options;
  options.certFile = (dir_ / "tls.crt").string();
  options.keyFile = (dir_ / "tls.key").string();
  options.caFile = (dir_ / "ca.crt").string();
  auto tls = loadApiTls(client_, options);
  ASSERT_TRUE(tls.ok()) << tls.status();
  LiveApiTls live(client_, clock_, log_, options, *tls, (dir_ / "unused").string());
  ASSERT_TRUE(live.start().ok());
  EXPECT_TRUE(live.certFile().empty()) << "the mounted files are watched as they are";
  EXPECT_FALSE(std::filesystem::exists(dir_ / "unused"));
  EXPECT_EQ(live.currentCa(), "first CA\n");
  spit(dir_ / "ca.crt", "first CA\nsecond CA\n");  // cert-manager rotated the CA bundle
  auto changed = live.refresh();
  ASSERT_TRUE(changed.ok());
  EXPECT_TRUE(*changed);
  EXPECT_EQ(live.currentCa(), "first CA\nsecond CA\n");
  std::filesystem::remove(dir_ / "ca.crt");  // gone for a moment: keep what it had
  EXPECT_FALSE(*live.refresh());
  EXPECT_EQ(live.currentCa(), "first CA\nsecond CA\n");
  EXPECT_TRUE(client_.calls().empty()) << "no Secret in this mode";
}

}  // namespace
}  // namespace patchgate::grpcapi
