// The Patch status: its JSON mapping, and the CRD schema that must declare
// every field of it (the API server drops undeclared fields of a structural
// schema: a field missing there would vanish on every write).
#include "api/v1alpha1/patch_status.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <functional>
#include <string>
#include <vector>

namespace patchgate::api::v1alpha1 {
namespace {

// A status as the operator writes it, one of each kind of value: fields set
// and absent, empty lists and maps where the operator writes them empty.
Json writtenStatus() {
  return Json::parse(R"({
    "phase": "Verifying", "message": "verifying production: 1 of 2 updated",
    "startedAt": "2026-11-30T10:00:00Z", "observedGeneration": 1,
    "conditions": [
      {"type": "Validated", "status": "True", "reason": "Validated", "message": "ok",
       "observedGeneration": 1, "lastTransitionTime": "2026-11-30T10:00:01Z"},
      {"type": "Ready", "status": "False", "reason": "Verifying", "message": "",
       "observedGeneration": 1, "lastTransitionTime": "2026-11-30T10:00:01Z"}],
    "history": [{"at": "2026-11-30T10:00:00Z", "phase": "Pending", "reason": "Created",
                 "actor": "patchgate", "message": "patch received"}],
    "target": {"kind": "Deployment", "name": "checkout", "uid": "u-1"},
    "baseHash": "b", "expectedHash": "e", "diff": "",
    "environment": {"namespace": "pg-fix-abc123", "createdAt": "2026-11-30T10:00:02Z",
                    "testApi": {"unavailable": "API service x/y not found"},
                    "baseResourceVersion": "41", "services": [], "message": "ready", "omittedSecrets": ["db"],
                    "readyAt": "2026-11-30T10:00:09Z"},
    "tests": [{"name": "smoke", "result": "Passed", "attempts": 1, "job": "pgt-smoke-1",
               "startedAt": "2026-11-30T10:00:10Z", "finishedAt": "2026-11-30T10:00:20Z",
               "durationSeconds": 10, "message": "completed"}],
    "testReports": {"smoke": [{"name": "http", "cases": [
        {"name": "GET /", "passed": true, "durationSeconds": 0.5, "output": "ok"}]},
                              {"name": "empty", "cases": []}]},
    "approvals": [],
    "refusedApprovals": ["self"],
    "retests": 1, "retestedAt": "2026-11-30T10:00:05Z", "secretSources": {"db-rotated": "77"},
    "revision": {"name": "checkout-pg-3", "number": 3, "rollbackTarget": "checkout-pg-3"},
    "promotion": {"promotedAt": "2026-11-30T10:01:00Z", "generation": 7, "configHashes": {},
                  "firstHealthyAt": "2026-11-30T10:01:30Z", "restartsAtHealthy": {}},
    "policy": {"sources": ["shop/default"], "notes": ["approval required by policy shop/default"],
               "schedule": "emergency: passes the freeze until 2026-12-01T00:00:00Z: year-end"}})");
}

TEST(PatchStatus, WhatTheOperatorWritesReadsBackTheSame) {
  const Json written = writtenStatus();
  auto parsed = parsePatchStatus(written);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(toJson(*parsed), written) << toJson(*parsed).dump(2);
  auto again = parsePatchStatus(toJson(*parsed));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(*again == *parsed);

  EXPECT_EQ(parsed->phase, "Verifying");
  ASSERT_TRUE(parsed->environment.has_value());
  EXPECT_EQ(parsed->environment->namespace_, "pg-fix-abc123");
  EXPECT_EQ(parsed->environment->testApi->unavailable, "API service x/y not found");
  EXPECT_FALSE(parsed->environment->testApi->address.has_value());
  ASSERT_TRUE(parsed->approvals.has_value());  // [] is not absent: approval is awaited
  EXPECT_TRUE(parsed->approvals->empty());
  EXPECT_EQ(parsed->testReports.at("smoke")[0].cases[0].durationSeconds, 0.5);
  EXPECT_FALSE(parsed->intent.has_value());
  EXPECT_FALSE(parsed->finishedAt.has_value());
}

TEST(PatchStatus, IntentsOfBothActionsReadBackTheSame) {
  for (const char* intent : {
           R"({"action": "Promote", "revision": "r", "baseHash": "b", "expectedHash": "e",
               "at": "2026-11-30T10:00:00Z"})",
           R"({"action": "Rollback", "revision": "r", "cause": "Unhealthy", "reason": "restarts",
               "at": "2026-11-30T10:00:00Z"})"}) {
    Json written = {{"phase", "Promoting"}, {"intent", Json::parse(intent)}};
    auto parsed = parsePatchStatus(written);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(toJson(*parsed), written);
  }
}

