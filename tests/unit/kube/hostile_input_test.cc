// What the kube layer does with input it should not trust: watch lines that
// are not events, names that would change a request's path, files that do
// not end, in-cluster settings that cannot make a URL. Found while fuzzing
// (tests/fuzz); each test fails without its fix.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "api/v1alpha1/patch.h"
#include "common/json.h"
#include "controllers/patch/workload.h"
#include "kube/client_impl.h"
#include "kube/config/rest_config.h"
#include "kube/resource.h"

namespace patchgate::kube {
namespace {

using ::testing::HasSubstr;

TEST(DecodeWatchEvent, LinesThatAreNotEventObjectsAreErrorsNotExceptions) {
  for (const char* line : {"[]", "5", "\"x\"", "null", "{\"type\":\"ADDED\",\"object\":{\"a\":"}) {
    auto ev = decodeWatchEvent(line);
    EXPECT_EQ(ev.status().code(), absl::StatusCode::kInvalidArgument) << line;
  }
  auto odd = decodeWatchEvent(R"({"type": 5, "object": {"kind": "Status"}})");
  ASSERT_TRUE(odd.ok());
  EXPECT_EQ(odd->type, WatchEventType::kError);
  auto added = decodeWatchEvent(R"({"type": "ADDED", "object": {"metadata": {"name": "a"}}})");
  ASSERT_TRUE(added.ok());
  EXPECT_EQ(added->type, WatchEventType::kAdded);
  EXPECT_EQ(added->object["metadata"]["name"], "a");
}

TEST(DecodeWatchEvent, NestingDeeperThanTheApiServerAllowsIsRefusedNotAStackOverflow) {
  // 200,000 levels in one watch line overflowed the stack (found with the
  // watch_stream fuzz target's replay; corpus/watch_stream/regression-deep).
  auto deep = [](int d) {
    return "{\"type\":\"ADDED\",\"object\":" + std::string(d, '[') + std::string(d, ']') + "}";
  };
  auto refused = decodeWatchEvent(deep(200000));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("nested deeper than 1000 levels"));
  EXPECT_FALSE(parseJson(deep(1000)).ok());  // 1000 arrays inside the event object
  auto ok = decodeWatchEvent(deep(999));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->object.dump().size(), 1998u);  // 999 levels, dumped
  // Brackets inside strings are not nesting.
  EXPECT_TRUE(parseJson("{\"a\": \"" + std::string(20000, '[') + "\\\"\"}").ok());
}

TEST(ResourcePath, NamesCannotAddSegmentsOrAQuery) {
  EXPECT_EQ(resources::kPod.path("shop", "checkout-5f9c"), "/api/v1/namespaces/shop/pods/checkout-5f9c");
  EXPECT_EQ(resources::kPod.path("shop/../..", "x?watch=1#f"),
            "/api/v1/namespaces/shop%2F..%2F../pods/x%3Fwatch%3D1%23f");
  EXPECT_EQ(resources::kPod.path("..", "."), "/api/v1/namespaces/%2E%2E/pods/%2E");
  EXPECT_EQ(resources::kPod.path("shop", "a b\n"), "/api/v1/namespaces/shop/pods/a%20b%0A");
  // RBAC names keep their colons.
  EXPECT_EQ(resources::kPod.path("", "system:node:n1"), "/api/v1/pods/system:node:n1");
}

TEST(ReadFile, AFileWithoutEndIsRefused) {
  auto r = readFile("/dev/zero", 1 << 20);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("larger than 1048576 bytes"));
}

TEST(InClusterConfigFrom, HostAndPortMustMakeAUrl) {
  FileReader read = [](const std::string& path) -> absl::StatusOr<std::string> { return "pem of " + path; };
  auto ok = inClusterConfigFrom("fd00::1", "6443", {}, read);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->server, "https://[fd00::1]:6443");
  for (const auto& [host, port] : std::vector<std::pair<std::string, std::string>>{
           {"10.96.0.1", "443x"}, {"10.96.0.1", "0"}, {"10.96.0.1", "70000"}, {"a b", "443"},
           {"h/x?y", "443"}, {"", "443"}}) {
    auto bad = inClusterConfigFrom(host, port, {}, read);
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument) << host << " " << port;
  }
}

TEST(KubeconfigFromString, NamedFilesComeFromTheReader) {
  FileReader read = [](const std::string& path) -> absl::StatusOr<std::string> {
    if (path == "/k/pki/ca.crt") return std::string("CA PEM");
    return absl::NotFoundError(path);
  };
  const char* yaml = R"(
current-context: c
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443", certificate-authority: pki/ca.crt}}]
contexts: [{name: c, context: {cluster: c}}]
)";
  auto cfg = kubeconfigFromString(yaml, "/k", "", "<test>", read);
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->caPem, "CA PEM");
}

TEST(KubeconfigFromString, NodesOfAnotherShapeAreErrorsNotExceptions) {
  // Found by tests/fuzz kubeconfig_fuzzer (corpus/kubeconfig/regression-user-is-a-scalar).
  const char* yaml = R"(
current-context: c
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
users: [{name: u, user: "just a string"}]
)";
  auto cfg = kubeconfigFromString(yaml, "", "", "<test>");
  EXPECT_EQ(cfg.status().code(), absl::StatusCode::kInvalidArgument);
  auto list = kubeconfigFromString(
      "current-context: c\nclusters: [{name: c, cluster: [1]}]\ncontexts: [{name: c, context: {cluster: c}}]\n", "",
      "", "<test>");
  EXPECT_EQ(list.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ParseTime, FieldsOutOfRangeAreErrorsNotOverflows) {
  // Found by tests/fuzz duration_fuzzer (UBSan: the year overflowed the
  // clock's nanoseconds; corpus/duration/regression-year-out-of-range).
  EXPECT_FALSE(parseTime("22-0611-30T04:32:43Z").ok());
  EXPECT_FALSE(parseTime("2026-13-01T00:00:00Z").ok());
  EXPECT_FALSE(parseTime("2026-01-01T24:00:00Z").ok());
  EXPECT_FALSE(parseTime("-2147483648-01-01T00:00:00Z").ok());
  EXPECT_FALSE(parseTime("190-01-01T00:00:00+0.52:00").ok());
  EXPECT_FALSE(parseTime("2263-01-01T00:00:00Z").ok());
  EXPECT_TRUE(parseTime("2026-11-30T04:32:43.5Z").ok());
}

TEST(WorkloadChange, AMetadataThatIsNotAMapIsAnErrorNotAnException) {
  // Found by the patch_spec fuzz target (corpus/patch_spec/metadata-not-a-map.json).
  Json patch = {{"spec",
                 {{"target", {{"kind", "Deployment"}, {"name", "checkout"}}},
                  {"change", {{"patch", R"({"metadata": 5})"}}},
                  {"ticket", "INC-1"},
                  {"rootCause", "why"},
                  {"tests", {{{"name", "t"}, {"image", "i"}}}}}}};
  auto spec = api::v1alpha1::parseSpec(patch);
  EXPECT_EQ(spec.status().message(), "spec.change.patch: metadata must be a map");
  api::v1alpha1::PatchSpec unchecked;
  unchecked.change.patch = R"({"metadata": 5})";
  Json current = {{"metadata", {{"resourceVersion", "7"}}}};
  auto change = controllers::patch::workloadChange(unchecked, current, nullptr, true);
  EXPECT_EQ(change.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace patchgate::kube
