#pragma once

#include <memory>

#include "common/clock.h"
#include "kube/client.h"
#include "kube/transport/transport.h"

namespace patchgate::kube {

// Observes each API request (for REST client metrics): verb, HTTP code (0 on
// transport failure), seconds.
using RequestObserver = std::function<void(const std::string& verb, int code, double seconds)>;

// Client over a Transport. Adds JSON encoding, query parameters, error
// classification and a client-side token bucket (qps/burst, as client-go).
class ClientImpl final : public Client {
 public:
  ClientImpl(std::unique_ptr<Transport> transport, std::string fieldManager,
             double qps = 50, int burst = 100);

  void setRequestObserver(RequestObserver observer) { observer_ = std::move(observer); }
  // The time a request (not a watch) may take to answer; default 30 s. The
  // leader elector's client uses a few seconds, well under its renew deadline.
  void setRequestTimeout(std::chrono::seconds t) { requestTimeout_ = t; }

  absl::StatusOr<Json> get(const ResourceType& rt, const std::string& ns,
                           const std::string& name) override;
  absl::StatusOr<Json> list(const ResourceType& rt, const std::string& ns,
                            const ListOptions& options) override;
  absl::StatusOr<Json> create(const ResourceType& rt, const std::string& ns, const Json& obj,
                              const WriteOptions& options) override;
  absl::StatusOr<Json> update(const ResourceType& rt, const std::string& ns, const Json& obj,
                              const WriteOptions& options) override;
  absl::StatusOr<Json> updateStatus(const ResourceType& rt, const std::string& ns,
                                    const Json& obj, const WriteOptions& options) override;
  absl::StatusOr<Json> patch(const ResourceType& rt, const std::string& ns,
                             const std::string& name, PatchType type, const std::string& body,
                             const PatchOptions& options) override;
  absl::StatusOr<Json> remove(const ResourceType& rt, const std::string& ns,
                              const std::string& name, const DeleteOptions& options) override;
  absl::Status watch(const ResourceType& rt, const std::string& ns, const WatchOptions& options,
                     const std::function<bool(const WatchEvent&)>& onEvent,
                     std::stop_token stop) override;

 private:
  absl::StatusOr<Json> call(const std::string& verb, HttpRequest request);
  absl::StatusOr<Json> put(const ResourceType& rt, const std::string& ns, const Json& obj,
                           const std::string& subresource, const WriteOptions& options);
  void throttle();

  std::unique_ptr<Transport> transport_;
  std::string fieldManager_;
  RequestObserver observer_;
  std::chrono::seconds requestTimeout_{30};
  // token bucket
  std::mutex mu_;
  double qps_;
  double burst_;
  double tokens_;
  std::chrono::steady_clock::time_point last_;
};

// Percent-encodes a query parameter value.
std::string urlEncode(std::string_view value);

// Decodes one line of a watch stream, a JSON WatchEvent
// ({"type": "ADDED", "object": {...}}). A missing or unknown type is
// kError. InvalidArgument for a line that is not a JSON object; never throws.
absl::StatusOr<WatchEvent> decodeWatchEvent(std::string_view line);

}  // namespace patchgate::kube