TEST(PatchStatus, FullyPopulatedStatusRoundTrips) {
  const PatchStatus full = fullyPopulatedPatchStatus();
  ASSERT_TRUE(full.intent.has_value());
  ASSERT_FALSE(full.history.empty());
  auto parsed = parsePatchStatus(toJson(full));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(*parsed == full) << toJson(*parsed).dump(2);
}

TEST(PatchStatus, EmptyAndNullStatusesAreEmpty) {
  for (const Json& j : {Json(), Json::object(), Json{{"phase", nullptr}}}) {
    auto parsed = parsePatchStatus(j);
    ASSERT_TRUE(parsed.ok()) << j.dump();
    EXPECT_TRUE(*parsed == PatchStatus{});
    EXPECT_EQ(toJson(*parsed), Json::object());
  }
}

TEST(PatchStatus, WrongShapesAreErrorsNamingTheField) {
  struct Case {
    const char* status;
    const char* field;
  };
  for (const auto& c : std::vector<Case>{
           {R"("Testing")", "status: must be an object"},
           {R"({"phase": 3})", "status.phase: must be a string"},
           {R"({"retests": "three"})", "status.retests: must be an integer"},
           {R"({"retests": 1.5})", "status.retests: must be an integer"},
           {R"({"observedGeneration": 18446744073709551615})",
            "status.observedGeneration: must be an integer"},
           {R"({"conditions": {"type": "Ready"}})", "status.conditions: must be a list"},
           {R"({"conditions": [{"type": "Ready", "status": true}]})", "status.conditions[0].status"},
           {R"({"tests": [{"name": "a"}, {"name": "b", "attempts": "1"}]})", "status.tests[1].attempts"},
           {R"({"environment": {"namespace": "n", "kept": "yes"}})",
            "status.environment.kept: must be true or false"},
           {R"({"environment": {"services": "svc"}})", "status.environment.services: must be a list"},
           {R"({"promotion": {"configHashes": {"ConfigMap/c": 1}}})",
            "status.promotion.configHashes[\"ConfigMap/c\"]"},
           {R"({"testReports": {"smoke": [{"cases": [{"passed": "yes"}]}]}})",
            "status.testReports[\"smoke\"][0].cases[0].passed"},
           {R"({"intent": "Promote"})", "status.intent: must be an object"},
       }) {
    absl::StatusOr<PatchStatus> parsed;
    ASSERT_NO_THROW(parsed = parsePatchStatus(Json::parse(c.status))) << c.status;
    ASSERT_FALSE(parsed.ok()) << c.status;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(parsed.status().message().find(c.field), std::string::npos)
        << c.status << " -> " << parsed.status().message();
  }
}

TEST(PatchStatus, UnknownFieldsAreDropped) {
  const Json stored = {{"phase", "Pending"}, {"someday", 1}, {"target", {{"kind", "Deployment"}, {"x", 2}}}};
  auto parsed = parsePatchStatus(stored);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  // Absent fields of a present object read as their defaults.
  EXPECT_EQ(toJson(*parsed),
            (Json{{"phase", "Pending"}, {"target", {{"kind", "Deployment"}, {"name", ""}, {"uid", ""}}}}));
}

