#include "controllers/patch/workload.h"

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "kube/errors.h"

namespace patchgate::controllers::patch {

std::string hashJson(const Json& value) {
  std::string text = value.dump();  // nlohmann orders object keys: canonical
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

const Json& podTemplate(const Json& workload) { return jsonAt(workload, "/spec/template"); }

std::string templateHash(const Json& workload) { return hashJson(podTemplate(workload)); }

namespace {
const Json& conditionOf(const Json& obj, const std::string& type) {
  static const Json kNull;
  for (const auto& c : jsonAt(obj, "/status/conditions"))
    if (c.value("type", "") == type) return c;
  return kNull;
}
}  // namespace

Health workloadHealth(const Json& w, int64_t minGeneration) {
  Health h;
  std::string kind = w.value("kind", "");
  int64_t generation = std::max(jsonInt(w, "/metadata/generation"), minGeneration);
  int64_t observed = jsonInt(w, "/status/observedGeneration");
  if (observed < generation) {
    h.message = absl::StrCat("waiting for the ", kind, " controller to observe generation ",
                             generation, " (seen ", observed, ")");
    return h;
  }
  if (kind == "Deployment") {
    int64_t want = jsonInt(w, "/spec/replicas", 1);
    int64_t updated = jsonInt(w, "/status/updatedReplicas");
    int64_t available = jsonInt(w, "/status/availableReplicas");
    int64_t total = jsonInt(w, "/status/replicas");
    const Json& progressing = conditionOf(w, "Progressing");
    if (progressing.is_object() && progressing.value("reason", "") == "ProgressDeadlineExceeded") {
      h.failed = true;
      h.message = absl::StrCat("rollout exceeded its progress deadline: ",
                               progressing.value("message", ""));
      return h;
    }
    if (updated < want) {
      h.message = absl::StrCat(updated, " of ", want, " replicas updated");
    } else if (total > updated) {
      h.message = absl::StrCat(total - updated, " old replicas pending termination");
    } else if (available < want) {
      h.message = absl::StrCat(available, " of ", want, " updated replicas available");
    } else {
      h.healthy = true;
      h.message = absl::StrCat("rollout complete: ", available, " of ", want, " replicas available");
    }
    return h;
  }
  if (kind == "StatefulSet") {
    int64_t want = jsonInt(w, "/spec/replicas", 1);
    int64_t updated = jsonInt(w, "/status/updatedReplicas");
    int64_t ready = jsonInt(w, "/status/readyReplicas");
    std::string cur = jsonString(w, "/status/currentRevision");
    std::string upd = jsonString(w, "/status/updateRevision");
    // OnDelete: the controller replaces no pod; each takes the change when it
    // is deleted. Healthy = all pods ready.
    if (jsonString(w, "/spec/updateStrategy/type") == "OnDelete") {
      if (ready < want) {
        h.message = absl::StrCat("OnDelete: ", ready, " of ", want, " pods ready");
      } else {
        h.healthy = true;
        h.message = absl::StrCat("OnDelete: ", ready, " of ", want,
                                 " pods ready (pods take the change when they are deleted)");
      }
      return h;
    }
    // A partition keeps the pods with an ordinal below it on the old revision:
    // only replicas - partition pods are to be updated.
    int64_t partition = jsonInt(w, "/spec/updateStrategy/rollingUpdate/partition");
    if (partition > 0) {
      int64_t toUpdate = std::max<int64_t>(0, want - partition);
      if (updated < toUpdate) {
        h.message = absl::StrCat(updated, " of ", toUpdate, " pods updated (partition ", partition, ")");
      } else if (ready < want) {
        h.message = absl::StrCat(ready, " of ", want, " pods ready (partition ", partition, ")");
      } else {
        h.healthy = true;
        h.message = absl::StrCat("rollout complete up to partition ", partition, ": ", toUpdate, " of ", want,
                                 " pods updated, ", ready, " ready");
      }
      return h;
    }
    if (updated < want) {
      h.message = absl::StrCat(updated, " of ", want, " pods updated");
    } else if (ready < want) {
      h.message = absl::StrCat(ready, " of ", want, " pods ready");
    } else if (!upd.empty() && cur != upd) {
      h.message = "rolling update in progress";
    } else {
      h.healthy = true;
      h.message = absl::StrCat("rollout complete: ", ready, " of ", want, " pods ready");
    }
    return h;
  }
  if (kind == "DaemonSet") {
    int64_t want = jsonInt(w, "/status/desiredNumberScheduled");
    int64_t updated = jsonInt(w, "/status/updatedNumberScheduled");
    int64_t available = jsonInt(w, "/status/numberAvailable");
    if (updated < want || available < want) {
      h.message = absl::StrCat(updated, " of ", want, " pods updated, ", available, " available");
    } else {
      h.healthy = true;
      h.message = absl::StrCat("rollout complete: ", available, " of ", want, " pods available");
    }
    return h;
  }
  h.failed = true;
  h.message = "unsupported kind " + kind;
  return h;
}

absl::StatusOr<std::string> workloadSelector(const Json& workload) {
  std::vector<std::string> parts;
  const Json& ml = jsonAt(workload, "/spec/selector/matchLabels");
  if (ml.is_object())
    for (auto& [k, v] : ml.items())
      if (v.is_string()) parts.push_back(absl::StrCat(k, "=", v.get<std::string>()));
  for (const auto& e : jsonAt(workload, "/spec/selector/matchExpressions")) {
    std::string key = e.value("key", "");
    std::string op = e.value("operator", "");
    std::vector<std::string> values;
    for (const auto& v : e.value("values", Json::array()))
      if (v.is_string()) values.push_back(v.get<std::string>());
    if (key.empty()) return absl::InvalidArgumentError("a matchExpression of the workload's selector has no key");
    if (op == "In" || op == "NotIn") {
      if (values.empty())
        return absl::InvalidArgumentError(absl::StrCat("selector expression on ", key, ": ", op, " without values"));
      parts.push_back(absl::StrCat(key, op == "In" ? " in (" : " notin (", absl::StrJoin(values, ","), ")"));
    } else if (op == "Exists") {
      parts.push_back(key);
    } else if (op == "DoesNotExist") {
      parts.push_back(absl::StrCat("!", key));
    } else {
      return absl::InvalidArgumentError(absl::StrCat("selector expression on ", key, ": unknown operator \"", op, "\""));
    }
  }
  if (parts.empty())
    return absl::InvalidArgumentError("the workload's selector is empty: it would select every pod of the namespace");
  return absl::StrJoin(parts, ",");
}

std::string hostAccess(const Json& workload) {
  const Json& pod = jsonAt(podTemplate(workload), "/spec");
  for (const char* f : {"hostNetwork", "hostPID", "hostIPC"})
    if (pod.is_object() && pod.contains(f) && pod[f] == Json(true)) return absl::StrCat("its pods use ", f);
  for (const auto& v : jsonAt(pod, "/volumes"))
    if (v.is_object() && v.contains("hostPath"))
      return absl::StrCat("its pods mount the node's ", jsonString(v, "/hostPath/path"), " (hostPath volume ",
                          v.value("name", ""), ")");
  for (const char* list : {"/initContainers", "/containers", "/ephemeralContainers"}) {
    for (const auto& c : jsonAt(pod, list)) {
      std::string name = jsonString(c, "/name");
      if (jsonAt(c, "/securityContext/privileged") == Json(true))
        return absl::StrCat("container ", name, " is privileged");
      for (const auto& port : jsonAt(c, "/ports"))
        if (port.is_object() && port.value("hostPort", 0) != 0)
          return absl::StrCat("container ", name, " binds the node's port ", port.value("hostPort", 0));
    }
  }
  return "";
}

void hardenForEnvironment(Json& copy) {
  Json& pod = copy["spec"]["template"]["spec"];
  for (const char* f : {"priorityClassName", "priority", "preemptionPolicy", "nodeName"}) pod.erase(f);
  if (copy.value("kind", "") != "StatefulSet") return;
  Json claims = jsonAt(copy, "/spec/volumeClaimTemplates");
  if (!claims.is_array() || claims.empty()) return;
  if (!pod["volumes"].is_array()) pod["volumes"] = Json::array();
  for (const auto& claim : claims) {
    Json spec = claim.value("spec", Json::object());
    spec.erase("dataSource");  // a snapshot of production's data is not ours to clone
    spec.erase("dataSourceRef");
    pod["volumes"].push_back({{"name", jsonString(claim, "/metadata/name")},
                              {"ephemeral", {{"volumeClaimTemplate", {{"spec", spec}}}}}});
  }
  copy["spec"].erase("volumeClaimTemplates");
}

bool isGitOpsTrackingKey(std::string_view key) {
  auto slash = key.find('/');
  if (slash == std::string_view::npos) return false;
  std::string_view prefix = key.substr(0, slash);
  // Argo CD's label tracking uses app.kubernetes.io/instance by default.
  return prefix.ends_with(".toolkit.fluxcd.io") || prefix == "argocd.argoproj.io" ||
         key == "app.kubernetes.io/instance";
}

int64_t PodTrouble::restartsSince(const std::map<std::string, int64_t>& baseline) const {
  int64_t more = 0;
  for (const auto& [uid, n] : byPod) {
    auto it = baseline.find(uid);
    int64_t before = it == baseline.end() ? 0 : it->second;
    if (n > before) more += n - before;
  }
  return more;
}

PodTrouble podTrouble(const Json& pods) {
  PodTrouble t;
  for (const auto& pod : pods.value("items", Json::array())) {
    if (!jsonString(pod, "/metadata/deletionTimestamp").empty()) continue;  // going away
    std::string uid = jsonString(pod, "/metadata/uid");
    if (uid.empty()) uid = jsonString(pod, "/metadata/name");
    for (const auto& cs : jsonAt(pod, "/status/containerStatuses")) {
      int64_t n = cs.value("restartCount", int64_t{0});
      t.restarts += n;
      t.byPod[uid] += n;
      std::string waiting = jsonString(cs, "/state/waiting/reason");
      if (t.problem.empty() && (waiting == "CrashLoopBackOff" || waiting == "ErrImagePull" ||
                                waiting == "ImagePullBackOff" || waiting == "CreateContainerConfigError")) {
        t.problem = absl::StrCat("pod ", jsonString(pod, "/metadata/name"), " container ", cs.value("name", ""),
                                 ": ", waiting);
        const Json& last = jsonAt(cs, "/lastState/terminated");
        if (last.is_object())
          absl::StrAppend(&t.problem, " (last exit code ", last.value("exitCode", int64_t{0}),
                          last.contains("reason") ? ", " + last.value("reason", "") : std::string(), ")");
      }
    }
  }
  return t;
}

References podReferences(const Json& tmpl) {
  References r;
  auto add = [](std::vector<std::string>& v, const std::string& name) {
    if (!name.empty() && std::find(v.begin(), v.end(), name) == v.end()) v.push_back(name);
  };
  const Json& spec = jsonAt(tmpl, "/spec");
  r.serviceAccount = spec.value("serviceAccountName", "");
  for (const auto& v : spec.value("volumes", Json::array())) {
    if (v.contains("configMap")) add(r.configMaps, v["configMap"].value("name", ""));
    if (v.contains("secret")) add(r.secrets, v["secret"].value("secretName", ""));
    if (v.contains("projected")) {
      for (const auto& s : v["projected"].value("sources", Json::array())) {
        if (s.contains("configMap")) add(r.configMaps, s["configMap"].value("name", ""));
        if (s.contains("secret")) add(r.secrets, s["secret"].value("name", ""));
      }
    }
  }
  for (const auto& ps : spec.value("imagePullSecrets", Json::array())) add(r.secrets, ps.value("name", ""));
  for (const char* list : {"containers", "initContainers"}) {
    for (const auto& c : spec.value(list, Json::array())) {
      for (const auto& e : c.value("env", Json::array())) {
        const Json& from = e.value("valueFrom", Json::object());
        if (from.contains("configMapKeyRef")) add(r.configMaps, from["configMapKeyRef"].value("name", ""));
        if (from.contains("secretKeyRef")) add(r.secrets, from["secretKeyRef"].value("name", ""));
      }
      for (const auto& e : c.value("envFrom", Json::array())) {
        if (e.contains("configMapRef")) add(r.configMaps, e["configMapRef"].value("name", ""));
        if (e.contains("secretRef")) add(r.secrets, e["secretRef"].value("name", ""));
      }
    }
  }
  return r;
}

const kube::ResourceType& configType(const std::string& kind) {
  return kind == "Secret" ? kube::resources::kSecret : kube::resources::kConfigMap;
}

kube::PatchType patchTypeFromName(const std::string& name) {
  if (name == "json") return kube::PatchType::kJson;
  if (name == "merge") return kube::PatchType::kMerge;
  return kube::PatchType::kStrategicMerge;
}

std::string configChangeDigest(const api::v1alpha1::PatchSpec& spec) {
  if (spec.change.config.empty()) return "";
  Json all = Json::array();
  for (const auto& c : spec.change.config) {
    if (!c.fromSecret.empty()) {
      // The pod template's annotation is readable by anyone who may read the
      // workload: it names the source and its version, never a digest of
      // the values (a weak value could be guessed offline).
      all.push_back({{"kind", c.kind}, {"name", c.name}, {"fromSecret", c.fromSecret},
                     {"version", c.fromSecretVersion}});
      continue;
    }
    all.push_back({{"kind", c.kind}, {"name", c.name}, {"type", c.type}, {"patch", c.patch}});
  }
  return hashJson(all);
}

namespace {
std::string pointerEscape(const std::string& key) {
  std::string out;
  for (char c : key) {
    if (c == '~') out += "~0";
    else if (c == '/') out += "~1";
    else out += c;
  }
  return out;
}
}  // namespace

void addAnnotationOp(Json& ops, const Json& current, const std::string& mapPath, const std::string& key,
                     const std::string& value) {
  if (jsonAt(current, mapPath.c_str()).is_object())
    ops.push_back({{"op", "add"}, {"path", mapPath + "/" + pointerEscape(key)}, {"value", value}});
  else
    ops.push_back({{"op", "add"}, {"path", mapPath}, {"value", {{key, value}}}});
}

absl::StatusOr<ChangeRequest> workloadChange(const api::v1alpha1::PatchSpec& spec,
                                             const Json& current, const Json* revisionTemplate,
                                             bool precondition, const std::string& lastWrite) {
  namespace v1 = api::v1alpha1;
  std::string rv = jsonString(current, "/metadata/resourceVersion");
  std::string configDigest = configChangeDigest(spec);
  // Our annotations, as JSON-patch ops (for json changes) or merged into a
  // strategic/merge body.
  auto jsonOps = [&](Json& ops) {
    if (!lastWrite.empty()) addAnnotationOp(ops, current, "/metadata/annotations", v1::kAnnotationLastWrite, lastWrite);
    if (!configDigest.empty())
      addAnnotationOp(ops, current, "/spec/template/metadata/annotations", v1::kAnnotationConfigHash, configDigest);
  };
  auto mergeAnnotations = [&](Json& body) -> absl::Status {
    for (const char* f : {"metadata", "spec"})
      if (body.contains(f) && !body[f].is_object())
        return absl::InvalidArgumentError(absl::StrCat("spec.change.patch: ", f, " must be a map"));
    if (!lastWrite.empty()) body["metadata"]["annotations"][v1::kAnnotationLastWrite] = lastWrite;
    if (!configDigest.empty()) {
      Json& spec = body["spec"];
      if (spec.contains("template") && !spec["template"].is_object())
        return absl::InvalidArgumentError("spec.change.patch: spec.template must be a map");
      Json& tmpl = spec["template"];
      if (tmpl.contains("metadata") && !tmpl["metadata"].is_object())
        return absl::InvalidArgumentError("spec.change.patch: spec.template.metadata must be a map");
      tmpl["metadata"]["annotations"][v1::kAnnotationConfigHash] = configDigest;
    }
    return absl::OkStatus();
  };
  if (spec.change.rollbackTo) {
    if (!revisionTemplate) return absl::NotFoundError("rollback revision has no pod template");
    Json ops = Json::array();
    if (precondition) ops.push_back({{"op", "test"}, {"path", "/metadata/resourceVersion"}, {"value", rv}});
    ops.push_back({{"op", "replace"}, {"path", "/spec/template"}, {"value", *revisionTemplate}});
    if (!lastWrite.empty()) addAnnotationOp(ops, current, "/metadata/annotations", v1::kAnnotationLastWrite, lastWrite);
    return ChangeRequest{kube::PatchType::kJson, ops.dump()};
  }
  if (!spec.change.image.empty()) {
    // "name=image" sets one container; a bare image needs a single container.
    std::string container, image = spec.change.image;
    if (auto eq = image.find('='); eq != std::string::npos) {
      container = image.substr(0, eq);
      image = image.substr(eq + 1);
    } else {
      const Json& cs = jsonAt(current, "/spec/template/spec/containers");
      if (!cs.is_array() || cs.size() != 1)
        return absl::InvalidArgumentError(
            "spec.change.image: the target has several containers; write container=image");
      container = cs[0].value("name", "");
    }
    Json p = {{"spec", {{"template", {{"spec", {{"containers", Json::array({{{"name", container}, {"image", image}}})}}}}}}}};
    if (precondition) p["metadata"]["resourceVersion"] = rv;
    if (auto s = mergeAnnotations(p); !s.ok()) return s;
    return ChangeRequest{kube::PatchType::kStrategicMerge, p.dump()};
  }
  auto parsed = api::v1alpha1::yamlToJson(spec.change.patch);
  if (!parsed.ok()) return parsed.status();
  kube::PatchType type = patchTypeFromName(spec.change.type);
  if (type == kube::PatchType::kJson) {
    Json ops = Json::array();
    if (precondition) ops.push_back({{"op", "test"}, {"path", "/metadata/resourceVersion"}, {"value", rv}});
    jsonOps(ops);
    for (auto& op : *parsed) ops.push_back(op);
    return ChangeRequest{type, ops.dump()};
  }
  // A config-only Patch has no workload text: its workload change is the
  // config digest alone.
  Json p = parsed->is_null() ? Json::object() : *parsed;
  if (!p.is_object()) return absl::InvalidArgumentError("spec.change.patch: must be a map of fields to change");
  if (precondition) {
    // parseSpec refuses this; checked again so that a caller without it gets
    // an error, not an exception.
    if (p.contains("metadata") && !p["metadata"].is_object())
      return absl::InvalidArgumentError("spec.change.patch: metadata must be a map");
    p["metadata"]["resourceVersion"] = rv;
  }
  if (auto s = mergeAnnotations(p); !s.ok()) return s;
  return ChangeRequest{type, p.dump()};
}

absl::StatusOr<ChangeRequest> configChange(const api::v1alpha1::ConfigChange& change) {
  auto parsed = api::v1alpha1::yamlToJson(change.patch);
  if (!parsed.ok()) return parsed.status();
  return ChangeRequest{patchTypeFromName(change.type), parsed->dump()};
}

namespace {
std::string shortValue(const Json& v) {
  std::string s = v.is_string() ? "\"" + v.get<std::string>() + "\"" : v.dump();
  return s.size() > 200 ? s.substr(0, 197) + "..." : s;
}
}  // namespace

std::string describeDiff(const Json& before, const Json& after) {
  std::string out;
  for (const auto& op : Json::diff(before, after)) {
    std::string path = op.value("path", "");
    std::string kind = op.value("op", "");
    Json::json_pointer ptr(path);
    if (kind == "replace") {
      absl::StrAppend(&out, path, ": ", shortValue(before.at(ptr)), " -> ", shortValue(op["value"]), "\n");
    } else if (kind == "add") {
      absl::StrAppend(&out, path, ": (none) -> ", shortValue(op["value"]), "\n");
    } else if (kind == "remove") {
      absl::StrAppend(&out, path, ": ", shortValue(before.at(ptr)), " -> (removed)\n");
    }
  }
  return out;
}

absl::Status ensureCreated(kube::Client& client, const kube::ResourceType& rt, const std::string& ns,
                           const Json& obj) {
  auto r = client.create(rt, ns, obj);
  if (r.ok() || kube::isAlreadyExists(r.status())) return absl::OkStatus();
  return r.status();
}

}  // namespace patchgate::controllers::patch
