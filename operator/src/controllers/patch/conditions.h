#pragma once

// Condition types, reasons and event reasons of the Patch controller. They are
// API: users alert and script on them, and the README lists them.
namespace patchgate::controllers::patch {

namespace condition {
inline constexpr char kReady[] = "Ready";              // kstatus: done and good
inline constexpr char kReconciling[] = "Reconciling";  // kstatus: work in progress
inline constexpr char kStalled[] = "Stalled";          // kstatus: stuck, needs a person
inline constexpr char kValidated[] = "Validated";
inline constexpr char kEnvironmentReady[] = "EnvironmentReady";
inline constexpr char kTestsPassed[] = "TestsPassed";
inline constexpr char kApproved[] = "Approved";
inline constexpr char kPromoted[] = "Promoted";
inline constexpr char kVerified[] = "Verified";
inline constexpr char kRolledBack[] = "RolledBack";
inline constexpr char kScheduled[] = "Scheduled";  // inside a change window, no freeze (PatchPolicy)
inline constexpr char kPolicyReady[] = "PolicyReady";  // present (False) only while a PatchPolicy cannot be read
}  // namespace condition

// Reasons: used for conditions and, where they mark a step, as event reasons.
namespace reason {
inline constexpr char kInvalidSpec[] = "InvalidSpec";
inline constexpr char kTargetNotFound[] = "TargetNotFound";
inline constexpr char kChangeRejected[] = "ChangeRejected";   // dry run refused by the API server
inline constexpr char kNoChange[] = "NoChange";               // the change changes nothing
inline constexpr char kRevisionNotFound[] = "RevisionNotFound";
inline constexpr char kUnsafeForEnvironment[] = "UnsafeForTestEnvironment";  // host access: not copied
inline constexpr char kValidated[] = "Validated";
inline constexpr char kQueued[] = "Queued";
inline constexpr char kDequeued[] = "Dequeued";
inline constexpr char kProvisioning[] = "Provisioning";
inline constexpr char kEnvironmentReady[] = "EnvironmentReady";
inline constexpr char kEnvironmentTimeout[] = "EnvironmentTimeout";
inline constexpr char kEnvironmentDeleted[] = "EnvironmentDeleted";
inline constexpr char kTestsRunning[] = "TestsRunning";
inline constexpr char kTestPassed[] = "TestPassed";
inline constexpr char kTestFailed[] = "TestFailed";
inline constexpr char kTestRetried[] = "TestRetried";
inline constexpr char kTestApiUnavailable[] = "TestApiUnavailable";
inline constexpr char kTestsPassed[] = "TestsPassed";
inline constexpr char kTestsSkipped[] = "TestsSkipped";
inline constexpr char kAwaitingApproval[] = "AwaitingApproval";
inline constexpr char kApproved[] = "Approved";
inline constexpr char kApprovalRefused[] = "ApprovalRefused";  // e.g. the author approving
inline constexpr char kRejected[] = "Rejected";
inline constexpr char kNotRequired[] = "NotRequired";
inline constexpr char kPolicyInvalid[] = "PolicyInvalid";     // a PatchPolicy that applies cannot be read
inline constexpr char kForbidden[] = "Forbidden";             // the author may not make this change themself
inline constexpr char kIdentityUnverified[] = "IdentityUnverified";  // the API server does not check author/approver
inline constexpr char kOutsideWindow[] = "OutsideChangeWindow";
inline constexpr char kFrozen[] = "Frozen";
inline constexpr char kEmergencyBypass[] = "EmergencyBypass";  // an emergency passes a window or freeze
inline constexpr char kInWindow[] = "InChangeWindow";
inline constexpr char kDriftDetected[] = "DriftDetected";
inline constexpr char kDriftLimit[] = "DriftLimitReached";
inline constexpr char kRevisionRecorded[] = "RevisionRecorded";
inline constexpr char kPromoting[] = "Promoting";
inline constexpr char kPromoted[] = "Promoted";
inline constexpr char kPromotionConflict[] = "PromotionConflict";
inline constexpr char kVerifying[] = "Verifying";
inline constexpr char kVerified[] = "Verified";
inline constexpr char kVerificationFailed[] = "VerificationFailed";
inline constexpr char kBaking[] = "Baking";            // rollout complete; watching it stay healthy
inline constexpr char kUnhealthy[] = "Unhealthy";      // containers restarted or crash-loop during the bake
inline constexpr char kReverted[] = "Reverted";        // someone else changed production during verification
inline constexpr char kRollingBack[] = "RollingBack";  // restore written; waiting for it to be healthy
inline constexpr char kRolledBack[] = "RolledBack";
inline constexpr char kRollbackFailed[] = "RollbackFailed";  // the restore did not become healthy
inline constexpr char kSucceeded[] = "Succeeded";
inline constexpr char kFailed[] = "Failed";
inline constexpr char kCancelled[] = "Cancelled";
inline constexpr char kTargetVanished[] = "TargetVanished";
}  // namespace reason

}  // namespace patchgate::controllers::patch
