#include "kube/client_impl.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "kube/errors.h"
#include "test_util.h"

namespace patchgate::kube {
namespace {

using ::testing::_;
using ::testing::AllOf;
using ::testing::Field;
using ::testing::Invoke;
using ::testing::Return;

namespace res = resources;

class MockTransport : public Transport {
 public:
  MOCK_METHOD(absl::StatusOr<HttpResponse>, send, (const HttpRequest& request), (override));
  MOCK_METHOD(absl::Status, stream,
              (const HttpRequest& request, const std::function<bool(std::string_view)>& onLine,
               std::stop_token stop),
              (override));
};

HttpResponse ok(const Json& body) { return HttpResponse{200, body.dump()}; }

auto Req(const std::string& method, const std::string& pathAndQuery) {
  return AllOf(Field(&HttpRequest::method, method),
               Field(&HttpRequest::pathAndQuery, pathAndQuery));
}

class ClientImplTest : public ::testing::Test {
 protected:
  ClientImplTest() {
    auto t = std::make_unique<::testing::StrictMock<MockTransport>>();
    transport_ = t.get();
    // qps 0: no client-side throttling in tests.
    client_ = std::make_unique<ClientImpl>(std::move(t), "patchgate", 0, 0);
  }
  ::testing::StrictMock<MockTransport>* transport_;
  std::unique_ptr<ClientImpl> client_;
};

TEST_F(ClientImplTest, GetReturnsTheDecodedObject) {
  EXPECT_CALL(*transport_, send(Req("GET", "/api/v1/namespaces/ns/pods/p")))
      .WillOnce(Return(ok({{"kind", "Pod"}})));
  auto r = client_->get(res::kPod, "ns", "p");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)["kind"], "Pod");
}

// Requests carry the client's timeout: 30 s unless set (the leader
// elector's client sets 3 s, under its renew deadline).
TEST_F(ClientImplTest, RequestsCarryTheClientsTimeout) {
  EXPECT_CALL(*transport_, send(Field(&HttpRequest::timeout, std::chrono::seconds(30))))
      .WillOnce(Return(ok({{"kind", "Lease"}})));
  ASSERT_TRUE(client_->get(res::kLease, "ns", "l").ok());
  client_->setRequestTimeout(std::chrono::seconds(3));
  EXPECT_CALL(*transport_, send(Field(&HttpRequest::timeout, std::chrono::seconds(3))))
      .Times(2)
      .WillRepeatedly(Return(ok({{"kind", "Lease"}})));
  ASSERT_TRUE(client_->get(res::kLease, "ns", "l").ok());
  ASSERT_TRUE(client_->update(res::kLease, "ns", {{"metadata", {{"name", "l"}}}}, {}).ok());
}

TEST_F(ClientImplTest, ListEncodesSelectorsAndPaging) {
  EXPECT_CALL(*transport_,
              send(Req("GET",
                       "/apis/apps/v1/namespaces/ns/deployments?labelSelector=app%3Dweb%2Ctier%21%3Ddb"
                       "&fieldSelector=metadata.name%3Dx&limit=50&continue=abc%2F%3D&resourceVersion=0")))
      .WillOnce(Return(ok({{"items", Json::array()}})));
  auto r = client_->list(res::kDeployment, "ns",
                         {.labelSelector = "app=web,tier!=db",
                          .fieldSelector = "metadata.name=x",
                          .limit = 50,
                          .continueToken = "abc/=",
                          .resourceVersion = "0"});
  ASSERT_TRUE(r.ok()) << r.status();

  EXPECT_CALL(*transport_, send(Req("GET", "/apis/apps/v1/deployments")))
      .WillOnce(Return(ok({{"items", Json::array()}})));
  EXPECT_TRUE(client_->list(res::kDeployment, "", {}).ok());
}

TEST_F(ClientImplTest, CreateSendsJsonWithDryRunAndFieldManager) {
  Json obj = {{"metadata", {{"name", "l"}}}};
  EXPECT_CALL(*transport_,
              send(AllOf(Req("POST", "/apis/coordination.k8s.io/v1/namespaces/ns/leases"
                                     "?dryRun=All&fieldManager=patchgate"),
                         Field(&HttpRequest::contentType, "application/json"),
                         Field(&HttpRequest::body, obj.dump()))))
      .WillOnce(Return(HttpResponse{201, obj.dump()}));
  EXPECT_TRUE(client_->create(res::kLease, "ns", obj, {.dryRun = true}).ok());

  EXPECT_CALL(*transport_, send(Req("POST", "/apis/coordination.k8s.io/v1/namespaces/ns/leases"
                                            "?fieldManager=someone%20else")))
      .WillOnce(Return(HttpResponse{201, obj.dump()}));
  EXPECT_TRUE(client_->create(res::kLease, "ns", obj, {.fieldManager = "someone else"}).ok());
}

