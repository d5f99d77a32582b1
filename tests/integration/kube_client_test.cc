// The Kubernetes client against a real kube-apiserver + etcd (hack/cluster).
#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include "common/clock.h"
#include "kube/errors.h"
#include "runtime/status.h"
#include "test_cluster.h"

namespace patchgate {
namespace {

using kube::ResourceType;
using testing::makeTestClient;
using testing::uniqueName;

const ResourceType kWidget{"it.patchgate.dev", "v1", "widgets", "Widget", true};

Json widgetCrd() {
  return Json::parse(R"({
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.it.patchgate.dev"},
    "spec": {"group": "it.patchgate.dev", "scope": "Namespaced",
      "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
      "versions": [{"name": "v1", "served": true, "storage": true,
        "subresources": {"status": {}},
        "schema": {"openAPIV3Schema": {"type": "object", "properties": {
          "spec": {"type": "object", "properties": {
            "size": {"type": "integer", "minimum": 0},
            "color": {"type": "string"}}},
          "status": {"type": "object", "properties": {
            "count": {"type": "integer"},
            "conditions": {"type": "array", "items": {"type": "object",
              "x-kubernetes-preserve-unknown-fields": true}}}}}}}}]}})");
}

class KubeClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    client_ = makeTestClient();
    ASSERT_NE(client_, nullptr);
    auto crd = client_->create(kube::resources::kCustomResourceDefinition, "", widgetCrd());
    ASSERT_TRUE(crd.ok() || kube::isAlreadyExists(crd.status())) << crd.status();
    // Wait until the CRD is Established and served.
    for (int i = 0; i < 100; ++i) {
      auto got = client_->list(kWidget, "default", {});
      if (got.ok()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ns_ = uniqueName("it-client");
    auto n = client_->create(kube::resources::kNamespace, "",
                             {{"apiVersion", "v1"}, {"kind", "Namespace"},
                              {"metadata", {{"name", ns_}}}});
    ASSERT_TRUE(n.ok()) << n.status();
  }
  void TearDown() override {
    if (client_) (void)client_->remove(kube::resources::kNamespace, "", ns_, {});
  }

  Json widget(const std::string& name, int size) {
    return {{"apiVersion", "it.patchgate.dev/v1"}, {"kind", "Widget"},
            {"metadata", {{"name", name}, {"namespace", ns_}, {"labels", {{"app", "w"}}}}},
            {"spec", {{"size", size}, {"color", "red"}}}};
  }

  std::unique_ptr<kube::Client> client_;
  std::string ns_;
};

TEST_F(KubeClientTest, CrudAndStatusOnACustomResource) {
  auto created = client_->create(kWidget, ns_, widget("a", 1));
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(jsonString(*created, "/metadata/namespace"), ns_);
  EXPECT_FALSE(jsonString(*created, "/metadata/uid").empty());

  auto again = client_->create(kWidget, ns_, widget("a", 1));
  EXPECT_TRUE(kube::isAlreadyExists(again.status())) << again.status();

  auto got = client_->get(kWidget, ns_, "a");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(jsonInt(*got, "/spec/size"), 1);

  // Update with the current resourceVersion succeeds; with a stale one it conflicts.
  Json changed = *got;
  changed["spec"]["size"] = 2;
  auto updated = client_->update(kWidget, ns_, changed);
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ(jsonInt(*updated, "/metadata/generation"), 2);
  auto stale = client_->update(kWidget, ns_, changed);
  EXPECT_TRUE(kube::isConflict(stale.status())) << stale.status();

  // Status subresource: spec changes in a status write are ignored.
  Json withStatus = *updated;
  withStatus["status"] = {{"count", 7}};
  withStatus["spec"]["size"] = 99;
  auto st = client_->updateStatus(kWidget, ns_, withStatus);
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(jsonInt(*st, "/status/count"), 7);
  EXPECT_EQ(jsonInt(*st, "/spec/size"), 2);

  // Patches: merge, JSON, server-side apply, and a dry run that stores nothing.
  auto merged = client_->patch(kWidget, ns_, "a", kube::PatchType::kMerge,
                               R"({"spec":{"color":"blue"}})");
  ASSERT_TRUE(merged.ok()) << merged.status();
  EXPECT_EQ(jsonString(*merged, "/spec/color"), "blue");
  auto jsonPatched = client_->patch(kWidget, ns_, "a", kube::PatchType::kJson,
                                    R"([{"op":"replace","path":"/spec/size","value":3}])");
  ASSERT_TRUE(jsonPatched.ok()) << jsonPatched.status();
  EXPECT_EQ(jsonInt(*jsonPatched, "/spec/size"), 3);
  kube::PatchOptions apply;
  apply.fieldManager = "it-apply";
  apply.force = true;
  auto applied = client_->patch(
      kWidget, ns_, "a", kube::PatchType::kApply,
      R"({"apiVersion":"it.patchgate.dev/v1","kind":"Widget","metadata":{"name":"a"},"spec":{"size":4}})",
      apply);
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ(jsonInt(*applied, "/spec/size"), 4);
  kube::PatchOptions dry;
  dry.dryRun = true;
  auto dryRun = client_->patch(kWidget, ns_, "a", kube::PatchType::kMerge,
                               R"({"spec":{"size":50}})", dry);
  ASSERT_TRUE(dryRun.ok()) << dryRun.status();
  EXPECT_EQ(jsonInt(*dryRun, "/spec/size"), 50);
  EXPECT_EQ(jsonInt(*client_->get(kWidget, ns_, "a"), "/spec/size"), 4);

  // Schema validation errors come back as Invalid with the server's message.
  auto invalid = client_->patch(kWidget, ns_, "a", kube::PatchType::kMerge,
                                R"({"spec":{"size":-1}})");
  EXPECT_TRUE(kube::isInvalid(invalid.status())) << invalid.status();
  EXPECT_NE(std::string(invalid.status().message()).find("spec.size"), std::string::npos)
      << invalid.status();

  // Delete with a wrong uid precondition is refused; then deleted for real.
  kube::DeleteOptions wrongUid;
  wrongUid.preconditionUid = "00000000-0000-0000-0000-000000000000";
  auto refused = client_->remove(kWidget, ns_, "a", wrongUid);
  EXPECT_TRUE(kube::isConflict(refused.status())) << refused.status();
  kube::DeleteOptions fg;
  fg.propagationPolicy = "Foreground";
  EXPECT_TRUE(client_->remove(kWidget, ns_, "a", fg).ok());
  // Foreground: the garbage collector removes it once it has no dependents.
  for (int i = 0; i < 300 && client_->get(kWidget, ns_, "a").ok(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_TRUE(kube::isNotFound(client_->get(kWidget, ns_, "a").status()));
}

TEST_F(KubeClientTest, ListPagesAndSelectors) {
  for (int i = 0; i < 7; ++i) {
    Json w = widget("w" + std::to_string(i), i);
    if (i % 2) w["metadata"]["labels"]["odd"] = "true";
    ASSERT_TRUE(client_->create(kWidget, ns_, w).ok());
  }
  kube::ListOptions page;
  page.limit = 3;
  auto first = client_->list(kWidget, ns_, page);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ((*first)["items"].size(), 3u);
  EXPECT_FALSE(jsonString(*first, "/metadata/continue").empty());

  auto all = kube::listAll(*client_, kWidget, ns_, page);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ((*all)["items"].size(), 7u);

  kube::ListOptions odd;
  odd.labelSelector = "odd=true";
  auto odds = client_->list(kWidget, ns_, odd);
  ASSERT_TRUE(odds.ok());
  EXPECT_EQ((*odds)["items"].size(), 3u);

  kube::ListOptions byName;
  byName.fieldSelector = "metadata.name=w4";
  auto one = client_->list(kWidget, ns_, byName);
  ASSERT_TRUE(one.ok()) << one.status();
  ASSERT_EQ((*one)["items"].size(), 1u);
}

TEST_F(KubeClientTest, ErrorsAreClassified) {
  auto missing = client_->get(kWidget, ns_, "nope");
  EXPECT_TRUE(kube::isNotFound(missing.status()));
  EXPECT_NE(std::string(missing.status().message()).find("nope"), std::string::npos);
  // Invalid: a name the API server refuses, with its message kept.
  auto bad = client_->create(kube::resources::kConfigMap, ns_,
                             {{"apiVersion", "v1"}, {"kind", "ConfigMap"},
                              {"metadata", {{"name", "Not_A_DNS_Name"}}}});
  EXPECT_TRUE(kube::isInvalid(bad.status())) << bad.status();
  EXPECT_NE(std::string(bad.status().message()).find("Not_A_DNS_Name"), std::string::npos);

  // Forbidden: the same admin, impersonating a user with no rights.
  std::string path;
  auto cfg = kube::loadKubeconfig({{testing::testKubeconfig()}, ""});
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  cfg->impersonateUser = "nobody-" + ns_;
  auto transport = kube::makeCpprestTransport(*cfg);
  ASSERT_TRUE(transport.ok());
  kube::ClientImpl nobody(std::move(*transport), "it");
  auto denied = nobody.get(kube::resources::kConfigMap, ns_, "x");
  EXPECT_TRUE(kube::isForbidden(denied.status())) << denied.status();
  EXPECT_FALSE(kube::isRetryable(denied.status()));

  // Unavailable: nothing listens there.
  kube::RestConfig down = *cfg;
  down.server = "https://127.0.0.1:1";
  auto t2 = kube::makeCpprestTransport(down);
  ASSERT_TRUE(t2.ok());
  kube::ClientImpl unreachable(std::move(*t2), "it");
  auto refused = unreachable.get(kube::resources::kConfigMap, ns_, "x");
  EXPECT_TRUE(kube::isUnavailable(refused.status())) << refused.status();
  EXPECT_TRUE(kube::isRetryable(refused.status()));
}

TEST_F(KubeClientTest, ConcurrentWritersRetryOnConflictAndLoseNothing) {
  ASSERT_TRUE(client_->create(kWidget, ns_, widget("counter", 0)).ok());
  std::atomic<int> conflicts{0};
  constexpr int kPerWriter = 20;
  auto writer = [&] {
    for (int i = 0; i < kPerWriter; ++i) {
      int attempts = 0;
      absl::StatusOr<Json> r;
      do {
        r = runtime::updateStatus(*client_, kWidget, ns_, "counter", [&](Json& obj) {
          ++attempts;
          obj["status"]["count"] = jsonInt(obj, "/status/count", 0) + 1;
          return absl::OkStatus();
        });
      } while (!r.ok() && kube::isConflict(r.status()));
      ASSERT_TRUE(r.ok()) << r.status();
      conflicts += attempts - 1;
    }
  };
  std::thread a(writer), b(writer);
  a.join();
  b.join();
  auto final = client_->get(kWidget, ns_, "counter");
  ASSERT_TRUE(final.ok());
  EXPECT_EQ(jsonInt(*final, "/status/count"), 2 * kPerWriter);
  std::printf("concurrent writers: %d increments, %d conflicts retried\n", 2 * kPerWriter,
              conflicts.load());
}

}  // namespace
}  // namespace patchgate
