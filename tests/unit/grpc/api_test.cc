// The gRPC API's decisions without a socket: who may call what (TokenReview,
// SubjectAccessReview, the test-pod rule), what each call returns, and how a
// Patch maps to the proto message.
#include "grpc/api.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "fakes/fake_client.h"
#include "fakes/forwarding_client.h"
#include "fakes/fake_clock.h"
#include "kube/errors.h"
#include "kube/resource.h"
#include "test_util.h"

namespace patchgate::grpcapi {
namespace {

using ::testing::HasSubstr;
namespace rs = kube::resources;

// FakeClient answering TokenReviews and SubjectAccessReviews as an API server
// with known tokens and RBAC would; every other call goes to the fake.
class ReviewingClient final : public testing::ForwardingClient {
 public:
  explicit ReviewingClient(testing::FakeClient& fake) : ForwardingClient(fake) {}

  std::map<std::string, std::string> users;  // token -> username
  std::set<std::string> allowed;             // "user verb resource ns"
  std::map<std::string, std::string> podOf;  // token -> the pod it is bound to
  // token -> the audience it was issued for (default patchgate); the API
  // server authenticates a token only for a requested audience it has.
  std::map<std::string, std::string> audienceOf;
  std::mutex mu;  // the stress test reviews from many threads
  Json lastAccessReview;  // under mu
  std::atomic<int> tokenReviews = 0;  // atomic: the stress test calls from many threads
  std::atomic<int> accessReviews = 0;

  absl::StatusOr<Json> create(const kube::ResourceType& rt, const std::string& ns, const Json& obj,
                              const kube::WriteOptions& o) override {
    Json out = obj;
    if (rt.resource == "tokenreviews") {
      ++tokenReviews;
      std::string token = obj["spec"]["token"].get<std::string>();
      auto it = users.find(token);
      auto aud = audienceOf.find(token);
      std::string audience = aud != audienceOf.end() ? aud->second : "patchgate";
      Json wanted = obj["spec"].value("audiences", Json::array());
      bool forUs = wanted.empty() || std::find(wanted.begin(), wanted.end(), audience) != wanted.end();
      out["status"] = {{"authenticated", it != users.end() && forUs}};
      if (it != users.end() && !forUs) out["status"]["error"] = "token audiences are invalid for the target audiences";
      if (it != users.end() && forUs) {
        out["status"]["user"] = {{"username", it->second}, {"groups", {"g"}},
                                 {"extra", {{"scopes.example.com", {"read"}}}}};
        out["status"]["audiences"] = wanted.empty() ? Json::array({"https://kubernetes.default.svc"}) : wanted;
      }
      if (auto pod = podOf.find(token); pod != podOf.end() && forUs)
        out["status"]["user"]["extra"] = {{"authentication.kubernetes.io/pod-name", {pod->second}},
                                          {"authentication.kubernetes.io/pod-uid", {"uid-" + pod->second}}};
      return out;
    }
    if (rt.resource == "subjectaccessreviews") {
      ++accessReviews;
      {
        std::lock_guard lock(mu);
        lastAccessReview = obj;
      }
      const Json& ra = obj["spec"]["resourceAttributes"];
      std::string key = obj["spec"]["user"].get<std::string>() + " " + ra["verb"].get<std::string>() + " " +
                        ra["resource"].get<std::string>() + " " + ra["namespace"].get<std::string>();
      out["status"] = {{"allowed", allowed.count(key) > 0}};
      return out;
    }
    return next_.create(rt, ns, obj, o);
  }
};

Json patchObject(const std::string& phase, const std::string& envNs = "pg-env-fix") {
  Json p = {
      {"apiVersion", "patchgate.dev/v1alpha1"},
      {"kind", "Patch"},
      {"metadata", {{"namespace", "shop"}, {"name", "fix"}, {"uid", "u1"}, {"resourceVersion", "1"}}},
      {"spec",
       {{"ticket", "INC-1"},
        {"rootCause", "nil map"},
        {"target", {{"kind", "Deployment"}, {"name", "checkout"}}}}},
      {"status",
       {{"phase", phase},
        {"message", "testing"},
        {"environment", {{"namespace", envNs}}},
        {"conditions", {{{"type", "Ready"}, {"status", "False"}, {"reason", phase}, {"message", "m"}}}}}}};
  return p;
}

class ApiTest : public ::testing::Test {
 protected:
  ApiTest() : fake_(clock_), client_(fake_), auth_(client_, clock_), api_(store_, client_, auth_, clock_) {
    client_.users = {{"alice-token", "alice"},
                     {"nobody-token", "nobody"},
                     {"tester-token", "system:serviceaccount:pg-env-fix:default"},
                     {"unbound-token", "system:serviceaccount:pg-env-fix:default"},
                     {"app-token", "system:serviceaccount:pg-env-fix:default"},
                     {"old-tester-token", "system:serviceaccount:pg-env-fix:default"},
                     {"lookalike-token", "system:serviceaccount:pg-env-fix:default"},
                     {"other-sa-token", "system:serviceaccount:elsewhere:default"}};
    // The test Job's pod, a copy under test, and a test pod of an older Patch.
    client_.podOf = {{"tester-token", "pgt-smoke-1-x7k2p"},
                     {"app-token", "checkout-5f9c-abcde"},
                     {"old-tester-token", "pgt-smoke-1-old"},
                     {"lookalike-token", "checkout-5f9c-fghij"}};
    seedPod("pgt-smoke-1-x7k2p", {{"patchgate.dev/test", "smoke"}, {"patchgate.dev/patch-uid", "u1"}});
    seedPod("checkout-5f9c-abcde", {{"app", "checkout"}, {"patchgate.dev/patch-uid", "u1"}});
    seedPod("pgt-smoke-1-old", {{"patchgate.dev/test", "smoke"}, {"patchgate.dev/patch-uid", "u0"}});
    // A copy under test whose template a change labelled like a test pod.
    seedPod("checkout-5f9c-fghij", {{"patchgate.dev/test", "smoke"}, {"patchgate.dev/patch-uid", "u1"}},
            "ReplicaSet");
    client_.allowed = {"alice get patches shop", "alice watch patches shop",
                       "alice list controllerrevisions shop"};
    Json p = fake_.seed(rs::kPatch, patchObject("Testing"));
    store_.upsert(p);
  }

