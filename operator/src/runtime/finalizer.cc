#include "runtime/finalizer.h"

#include "kube/errors.h"

namespace patchgate::runtime {

bool hasFinalizer(const Json& obj, const std::string& finalizer) {
  const Json& list = jsonAt(obj, "/metadata/finalizers");
  if (!list.is_array()) return false;
  for (const auto& f : list)
    if (f.is_string() && f.get<std::string>() == finalizer) return true;
  return false;
}

bool isDeleting(const Json& obj) { return !jsonString(obj, "/metadata/deletionTimestamp").empty(); }

absl::Status addFinalizer(kube::Client& client, const kube::ResourceType& rt, const Json& obj,
                          const std::string& finalizer) {
  if (hasFinalizer(obj, finalizer)) return absl::OkStatus();
  Json ops = Json::array();
  ops.push_back({{"op", "test"}, {"path", "/metadata/resourceVersion"},
                 {"value", jsonString(obj, "/metadata/resourceVersion")}});
  if (jsonAt(obj, "/metadata/finalizers").is_array()) {
    ops.push_back({{"op", "add"}, {"path", "/metadata/finalizers/-"}, {"value", finalizer}});
  } else {
    ops.push_back({{"op", "add"}, {"path", "/metadata/finalizers"}, {"value", {finalizer}}});
  }
  auto r = client.patch(rt, jsonString(obj, "/metadata/namespace"),
                        jsonString(obj, "/metadata/name"), kube::PatchType::kJson, ops.dump());
  // A failed "test" op comes back as 422 Invalid: the snapshot was stale.
  if (!r.ok() && kube::isInvalid(r.status()))
    return kube::apiError(409, "Conflict", "object changed while adding finalizer");
  return r.status();
}

absl::Status removeFinalizer(kube::Client& client, const kube::ResourceType& rt, const Json& obj,
                             const std::string& finalizer) {
  const Json& list = jsonAt(obj, "/metadata/finalizers");
  if (!list.is_array()) return absl::OkStatus();
  for (size_t i = 0; i < list.size(); ++i) {
    if (!list[i].is_string() || list[i].get<std::string>() != finalizer) continue;
    std::string path = "/metadata/finalizers/" + std::to_string(i);
    Json ops = Json::array({{{"op", "test"}, {"path", path}, {"value", finalizer}},
                            {{"op", "remove"}, {"path", path}}});
    auto r = client.patch(rt, jsonString(obj, "/metadata/namespace"),
                          jsonString(obj, "/metadata/name"), kube::PatchType::kJson, ops.dump());
    if (!r.ok() && kube::isNotFound(r.status())) return absl::OkStatus();
    if (!r.ok() && kube::isInvalid(r.status()))
      return kube::apiError(409, "Conflict", "object changed while removing finalizer");
    return r.status();
  }
  return absl::OkStatus();
}

absl::StatusOr<Action> withFinalizer(
    kube::Client& client, const kube::ResourceType& rt, const Json& obj,
    const std::string& finalizer,
    const std::function<absl::StatusOr<Action>(FinalizerEvent)>& fn) {
  if (isDeleting(obj)) {
    if (!hasFinalizer(obj, finalizer)) return Action::await();  // not ours to clean
    auto action = fn(FinalizerEvent::kCleanup);
    if (!action.ok()) return action;
    if (action->requeueAfter) return action;  // cleanup still in progress
    if (auto s = removeFinalizer(client, rt, obj, finalizer); !s.ok()) return s;
    return Action::await();
  }
  if (!hasFinalizer(obj, finalizer)) {
    // Add it and stop: the resulting watch event brings a fresh snapshot.
    if (auto s = addFinalizer(client, rt, obj, finalizer); !s.ok()) return s;
    return Action::await();
  }
  return fn(FinalizerEvent::kApply);
}

}  // namespace patchgate::runtime
