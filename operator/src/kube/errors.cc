#include "kube/errors.h"

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/json.h"

namespace patchgate::kube {
namespace {

constexpr char kCodeUrl[] = "patchgate.dev/k8s-code";
constexpr char kReasonUrl[] = "patchgate.dev/k8s-reason";

absl::StatusCode toAbsl(int code) {
  switch (code) {
    case 400: return absl::StatusCode::kInvalidArgument;
    case 401: return absl::StatusCode::kUnauthenticated;
    case 403: return absl::StatusCode::kPermissionDenied;
    case 404: return absl::StatusCode::kNotFound;
    case 408: case 504: return absl::StatusCode::kDeadlineExceeded;
    case 409: return absl::StatusCode::kAborted;
    case 410: return absl::StatusCode::kOutOfRange;
    case 422: return absl::StatusCode::kInvalidArgument;
    case 429: return absl::StatusCode::kResourceExhausted;
    case 500: return absl::StatusCode::kInternal;
    case 503: return absl::StatusCode::kUnavailable;
    default: return code >= 500 ? absl::StatusCode::kUnavailable : absl::StatusCode::kUnknown;
  }
}

std::string defaultReason(int code) {
  switch (code) {
    case 400: return "BadRequest";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "NotFound";
    case 405: return "MethodNotAllowed";
    case 409: return "Conflict";
    case 410: return "Expired";
    case 422: return "Invalid";
    case 429: return "TooManyRequests";
    case 500: return "InternalError";
    case 503: return "ServiceUnavailable";
    case 504: return "Timeout";
    default: return "Unknown";
  }
}

}  // namespace

absl::Status apiError(int code, std::string_view reason, std::string_view message) {
  std::string r = reason.empty() ? defaultReason(code) : std::string(reason);
  absl::Status s(toAbsl(code), message.empty() ? absl::StrCat(r, " (HTTP ", code, ")")
                                               : std::string(message));
  s.SetPayload(kCodeUrl, absl::Cord(std::to_string(code)));
  s.SetPayload(kReasonUrl, absl::Cord(r));
  return s;
}

absl::Status errorFromResponse(int code, std::string_view body) {
  auto parsed = parseJson(body);
  if (parsed.ok() && parsed->is_object() && parsed->value("kind", "") == "Status") {
    return apiError(code, parsed->value("reason", ""), parsed->value("message", ""));
  }
  std::string text(body.substr(0, 512));
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return apiError(code, "", text);
}

absl::Status transportError(std::string_view message) {
  absl::Status s(absl::StatusCode::kUnavailable, std::string(message));
  s.SetPayload(kReasonUrl, absl::Cord("TransportError"));
  return s;
}

int httpCode(const absl::Status& s) {
  auto p = s.GetPayload(kCodeUrl);
  int code = 0;
  if (p && absl::SimpleAtoi(std::string(*p), &code)) return code;
  return 0;
}

std::string reason(const absl::Status& s) {
  auto p = s.GetPayload(kReasonUrl);
  return p ? std::string(*p) : std::string();
}

bool isNotFound(const absl::Status& s) { return httpCode(s) == 404; }
bool isAlreadyExists(const absl::Status& s) {
  return httpCode(s) == 409 && reason(s) == "AlreadyExists";
}
bool isConflict(const absl::Status& s) { return httpCode(s) == 409 && reason(s) != "AlreadyExists"; }
bool isGone(const absl::Status& s) { return httpCode(s) == 410; }
bool isUnauthorized(const absl::Status& s) { return httpCode(s) == 401; }
bool isForbidden(const absl::Status& s) { return httpCode(s) == 403; }
bool isInvalid(const absl::Status& s) { return httpCode(s) == 422 || httpCode(s) == 400; }
bool isTimeout(const absl::Status& s) {
  int c = httpCode(s);
  return c == 504 || c == 408 || (c == 0 && s.code() == absl::StatusCode::kDeadlineExceeded);
}
bool isTooManyRequests(const absl::Status& s) { return httpCode(s) == 429; }
bool isUnavailable(const absl::Status& s) {
  int c = httpCode(s);
  return c == 503 || c == 500 || c == 502 || reason(s) == "TransportError";
}
bool isRetryable(const absl::Status& s) {
  return isUnavailable(s) || isTimeout(s) || isTooManyRequests(s);
}

}  // namespace patchgate::kube
