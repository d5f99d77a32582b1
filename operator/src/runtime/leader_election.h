#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <stop_token>
#include <string>

#include "common/clock.h"
#include "common/logging.h"
#include "kube/client.h"

namespace patchgate::runtime {

// The leader renews every 2 s and gives up after 8 s without a renewal; a
// candidate looks every second and takes a lease not renewed for 12 s. So a
// standby leads within ~14.5 s of the leader's death (lease + one look + the
// leader's renew period), and within ~1 s of a clean release (SIGTERM).
// (client-go uses 15/10/2 s and looks at the renew period.)
struct LeaderElectionConfig {
  std::string leaseNamespace;
  std::string leaseName;
  std::string identity;  // unique per process: pod name + random suffix
  std::chrono::milliseconds leaseDuration{12000};
  std::chrono::milliseconds renewDeadline{8000};
  std::chrono::milliseconds retryPeriod{2000};           // the leader's renewals
  std::chrono::milliseconds candidateRetryPeriod{1000};  // a candidate's looks at the lease
  bool releaseOnCancel = true;
};

struct LeaderCallbacks {
  std::function<void()> onStartedLeading;
  // Called when leadership is lost (not on a clean release). The operator
  // exits here: a deposed leader must not keep writing.
  std::function<void()> onStoppedLeading;
  std::function<void(const std::string& identity)> onNewLeader;
};

// Leader election on a coordination.k8s.io/v1 Lease, as client-go's
// leaderelection: a lease is taken only once the holder has not renewed it
// for leaseDuration, judged by the local clock from when this process last
// saw the record change (no trust in remote clocks). Writes use the
// resourceVersion, so two candidates can't both win.
// RBAC: get, create, update on leases in leaseNamespace.
class LeaderElector {
 public:
  LeaderElector(kube::Client& client, LeaderElectionConfig config, LeaderCallbacks callbacks,
                Clock& clock, Logger log);

  // Campaigns, then renews until `stop` (then releases) or until renewal
  // fails for renewDeadline (then onStoppedLeading).
  void run(std::stop_token stop);
  bool isLeader() const { return leading_; }
  // Fencing for writes that must not come from a deposed leader: true only
  // while leading and the last successful renewal is younger than
  // renewDeadline - margin. Other candidates can take the lease only
  // leaseDuration after they last saw it renewed, so a write sent while this
  // holds lands before anyone else leads (leaseDuration > renewDeadline).
  bool leadingWithMargin(std::chrono::milliseconds margin) const;
  std::string currentLeader() const;

  // One attempt; public for tests. True when this process holds the lease.
  bool tryAcquireOrRenew();

 private:
  bool sleep(std::stop_token stop, std::chrono::milliseconds d);
  void release();

  kube::Client& client_;
  LeaderElectionConfig config_;
  LeaderCallbacks callbacks_;
  Clock& clock_;
  Logger log_;
  std::atomic<bool> leading_{false};
  std::atomic<Clock::Duration::rep> lastRenew_{0};  // clock time since epoch of the last renewal
  mutable std::mutex mu_;
  Json observed_;                    // last lease spec seen
  Clock::TimePoint observedTime_{};  // local time it last changed
  std::string leader_;
};

}  // namespace patchgate::runtime
