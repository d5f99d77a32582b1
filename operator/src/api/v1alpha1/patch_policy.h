#pragma once

// PatchPolicy: what a namespace (or the whole cluster) demands of every Patch
// in it: approvals and who may give them, when changes may land (change
// windows, freezes), how big a test environment may grow, and whether
// production Secrets may be copied into one.
//
// Several policies can apply to one Patch (the cluster-wide default and each
// PatchPolicy in the Patch's namespace). They are merged strictest-first
// (mergePolicies), and a Patch can ask for more than the result, never less
// (applyPolicy).

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "api/v1alpha1/patch.h"
#include "common/json.h"

namespace patchgate::api::v1alpha1 {

// A recurring window in one time zone, e.g. Mon-Thu 09:00-17:00 Europe/Berlin.
// end <= start means the window runs past midnight (22:00-02:00): it opens on
// each listed day and closes on the next.
//
// Windows are judged in local civil time: a time is inside when the wall
// clock in `timeZone` reads a minute in [start, end) of a listed day (or in
// [00:00, end) of the day after one, for a window past midnight). So across
// a DST change a window keeps its wall-clock hours (09:00-17:00 Berlin is
// 08:00Z-16:00Z in winter, 07:00Z-15:00Z in summer); a skipped hour simply
// never occurs (01:30-03:00 New York on a spring-forward day lasts 30
// minutes; a window starting at 02:30 that day opens at the jump, 03:00);
// during a repeated hour each instance is judged by its wall clock, so both
// are inside a window covering that hour, and a 01:30-03:00 window on a
// fall-back day is open 01:30-01:59, closed again for the second
// 01:00-01:29, then open from the second 01:30.
struct ChangeWindow {
  std::vector<absl::Weekday> days;  // empty: every day
  int startMinute = 0;              // minutes after local midnight, 0..1439
  int endMinute = 0;                // 0..1439; end == start means a whole day (24 hours from start)
  std::string timeZone = "UTC";     // IANA name, e.g. "America/New_York"; unknown: never inside
  // Windows with the same group come from the same PatchPolicy: a time must
  // be inside one window of every group (one window of each policy). 0 for
  // every window of a parsed policy; mergePolicies renumbers them.
  int group = 0;
};

// No promotion from start (inclusive) to end (exclusive), for `reason`.
struct Freeze {
  absl::Time start;
  absl::Time end;
  std::string reason;
};

// Who may approve, as one PatchPolicy says it: a person named in `users` OR
// a member of one of `groups`; both empty: anyone (the author is refused
// elsewhere). ServiceAccounts ("system:serviceaccount:...") only when
// allowServiceAccounts, and then they too must match users/groups.
struct ApproverRule {
  std::string source;  // "<namespace>/<name>" of the PatchPolicy, for messages
  std::vector<std::string> users;
  std::vector<std::string> groups;
  bool allowServiceAccounts = false;
};

struct PolicyApproval {
  bool required = false;  // every Patch needs approval
  int64_t approvers = 1;  // distinct people
  // Who may approve, as this PatchPolicy writes it: empty lists mean anyone
  // but the author; otherwise a person named in allowedUsers or in a group of
  // allowedGroups. Set by parsePolicy. A merged spec leaves both lists empty
  // and says who may approve in `rules` instead: ask mayApprove, not these.
  std::vector<std::string> allowedUsers;
  std::vector<std::string> allowedGroups;
  bool allowServiceAccounts = false;  // merged: only if every policy allows them
  // One rule per source policy, all of which an approver must pass (rules
  // combine with AND, the users and groups within one rule with OR), so an
  // intersection that leaves nobody means nobody, never anyone. Empty in a
  // parsed spec (its rule is the three fields above); mergePolicies fills it.
  std::vector<ApproverRule> rules;
  // Changes that need approval even when `required` is false.
  bool forSecretChanges = false;
  bool forEmergencies = false;
};

// What an emergency Patch may do outside windows or in a freeze, and what it
// needs to (approvals from people allowed to approve).
struct PolicyEmergency {
  bool bypassWindows = false;
  bool bypassFreezes = false;
  int64_t approvers = 0;  // approvals an emergency needs when it bypasses
};

// Limits on a test environment; empty/0 means "no limit from this policy".
struct PolicyEnvironment {
  std::string cpu;      // a Kubernetes quantity, e.g. "2" or "500m"
  std::string memory;   // e.g. "4Gi"
  std::string storage;  // ephemeral storage, e.g. "10Gi"
  int64_t pods = 0;
  int64_t maxLifetimeSeconds = 0;  // how long an environment may live at most
};

struct PolicySpec {
  std::string source;  // "<namespace>/<name>" of the PatchPolicy, for messages
  PolicyApproval approval;
  std::vector<ChangeWindow> changeWindows;  // empty: any time
  std::vector<Freeze> freezes;
  PolicyEmergency emergency;
  PolicyEnvironment environment;
  bool allowSecretCopy = true;
};

// Parses a PatchPolicy object (its spec) with the rules of its CRD; errors
// name the field. `source` is set from its metadata.
absl::StatusOr<PolicySpec> parsePolicy(const Json& policy);

// The strictest combination: approvals required if any requires them (also
// for Secret changes and emergencies), the largest approver count, allowed
// approvers every policy's rule at once (approval.rules: a person must pass
// each policy's users-or-groups rule; see mayApprove), windows from every
// policy that has any (ChangeWindow::group: a time must be inside one window
// of each such policy), all freezes, an emergency bypass only if every policy
// allows it (with the largest approver count), the smallest environment
// limits (a quantity that does not parse loses to one that does), Secret
// copying only if every policy allows it. `source` joins the sources with
// ", ". Merging merged specs again gives the same result as merging once.
PolicySpec mergePolicies(const std::vector<PolicySpec>& policies);

// The rules a person must pass to approve under `policy`: approval.rules, or,
// for a parsed (unmerged) spec, the one rule its allowed* fields make.
std::vector<ApproverRule> approverRules(const PolicySpec& policy);

// Whether `user` (with the `groups` the API server gave them) may approve a
// Patch under `policy`: they must pass every rule (approverRules). When not,
// `why` (if given) names the policy that refuses them. Does not check that
// the user is not the Patch's author: the caller does.
bool mayApprove(const PolicySpec& policy, const std::string& user, const std::vector<std::string>& groups,
                std::string* why = nullptr);

// Compares Kubernetes quantities ("500m" < "1" < "1Ki" < "1M"); nullopt when
// either does not parse.
std::optional<int> compareQuantity(const std::string& a, const std::string& b);

// The Patch's own settings raised to the policy's: approval required and the
// approver count at least the policy's; secrets "omit" when the policy
// forbids copying; keepOnFailureSeconds and ttlSecondsAfterFinished at most
// maxLifetimeSeconds; approval required when the Patch changes a Secret (or
// is an emergency) and the policy asks for that. Returns the notes explaining each raise, for status
// ("approval required by policy shop/default: it changes a Secret").
std::vector<std::string> applyPolicy(const PolicySpec& policy, PatchSpec& spec);

// When a Patch may be promoted.
struct ScheduleVerdict {
  bool open = true;
  // Why it is closed: "outside change windows (Mon-Thu 09:00-17:00
  // Europe/Berlin)" or "freeze until 2027-01-04T00:00:00Z: year-end freeze".
  // When open by an emergency bypass, says so ("emergency: passes the freeze
  // ...").
  std::string why;
  bool bypassed = false;           // open only because of an emergency bypass
  std::optional<absl::Time> next;  // when it opens next (closed only), if known within 366 days
};

// Evaluates windows and freezes at `now` (the injected clock's time). An
// emergency passes what the policy's emergency section lets it pass. Closed:
// `next` is the earliest time (to the minute boundary where a window opens, or
// a freeze's end) at which it would be open, searched at most 366 days ahead;
// `why` names the freeze (the one ending last, when several hold) or the
// change windows (only the groups `now` is outside of), then "; opens at
// <RFC 3339 UTC>" when `next` is known.
ScheduleVerdict evaluateSchedule(const PolicySpec& policy, bool emergency, absl::Time now);

// "Mon-Thu 09:00-17:00 Europe/Berlin" for messages and patchctl. Runs of three
// or more days collapse ("Mon-Thu"), others are comma separated
// ("Mon,Wed,Fri", "Sat,Sun"), every day is "daily"; past midnight is
// "22:00-02:00(+1)"; 00:00-00:00 is "all day".
std::string describeWindow(const ChangeWindow& w);

}  // namespace patchgate::api::v1alpha1
