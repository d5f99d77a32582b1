#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/json.h"
#include "kube/resource.h"

namespace patchgate::kube {

struct ListOptions {
  std::string labelSelector;
  std::string fieldSelector;
  int64_t limit = 0;           // page size; 0 = no paging
  std::string continueToken;
  std::string resourceVersion;  // "0" may serve from the watch cache
};

struct WriteOptions {
  bool dryRun = false;          // dryRun=All
  std::string fieldManager;     // defaults to the client's
};

enum class PatchType { kJson, kMerge, kStrategicMerge, kApply };

struct PatchOptions {
  bool dryRun = false;
  std::string fieldManager;
  bool force = false;           // server-side apply: take ownership of conflicting fields
  std::string subresource;      // "status" or ""
};

struct DeleteOptions {
  std::string propagationPolicy;  // Foreground, Background, Orphan, or "" (server default)
  std::string preconditionUid;
  std::string preconditionResourceVersion;
  std::optional<int64_t> gracePeriodSeconds;
  bool dryRun = false;
};

struct WatchOptions {
  std::string labelSelector;
  std::string fieldSelector;
  std::string resourceVersion;
  int64_t timeoutSeconds = 300;  // server closes the stream after this
  bool allowBookmarks = true;
};

enum class WatchEventType { kAdded, kModified, kDeleted, kBookmark, kError };

struct WatchEvent {
  WatchEventType type;
  Json object;  // the object; for kError a metav1.Status
};

const char* toString(WatchEventType t);

// The Kubernetes API as patchgate uses it: typed operations on any resource,
// objects as JSON. Errors are the ones in kube/errors.h. Thread-safe.
//
// Reads do not go through a cache; controllers read from informers instead.
class Client {
 public:
  virtual ~Client() = default;

  virtual absl::StatusOr<Json> get(const ResourceType& rt, const std::string& ns,
                                   const std::string& name) = 0;
  // One page: a List object with items and metadata.continue/resourceVersion.
  virtual absl::StatusOr<Json> list(const ResourceType& rt, const std::string& ns,
                                    const ListOptions& options = {}) = 0;
  virtual absl::StatusOr<Json> create(const ResourceType& rt, const std::string& ns,
                                      const Json& obj, const WriteOptions& options = {}) = 0;
  // PUT; obj's metadata.resourceVersion is the optimistic-concurrency precondition.
  virtual absl::StatusOr<Json> update(const ResourceType& rt, const std::string& ns,
                                      const Json& obj, const WriteOptions& options = {}) = 0;
  virtual absl::StatusOr<Json> updateStatus(const ResourceType& rt, const std::string& ns,
                                            const Json& obj, const WriteOptions& options = {}) = 0;
  virtual absl::StatusOr<Json> patch(const ResourceType& rt, const std::string& ns,
                                     const std::string& name, PatchType type,
                                     const std::string& body, const PatchOptions& options = {}) = 0;
  // Returns the object when the server answers with it (finalizers pending),
  // else a Status object.
  virtual absl::StatusOr<Json> remove(const ResourceType& rt, const std::string& ns,
                                      const std::string& name,
                                      const DeleteOptions& options = {}) = 0;
  // Creates a non-persisted review object (TokenReview, SubjectAccessReview).
  // Streams watch events until the server closes, `onEvent` returns false, or
  // `stop` is requested. A 410 comes back as an error (isGone) or as an ERROR
  // event, as the server chooses.
  virtual absl::Status watch(const ResourceType& rt, const std::string& ns,
                             const WatchOptions& options,
                             const std::function<bool(const WatchEvent&)>& onEvent,
                             std::stop_token stop) = 0;
};

// All pages of a list, following `continue` tokens. Returns a List object with
// every item and the resourceVersion of the first page (consistent snapshot).
absl::StatusOr<Json> listAll(Client& client, const ResourceType& rt, const std::string& ns,
                             ListOptions options = {});

}  // namespace patchgate::kube