TEST_F(ClientImplTest, UpdateAndUpdateStatusPutToTheRightPaths) {
  Json obj = {{"metadata", {{"name", "p1"}, {"resourceVersion", "7"}}}};
  EXPECT_CALL(*transport_,
              send(AllOf(Req("PUT", "/apis/patchgate.dev/v1alpha1/namespaces/ns/patches/p1"
                                    "?fieldManager=patchgate"),
                         Field(&HttpRequest::body, obj.dump()))))
      .WillOnce(Return(ok(obj)));
  EXPECT_TRUE(client_->update(res::kPatch, "ns", obj, {}).ok());
  EXPECT_CALL(*transport_,
              send(Req("PUT", "/apis/patchgate.dev/v1alpha1/namespaces/ns/patches/p1/status"
                              "?fieldManager=patchgate")))
      .WillOnce(Return(ok(obj)));
  EXPECT_TRUE(client_->updateStatus(res::kPatch, "ns", obj, {}).ok());
}

TEST_F(ClientImplTest, PatchContentTypes) {
  const std::string base = "/apis/apps/v1/namespaces/ns/deployments/web";
  struct Case {
    PatchType type;
    PatchOptions options;
    std::string query;
    std::string contentType;
  };
  std::vector<Case> cases = {
      {PatchType::kJson, {}, "?fieldManager=patchgate", "application/json-patch+json"},
      {PatchType::kMerge, {}, "?fieldManager=patchgate", "application/merge-patch+json"},
      {PatchType::kStrategicMerge, {}, "?fieldManager=patchgate",
       "application/strategic-merge-patch+json"},
      {PatchType::kApply, {.fieldManager = "pg", .force = true}, "?fieldManager=pg&force=true",
       "application/apply-patch+yaml"},
      // force only means something to server-side apply
      {PatchType::kMerge, {.force = true}, "?fieldManager=patchgate",
       "application/merge-patch+json"},
  };
  for (const auto& c : cases) {
    EXPECT_CALL(*transport_, send(AllOf(Req("PATCH", base + c.query),
                                        Field(&HttpRequest::contentType, c.contentType),
                                        Field(&HttpRequest::body, "{}"))))
        .WillOnce(Return(ok(Json::object())));
    EXPECT_TRUE(client_->patch(res::kDeployment, "ns", "web", c.type, "{}", c.options).ok());
  }
  EXPECT_CALL(*transport_,
              send(Req("PATCH", base + "/status?dryRun=All&fieldManager=patchgate")))
      .WillOnce(Return(ok(Json::object())));
  EXPECT_TRUE(client_
                  ->patch(res::kDeployment, "ns", "web", PatchType::kMerge, "{}",
                          {.dryRun = true, .subresource = "status"})
                  .ok());
}

TEST_F(ClientImplTest, DeleteSendsDeleteOptionsBody) {
  HttpRequest seen;
  EXPECT_CALL(*transport_, send(Req("DELETE", "/apis/batch/v1/namespaces/ns/jobs/j")))
      .WillOnce(Invoke([&](const HttpRequest& r) {
        seen = r;
        return ok({{"kind", "Status"}, {"status", "Success"}});
      }));
  auto r = client_->remove(res::kJob, "ns", "j",
                           {.propagationPolicy = "Background",
                            .preconditionUid = "uid-1",
                            .preconditionResourceVersion = "42",
                            .gracePeriodSeconds = 0,
                            .dryRun = true});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(seen.contentType, "application/json");
  Json body = Json::parse(seen.body);
  EXPECT_EQ(body, (Json{{"apiVersion", "v1"},
                        {"kind", "DeleteOptions"},
                        {"propagationPolicy", "Background"},
                        {"preconditions", {{"uid", "uid-1"}, {"resourceVersion", "42"}}},
                        {"gracePeriodSeconds", 0},
                        {"dryRun", {"All"}}}));

  EXPECT_CALL(*transport_, send(_)).WillOnce(Invoke([&](const HttpRequest& r) {
    seen = r;
    return ok(Json::object());
  }));
  ASSERT_TRUE(client_->remove(res::kJob, "ns", "j", {}).ok());
  EXPECT_EQ(Json::parse(seen.body), (Json{{"apiVersion", "v1"}, {"kind", "DeleteOptions"}}));
}

