#include "api/v1alpha1/patch.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <regex>

#include "absl/strings/str_cat.h"
#include "common/utf8.h"

namespace patchgate::api::v1alpha1 {

bool phase::isTerminal(const std::string& p) {
  return p == kSucceeded || p == kFailed || p == kRolledBack;
}

namespace {

// Why the text being converted is refused: a bound it exceeded, or a value
// JSON cannot hold (thrown from the recursion, caught in yamlToJson).
struct LimitExceeded {
  std::string message;
};

bool isDigits(std::string_view s, size_t& i) {
  size_t start = i;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
  return i > start;
}

// -?(0|[1-9][0-9]*): hand-written, as libstdc++'s std::regex recurses once per
// character and overflows the stack on a long scalar.
bool isYamlInt(std::string_view s) {
  size_t i = (!s.empty() && s[0] == '-') ? 1 : 0;
  if (i >= s.size()) return false;
  if (s[i] == '0') return i + 1 == s.size();
  return isDigits(s, i) && i == s.size();
}

// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?
bool isYamlFloat(std::string_view s) {
  size_t i = (!s.empty() && s[0] == '-') ? 1 : 0;
  if (i >= s.size()) return false;
  if (s[i] == '0') {
    ++i;
  } else if (s[i] < '1' || s[i] > '9' || !isDigits(s, i)) {
    return false;
  }
  if (i < s.size() && s[i] == '.' && !isDigits(s, ++i)) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (!isDigits(s, i)) return false;
  }
  return i == s.size();
}

// yaml-cpp turns the escapes "\N" and "\_" into single bytes that are not
// UTF-8 (found by tests/fuzz yaml_to_json_fuzzer: "\NUL"), and JSON text
// must be UTF-8 (dump() throws otherwise).
const std::string& utf8Scalar(const YAML::Node& n) {
  const std::string& s = n.Scalar();
  if (!isValidUtf8(s))
    throw LimitExceeded{"a string is not valid UTF-8 (the YAML escapes \\N and \\_ are not supported)"};
  return s;
}

Json scalarToJson(const YAML::Node& n) {
  const std::string& s = utf8Scalar(n);
  if (n.Tag() == "!") return s;  // quoted: always a string
  if (s == "true" || s == "True") return true;
  if (s == "false" || s == "False") return false;
  if (s == "null" || s == "~") return nullptr;
  if (isYamlInt(s)) {
    errno = 0;
    char* end = nullptr;
    long long v = std::strtoll(s.c_str(), &end, 10);
    if (errno == ERANGE) return s;  // beyond int64: kept as text, as before
    return static_cast<int64_t>(v);
  }
  if (isYamlFloat(s)) {
    errno = 0;
    double v = std::strtod(s.c_str(), nullptr);
    if (errno == ERANGE && (v == HUGE_VAL || v == -HUGE_VAL))
      throw LimitExceeded{absl::StrCat("number out of range: ", s.substr(0, 40))};
    return v;
  }
  return s;
}

// Depth and value count are bounded here, not only by yaml-cpp (which stops
// at 2000 levels): aliases can make a small document expand without limit,
// and an alias may even refer to the node that contains it.
Json yamlNodeToJson(const YAML::Node& n, int depth, size_t& values) {
  if (depth > kMaxNestingDepth)
    throw LimitExceeded{absl::StrCat("nested deeper than ", kMaxNestingDepth, " levels")};
  if (++values > kMaxValues)
    throw LimitExceeded{absl::StrCat("more than ", kMaxValues, " values (after YAML aliases are expanded)")};
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Sequence: {
      Json a = Json::array();
      for (const auto& item : n) a.push_back(yamlNodeToJson(item, depth + 1, values));
      return a;
    }
    case YAML::NodeType::Map: {
      Json o = Json::object();
      for (const auto& kv : n) {
        std::string key = kv.first.as<std::string>();
        if (!isValidUtf8(key)) throw LimitExceeded{"a key is not valid UTF-8"};
        o[key] = yamlNodeToJson(kv.second, depth + 1, values);
      }
      return o;
    }
    case YAML::NodeType::Scalar:
      return scalarToJson(n);
  }
  return nullptr;
}

// A user's value in an error message: quoted, and cut so that a huge value
// cannot make a huge condition message.
std::string quotedValue(const std::string& s) {
  constexpr size_t kMax = 64;
  if (s.size() <= kMax) return absl::StrCat("\"", s, "\"");
  return absl::StrCat("\"", truncateUtf8(s, kMax), "...\"");
}

