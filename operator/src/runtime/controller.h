#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/logging.h"
#include "runtime/informer.h"
#include "runtime/manager.h"
#include "runtime/workqueue.h"

namespace patchgate::runtime {

// What to do with an object after a reconcile: nothing until it changes, or
// look again after a delay.
struct Action {
  std::optional<Clock::Duration> requeueAfter;
  // Look again after the queue's per-item backoff (as after an error, but
  // not counted as one): for a routine race such as a 409 or a cache that
  // lags, retried soon at first and less often the longer it lasts.
  bool backoff = false;
  static Action await() { return {}; }
  static Action requeue(Clock::Duration after) { return Action{after}; }
  static Action retryWithBackoff() { return Action{std::nullopt, true}; }
  bool operator==(const Action&) const = default;
};

// An error that retrying cannot fix (an invalid spec): the error policy does
// not requeue it. The object is looked at again when it changes.
absl::Status terminalError(std::string_view message);
bool isTerminal(const absl::Status& s);

struct ReconcileContext {
  std::string reconcileId;
  Logger log;             // carries controller, namespace, name, reconcileID
  int requeues = 0;       // failures of this key since its last success
};

// The controller's logic. reconcile() must be level-based and idempotent: it
// reads the world, moves it one step toward the spec, and may be called any
// number of times for the same state. `obj` is a cache snapshot: never mutate.
class Reconciler {
 public:
  virtual ~Reconciler() = default;
  virtual absl::StatusOr<Action> reconcile(const Object& obj, ReconcileContext& ctx) = 0;
  // Default: terminal errors wait for a change; others are retried with the
  // queue's rate limiter (returned as nullopt).
  virtual std::optional<Action> errorPolicy(const Object& obj, const absl::Status& error,
                                            ReconcileContext& ctx);
};

// Metrics seam of a controller (controller_runtime_* series). Default no-op.
class ControllerMetrics {
 public:
  virtual ~ControllerMetrics() = default;
  virtual void reconciled(const std::string& /*result: success|error|requeue|requeue_after*/,
                          double /*seconds*/) {}
  virtual void reconcileError(bool /*terminal*/) {}
  virtual void activeWorkers(int) {}
  virtual void maxConcurrentReconciles(int) {}
};

struct ControllerOptions {
  std::string name;
  int workers = 2;
  std::chrono::milliseconds cacheSyncTimeout{std::chrono::minutes(2)};
};

// Runs a Reconciler over the keys of a primary Informer with N workers. The
// work queue guarantees that one key is never reconciled by two workers at
// once, and that bursts of changes to one object collapse into one reconcile.
class Controller final : public Runnable {
 public:
  Controller(ControllerOptions options, Informer& primary, Reconciler& reconciler, Clock& clock,
             Logger log, QueueMetrics* queueMetrics = nullptr,
             ControllerMetrics* metrics = nullptr);

  // Maps changes of another kind (owned Jobs, targeted Deployments) to the
  // keys of primary objects to reconcile. Call before run().
  void watches(Informer& other, std::function<std::vector<std::string>(const Json&)> mapper);
  // Informers that must be synced before workers start (besides the primary).
  void waitsFor(Informer& other) { syncs_.push_back(&other); }

  std::string name() const override { return "controller/" + options_.name; }
  void run(std::stop_token stop) override;

  WorkQueue& queue() { return queue_; }
  bool started() const { return started_; }

 private:
  void worker(std::stop_token stop, int id);
  void processOne(const std::string& key);

  ControllerOptions options_;
  Informer& primary_;
  Reconciler& reconciler_;
  Clock& clock_;
  Logger log_;
  ControllerMetrics defaultMetrics_;
  ControllerMetrics* metrics_;
  WorkQueue queue_;
  std::vector<Informer*> syncs_;
  std::atomic<int> active_{0};
  std::atomic<uint64_t> nextId_{1};
  std::atomic<bool> started_{false};
};

}  // namespace patchgate::runtime
