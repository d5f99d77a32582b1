#include "runtime/store.h"

#include <gtest/gtest.h>

namespace patchgate::runtime {
namespace {

Json obj(const std::string& ns, const std::string& name, const std::string& target,
         const std::string& rv = "1") {
  return {{"metadata", {{"namespace", ns}, {"name", name}, {"resourceVersion", rv}}},
          {"spec", {{"target", target}}}};
}

std::vector<std::string> names(const std::vector<Object>& objs) {
  std::vector<std::string> out;
  for (const auto& o : objs) out.push_back(jsonString(*o, "/metadata/name"));
  std::sort(out.begin(), out.end());
  return out;
}

using V = std::vector<std::string>;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_.addIndexer("target", [](const Json& o) {
      std::string t = jsonString(o, "/spec/target");
      return t.empty() ? V{} : V{jsonString(o, "/metadata/namespace") + "/" + t};
    });
  }
  Store store_;
};

TEST_F(StoreTest, UpsertGetEraseList) {
  EXPECT_EQ(store_.upsert(obj("ns", "a", "web")), nullptr);
  EXPECT_EQ(store_.upsert(obj("ns", "b", "web")), nullptr);
  EXPECT_EQ(store_.size(), 2u);
  ASSERT_NE(store_.get("ns/a"), nullptr);
  EXPECT_EQ(jsonString(*store_.get("ns/a"), "/spec/target"), "web");
  EXPECT_EQ(store_.get("ns/zz"), nullptr);
  EXPECT_EQ(store_.keys(), (V{"ns/a", "ns/b"}));

  Object before = store_.get("ns/a");
  Object previous = store_.upsert(obj("ns", "a", "api", "2"));
  EXPECT_EQ(previous, before);  // the old snapshot is handed back, unchanged
  EXPECT_EQ(jsonString(*before, "/spec/target"), "web");
  EXPECT_EQ(jsonString(*store_.get("ns/a"), "/spec/target"), "api");

  Object erased = store_.erase("ns/a");
  ASSERT_NE(erased, nullptr);
  EXPECT_EQ(jsonString(*erased, "/metadata/resourceVersion"), "2");
  EXPECT_EQ(store_.erase("ns/a"), nullptr);
  EXPECT_EQ(names(store_.list()), (V{"b"}));
}

TEST_F(StoreTest, ClusterScopedKeys) {
  store_.upsert(Json{{"metadata", {{"name", "cluster-wide"}}}});
  EXPECT_NE(store_.get("cluster-wide"), nullptr);
}

TEST_F(StoreTest, ReplaceSwapsContentAndReturnsTheOld) {
  store_.upsert(obj("ns", "a", "web"));
  store_.upsert(obj("ns", "b", "web"));
  std::vector<Json> fresh = {obj("ns", "b", "db", "5"), obj("ns", "c", "db", "6")};
  auto old = store_.replace(std::move(fresh));
  EXPECT_EQ(old.size(), 2u);
  EXPECT_TRUE(old.count("ns/a"));
  EXPECT_EQ(jsonString(*old["ns/b"], "/spec/target"), "web");
  EXPECT_EQ(store_.keys(), (V{"ns/b", "ns/c"}));
  EXPECT_TRUE(store_.byIndex("target", "ns/web").empty());
  EXPECT_EQ(names(store_.byIndex("target", "ns/db")), (V{"b", "c"}));
}

TEST_F(StoreTest, IndexesFollowChangesAndRemoval) {
  store_.upsert(obj("ns", "a", "web"));
  store_.upsert(obj("ns", "b", "web"));
  store_.upsert(obj("other", "c", "web"));
  EXPECT_EQ(names(store_.byIndex("target", "ns/web")), (V{"a", "b"}));
  EXPECT_EQ(names(store_.byIndex("target", "other/web")), (V{"c"}));

  store_.upsert(obj("ns", "a", "api", "2"));  // moves to another value
  EXPECT_EQ(names(store_.byIndex("target", "ns/web")), (V{"b"}));
  EXPECT_EQ(names(store_.byIndex("target", "ns/api")), (V{"a"}));

  store_.upsert(obj("ns", "a", "", "3"));  // no value at all
  EXPECT_TRUE(store_.byIndex("target", "ns/api").empty());

  store_.erase("ns/b");
  EXPECT_TRUE(store_.byIndex("target", "ns/web").empty());
  EXPECT_TRUE(store_.byIndex("no-such-index", "x").empty());
}

TEST(Store, AnIndexerAddedLaterIndexesExistingObjects) {
  Store s;
  s.upsert(obj("ns", "a", "web"));
  s.addIndexer("target", [](const Json& o) { return V{jsonString(o, "/spec/target")}; });
  EXPECT_EQ(names(s.byIndex("target", "web")), (V{"a"}));
}

TEST(Store, MultiValuedIndex) {
  Store s;
  s.addIndexer("labels", [](const Json& o) {
    V out;
    for (const auto& [k, v] : jsonAt(o, "/metadata/labels").items())
      out.push_back(k + "=" + v.get<std::string>());
    return out;
  });
  s.upsert(Json{{"metadata", {{"name", "a"}, {"labels", {{"app", "web"}, {"tier", "fe"}}}}}});
  EXPECT_EQ(names(s.byIndex("labels", "app=web")), (V{"a"}));
  EXPECT_EQ(names(s.byIndex("labels", "tier=fe")), (V{"a"}));
  s.upsert(Json{{"metadata", {{"name", "a"}, {"labels", {{"app", "web"}}}}}});
  EXPECT_TRUE(s.byIndex("labels", "tier=fe").empty());
}

}  // namespace
}  // namespace patchgate::runtime
