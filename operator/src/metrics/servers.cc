#include "metrics/servers.h"

#include <CivetServer.h>
#include <prometheus/exposer.h>

#include "absl/strings/str_cat.h"

namespace patchgate::metrics {

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::create(const std::string& bind,
                                                                     Metrics& metrics) {
  std::unique_ptr<MetricsServer> s(new MetricsServer());
  try {
    s->exposer_ = std::make_unique<prometheus::Exposer>(bind);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("metrics server on ", bind, ": ", e.what()));
  }
  s->exposer_->RegisterCollectable(metrics.registry());
  for (const auto& c : metrics.collectables()) s->exposer_->RegisterCollectable(c);
  return s;
}

MetricsServer::~MetricsServer() = default;

int MetricsServer::port() const {
  auto ports = exposer_->GetListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

class HealthHandler : public CivetHandler {
 public:
  explicit HealthHandler(const runtime::Manager& m) : manager_(m) {}
  bool handleGet(CivetServer*, struct mg_connection* conn) override {
    const mg_request_info* info = mg_get_request_info(conn);
    std::string uri = info->local_uri ? info->local_uri : "";
    std::string failures;
    if (uri == "/healthz" || uri == "/livez") {
      failures = manager_.healthz();
    } else if (uri == "/readyz") {
      failures = manager_.readyz();
    } else {
      mg_send_http_error(conn, 404, "%s", "not found\n");
      return true;
    }
    std::string body = failures.empty() ? "ok\n" : failures;
    int code = failures.empty() ? 200 : 500;
    mg_printf(conn,
              "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
              "Connection: close\r\n\r\n%s",
              code, code == 200 ? "OK" : "Internal Server Error", body.size(), body.c_str());
    return true;
  }

 private:
  const runtime::Manager& manager_;
};

absl::StatusOr<std::unique_ptr<HealthServer>> HealthServer::create(
    const std::string& bind, const runtime::Manager& manager) {
  std::unique_ptr<HealthServer> s(new HealthServer());
  try {
    s->server_ = std::make_unique<CivetServer>(
        std::vector<std::string>{"listening_ports", bind, "num_threads", "2"});
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("health server on ", bind, ": ", e.what()));
  }
  s->handler_ = std::make_unique<HealthHandler>(manager);
  s->server_->addHandler("/healthz", s->handler_.get());
  s->server_->addHandler("/livez", s->handler_.get());
  s->server_->addHandler("/readyz", s->handler_.get());
  return s;
}

HealthServer::~HealthServer() {
  if (server_) server_->close();
}

int HealthServer::port() const {
  auto ports = server_->getListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

}  // namespace patchgate::metrics