TEST(PatchStatus, ConditionsKeepTheirTransitionTimeWhileTheStatusStays) {
  std::vector<Condition> conditions;
  EXPECT_TRUE(setCondition(conditions, {"Ready", "False", "Testing", "1 of 2"}, "t1"));
  EXPECT_FALSE(setCondition(conditions, {"Ready", "False", "Testing", "1 of 2"}, "t2"));
  EXPECT_TRUE(setCondition(conditions, {"Ready", "False", "Testing", "2 of 2"}, "t3"));
  EXPECT_EQ(conditions[0].lastTransitionTime, "t1");
  EXPECT_TRUE(setCondition(conditions, {"Ready", "True", "Succeeded", "done"}, "t4"));
  EXPECT_EQ(conditions[0].lastTransitionTime, "t4");
  EXPECT_TRUE(isConditionTrue(conditions, "Ready"));
  EXPECT_EQ(findCondition(conditions, "Verified"), nullptr);
  EXPECT_TRUE(removeCondition(conditions, "Ready"));
  EXPECT_FALSE(removeCondition(conditions, "Ready"));
  EXPECT_TRUE(conditions.empty());
}

// ---- the CRD's schema for status --------------------------------------------

YAML::Node patchVersion() {
  YAML::Node crd = YAML::LoadFile(PATCHGATE_PATCH_CRD);
  return crd["spec"]["versions"][0];
}

YAML::Node statusSchema() { return patchVersion()["schema"]["openAPIV3Schema"]["properties"]["status"]; }

bool preservesUnknown(const YAML::Node& schema) {
  const YAML::Node flag = schema["x-kubernetes-preserve-unknown-fields"];
  return flag && flag.as<bool>();
}

// What the API server would prune or refuse in `value` under `schema`: keys
// not declared, values of another type, required keys missing.
void check(const YAML::Node& schema, const Json& value, const std::string& path,
           std::vector<std::string>& errors) {
  const std::string type = schema["type"] ? schema["type"].as<std::string>() : "";
  auto wrong = [&] { errors.push_back(path + ": not of type " + type + ": " + value.dump()); };
  if (type == "object") {
    if (!value.is_object()) return wrong();
    const YAML::Node properties = schema["properties"];
    const YAML::Node additional = schema["additionalProperties"];
    for (const auto& [key, item] : value.items()) {
      if (properties && properties[key]) {
        check(properties[key], item, path + "." + key, errors);
      } else if (additional && additional.IsMap()) {
        check(additional, item, path + "." + key, errors);
      } else if (!preservesUnknown(schema)) {
        errors.push_back(path + "." + key + ": not declared (the API server would drop it)");
      }
    }
    for (const auto& required : schema["required"])
      if (!value.contains(required.as<std::string>()))
        errors.push_back(path + "." + required.as<std::string>() + ": required by the schema");
  } else if (type == "array") {
    if (!value.is_array()) return wrong();
    for (size_t i = 0; i < value.size(); ++i)
      check(schema["items"], value[i], path + "[" + std::to_string(i) + "]", errors);
  } else if (type == "string") {
    if (!value.is_string()) wrong();
  } else if (type == "integer") {
    if (!value.is_number_integer()) wrong();
  } else if (type == "number") {
    if (!value.is_number()) wrong();
  } else if (type == "boolean") {
    if (!value.is_boolean()) wrong();
  } else if (!preservesUnknown(schema)) {
    errors.push_back(path + ": the schema gives no type");
  }
}

std::vector<std::string> schemaErrors(const YAML::Node& schema, const Json& status) {
  std::vector<std::string> errors;
  check(schema, status, "status", errors);
  return errors;
}

// Calls fn(properties, key, path) for every property declared below `schema`.
void eachDeclared(YAML::Node schema, const std::string& path,
                  const std::function<void(YAML::Node, const std::string&, const std::string&)>& fn) {
  if (YAML::Node properties = schema["properties"]) {
    std::vector<std::string> keys;
    for (const auto& kv : properties) keys.push_back(kv.first.as<std::string>());
    for (const auto& key : keys) {
      eachDeclared(properties[key], path + "." + key, fn);
      fn(properties, key, path + "." + key);
    }
  }
  if (YAML::Node items = schema["items"]) eachDeclared(items, path + "[]", fn);
  if (YAML::Node additional = schema["additionalProperties"]; additional && additional.IsMap())
    eachDeclared(additional, path + ".*", fn);
}

