// patchctl's commands against FakeClient: the API calls they make, what they
// print, and their exit codes.
#include "cli/patchctl_commands.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>

#include "fakes/fake_client.h"
#include "fakes/fake_clock.h"
#include "fakes/forwarding_client.h"
#include "kube/errors.h"

namespace patchgate::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
using kube::resources::kControllerRevision;
using kube::resources::kPatch;
using kube::resources::kPatchApproval;

class CommandsTest : public ::testing::Test {
 protected:
  CommandsTest() : env_{client_, "shop", "https://api:6443", out_, err_, clock_, random_, nullptr} {
    env_.whoAmI = [this]() -> absl::StatusOr<std::string> { return user_; };
  }

  int run(std::vector<std::string> args) {
    auto inv = parseArgs(args);
    EXPECT_TRUE(inv.ok()) << inv.status();
    if (!inv.ok()) return kExitUsage;
    return cli::run(*inv, env_);
  }

  Json seedPatch(const std::string& name, const std::string& phase, Json spec = Json::object()) {
    Json p = {{"apiVersion", "patchgate.dev/v1alpha1"},
              {"kind", "Patch"},
              {"metadata", {{"name", name}, {"namespace", "shop"}}},
              {"spec",
               {{"target", {{"kind", "Deployment"}, {"name", "checkout"}}},
                {"change", {{"image", "app=x:2"}}},
                {"ticket", "INC-1"},
                {"rootCause", "why"}}},
              {"status", {{"phase", phase}, {"message", "msg of " + phase}}}};
    p["spec"].update(spec);
    return client_.seed(kPatch, p);
  }

  void seedRevision(int n, const std::string& patch) {
    client_.seed(kControllerRevision,
                 {{"apiVersion", "apps/v1"},
                  {"kind", "ControllerRevision"},
                  {"metadata",
                   {{"name", "checkout-pg-" + std::to_string(n)},
                    {"namespace", "shop"},
                    {"labels", {{"patchgate.dev/target", "Deployment.checkout"}}},
                    {"annotations", {{"patchgate.dev/patch-name", patch}, {"patchgate.dev/ticket", "INC-" + patch}}}}},
                  {"revision", n},
                  {"data", Json::object()}});
  }

  std::string writeFile(const std::string& text) {
    auto path = std::filesystem::temp_directory_path() /
                ("patchctl-test-" + std::to_string(::getpid()) + "-" + std::to_string(files_++) + ".yaml");
    std::ofstream(path) << text;
    paths_.push_back(path);
    return path.string();
  }
  ~CommandsTest() override {
    for (const auto& p : paths_) std::filesystem::remove(p);
  }

  testing::FakeClock clock_{*parseTime("2026-05-01T10:00:00Z")};
  testing::FakeClient client_{clock_};
  testing::FixedRandom random_{0.1};
  std::ostringstream out_, err_;
  std::string user_ = "bob";
  Env env_;
  int files_ = 0;
  std::vector<std::filesystem::path> paths_;
};

TEST_F(CommandsTest, GetMissingPatchSaysNotFound) {
  EXPECT_EQ(run({"get", "nope"}), kExitFailure);
  EXPECT_EQ(err_.str(), "error: patch shop/nope not found\n");
}

TEST_F(CommandsTest, GetListsTheNamespace) {
  seedPatch("fix", "Succeeded");
  EXPECT_EQ(run({"get"}), kExitOk);
  EXPECT_THAT(out_.str(), StartsWith("NAME   TARGET                PHASE       TICKET   AGE\n"
                                     "fix    Deployment/checkout   Succeeded   INC-1"));
  out_.str("");
  EXPECT_EQ(run({"get", "fix", "-o", "json"}), kExitOk);
  EXPECT_EQ(Json::parse(out_.str())["status"]["phase"], "Succeeded");
  out_.str("");
  EXPECT_EQ(run({"get", "-o", "name"}), kExitOk);
  EXPECT_EQ(out_.str(), "patch.patchgate.dev/fix\n");
}

TEST_F(CommandsTest, GetEmptyNamespaceSaysSo) {
  EXPECT_EQ(run({"get"}), kExitOk);
  EXPECT_EQ(err_.str(), "No resources found in shop namespace.\n");
}

