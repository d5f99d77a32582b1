// The Patch spec parser and what the operator computes from an accepted
// spec before the API server sees it: the workload and config patch bodies.
// The input is used twice: as a whole Patch manifest (YAML or JSON), and as
// the change text (spec.change.patch) of an otherwise valid Patch.
// Properties: never a crash or an uncaught exception; an accepted spec
// yields patch bodies (dump() of every result succeeds, so no invalid UTF-8
// reaches the API server).
#include <cstddef>
#include <cstdint>
#include <string>

#include "api/v1alpha1/patch.h"
#include "controllers/patch/workload.h"

namespace v1 = patchgate::api::v1alpha1;
using patchgate::Json;

namespace {

const Json& deployment() {
  static const Json kDeployment = Json::parse(R"({
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "checkout", "namespace": "shop", "resourceVersion": "42"},
    "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "app", "image": "shop:1"}]}}}})");
  return kDeployment;
}

void exercise(const Json& patch) {
  auto spec = v1::parseSpec(patch);
  if (!spec.ok()) return;
  for (bool precondition : {false, true}) {
    Json revision = deployment()["spec"]["template"];
    auto change = patchgate::controllers::patch::workloadChange(*spec, deployment(), &revision, precondition);
    if (change.ok()) {
      [[maybe_unused]] Json body = Json::parse(change->body);  // valid JSON
    }
  }
  for (const auto& cc : spec->change.config) {
    auto change = patchgate::controllers::patch::configChange(cc);
    if (change.ok()) {
      [[maybe_unused]] Json body = Json::parse(change->body);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);

  // 1. The whole manifest.
  if (auto manifest = v1::yamlToJson(text); manifest.ok()) {
    (void)manifest->dump();
    if (manifest->is_object() && manifest->contains("spec")) exercise(*manifest);
    else exercise(Json{{"spec", *manifest}});
  }

  // 2. The change text of a valid Patch, as each patch type.
  static const char* kTypes[] = {"strategic", "merge", "json"};
  Json patch = {{"spec",
                 {{"target", {{"kind", "Deployment"}, {"name", "checkout"}}},
                  {"change", {{"type", kTypes[size % 3]}, {"patch", text}}},
                  {"ticket", "INC-1"},
                  {"rootCause", "a nil map"},
                  {"tests", {{{"name", "smoke"}, {"image", "busybox"}}}}}}};
  exercise(patch);
  // ... and of a config change.
  patch["spec"]["change"] = {{"image", "app=shop:2"},
                             {"config", {{{"kind", "ConfigMap"}, {"name", "cfg"}, {"patch", text}}}}};
  exercise(patch);
  return 0;
}
