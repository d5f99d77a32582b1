#pragma once

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include <unistd.h>

#include <gtest/gtest.h>

#include "kube/client_impl.h"
#include "kube/config/rest_config.h"
#include "kube/transport/cpprest_transport.h"

namespace patchgate::testing {

// Runs a shell command and returns its stdout (trailing newline removed).
inline std::string runCommand(const std::string& cmd, int* exitCode = nullptr) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  int rc = pclose(p);
  if (exitCode) *exitCode = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

// The cluster the integration tier runs against: the one named by
// PATCHGATE_TEST_KUBECONFIG, else the fixture cluster started by ctest
// (PATCHGATE_TEST_CLUSTER, default "pg-integration") through hack/cluster.
inline std::string testKubeconfig() {
  if (const char* k = std::getenv("PATCHGATE_TEST_KUBECONFIG"); k && *k) return k;
  const char* name = std::getenv("PATCHGATE_TEST_CLUSTER");
  return runCommand(std::string(PATCHGATE_SOURCE_DIR "/hack/cluster kubeconfig --name ") +
                    (name && *name ? name : "pg-integration"));
}

// Compacts the fixture cluster's etcd up to its current revision, so that
// watches from any older resourceVersion are answered 410 Gone.
inline void compactEtcd() {
  const char* name = std::getenv("PATCHGATE_TEST_CLUSTER");
  int rc = 0;
  std::string out = runCommand(std::string(PATCHGATE_SOURCE_DIR "/hack/cluster compact-etcd --name ") +
                                   (name && *name ? name : "pg-integration") + " 2>&1",
                               &rc);
  ASSERT_EQ(rc, 0) << out;
}

inline bool usingExternalCluster() {
  const char* k = std::getenv("PATCHGATE_TEST_KUBECONFIG");
  return k && *k;
}

inline std::unique_ptr<kube::Client> makeTestClient(std::string* kubeconfigOut = nullptr) {
  std::string path = testKubeconfig();
  if (kubeconfigOut) *kubeconfigOut = path;
  auto cfg = kube::loadKubeconfig({{path}, ""});
  if (!cfg.ok()) {
    ADD_FAILURE() << "cannot load test kubeconfig '" << path << "': " << cfg.status();
    return nullptr;
  }
  auto t = kube::makeCpprestTransport(*cfg);
  if (!t.ok()) {
    ADD_FAILURE() << t.status();
    return nullptr;
  }
  return std::make_unique<kube::ClientImpl>(std::move(*t), "patchgate-test", 200, 400);
}

// A unique, DNS-safe name for this test run.
inline std::string uniqueName(const std::string& prefix) {
  // Each gtest case runs in its own process (gtest_discover_tests), so the
  // pid keeps names apart; the counter, within one process.
  static int counter = 0;
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%s-%x-%x-%d", prefix.c_str(),
                static_cast<unsigned>(std::time(nullptr) & 0xffff), static_cast<unsigned>(getpid()), ++counter);
  return buf;
}

}  // namespace patchgate::testing