TEST_F(CommandsTest, ApproveCreatesAPatchApprovalInYourName) {
  Json p = seedPatch("fix", "AwaitingApproval",
                     {{"author", "alice"}, {"promotion", {{"approval", {{"required", true}}}}}});
  EXPECT_EQ(run({"approve", "fix", "--comment", "lgtm"}), kExitOk) << err_.str();
  auto approvals = client_.objects(kPatchApproval, "shop");
  ASSERT_EQ(approvals.size(), 1u);
  const Json& spec = approvals[0]["spec"];
  EXPECT_EQ(spec["patch"], "fix");
  EXPECT_EQ(spec["patchUID"], p["metadata"]["uid"]);
  EXPECT_EQ(spec["patchGeneration"], p["metadata"]["generation"]);
  EXPECT_EQ(spec["approver"], "bob");
  EXPECT_EQ(spec["decision"], "approve");
  EXPECT_EQ(spec["comment"], "lgtm");
  EXPECT_THAT(jsonString(approvals[0], "/metadata/name"), StartsWith("fix-approve-"));
  EXPECT_THAT(out_.str(), HasSubstr("bob approves patch fix"));
}

TEST_F(CommandsTest, RejectRecordsTheDecision) {
  seedPatch("fix", "AwaitingApproval", {{"author", "alice"}});
  EXPECT_EQ(run({"reject", "fix", "--comment", "no"}), kExitOk) << err_.str();
  auto approvals = client_.objects(kPatchApproval, "shop");
  ASSERT_EQ(approvals.size(), 1u);
  EXPECT_EQ(approvals[0]["spec"]["decision"], "reject");
}

TEST_F(CommandsTest, TheAuthorCannotApprove) {
  seedPatch("fix", "AwaitingApproval", {{"author", "bob"}});
  EXPECT_EQ(run({"approve", "fix"}), kExitFailure);
  EXPECT_THAT(err_.str(), HasSubstr("the author cannot approve"));
  EXPECT_TRUE(client_.objects(kPatchApproval, "shop").empty());
}

TEST_F(CommandsTest, ApprovingAnEndedPatchIsRefused) {
  seedPatch("fix", "Succeeded");
  EXPECT_EQ(run({"approve", "fix"}), kExitFailure);
  EXPECT_THAT(err_.str(), HasSubstr("has already ended (Succeeded)"));
}

TEST_F(CommandsTest, ApproveWithoutIdentityFails) {
  seedPatch("fix", "AwaitingApproval");
  env_.whoAmI = [] { return absl::StatusOr<std::string>(kube::apiError(403, "Forbidden", "no reviews for you")); };
  EXPECT_EQ(run({"approve", "fix"}), kExitFailure);
  EXPECT_THAT(err_.str(), HasSubstr("cannot tell who you are: forbidden: no reviews for you"));
}

TEST_F(CommandsTest, RollbackDefaultsToTheNewestRevision) {
  seedRevision(1, "first");
  seedRevision(2, "second");
  EXPECT_EQ(run({"rollback", "deploy/checkout", "--ticket", "INC-9", "--reason", "second broke it"}), kExitOk)
      << err_.str();
  auto patches = client_.objects(kPatch, "shop");
  ASSERT_EQ(patches.size(), 1u);
  const Json& p = patches[0];
  EXPECT_THAT(jsonString(p, "/metadata/name"), StartsWith("rollback-checkout-"));
  EXPECT_EQ(jsonInt(p, "/spec/change/rollbackTo/revision"), 2);
  EXPECT_EQ(jsonString(p, "/spec/target/kind"), "Deployment");
  EXPECT_EQ(jsonString(p, "/spec/ticket"), "INC-9");
  EXPECT_EQ(jsonString(p, "/spec/rootCause"), "second broke it");
  EXPECT_THAT(jsonString(p, "/spec/description"), HasSubstr("before patch second was promoted"));
  EXPECT_THAT(out_.str(), HasSubstr("back to revision 2 (checkout-pg-2)"));
}

TEST_F(CommandsTest, RollbackToAnUnknownRevisionListsTheRecordedOnes) {
  seedRevision(1, "first");
  seedRevision(3, "third");
  EXPECT_EQ(run({"rollback", "deploy/checkout", "--to-revision", "2", "--ticket", "T", "--reason", "R"}),
            kExitFailure);
  EXPECT_THAT(err_.str(), HasSubstr("revision 2 of Deployment/checkout not found; recorded: 1, 3"));
  EXPECT_TRUE(client_.objects(kPatch, "shop").empty());
}

TEST_F(CommandsTest, RollbackWithoutRevisions) {
  EXPECT_EQ(run({"rollback", "deploy/checkout", "--ticket", "T", "--reason", "R"}), kExitFailure);
  EXPECT_THAT(err_.str(), HasSubstr("no revisions recorded for Deployment/checkout"));
}