  // A pod of the environment, made by a Job (test pods) or a ReplicaSet.
  void seedPod(const std::string& name, Json labels, const std::string& ownerKind = "Job") {
    fake_.seed(rs::kPod, {{"apiVersion", "v1"},
                          {"kind", "Pod"},
                          {"metadata", {{"namespace", "pg-env-fix"}, {"name", name}, {"uid", "uid-" + name},
                                        {"labels", labels},
                                        {"ownerReferences", {{{"kind", ownerKind}, {"name", "owner"},
                                                              {"controller", true}}}}}}});
  }

  void setPhase(const std::string& phase) {
    Json p = fake_.object(rs::kPatch, "shop", "fix");
    p["status"]["phase"] = phase;
    store_.upsert(fake_.seed(rs::kPatch, p));
    api_.notify();
  }

  pb::GetPatchRequest req(const std::string& ns = "shop", const std::string& name = "fix") {
    pb::GetPatchRequest r;
    r.set_namespace_(ns);
    r.set_name(name);
    return r;
  }

  pb::ReportTestResultsRequest report(const std::string& envNs = "pg-env-fix") {
    pb::ReportTestResultsRequest r;
    r.set_namespace_(envNs);
    r.set_patch("fix");
    r.set_test("smoke");
    auto* s = r.add_suites();
    s->set_name("http");
    auto* c = s->add_cases();
    c->set_name("GET /");
    c->set_passed(true);
    c->set_duration_seconds(0.5);
    c->set_output(std::string(5000, 'x'));
    auto* c2 = s->add_cases();
    c2->set_name("POST /pay");
    c2->set_passed(false);
    return r;
  }

