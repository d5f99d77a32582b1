#pragma once

#include <map>
#include <mutex>
#include <string>

#include "common/clock.h"
#include "common/logging.h"
#include "kube/client.h"

namespace patchgate::runtime {

enum class EventType { kNormal, kWarning };

// Records Kubernetes events about an object. Never fails the caller: a lost
// event is logged, not propagated. Thread-safe.
class EventRecorder {
 public:
  virtual ~EventRecorder() = default;
  // `reason` is a stable CamelCase constant (documented for users), `action`
  // what the controller did (e.g. "Promote"), `note` the human sentence.
  virtual void event(const Json& regarding, EventType type, const std::string& reason,
                     const std::string& action, const std::string& note) = 0;
};

// Writes events.k8s.io/v1 Events. Repeats of the same (object, type, reason,
// note) within 10 minutes update one Event's series (count, lastObservedTime)
// instead of creating new ones, as client-go's EventSeries does.
// RBAC: create and patch on events.events.k8s.io in the objects' namespaces.
class EventRecorderImpl final : public EventRecorder {
 public:
  EventRecorderImpl(kube::Client& client, Clock& clock, std::string controller,
                    std::string instance, Logger log);
  void event(const Json& regarding, EventType type, const std::string& reason,
             const std::string& action, const std::string& note) override;

 private:
  struct Seen {
    std::string ns, name;
    int64_t count;
    Clock::TimePoint last;
  };
  kube::Client& client_;
  Clock& clock_;
  std::string controller_, instance_;
  Logger log_;
  std::mutex mu_;
  std::map<std::string, Seen> seen_;
  uint64_t counter_ = 0;
};

}  // namespace patchgate::runtime
