// The FakeClient is the API server of every controller unit test: its rules
// are tested here so that the other tests can trust it.
#include "fakes/fake_client.h"

#include <gtest/gtest.h>

#include <thread>

#include "fakes/fake_clock.h"
#include "kube/errors.h"
#include "test_util.h"

namespace patchgate::testing {
namespace {

using kube::PatchType;
namespace res = kube::resources;

Json configMap(const std::string& name, Json labels = Json::object()) {
  return {{"apiVersion", "v1"},
          {"kind", "ConfigMap"},
          {"metadata", {{"name", name}, {"namespace", "ns"}, {"labels", labels}}},
          {"data", {{"k", "v"}}}};
}

Json patchObj(const std::string& name) {
  return {{"apiVersion", "patchgate.dev/v1alpha1"},
          {"kind", "Patch"},
          {"metadata", {{"name", name}, {"namespace", "ns"}}},
          {"spec", {{"target", "web"}}}};
}

class FakeClientTest : public ::testing::Test {
 protected:
  FakeClock clock_;
  FakeClient fake_{clock_};
};

TEST_F(FakeClientTest, CreateStampsMetadataAndRejectsDuplicates) {
  auto a = fake_.create(res::kConfigMap, "ns", configMap("a"));
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(jsonString(*a, "/metadata/resourceVersion"), "1");
  EXPECT_FALSE(jsonString(*a, "/metadata/uid").empty());
  EXPECT_EQ(jsonString(*a, "/metadata/creationTimestamp"), formatTime(clock_.now()));
  EXPECT_EQ(jsonInt(*a, "/metadata/generation"), 1);

  auto b = fake_.create(res::kConfigMap, "ns", configMap("b"));
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(jsonString(*b, "/metadata/resourceVersion"), "2");
  EXPECT_NE(jsonString(*a, "/metadata/uid"), jsonString(*b, "/metadata/uid"));

  auto dup = fake_.create(res::kConfigMap, "ns", configMap("a"));
  EXPECT_TRUE(kube::isAlreadyExists(dup.status())) << dup.status();
  EXPECT_FALSE(kube::isConflict(dup.status()));
  // Same name in another namespace is fine.
  Json other = configMap("a");
  other["metadata"]["namespace"] = "other";
  EXPECT_TRUE(fake_.create(res::kConfigMap, "other", other).ok());
}

TEST_F(FakeClientTest, CreateWithGenerateNameAndDryRun) {
  Json obj = configMap("");
  obj["metadata"].erase("name");
  obj["metadata"]["generateName"] = "gen-";
  auto created = fake_.create(res::kConfigMap, "ns", obj);
  ASSERT_TRUE(created.ok());
  EXPECT_EQ(jsonString(*created, "/metadata/name").rfind("gen-", 0), 0u);
  EXPECT_EQ(jsonString(*created, "/metadata/name").size(), 9u);

  auto dry = fake_.create(res::kConfigMap, "ns", configMap("dry"), {.dryRun = true});
  ASSERT_TRUE(dry.ok());
  EXPECT_EQ(jsonString(*dry, "/metadata/name"), "dry");
  EXPECT_TRUE(fake_.object(res::kConfigMap, "ns", "dry").is_null());
  EXPECT_EQ(fake_.resourceVersion(), 1);
}

TEST_F(FakeClientTest, GetMissingIsNotFound) {
  auto got = fake_.get(res::kConfigMap, "ns", "nope");
  EXPECT_TRUE(kube::isNotFound(got.status()));
}

TEST_F(FakeClientTest, UpdateWithStaleResourceVersionConflicts) {
  auto a = fake_.create(res::kConfigMap, "ns", configMap("a"));
  Json v1 = *a;
  v1["data"]["k"] = "v1";
  auto updated = fake_.update(res::kConfigMap, "ns", v1);
  ASSERT_TRUE(updated.ok());
  EXPECT_EQ(jsonString(*updated, "/metadata/resourceVersion"), "2");

  Json stale = *a;  // still resourceVersion 1
  stale["data"]["k"] = "v2";
  auto r = fake_.update(res::kConfigMap, "ns", stale);
  EXPECT_TRUE(kube::isConflict(r.status())) << r.status();
  EXPECT_EQ(fake_.object(res::kConfigMap, "ns", "a")["data"]["k"], "v1");

  stale["metadata"].erase("resourceVersion");  // unconditional
  EXPECT_TRUE(fake_.update(res::kConfigMap, "ns", stale).ok());
  EXPECT_EQ(fake_.object(res::kConfigMap, "ns", "a")["data"]["k"], "v2");

  Json missing = configMap("missing");
  EXPECT_TRUE(kube::isNotFound(fake_.update(res::kConfigMap, "ns", missing).status()));
}

TEST_F(FakeClientTest, NoOpUpdateIsNotPersisted) {
  auto a = fake_.create(res::kConfigMap, "ns", configMap("a"));
  auto same = fake_.update(res::kConfigMap, "ns", *a);
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(jsonString(*same, "/metadata/resourceVersion"), "1");
  EXPECT_EQ(fake_.resourceVersion(), 1);
}

TEST_F(FakeClientTest, GenerationBumpsOnSpecChangesOnly) {
  auto p = fake_.create(res::kPatch, "ns", patchObj("p"));
  ASSERT_TRUE(p.ok());
  Json labelled = *p;
  labelled["metadata"]["labels"] = {{"x", "y"}};
  auto l = fake_.update(res::kPatch, "ns", labelled);
  EXPECT_EQ(jsonInt(*l, "/metadata/generation"), 1);

  Json withStatus = *l;
  withStatus["status"] = {{"phase", "Pending"}};
  auto s = fake_.updateStatus(res::kPatch, "ns", withStatus);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(jsonInt(*s, "/metadata/generation"), 1);
  EXPECT_EQ((*s)["status"]["phase"], "Pending");

  Json spec = *s;
  spec["spec"]["target"] = "api";
  auto g = fake_.update(res::kPatch, "ns", spec);
  EXPECT_EQ(jsonInt(*g, "/metadata/generation"), 2);
}

TEST_F(FakeClientTest, StatusSubresourceSeparatesSpecAndStatusWrites) {
  Json obj = patchObj("p");
  obj["status"] = {{"phase", "Ignored"}};
  auto p = fake_.create(res::kPatch, "ns", obj);
  EXPECT_FALSE(p->contains("status"));  // create drops status

  Json both = *p;
  both["spec"]["target"] = "api";
  both["status"] = {{"phase", "Sneaky"}};
  auto u = fake_.update(res::kPatch, "ns", both);
  EXPECT_EQ((*u)["spec"]["target"], "api");
  EXPECT_FALSE(u->contains("status"));  // main resource ignores status

  Json st = *u;
  st["spec"]["target"] = "sneaky";
  st["status"] = {{"phase", "Ready"}};
  auto s = fake_.updateStatus(res::kPatch, "ns", st);
  EXPECT_EQ((*s)["spec"]["target"], "api");  // status write ignores spec
  EXPECT_EQ((*s)["status"]["phase"], "Ready");

  fake_.setStatusSubresource(res::kPatch, false);
  EXPECT_TRUE(kube::isNotFound(fake_.updateStatus(res::kPatch, "ns", *s).status()));
}

TEST_F(FakeClientTest, MergePatchFollowsRfc7386) {
  ASSERT_OK(fake_.create(res::kConfigMap, "ns", configMap("a")));
  auto r = fake_.patch(res::kConfigMap, "ns", "a", PatchType::kMerge,
                       R"({"data":{"k":null,"n":"1"},"metadata":{"labels":{"app":"web"}}})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE((*r)["data"].contains("k"));
  EXPECT_EQ((*r)["data"]["n"], "1");
  EXPECT_EQ((*r)["metadata"]["labels"]["app"], "web");
  EXPECT_EQ(jsonString(*r, "/metadata/resourceVersion"), "2");

  // Strategic merge is a merge patch here: lists are replaced.
  auto s = fake_.patch(res::kConfigMap, "ns", "a", PatchType::kStrategicMerge,
                       R"({"metadata":{"finalizers":["x"]}})");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ((*s)["metadata"]["finalizers"], Json::array({"x"}));

  // A resourceVersion in a merge patch is a precondition.
  auto stale = fake_.patch(res::kConfigMap, "ns", "a", PatchType::kMerge,
                           R"({"metadata":{"resourceVersion":"1"},"data":{"z":"1"}})");
  EXPECT_TRUE(kube::isConflict(stale.status())) << stale.status();

  EXPECT_TRUE(kube::isNotFound(
      fake_.patch(res::kConfigMap, "ns", "nope", PatchType::kMerge, "{}").status()));
  EXPECT_TRUE(kube::isInvalid(
      fake_.patch(res::kConfigMap, "ns", "a", PatchType::kMerge, "not json").status()));
}

TEST_F(FakeClientTest, JsonPatchFollowsRfc6902) {
  ASSERT_OK(fake_.create(res::kConfigMap, "ns", configMap("a")));
  auto r = fake_.patch(res::kConfigMap, "ns", "a", PatchType::kJson, R"([
      {"op":"test","path":"/metadata/resourceVersion","value":"1"},
      {"op":"add","path":"/metadata/finalizers","value":["f1"]},
      {"op":"add","path":"/metadata/finalizers/-","value":"f2"},
      {"op":"replace","path":"/data/k","value":"v2"},
      {"op":"remove","path":"/metadata/labels"}])");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)["metadata"]["finalizers"], Json::array({"f1", "f2"}));
  EXPECT_EQ((*r)["data"]["k"], "v2");
  EXPECT_FALSE((*r)["metadata"].contains("labels"));

  auto failedTest = fake_.patch(res::kConfigMap, "ns", "a", PatchType::kJson,
                                R"([{"op":"test","path":"/metadata/resourceVersion","value":"1"},
                                    {"op":"replace","path":"/data/k","value":"v3"}])");
  EXPECT_EQ(kube::httpCode(failedTest.status()), 422);
  EXPECT_EQ(kube::reason(failedTest.status()), "Invalid");
  EXPECT_EQ(fake_.object(res::kConfigMap, "ns", "a")["data"]["k"], "v2");

