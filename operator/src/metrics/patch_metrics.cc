#include "metrics/patch_metrics.h"

#include <map>

#include "api/v1alpha1/patch.h"
#include "controllers/patch/reconciler.h"

namespace patchgate::metrics {

namespace ph = api::v1alpha1::phase;

namespace {
const prometheus::Histogram::BucketBoundaries kLongBuckets = {1,   5,   10,   30,   60,   120,
                                                              300, 600, 1200, 1800, 3600, 7200};
constexpr const char* kPhases[] = {ph::kPending,      ph::kValidated, ph::kQueued,   ph::kProvisioning,
                                   ph::kTesting,      ph::kAwaitingApproval, ph::kAwaitingWindow, ph::kPromoting,
                                   ph::kVerifying,    ph::kRollingBack, ph::kSucceeded, ph::kFailed,   ph::kRolledBack};

std::string outcomeOf(const std::string& phase) {
  if (phase == ph::kSucceeded) return "succeeded";
  if (phase == ph::kFailed) return "failed";
  return "rolled_back";
}
}  // namespace

PatchMetricsImpl::PatchMetricsImpl(prometheus::Registry& r)
    : transitions_(prometheus::BuildCounter().Name("patchgate_patch_transitions_total")
                       .Help("Patch phase transitions, by the phase entered").Register(r)),
      phaseDuration_(prometheus::BuildHistogram().Name("patchgate_phase_duration_seconds")
                         .Help("Time Patches spent in a phase before leaving it (AwaitingApproval: the approval wait)")
                         .Register(r)),
      changes_(prometheus::BuildCounter().Name("patchgate_changes_total")
                   .Help("Patches finished, by outcome: succeeded, failed (before production), rolled_back "
                         "(after). Change-failure rate = rolled_back / (succeeded + rolled_back)")
                   .Register(r)),
      tests_(prometheus::BuildCounter().Name("patchgate_tests_total")
                 .Help("Test runs (Job attempts) finished, by test name and result").Register(r)),
      testDuration_(prometheus::BuildHistogram().Name("patchgate_test_duration_seconds")
                        .Help("Duration of test runs, by test name and result").Register(r)),
      promoted_(prometheus::BuildCounter().Name("patchgate_promotions_total")
                    .Help("Patches promoted and verified in production").Register(r).Add({})),
      leadTime_(prometheus::BuildHistogram().Name("patchgate_lead_time_seconds")
                    .Help("Time from a Patch's creation to verified in production").Register(r)
                    .Add({}, kLongBuckets)),
      rollbacks_(prometheus::BuildCounter().Name("patchgate_rollbacks_total")
                     .Help("Rollbacks of promoted Patches, by cause").Register(r)),
      restoreTime_(prometheus::BuildHistogram().Name("patchgate_time_to_restore_seconds")
                       .Help("Time from promotion to the rollback that restored production").Register(r)
                       .Add({}, kLongBuckets)),
      drift_(prometheus::BuildCounter().Name("patchgate_drift_detected_total")
                 .Help("Times production changed under a tested Patch, forcing a re-test").Register(r).Add({})),
      reverts_(prometheus::BuildCounter().Name("patchgate_reverts_total")
                   .Help("Promoted Patches whose change someone else undid or replaced during verification")
                   .Register(r).Add({})),
      rollbackFailures_(prometheus::BuildCounter().Name("patchgate_rollback_failures_total")
                            .Help("Rollbacks written whose restored workload did not become healthy: production "
                                  "needs a person").Register(r).Add({})),
      environmentsCreated_(prometheus::BuildCounter().Name("patchgate_environments_created_total")
                               .Help("Test environments created").Register(r).Add({})),
      environmentsDeleted_(prometheus::BuildCounter().Name("patchgate_environments_deleted_total")
                               .Help("Test environments deleted").Register(r).Add({})) {
  for (const char* p : kPhases) {
    transitions_.Add({{"phase", p}});
    phaseDuration_.Add({{"phase", p}}, kLongBuckets);
  }
  for (const char* o : {"succeeded", "failed", "rolled_back"}) changes_.Add({{"outcome", o}});
  for (const char* c : {"ProgressDeadlineExceeded", "VerificationTimeout", "Unhealthy", "Cancelled", "PatchDeleted"})
    rollbacks_.Add({{"reason", c}});
}

void PatchMetricsImpl::transition(const std::string& from, const std::string& to, double inFrom) {
  transitions_.Add({{"phase", to}}).Increment();
  if (!from.empty()) phaseDuration_.Add({{"phase", from}}, kLongBuckets).Observe(inFrom);
  if (ph::isTerminal(to) && !ph::isTerminal(from)) changes_.Add({{"outcome", outcomeOf(to)}}).Increment();
}
void PatchMetricsImpl::testFinished(const std::string& test, const std::string& result, double seconds) {
  tests_.Add({{"test", test}, {"result", result}}).Increment();
  testDuration_.Add({{"test", test}, {"result", result}}, kLongBuckets).Observe(seconds);
}
void PatchMetricsImpl::promoted(double lead) {
  promoted_.Increment();
  leadTime_.Observe(lead);
}
void PatchMetricsImpl::rolledBack(const std::string& reason, double restore) {
  rollbacks_.Add({{"reason", reason}}).Increment();
  restoreTime_.Observe(restore);
}
void PatchMetricsImpl::driftDetected() { drift_.Increment(); }
void PatchMetricsImpl::reverted() { reverts_.Increment(); }
void PatchMetricsImpl::rollbackFailed() { rollbackFailures_.Increment(); }
void PatchMetricsImpl::environmentCreated() { environmentsCreated_.Increment(); }
void PatchMetricsImpl::environmentDeleted() { environmentsDeleted_.Increment(); }

std::vector<prometheus::MetricFamily> PatchStoreCollector::Collect() const {
  std::map<std::string, double> byPhase;
  for (const char* p : kPhases) byPhase[p] = 0;
  std::map<std::string, double> queued;
  double environments = 0;
  for (const auto& obj : patches_.list()) {
    std::string phase = jsonString(*obj, "/status/phase");
    if (phase.empty()) phase = ph::kPending;
    byPhase[phase] += 1;
    if (phase == ph::kQueued)
      for (const auto& t : controllers::patch::targetIndex(*obj)) queued[t] += 1;
    if (!jsonString(*obj, "/status/environment/namespace").empty() &&
        jsonString(*obj, "/status/environment/deletedAt").empty())
      environments += 1;
  }
  auto gauge = [](const std::string& name, const std::string& help) {
    prometheus::MetricFamily f;
    f.name = name;
    f.help = help;
    f.type = prometheus::MetricType::Gauge;
    return f;
  };
  auto sample = [](const std::string& label, const std::string& value, double v) {
    prometheus::ClientMetric m;
    if (!label.empty()) m.label.push_back({label, value});
    m.gauge.value = v;
    return m;
  };
  std::vector<prometheus::MetricFamily> out;
  out.push_back(gauge("patchgate_patches", "Patches by current phase (from the operator's cache)"));
  for (const auto& [p, n] : byPhase) out.back().metric.push_back(sample("phase", p, n));
  out.push_back(gauge("patchgate_queue_depth", "Patches waiting in the queue of a target (namespace/Kind/name)"));
  for (const auto& [t, n] : queued) out.back().metric.push_back(sample("target", t, n));
  out.push_back(gauge("patchgate_environments", "Test environments not yet deleted"));
  out.back().metric.push_back(sample("", "", environments));
  return out;
}

}  // namespace patchgate::metrics
