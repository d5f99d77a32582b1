#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace patchgate {

using Json = nlohmann::json;

// Parses JSON text, turning the library's exception into a Status at this edge.
// Text nested deeper than 1000 levels is refused: deeper values could
// overflow the stack when copied or dumped (Kubernetes objects nest a few
// dozen levels; the API server's own limit is 10000).
absl::StatusOr<Json> parseJson(std::string_view text);

// Reads a string at a JSON pointer such as "/metadata/name"; "" when absent or
// not a string.
std::string jsonString(const Json& obj, const char* pointer);

// Reads an integer at a JSON pointer; `fallback` when absent or not a number.
int64_t jsonInt(const Json& obj, const char* pointer, int64_t fallback = 0);

// Returns the value at a JSON pointer, or nullptr JSON when absent.
const Json& jsonAt(const Json& obj, const char* pointer);

// RFC 3339 (UTC, seconds) as Kubernetes writes metav1.Time.
std::string formatTime(std::chrono::system_clock::time_point t);
// RFC 3339 with microseconds, as metav1.MicroTime (Leases, events.k8s.io).
std::string formatMicroTime(std::chrono::system_clock::time_point t);
absl::StatusOr<std::chrono::system_clock::time_point> parseTime(std::string_view text);

}  // namespace patchgate
