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
  // Called when leadership is lost (not on a clean release), on the
  // elector's thread; the elector campaigns again once it returns. The
  // operator stops its leader-only work here and waits for in-flight
  // reconciles to end (their production writes are already fenced).
  std::function<void()> onStoppedLeading;
  std::function<void(const std::string& identity)> onNewLeader;
};

// Leader election on a coordination.k8s.io/v1 Lease, as client-go's
// leaderelection: a lease is taken only once the holder has not renewed it
// for leaseDuration, judged on this process's monotonic clock from when it
// last saw the record change (no trust in remote clocks, nor in the local
// wall clock, which can step). Writes use the resourceVersion, so two
// candidates can't both win. `client` should be the elector's own: its own
// connections and rate limit (so a busy controller cannot starve renewals)
// and request timeouts well under renewDeadline (so a hung API server is
// noticed in time: main.cc gives it 3 s).
// RBAC: get, create, update on leases in leaseNamespace.
class LeaderElector {
 public:
  LeaderElector(kube::Client& client, LeaderElectionConfig config, LeaderCallbacks callbacks,
                Clock& clock, Logger log);

  // Campaigns, then renews until `stop` (then releases). When renewal fails
  // for renewDeadline it calls onStoppedLeading and campaigns again.
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

  // A planned handover (SIGTERM), from any thread: stops leading and
  // releases the lease now, without waiting for a renewal in flight on the
  // elector's thread (under load one can take seconds, and the standby is
  // waiting); from then on this elector never takes the lease again.
  void releaseNow();

 private:
  bool sleep(std::stop_token stop, std::chrono::milliseconds d);
  // Campaigns until it leads (true) or `stop` (false).
  bool campaign(std::stop_token stop);
  // Renews until `stop` (true) or the renew deadline passes (false).
  bool lead(std::stop_token stop);
  void release();

  kube::Client& client_;
  LeaderElectionConfig config_;
  LeaderCallbacks callbacks_;
  Clock& clock_;
  Logger log_;
  std::atomic<bool> leading_{false};
  std::atomic<bool> released_{false};  // releaseNow(): never lead again
  // Monotonic time (since the steady clock's epoch) the last successful
  // renewal was sent.
  std::atomic<Clock::SteadyPoint::rep> lastRenew_{0};
  mutable std::mutex mu_;
  Json observed_;                      // last lease spec seen
  Clock::SteadyPoint observedTime_{};  // monotonic time it last changed
  std::string leader_;
};

}  // namespace patchgate::runtime
