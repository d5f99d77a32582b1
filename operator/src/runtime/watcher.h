#pragma once

#include <atomic>
#include <functional>
#include <stop_token>
#include <string>

#include "common/backoff.h"
#include "common/clock.h"
#include "common/logging.h"
#include "common/random.h"
#include "kube/client.h"

namespace patchgate::runtime {

// What a Watcher reports, in kube-rs's vocabulary. A relist is
// Init, InitApply*, InitDone: consumers swap in the new snapshot at InitDone.
struct WatcherEvent {
  enum class Type { kInit, kInitApply, kInitDone, kApply, kDelete };
  Type type;
  Json object;  // for kInitApply, kApply, kDelete
};

struct WatcherConfig {
  kube::ResourceType resource;
  std::string ns;  // "" = all namespaces
  std::string labelSelector;
  std::string fieldSelector;
  int64_t pageSize = 500;
  int64_t watchTimeoutSeconds = 290;  // server-side; the client idles longer
};

// List-then-watch loop for one resource. Resumes from the last seen
// resourceVersion (bookmarks included) after a stream ends or fails; relists
// when the server says 410 Gone; backs off 0.8 s -> 30 s with jitter while the
// server is unreachable. Runs on the caller's thread until `stop`.
//
// RBAC: list and watch on the resource.
class Watcher {
 public:
  Watcher(kube::Client& client, WatcherConfig config, Clock& clock, Random& random, Logger log);

  void run(std::stop_token stop, const std::function<void(WatcherEvent)>& sink);

  // Diagnostics.
  const std::string& lastResourceVersion() const { return resourceVersion_; }
  int relists() const { return relists_; }
  bool healthy() const { return healthy_; }

 private:
  bool sleep(std::stop_token stop, std::chrono::milliseconds d);

  kube::Client& client_;
  WatcherConfig config_;
  Clock& clock_;
  Backoff backoff_;
  Logger log_;
  std::string resourceVersion_;
  std::atomic<int> relists_{0};
  std::atomic<bool> healthy_{false};
};

}  // namespace patchgate::runtime
