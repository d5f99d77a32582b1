#pragma once

#include <string>

#include "kube/client.h"

namespace patchgate::kube {

// For crash tests: a Client that hits a failpoint (common/failpoint.h) right
// after each write the API server accepted, as a SIGKILL at that instant
// would. The points are named "after:<verb>:<resource>" (verb: create,
// update, updateStatus, patch, delete; resource: the plural, e.g.
// "after:patch:deployments"), and a status write of a Patch is also
// "after:updateStatus:patches:<phase written>". Dry runs are not writes.
// Armed with refuse:<n>, "before:<verb>:<resource>[:<phase to write>]"
// answers a 409 without sending the write (a status write refused right
// after a production write, say).
// main.cc puts it in front of the real client only when PATCHGATE_FAILPOINTS
// is set; tests/e2e/patch/faults.txt lists the points of the lifecycle.
class FailpointClient final : public Client {
 public:
  explicit FailpointClient(Client& inner) : inner_(inner) {}

  absl::StatusOr<Json> get(const ResourceType& rt, const std::string& ns, const std::string& name) override {
    return inner_.get(rt, ns, name);
  }
  absl::StatusOr<Json> list(const ResourceType& rt, const std::string& ns, const ListOptions& options) override {
    return inner_.list(rt, ns, options);
  }
  absl::StatusOr<Json> create(const ResourceType& rt, const std::string& ns, const Json& obj,
                              const WriteOptions& options) override;
  absl::StatusOr<Json> update(const ResourceType& rt, const std::string& ns, const Json& obj,
                              const WriteOptions& options) override;
  absl::StatusOr<Json> updateStatus(const ResourceType& rt, const std::string& ns, const Json& obj,
                                    const WriteOptions& options) override;
  absl::StatusOr<Json> patch(const ResourceType& rt, const std::string& ns, const std::string& name, PatchType type,
                             const std::string& body, const PatchOptions& options) override;
  absl::StatusOr<Json> remove(const ResourceType& rt, const std::string& ns, const std::string& name,
                              const DeleteOptions& options) override;
  absl::Status watch(const ResourceType& rt, const std::string& ns, const WatchOptions& options,
                     const std::function<bool(const WatchEvent&)>& onEvent, std::stop_token stop) override {
    return inner_.watch(rt, ns, options, onEvent, stop);
  }

 private:
  Client& inner_;
};

}  // namespace patchgate::kube
