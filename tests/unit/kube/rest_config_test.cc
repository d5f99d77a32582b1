#include "kube/config/rest_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "absl/strings/escaping.h"
#include "test_util.h"

namespace patchgate::kube {
namespace {

using patchgate::testing::TempDir;
using ::testing::HasSubstr;

std::string b64(const std::string& s) { return absl::Base64Escape(s); }

// A kubeconfig with the given cluster and user bodies (YAML, indented by 4).
std::string kubeconfig(const std::string& cluster, const std::string& user,
                       const std::string& extraContexts = "") {
  return "apiVersion: v1\nkind: Config\ncurrent-context: main\n"
         "clusters:\n- name: c1\n  cluster:\n" + cluster +
         "users:\n- name: u1\n  user:\n" + user +
         "contexts:\n- name: main\n  context:\n    cluster: c1\n    user: u1\n"
         "    namespace: team-a\n" + extraContexts;
}

TEST(Kubeconfig, DataFieldsAndToken) {
  TempDir dir;
  std::string path = dir.write(
      "config", kubeconfig("    server: https://10.1.2.3:6443/\n"
                           "    certificate-authority-data: " + b64("CA PEM") + "\n"
                           "    tls-server-name: api.internal\n",
                           "    client-certificate-data: " + b64("CERT PEM") + "\n"
                           "    client-key-data: " + b64("KEY PEM") + "\n"
                           "    token: sekret\n"));
  auto cfg = loadKubeconfig({{path}});
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->server, "https://10.1.2.3:6443");  // trailing slash dropped
  EXPECT_EQ(cfg->caPem, "CA PEM");
  EXPECT_EQ(cfg->tlsServerName, "api.internal");
  EXPECT_EQ(cfg->clientCertPem, "CERT PEM");
  EXPECT_EQ(cfg->clientKeyPem, "KEY PEM");
  EXPECT_EQ(cfg->defaultNamespace, "team-a");
  ASSERT_NE(cfg->tokenSource, nullptr);
  EXPECT_EQ(*cfg->tokenSource->token(), "sekret");
  EXPECT_THAT(cfg->source, HasSubstr(path));
}

TEST(Kubeconfig, FilePathsAreRelativeToTheKubeconfigsDirectory) {
  TempDir dir;
  dir.write("pki/ca.crt", "CA FROM FILE");
  dir.write("pki/client.crt", "CERT FROM FILE");
  std::string absKey = dir.write("elsewhere/client.key", "KEY FROM FILE");
  std::string path = dir.write(
      "conf/kubeconfig", kubeconfig("    server: https://k8s:443\n"
                                    "    certificate-authority: ../pki/ca.crt\n",
                                    "    client-certificate: ../pki/client.crt\n"
                                    "    client-key: " + absKey + "\n"));
  auto cfg = loadKubeconfig({{path}});
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->caPem, "CA FROM FILE");
  EXPECT_EQ(cfg->clientCertPem, "CERT FROM FILE");
  EXPECT_EQ(cfg->clientKeyPem, "KEY FROM FILE");
  EXPECT_EQ(cfg->tokenSource, nullptr);

  // kubeconfigFromString resolves against the directory it is given.
  auto fromString = kubeconfigFromString(
      kubeconfig("    server: https://k8s:443\n    certificate-authority: pki/ca.crt\n",
                 "    token: t\n"),
      dir.path().string());
  ASSERT_TRUE(fromString.ok()) << fromString.status();
  EXPECT_EQ(fromString->caPem, "CA FROM FILE");
}

TEST(Kubeconfig, MissingCertificateFileNamesFileAndField) {
  TempDir dir;
  std::string path = dir.write("config", kubeconfig("    server: https://k8s:443\n"
                                                    "    certificate-authority: nope.crt\n",
                                                    "    token: t\n"));
  auto cfg = loadKubeconfig({{path}});
  ASSERT_FALSE(cfg.ok());
  EXPECT_THAT(std::string(cfg.status().message()), HasSubstr(path));
  EXPECT_THAT(std::string(cfg.status().message()), HasSubstr("certificate-authority"));
  EXPECT_THAT(std::string(cfg.status().message()), HasSubstr(dir.file("nope.crt")));
}

TEST(Kubeconfig, TokenFileIsReReadWhenItChanges) {
  TempDir dir;
  std::string tokenPath = dir.write("token", "first\n");
  std::string path = dir.write("config", kubeconfig("    server: https://k8s:443\n",
                                                    "    tokenFile: token\n"));
  auto cfg = loadKubeconfig({{path}});
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  ASSERT_NE(cfg->tokenSource, nullptr);
  EXPECT_EQ(*cfg->tokenSource->token(), "first");

  dir.write("token", "second\n");
  // Rotation is detected by mtime; make it differ from the first write even
  // on filesystems with a coarse clock.
  auto t = std::filesystem::last_write_time(tokenPath);
  std::filesystem::last_write_time(tokenPath, t + std::chrono::seconds(5));
  EXPECT_EQ(*cfg->tokenSource->token(), "second");

  // A vanished file keeps the last good token.
  std::filesystem::remove(tokenPath);
  EXPECT_EQ(*cfg->tokenSource->token(), "second");
}

