#pragma once

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "controllers/patch/reconciler.h"
#include "runtime/store.h"

namespace patchgate::metrics {

// patchgate_* series of the Patch lifecycle. Label values are bounded:
// phases, results, outcomes, rollback causes and test names (declared in
// specs, so few), never Patch names.
class PatchMetricsImpl final : public controllers::patch::PatchMetrics {
 public:
  explicit PatchMetricsImpl(prometheus::Registry& registry);
  void transition(const std::string& from, const std::string& to, double secondsInFrom) override;
  void testFinished(const std::string& test, const std::string& result, double seconds) override;
  void promoted(double leadTimeSeconds) override;
  void rolledBack(const std::string& reason, double restoreSeconds) override;
  void driftDetected() override;
  void reverted() override;
  void rollbackFailed() override;
  void environmentCreated() override;
  void environmentDeleted() override;

 private:
  prometheus::Family<prometheus::Counter>& transitions_;
  prometheus::Family<prometheus::Histogram>& phaseDuration_;
  prometheus::Family<prometheus::Counter>& changes_;
  prometheus::Family<prometheus::Counter>& tests_;
  prometheus::Family<prometheus::Histogram>& testDuration_;
  prometheus::Counter& promoted_;
  prometheus::Histogram& leadTime_;
  prometheus::Family<prometheus::Counter>& rollbacks_;
  prometheus::Histogram& restoreTime_;
  prometheus::Counter& drift_;
  prometheus::Counter& reverts_;
  prometheus::Counter& rollbackFailures_;
  prometheus::Counter& environmentsCreated_;
  prometheus::Counter& environmentsDeleted_;
};

// Gauges read from the Patch cache at scrape time, so every replica reports
// the same truth and nothing drifts: patchgate_patches{phase} (every phase,
// zero included), patchgate_queue_depth{target} (Patches waiting per target,
// "namespace/Kind/name"; only targets with a queue appear) and
// patchgate_environments (environment namespaces not yet deleted).
class PatchStoreCollector final : public prometheus::Collectable {
 public:
  explicit PatchStoreCollector(const runtime::Store& patches) : patches_(patches) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const runtime::Store& patches_;
};

}  // namespace patchgate::metrics
