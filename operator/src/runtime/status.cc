#include "runtime/status.h"

#include <thread>

#include "kube/errors.h"

namespace patchgate::runtime {

Json Condition::toJson(Clock::TimePoint lastTransitionTime) const {
  Json j = {{"type", type},       {"status", status},
            {"reason", reason},   {"message", message},
            {"lastTransitionTime", formatTime(lastTransitionTime)}};
  if (observedGeneration > 0) j["observedGeneration"] = observedGeneration;
  return j;
}

bool setCondition(Json& conditions, const Condition& c, Clock::TimePoint now) {
  if (!conditions.is_array()) conditions = Json::array();
  for (auto& existing : conditions) {
    if (existing.value("type", "") != c.type) continue;
    Json updated = c.toJson(now);
    if (existing.value("status", "") == c.status && existing.contains("lastTransitionTime")) {
      updated["lastTransitionTime"] = existing["lastTransitionTime"];
    }
    if (updated == existing) return false;
    existing = std::move(updated);
    return true;
  }
  conditions.push_back(c.toJson(now));
  return true;
}

const Json& findCondition(const Json& conditions, const std::string& type) {
  static const Json kNull;
  if (!conditions.is_array()) return kNull;
  for (const auto& c : conditions)
    if (c.value("type", "") == type) return c;
  return kNull;
}

bool isConditionTrue(const Json& conditions, const std::string& type) {
  const Json& c = findCondition(conditions, type);
  return c.is_object() && c.value("status", "") == "True";
}

bool removeCondition(Json& conditions, const std::string& type) {
  if (!conditions.is_array()) return false;
  for (auto it = conditions.begin(); it != conditions.end(); ++it) {
    if (it->value("type", "") == type) {
      conditions.erase(it);
      return true;
    }
  }
  return false;
}

absl::Status retryOnConflict(const std::function<absl::Status()>& fn, int attempts,
                             std::chrono::milliseconds interval) {
  absl::Status last;
  for (int i = 0; i < attempts; ++i) {
    if (i > 0) std::this_thread::sleep_for(interval);
    last = fn();
    if (!kube::isConflict(last)) return last;
  }
  return last;
}

absl::StatusOr<Json> updateStatus(kube::Client& client, const kube::ResourceType& rt,
                                  const std::string& ns, const std::string& name,
                                  const std::function<absl::Status(Json& obj)>& mutate) {
  Json result;
  absl::Status s = retryOnConflict([&]() -> absl::Status {
    auto current = client.get(rt, ns, name);
    if (!current.ok()) return current.status();
    Json obj = *current;
    if (auto m = mutate(obj); !m.ok()) return m;
    if (obj.value("status", Json()) == current->value("status", Json())) {
      result = std::move(*current);
      return absl::OkStatus();
    }
    auto written = client.updateStatus(rt, ns, obj);
    if (!written.ok()) return written.status();
    result = std::move(*written);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return result;
}

}  // namespace patchgate::runtime
