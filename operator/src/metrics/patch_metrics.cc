#include "metrics/patch_metrics.h"

#include "api/v1alpha1/patch.h"

namespace patchgate::metrics {

namespace {
const prometheus::Histogram::BucketBoundaries kLongBuckets = {5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200};
}

PatchMetricsImpl::PatchMetricsImpl(prometheus::Registry& r)
    : transitions_(prometheus::BuildCounter().Name("patchgate_patch_transitions_total")
                       .Help("Patch phase transitions, by target phase").Register(r)),
      tests_(prometheus::BuildCounter().Name("patchgate_tests_total")
                 .Help("Test runs (Job attempts) finished, by result").Register(r)),
      testDuration_(prometheus::BuildHistogram().Name("patchgate_test_duration_seconds")
                        .Help("Duration of test runs, by result").Register(r)),
      promoted_(prometheus::BuildCounter().Name("patchgate_promotions_total")
                    .Help("Patches promoted and verified in production").Register(r).Add({})),
      leadTime_(prometheus::BuildHistogram().Name("patchgate_lead_time_seconds")
                    .Help("Time from a Patch's creation to verified in production").Register(r)
                    .Add({}, kLongBuckets)),
      rollbacks_(prometheus::BuildCounter().Name("patchgate_rollbacks_total")
                     .Help("Automatic rollbacks, by cause").Register(r)),
      restoreTime_(prometheus::BuildHistogram().Name("patchgate_time_to_restore_seconds")
                       .Help("Time from promotion to the rollback that restored production").Register(r)
                       .Add({}, kLongBuckets)),
      drift_(prometheus::BuildCounter().Name("patchgate_drift_detected_total")
                 .Help("Times production changed under a tested Patch, forcing a re-test").Register(r).Add({})),
      environments_(prometheus::BuildGauge().Name("patchgate_environments")
                        .Help("Test environments created and not yet deleted by this process").Register(r).Add({})),
      environmentsCreated_(prometheus::BuildCounter().Name("patchgate_environments_created_total")
                               .Help("Test environments created").Register(r).Add({})) {
  namespace ph = api::v1alpha1::phase;
  for (const char* p : {ph::kPending, ph::kValidated, ph::kQueued, ph::kProvisioning, ph::kTesting,
                        ph::kAwaitingApproval, ph::kPromoting, ph::kVerifying, ph::kSucceeded, ph::kFailed,
                        ph::kRolledBack})
    transitions_.Add({{"phase", p}});
  for (const char* res : {"Passed", "Failed"}) {
    tests_.Add({{"result", res}});
    testDuration_.Add({{"result", res}}, kLongBuckets);
  }
  for (const char* c : {"ProgressDeadlineExceeded", "VerificationTimeout", "Cancelled", "PatchDeleted"})
    rollbacks_.Add({{"reason", c}});
}

void PatchMetricsImpl::transition(const std::string&, const std::string& to) {
  transitions_.Add({{"phase", to}}).Increment();
}
void PatchMetricsImpl::testFinished(const std::string& result, double seconds) {
  tests_.Add({{"result", result}}).Increment();
  testDuration_.Add({{"result", result}}, kLongBuckets).Observe(seconds);
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
void PatchMetricsImpl::environmentCreated() {
  environments_.Increment();
  environmentsCreated_.Increment();
}
void PatchMetricsImpl::environmentDeleted() { environments_.Decrement(); }

}  // namespace patchgate::metrics
