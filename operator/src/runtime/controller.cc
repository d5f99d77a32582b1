#include "runtime/controller.h"

#include <cstdio>
#include <thread>

#include "absl/strings/cord.h"
#include "kube/resource.h"

namespace patchgate::runtime {
namespace {
constexpr char kTerminalUrl[] = "patchgate.dev/terminal";
}

absl::Status terminalError(std::string_view message) {
  absl::Status s(absl::StatusCode::kFailedPrecondition, std::string(message));
  s.SetPayload(kTerminalUrl, absl::Cord("true"));
  return s;
}

bool isTerminal(const absl::Status& s) { return s.GetPayload(kTerminalUrl).has_value(); }

std::optional<Action> Reconciler::errorPolicy(const Object&, const absl::Status& error,
                                              ReconcileContext&) {
  if (isTerminal(error)) return Action::await();
  return std::nullopt;
}

Controller::Controller(ControllerOptions options, Informer& primary, Reconciler& reconciler,
                       Clock& clock, Logger log, QueueMetrics* queueMetrics,
                       ControllerMetrics* metrics)
    : options_(std::move(options)), primary_(primary), reconciler_(reconciler), clock_(clock),
      log_(log.withValues({{"controller", options_.name}})),
      metrics_(metrics ? metrics : &defaultMetrics_),
      queue_(options_.name, clock, defaultControllerRateLimiter(clock), queueMetrics) {
  primary_.addEventHandler(EventHandler{
      [this](const Object& o) { queue_.add(kube::objectKey(*o)); },
      [this](const Object&, const Object& o) { queue_.add(kube::objectKey(*o)); },
      [this](const Object& o) { queue_.add(kube::objectKey(*o)); },
  });
}

void Controller::watches(Informer& other,
                         std::function<std::vector<std::string>(const Json&)> mapper) {
  auto enqueue = [this, mapper](const Object& o) {
    for (const auto& key : mapper(*o)) queue_.add(key);
  };
  other.addEventHandler(EventHandler{
      enqueue, [enqueue](const Object&, const Object& o) { enqueue(o); }, enqueue});
  syncs_.push_back(&other);
}

void Controller::run(std::stop_token stop) {
  metrics_->maxConcurrentReconciles(options_.workers);
  metrics_->activeWorkers(0);
  std::vector<Informer*> all = syncs_;
  all.push_back(&primary_);
  for (Informer* inf : all) {
    if (!inf->waitForSync(stop, options_.cacheSyncTimeout)) {
      if (stop.stop_requested()) return;
      log_.error("timed out waiting for cache to sync", {{"informer", inf->name()}});
      // Keep waiting: the watcher retries with backoff; readiness stays false.
      while (!stop.stop_requested() && !inf->waitForSync(stop, options_.cacheSyncTimeout)) {
      }
      if (stop.stop_requested()) return;
    }
  }
  if (queue_.shuttingDown()) {
    // Run again after a stop (the lead was lost and won back): what changed
    // meanwhile was not queued, so look at everything once.
    queue_.restart();
    for (const auto& key : primary_.store().keys()) queue_.add(key);
  }
  started_ = true;
  log_.info("starting workers", {{"workers", options_.workers}});
  std::stop_callback onStop(stop, [this] { queue_.shutDown(); });
  std::vector<std::jthread> workers;
  for (int i = 0; i < options_.workers; ++i) {
    workers.emplace_back([this, stop, i] { worker(stop, i); });
  }
  for (auto& w : workers) w.join();
}

void Controller::worker(std::stop_token stop, int) {
  while (!stop.stop_requested()) {
    auto key = queue_.get();
    if (!key) return;
    metrics_->activeWorkers(++active_);
    processOne(*key);
    metrics_->activeWorkers(--active_);
    queue_.done(*key);
  }
}

void Controller::processOne(const std::string& key) {
  Object obj = primary_.store().get(key);
  if (!obj) {
    queue_.forget(key);  // deleted; finalizers handle any cleanup while it exists
    return;
  }
  char id[20];
  std::snprintf(id, sizeof(id), "%016llx", static_cast<unsigned long long>(nextId_++));
  auto [ns, name] = kube::splitKey(key);
  ReconcileContext ctx{id,
                       log_.withValues({{"namespace", ns}, {"name", name}, {"reconcileID", id}}),
                       queue_.numRequeues(key)};
  auto start = std::chrono::steady_clock::now();
  absl::StatusOr<Action> result = reconciler_.reconcile(obj, ctx);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (result.ok() && result->backoff) {
    queue_.addRateLimited(key);  // keeps its backoff growing: no forget()
    metrics_->reconciled("requeue", secs);
    return;
  }
  if (result.ok()) {
    queue_.forget(key);
    if (result->requeueAfter) {
      queue_.addAfter(key, *result->requeueAfter);
      metrics_->reconciled("requeue_after", secs);
    } else {
      metrics_->reconciled("success", secs);
    }
    return;
  }
  metrics_->reconciled("error", secs);
  metrics_->reconcileError(isTerminal(result.status()));
  ctx.log.warn("reconcile failed", {{"error", std::string(result.status().message())},
                                    {"terminal", isTerminal(result.status())}});
  std::optional<Action> action = reconciler_.errorPolicy(obj, result.status(), ctx);
  if (!action) {
    queue_.addRateLimited(key);
  } else {
    queue_.forget(key);
    if (action->requeueAfter) queue_.addAfter(key, *action->requeueAfter);
  }
}

}  // namespace patchgate::runtime