TEST(Kubeconfig, MissingTokenFileIsAnError) {
  TempDir dir;
  std::string path = dir.write("config", kubeconfig("    server: https://k8s:443\n",
                                                    "    tokenFile: missing-token\n"));
  auto cfg = loadKubeconfig({{path}});
  ASSERT_FALSE(cfg.ok());
  EXPECT_THAT(std::string(cfg.status().message()), HasSubstr("tokenFile"));
  EXPECT_THAT(std::string(cfg.status().message()), HasSubstr(path));
}

TEST(Kubeconfig, NamedContext) {
  TempDir dir;
  std::string path = dir.write("config",
                   "current-context: main\n"
                   "clusters:\n"
                   "- name: c1\n  cluster:\n    server: https://main:443\n"
                   "- name: c2\n  cluster:\n    server: https://other:443\n"
                   "users:\n- name: u1\n  user:\n    token: t\n"
                   "contexts:\n"
                   "- name: main\n  context:\n    cluster: c1\n    user: u1\n"
                   "- name: other\n  context:\n    cluster: c2\n    user: u1\n"
                   "    namespace: team-b\n");
  auto main = loadKubeconfig({{path}});
  ASSERT_TRUE(main.ok()) << main.status();
  EXPECT_EQ(main->server, "https://main:443");
  EXPECT_EQ(main->defaultNamespace, "default");
  auto other = loadKubeconfig({{path}, "other"});
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(other->server, "https://other:443");
  EXPECT_EQ(other->defaultNamespace, "team-b");
}

TEST(Kubeconfig, MissingContextClusterOrUserNamesFileAndField) {
  TempDir dir;
  std::string path = dir.write(
      "config",
      "current-context: main\n"
      "clusters:\n- name: c1\n  cluster:\n    server: https://k8s:443\n"
      "users:\n- name: u1\n  user:\n    token: t\n"
      "contexts:\n"
      "- name: main\n  context:\n    cluster: c1\n    user: u1\n"
      "- name: no-cluster\n  context:\n    cluster: ghost-cluster\n    user: u1\n"
      "- name: no-user\n  context:\n    cluster: c1\n    user: ghost-user\n");
  auto noContext = loadKubeconfig({{path}, "ghost-context"});
  ASSERT_FALSE(noContext.ok());
  EXPECT_THAT(std::string(noContext.status().message()), HasSubstr(path));
  EXPECT_THAT(std::string(noContext.status().message()), HasSubstr("context 'ghost-context'"));

  auto noCluster = loadKubeconfig({{path}, "no-cluster"});
  ASSERT_FALSE(noCluster.ok());
  EXPECT_THAT(std::string(noCluster.status().message()), HasSubstr(path));
  EXPECT_THAT(std::string(noCluster.status().message()), HasSubstr("cluster 'ghost-cluster'"));

  auto noUser = loadKubeconfig({{path}, "no-user"});
  ASSERT_FALSE(noUser.ok());
  EXPECT_THAT(std::string(noUser.status().message()), HasSubstr(path));
  EXPECT_THAT(std::string(noUser.status().message()), HasSubstr("user 'ghost-user'"));

  auto missingFile = loadKubeconfig({{dir.file("does-not-exist")}});
  ASSERT_FALSE(missingFile.ok());
  EXPECT_THAT(std::string(missingFile.status().message()), HasSubstr(dir.file("does-not-exist")));
}

TEST(Kubeconfig, OtherInvalidConfigs) {
  auto noServer = kubeconfigFromString(kubeconfig("    insecure-skip-tls-verify: true\n",
                                                  "    token: t\n"),
                                       "", "", "my.yaml");
  ASSERT_FALSE(noServer.ok());
  EXPECT_THAT(std::string(noServer.status().message()), HasSubstr("'server'"));
  EXPECT_THAT(std::string(noServer.status().message()), HasSubstr("my.yaml"));

  auto badUrl = kubeconfigFromString(kubeconfig("    server: k8s:443\n", "    token: t\n"), "");
  EXPECT_FALSE(badUrl.ok());

  auto exec = kubeconfigFromString(
      kubeconfig("    server: https://k8s\n", "    exec:\n      command: aws\n"), "");
  EXPECT_EQ(exec.status().code(), absl::StatusCode::kUnimplemented);

  auto certOnly = kubeconfigFromString(
      kubeconfig("    server: https://k8s\n", "    client-certificate-data: " + b64("C") + "\n"),
      "");
  EXPECT_FALSE(certOnly.ok());

  auto notYaml = kubeconfigFromString("clusters: [", "");
  EXPECT_FALSE(notYaml.ok());
}

