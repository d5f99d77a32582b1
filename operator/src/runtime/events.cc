#include "runtime/events.h"

#include <cstdio>

#include "kube/resource.h"

namespace patchgate::runtime {

EventRecorderImpl::EventRecorderImpl(kube::Client& client, Clock& clock, std::string controller,
                                     std::string instance, Logger log)
    : client_(client), clock_(clock), controller_(std::move(controller)),
      instance_(std::move(instance)), log_(std::move(log)) {}

void EventRecorderImpl::event(const Json& regarding, EventType type, const std::string& reason,
                              const std::string& action, const std::string& note) {
  const std::string typeName = type == EventType::kNormal ? "Normal" : "Warning";
  std::string ns = jsonString(regarding, "/metadata/namespace");
  if (ns.empty()) ns = "default";
  std::string shortNote = note.size() > 1000 ? note.substr(0, 1000) : note;
  std::string key = jsonString(regarding, "/metadata/uid") + "|" + typeName + "|" + reason + "|" +
                    shortNote;
  auto now = clock_.now();
  std::string existingName;
  int64_t count = 1;
  {
    std::lock_guard lock(mu_);
    // Forget old entries so the map stays small.
    for (auto it = seen_.begin(); it != seen_.end();) {
      it = (now - it->second.last > std::chrono::minutes(10)) ? seen_.erase(it) : std::next(it);
    }
    if (auto it = seen_.find(key); it != seen_.end()) {
      existingName = it->second.name;
      count = ++it->second.count;
      it->second.last = now;
    }
  }
  if (!existingName.empty()) {
    Json patch = {{"series", {{"count", count}, {"lastObservedTime", formatMicroTime(now)}}}};
    auto r = client_.patch(kube::resources::kEvent, ns, existingName, kube::PatchType::kMerge,
                           patch.dump());
    if (r.ok()) return;
    // Fall through: the event may have been garbage collected; create anew.
  }
  char suffix[32];
  {
    std::lock_guard lock(mu_);
    std::snprintf(suffix, sizeof(suffix), "%llx%04llx",
                  static_cast<unsigned long long>(
                      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch())
                          .count()),
                  static_cast<unsigned long long>(++counter_ & 0xffff));
  }
  std::string name = jsonString(regarding, "/metadata/name") + "." + suffix;
  Json ev = {
      {"apiVersion", "events.k8s.io/v1"},
      {"kind", "Event"},
      {"metadata", {{"name", name}, {"namespace", ns}}},
      {"eventTime", formatMicroTime(now)},
      {"reportingController", controller_},
      {"reportingInstance", instance_},
      {"action", action},
      {"reason", reason},
      {"note", shortNote},
      {"type", typeName},
      {"regarding",
       {{"apiVersion", jsonString(regarding, "/apiVersion")},
        {"kind", jsonString(regarding, "/kind")},
        {"name", jsonString(regarding, "/metadata/name")},
        {"namespace", jsonString(regarding, "/metadata/namespace")},
        {"uid", jsonString(regarding, "/metadata/uid")},
        {"resourceVersion", jsonString(regarding, "/metadata/resourceVersion")}}},
  };
  auto r = client_.create(kube::resources::kEvent, ns, ev);
  if (!r.ok()) {
    log_.warn("could not record event", {{"reason", reason}, {"error", std::string(r.status().message())}});
    return;
  }
  std::lock_guard lock(mu_);
  seen_[key] = Seen{ns, name, count, now};
}

}  // namespace patchgate::runtime
