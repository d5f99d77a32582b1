#include "api/v1alpha1/patch.h"

#include <yaml-cpp/yaml.h>

#include <regex>

#include "absl/strings/str_cat.h"

namespace patchgate::api::v1alpha1 {

bool phase::isTerminal(const std::string& p) {
  return p == kSucceeded || p == kFailed || p == kRolledBack;
}

namespace {

Json yamlNodeToJson(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Sequence: {
      Json a = Json::array();
      for (const auto& item : n) a.push_back(yamlNodeToJson(item));
      return a;
    }
    case YAML::NodeType::Map: {
      Json o = Json::object();
      for (const auto& kv : n) o[kv.first.as<std::string>()] = yamlNodeToJson(kv.second);
      return o;
    }
    case YAML::NodeType::Scalar: {
      const std::string& s = n.Scalar();
      if (n.Tag() == "!") return s;  // quoted: always a string
      if (s == "true" || s == "True") return true;
      if (s == "false" || s == "False") return false;
      if (s == "null" || s == "~") return nullptr;
      static const std::regex kInt("^-?(0|[1-9][0-9]*)$");
      static const std::regex kFloat("^-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][-+]?[0-9]+)?$");
      if (std::regex_match(s, kInt)) {
        try {
          return std::stoll(s);
        } catch (...) {
          return s;
        }
      }
      if (std::regex_match(s, kFloat)) return std::stod(s);
      return s;
    }
  }
  return nullptr;
}

absl::Status fieldError(const std::string& path, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

bool isDnsLabel(const std::string& s) {
  static const std::regex kRe("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$");
  return s.size() <= 63 && std::regex_match(s, kRe);
}
bool isDnsSubdomain(const std::string& s) {
  static const std::regex kRe("^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$");
  return s.size() <= 253 && std::regex_match(s, kRe);
}

}  // namespace

absl::StatusOr<Json> yamlToJson(const std::string& text) {
  try {
    return yamlNodeToJson(YAML::Load(text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("not valid YAML or JSON: ", e.what()));
  }
}

absl::StatusOr<PatchSpec> parseSpec(const Json& patch) {
  const Json& spec = jsonAt(patch, "/spec");
  if (!spec.is_object()) return fieldError("spec", "Required value");
  PatchSpec out;
  try {
    const Json& t = spec.value("target", Json());
    if (!t.is_object()) return fieldError("spec.target", "Required value");
    out.target.apiVersion = t.value("apiVersion", "apps/v1");
    out.target.kind = t.value("kind", "");
    out.target.name = t.value("name", "");
    if (out.target.apiVersion != "apps/v1")
      return fieldError("spec.target.apiVersion", "Unsupported value: \"" + out.target.apiVersion +
                                                      "\": supported values: \"apps/v1\"");
    if (out.target.kind != "Deployment" && out.target.kind != "StatefulSet" &&
        out.target.kind != "DaemonSet")
      return fieldError("spec.target.kind",
                        "Unsupported value: \"" + out.target.kind +
                            "\": supported values: \"Deployment\", \"StatefulSet\", \"DaemonSet\"");
    if (!isDnsSubdomain(out.target.name))
      return fieldError("spec.target.name", "Required value: the name of the workload to patch");

    const Json& c = spec.value("change", Json());
    if (!c.is_object()) return fieldError("spec.change", "Required value");
    int kinds = 0;
    if (c.contains("patch")) {
      ++kinds;
      out.change.patch = c["patch"].is_string() ? c["patch"].get<std::string>() : c["patch"].dump();
      out.change.type = c.value("type", "strategic");
      if (out.change.type != "strategic" && out.change.type != "merge" && out.change.type != "json")
        return fieldError("spec.change.type", "Unsupported value: \"" + out.change.type +
                                                  "\": supported values: \"strategic\", \"merge\", \"json\"");
      auto parsed = yamlToJson(out.change.patch);
      if (!parsed.ok()) return fieldError("spec.change.patch", std::string(parsed.status().message()));
      if (out.change.type == "json" ? !parsed->is_array() : !parsed->is_object())
        return fieldError("spec.change.patch", out.change.type == "json"
                                                   ? "a json patch must be a list of operations"
                                                   : "must be a map of fields to change");
    }
    if (c.contains("image")) {
      ++kinds;
      out.change.image = c.value("image", "");
      if (out.change.image.empty()) return fieldError("spec.change.image", "must not be empty");
    }
    if (c.contains("rollbackTo")) {
      ++kinds;
      const Json& r = c["rollbackTo"];
      if (!r.is_object() || !r.contains("revision") || !r["revision"].is_number_integer() ||
          r["revision"].get<int64_t>() < 1)
        return fieldError("spec.change.rollbackTo.revision", "must be a revision number >= 1");
      out.change.rollbackTo = r["revision"].get<int64_t>();
    }
    if (kinds != 1)
      return fieldError("spec.change", "exactly one of patch, image or rollbackTo must be set");
    for (size_t i = 0; i < c.value("config", Json::array()).size(); ++i) {
      const Json& cc = c["config"][i];
      std::string path = absl::StrCat("spec.change.config[", i, "]");
      ConfigChange x{cc.value("kind", ""), cc.value("name", ""), cc.value("type", "merge"), ""};
      x.patch = cc.contains("patch") && cc["patch"].is_string() ? cc["patch"].get<std::string>()
                                                                : cc.value("patch", Json()).dump();
      if (x.kind != "ConfigMap" && x.kind != "Secret")
        return fieldError(path + ".kind", "Unsupported value: must be ConfigMap or Secret");
      if (!isDnsSubdomain(x.name)) return fieldError(path + ".name", "Required value");
      if (x.type != "strategic" && x.type != "merge" && x.type != "json")
        return fieldError(path + ".type", "Unsupported value: must be strategic, merge or json");
      auto parsed = yamlToJson(x.patch);
      if (!parsed.ok() || parsed->is_null())
        return fieldError(path + ".patch", "Required value: a patch in YAML or JSON");
      out.change.config.push_back(std::move(x));
    }

    out.ticket = spec.value("ticket", "");
    out.rootCause = spec.value("rootCause", "");
    out.description = spec.value("description", "");
    if (out.ticket.empty())
      return fieldError("spec.ticket", "Required value: every patch names its trouble ticket");
    if (out.rootCause.size() < 3)
      return fieldError("spec.rootCause", "Required value: say what caused the problem this patch fixes");
    out.priority = spec.value("priority", "normal");
    if (out.priority != "normal" && out.priority != "emergency")
      return fieldError("spec.priority", "Unsupported value: \"" + out.priority +
                                             "\": supported values: \"normal\", \"emergency\"");

    const Json& env = spec.value("environment", Json::object());
    out.envReplicas = env.value("replicas", int64_t{1});
    if (out.envReplicas < 1 || out.envReplicas > 10)
      return fieldError("spec.environment.replicas", "must be between 1 and 10");
    for (const auto& inc : env.value("include", Json::array())) {
      Include i{inc.value("kind", ""), inc.value("name", "")};
      if (i.kind != "Deployment" && i.kind != "StatefulSet" && i.kind != "Service" &&
          i.kind != "ConfigMap" && i.kind != "Secret")
        return fieldError("spec.environment.include.kind",
                          "Unsupported value: \"" + i.kind +
                              "\": supported values: Deployment, StatefulSet, Service, ConfigMap, Secret");
      out.include.push_back(std::move(i));
    }
    out.secrets = env.value("secrets", "copy");
    if (out.secrets != "copy" && out.secrets != "omit")
      return fieldError("spec.environment.secrets", "Unsupported value: must be copy or omit");
    out.ttlSecondsAfterFinished = env.value("ttlSecondsAfterFinished", int64_t{600});
    out.keepOnFailure = env.value("keepOnFailure", true);
    out.readyTimeoutSeconds = env.value("readyTimeoutSeconds", int64_t{300});

    const Json& tests = spec.value("tests", Json::array());
    for (size_t i = 0; i < tests.size(); ++i) {
      const Json& tj = tests[i];
      std::string path = absl::StrCat("spec.tests[", i, "]");
      TestSpec ts;
      ts.name = tj.value("name", "");
      ts.image = tj.value("image", "");
      if (!isDnsLabel(ts.name) || ts.name.size() > 40)
        return fieldError(path + ".name", "must be a DNS label of at most 40 characters");
      if (ts.image.empty()) return fieldError(path + ".image", "Required value");
      for (const auto& s : tj.value("command", Json::array())) ts.command.push_back(s.get<std::string>());
      for (const auto& s : tj.value("args", Json::array())) ts.args.push_back(s.get<std::string>());
      ts.env = tj.value("env", Json::array());
      ts.timeoutSeconds = tj.value("timeoutSeconds", int64_t{300});
      ts.retries = tj.value("retries", int64_t{0});
      if (ts.timeoutSeconds < 1) return fieldError(path + ".timeoutSeconds", "must be at least 1");
      if (ts.retries < 0 || ts.retries > 10) return fieldError(path + ".retries", "must be between 0 and 10");
      for (const auto& other : out.tests)
        if (other.name == ts.name) return fieldError(path + ".name", "Duplicate value: \"" + ts.name + "\"");
      out.tests.push_back(std::move(ts));
    }
    if (out.tests.empty() && !out.change.rollbackTo)
      return fieldError("spec.tests", "Required value: a patch must be tested (only rollbacks may skip tests)");

    const Json& promo = spec.value("promotion", Json::object());
    const Json& appr = promo.value("approval", Json::object());
    out.approvalRequired = appr.value("required", false);
    out.approvers = appr.value("approvers", int64_t{1});
    const Json& ver = spec.value("verification", Json::object());
    out.verificationTimeoutSeconds = ver.value("timeoutSeconds", int64_t{300});
    const Json& rb = spec.value("rollback", Json::object());
    out.automaticRollback = rb.value("automatic", true);
    out.revisionHistoryLimit = spec.value("revisionHistoryLimit", int64_t{10});
  } catch (const Json::exception& e) {
    return fieldError("spec", absl::StrCat("wrong type: ", e.what()));
  }
  return out;
}

}  // namespace patchgate::api::v1alpha1
