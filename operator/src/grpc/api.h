#pragma once

// The patchgate.v1 API as plain functions over the Patch cache and the
// Kubernetes client. No gRPC server types here: the service adapter
// (server.cc) reads the "authorization" metadata and maps absl::Status codes
// to gRPC codes one to one, so every decision is unit-tested without a socket.

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/json.h"
#include "grpc/auth.h"
#include "kube/client.h"
#include "patchgate/v1/patchgate.pb.h"
#include "runtime/store.h"

namespace patchgate::grpcapi {

namespace pb = ::patchgate::v1;

// Succeeded, Failed, RolledBack: the Patch will not move again.
bool isTerminalPhase(const std::string& phase);

// A Patch object (JSON, as the API server returns it) as the proto message.
pb::Patch toProto(const Json& patch);
// The suites of a report as stored in status.testReports[test]. Outputs are
// cut to 4 KiB each so a chatty test can't bloat the object.
Json suitesToJson(const pb::ReportTestResultsRequest& req);

// A test pod may report only for the Patch whose environment it runs in: the
// caller must be a service account of `envNs`, `pod` (the pod its token is
// bound to) must be a test pod of `patch` (labels patchgate.dev/test and
// patchgate.dev/patch-uid), and `patch` must have that environment
// (status.environment.namespace).
absl::Status checkReporter(const UserInfo& user, const std::string& envNs, const Json& patch, const Json& pod);
// The first half of that: a service account of envNs.
absl::Status checkReporterIdentity(const UserInfo& user, const std::string& envNs);

// The API: reads Patches from `patches` (the operator's informer cache; may
// be stale by the watch latency), writes through `client`. Thread-safe.
// RBAC of the operator: create tokenreviews and subjectaccessreviews; get
// controllerrevisions; get and update patches/status; list pods in
// environments (the reporting test pod).
class PatchgateApi {
 public:
  PatchgateApi(const runtime::Store& patches, kube::Client& client, Authenticator& auth, Clock& clock)
      : patches_(patches), client_(client), auth_(auth), clock_(clock) {}

  absl::StatusOr<pb::Patch> getPatch(std::string_view authorization, const pb::GetPatchRequest& req);
  // Calls `send` with the current state, then every change, until the Patch
  // is terminal or deleted (OK), `send` returns false or `cancelled()` holds
  // (CANCELLED), or shutdown() (UNAVAILABLE).
  absl::Status watchPatch(std::string_view authorization, const pb::WatchPatchRequest& req,
                          const std::function<bool(const pb::PatchEvent&)>& send,
                          const std::function<bool()>& cancelled);
  absl::StatusOr<pb::ListRevisionsResponse> listRevisions(std::string_view authorization,
                                                          const pb::ListRevisionsRequest& req);
  absl::StatusOr<pb::ChangeRecord> getChangeRecord(std::string_view authorization,
                                                   const pb::GetPatchRequest& req);
  absl::StatusOr<pb::ReportTestResultsResponse> reportTestResults(std::string_view authorization,
                                                                  const pb::ReportTestResultsRequest& req);

  // The cache changed (from an informer event handler): wakes watches.
  void notify();
  // Ends open watches (server shutdown).
  void shutdown();

 private:
  // The pod `user`'s token is bound to, which must be a test pod in envNs.
  absl::StatusOr<Json> reportingPod(const UserInfo& user, const std::string& envNs);
  absl::StatusOr<runtime::Object> authorizedPatch(std::string_view authorization, const std::string& verb,
                                                  const std::string& ns, const std::string& name);

  const runtime::Store& patches_;
  kube::Client& client_;
  Authenticator& auth_;
  Clock& clock_;
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t version_ = 0;
  bool shutdown_ = false;
};

}  // namespace patchgate::grpcapi
