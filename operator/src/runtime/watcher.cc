#include "runtime/watcher.h"

#include <condition_variable>

#include "kube/errors.h"

namespace patchgate::runtime {

Watcher::Watcher(kube::Client& client, WatcherConfig config, Clock& clock, Random& random,
                 Logger log)
    : client_(client), config_(std::move(config)), clock_(clock),
      backoff_(Backoff::forWatch(random)),
      log_(log.withValues({{"resource", config_.resource.resource}})) {}

bool Watcher::sleep(std::stop_token stop, std::chrono::milliseconds d) {
  return sleepFor(clock_, stop, d);
}

void Watcher::run(std::stop_token stop, const std::function<void(WatcherEvent)>& sink) {
  bool needList = true;
  const auto& rt = config_.resource;
  auto withKind = [&](Json obj) {
    // List items come without apiVersion/kind; watch events carry them.
    if (!obj.contains("apiVersion")) obj["apiVersion"] = rt.apiVersion();
    if (!obj.contains("kind")) obj["kind"] = rt.kind;
    return obj;
  };
  while (!stop.stop_requested()) {
    if (needList) {
      kube::ListOptions lo;
      lo.labelSelector = config_.labelSelector;
      lo.fieldSelector = config_.fieldSelector;
      lo.limit = config_.pageSize;
      auto list = kube::listAll(client_, rt, config_.ns, lo);
      if (!list.ok()) {
        healthy_ = false;
        auto d = backoff_.next();
        log_.warn("list failed; retrying", {{"error", std::string(list.status().message())},
                                            {"retryInMs", d.count()}});
        sleep(stop, d);
        continue;
      }
      sink({WatcherEvent::Type::kInit, nullptr});
      for (auto& item : (*list)["items"]) sink({WatcherEvent::Type::kInitApply, withKind(std::move(item))});
      sink({WatcherEvent::Type::kInitDone, nullptr});
      resourceVersion_ = jsonString(*list, "/metadata/resourceVersion");
      needList = false;
      healthy_ = true;
      ++relists_;
      backoff_.reset();
    }
    kube::WatchOptions wo;
    wo.labelSelector = config_.labelSelector;
    wo.fieldSelector = config_.fieldSelector;
    wo.resourceVersion = resourceVersion_;
    wo.timeoutSeconds = config_.watchTimeoutSeconds;
    wo.allowBookmarks = true;
    bool gone = false;
    absl::Status errorEvent;  // a non-410 ERROR event: retried with backoff, as client-go
    auto status = client_.watch(
        rt, config_.ns, wo,
        [&](const kube::WatchEvent& ev) {
          if (ev.type == kube::WatchEventType::kError) {
            int code = static_cast<int>(jsonInt(ev.object, "/code", 0));
            if (code == 410) {
              gone = true;
            } else {
              log_.warn("watch error event", {{"status", ev.object}});
              errorEvent = kube::errorFromResponse(code, ev.object.dump());
            }
            return false;
          }
          std::string rv = jsonString(ev.object, "/metadata/resourceVersion");
          if (!rv.empty()) resourceVersion_ = rv;
          switch (ev.type) {
            case kube::WatchEventType::kAdded:
            case kube::WatchEventType::kModified:
              sink({WatcherEvent::Type::kApply, withKind(ev.object)});
              break;
            case kube::WatchEventType::kDeleted:
              sink({WatcherEvent::Type::kDelete, withKind(ev.object)});
              break;
            default:
              break;  // bookmark: only the resourceVersion matters
          }
          backoff_.reset();
          return !stop.stop_requested();
        },
        stop);
    if (stop.stop_requested()) break;
    if (status.ok()) status = errorEvent;
    if (gone || kube::isGone(status)) {
      log_.info("resourceVersion expired (410 Gone); relisting", {{"resourceVersion", resourceVersion_}});
      needList = true;
      continue;
    }
    if (!status.ok()) {
      healthy_ = false;
      auto d = backoff_.next();
      log_.warn("watch failed; resuming", {{"error", std::string(status.message())},
                                          {"resourceVersion", resourceVersion_},
                                          {"retryInMs", d.count()}});
      sleep(stop, d);
      continue;
    }
    healthy_ = true;  // server closed the stream at its timeout: re-watch at once
  }
}

}  // namespace patchgate::runtime
