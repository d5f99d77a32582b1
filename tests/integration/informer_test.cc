// Watcher/Informer against a real kube-apiserver: resume after the server
// restarts, relist after 410 Gone.
#include <thread>

#include <gtest/gtest.h>

#include "common/clock.h"
#include "common/random.h"
#include "kube/errors.h"
#include "runtime/informer.h"
#include "test_cluster.h"

namespace patchgate {
namespace {

using testing::makeTestClient;
using testing::runCommand;
using testing::uniqueName;

Json configMap(const std::string& ns, const std::string& name) {
  return {{"apiVersion", "v1"}, {"kind", "ConfigMap"},
          {"metadata", {{"name", name}, {"namespace", ns}, {"labels", {{"it", "informer"}}}}},
          {"data", {{"k", "v"}}}};
}

template <typename Pred>
bool eventually(Pred pred, std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return pred();
}

std::string clusterName() {
  const char* n = std::getenv("PATCHGATE_TEST_CLUSTER");
  return n && *n ? n : "pg-integration";
}

class InformerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (testing::usingExternalCluster())
      GTEST_SKIP() << "restarts the API server: needs the fixture cluster, not an external one";
    client_ = makeTestClient();
    ASSERT_NE(client_, nullptr);
    ns_ = uniqueName("it-informer");
    ASSERT_TRUE(client_->create(kube::resources::kNamespace, "",
                                {{"apiVersion", "v1"}, {"kind", "Namespace"},
                                 {"metadata", {{"name", ns_}}}})
                    .ok());
  }
  void TearDown() override {
    if (client_) (void)client_->remove(kube::resources::kNamespace, "", ns_, {});
  }
  void restartApiServer() {
    int rc = 0;
    std::string out = runCommand(std::string(PATCHGATE_SOURCE_DIR "/hack/cluster restart-apiserver --name ") +
                                     clusterName() + " 2>&1",
                                 &rc);
    ASSERT_EQ(rc, 0) << out;
  }

  std::unique_ptr<kube::Client> client_;
  std::string ns_;
  RealClock clock_;
  RandomImpl random_;
};

TEST_F(InformerTest, ResumesAfterApiServerRestart) {
  ASSERT_TRUE(client_->create(kube::resources::kConfigMap, ns_, configMap(ns_, "before")).ok());
  runtime::WatcherConfig wc{kube::resources::kConfigMap, ns_, "it=informer"};
  runtime::Informer informer(*client_, wc, clock_, random_, Logger());
  std::atomic<int> adds{0};
  informer.addEventHandler({[&](const runtime::Object&) { ++adds; }, nullptr, nullptr});
  std::jthread t([&](std::stop_token st) { informer.run(st); });
  ASSERT_TRUE(informer.waitForSync({}, std::chrono::seconds(20)));
  EXPECT_NE(informer.store().get(ns_ + "/before"), nullptr);

  auto start = std::chrono::steady_clock::now();
  restartApiServer();
  ASSERT_TRUE(eventually(
      [&] { return client_->create(kube::resources::kConfigMap, ns_, configMap(ns_, "after")).ok(); },
      std::chrono::seconds(60)));
  EXPECT_TRUE(eventually([&] { return informer.store().get(ns_ + "/after") != nullptr; },
                         std::chrono::seconds(60)));
  std::printf("informer caught up %.1f s after the API server restart began (relists: %d)\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
              informer.relists());
  EXPECT_EQ(informer.store().size(), 2u);
  EXPECT_EQ(adds.load(), 2);  // no duplicate add for "before" after resuming
}

TEST_F(InformerTest, RelistsAfterGoneAndDropsWhatWasDeleted) {
  ASSERT_TRUE(client_->create(kube::resources::kConfigMap, ns_, configMap(ns_, "keep")).ok());
  ASSERT_TRUE(client_->create(kube::resources::kConfigMap, ns_, configMap(ns_, "doomed")).ok());
  // Watch only the label; changes elsewhere move the server's resourceVersion
  // past the watcher's without it hearing of them.
  runtime::WatcherConfig wc{kube::resources::kConfigMap, ns_, "it=informer"};
  runtime::Informer informer(*client_, wc, clock_, random_, Logger());
  std::atomic<int> deletes{0};
  informer.addEventHandler({nullptr, nullptr, [&](const runtime::Object&) { ++deletes; }});
  std::jthread t([&](std::stop_token st) { informer.run(st); });
  ASSERT_TRUE(informer.waitForSync({}, std::chrono::seconds(20)));
  ASSERT_EQ(informer.store().size(), 2u);

  // The watcher's resourceVersion is now older than the noise; once etcd is
  // compacted past it and the API server restarted (dropping the open watch
  // and its cache), the resumed watch is answered 410 Gone: relist.
  for (int i = 0; i < 20; ++i) {
    Json other = configMap(ns_, "noise-" + std::to_string(i));
    other["metadata"]["labels"]["it"] = "noise";
    ASSERT_TRUE(client_->create(kube::resources::kConfigMap, ns_, other).ok());
  }
  testing::compactEtcd();
  restartApiServer();
  // Deleted right after the restart, possibly before the watcher reconnects.
  ASSERT_TRUE(eventually(
      [&] { return client_->remove(kube::resources::kConfigMap, ns_, "doomed", {}).ok(); },
      std::chrono::seconds(60)));
  EXPECT_TRUE(eventually([&] { return informer.store().get(ns_ + "/doomed") == nullptr; },
                         std::chrono::seconds(60)));
  EXPECT_NE(informer.store().get(ns_ + "/keep"), nullptr);
  EXPECT_EQ(informer.store().size(), 1u);
  EXPECT_EQ(deletes.load(), 1);
  EXPECT_GE(informer.relists(), 2) << "the resumed watch should have been answered 410 Gone";
  std::printf("informer relisted %d times\n", informer.relists());
}

}  // namespace
}  // namespace patchgate