absl::Status fieldError(const std::string& path, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

// As the API server words it for maxItems and maxLength.
absl::Status tooMany(const std::string& path, size_t n, size_t max) {
  return fieldError(path, absl::StrCat("Too many: ", n, ": must have at most ", max, " items"));
}
absl::Status tooLong(const std::string& path, size_t n, size_t max) {
  return fieldError(path, absl::StrCat("Too long: ", n, " bytes: may not be more than ", max));
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
  if (text.size() > kMaxChangeTextBytes)
    return absl::InvalidArgumentError(absl::StrCat("too long: ", text.size(), " bytes, at most ",
                                                   kMaxChangeTextBytes, " (1 MiB) are allowed"));
  if (auto nul = text.find('\0'); nul != std::string::npos)
    return absl::InvalidArgumentError(absl::StrCat("holds a NUL byte at offset ", nul));
  if (auto bad = invalidUtf8At(text); bad != std::string::npos)
    return absl::InvalidArgumentError(absl::StrCat("not valid UTF-8 at offset ", bad));
  try {
    size_t values = 0;
    return yamlNodeToJson(YAML::Load(text), 0, values);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("not valid YAML or JSON: ", e.what()));
  } catch (const LimitExceeded& e) {
    return absl::InvalidArgumentError(e.message);
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
      return fieldError("spec.target.apiVersion", "Unsupported value: " + quotedValue(out.target.apiVersion) +
                                                      ": supported values: \"apps/v1\"");
    if (out.target.kind != "Deployment" && out.target.kind != "StatefulSet" &&
        out.target.kind != "DaemonSet")
      return fieldError("spec.target.kind",
                        "Unsupported value: " + quotedValue(out.target.kind) +
                            ": supported values: \"Deployment\", \"StatefulSet\", \"DaemonSet\"");
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
        return fieldError("spec.change.type", "Unsupported value: " + quotedValue(out.change.type) +
                                                  ": supported values: \"strategic\", \"merge\", \"json\"");
      auto parsed = yamlToJson(out.change.patch);
      if (!parsed.ok()) return fieldError("spec.change.patch", std::string(parsed.status().message()));
      if (out.change.type == "json" ? !parsed->is_array() : !parsed->is_object())
        return fieldError("spec.change.patch", out.change.type == "json"
                                                   ? "a json patch must be a list of operations"
                                                   : "must be a map of fields to change");
      // The operator adds metadata.resourceVersion to a map patch (optimistic
      // concurrency); found by tests/fuzz patch_spec_fuzzer: {"metadata": 5}.
      if (parsed->is_object() && parsed->contains("metadata") && !(*parsed)["metadata"].is_object())
        return fieldError("spec.change.patch", "metadata must be a map");
      // It may add an annotation to spec.template.metadata (config changes).
      if (parsed->is_object() && parsed->contains("spec")) {
        const Json& s = (*parsed)["spec"];
        if (!s.is_object() || (s.contains("template") && (!s["template"].is_object() ||
                                                          (s["template"].contains("metadata") &&
                                                           !s["template"]["metadata"].is_object()))))
          return fieldError("spec.change.patch", "spec, spec.template and spec.template.metadata must be maps");
      }
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
    if (auto n = c.value("config", Json::array()).size(); n > kMaxConfigChanges)
      return tooMany("spec.change.config", n, kMaxConfigChanges);
    for (size_t i = 0; i < c.value("config", Json::array()).size(); ++i) {
      const Json& cc = c["config"][i];
      std::string path = absl::StrCat("spec.change.config[", i, "]");
      ConfigChange x{cc.value("kind", ""), cc.value("name", ""), cc.value("type", "merge"), "",
                     cc.value("fromSecret", "")};
      if (x.kind != "ConfigMap" && x.kind != "Secret")
        return fieldError(path + ".kind", "Unsupported value: must be ConfigMap or Secret");
      if (!isDnsSubdomain(x.name)) return fieldError(path + ".name", "Required value");
      if (x.kind == "Secret") {
        // Anyone who may read Patches would read a value written here.
        if (cc.contains("patch"))
          return fieldError(path + ".patch",
                            "Forbidden: a Secret's new values come from another Secret (fromSecret), "
                            "never from text in the Patch");
        if (!isDnsSubdomain(x.fromSecret))
          return fieldError(path + ".fromSecret", "Required value: the Secret holding the new values");
        if (x.fromSecret == x.name) return fieldError(path + ".fromSecret", "Invalid value: the Secret itself");
        x.type = "merge";
        out.change.config.push_back(std::move(x));
        continue;
      }
      if (!x.fromSecret.empty()) return fieldError(path + ".fromSecret", "Forbidden: for Secrets only");
      x.patch = cc.contains("patch") && cc["patch"].is_string() ? cc["patch"].get<std::string>()
                                                                : cc.value("patch", Json()).dump();
      if (x.type != "strategic" && x.type != "merge" && x.type != "json")
        return fieldError(path + ".type", "Unsupported value: must be strategic, merge or json");
      auto parsed = yamlToJson(x.patch);
      if (!parsed.ok()) return fieldError(path + ".patch", std::string(parsed.status().message()));
      if (parsed->is_null())
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
    // The CRD's maxLength (characters there, bytes here: stricter, never looser).
    if (out.ticket.size() > 128) return tooLong("spec.ticket", out.ticket.size(), 128);
    if (out.rootCause.size() > 4096) return tooLong("spec.rootCause", out.rootCause.size(), 4096);
    if (out.description.size() > 16384) return tooLong("spec.description", out.description.size(), 16384);
    out.priority = spec.value("priority", "normal");
    if (out.priority != "normal" && out.priority != "emergency")
      return fieldError("spec.priority", "Unsupported value: " + quotedValue(out.priority) +
                                             ": supported values: \"normal\", \"emergency\"");

    const Json& env = spec.value("environment", Json::object());
    out.envReplicas = env.value("replicas", int64_t{1});
    if (out.envReplicas < 1 || out.envReplicas > 10)
      return fieldError("spec.environment.replicas", "must be between 1 and 10");
    if (auto n = env.value("include", Json::array()).size(); n > kMaxIncludes)
      return tooMany("spec.environment.include", n, kMaxIncludes);
    for (const auto& inc : env.value("include", Json::array())) {
      Include i{inc.value("kind", ""), inc.value("name", "")};
      if (i.kind != "Deployment" && i.kind != "StatefulSet" && i.kind != "Service" &&
          i.kind != "ConfigMap" && i.kind != "Secret")
        return fieldError("spec.environment.include.kind",
                          "Unsupported value: " + quotedValue(i.kind) +
                              ": supported values: Deployment, StatefulSet, Service, ConfigMap, Secret");
      out.include.push_back(std::move(i));
    }
    out.secrets = env.value("secrets", "omit");
    if (out.secrets != "copy" && out.secrets != "omit")
      return fieldError("spec.environment.secrets", "Unsupported value: must be copy or omit");
    out.ttlSecondsAfterFinished = env.value("ttlSecondsAfterFinished", int64_t{600});
    out.keepOnFailure = env.value("keepOnFailure", true);
    out.keepOnFailureSeconds = env.value("keepOnFailureSeconds", int64_t{86400});
    if (out.keepOnFailureSeconds < 60 || out.keepOnFailureSeconds > 604800)
      return fieldError("spec.environment.keepOnFailureSeconds",
                        "Invalid value: " + std::to_string(out.keepOnFailureSeconds) + ": must be 60 to 604800");
    out.readyTimeoutSeconds = env.value("readyTimeoutSeconds", int64_t{300});

    const Json& tests = spec.value("tests", Json::array());
    if (tests.size() > kMaxTests) return tooMany("spec.tests", tests.size(), kMaxTests);
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
        if (other.name == ts.name) return fieldError(path + ".name", "Duplicate value: " + quotedValue(ts.name));
      out.tests.push_back(std::move(ts));
    }
    if (out.tests.empty() && !out.change.rollbackTo)
      return fieldError("spec.tests", "Required value: a patch must be tested (only rollbacks may skip tests)");

    const Json& promo = spec.value("promotion", Json::object());
    const Json& appr = promo.value("approval", Json::object());
    out.approvalRequired = appr.value("required", false);
    out.approvers = appr.value("approvers", int64_t{1});
    out.author = spec.value("author", "");
    for (const auto& g : spec.value("authorGroups", Json::array())) out.authorGroups.push_back(g.get<std::string>());
    if (!out.authorGroups.empty() && out.author.empty())
      return fieldError("spec.authorGroups", "Forbidden: needs spec.author");
    // Without an author there is no one an approval must differ from.
    if (out.approvalRequired && out.author.empty())
      return fieldError("spec.author", "Required value: a patch that needs approval must name its author");
    const Json& ver = spec.value("verification", Json::object());
    out.verificationTimeoutSeconds = ver.value("timeoutSeconds", int64_t{300});
    out.bakeSeconds = ver.value("bakeSeconds", int64_t{30});
    if (out.bakeSeconds < 0 || out.bakeSeconds > 86400)
      return fieldError("spec.verification.bakeSeconds", "must be between 0 and 86400");
    const Json& rb = spec.value("rollback", Json::object());
    out.automaticRollback = rb.value("automatic", true);
    out.revisionHistoryLimit = spec.value("revisionHistoryLimit", int64_t{10});
  } catch (const Json::exception& e) {
    return fieldError("spec", absl::StrCat("wrong type: ", e.what()));
  }
  return out;
}

}  // namespace patchgate::api::v1alpha1
