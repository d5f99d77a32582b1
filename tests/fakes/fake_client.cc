#include "fakes/fake_client.h"

#include <algorithm>
#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "kube/errors.h"
#include "kube/resource.h"

namespace patchgate::testing {
namespace {

using kube::apiError;
using kube::WatchEventType;

std::string qualified(const kube::ResourceType& rt) {
  return rt.group.empty() ? rt.resource : absl::StrCat(rt.resource, ".", rt.group);
}

absl::Status notFound(const kube::ResourceType& rt, const std::string& name) {
  return apiError(404, "NotFound", absl::StrCat(qualified(rt), " \"", name, "\" not found"));
}

absl::Status conflict(const kube::ResourceType& rt, const std::string& name,
                      const std::string& why) {
  return apiError(409, "Conflict",
                  absl::StrCat("Operation cannot be fulfilled on ", qualified(rt), " \"", name,
                               "\": ", why));
}

constexpr char kModified[] =
    "the object has been modified; please apply your changes to the latest version and try again";

const char* patchTypeName(kube::PatchType t) {
  switch (t) {
    case kube::PatchType::kJson: return "json";
    case kube::PatchType::kMerge: return "merge";
    case kube::PatchType::kStrategicMerge: return "strategic";
    case kube::PatchType::kApply: return "apply";
  }
  return "?";
}

// The object without the fields that do not count for metadata.generation.
Json specPart(const Json& obj) {
  if (!obj.is_object()) return obj;
  Json copy = obj;
  copy.erase("metadata");
  copy.erase("status");
  return copy;
}

bool hasFinalizers(const Json& obj) {
  const Json& f = jsonAt(obj, "/metadata/finalizers");
  return f.is_array() && !f.empty();
}

std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && absl::ascii_isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && absl::ascii_isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

// Splits at commas outside parentheses.
std::vector<std::string> splitRequirements(const std::string& selector) {
  std::vector<std::string> out;
  std::string cur;
  int depth = 0;
  for (char c : selector) {
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (c == ',' && depth == 0) {
      out.push_back(trim(cur));
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  out.push_back(trim(cur));
  return out;
}

absl::StatusOr<bool> matchesFieldSelector(const std::string& selector, const Json& obj) {
  if (trim(selector).empty()) return true;
  for (const auto& req : splitRequirements(selector)) {
    bool negate = false;
    size_t pos = req.find("!=");
    size_t len = 2;
    if (pos != std::string::npos) {
      negate = true;
    } else if ((pos = req.find("==")) != std::string::npos) {
      len = 2;
    } else if ((pos = req.find('=')) != std::string::npos) {
      len = 1;
    } else {
      return apiError(400, "BadRequest", absl::StrCat("invalid field selector '", selector, "'"));
    }
    std::string path = "/" + trim(req.substr(0, pos));
    std::replace(path.begin(), path.end(), '.', '/');
    std::string want = trim(req.substr(pos + len));
    const Json& v = jsonAt(obj, path.c_str());
    std::string have = v.is_string() ? v.get<std::string>() : (v.is_null() ? "" : v.dump());
    if ((have == want) == negate) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<bool> matchesLabelSelector(const std::string& selector, const Json& labels) {
  if (trim(selector).empty()) return true;
  auto label = [&](const std::string& key) -> const Json* {
    if (!labels.is_object()) return nullptr;
    auto it = labels.find(key);
    return it == labels.end() ? nullptr : &*it;
  };
  auto invalid = [&] {
    return apiError(400, "BadRequest",
                    absl::StrCat("unable to parse requirement: invalid label selector '", selector,
                                 "'"));
  };
  for (const auto& req : splitRequirements(selector)) {
    if (req.empty()) return invalid();
    if (req[0] == '!') {
      if (label(trim(req.substr(1)))) return false;
      continue;
    }
    if (size_t open = req.find('('); open != std::string::npos) {
      if (req.back() != ')') return invalid();
      std::vector<std::string> head =
          absl::StrSplit(trim(req.substr(0, open)), ' ', absl::SkipWhitespace());
      if (head.size() != 2 || (head[1] != "in" && head[1] != "notin")) return invalid();
      std::set<std::string> values;
      for (auto v : absl::StrSplit(req.substr(open + 1, req.size() - open - 2), ','))
        values.insert(trim(std::string_view(v.data(), v.size())));
      const Json* have = label(head[0]);
      bool in = have && have->is_string() && values.count(have->get<std::string>());
      if ((head[1] == "in") != in) return false;
      continue;
    }
    size_t pos;
    if ((pos = req.find("!=")) != std::string::npos) {
      const Json* have = label(trim(req.substr(0, pos)));
      if (have && *have == trim(req.substr(pos + 2))) return false;
      continue;
    }
    size_t len = 2;
    if ((pos = req.find("==")) == std::string::npos) {
      pos = req.find('=');
      len = 1;
    }
    if (pos != std::string::npos) {
      std::string key = trim(req.substr(0, pos));
      if (key.empty()) return invalid();
      const Json* have = label(key);
      if (!have || *have != trim(req.substr(pos + len))) return false;
      continue;
    }
    if (req.find(' ') != std::string::npos) return invalid();
    if (!label(req)) return false;
  }
  return true;
}

FakeClient::FakeClient() : ownedClock_(std::make_unique<RealClock>()) { clock_ = ownedClock_.get(); }
FakeClient::FakeClient(Clock& clock) : clock_(&clock) {}
FakeClient::~FakeClient() { interruptWatches(); }

std::string FakeClient::resourceId(const kube::ResourceType& rt) {
  return absl::StrCat(rt.group, "/", rt.resource);
}

std::string FakeClient::nsFor(const kube::ResourceType& rt, const std::string& ns,
                              const Json& obj) const {
  if (!rt.namespaced) return "";
  return ns.empty() ? jsonString(obj, "/metadata/namespace") : ns;
}

absl::Status FakeClient::recordLocked(Call call) {
  std::string verb = call.verb, resource = call.resource;
  calls_.push_back(std::move(call));
  cv_.notify_all();
  for (auto it = failures_.begin(); it != failures_.end(); ++it) {
    if (it->verb == verb && (it->resource.empty() || it->resource == resource)) {
      absl::Status s = it->status;
      failures_.erase(it);
      return s;
    }
  }
  return absl::OkStatus();
}

std::string FakeClient::nextRvLocked() { return std::to_string(++rv_); }

void FakeClient::emitLocked(const kube::ResourceType& rt, WatchEventType type, const Json& obj) {
  events_.push_back(LoggedEvent{std::stoll(jsonString(obj, "/metadata/resourceVersion")),
                                resourceId(rt), jsonString(obj, "/metadata/namespace"), type, obj});
  cv_.notify_all();
}

bool FakeClient::hasStatusSubresourceLocked(const kube::ResourceType& rt) const {
  return !noStatusSubresource_.count(resourceId(rt));
}

Json FakeClient::stampCreateLocked(const kube::ResourceType& rt, const std::string& ns, Json o) {
  if (!o.contains("apiVersion")) o["apiVersion"] = rt.apiVersion();
  if (!o.contains("kind")) o["kind"] = rt.kind;
  Json& m = o["metadata"];
  if (rt.namespaced) {
    m["namespace"] = ns;
  } else {
    m.erase("namespace");
  }
  char uid[64];
  std::snprintf(uid, sizeof(uid), "fa4e0000-0000-4000-8000-%012llx",
                static_cast<unsigned long long>(++uidCounter_));
  m["uid"] = uid;
  m["creationTimestamp"] = formatTime(clock_->now());
  m["generation"] = 1;
  m.erase("deletionTimestamp");
  m.erase("deletionGracePeriodSeconds");
  m["resourceVersion"] = std::to_string(rv_ + 1);  // committed by the caller
  if (hasStatusSubresourceLocked(rt)) o.erase("status");
  return o;
}

Json FakeClient::commitLocked(const kube::ResourceType& rt, const Key& key, const Json& stored,
                              Json next, bool statusWrite, bool dryRun) {
  if (!next.is_object()) next = Json::object();
  if (statusWrite) {
    Json status = next.contains("status") ? next["status"] : Json();
    next = stored;
    if (status.is_null()) {
      next.erase("status");
    } else {
      next["status"] = std::move(status);
    }
  } else if (hasStatusSubresourceLocked(rt)) {
    if (stored.contains("status")) {
      next["status"] = stored["status"];
    } else {
      next.erase("status");
    }
  }
  // Fields clients cannot change.
  next["apiVersion"] = stored.value("apiVersion", rt.apiVersion());
  next["kind"] = stored.value("kind", rt.kind);
  Json& m = next["metadata"];
  if (!m.is_object()) m = Json::object();
  const Json& sm = stored["metadata"];
  for (const char* f : {"name", "namespace", "uid", "creationTimestamp", "deletionTimestamp",
                        "deletionGracePeriodSeconds", "generation", "resourceVersion"}) {
    if (sm.contains(f)) {
      m[f] = sm[f];
    } else {
      m.erase(f);
    }
  }
  if (specPart(next) != specPart(stored)) m["generation"] = sm.value("generation", int64_t{0}) + 1;
  if (next == stored) return stored;  // no-op writes are not persisted
  if (dryRun) return next;
  m["resourceVersion"] = nextRvLocked();
  if (!m["deletionTimestamp"].is_null() && !hasFinalizers(next)) {
    objects_.erase(key);
    emitLocked(rt, WatchEventType::kDeleted, next);
    return next;
  }
  objects_[key] = next;
  emitLocked(rt, WatchEventType::kModified, next);
  return next;
}

absl::StatusOr<Json> FakeClient::applyPatch(const Json& stored, kube::PatchType type,
                                            const std::string& body) const {
  auto parsed = parseJson(body);
  if (!parsed.ok()) return apiError(400, "BadRequest", std::string(parsed.status().message()));
  if (type == kube::PatchType::kJson) {
    if (!parsed->is_array())
      return apiError(400, "BadRequest", "a JSON patch must be an array of operations");
    try {
      return stored.patch(*parsed);
    } catch (const Json::exception& e) {
      // A failed "test" op and an op on a missing path are 422, as the API server says.
      return apiError(422, "Invalid", absl::StrCat("the JSON patch could not be applied: ", e.what()));
    }
  }
  if (!parsed->is_object()) return apiError(400, "BadRequest", "a merge patch must be an object");
  Json out = stored;
  out.merge_patch(*parsed);
  return out;
}

absl::StatusOr<Json> FakeClient::get(const kube::ResourceType& rt, const std::string& ns,
                                     const std::string& name) {
  std::lock_guard lock(mu_);
  std::string n = rt.namespaced ? ns : "";
  if (auto s = recordLocked(Call{"get", rt.resource, n, name}); !s.ok()) return s;
  auto it = objects_.find(Key{resourceId(rt), n, name});
  if (it == objects_.end()) return notFound(rt, name);
  return it->second;
}

absl::StatusOr<Json> FakeClient::list(const kube::ResourceType& rt, const std::string& ns,
                                      const kube::ListOptions& o) {
  std::lock_guard lock(mu_);
  std::string n = rt.namespaced ? ns : "";
  Call call{"list", rt.resource, n};
  call.resourceVersion = o.resourceVersion;
  call.labelSelector = o.labelSelector;
  call.continueToken = o.continueToken;
  call.limit = o.limit;
  if (auto s = recordLocked(std::move(call)); !s.ok()) return s;
  std::optional<std::pair<std::string, std::string>> after;
  if (!o.continueToken.empty()) {
    auto token = parseJson(o.continueToken);
    if (!token.ok() || !token->is_array() || token->size() != 2)
      return apiError(400, "BadRequest", "invalid continue token");
    after = std::make_pair((*token)[0].get<std::string>(), (*token)[1].get<std::string>());
  }
  Json items = Json::array();
  std::string id = resourceId(rt);
  Json cont;
  int64_t remaining = 0;
  for (const auto& [key, obj] : objects_) {
    const auto& [rid, ons, oname] = key;
    if (rid != id || (!n.empty() && ons != n)) continue;
    if (after && std::make_pair(ons, oname) <= *after) continue;
    auto labels = matchesLabelSelector(o.labelSelector, jsonAt(obj, "/metadata/labels"));
    if (!labels.ok()) return labels.status();
    auto fields = matchesFieldSelector(o.fieldSelector, obj);
    if (!fields.ok()) return fields.status();
    if (!*labels || !*fields) continue;
    if (o.limit > 0 && static_cast<int64_t>(items.size()) >= o.limit) {
      ++remaining;
      continue;
    }
    items.push_back(obj);
    cont = Json::array({ons, oname});
  }
  Json out = {{"apiVersion", rt.apiVersion()},
              {"kind", rt.kind + "List"},
              {"metadata", {{"resourceVersion", std::to_string(rv_)}}},
              {"items", std::move(items)}};
  if (remaining > 0) {
    out["metadata"]["continue"] = cont.dump();
    out["metadata"]["remainingItemCount"] = remaining;
  }
  return out;
}

void FakeClient::setAccessReviewer(std::function<Json(const Json& spec)> reviewer) {
  std::lock_guard lock(mu_);
  accessReviewer_ = std::move(reviewer);
}

absl::StatusOr<Json> FakeClient::create(const kube::ResourceType& rt, const std::string& ns,
                                        const Json& obj, const kube::WriteOptions& o) {
  std::lock_guard lock(mu_);
  std::string n = nsFor(rt, ns, obj);
  Call call{"create", rt.resource, n, jsonString(obj, "/metadata/name"), obj};
  call.dryRun = o.dryRun;
  if (auto s = recordLocked(std::move(call)); !s.ok()) return s;
  if (!obj.is_object()) return apiError(400, "BadRequest", "the body must be an object");
  if (rt.resource == "subjectaccessreviews") {
    Json out = obj;
    out["status"] = accessReviewer_ ? accessReviewer_(obj.value("spec", Json::object())) : Json{{"allowed", true}};
    return out;
  }
  std::string objNs = jsonString(obj, "/metadata/namespace");
  if (rt.namespaced && !ns.empty() && !objNs.empty() && objNs != ns) {
    return apiError(400, "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request");
  }
  if (rt.namespaced && n.empty())
    return apiError(422, "Invalid", "metadata.namespace: Required value");
  Json o2 = obj;
  std::string name = jsonString(obj, "/metadata/name");
  if (name.empty()) {
    std::string prefix = jsonString(obj, "/metadata/generateName");
    if (prefix.empty()) return apiError(422, "Invalid", "metadata.name: Required value");
    static const char kAlphabet[] = "bcdfghjklmnpqrstvwxz2456789";
    uint64_t c = static_cast<uint64_t>(++nameCounter_);
    std::string suffix;
    for (int i = 0; i < 5; ++i, c /= 27) suffix.push_back(kAlphabet[c % 27]);
    name = prefix + suffix;
    o2["metadata"]["name"] = name;
  }
  Key key{resourceId(rt), n, name};
  if (objects_.count(key)) {
    return apiError(409, "AlreadyExists",
                    absl::StrCat(qualified(rt), " \"", name, "\" already exists"));
  }
  Json stored = stampCreateLocked(rt, n, std::move(o2));
  if (o.dryRun) {
    stored["metadata"].erase("resourceVersion");
    return stored;
  }
  nextRvLocked();
  objects_[key] = stored;
  emitLocked(rt, WatchEventType::kAdded, stored);
  return stored;
}

absl::StatusOr<Json> FakeClient::update(const kube::ResourceType& rt, const std::string& ns,
                                        const Json& obj, const kube::WriteOptions& o) {
  std::lock_guard lock(mu_);
  std::string n = nsFor(rt, ns, obj);
  std::string name = jsonString(obj, "/metadata/name");
  Call call{"update", rt.resource, n, name, obj};
  call.dryRun = o.dryRun;
  if (auto s = recordLocked(std::move(call)); !s.ok()) return s;
  Key key{resourceId(rt), n, name};
  auto it = objects_.find(key);
  if (it == objects_.end()) return notFound(rt, name);
  std::string rv = jsonString(obj, "/metadata/resourceVersion");
  if (!rv.empty() && rv != jsonString(it->second, "/metadata/resourceVersion"))
    return conflict(rt, name, kModified);
  Json stored = it->second;
  return commitLocked(rt, key, stored, obj, false, o.dryRun);
}

absl::StatusOr<Json> FakeClient::updateStatus(const kube::ResourceType& rt, const std::string& ns,
                                              const Json& obj, const kube::WriteOptions& o) {
  std::lock_guard lock(mu_);
  std::string n = nsFor(rt, ns, obj);
  std::string name = jsonString(obj, "/metadata/name");
  Call call{"updateStatus", rt.resource, n, name, obj, "status"};
  call.dryRun = o.dryRun;
  if (auto s = recordLocked(std::move(call)); !s.ok()) return s;
  Key key{resourceId(rt), n, name};
  auto it = objects_.find(key);
  if (it == objects_.end() || !hasStatusSubresourceLocked(rt)) return notFound(rt, name);
  std::string rv = jsonString(obj, "/metadata/resourceVersion");
  if (!rv.empty() && rv != jsonString(it->second, "/metadata/resourceVersion"))
    return conflict(rt, name, kModified);
  Json stored = it->second;
  return commitLocked(rt, key, stored, obj, true, o.dryRun);
}

absl::StatusOr<Json> FakeClient::patch(const kube::ResourceType& rt, const std::string& ns,
                                       const std::string& name, kube::PatchType type,
                                       const std::string& body, const kube::PatchOptions& o) {
  std::lock_guard lock(mu_);
  std::string n = rt.namespaced ? ns : "";
  auto parsed = parseJson(body);
  Call call{"patch", rt.resource, n, name, parsed.ok() ? *parsed : Json(body), o.subresource,
            patchTypeName(type)};
  call.dryRun = o.dryRun;
  if (auto s = recordLocked(std::move(call)); !s.ok()) return s;
  if (!o.subresource.empty() && o.subresource != "status") return notFound(rt, name);
  bool statusWrite = o.subresource == "status";
  if (statusWrite && !hasStatusSubresourceLocked(rt)) return notFound(rt, name);
  Key key{resourceId(rt), n, name};
  auto it = objects_.find(key);
  if (it == objects_.end()) {
    if (type != kube::PatchType::kApply || statusWrite) return notFound(rt, name);
    // Server-side apply creates.
    Json seedObj = {{"metadata", {{"name", name}}}};
    auto applied = applyPatch(seedObj, kube::PatchType::kMerge, body);
    if (!applied.ok()) return applied.status();
    (*applied)["metadata"]["name"] = name;
    Json stored = stampCreateLocked(rt, n, std::move(*applied));
    if (o.dryRun) return stored;
    nextRvLocked();
    objects_[key] = stored;
    emitLocked(rt, WatchEventType::kAdded, stored);
    return stored;
  }
  Json stored = it->second;
  auto applied = applyPatch(stored, type, body);
  if (!applied.ok()) return applied.status();
  std::string rv = jsonString(*applied, "/metadata/resourceVersion");
  if (!rv.empty() && rv != jsonString(stored, "/metadata/resourceVersion"))
    return conflict(rt, name, kModified);
  return commitLocked(rt, key, stored, std::move(*applied), statusWrite, o.dryRun);
}

absl::StatusOr<Json> FakeClient::remove(const kube::ResourceType& rt, const std::string& ns,
                                        const std::string& name, const kube::DeleteOptions& o) {
  std::lock_guard lock(mu_);
  std::string n = rt.namespaced ? ns : "";
  Json body = Json::object();
  if (!o.propagationPolicy.empty()) body["propagationPolicy"] = o.propagationPolicy;
  if (!o.preconditionUid.empty()) body["preconditions"]["uid"] = o.preconditionUid;
  if (!o.preconditionResourceVersion.empty())
    body["preconditions"]["resourceVersion"] = o.preconditionResourceVersion;
  if (o.gracePeriodSeconds) body["gracePeriodSeconds"] = *o.gracePeriodSeconds;
  Call call{"delete", rt.resource, n, name, body};
  call.dryRun = o.dryRun;
  if (auto s = recordLocked(std::move(call)); !s.ok()) return s;
  Key key{resourceId(rt), n, name};
  auto it = objects_.find(key);
  if (it == objects_.end()) return notFound(rt, name);
  Json stored = it->second;
  std::string uid = jsonString(stored, "/metadata/uid");
  if (!o.preconditionUid.empty() && o.preconditionUid != uid) {
    return conflict(rt, name,
                    absl::StrCat("Precondition failed: UID in precondition: ", o.preconditionUid,
                                 ", UID in object meta: ", uid));
  }
  std::string rv = jsonString(stored, "/metadata/resourceVersion");
  if (!o.preconditionResourceVersion.empty() && o.preconditionResourceVersion != rv) {
    return conflict(rt, name,
                    absl::StrCat("Precondition failed: ResourceVersion in precondition: ",
                                 o.preconditionResourceVersion,
                                 ", ResourceVersion in object meta: ", rv));
  }
  if (hasFinalizers(stored)) {
    if (!jsonAt(stored, "/metadata/deletionTimestamp").is_null()) return stored;
    Json next = stored;
    next["metadata"]["deletionTimestamp"] = formatTime(clock_->now());
    next["metadata"]["deletionGracePeriodSeconds"] = 0;
    next["metadata"]["generation"] = jsonInt(stored, "/metadata/generation") + 1;
    if (o.dryRun) return next;
    next["metadata"]["resourceVersion"] = nextRvLocked();
    objects_[key] = next;
    emitLocked(rt, WatchEventType::kModified, next);
    return next;
  }
  Json status = {{"apiVersion", "v1"},
                 {"kind", "Status"},
                 {"metadata", Json::object()},
                 {"status", "Success"},
                 {"details", {{"name", name}, {"group", rt.group}, {"kind", rt.resource},
                              {"uid", uid}}}};
  if (o.dryRun) return status;
  stored["metadata"]["resourceVersion"] = nextRvLocked();
  objects_.erase(key);
  emitLocked(rt, WatchEventType::kDeleted, stored);
  return status;
}

absl::Status FakeClient::watch(const kube::ResourceType& rt, const std::string& ns,
                               const kube::WatchOptions& o,
                               const std::function<bool(const kube::WatchEvent&)>& onEvent,
                               std::stop_token stop) {
  std::unique_lock lock(mu_);
  std::string n = rt.namespaced ? ns : "";
  Call call{"watch", rt.resource, n};
  call.resourceVersion = o.resourceVersion;
  call.labelSelector = o.labelSelector;
  if (auto s = recordLocked(std::move(call)); !s.ok()) return s;
  auto labels = matchesLabelSelector(o.labelSelector, Json());
  if (!labels.ok()) return labels.status();
  if (!watchErrorEvents_.empty()) {
    kube::WatchEvent ev{kube::WatchEventType::kError, std::move(watchErrorEvents_.front())};
    watchErrorEvents_.pop_front();
    lock.unlock();
    onEvent(ev);
    return absl::OkStatus();
  }

  // Interrupts from here on end this watch, including during the replay below.
  const uint64_t epoch = interruptEpoch_;
  ++activeWatches_;
  cv_.notify_all();
  struct Guard {
    FakeClient* self;
    ~Guard() {
      --self->activeWatches_;
      self->cv_.notify_all();
    }
  } guard{this};  // destroyed while `lock` is held (declared after it)

  const std::string id = resourceId(rt);
  auto matches = [&](const Json& obj) {
    if (!n.empty() && jsonString(obj, "/metadata/namespace") != n) return false;
    auto l = matchesLabelSelector(o.labelSelector, jsonAt(obj, "/metadata/labels"));
    auto f = matchesFieldSelector(o.fieldSelector, obj);
    return l.ok() && *l && f.ok() && *f;
  };
  // Delivers one event without holding the lock; false when the consumer stopped.
  auto deliver = [&](kube::WatchEvent ev) {
    lock.unlock();
    bool more = onEvent(ev);
    lock.lock();
    return more;
  };

  int64_t position = 0;
  size_t cursor = 0;
  if (o.resourceVersion.empty() || o.resourceVersion == "0") {
    std::vector<Json> initial;
    for (const auto& [key, obj] : objects_)
      if (std::get<0>(key) == id && matches(obj)) initial.push_back(obj);
    position = rv_;
    cursor = events_.size();
    for (auto& obj : initial) {
      if (!deliver({kube::WatchEventType::kAdded, std::move(obj)})) return absl::OkStatus();
      if (stop.stop_requested()) return absl::OkStatus();
      if (interruptEpoch_ != epoch && !interruptStatus_.ok()) return interruptStatus_;
    }
  } else {
    try {
      position = std::stoll(o.resourceVersion);
    } catch (const std::exception&) {
      return apiError(400, "BadRequest",
                      absl::StrCat("invalid resourceVersion '", o.resourceVersion, "'"));
    }
    cursor = static_cast<size_t>(
        std::upper_bound(events_.begin(), events_.end(), position,
                         [](int64_t rv, const LoggedEvent& e) { return rv < e.rv; }) -
        events_.begin());
  }
  while (true) {
    if (stop.stop_requested()) return absl::OkStatus();
    if (interruptEpoch_ != epoch &&
        (!interruptStatus_.ok() || cursor >= std::min(interruptFlushUpTo_, events_.size()))) {
      return interruptStatus_;
    }
    if (position < expiredBefore_) {
      Json status = {{"apiVersion", "v1"},
                     {"kind", "Status"},
                     {"metadata", Json::object()},
                     {"status", "Failure"},
                     {"message", absl::StrCat("too old resource version: ", position, " (",
                                              expiredBefore_, ")")},
                     {"reason", "Expired"},
                     {"code", 410}};
      deliver({kube::WatchEventType::kError, std::move(status)});
      return absl::OkStatus();
    }
    if (cursor < events_.size()) {
      const LoggedEvent& e = events_[cursor++];
      position = e.rv;
      if (e.resourceId != id) continue;
      if (e.type == kube::WatchEventType::kBookmark) {
        if (!o.allowBookmarks) continue;
      } else if (!matches(e.object)) {
        continue;
      }
      if (!deliver({e.type, e.object})) return absl::OkStatus();
      continue;
    }
    cv_.wait(lock, stop, [&] {
      return cursor < events_.size() || interruptEpoch_ != epoch || position < expiredBefore_;
    });
  }
}

Json FakeClient::seed(const kube::ResourceType& rt, Json obj) {
  std::lock_guard lock(mu_);
  std::string n = rt.namespaced ? jsonString(obj, "/metadata/namespace") : "";
  Key key{resourceId(rt), n, jsonString(obj, "/metadata/name")};
  bool existed = objects_.count(key) > 0;
  if (!obj.contains("apiVersion")) obj["apiVersion"] = rt.apiVersion();
  if (!obj.contains("kind")) obj["kind"] = rt.kind;
  Json& m = obj["metadata"];
  if (!m.contains("uid")) {
    char uid[64];
    std::snprintf(uid, sizeof(uid), "fa4e0000-0000-4000-8000-%012llx",
                  static_cast<unsigned long long>(++uidCounter_));
    m["uid"] = uid;
  }
  if (!m.contains("creationTimestamp")) m["creationTimestamp"] = formatTime(clock_->now());
  if (!m.contains("generation")) m["generation"] = 1;
  m["resourceVersion"] = nextRvLocked();
  objects_[key] = obj;
  emitLocked(rt, existed ? WatchEventType::kModified : WatchEventType::kAdded, obj);
  return obj;
}

void FakeClient::erase(const kube::ResourceType& rt, const std::string& ns,
                       const std::string& name) {
  std::lock_guard lock(mu_);
  Key key{resourceId(rt), rt.namespaced ? ns : "", name};
  auto it = objects_.find(key);
  if (it == objects_.end()) return;
  Json last = std::move(it->second);
  objects_.erase(it);
  last["metadata"]["resourceVersion"] = nextRvLocked();
  emitLocked(rt, WatchEventType::kDeleted, last);
}

Json FakeClient::object(const kube::ResourceType& rt, const std::string& ns,
                        const std::string& name) const {
  std::lock_guard lock(mu_);
  auto it = objects_.find(Key{resourceId(rt), rt.namespaced ? ns : "", name});
  return it == objects_.end() ? Json() : it->second;
}

std::vector<Json> FakeClient::objects(const kube::ResourceType& rt, const std::string& ns) const {
  std::lock_guard lock(mu_);
  std::vector<Json> out;
  std::string id = resourceId(rt);
  for (const auto& [key, obj] : objects_)
    if (std::get<0>(key) == id && (ns.empty() || std::get<1>(key) == ns)) out.push_back(obj);
  return out;
}

void FakeClient::setStatusSubresource(const kube::ResourceType& rt, bool enabled) {
  std::lock_guard lock(mu_);
  if (enabled) {
    noStatusSubresource_.erase(resourceId(rt));
  } else {
    noStatusSubresource_.insert(resourceId(rt));
  }
}

void FakeClient::failNext(const std::string& verb, absl::Status status,
                          const std::string& resource) {
  std::lock_guard lock(mu_);
  failures_.push_back(Failure{verb, resource, std::move(status)});
}

void FakeClient::failNextWatchWithEvent(Json status) {
  std::lock_guard lock(mu_);
  watchErrorEvents_.push_back(std::move(status));
}

void FakeClient::expireWatchesBefore(int64_t rv) {
  std::lock_guard lock(mu_);
  expiredBefore_ = std::max(expiredBefore_, std::min(rv, rv_));
  cv_.notify_all();
}

void FakeClient::interruptWatches(absl::Status status) {
  std::lock_guard lock(mu_);
  ++interruptEpoch_;
  interruptStatus_ = std::move(status);
  interruptFlushUpTo_ = events_.size();
  cv_.notify_all();
}

int64_t FakeClient::bookmark(const kube::ResourceType& rt) {
  std::lock_guard lock(mu_);
  std::string rv = nextRvLocked();
  Json obj = {{"apiVersion", rt.apiVersion()},
              {"kind", rt.kind},
              {"metadata", {{"resourceVersion", rv}}}};
  emitLocked(rt, WatchEventType::kBookmark, obj);
  return rv_;
}

std::vector<FakeClient::Call> FakeClient::calls() const {
  std::lock_guard lock(mu_);
  return calls_;
}

std::vector<FakeClient::Call> FakeClient::calls(const std::string& verb,
                                                const std::string& resource) const {
  std::lock_guard lock(mu_);
  std::vector<Call> out;
  for (const auto& c : calls_)
    if (c.verb == verb && (resource.empty() || c.resource == resource)) out.push_back(c);
  return out;
}

void FakeClient::clearCalls() {
  std::lock_guard lock(mu_);
  calls_.clear();
}

int64_t FakeClient::resourceVersion() const {
  std::lock_guard lock(mu_);
  return rv_;
}

int FakeClient::activeWatches() const {
  std::lock_guard lock(mu_);
  return activeWatches_;
}

bool FakeClient::waitForCalls(const std::function<bool(const std::vector<Call>&)>& pred,
                              std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return pred(calls_); });
}

bool FakeClient::waitForActiveWatches(int n, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return activeWatches_ == n; });
}

}  // namespace patchgate::testing
