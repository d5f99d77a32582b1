#pragma once

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/json.h"
#include "kube/client.h"

namespace patchgate::runtime {

// A metav1.Condition.
struct Condition {
  std::string type;
  std::string status;  // "True", "False", "Unknown"
  std::string reason;  // CamelCase, a named constant
  std::string message;
  int64_t observedGeneration = 0;

  Json toJson(Clock::TimePoint lastTransitionTime) const;
};

// Sets `c` in a conditions array (created if null). lastTransitionTime changes
// only when the status changes. Returns true if anything changed.
bool setCondition(Json& conditions, const Condition& c, Clock::TimePoint now);
// The condition of that type, or nullptr JSON.
const Json& findCondition(const Json& conditions, const std::string& type);
bool isConditionTrue(const Json& conditions, const std::string& type);
bool removeCondition(Json& conditions, const std::string& type);

// Runs `fn` again while it fails with a conflict: client-go's
// retry.DefaultRetry, 5 attempts 10 ms apart (jitter 0.1).
absl::Status retryOnConflict(const std::function<absl::Status()>& fn, int attempts = 5,
                             std::chrono::milliseconds interval = std::chrono::milliseconds(10));

// Reads the object fresh, lets `mutate` change its status, and writes the
// status subresource only if it changed, retrying on conflict. Returns the
// object as stored (unchanged when no write was needed).
// RBAC: get and update on <resource>/status.
absl::StatusOr<Json> updateStatus(kube::Client& client, const kube::ResourceType& rt,
                                  const std::string& ns, const std::string& name,
                                  const std::function<absl::Status(Json& obj)>& mutate);

}  // namespace patchgate::runtime
