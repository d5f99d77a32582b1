#include "operator_setup.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <stop_token>
#include <thread>

#include "fakes/fake_client.h"
#include "fakes/fake_clock.h"
#include "kube/errors.h"
#include "test_util.h"

namespace patchgate {
namespace {

using patchgate::testing::eventually;
using patchgate::testing::FakeClient;
using patchgate::testing::FakeClock;
using patchgate::testing::quietLogger;

// The value of leader_election_master_status for every `name` label seen.
std::map<std::string, double> leaderGauge(metrics::Metrics& m) {
  std::map<std::string, double> out;
  for (const auto& family : m.registry()->Collect()) {
    if (family.name != "leader_election_master_status") continue;
    for (const auto& metric : family.metric)
      for (const auto& label : metric.label)
        if (label.name == "name") out[label.value] = metric.gauge.value;
  }
  return out;
}

// The callbacks run on the elector's thread after the caller's locals are
// gone: the gauge must name the lease, not whatever was on the stack (under
// ASan a by-reference capture is a stack-use-after-scope report).
TEST(MakeLeaderElectorTest, GaugeNamesTheLeaseAfterTheCallersLocalsAreGone) {
  FakeClock clock;
  FakeClient client(clock);
  metrics::Metrics metrics;
  runtime::Manager manager(quietLogger());
  std::unique_ptr<runtime::LeaderElector> elector;
  bool lost = false;
  {
    runtime::LeaderElectionConfig le;
    le.leaseNamespace = "patchgate-system";
    le.leaseName = std::string("patchgate-operator-lease-with-a-long-name");
    le.identity = "replica-a";
    elector = makeLeaderElector(manager, client, clock, metrics, quietLogger(), std::move(le),
                                [&lost] { lost = true; });
    // Scribble over the stack this scope used.
    volatile char noise[512];
    for (auto& c : noise) c = '\xff';
  }
  EXPECT_EQ(leaderGauge(metrics),
            (std::map<std::string, double>{{"patchgate-operator-lease-with-a-long-name", 0}}));

  // The thread's own token: a failed ASSERT below still stops and joins it.
  std::jthread t([&](std::stop_token st) { elector->run(st); });
  ASSERT_TRUE(eventually([&] { return elector->isLeader(); }));
  ASSERT_TRUE(eventually([&] {
    return leaderGauge(metrics) ==
           std::map<std::string, double>{{"patchgate-operator-lease-with-a-long-name", 1}};
  })) << "gauge: " << leaderGauge(metrics).size() << " series";
  t.request_stop();
  t.join();
  EXPECT_FALSE(lost);
}

// The API server away: the Patch watch fails; readiness says so, liveness
// stays up (restarting would not bring the API server back, and both
// replicas would crash-loop through an API server upgrade).
TEST(SetupOperatorTest, AFailingWatchMakesTheOperatorUnreadyNotDead) {
  FakeClock clock;
  FakeClient client(clock);
  metrics::Metrics metrics;
  RandomImpl random(7);
  runtime::Manager manager(quietLogger());
  OperatorOptions options;
  options.identity = "replica-a";
  ASSERT_TRUE(setupOperator(manager, client, clock, random, metrics, quietLogger(), options).ok());
  manager.start();
  ASSERT_TRUE(eventually([&] { return manager.readyz().empty(); })) << manager.readyz();
  for (int i = 0; i < 200; ++i)
    client.failNext("watch", kube::apiError(503, "ServiceUnavailable", "apiserver is shutting down"));
  client.interruptWatches(kube::transportError("connection reset"));
  ASSERT_TRUE(patchgate::testing::advanceUntil(clock, std::chrono::milliseconds(100), [&] {
    return manager.readyz().find("watch on patches is failing") != std::string::npos;
  })) << manager.readyz();
  EXPECT_EQ(manager.healthz(), "");
  manager.stop();
}

// Losing the lease (renewals fail past the renew deadline) sets the gauge to
// 0 and calls onLost.
TEST(MakeLeaderElectorTest, LosingTheLeaseClearsTheGaugeAndCallsOnLost) {
  FakeClock clock;
  FakeClient client(clock);
  metrics::Metrics metrics;
  runtime::Manager manager(quietLogger());
  std::atomic<bool> lost = false;
  runtime::LeaderElectionConfig le{.leaseNamespace = "ns", .leaseName = "lease", .identity = "a"};
  auto elector = makeLeaderElector(manager, client, clock, metrics, quietLogger(), le, [&] { lost = true; });
  std::jthread t([&](std::stop_token st) { elector->run(st); });
  ASSERT_TRUE(eventually([&] { return leaderGauge(metrics)["lease"] == 1; }));
  for (int i = 0; i < 100; ++i) client.failNext("get", absl::UnavailableError("api server away"), "leases");
  ASSERT_TRUE(eventually([&] {
    clock.advance(std::chrono::seconds(1));
    return lost.load();
  }));
  EXPECT_EQ(leaderGauge(metrics)["lease"], 0);
}

}  // namespace
}  // namespace patchgate
