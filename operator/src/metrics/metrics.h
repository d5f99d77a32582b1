#pragma once

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "runtime/controller.h"
#include "runtime/workqueue.h"

namespace patchgate::metrics {

// The metric families patchgate exports, named as controller-runtime and
// client-go name them so that existing dashboards work. Counters are created
// with their label values up front, so they start at zero. One instance per
// process, handed to the components that report.
class Metrics {
 public:
  Metrics();
  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }
  // More collectables served with the registry (e.g. gauges read from a cache).
  void addCollectable(std::shared_ptr<prometheus::Collectable> c);
  const std::vector<std::shared_ptr<prometheus::Collectable>>& collectables() const { return extra_; }

  // Per-controller / per-queue adapters (owned here, stable addresses).
  runtime::ControllerMetrics* controller(const std::string& name);
  runtime::QueueMetrics* queue(const std::string& name);

  void leaderElection(const std::string& name, bool leading);
  // REST client: verb (GET, LIST, ...), code ("200", "<error>").
  void restRequest(const std::string& verb, int code, double seconds);

  prometheus::Family<prometheus::Counter>& reconcileTotal() { return *reconcileTotal_; }
  prometheus::Family<prometheus::Gauge>& gauges(const std::string& name);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* reconcileTotal_;
  prometheus::Family<prometheus::Counter>* reconcileErrors_;
  prometheus::Family<prometheus::Counter>* terminalErrors_;
  prometheus::Family<prometheus::Histogram>* reconcileTime_;
  prometheus::Family<prometheus::Gauge>* maxConcurrent_;
  prometheus::Family<prometheus::Gauge>* activeWorkers_;
  prometheus::Family<prometheus::Gauge>* queueDepth_;
  prometheus::Family<prometheus::Counter>* queueAdds_;
  prometheus::Family<prometheus::Histogram>* queueDuration_;
  prometheus::Family<prometheus::Histogram>* workDuration_;
  prometheus::Family<prometheus::Counter>* queueRetries_;
  prometheus::Family<prometheus::Gauge>* leader_;
  prometheus::Family<prometheus::Counter>* restRequests_;
  prometheus::Family<prometheus::Histogram>* restLatency_;

  std::vector<std::shared_ptr<prometheus::Collectable>> extra_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<runtime::ControllerMetrics>> controllers_;
  std::map<std::string, std::unique_ptr<runtime::QueueMetrics>> queues_;
};

}  // namespace patchgate::metrics
