#include "kube/errors.h"

#include <gtest/gtest.h>

namespace patchgate::kube {
namespace {

std::string statusBody(int code, const std::string& reason, const std::string& message) {
  return R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":")" +
         message + R"(","reason":")" + reason + R"(","code":)" + std::to_string(code) + "}";
}

TEST(Errors, ClassifiesAMetav1StatusBody) {
  auto s = errorFromResponse(404, statusBody(404, "NotFound", "patches \\\"p\\\" not found"));
  EXPECT_TRUE(isNotFound(s));
  EXPECT_EQ(httpCode(s), 404);
  EXPECT_EQ(reason(s), "NotFound");
  EXPECT_EQ(s.message(), "patches \"p\" not found");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(isConflict(s));
}

TEST(Errors, ConflictAndAlreadyExistsAreBoth409ButDistinct) {
  auto conflict = errorFromResponse(409, statusBody(409, "Conflict", "the object has been modified"));
  EXPECT_TRUE(isConflict(conflict));
  EXPECT_FALSE(isAlreadyExists(conflict));

  auto exists = errorFromResponse(409, statusBody(409, "AlreadyExists", "leases \\\"l\\\" already exists"));
  EXPECT_TRUE(isAlreadyExists(exists));
  EXPECT_FALSE(isConflict(exists));

  EXPECT_TRUE(isAlreadyExists(apiError(409, "AlreadyExists", "x")));
  EXPECT_TRUE(isConflict(apiError(409, "", "x")));  // default reason: Conflict
  EXPECT_EQ(reason(apiError(409, "", "x")), "Conflict");
}

TEST(Errors, NonJsonBodyKeepsTheTextAndDefaultsTheReason) {
  auto s = errorFromResponse(503, "upstream connect error\r\n");
  EXPECT_TRUE(isUnavailable(s));
  EXPECT_EQ(reason(s), "ServiceUnavailable");
  EXPECT_EQ(s.message(), "upstream connect error");

  // JSON that is not a Status is treated as text too.
  auto t = errorFromResponse(410, R"({"foo":1})");
  EXPECT_TRUE(isGone(t));
  EXPECT_EQ(reason(t), "Expired");
  EXPECT_EQ(t.message(), R"({"foo":1})");

  auto empty = errorFromResponse(500, "");
  EXPECT_EQ(empty.message(), "InternalError (HTTP 500)");

  auto longBody = errorFromResponse(502, std::string(2000, 'x'));
  EXPECT_EQ(longBody.message().size(), 512u);
}

TEST(Errors, Predicates) {
  EXPECT_TRUE(isUnauthorized(errorFromResponse(401, "")));
  EXPECT_TRUE(isForbidden(errorFromResponse(403, "")));
  EXPECT_TRUE(isInvalid(errorFromResponse(422, statusBody(422, "Invalid", "spec.x"))));
  EXPECT_TRUE(isInvalid(errorFromResponse(400, "")));
  EXPECT_TRUE(isTooManyRequests(errorFromResponse(429, "")));
  EXPECT_TRUE(isTimeout(errorFromResponse(504, "")));
  EXPECT_TRUE(isTimeout(errorFromResponse(408, "")));
  EXPECT_TRUE(isTimeout(absl::DeadlineExceededError("client-side timeout")));
  EXPECT_TRUE(isGone(apiError(410, "Expired", "too old resource version")));
  EXPECT_FALSE(isNotFound(absl::NotFoundError("a file, not an API object")));
  EXPECT_EQ(httpCode(absl::OkStatus()), 0);
  EXPECT_EQ(reason(absl::InternalError("x")), "");

  auto t = transportError("connection refused");
  EXPECT_TRUE(isUnavailable(t));
  EXPECT_EQ(httpCode(t), 0);
  EXPECT_EQ(t.message(), "connection refused");
}

TEST(Errors, RetryableMeansServerSideTrouble) {
  for (int code : {500, 502, 503, 504, 408, 429}) {
    EXPECT_TRUE(isRetryable(errorFromResponse(code, ""))) << code;
  }
  EXPECT_TRUE(isRetryable(transportError("reset")));
  for (int code : {400, 401, 403, 404, 409, 410, 422}) {
    EXPECT_FALSE(isRetryable(errorFromResponse(code, ""))) << code;
  }
  EXPECT_FALSE(isRetryable(absl::OkStatus()));
}

}  // namespace
}  // namespace patchgate::kube
