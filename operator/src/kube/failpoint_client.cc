#include "kube/failpoint_client.h"

#include "absl/strings/str_cat.h"
#include "common/failpoint.h"
#include "kube/errors.h"
#include "kube/resource.h"

namespace patchgate::kube {

namespace {
// Passes the result through, after the failpoint of an accepted write.
absl::StatusOr<Json> after(absl::StatusOr<Json> result, bool dryRun, const char* verb, const ResourceType& rt) {
  if (result.ok() && !dryRun) {
    failpoint(absl::StrCat("after:", verb, ":", rt.resource));
    if (rt.resource == "patches" && std::string(verb) == "updateStatus")
      failpoint(absl::StrCat("after:updateStatus:patches:", jsonString(*result, "/status/phase")));
  }
  return result;
}

// A 409 instead of sending the write, when "before:<verb>:<resource>" (or,
// for a Patch's status, "before:updateStatus:patches:<phase to write>") is
// armed with refuse:<n>.
absl::Status refused(const char* verb, const ResourceType& rt, const Json* obj = nullptr) {
  std::string point = absl::StrCat("before:", verb, ":", rt.resource);
  if (obj != nullptr && rt.resource == "patches" && std::string(verb) == "updateStatus")
    absl::StrAppend(&point, ":", jsonString(*obj, "/status/phase"));
  if (!failpointRefuses(point)) return absl::OkStatus();
  return apiError(409, "Conflict", absl::StrCat("refused by failpoint ", point));
}
}  // namespace

absl::StatusOr<Json> FailpointClient::create(const ResourceType& rt, const std::string& ns, const Json& obj,
                                             const WriteOptions& options) {
  if (auto r = refused("create", rt); !r.ok()) return r;
  return after(inner_.create(rt, ns, obj, options), options.dryRun, "create", rt);
}
absl::StatusOr<Json> FailpointClient::update(const ResourceType& rt, const std::string& ns, const Json& obj,
                                             const WriteOptions& options) {
  if (auto r = refused("update", rt); !r.ok()) return r;
  return after(inner_.update(rt, ns, obj, options), options.dryRun, "update", rt);
}
absl::StatusOr<Json> FailpointClient::updateStatus(const ResourceType& rt, const std::string& ns, const Json& obj,
                                                   const WriteOptions& options) {
  if (auto r = refused("updateStatus", rt, &obj); !r.ok()) return r;
  return after(inner_.updateStatus(rt, ns, obj, options), options.dryRun, "updateStatus", rt);
}
absl::StatusOr<Json> FailpointClient::patch(const ResourceType& rt, const std::string& ns, const std::string& name,
                                            PatchType type, const std::string& body, const PatchOptions& options) {
  if (auto r = refused("patch", rt); !r.ok()) return r;
  return after(inner_.patch(rt, ns, name, type, body, options), options.dryRun, "patch", rt);
}
absl::StatusOr<Json> FailpointClient::remove(const ResourceType& rt, const std::string& ns, const std::string& name,
                                             const DeleteOptions& options) {
  if (auto r = refused("delete", rt); !r.ok()) return r;
  return after(inner_.remove(rt, ns, name, options), options.dryRun, "delete", rt);
}

}  // namespace patchgate::kube
