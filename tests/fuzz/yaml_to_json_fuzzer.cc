// YAML/JSON text to JSON (api/v1alpha1 yamlToJson) and the diff the operator
// shows between a workload and its patched form (describeDiff, Json::diff).
// Properties: never a crash, an uncaught exception or a stack overflow; the
// result always dumps (valid UTF-8) and is bounded by the documented limits.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "api/v1alpha1/patch.h"
#include "controllers/patch/workload.h"

namespace v1 = patchgate::api::v1alpha1;
using patchgate::Json;

namespace {

// Depth and value count of a JSON value (recursion: depth is what is checked,
// and yamlToJson bounds it).
void measure(const Json& j, int depth, int& maxDepth, size_t& values) {
  ++values;
  if (depth > maxDepth) maxDepth = depth;
  if (j.is_structured())
    for (const auto& child : j) measure(child, depth + 1, maxDepth, values);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto json = v1::yamlToJson(text);
  if (!json.ok()) return 0;
  int depth = 0;
  size_t values = 0;
  measure(*json, 0, depth, values);
  if (depth > v1::kMaxNestingDepth || values > v1::kMaxValues) std::abort();  // a limit not enforced
  const std::string dumped = json->dump();
  // JSON is YAML: the dump converts back without a crash (not always to an
  // equal value: integers beyond int64 stay text, for one).
  (void)v1::yamlToJson(dumped);
  static const Json kBefore = Json::parse(R"({"spec": {"replicas": 2, "template": {"metadata":
      {"labels": {"app": "shop", "a/b": "~1"}}, "spec": {"containers": [{"name": "app", "image": "shop:1"}]}}}})");
  (void)patchgate::controllers::patch::describeDiff(kBefore, *json);
  (void)patchgate::controllers::patch::describeDiff(*json, kBefore);
  return 0;
}