TEST_F(CommandsTest, RollbackPatchNameFitsADnsLabel) {
  Json p = rollbackPatch("shop", "Deployment", std::string(80, 'a'), 1, "T", "R", "xyz12", Json());
  std::string name = jsonString(p, "/metadata/name");
  EXPECT_LE(name.size(), 63u);
  EXPECT_THAT(name, StartsWith("rollback-aaa"));
  EXPECT_THAT(name, ::testing::EndsWith("-xyz12"));
}

TEST_F(CommandsTest, HistoryIsSortedByRevision) {
  seedRevision(2, "second");
  seedRevision(1, "first");
  seedPatch("second", "Succeeded");
  EXPECT_EQ(run({"history", "deployment/checkout"}), kExitOk);
  std::string out = out_.str();
  EXPECT_LT(out.find("checkout-pg-1"), out.find("checkout-pg-2"));
  EXPECT_THAT(out, HasSubstr("<deleted>"));  // patch "first" is gone
  EXPECT_THAT(out, HasSubstr("Succeeded"));
  auto lists = client_.calls("list", "controllerrevisions");
  ASSERT_FALSE(lists.empty());
  EXPECT_EQ(lists[0].labelSelector, "patchgate.dev/target=Deployment.checkout");
}

TEST_F(CommandsTest, CreateValidatesLocallyAndCreatesNothingWhenInvalid) {
  std::string file = writeFile(R"(apiVersion: patchgate.dev/v1alpha1
kind: Patch
metadata: {name: bad}
spec:
  target: {kind: Deployment, name: checkout}
  change: {image: "app=x:2"}
  rootCause: why
  tests: [{name: smoke, image: t, command: ["true"]}]
)");
  EXPECT_EQ(run({"create", "-f", file}), kExitFailure);
  EXPECT_THAT(err_.str(), HasSubstr("patch bad is invalid: spec.ticket"));
  EXPECT_TRUE(client_.calls("create").empty());
}

TEST_F(CommandsTest, CreateFillsTheAuthorWhenApprovalIsRequired) {
  user_ = "alice";
  std::string file = writeFile(R"(apiVersion: patchgate.dev/v1alpha1
kind: Patch
metadata: {name: fix}
spec:
  target: {kind: Deployment, name: checkout}
  change: {image: "app=x:2"}
  ticket: INC-1
  rootCause: why
  promotion: {approval: {required: true}}
  tests: [{name: smoke, image: t, command: ["true"]}]
)");
  EXPECT_EQ(run({"create", "-f", file}), kExitOk) << err_.str();
  EXPECT_EQ(out_.str(), "patch shop/fix created\n");
  Json stored = client_.object(kPatch, "shop", "fix");
  EXPECT_EQ(jsonString(stored, "/spec/author"), "alice");
  EXPECT_THAT(err_.str(), HasSubstr("spec.author set to alice"));
}

// Every Patch names its author (admission requires it), with the groups
// the author's rights are checked with.
TEST_F(CommandsTest, CreateNamesYouTheAuthorWithYourGroups) {
  user_ = "bob";
  env_.whoAmIGroups = [] { return absl::StatusOr<std::vector<std::string>>({"sre", "system:authenticated"}); };
  std::string file = writeFile(R"(apiVersion: patchgate.dev/v1alpha1
kind: Patch
metadata: {name: fix}
spec:
  target: {kind: Deployment, name: checkout}
  change: {image: "app=x:2"}
  ticket: INC-1
  rootCause: why
  tests: [{name: smoke, image: t, command: ["true"]}]
)");
  EXPECT_EQ(run({"create", "-f", file}), kExitOk) << err_.str();
  Json stored = client_.object(kPatch, "shop", "fix");
  EXPECT_EQ(jsonString(stored, "/spec/author"), "bob");
  EXPECT_EQ(stored["spec"]["authorGroups"], Json({"sre", "system:authenticated"}));
}

TEST_F(CommandsTest, CreateRefusesANamespaceMismatch) {
  std::string file = writeFile("apiVersion: patchgate.dev/v1alpha1\nkind: Patch\nmetadata: {name: a, namespace: other}\n"
                               "spec: {target: {kind: Deployment, name: c}, change: {image: x}, ticket: T, rootCause: R,"
                               " tests: [{name: s, image: t}]}\n");
  EXPECT_EQ(run({"create", "-f", file, "-n", "shop"}), kExitFailure);
  EXPECT_THAT(err_.str(), HasSubstr("does not match the namespace given with -n"));
}

TEST_F(CommandsTest, CreateRejectsOtherKinds) {
  std::string file = writeFile("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n");
  EXPECT_EQ(run({"create", "-f", file}), kExitFailure);
  EXPECT_THAT(err_.str(), HasSubstr("expected kind Patch"));
}