  auto badPath = fake_.patch(res::kConfigMap, "ns", "a", PatchType::kJson,
                             R"([{"op":"remove","path":"/nope"}])");
  EXPECT_EQ(kube::httpCode(badPath.status()), 422);
}

TEST_F(FakeClientTest, StatusPatchAndDryRun) {
  ASSERT_OK(fake_.create(res::kPatch, "ns", patchObj("p")));
  auto s = fake_.patch(res::kPatch, "ns", "p", PatchType::kMerge,
                       R"({"spec":{"target":"x"},"status":{"phase":"Ready"}})",
                       {.subresource = "status"});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ((*s)["spec"]["target"], "web");
  EXPECT_EQ((*s)["status"]["phase"], "Ready");

  auto dry = fake_.patch(res::kPatch, "ns", "p", PatchType::kMerge, R"({"spec":{"target":"y"}})",
                         {.dryRun = true});
  ASSERT_TRUE(dry.ok());
  EXPECT_EQ((*dry)["spec"]["target"], "y");
  EXPECT_EQ(fake_.object(res::kPatch, "ns", "p")["spec"]["target"], "web");
  EXPECT_TRUE(fake_.calls("patch").back().dryRun);
}

TEST_F(FakeClientTest, ApplyPatchCreatesWhenMissing) {
  auto r = fake_.patch(res::kConfigMap, "ns", "applied", PatchType::kApply,
                       R"({"apiVersion":"v1","kind":"ConfigMap","data":{"a":"b"}})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(fake_.object(res::kConfigMap, "ns", "applied")["data"]["a"], "b");
}

TEST_F(FakeClientTest, DeleteHonoursFinalizers) {
  Json obj = configMap("a");
  obj["metadata"]["finalizers"] = {"f1", "f2"};
  auto created = fake_.create(res::kConfigMap, "ns", obj);

  auto del = fake_.remove(res::kConfigMap, "ns", "a");
  ASSERT_TRUE(del.ok());
  EXPECT_EQ(jsonString(*del, "/metadata/deletionTimestamp"), formatTime(clock_.now()));
  Json stored = fake_.object(res::kConfigMap, "ns", "a");
  ASSERT_FALSE(stored.is_null());
  EXPECT_EQ(jsonString(stored, "/metadata/resourceVersion"), "2");

  // Deleting again changes nothing.
  ASSERT_TRUE(fake_.remove(res::kConfigMap, "ns", "a").ok());
  EXPECT_EQ(fake_.resourceVersion(), 2);

  // Removing one finalizer keeps it; removing the last deletes it.
  ASSERT_TRUE(fake_.patch(res::kConfigMap, "ns", "a", PatchType::kMerge,
                          R"({"metadata":{"finalizers":["f2"]}})").ok());
  EXPECT_FALSE(fake_.object(res::kConfigMap, "ns", "a").is_null());
  Json last = fake_.object(res::kConfigMap, "ns", "a");
  last["metadata"]["finalizers"] = Json::array();
  auto gone = fake_.update(res::kConfigMap, "ns", last);
  ASSERT_TRUE(gone.ok()) << gone.status();
  EXPECT_TRUE(fake_.object(res::kConfigMap, "ns", "a").is_null());
  EXPECT_TRUE(kube::isNotFound(fake_.get(res::kConfigMap, "ns", "a").status()));
}

TEST_F(FakeClientTest, DeleteWithoutFinalizersAndPreconditions) {
  auto a = fake_.create(res::kConfigMap, "ns", configMap("a"));
  auto wrongUid = fake_.remove(res::kConfigMap, "ns", "a", {.preconditionUid = "other"});
  EXPECT_TRUE(kube::isConflict(wrongUid.status())) << wrongUid.status();
  auto wrongRv =
      fake_.remove(res::kConfigMap, "ns", "a", {.preconditionResourceVersion = "99"});
  EXPECT_TRUE(kube::isConflict(wrongRv.status()));
  auto dry = fake_.remove(res::kConfigMap, "ns", "a", {.dryRun = true});
  EXPECT_TRUE(dry.ok());
  EXPECT_FALSE(fake_.object(res::kConfigMap, "ns", "a").is_null());

  auto ok = fake_.remove(res::kConfigMap, "ns", "a",
                         {.propagationPolicy = "Foreground",
                          .preconditionUid = jsonString(*a, "/metadata/uid"),
                          .preconditionResourceVersion = "1"});
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ((*ok)["kind"], "Status");
  EXPECT_TRUE(fake_.object(res::kConfigMap, "ns", "a").is_null());
  auto call = fake_.calls("delete").back();
  EXPECT_EQ(call.body["propagationPolicy"], "Foreground");
  EXPECT_TRUE(kube::isNotFound(fake_.remove(res::kConfigMap, "ns", "a").status()));
}

TEST_F(FakeClientTest, ListFiltersByLabelSelectorAndPages) {
  ASSERT_OK(fake_.create(res::kConfigMap, "ns", configMap("a", {{"app", "web"}, {"tier", "fe"}})));
  ASSERT_OK(fake_.create(res::kConfigMap, "ns", configMap("b", {{"app", "web"}})));
  ASSERT_OK(fake_.create(res::kConfigMap, "ns", configMap("c", {{"app", "db"}})));
  Json other = configMap("d", {{"app", "web"}});
  other["metadata"]["namespace"] = "other";
  ASSERT_OK(fake_.create(res::kConfigMap, "other", other));

  auto names = [&](const std::string& ns, const std::string& selector) {
    auto l = fake_.list(res::kConfigMap, ns, {.labelSelector = selector});
    EXPECT_TRUE(l.ok()) << l.status();
    std::vector<std::string> out;
    for (const auto& i : (*l)["items"]) out.push_back(jsonString(i, "/metadata/name"));
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(names("ns", ""), (V{"a", "b", "c"}));
  EXPECT_EQ(names("", ""), (V{"a", "b", "c", "d"}));
  EXPECT_EQ(names("ns", "app=web"), (V{"a", "b"}));
  EXPECT_EQ(names("ns", "app=web,tier=fe"), (V{"a"}));
  EXPECT_EQ(names("ns", "tier"), (V{"a"}));
  EXPECT_EQ(names("ns", "!tier"), (V{"b", "c"}));
  EXPECT_EQ(names("ns", "app!=web"), (V{"c"}));
  EXPECT_EQ(names("ns", "app in (db, cache)"), (V{"c"}));
  EXPECT_EQ(names("ns", "app notin (db)"), (V{"a", "b"}));
  EXPECT_TRUE(kube::isInvalid(fake_.list(res::kConfigMap, "ns", {.labelSelector = "a in b"}).status()));

  auto p1 = fake_.list(res::kConfigMap, "", {.limit = 3});
  ASSERT_EQ((*p1)["items"].size(), 3u);
  std::string token = jsonString(*p1, "/metadata/continue");
  ASSERT_FALSE(token.empty());
  EXPECT_EQ(jsonInt(*p1, "/metadata/remainingItemCount"), 1);
  EXPECT_EQ(jsonString(*p1, "/metadata/resourceVersion"), "4");
  auto p2 = fake_.list(res::kConfigMap, "", {.limit = 3, .continueToken = token});
  ASSERT_EQ((*p2)["items"].size(), 1u);
  EXPECT_EQ((*p2)["items"][0]["metadata"]["name"], "d");
  EXPECT_TRUE(jsonString(*p2, "/metadata/continue").empty());

  auto all = kube::listAll(fake_, res::kConfigMap, "", {.limit = 2});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ((*all)["items"].size(), 4u);
  EXPECT_EQ(fake_.calls("list").size(), 2u + 10u + 2u);  // 10 names() above
}

TEST(LabelSelector, Parses) {
  Json labels = {{"a", "1"}, {"b", "2"}};
  EXPECT_TRUE(*matchesLabelSelector("", labels));
  EXPECT_TRUE(*matchesLabelSelector("a==1", labels));
  EXPECT_FALSE(*matchesLabelSelector("a=2", labels));
  EXPECT_TRUE(*matchesLabelSelector("c!=1", labels));
  EXPECT_FALSE(*matchesLabelSelector("c", labels));
  EXPECT_TRUE(*matchesLabelSelector("!c", Json()));
  EXPECT_FALSE(matchesLabelSelector("=x", labels).ok());
}

TEST_F(FakeClientTest, WatchReplaysFromResourceVersionThenStreams) {
  ASSERT_OK(fake_.create(res::kConfigMap, "ns", configMap("a")));                // rv 1
  ASSERT_OK(fake_.create(res::kPatch, "ns", patchObj("p")));                     // rv 2, other kind
  ASSERT_OK(fake_.patch(res::kConfigMap, "ns", "a", PatchType::kMerge, R"({"data":{"k":"2"}})"));  // rv 3
  std::mutex mu;
  std::vector<std::pair<kube::WatchEventType, std::string>> seen;
  std::jthread t([&](std::stop_token stop) {
    auto s = fake_.watch(res::kConfigMap, "ns", {.resourceVersion = "1"},
                         [&](const kube::WatchEvent& ev) {
                           std::lock_guard l(mu);
                           seen.emplace_back(ev.type,
                                             jsonString(ev.object, "/metadata/resourceVersion"));
                           return true;
                         },
                         stop);
    EXPECT_TRUE(s.ok()) << s;
  });
  ASSERT_TRUE(fake_.waitForActiveWatches(1));
  ASSERT_OK(fake_.remove(res::kConfigMap, "ns", "a"));  // rv 4
  ASSERT_TRUE(eventually([&] {
    std::lock_guard l(mu);
    return seen.size() == 2;
  }));
  t.request_stop();
  t.join();
  EXPECT_EQ(fake_.activeWatches(), 0);
  EXPECT_EQ(seen[0], std::make_pair(kube::WatchEventType::kModified, std::string("3")));
  EXPECT_EQ(seen[1], std::make_pair(kube::WatchEventType::kDeleted, std::string("4")));
}

TEST_F(FakeClientTest, WatchFromZeroSendsCurrentObjectsAsAdded) {
  ASSERT_OK(fake_.create(res::kConfigMap, "ns", configMap("a", {{"app", "web"}})));
  ASSERT_OK(fake_.create(res::kConfigMap, "ns", configMap("b")));
  std::vector<std::string> names;
  auto s = fake_.watch(res::kConfigMap, "", {.labelSelector = "app=web", .resourceVersion = ""},
                       [&](const kube::WatchEvent& ev) {
                         EXPECT_EQ(ev.type, kube::WatchEventType::kAdded);
                         names.push_back(jsonString(ev.object, "/metadata/name"));
                         return false;  // consumer stops the stream
                       },
                       std::stop_token());
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(names, std::vector<std::string>{"a"});
}

TEST_F(FakeClientTest, ExpiredWatchGetsGoneErrorEvent) {
  ASSERT_OK(fake_.create(res::kConfigMap, "ns", configMap("a")));
  ASSERT_OK(fake_.create(res::kConfigMap, "ns", configMap("b")));
  fake_.expireWatchesBefore(2);
  Json error;
  auto s = fake_.watch(res::kConfigMap, "ns", {.resourceVersion = "1"},
                       [&](const kube::WatchEvent& ev) {
                         EXPECT_EQ(ev.type, kube::WatchEventType::kError);
                         error = ev.object;
                         return true;
                       },
                       std::stop_token());
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(error["code"], 410);
  EXPECT_EQ(error["reason"], "Expired");
}

TEST_F(FakeClientTest, InterruptWithErrorDropsPendingEventsAndOkFlushesThem) {
  std::atomic<int> delivered = 0;
  absl::Status result;
  std::jthread t([&](std::stop_token stop) {
    result = fake_.watch(res::kConfigMap, "ns", {.resourceVersion = "0"},
                         [&](const kube::WatchEvent&) {
                           ++delivered;
                           return true;
                         },
                         stop);
  });
  ASSERT_TRUE(fake_.waitForActiveWatches(1));
  fake_.interruptWatches(kube::transportError("connection reset"));
  t.join();
  EXPECT_EQ(result.message(), "connection reset");

  fake_.seed(res::kConfigMap, configMap("a"));
  fake_.interruptWatches();  // before the next watch starts: does not affect it
  std::jthread t2([&](std::stop_token stop) {
    result = fake_.watch(res::kConfigMap, "ns", {.resourceVersion = "0"},
                         [&](const kube::WatchEvent&) {
                           ++delivered;
                           return true;
                         },
                         stop);
  });
  ASSERT_TRUE(fake_.waitForActiveWatches(1));
  fake_.seed(res::kConfigMap, configMap("b"));
  fake_.interruptWatches();
  t2.join();
  EXPECT_TRUE(result.ok());
  EXPECT_EQ(delivered, 2);  // a (initial), b (flushed before the close)
}

TEST_F(FakeClientTest, FailNextInjectsErrorsInOrderAndRecordsTheCall) {
  fake_.failNext("get", kube::apiError(500, "", "boom"));
  fake_.failNext("get", kube::apiError(503, "", "down"), "leases");
  ASSERT_OK(fake_.create(res::kConfigMap, "ns", configMap("a")));
  EXPECT_EQ(fake_.get(res::kConfigMap, "ns", "a").status().message(), "boom");
  EXPECT_TRUE(fake_.get(res::kConfigMap, "ns", "a").ok());  // the leases one waits
  EXPECT_EQ(kube::httpCode(fake_.get(res::kLease, "ns", "l").status()), 503);
  fake_.failNextWatch(kube::apiError(410, "Expired", "too old"));
  EXPECT_TRUE(kube::isGone(
      fake_.watch(res::kConfigMap, "ns", {}, [](const kube::WatchEvent&) { return true; }, {})));
  auto calls = fake_.calls();
  ASSERT_EQ(calls.size(), 5u);
  EXPECT_EQ(calls[1].verb, "get");
  EXPECT_EQ(calls[1].resource, "configmaps");
  EXPECT_EQ(calls[1].ns, "ns");
  EXPECT_EQ(calls[1].name, "a");
  EXPECT_EQ(calls[4].verb, "watch");
}

TEST_F(FakeClientTest, BookmarkCarriesAFreshResourceVersion) {
  ASSERT_OK(fake_.create(res::kConfigMap, "ns", configMap("a")));  // rv 1
  int64_t rv = fake_.bookmark(res::kConfigMap);
  EXPECT_EQ(rv, 2);
  std::vector<kube::WatchEvent> got;
  EXPECT_OK(fake_.watch(res::kConfigMap, "ns", {.resourceVersion = std::to_string(rv - 1)},
                        [&](const kube::WatchEvent& ev) {
                          got.push_back(ev);
                          return false;
                        },
                        {}));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].type, kube::WatchEventType::kBookmark);
  EXPECT_EQ(jsonString(got[0].object, "/metadata/resourceVersion"), std::to_string(rv));
}

}  // namespace
}  // namespace patchgate::testing
