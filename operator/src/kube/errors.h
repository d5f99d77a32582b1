#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace patchgate::kube {

// Kubernetes API errors travel as absl::Status. The HTTP code and the
// metav1.Status reason are kept as payloads, and the server's message is the
// Status message, so callers can both classify and show it. Ask with the
// predicates below, never with raw codes.
absl::Status apiError(int httpCode, std::string_view reason, std::string_view message);

// Builds the Status for a non-2xx response from its body (a metav1.Status
// when the API server wrote it, anything else otherwise).
absl::Status errorFromResponse(int httpCode, std::string_view body);

// Transport-level failure (connection refused, TLS, timeout before a reply).
absl::Status transportError(std::string_view message);

int httpCode(const absl::Status& s);          // 0 when not an API error
std::string reason(const absl::Status& s);    // "" when unknown

bool isNotFound(const absl::Status& s);       // 404
bool isAlreadyExists(const absl::Status& s);  // 409 AlreadyExists
bool isConflict(const absl::Status& s);       // 409 Conflict (stale resourceVersion)
bool isGone(const absl::Status& s);           // 410 (resourceVersion too old)
bool isUnauthorized(const absl::Status& s);   // 401
bool isForbidden(const absl::Status& s);      // 403
bool isInvalid(const absl::Status& s);        // 422, or 400 BadRequest
bool isTimeout(const absl::Status& s);        // 504, 408, or a client-side timeout
bool isTooManyRequests(const absl::Status& s);  // 429
bool isUnavailable(const absl::Status& s);    // 503, 500, or the server unreachable

// True for errors worth retrying with backoff: the server is down, overloaded
// or slow. Conflicts are retryable too, but by re-reading first.
bool isRetryable(const absl::Status& s);

}  // namespace patchgate::kube