TEST_F(CommandsTest, DiffPrintsTheDryRunDiff) {
  Json p = seedPatch("fix", "Validated");
  p["status"]["diff"] = "/a: 1 -> 2\n";
  client_.seed(kPatch, p);
  EXPECT_EQ(run({"diff", "fix"}), kExitOk);
  EXPECT_EQ(out_.str(), "/a: 1 -> 2\n");
  seedPatch("new", "Pending");
  EXPECT_EQ(run({"diff", "new"}), kExitFailure);
  EXPECT_THAT(err_.str(), HasSubstr("has no diff (Pending: msg of Pending)"));
}

TEST_F(CommandsTest, ReportAndDescribeRead) {
  seedPatch("fix", "Succeeded");
  EXPECT_EQ(run({"report", "fix"}), kExitOk);
  EXPECT_THAT(out_.str(), StartsWith("# INC-1: fix\n"));
  out_.str("");
  EXPECT_EQ(run({"describe", "fix"}), kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("Phase:        Succeeded"));
  EXPECT_THAT(out_.str(), HasSubstr("Events:"));
}

TEST_F(CommandsTest, WatchFollowsThePatchToSucceeded) {
  Json p = seedPatch("fix", "Testing");
  auto done = std::async(std::launch::async, [&] { return followPatch(env_, "fix", std::chrono::seconds(10)); });
  ASSERT_TRUE(client_.waitForActiveWatches(1));
  auto watches = client_.calls("watch", "patches");
  ASSERT_FALSE(watches.empty());
  p["status"]["phase"] = "Promoting";
  p["status"]["message"] = "all tests passed";
  p["status"]["history"] = {{{"at", "2026-05-01T10:00:05Z"}, {"phase", "Promoting"}, {"message", "all tests passed"}}};
  client_.seed(kPatch, p);
  p["status"]["phase"] = "Succeeded";
  p["status"]["message"] = "healthy";
  client_.seed(kPatch, p);
  ASSERT_EQ(done.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_EQ(done.get(), kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("10:00:05  Promoting         all tests passed"));
  EXPECT_THAT(out_.str(), HasSubstr("patch shop/fix Succeeded: healthy"));
}

TEST_F(CommandsTest, WatchUsesAFieldSelectorOnTheName) {
  seedPatch("fix", "Testing");
  auto done = std::async(std::launch::async, [&] { return followPatch(env_, "fix", std::chrono::seconds(1)); });
  ASSERT_TRUE(client_.waitForActiveWatches(1));
  // another patch changing does not end the watch
  seedPatch("other", "Succeeded");
  EXPECT_EQ(done.get(), kExitFailure);  // the timeout
  EXPECT_THAT(err_.str(), HasSubstr("timed out after 1s waiting for patch shop/fix (Testing)"));
  EXPECT_THAT(out_.str(), ::testing::Not(HasSubstr("other")));
}

TEST_F(CommandsTest, WatchExitsOneWhenRolledBackOrDeleted) {
  Json p = seedPatch("fix", "Verifying");
  auto done = std::async(std::launch::async, [&] { return followPatch(env_, "fix", std::chrono::seconds(10)); });
  ASSERT_TRUE(client_.waitForActiveWatches(1));
  p["status"]["phase"] = "RolledBack";
  client_.seed(kPatch, p);
  EXPECT_EQ(done.get(), kExitFailure);
  EXPECT_THAT(out_.str(), HasSubstr("patch shop/fix RolledBack"));

  seedPatch("gone", "Testing");
  auto gone = std::async(std::launch::async, [&] { return followPatch(env_, "gone", std::chrono::seconds(10)); });
  ASSERT_TRUE(client_.waitForActiveWatches(1));
  client_.erase(kPatch, "shop", "gone");
  EXPECT_EQ(gone.get(), kExitFailure);
  EXPECT_THAT(out_.str(), HasSubstr("patch shop/gone was deleted"));
}

TEST_F(CommandsTest, WatchOfAnEndedPatchReturnsAtOnce) {
  seedPatch("fix", "Failed");
  EXPECT_EQ(followPatch(env_, "fix", std::chrono::seconds(0)), kExitFailure);
  EXPECT_TRUE(client_.calls("watch").empty());
  seedPatch("ok", "Succeeded");
  EXPECT_EQ(followPatch(env_, "ok", std::chrono::seconds(0)), kExitOk);
}

TEST_F(CommandsTest, WatchRelistsAfterGone) {
  Json p = seedPatch("fix", "Testing");
  client_.failNextWatchWithEvent({{"kind", "Status"}, {"code", 410}, {"reason", "Expired"}, {"message", "too old"}});
  auto done = std::async(std::launch::async, [&] { return followPatch(env_, "fix", std::chrono::seconds(10)); });
  ASSERT_TRUE(client_.waitForCalls([](const auto& calls) {
    int watches = 0;
    for (const auto& c : calls) watches += c.verb == "watch";
    return watches >= 2;
  }));
  ASSERT_TRUE(client_.waitForActiveWatches(1));
  p["status"]["phase"] = "Succeeded";
  client_.seed(kPatch, p);
  EXPECT_EQ(done.get(), kExitOk);
}

TEST(DescribeError, WhatPeopleRead) {
  EXPECT_EQ(describeError(kube::transportError("GET https://127.0.0.1:1/apis/x: Failed to connect"),
                          "https://127.0.0.1:1"),
            "cannot reach the Kubernetes API at https://127.0.0.1:1: Failed to connect");
  EXPECT_EQ(describeError(kube::apiError(403, "Forbidden", "patches is forbidden: User \"bob\" cannot list"), "s"),
            "forbidden: patches is forbidden: User \"bob\" cannot list");
  EXPECT_THAT(describeError(kube::apiError(401, "Unauthorized", ""), "https://k"),
              HasSubstr("did not accept your credentials"));
  EXPECT_THAT(describeError(kube::errorFromResponse(404, "404 page not found"), "https://k"),
              HasSubstr("is patchgate installed"));
}

TEST(SplitYamlDocuments, OnSeparatorLines) {
  auto docs = splitYamlDocuments("---\na: 1\n---\n# only a comment\n---\nb: 2\n--- \n");
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0], "a: 1\n");
  EXPECT_EQ(docs[1], "b: 2\n");
}