TEST_F(ClientImplTest, ClassifiesErrorResponses) {
  auto status = [](int code, const std::string& reason) {
    return HttpResponse{code, Json{{"kind", "Status"}, {"reason", reason}, {"message", "m"},
                                   {"code", code}}.dump()};
  };
  EXPECT_CALL(*transport_, send(_))
      .WillOnce(Return(status(404, "NotFound")))
      .WillOnce(Return(status(409, "Conflict")))
      .WillOnce(Return(status(409, "AlreadyExists")))
      .WillOnce(Return(status(410, "Expired")))
      .WillOnce(Return(HttpResponse{503, "no endpoints"}))
      .WillOnce(Return(transportError("connection refused")))
      .WillOnce(Return(HttpResponse{200, "not json"}))
      .WillOnce(Return(HttpResponse{204, ""}));
  EXPECT_TRUE(isNotFound(client_->get(res::kPod, "ns", "p").status()));
  EXPECT_TRUE(isConflict(client_->get(res::kPod, "ns", "p").status()));
  EXPECT_TRUE(isAlreadyExists(client_->get(res::kPod, "ns", "p").status()));
  EXPECT_TRUE(isGone(client_->get(res::kPod, "ns", "p").status()));
  auto unavailable = client_->get(res::kPod, "ns", "p").status();
  EXPECT_TRUE(isUnavailable(unavailable));
  EXPECT_EQ(unavailable.message(), "no endpoints");
  EXPECT_TRUE(isRetryable(client_->get(res::kPod, "ns", "p").status()));
  EXPECT_EQ(client_->get(res::kPod, "ns", "p").status().code(),
            absl::StatusCode::kInvalidArgument);
  auto empty = client_->get(res::kPod, "ns", "p");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*empty, Json::object());
}

TEST_F(ClientImplTest, RequestObserverSeesVerbAndCode) {
  std::vector<std::pair<std::string, int>> seen;
  client_->setRequestObserver(
      [&](const std::string& verb, int code, double) { seen.emplace_back(verb, code); });
  EXPECT_CALL(*transport_, send(_))
      .WillOnce(Return(ok(Json::object())))
      .WillOnce(Return(HttpResponse{404, ""}))
      .WillOnce(Return(transportError("down")));
  EXPECT_OK(client_->list(res::kPod, "ns", {}));
  EXPECT_FALSE(client_->get(res::kPod, "ns", "p").ok());
  EXPECT_FALSE(client_->remove(res::kPod, "ns", "p", {}).ok());
  EXPECT_EQ(seen, (std::vector<std::pair<std::string, int>>{
                      {"LIST", 200}, {"GET", 404}, {"DELETE", 0}}));
}

TEST_F(ClientImplTest, WatchBuildsTheQueryAndDecodesEvents) {
  HttpRequest seen;
  EXPECT_CALL(*transport_, stream(_, _, _))
      .WillOnce(Invoke([&](const HttpRequest& r,
                           const std::function<bool(std::string_view)>& onLine,
                           std::stop_token) {
        seen = r;
        for (const char* line :
             {R"({"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"11"}}})",
              R"({"type":"MODIFIED","object":{"metadata":{"name":"a","resourceVersion":"12"}}})",
              R"({"type":"DELETED","object":{"metadata":{"name":"a","resourceVersion":"13"}}})",
              R"({"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"20"}}})",
              R"({"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired"}})"}) {
          if (!onLine(line)) break;
        }
        return absl::OkStatus();
      }));
  std::vector<WatchEvent> events;
  auto s = client_->watch(res::kPod, "ns",
                          {.labelSelector = "app=web", .resourceVersion = "10",
                           .timeoutSeconds = 290},
                          [&](const WatchEvent& ev) {
                            events.push_back(ev);
                            return true;
                          },
                          std::stop_token());
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(seen.method, "GET");
  EXPECT_EQ(seen.pathAndQuery,
            "/api/v1/namespaces/ns/pods?watch=true&labelSelector=app%3Dweb&resourceVersion=10"
            "&allowWatchBookmarks=true&timeoutSeconds=290");
  EXPECT_GT(seen.timeout, std::chrono::seconds(290));  // the client idles longer than the server
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events[0].type, WatchEventType::kAdded);
  EXPECT_EQ(events[1].type, WatchEventType::kModified);
  EXPECT_EQ(events[2].type, WatchEventType::kDeleted);
  EXPECT_EQ(events[3].type, WatchEventType::kBookmark);
  EXPECT_EQ(events[4].type, WatchEventType::kError);
  EXPECT_EQ(jsonString(events[1].object, "/metadata/resourceVersion"), "12");
  EXPECT_EQ(jsonInt(events[4].object, "/code"), 410);
  EXPECT_STREQ(toString(WatchEventType::kBookmark), "BOOKMARK");
}