// The value at a schema path of eachDeclared ("status.tests[].name") in
// fullyPopulatedPatchStatus's JSON, where every list and map has one element.
const Json* valueAt(const Json& status, const std::string& path) {
  const Json* v = &status;
  size_t i = std::string("status").size();
  while (i < path.size() && v) {
    if (path.compare(i, 2, "[]") == 0) {
      v = v->is_array() && !v->empty() ? &(*v)[0] : nullptr;
      i += 2;
      continue;
    }
    size_t end = path.find_first_of(".[", i + 1);
    std::string key = path.substr(i + 1, end == std::string::npos ? std::string::npos : end - i - 1);
    if (key == "*") {
      v = v->is_object() && !v->empty() ? &v->begin().value() : nullptr;
    } else {
      v = v->is_object() && v->contains(key) ? &(*v)[key] : nullptr;
    }
    i = end == std::string::npos ? path.size() : end;
  }
  return v;
}

TEST(PatchStatusSchema, DeclaresEveryFieldTheOperatorWrites) {
  const YAML::Node schema = statusSchema();
  ASSERT_TRUE(schema) << "no status schema in " << PATCHGATE_PATCH_CRD;
  EXPECT_FALSE(preservesUnknown(schema)) << "status must be fully declared: the schema is the API";
  for (const Json& status : {toJson(fullyPopulatedPatchStatus()), writtenStatus()}) {
    for (const auto& e : schemaErrors(schema, status)) ADD_FAILURE() << e;
  }
}

TEST(PatchStatusSchema, DeclaresNothingTheOperatorDoesNotWrite) {
  const Json full = toJson(fullyPopulatedPatchStatus());
  eachDeclared(statusSchema(), "status", [&](YAML::Node, const std::string&, const std::string& path) {
    EXPECT_NE(valueAt(full, path), nullptr) << path << " is declared but PatchStatus has no such field";
  });
}

TEST(PatchStatusSchema, FailsForEachFieldLeftOut) {
  // The check above can fail: with any one field taken out of the schema,
  // the fully populated status has a key the API server would drop.
  const Json full = toJson(fullyPopulatedPatchStatus());
  YAML::Node schema = statusSchema();
  int fields = 0;
  eachDeclared(schema, "status", [&](YAML::Node properties, const std::string& key, const std::string& path) {
    ++fields;
    YAML::Node saved = YAML::Clone(properties[key]);
    properties.remove(key);
    EXPECT_FALSE(schemaErrors(schema, full).empty()) << "without " << path;
    properties[key] = saved;
  });
  EXPECT_GT(fields, 60);
  EXPECT_TRUE(schemaErrors(schema, full).empty());
}

// The schema of a property path such as "revision.number" (an undefined
// node when it is not declared).
YAML::Node declared(const YAML::Node& schema, const std::string& path) {
  const YAML::Node properties = schema["properties"];
  if (!properties) return YAML::Node(YAML::NodeType::Undefined);
  auto dot = path.find('.');
  const YAML::Node next = properties[path.substr(0, dot)];
  if (!next || dot == std::string::npos) return next;
  return declared(next, path.substr(dot + 1));
}

TEST(PatchStatusSchema, PrinterColumnsNameDeclaredFields) {
  const YAML::Node status = statusSchema();
  int columns = 0;
  for (const auto& column : patchVersion()["additionalPrinterColumns"]) {
    const std::string path = column["jsonPath"].as<std::string>();
    if (path.rfind(".status.", 0) != 0) continue;
    ++columns;
    const YAML::Node field = declared(status, path.substr(std::string(".status.").size()));
    ASSERT_TRUE(field) << path << " is not declared";
    EXPECT_EQ(field["type"].as<std::string>(), column["type"].as<std::string>()) << path;
  }
  EXPECT_EQ(columns, 3);  // phase, revision.number, message
}

}  // namespace
}  // namespace patchgate::api::v1alpha1
