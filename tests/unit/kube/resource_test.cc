#include "kube/resource.h"

#include <gtest/gtest.h>

namespace patchgate::kube {
namespace {

namespace res = resources;

TEST(ResourceType, PathsForCoreAndNamedGroups) {
  EXPECT_EQ(res::kPod.apiVersion(), "v1");
  EXPECT_EQ(res::kPod.basePath(), "/api/v1");
  EXPECT_EQ(res::kPod.path("ns"), "/api/v1/namespaces/ns/pods");
  EXPECT_EQ(res::kPod.path(""), "/api/v1/pods");  // all namespaces
  EXPECT_EQ(res::kPod.path("ns", "p"), "/api/v1/namespaces/ns/pods/p");

  EXPECT_EQ(res::kLease.apiVersion(), "coordination.k8s.io/v1");
  EXPECT_EQ(res::kDeployment.basePath(), "/apis/apps/v1");
  EXPECT_EQ(res::kDeployment.path("team-a", "web"), "/apis/apps/v1/namespaces/team-a/deployments/web");
}

TEST(ResourceType, ClusterScopedIgnoresTheNamespace) {
  EXPECT_EQ(res::kNamespace.path("ignored", "team-a"), "/api/v1/namespaces/team-a");
  EXPECT_EQ(res::kCustomResourceDefinition.path("", "patches.patchgate.dev"),
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/patches.patchgate.dev");
  EXPECT_EQ(res::kTokenReview.path("x"), "/apis/authentication.k8s.io/v1/tokenreviews");
}

TEST(ResourceType, Subresources) {
  EXPECT_EQ(res::kPatch.path("team-a", "p1", "status"),
            "/apis/patchgate.dev/v1alpha1/namespaces/team-a/patches/p1/status");
  EXPECT_EQ(res::kDeployment.path("ns", "web", "scale"),
            "/apis/apps/v1/namespaces/ns/deployments/web/scale");
}

TEST(ResourceType, ForKind) {
  auto d = res::forKind("apps/v1", "Deployment");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(*d, res::kDeployment);
  EXPECT_EQ(res::forKind("v1", "ConfigMap")->resource, "configmaps");
  EXPECT_EQ(*res::forKind("patchgate.dev/v1alpha1", "PatchApproval"), res::kPatchApproval);
  EXPECT_FALSE(res::forKind("apps/v1", "Pod").ok());  // wrong group
  EXPECT_FALSE(res::forKind("v1", "Widget").ok());
}

TEST(ObjectKey, NamespacedAndClusterScoped) {
  EXPECT_EQ(objectKey(Json{{"metadata", {{"namespace", "a"}, {"name", "b"}}}}), "a/b");
  EXPECT_EQ(objectKey(Json{{"metadata", {{"name", "b"}}}}), "b");
  EXPECT_EQ(makeKey("a", "b"), "a/b");
  EXPECT_EQ(makeKey("", "b"), "b");
  EXPECT_EQ(splitKey("a/b"), (std::pair<std::string, std::string>{"a", "b"}));
  EXPECT_EQ(splitKey("b"), (std::pair<std::string, std::string>{"", "b"}));
  auto [ns, name] = splitKey(makeKey("team-a", "p1"));
  EXPECT_EQ(ns, "team-a");
  EXPECT_EQ(name, "p1");
}

}  // namespace
}  // namespace patchgate::kube
