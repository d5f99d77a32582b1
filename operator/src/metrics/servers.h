#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "metrics/metrics.h"
#include "runtime/manager.h"

namespace prometheus { class Exposer; }
class CivetServer;

namespace patchgate::metrics {

// Serves /metrics (prometheus-cpp's exposer) on its own address.
class MetricsServer {
 public:
  static absl::StatusOr<std::unique_ptr<MetricsServer>> create(const std::string& bindAddress,
                                                               Metrics& metrics);
  ~MetricsServer();
  int port() const;

 private:
  MetricsServer() = default;
  std::unique_ptr<prometheus::Exposer> exposer_;
};

// Serves /healthz and /readyz from the Manager's checks: 200 "ok", or 500
// with the failing checks, one per line. Kubelet probes point here.
class HealthServer {
 public:
  static absl::StatusOr<std::unique_ptr<HealthServer>> create(const std::string& bindAddress,
                                                              const runtime::Manager& manager);
  ~HealthServer();
  int port() const;

 private:
  HealthServer() = default;
  std::unique_ptr<CivetServer> server_;
  std::unique_ptr<class HealthHandler> handler_;
};

}  // namespace patchgate::metrics