TEST(Kubeconfig, SeveralFilesMergeAndTheFirstWins) {
  TempDir dir;
  std::string first = dir.write("first",
                                "current-context: ctx-a\n"
                                "clusters:\n- name: shared\n  cluster:\n"
                                "    server: https://from-first:443\n"
                                "contexts:\n- name: ctx-a\n  context:\n    cluster: shared\n"
                                "    user: admin\n");
  std::string second = dir.write("second",
                                 "current-context: ctx-b\n"
                                 "clusters:\n- name: shared\n  cluster:\n"
                                 "    server: https://from-second:443\n"
                                 "- name: only-second\n  cluster:\n"
                                 "    server: https://only-second:443\n"
                                 "users:\n- name: admin\n  user:\n    token: second-token\n"
                                 "contexts:\n- name: ctx-b\n  context:\n    cluster: only-second\n"
                                 "    user: admin\n"
                                 "- name: ctx-a\n  context:\n    cluster: only-second\n"
                                 "    user: admin\n"
                                 "- name: broken\n  context:\n    cluster: nowhere\n");
  auto cfg = loadKubeconfig({{first, second}});
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->server, "https://from-first:443");  // current-context and cluster from first
  EXPECT_EQ(*cfg->tokenSource->token(), "second-token");  // user only in second

  auto b = loadKubeconfig({{first, second}, "ctx-b"});
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->server, "https://only-second:443");

  // Errors name the file that defined the faulty entry.
  auto broken = loadKubeconfig({{first, second}, "broken"});
  ASSERT_FALSE(broken.ok());
  EXPECT_THAT(std::string(broken.status().message()), HasSubstr(second));
  EXPECT_THAT(std::string(broken.status().message()), HasSubstr("cluster 'nowhere'"));

  // Reversed order: the second file's entries win.
  auto reversed = loadKubeconfig({{second, first}});
  ASSERT_TRUE(reversed.ok());
  EXPECT_EQ(reversed->server, "https://only-second:443");
}

// Saves and restores the in-cluster environment variables.
class InClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : kVars) {
      const char* v = std::getenv(name);
      saved_.emplace_back(name, v ? std::optional<std::string>(v) : std::nullopt);
    }
    paths_.tokenFile = dir_.write("token", "sa-token\n");
    paths_.caFile = dir_.write("ca.crt", "CLUSTER CA");
    paths_.namespaceFile = dir_.write("namespace", "patchgate-system\n");
  }
  void TearDown() override {
    for (const auto& [name, v] : saved_) {
      if (v) {
        ::setenv(name.c_str(), v->c_str(), 1);
      } else {
        ::unsetenv(name.c_str());
      }
    }
  }
  static constexpr const char* kVars[] = {"KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"};
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
  TempDir dir_;
  InClusterPaths paths_;
};

TEST_F(InClusterTest, ReadsEnvironmentAndServiceAccountFiles) {
  ::setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
  ::setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  auto cfg = inClusterConfig(paths_);
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->server, "https://10.96.0.1:443");
  EXPECT_EQ(cfg->caPem, "CLUSTER CA");
  EXPECT_EQ(cfg->defaultNamespace, "patchgate-system");
  ASSERT_NE(cfg->tokenSource, nullptr);
  EXPECT_EQ(*cfg->tokenSource->token(), "sa-token");
}

TEST_F(InClusterTest, BracketsAnIpv6Host) {
  ::setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
  ::setenv("KUBERNETES_SERVICE_PORT", "6443", 1);
  auto cfg = inClusterConfig(paths_);
  ASSERT_TRUE(cfg.ok());
  EXPECT_EQ(cfg->server, "https://[fd00::1]:6443");
}

TEST_F(InClusterTest, UnsetEnvironmentMeansNotInACluster) {
  ::unsetenv("KUBERNETES_SERVICE_HOST");
  ::setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  auto cfg = inClusterConfig(paths_);
  EXPECT_EQ(cfg.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(cfg.status().message()), HasSubstr("KUBERNETES_SERVICE_HOST"));
  ::setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
  ::unsetenv("KUBERNETES_SERVICE_PORT");
  EXPECT_FALSE(inClusterConfig(paths_).ok());
}

TEST_F(InClusterTest, MissingFilesAreNamed) {
  ::setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
  ::setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  InClusterPaths noCa = paths_;
  noCa.caFile = dir_.file("missing-ca");
  auto a = inClusterConfig(noCa);
  ASSERT_FALSE(a.ok());
  EXPECT_THAT(std::string(a.status().message()), HasSubstr(noCa.caFile));
  InClusterPaths noToken = paths_;
  noToken.tokenFile = dir_.file("missing-token");
  auto b = inClusterConfig(noToken);
  ASSERT_FALSE(b.ok());
  EXPECT_THAT(std::string(b.status().message()), HasSubstr(noToken.tokenFile));
  // The namespace file is optional.
  InClusterPaths noNs = paths_;
  noNs.namespaceFile = dir_.file("missing-ns");
  auto c = inClusterConfig(noNs);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->defaultNamespace, "default");
}

}  // namespace
}  // namespace patchgate::kube
