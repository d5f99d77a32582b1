#pragma once

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "kube/client.h"
#include "runtime/controller.h"

namespace patchgate::runtime {

bool hasFinalizer(const Json& obj, const std::string& finalizer);
bool isDeleting(const Json& obj);

// Adds/removes a finalizer with a JSON patch that first tests the
// resourceVersion, so a stale snapshot gets a conflict instead of clobbering
// someone else's finalizer list. RBAC: patch on the resource.
absl::Status addFinalizer(kube::Client& client, const kube::ResourceType& rt, const Json& obj,
                          const std::string& finalizer);
absl::Status removeFinalizer(kube::Client& client, const kube::ResourceType& rt, const Json& obj,
                             const std::string& finalizer);

enum class FinalizerEvent { kApply, kCleanup };

// kube-rs's finalizer(): while the object lives, make sure the finalizer is
// on it, then run fn(kApply); once it is being deleted, run fn(kCleanup) and
// remove the finalizer when cleanup succeeded and asked for nothing more
// (returned Action::await()). Cleanup must be idempotent.
absl::StatusOr<Action> withFinalizer(kube::Client& client, const kube::ResourceType& rt,
                                     const Json& obj, const std::string& finalizer,
                                     const std::function<absl::StatusOr<Action>(FinalizerEvent)>& fn);

}  // namespace patchgate::runtime