// The API server answering SelfSubjectReviews for one user, and counting them.
class ReviewedClient final : public testing::ForwardingClient {
 public:
  explicit ReviewedClient(testing::FakeClient& fake) : ForwardingClient(fake) {}
  int reviews = 0;
  absl::StatusOr<Json> create(const kube::ResourceType& rt, const std::string& ns, const Json& obj,
                              const kube::WriteOptions& o) override {
    if (rt.resource != "selfsubjectreviews") return next_.create(rt, ns, obj, o);
    ++reviews;
    Json out = obj;
    out["status"] = {{"userInfo", {{"username", "dana"}, {"groups", {"sre", "system:authenticated"}}}}};
    return out;
  }
};

// One SelfSubjectReview tells both who is asking and their groups, however
// many Patches a file holds.
TEST(SelfSubjectReview, CreateAsksWhoYouAreOnceAndRecordsYourGroups) {
  testing::FakeClock clock;
  testing::FakeClient fake{clock};
  ReviewedClient client(fake);
  std::ostringstream out, err;
  testing::FixedRandom random{0.1};
  Env env{client, "shop", "https://api:6443", out, err, clock, random, nullptr};
  std::string file = ::testing::TempDir() + "/two-patches.yaml";
  std::ofstream(file) << R"(apiVersion: patchgate.dev/v1alpha1
kind: Patch
metadata: {name: one}
spec: {target: {kind: Deployment, name: checkout}, change: {image: "app=x:2"}, ticket: INC-1, rootCause: why,
       tests: [{name: smoke, image: t, command: ["true"]}]}
---
apiVersion: patchgate.dev/v1alpha1
kind: Patch
metadata: {name: two}
spec: {target: {kind: Deployment, name: checkout}, change: {image: "app=x:3"}, ticket: INC-1, rootCause: why,
       tests: [{name: smoke, image: t, command: ["true"]}]}
)";
  auto inv = parseArgs({"create", "-f", file});
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(run(*inv, env), kExitOk) << err.str();
  EXPECT_EQ(client.reviews, 1);
  for (const char* name : {"one", "two"}) {
    Json stored = fake.object(kPatch, "shop", name);
    EXPECT_EQ(jsonString(stored, "/spec/author"), "dana");
    EXPECT_EQ(stored["spec"]["authorGroups"], Json({"sre", "system:authenticated"}));
  }
}

TEST(SelfSubjectReview, ReadsTheUserName) {
  testing::FakeClient client;
  // FakeClient stores what it is given; the server would fill status.
  auto user = selfSubjectReviewUser(client);
  EXPECT_FALSE(user.ok());
  EXPECT_EQ(kSelfSubjectReview.path(""), "/apis/authentication.k8s.io/v1/selfsubjectreviews");
  auto calls = client.calls("create", "selfsubjectreviews");
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].body["kind"], "SelfSubjectReview");
}

}  // namespace
}  // namespace patchgate::cli