  testing::FakeClock clock_;
  testing::FakeClient fake_;
  ReviewingClient client_;
  runtime::Store store_;
  Authenticator auth_;
  PatchgateApi api_;
};

TEST(ParseBearer, AcceptsBearerAnyCaseAndRejectsTheRest) {
  EXPECT_EQ(*parseBearer("Bearer abc"), "abc");
  EXPECT_EQ(*parseBearer("bearer  abc "), "abc");
  EXPECT_EQ(parseBearer("").status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(parseBearer("Basic abc").status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(parseBearer("Bearer ").status().code(), absl::StatusCode::kUnauthenticated);
}

TEST(ServiceAccountNamespace, OnlyForServiceAccounts) {
  EXPECT_EQ(serviceAccountNamespace("system:serviceaccount:env:default"), "env");
  EXPECT_EQ(serviceAccountNamespace("alice"), "");
  EXPECT_EQ(serviceAccountNamespace("system:serviceaccount:env"), "");
}

TEST(ToProto, MapsFieldsConditionsAndTheWholeStatus) {
  pb::Patch p = toProto(patchObject("Testing"));
  EXPECT_EQ(p.namespace_(), "shop");
  EXPECT_EQ(p.name(), "fix");
  EXPECT_EQ(p.uid(), "u1");
  EXPECT_EQ(p.phase(), "Testing");
  EXPECT_EQ(p.message(), "testing");
  EXPECT_EQ(p.ticket(), "INC-1");
  EXPECT_EQ(p.root_cause(), "nil map");
  EXPECT_EQ(p.target_kind(), "Deployment");
  EXPECT_EQ(p.target_name(), "checkout");
  ASSERT_EQ(p.conditions_size(), 1);
  EXPECT_EQ(p.conditions(0).type(), "Ready");
  EXPECT_EQ(p.conditions(0).reason(), "Testing");
  EXPECT_EQ(Json::parse(p.status_json())["environment"]["namespace"], "pg-env-fix");
}

TEST(IsTerminalPhase, OnlyTheThreeEnds) {
  EXPECT_TRUE(isTerminalPhase("Succeeded"));
  EXPECT_TRUE(isTerminalPhase("Failed"));
  EXPECT_TRUE(isTerminalPhase("RolledBack"));
  EXPECT_FALSE(isTerminalPhase("Testing"));
  EXPECT_FALSE(isTerminalPhase(""));
}

TEST_F(ApiTest, NoTokenIsUnauthenticatedWithoutAskingTheServer) {
  auto r = api_.getPatch("", req());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(client_.tokenReviews.load(), 0);
}

TEST_F(ApiTest, UnknownTokenIsUnauthenticated) {
  EXPECT_EQ(api_.getPatch("Bearer forged", req()).status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(api_.getChangeRecord("Bearer forged", req()).status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(api_.reportTestResults("Bearer forged", report()).status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST_F(ApiTest, TokenWithoutRightsIsPermissionDenied) {
  auto r = api_.getPatch("Bearer nobody-token", req());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("get patches.patchgate.dev"));
}

TEST_F(ApiTest, RightsAreCheckedInTheRequestedNamespace) {
  EXPECT_EQ(api_.getPatch("Bearer alice-token", req("other")).status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(ApiTest, GetPatchReturnsTheCachedPatch) {
  auto r = api_.getPatch("Bearer alice-token", req());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->phase(), "Testing");
  EXPECT_EQ(r->ticket(), "INC-1");
}

TEST_F(ApiTest, MissingPatchIsNotFoundOnlyAfterAuthorization) {
  EXPECT_EQ(api_.getPatch("Bearer alice-token", req("shop", "nope")).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(api_.getPatch("Bearer nobody-token", req("shop", "nope")).status().code(),
            absl::StatusCode::kPermissionDenied);
}

// A token for the API server (a pipeline's kubeconfig token, a pod's
// automounted one) is not a patchgate token: refused, and the review asked
// for patchgate's audience.
TEST_F(ApiTest, ATokenForAnotherAudienceIsRefused) {
  client_.users["api-server-token"] = "alice";
  client_.audienceOf["api-server-token"] = "https://kubernetes.default.svc";
  auto r = api_.getPatch("Bearer api-server-token", req());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("audience"));
  EXPECT_EQ(client_.accessReviews.load(), 0);
}

// What the TokenReview says about the user (extra included) is what the
// SubjectAccessReview asks about.
TEST_F(ApiTest, AccessReviewsCarryTheUsersExtra) {
  ASSERT_TRUE(api_.getPatch("Bearer alice-token", req()).ok());
  std::lock_guard lock(client_.mu);
  EXPECT_EQ(client_.lastAccessReview["spec"]["extra"]["scopes.example.com"], Json({"read"}))
      << client_.lastAccessReview.dump();
  EXPECT_EQ(client_.lastAccessReview["spec"]["groups"], Json({"g"}));
}

TEST_F(ApiTest, TokenReviewsAreCachedForAMinute) {
  ASSERT_TRUE(api_.getPatch("Bearer alice-token", req()).ok());
  ASSERT_TRUE(api_.getPatch("Bearer alice-token", req()).ok());
  EXPECT_EQ(client_.tokenReviews.load(), 1);
  EXPECT_EQ(client_.accessReviews.load(), 2);  // decisions are not cached
  clock_.advance(std::chrono::seconds(61));
  ASSERT_TRUE(api_.getPatch("Bearer alice-token", req()).ok());
  EXPECT_EQ(client_.tokenReviews.load(), 2);
}

TEST_F(ApiTest, FailedTokenReviewsAreNotCached) {
  EXPECT_FALSE(api_.getPatch("Bearer late-token", req()).ok());
  client_.users["late-token"] = "alice";
  EXPECT_TRUE(api_.getPatch("Bearer late-token", req()).ok());
}

TEST_F(ApiTest, WatchNeedsTheWatchVerb) {
  client_.allowed.erase("alice watch patches shop");
  pb::WatchPatchRequest w;
  w.set_namespace_("shop");
  w.set_name("fix");
  auto s = api_.watchPatch(
      "Bearer alice-token", w, [](const pb::PatchEvent&) { return true; }, [] { return false; });
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(ApiTest, WatchStreamsCurrentThenChangesUntilTerminal) {
  pb::WatchPatchRequest w;
  w.set_namespace_("shop");
  w.set_name("fix");
  std::vector<std::pair<int, std::string>> events;
  std::mutex mu;
  std::condition_variable sent;
  std::thread t([&] {
    {
      // Change the Patch only once the watch has sent its first event.
      std::unique_lock lock(mu);
      sent.wait(lock, [&] { return !events.empty(); });
    }
    setPhase("AwaitingApproval");
    setPhase("Succeeded");
  });
  auto s = api_.watchPatch(
      "Bearer alice-token", w,
      [&](const pb::PatchEvent& ev) {
        {
          std::lock_guard lock(mu);
          events.emplace_back(ev.type(), ev.patch().phase());
        }
        sent.notify_all();
        return true;
      },
      [] { return false; });
  t.join();
  EXPECT_TRUE(s.ok()) << s;
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events.front(),
            std::make_pair(static_cast<int>(pb::PatchEvent::CURRENT), std::string("Testing")));
  EXPECT_EQ(events.back(),
            std::make_pair(static_cast<int>(pb::PatchEvent::MODIFIED), std::string("Succeeded")));
}

TEST_F(ApiTest, WatchOfATerminalPatchSendsItOnceAndEnds) {
  setPhase("Failed");
  pb::WatchPatchRequest w;
  w.set_namespace_("shop");
  w.set_name("fix");
  int n = 0;
  auto s = api_.watchPatch(
      "Bearer alice-token", w, [&](const pb::PatchEvent&) { return ++n, true; }, [] { return false; });
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(n, 1);
}

TEST_F(ApiTest, WatchEndsWithDeletedWhenThePatchGoes) {
  pb::WatchPatchRequest w;
  w.set_namespace_("shop");
  w.set_name("fix");
  std::vector<int> types;
  auto s = api_.watchPatch(
      "Bearer alice-token", w,
      [&](const pb::PatchEvent& ev) {
        types.push_back(ev.type());
        if (types.size() == 1) {
          store_.erase("shop/fix");
          api_.notify();
        }
        return true;
      },
      [] { return false; });
  EXPECT_TRUE(s.ok());
  EXPECT_THAT(types, ::testing::ElementsAre(pb::PatchEvent::CURRENT, pb::PatchEvent::DELETED));
}

// The service under load, as the gRPC server drives it from its threads:
// watchers wait for changes, readers get the Patch, an informer thread
// updates the cache and notifies, and the API is shut down while all of them
// run. Every watch ends (OK at the terminal phase, or UNAVAILABLE at
// shutdown) and nothing deadlocks. ThreadSanitizer checks our service code
// here (`ctest -L sanitize`); gRPC's transport itself is a Debian build TSan
// cannot see into.
TEST_F(ApiTest, StressWatchersReadersAndShutdown) {
  std::atomic<int> ended{0}, events{0}, reads{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 6; ++i)
    threads.emplace_back([&] {
      pb::WatchPatchRequest w;
      w.set_namespace_("shop");
      w.set_name("fix");
      auto s = api_.watchPatch(
          "Bearer alice-token", w, [&](const pb::PatchEvent&) { return ++events, true; }, [] { return false; });
      EXPECT_TRUE(s.ok() || s.code() == absl::StatusCode::kUnavailable) << s;
      ++ended;
    });
  for (int i = 0; i < 3; ++i)
    threads.emplace_back([&] {
      pb::GetPatchRequest req;
      req.set_namespace_("shop");
      req.set_name("fix");
      for (int n = 0; n < 300; ++n)
        if (api_.getPatch("Bearer alice-token", req).ok()) ++reads;
    });
  std::thread informer([&] {
    // Change the Patch only once every watcher has sent its first event, and
    // shut down only after at least one change reached a watcher.
    (void)patchgate::testing::eventually([&] { return events.load() >= 6; }, std::chrono::seconds(10));
    bool shut = false;
    for (int n = 0; n < 500 && !shut; ++n) {
      setPhase(n % 2 ? "Testing" : "AwaitingApproval");
      if (n >= 250 && events.load() > 6) shut = (api_.shutdown(), true);
    }
    if (!shut) api_.shutdown();
  });
  informer.join();
  for (auto& t : threads) t.join();
  EXPECT_EQ(ended.load(), 6);
  EXPECT_GT(events.load(), 6);
  EXPECT_EQ(reads.load(), 900);
}

TEST_F(ApiTest, WatchEndsOnShutdown) {
  pb::WatchPatchRequest w;
  w.set_namespace_("shop");
  w.set_name("fix");
  api_.shutdown();
  auto s = api_.watchPatch(
      "Bearer alice-token", w, [](const pb::PatchEvent&) { return true; }, [] { return false; });
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
}

TEST_F(ApiTest, ListRevisionsNeedsListOnControllerRevisionsAndSortsByNumber) {
  for (int n : {2, 1}) {
    fake_.seed(
        rs::kControllerRevision,
        {{"apiVersion", "apps/v1"},
         {"kind", "ControllerRevision"},
         {"metadata",
          {{"namespace", "shop"},
           {"name", "checkout-" + std::to_string(n)},
           {"labels", {{"patchgate.dev/target", "Deployment.checkout"}, {"patchgate.dev/patch", "fix"}}},
           {"annotations", {{"patchgate.dev/ticket", "INC-1"}}}}},
         {"revision", n}});
  }
  pb::ListRevisionsRequest lr;
  lr.set_namespace_("shop");
  lr.set_kind("Deployment");
  lr.set_name("checkout");
  auto r = api_.listRevisions("Bearer alice-token", lr);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->revisions_size(), 2);
  EXPECT_EQ(r->revisions(0).revision(), 1);
  EXPECT_EQ(r->revisions(1).name(), "checkout-2");
  EXPECT_EQ(r->revisions(1).patch(), "fix");
  EXPECT_EQ(r->revisions(1).ticket(), "INC-1");
  EXPECT_EQ(api_.listRevisions("Bearer nobody-token", lr).status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(ApiTest, ChangeRecordIsMarkdownWithTheTicket) {
  auto r = api_.getChangeRecord("Bearer alice-token", req());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->markdown(), HasSubstr("INC-1"));
  EXPECT_THAT(r->markdown(), HasSubstr("nil map"));
}

TEST_F(ApiTest, TestPodOfTheEnvironmentReportsIntoStatus) {
  auto r = api_.reportTestResults("Bearer tester-token", report());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->suites(), 1);
  EXPECT_EQ(r->cases(), 2);
  EXPECT_EQ(r->failed(), 1);
  auto writes = fake_.calls("updateStatus", "patches");
  ASSERT_EQ(writes.size(), 1u);
  Json stored = fake_.object(rs::kPatch, "shop", "fix");
  const Json& suites = stored["status"]["testReports"]["smoke"];
  ASSERT_EQ(suites.size(), 1u);
  EXPECT_EQ(suites[0]["name"], "http");
  EXPECT_EQ(suites[0]["cases"][0]["passed"], true);
  EXPECT_EQ(suites[0]["cases"][0]["durationSeconds"], 0.5);
  EXPECT_LT(suites[0]["cases"][0]["output"].get<std::string>().size(), 4200u);  // cut
  EXPECT_EQ(suites[0]["cases"][1]["passed"], false);
  EXPECT_EQ(stored["status"]["phase"], "Testing");  // the rest of status untouched

  // ...and the change record lists them.
  store_.upsert(stored);
  auto record = api_.getChangeRecord("Bearer alice-token", req());
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_THAT(record->markdown(), HasSubstr("| smoke | http | POST /pay | **failed** | 0.00s |"));
  EXPECT_THAT(record->markdown(), HasSubstr("| smoke | http | GET / | passed | 0.50s |"));
}

TEST(SuitesToJson, OutputsAreCutAtACharacterBoundary) {
  // 4095 bytes, then a 2-byte character across the 4 KiB cut (found while
  // writing the gRPC fuzz target: the half character made dump() throw).
  pb::ReportTestResultsRequest req;
  req.add_suites()->add_cases()->set_output(std::string(4095, 'x') + "\xc3\xa9 and more");
  Json suites = suitesToJson(req);
  const std::string out = suites[0]["cases"][0]["output"].get<std::string>();
  EXPECT_EQ(out, std::string(4095, 'x') + "\n[truncated]");
  EXPECT_NO_THROW((void)suites.dump());
}

TEST_F(ApiTest, ReportRetriesOnConflict) {
  fake_.failNext("updateStatus", kube::apiError(409, "Conflict", "the object has been modified"), "patches");
  auto r = api_.reportTestResults("Bearer tester-token", report());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(fake_.calls("updateStatus", "patches").size(), 2u);
  EXPECT_TRUE(fake_.object(rs::kPatch, "shop", "fix")["status"]["testReports"].contains("smoke"));
}

TEST_F(ApiTest, ReportFromAnotherNamespaceIsDenied) {
  auto r = api_.reportTestResults("Bearer other-sa-token", report("elsewhere"));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(fake_.calls("updateStatus").empty());
}

TEST_F(ApiTest, ReportClaimingAnotherNamespaceIsDenied) {
  // A service account of "elsewhere" claims the environment namespace.
  auto r = api_.reportTestResults("Bearer other-sa-token", report("pg-env-fix"));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(ApiTest, ReportByAPersonIsDenied) {
  auto r = api_.reportTestResults("Bearer alice-token", report());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(ApiTest, ReportNeedsTheTokenOfATestPodOfThisPatch) {
  for (const char* token : {"unbound-token", "app-token", "old-tester-token", "lookalike-token"}) {
    auto r = api_.reportTestResults(std::string("Bearer ") + token, report());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied) << token;
  }
  EXPECT_THAT(std::string(api_.reportTestResults("Bearer unbound-token", report()).status().message()),
              HasSubstr("bound to no pod"));
  EXPECT_THAT(std::string(api_.reportTestResults("Bearer app-token", report()).status().message()),
              HasSubstr("not a patchgate test pod"));
  // A test pod reports for its own test only.
  auto other = report();
  other.set_test("load");
  EXPECT_EQ(api_.reportTestResults("Bearer tester-token", other).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(fake_.calls("updateStatus").empty());
  // A pod that is gone (or replaced under the same name) does not count.
  fake_.erase(rs::kPod, "pg-env-fix", "pgt-smoke-1-x7k2p");
  seedPod("pgt-smoke-1-x7k2p", {{"patchgate.dev/test", "smoke"}, {"patchgate.dev/patch-uid", "u1"}});
  Json replaced = fake_.object(rs::kPod, "pg-env-fix", "pgt-smoke-1-x7k2p");
  replaced["metadata"]["uid"] = "another-uid";
  fake_.seed(rs::kPod, replaced);
  EXPECT_EQ(api_.reportTestResults("Bearer tester-token", report()).status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(ApiTest, ReportForAnUnknownPatchIsNotFound) {
  auto rq = report();
  rq.set_patch("nope");
  EXPECT_EQ(api_.reportTestResults("Bearer tester-token", rq).status().code(), absl::StatusCode::kNotFound);
}

TEST(CheckReporter, NeedsTheSameEnvironment) {
  UserInfo sa{"system:serviceaccount:env-a:default", "", {}};
  Json pod = {{"metadata",
               {{"name", "t"},
                {"labels", {{"patchgate.dev/test", "smoke"}, {"patchgate.dev/patch-uid", "u1"}}},
                {"ownerReferences", {{{"kind", "Job"}, {"name", "pgt-smoke-1"}, {"controller", true}}}}}}};
  EXPECT_TRUE(checkReporter(sa, "env-a", patchObject("Testing", "env-a"), pod).ok());
  EXPECT_EQ(checkReporter(sa, "env-a", patchObject("Testing", "env-b"), pod).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(checkReporter(sa, "env-a", patchObject("Testing", ""), pod).code(),
            absl::StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace patchgate::grpcapi
