#pragma once

// Authentication and authorization of API calls, without any gRPC type: the
// server hands over the "authorization" metadata and gets an absl::Status
// (UNAUTHENTICATED / PERMISSION_DENIED map 1:1 to gRPC codes).

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "kube/client.h"

namespace patchgate::grpcapi {

// Who called, as the API server's TokenReview says.
struct UserInfo {
  std::string username;
  std::string uid;
  std::vector<std::string> groups;
  // For a token bound to a pod (a pod's automounted, projected token): the
  // pod, from the review's extra authentication.kubernetes.io/pod-name, -uid.
  std::string podName;
  std::string podUid;
  // All of the review's extra (scopes, pod binding, ...), passed on to
  // SubjectAccessReviews so that authorizers that use it decide as for the
  // user's own requests.
  std::map<std::string, std::vector<std::string>> extra;
};

// The audience a token must be issued for: a token for the API server (a
// pipeline's kubeconfig token, a pod's automounted one) is not accepted, so
// whoever holds a patchgate token cannot use it against the API server, and
// the other way round. `kubectl create token SA --audience patchgate`, or a
// projected serviceAccountToken volume with `audience: patchgate`.
inline constexpr char kTokenAudience[] = "patchgate";

// "Bearer <token>" -> token; UNAUTHENTICATED when missing or malformed.
absl::StatusOr<std::string> parseBearer(std::string_view authorization);

// "system:serviceaccount:NS:NAME" -> NS; "" for other users.
std::string serviceAccountNamespace(const std::string& username);

// What a call wants to do, as a SubjectAccessReview's resourceAttributes.
struct ResourceAttributes {
  std::string verb;
  std::string group;
  std::string resource;
  std::string ns;
  std::string name;  // may be empty
};

// Checks bearer tokens with TokenReview (authentication.k8s.io/v1) and rights
// with SubjectAccessReview (authorization.k8s.io/v1). Successful token reviews
// are cached for `ttl` (default 60 s, keyed by a hash of the token, never the
// token itself), so a revoked token may keep working that long. Access
// decisions are not cached. Thread-safe.
// RBAC: create on tokenreviews and subjectaccessreviews (system:auth-delegator).
class Authenticator {
 public:
  // `audience`: the audience tokens must be issued for ("" accepts the API
  // server's own audience: development only).
  Authenticator(kube::Client& client, Clock& clock, std::chrono::seconds ttl = std::chrono::seconds(60),
                std::string audience = kTokenAudience)
      : client_(client), clock_(clock), ttl_(ttl), audience_(std::move(audience)) {}

  // UNAUTHENTICATED for a missing/invalid token, UNAVAILABLE when the API
  // server can't be asked.
  absl::StatusOr<UserInfo> authenticate(std::string_view authorization);
  // PERMISSION_DENIED unless the API server allows `attrs` for `user`.
  absl::Status authorize(const UserInfo& user, const ResourceAttributes& attrs);

 private:
  struct Entry {
    UserInfo user;
    Clock::TimePoint expires;
  };
  kube::Client& client_;
  Clock& clock_;
  std::chrono::seconds ttl_;
  std::string audience_;
  std::mutex mu_;
  std::map<std::string, Entry> cache_;  // sha256(token) hex -> user
};

}  // namespace patchgate::grpcapi
