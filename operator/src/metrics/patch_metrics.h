#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "controllers/patch/reconciler.h"

namespace patchgate::metrics {

// patchgate_* series of the Patch lifecycle. Label values are bounded: phases,
// results and rollback causes, never Patch names.
class PatchMetricsImpl final : public controllers::patch::PatchMetrics {
 public:
  explicit PatchMetricsImpl(prometheus::Registry& registry);
  void transition(const std::string& from, const std::string& to) override;
  void testFinished(const std::string& result, double seconds) override;
  void promoted(double leadTimeSeconds) override;
  void rolledBack(const std::string& reason, double restoreSeconds) override;
  void driftDetected() override;
  void environmentCreated() override;
  void environmentDeleted() override;

 private:
  prometheus::Family<prometheus::Counter>& transitions_;
  prometheus::Family<prometheus::Counter>& tests_;
  prometheus::Family<prometheus::Histogram>& testDuration_;
  prometheus::Counter& promoted_;
  prometheus::Histogram& leadTime_;
  prometheus::Family<prometheus::Counter>& rollbacks_;
  prometheus::Histogram& restoreTime_;
  prometheus::Counter& drift_;
  prometheus::Gauge& environments_;
  prometheus::Counter& environmentsCreated_;
};

}  // namespace patchgate::metrics
