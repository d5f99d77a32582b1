#include "runtime/leader_election.h"

#include <condition_variable>

#include "kube/errors.h"
#include "kube/resource.h"

namespace patchgate::runtime {

LeaderElector::LeaderElector(kube::Client& client, LeaderElectionConfig config,
                             LeaderCallbacks callbacks, Clock& clock, Logger log)
    : client_(client), config_(std::move(config)), callbacks_(std::move(callbacks)),
      clock_(clock),
      log_(log.withValues({{"lease", config_.leaseNamespace + "/" + config_.leaseName},
                           {"identity", config_.identity}})) {}

std::string LeaderElector::currentLeader() const {
  std::lock_guard lock(mu_);
  return leader_;
}

bool LeaderElector::tryAcquireOrRenew() {
  if (released_) return false;
  const auto& rt = kube::resources::kLease;
  auto now = clock_.now();         // for the record (people read it)
  auto seen = clock_.steadyNow();  // for judging expiry
  int64_t durationSecs =
      std::chrono::duration_cast<std::chrono::seconds>(config_.leaseDuration).count();
  auto current = client_.get(rt, config_.leaseNamespace, config_.leaseName);
  if (!current.ok()) {
    if (!kube::isNotFound(current.status())) {
      log_.warn("cannot read lease", {{"error", std::string(current.status().message())}});
      return false;
    }
    Json lease = {{"apiVersion", "coordination.k8s.io/v1"},
                  {"kind", "Lease"},
                  {"metadata", {{"name", config_.leaseName}, {"namespace", config_.leaseNamespace}}},
                  {"spec",
                   {{"holderIdentity", config_.identity},
                    {"leaseDurationSeconds", durationSecs},
                    {"acquireTime", formatMicroTime(now)},
                    {"renewTime", formatMicroTime(now)},
                    {"leaseTransitions", 0}}}};
    auto created = client_.create(rt, config_.leaseNamespace, lease);
    if (!created.ok()) return false;
    std::lock_guard lock(mu_);
    observed_ = (*created)["spec"];
    observedTime_ = seen;
    leader_ = config_.identity;
    return true;
  }
  Json spec = current->value("spec", Json::object());
  std::string holder = spec.value("holderIdentity", "");
  {
    std::lock_guard lock(mu_);
    if (spec != observed_) {
      observed_ = spec;
      observedTime_ = seen;
    }
    if (holder != leader_) {
      leader_ = holder;
      if (callbacks_.onNewLeader && !holder.empty()) callbacks_.onNewLeader(holder);
    }
    int64_t heldFor = spec.value("leaseDurationSeconds", durationSecs);
    bool expired = observedTime_ + std::chrono::seconds(heldFor) <= seen;
    if (!holder.empty() && holder != config_.identity && !expired) return false;
  }
  if (released_) return false;  // released while this attempt was reading
  Json updated = *current;
  Json& s = updated["spec"];
  if (holder != config_.identity) {
    s["acquireTime"] = formatMicroTime(now);
    s["leaseTransitions"] = spec.value("leaseTransitions", 0) + 1;
  }
  s["holderIdentity"] = config_.identity;
  s["leaseDurationSeconds"] = durationSecs;
  s["renewTime"] = formatMicroTime(now);
  auto written = client_.update(rt, config_.leaseNamespace, updated);
  if (!written.ok()) {
    if (!kube::isConflict(written.status()))
      log_.warn("cannot update lease", {{"error", std::string(written.status().message())}});
    return false;
  }
  std::lock_guard lock(mu_);
  observed_ = (*written)["spec"];
  observedTime_ = seen;
  leader_ = config_.identity;
  return true;
}

bool LeaderElector::leadingWithMargin(std::chrono::milliseconds margin) const {
  if (!leading_) return false;
  {
    // Someone else is in the record (a forced takeover, seen at a renewal):
    // closed at once, not only once the renew deadline nears.
    std::lock_guard lock(mu_);
    if (!leader_.empty() && leader_ != config_.identity) return false;
  }
  Clock::SteadyPoint last{Clock::SteadyPoint::duration(lastRenew_.load())};
  return clock_.steadyNow() - last < config_.renewDeadline - margin;
}

bool LeaderElector::sleep(std::stop_token stop, std::chrono::milliseconds d) {
  return sleepFor(clock_, stop, d);
}

void LeaderElector::releaseNow() {
  released_ = true;
  leading_ = false;
  // A renewal in flight on the elector's thread now fails its write with a
  // conflict (this update changes the resourceVersion) or finds the lease
  // released; either way it does not take it back (released_).
  release();
}

void LeaderElector::release() {
  const auto& rt = kube::resources::kLease;
  // A conflict is a renewal of ours that landed in between: read again.
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto current = client_.get(rt, config_.leaseNamespace, config_.leaseName);
    if (!current.ok() || jsonString(*current, "/spec/holderIdentity") != config_.identity) return;
    Json updated = *current;
    // As client-go: an empty holder and a 1 s lease let the next candidate in at once.
    updated["spec"]["holderIdentity"] = "";
    updated["spec"]["leaseDurationSeconds"] = 1;
    updated["spec"]["renewTime"] = formatMicroTime(clock_.now());
    auto r = client_.update(rt, config_.leaseNamespace, updated);
    if (r.ok()) {
      log_.info("released leader lease");
      return;
    }
    if (!kube::isConflict(r.status())) return;
  }
}

bool LeaderElector::campaign(std::stop_token stop) {
  log_.info("attempting to acquire leader lease");
  while (!stop.stop_requested()) {
    auto attempt = clock_.steadyNow();  // the lease counts from before the request was sent
    if (tryAcquireOrRenew()) {
      lastRenew_ = attempt.time_since_epoch().count();
      return true;
    }
    // client-go's JitterFactor 1.2 on the retry period.
    if (!sleep(stop, config_.candidateRetryPeriod + config_.candidateRetryPeriod / 5)) return false;
  }
  return false;
}

bool LeaderElector::lead(std::stop_token stop) {
  while (sleep(stop, config_.retryPeriod)) {
    auto attempt = clock_.steadyNow();  // the renewal counts from before it was sent
    if (tryAcquireOrRenew()) {
      lastRenew_ = attempt.time_since_epoch().count();
      continue;
    }
    Clock::SteadyPoint last{Clock::SteadyPoint::duration(lastRenew_.load())};
    if (clock_.steadyNow() - last >= config_.renewDeadline) return false;
  }
  return true;
}

void LeaderElector::run(std::stop_token stop) {
  while (campaign(stop)) {
    leading_ = true;
    log_.info("acquired leader lease");
    if (callbacks_.onStartedLeading) callbacks_.onStartedLeading();
    if (lead(stop)) {  // stopped
      leading_ = false;
      if (config_.releaseOnCancel) release();
      return;
    }
    leading_ = false;
    log_.error("lost leader lease: could not renew within the renew deadline");
    if (callbacks_.onStoppedLeading) callbacks_.onStoppedLeading();
  }
}

}  // namespace patchgate::runtime
