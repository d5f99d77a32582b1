// gRPC request validation without a server: the PatchgateApi calls with the
// authorization metadata and the request as a test pod or a user sends them,
// against FakeClient answering TokenReviews and SubjectAccessReviews.
// Input: line 1 the method (get|watch|revisions|record|report), line 2 the
// "authorization" metadata, the rest the request in protobuf text format
// (readable seeds), kept only if it survives a binary round trip, as the
// gRPC server would receive it (proto3 strings must be UTF-8).
// Properties: a Status or an answer, never a crash or an uncaught exception;
// whatever a report writes into the Patch's status is valid JSON text
// (dump() succeeds: no invalid UTF-8 from cutting outputs).
#include <google/protobuf/text_format.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "fakes/fake_client.h"
#include "fakes/fake_clock.h"
#include "fakes/forwarding_client.h"
#include "grpc/api.h"
#include "kube/resource.h"

namespace patchgate::grpcapi {
namespace {

namespace rs = kube::resources;

// TokenReview: "tester" is the test pod's token, "alice" a user's; SAR:
// alice may do anything in "shop".
class ReviewingClient final : public testing::ForwardingClient {
 public:
  using ForwardingClient::ForwardingClient;
  absl::StatusOr<Json> create(const kube::ResourceType& rt, const std::string& ns, const Json& obj,
                              const kube::WriteOptions& o) override {
    Json out = obj;
    if (rt.resource == "tokenreviews") {
      const std::string token = obj["spec"]["token"].get<std::string>();
      if (token == "tester") {
        out["status"] = {{"authenticated", true},
                         {"user", {{"username", "system:serviceaccount:pg-env-fix:default"},
                                   {"extra", {{"authentication.kubernetes.io/pod-name", {"pgt-smoke-1"}},
                                              {"authentication.kubernetes.io/pod-uid", {"uid-pgt-smoke-1"}}}}}}};
      } else if (token == "alice") {
        out["status"] = {{"authenticated", true}, {"user", {{"username", "alice"}}}};
      } else {
        out["status"] = {{"authenticated", false}};
      }
      return out;
    }
    if (rt.resource == "subjectaccessreviews") {
      out["status"] = {{"allowed", obj["spec"]["user"] == "alice" &&
                                       obj["spec"]["resourceAttributes"]["namespace"] == "shop"}};
      return out;
    }
    return next_.create(rt, ns, obj, o);
  }
};

const char* kPatch = R"({"apiVersion": "patchgate.dev/v1alpha1", "kind": "Patch",
  "metadata": {"namespace": "shop", "name": "fix", "uid": "u1", "resourceVersion": "1"},
  "spec": {"ticket": "INC-1", "rootCause": "nil map", "target": {"kind": "Deployment", "name": "checkout"}},
  "status": {"phase": "Testing", "environment": {"namespace": "pg-env-fix"},
             "revision": {"name": "checkout-rev-1"}}})";
const char* kPod = R"({"apiVersion": "v1", "kind": "Pod",
  "metadata": {"namespace": "pg-env-fix", "name": "pgt-smoke-1", "uid": "uid-pgt-smoke-1",
    "labels": {"patchgate.dev/test": "smoke", "patchgate.dev/patch-uid": "u1"},
    "ownerReferences": [{"kind": "Job", "name": "pgt-smoke-1", "controller": true}]}})";

template <typename Request>
bool parse(const std::string& text, Request& req) {
  Request loose;
  if (!google::protobuf::TextFormat::ParseFromString(text, &loose)) return false;
  std::string wire;
  return loose.SerializeToString(&wire) && req.ParseFromString(wire);
}

}  // namespace
}  // namespace patchgate::grpcapi

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace patchgate;
  using namespace patchgate::grpcapi;
  google::protobuf::LogSilencer silence;  // the text parser logs every syntax error
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t nl1 = input.find('\n');
  if (nl1 == std::string::npos) return 0;
  const size_t nl2 = input.find('\n', nl1 + 1);
  if (nl2 == std::string::npos) return 0;
  const std::string method = input.substr(0, nl1);
  const std::string authorization = input.substr(nl1 + 1, nl2 - nl1 - 1);
  const std::string body = input.substr(nl2 + 1);

  testing::FakeClock clock;
  testing::FakeClient fake(clock);
  ReviewingClient client(fake);
  runtime::Store store;
  Authenticator auth(client, clock);
  PatchgateApi api(store, client, auth, clock);
  store.upsert(fake.seed(rs::kPatch, Json::parse(kPatch)));
  fake.seed(rs::kPod, Json::parse(kPod));

  (void)parseBearer(authorization);
  if (method == "get" || method == "record") {
    pb::GetPatchRequest req;
    if (!parse(body, req)) return 0;
    if (method == "get") (void)api.getPatch(authorization, req);
    else (void)api.getChangeRecord(authorization, req);
  } else if (method == "watch") {
    pb::WatchPatchRequest req;
    if (!parse(body, req)) return 0;
    (void)api.watchPatch(authorization, req, [](const pb::PatchEvent&) { return false; },
                         [] { return true; });
  } else if (method == "revisions") {
    pb::ListRevisionsRequest req;
    if (!parse(body, req)) return 0;
    (void)api.listRevisions(authorization, req);
  } else if (method == "report") {
    pb::ReportTestResultsRequest req;
    if (!parse(body, req)) return 0;
    (void)serviceAccountNamespace(req.namespace_());
    auto r = api.reportTestResults(authorization, req);
    // What was written must be JSON the API server would accept.
    (void)fake.object(rs::kPatch, "shop", "fix").dump();
    (void)r;
  }
  return 0;
}
