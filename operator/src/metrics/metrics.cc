#include "metrics/metrics.h"

namespace patchgate::metrics {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;
using prometheus::Histogram;

// controller-runtime's reconcile_time buckets.
Histogram::BucketBoundaries reconcileBuckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6,
          0.7, 0.8, 0.9, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5, 6, 7, 8, 9,
          10, 15, 20, 25, 30, 40, 50, 60};
}
// client-go workqueue buckets: 1e-8 .. 1e+1, factor 10.
Histogram::BucketBoundaries queueBuckets() {
  return {1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1, 10};
}

class ControllerAdapter final : public runtime::ControllerMetrics {
 public:
  ControllerAdapter(const std::string& name, prometheus::Family<prometheus::Counter>& total,
                    prometheus::Family<prometheus::Counter>& errors,
                    prometheus::Family<prometheus::Counter>& terminal,
                    prometheus::Family<prometheus::Histogram>& time,
                    prometheus::Family<prometheus::Gauge>& maxConc,
                    prometheus::Family<prometheus::Gauge>& active)
      : errors_(errors.Add({{"controller", name}})),
        terminal_(terminal.Add({{"controller", name}})),
        time_(time.Add({{"controller", name}}, reconcileBuckets())),
        max_(maxConc.Add({{"controller", name}})), active_(active.Add({{"controller", name}})) {
    for (const char* r : {"success", "error", "requeue", "requeue_after"})
      results_[r] = &total.Add({{"controller", name}, {"result", r}});
  }
  void reconciled(const std::string& result, double seconds) override {
    if (auto it = results_.find(result); it != results_.end()) it->second->Increment();
    time_.Observe(seconds);
  }
  void reconcileError(bool terminal) override {
    errors_.Increment();
    if (terminal) terminal_.Increment();
  }
  void activeWorkers(int n) override { active_.Set(n); }
  void maxConcurrentReconciles(int n) override { max_.Set(n); }

 private:
  std::map<std::string, prometheus::Counter*> results_;
  prometheus::Counter& errors_;
  prometheus::Counter& terminal_;
  prometheus::Histogram& time_;
  prometheus::Gauge& max_;
  prometheus::Gauge& active_;
};

class QueueAdapter final : public runtime::QueueMetrics {
 public:
  QueueAdapter(const std::string& name, prometheus::Family<prometheus::Gauge>& depth,
               prometheus::Family<prometheus::Counter>& adds,
               prometheus::Family<prometheus::Histogram>& queued,
               prometheus::Family<prometheus::Histogram>& work,
               prometheus::Family<prometheus::Counter>& retries)
      : depth_(depth.Add({{"name", name}, {"controller", name}})),
        adds_(adds.Add({{"name", name}, {"controller", name}})),
        queued_(queued.Add({{"name", name}, {"controller", name}}, queueBuckets())),
        work_(work.Add({{"name", name}, {"controller", name}}, queueBuckets())),
        retries_(retries.Add({{"name", name}, {"controller", name}})) {}
  void add() override { adds_.Increment(); }
  void depth(int64_t d) override { depth_.Set(static_cast<double>(d)); }
  void queueDuration(double s) override { queued_.Observe(s); }
  void workDuration(double s) override { work_.Observe(s); }
  void retry() override { retries_.Increment(); }

 private:
  prometheus::Gauge& depth_;
  prometheus::Counter& adds_;
  prometheus::Histogram& queued_;
  prometheus::Histogram& work_;
  prometheus::Counter& retries_;
};

}  // namespace

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {
  auto& r = *registry_;
  reconcileTotal_ = &BuildCounter().Name("controller_runtime_reconcile_total")
                         .Help("Total number of reconciliations per controller").Register(r);
  reconcileErrors_ = &BuildCounter().Name("controller_runtime_reconcile_errors_total")
                          .Help("Total number of reconciliation errors per controller").Register(r);
  terminalErrors_ = &BuildCounter().Name("controller_runtime_terminal_reconcile_errors_total")
                         .Help("Total number of terminal reconciliation errors per controller")
                         .Register(r);
  reconcileTime_ = &BuildHistogram().Name("controller_runtime_reconcile_time_seconds")
                        .Help("Length of time per reconciliation per controller").Register(r);
  maxConcurrent_ = &BuildGauge().Name("controller_runtime_max_concurrent_reconciles")
                        .Help("Maximum number of concurrent reconciles per controller").Register(r);
  activeWorkers_ = &BuildGauge().Name("controller_runtime_active_workers")
                        .Help("Number of currently used workers per controller").Register(r);
  queueDepth_ = &BuildGauge().Name("workqueue_depth").Help("Current depth of workqueue").Register(r);
  queueAdds_ = &BuildCounter().Name("workqueue_adds_total")
                    .Help("Total number of adds handled by workqueue").Register(r);
  queueDuration_ = &BuildHistogram().Name("workqueue_queue_duration_seconds")
                        .Help("How long in seconds an item stays in workqueue before being requested")
                        .Register(r);
  workDuration_ = &BuildHistogram().Name("workqueue_work_duration_seconds")
                       .Help("How long in seconds processing an item from workqueue takes")
                       .Register(r);
  queueRetries_ = &BuildCounter().Name("workqueue_retries_total")
                       .Help("Total number of retries handled by workqueue").Register(r);
  leader_ = &BuildGauge().Name("leader_election_master_status")
                 .Help("Gauge of if the reporting system is master of the relevant lease, 0 "
                       "indicates backup, 1 indicates master. 'name' is the string used to "
                       "identify the lease.")
                 .Register(r);
  restRequests_ = &BuildCounter().Name("rest_client_requests_total")
                       .Help("Number of HTTP requests, partitioned by status code, method, and host")
                       .Register(r);
  restLatency_ = &BuildHistogram().Name("rest_client_request_duration_seconds")
                      .Help("Request latency in seconds. Broken down by verb.").Register(r);
}

void Metrics::addCollectable(std::shared_ptr<prometheus::Collectable> c) { extra_.push_back(std::move(c)); }

runtime::ControllerMetrics* Metrics::controller(const std::string& name) {
  std::lock_guard lock(mu_);
  auto& slot = controllers_[name];
  if (!slot)
    slot = std::make_unique<ControllerAdapter>(name, *reconcileTotal_, *reconcileErrors_,
                                               *terminalErrors_, *reconcileTime_,
                                               *maxConcurrent_, *activeWorkers_);
  return slot.get();
}

runtime::QueueMetrics* Metrics::queue(const std::string& name) {
  std::lock_guard lock(mu_);
  auto& slot = queues_[name];
  if (!slot)
    slot = std::make_unique<QueueAdapter>(name, *queueDepth_, *queueAdds_, *queueDuration_,
                                          *workDuration_, *queueRetries_);
  return slot.get();
}

void Metrics::leaderElection(const std::string& name, bool leading) {
  leader_->Add({{"name", name}}).Set(leading ? 1 : 0);
}

void Metrics::restRequest(const std::string& verb, int code, double seconds) {
  std::string method = verb == "LIST" || verb == "WATCH" ? "GET" : verb;
  restRequests_->Add({{"method", method}, {"code", code == 0 ? "<error>" : std::to_string(code)}})
      .Increment();
  if (verb != "WATCH")
    restLatency_->Add({{"verb", method}}, prometheus::Histogram::BucketBoundaries{
                                              0.005, 0.025, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60})
        .Observe(seconds);
}

}  // namespace patchgate::metrics
