#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <stop_token>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace patchgate::kube {

struct HttpRequest {
  std::string method = "GET";
  std::string pathAndQuery;      // "/api/v1/namespaces/x/pods?limit=500"
  std::string body;
  std::string contentType;       // set when body is non-empty
  std::string accept = "application/json";
  std::chrono::seconds timeout{30};  // for a stream: idle time allowed between lines
  std::map<std::string, std::string> headers;
};

struct HttpResponse {
  int status = 0;
  std::string body;
};

// The HTTP seam under the Kubernetes client. Implementations add the server
// address, TLS and credentials; nothing above this interface sees the HTTP
// library. Must be thread-safe.
class Transport {
 public:
  virtual ~Transport() = default;

  // One request/response. Non-2xx statuses are returned as responses (the
  // client classifies them); only transport failures are errors.
  virtual absl::StatusOr<HttpResponse> send(const HttpRequest& request) = 0;

  // A streaming request (watch). Returns once the headers arrive and the body
  // has been consumed: `onLine` gets each line and returns false to stop.
  // Returns OK when the server ended the stream, `onLine` stopped it, or `stop`
  // was requested; the API error for a non-2xx status; a transport error
  // otherwise. Each call uses its own connection.
  virtual absl::Status stream(const HttpRequest& request,
                              const std::function<bool(std::string_view)>& onLine,
                              std::stop_token stop) = 0;
};

}  // namespace patchgate::kube