TEST_F(ClientImplTest, WatchStopsWhenTheConsumerSaysSoAndReportsErrors) {
  int lines = 0;
  EXPECT_CALL(*transport_, stream(_, _, _))
      .WillOnce(Invoke([&](const HttpRequest&,
                           const std::function<bool(std::string_view)>& onLine, std::stop_token) {
        while (onLine(R"({"type":"ADDED","object":{}})")) ++lines;
        return absl::OkStatus();
      }))
      .WillOnce(Invoke([&](const HttpRequest&,
                           const std::function<bool(std::string_view)>& onLine, std::stop_token) {
        onLine("garbage");
        return absl::OkStatus();
      }))
      .WillOnce(Return(apiError(410, "Expired", "too old resource version")));
  int n = 0;
  EXPECT_TRUE(client_->watch(res::kPod, "", {}, [&](const WatchEvent&) { return ++n < 3; }, {}).ok());
  EXPECT_EQ(n, 3);
  EXPECT_EQ(lines, 2);
  auto bad = client_->watch(res::kPod, "", {}, [](const WatchEvent&) { return true; }, {});
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(isGone(client_->watch(res::kPod, "", {}, [](const WatchEvent&) { return true; }, {})));
}

TEST_F(ClientImplTest, ListAllFollowsContinueTokens) {
  ::testing::InSequence seq;
  EXPECT_CALL(*transport_, send(Req("GET", "/api/v1/namespaces/ns/configmaps?labelSelector=a%3Db"
                                           "&limit=500&resourceVersion=0")))
      .WillOnce(Return(ok({{"kind", "ConfigMapList"},
                           {"metadata", {{"resourceVersion", "100"}, {"continue", "t1"}}},
                           {"items", {{{"n", 1}}, {{"n", 2}}}}})));
  // The continue token pins the snapshot: no resourceVersion on later pages.
  EXPECT_CALL(*transport_, send(Req("GET", "/api/v1/namespaces/ns/configmaps?labelSelector=a%3Db"
                                           "&limit=500&continue=t1")))
      .WillOnce(Return(ok({{"kind", "ConfigMapList"},
                           {"metadata", {{"resourceVersion", "101"}, {"continue", "t2"}}},
                           {"items", {{{"n", 3}}}}})));
  EXPECT_CALL(*transport_, send(Req("GET", "/api/v1/namespaces/ns/configmaps?labelSelector=a%3Db"
                                           "&limit=500&continue=t2")))
      .WillOnce(Return(ok({{"kind", "ConfigMapList"},
                           {"metadata", {{"resourceVersion", "102"}}},
                           {"items", {{{"n", 4}}}}})));
  auto all = listAll(*client_, res::kConfigMap, "ns",
                     {.labelSelector = "a=b", .resourceVersion = "0"});
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ((*all)["kind"], "ConfigMapList");
  EXPECT_EQ(jsonString(*all, "/metadata/resourceVersion"), "100");
  EXPECT_FALSE((*all)["metadata"].contains("continue"));
  ASSERT_EQ((*all)["items"].size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ((*all)["items"][i]["n"], i + 1);
}

TEST_F(ClientImplTest, ListAllStopsAtTheFirstError) {
  EXPECT_CALL(*transport_, send(_))
      .WillOnce(Return(ok({{"metadata", {{"continue", "t1"}}}, {"items", Json::array()}})))
      .WillOnce(Return(HttpResponse{410, R"({"kind":"Status","reason":"Expired","code":410})"}));
  EXPECT_TRUE(isGone(listAll(*client_, res::kConfigMap, "ns").status()));
}

TEST(UrlEncode, EscapesEverythingButUnreserved) {
  EXPECT_EQ(urlEncode("aZ09-_.~"), "aZ09-_.~");
  EXPECT_EQ(urlEncode("a b/c=d,e!"), "a%20b%2Fc%3Dd%2Ce%21");
  EXPECT_EQ(urlEncode("\xc3\xa9"), "%C3%A9");
}

}  // namespace
}  // namespace patchgate::kube
