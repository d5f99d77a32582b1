#include "kube/failpoint_client.h"

#include "absl/strings/str_cat.h"
#include "common/failpoint.h"
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
}  // namespace

absl::StatusOr<Json> FailpointClient::create(const ResourceType& rt, const std::string& ns, const Json& obj,
                                             const WriteOptions& options) {
  return after(inner_.create(rt, ns, obj, options), options.dryRun, "create", rt);
}
absl::StatusOr<Json> FailpointClient::update(const ResourceType& rt, const std::string& ns, const Json& obj,
                                             const WriteOptions& options) {
  return after(inner_.update(rt, ns, obj, options), options.dryRun, "update", rt);
}
absl::StatusOr<Json> FailpointClient::updateStatus(const ResourceType& rt, const std::string& ns, const Json& obj,
                                                   const WriteOptions& options) {
  return after(inner_.updateStatus(rt, ns, obj, options), options.dryRun, "updateStatus", rt);
}
absl::StatusOr<Json> FailpointClient::patch(const ResourceType& rt, const std::string& ns, const std::string& name,
                                            PatchType type, const std::string& body, const PatchOptions& options) {
  return after(inner_.patch(rt, ns, name, type, body, options), options.dryRun, "patch", rt);
}
absl::StatusOr<Json> FailpointClient::remove(const ResourceType& rt, const std::string& ns, const std::string& name,
                                             const DeleteOptions& options) {
  return after(inner_.remove(rt, ns, name, options), options.dryRun, "delete", rt);
}

}  // namespace patchgate::kube
