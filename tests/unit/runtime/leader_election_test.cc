#include "runtime/leader_election.h"

#include <gtest/gtest.h>

#include <thread>

#include "absl/strings/str_cat.h"
#include "fakes/fake_client.h"
#include "fakes/fake_clock.h"
#include "kube/errors.h"
#include "test_util.h"

namespace patchgate::runtime {
namespace {

using namespace std::chrono_literals;
using patchgate::testing::advanceUntil;
using patchgate::testing::eventually;
using patchgate::testing::FakeClient;
using patchgate::testing::FakeClock;
using patchgate::testing::quietLogger;
namespace res = kube::resources;

LeaderElectionConfig config(const std::string& identity) {
  return {.leaseNamespace = "patchgate-system", .leaseName = "patchgate-leader",
          .identity = identity};
}

class LeaderElectionTest : public ::testing::Test {
 protected:
  Json lease() { return fake_.object(res::kLease, "patchgate-system", "patchgate-leader"); }
  FakeClock clock_;
  FakeClient fake_{clock_};
};

TEST_F(LeaderElectionTest, TheFirstCandidateCreatesTheLeaseAndLeads) {
  LeaderElector a(fake_, config("a"), {}, clock_, quietLogger());
  EXPECT_TRUE(a.tryAcquireOrRenew());
  EXPECT_EQ(a.currentLeader(), "a");
  Json l = lease();
  ASSERT_FALSE(l.is_null());
  EXPECT_EQ(l["spec"]["holderIdentity"], "a");
  EXPECT_EQ(l["spec"]["leaseDurationSeconds"], 12);
  EXPECT_EQ(l["spec"]["leaseTransitions"], 0);
  EXPECT_EQ(l["spec"]["acquireTime"], formatMicroTime(clock_.now()));
  EXPECT_EQ(l["spec"]["renewTime"], formatMicroTime(clock_.now()));
  ASSERT_EQ(fake_.calls("create", "leases").size(), 1u);

  // Renewing moves renewTime only.
  clock_.advance(2s);
  EXPECT_TRUE(a.tryAcquireOrRenew());
  EXPECT_EQ(lease()["spec"]["renewTime"], formatMicroTime(clock_.now()));
  EXPECT_EQ(lease()["spec"]["acquireTime"], formatMicroTime(clock_.now() - 2s));
  EXPECT_EQ(lease()["spec"]["leaseTransitions"], 0);
}

TEST_F(LeaderElectionTest, ASecondCandidateWaitsUntilTheLeaseExpires) {
  std::vector<std::string> newLeaders;
  LeaderElector a(fake_, config("a"), {}, clock_, quietLogger());
  LeaderElector b(fake_, config("b"),
                  {.onNewLeader = [&](const std::string& id) { newLeaders.push_back(id); }},
                  clock_, quietLogger());
  ASSERT_TRUE(a.tryAcquireOrRenew());
  EXPECT_FALSE(b.tryAcquireOrRenew());
  EXPECT_EQ(b.currentLeader(), "a");
  EXPECT_EQ(newLeaders, std::vector<std::string>{"a"});

  // While a renews, b never gets it, however long it tries.
  for (int i = 0; i < 10; ++i) {
    clock_.advance(10s);
    ASSERT_TRUE(a.tryAcquireOrRenew());
    EXPECT_FALSE(b.tryAcquireOrRenew()) << i;
  }
  EXPECT_TRUE(fake_.calls("update", "leases").size() == 10u);  // only a's renewals

  // a stops renewing. b judges expiry by its own clock from when it last saw
  // the record change (its previous call).
  clock_.advance(11s);  // leaseDuration 12 s
  EXPECT_FALSE(b.tryAcquireOrRenew());
  clock_.advance(1s);
  EXPECT_TRUE(b.tryAcquireOrRenew());
  Json l = lease();
  EXPECT_EQ(l["spec"]["holderIdentity"], "b");
  EXPECT_EQ(l["spec"]["leaseTransitions"], 1);
  EXPECT_EQ(l["spec"]["acquireTime"], formatMicroTime(clock_.now()));
  EXPECT_EQ(b.currentLeader(), "b");

  // a comes back and finds b in charge.
  EXPECT_FALSE(a.tryAcquireOrRenew());
  EXPECT_EQ(a.currentLeader(), "b");
  EXPECT_EQ(lease()["spec"]["holderIdentity"], "b");
}

TEST_F(LeaderElectionTest, AConflictingWriteLoses) {
  LeaderElector a(fake_, config("a"), {}, clock_, quietLogger());
  ASSERT_TRUE(a.tryAcquireOrRenew());
  fake_.failNext("update", kube::apiError(409, "Conflict", "the object has been modified"));
  EXPECT_FALSE(a.tryAcquireOrRenew());
  fake_.failNext("create", kube::apiError(409, "AlreadyExists", "exists"));
  LeaderElector c(fake_, {.leaseNamespace = "patchgate-system", .leaseName = "other",
                          .identity = "c"},
                  {}, clock_, quietLogger());
  EXPECT_FALSE(c.tryAcquireOrRenew());
}

TEST_F(LeaderElectionTest, RunLeadsThenReleasesOnStop) {
  std::atomic<bool> started = false, stopped = false;
  LeaderElector a(fake_, config("a"),
                  {.onStartedLeading = [&] { started = true; },
                   .onStoppedLeading = [&] { stopped = true; }},
                  clock_, quietLogger());
  std::jthread t([&](std::stop_token st) { a.run(st); });
  ASSERT_TRUE(eventually([&] { return started.load(); }));
  EXPECT_TRUE(a.isLeader());
  // It renews every retryPeriod.
  ASSERT_TRUE(advanceUntil(clock_, 500ms, [&] { return fake_.calls("update", "leases").size() >= 2; }));
  t.request_stop();
  t.join();
  EXPECT_FALSE(a.isLeader());
  EXPECT_FALSE(stopped);  // a clean release is not a loss
  Json l = lease();
  EXPECT_EQ(l["spec"]["holderIdentity"], "");
  EXPECT_EQ(l["spec"]["leaseDurationSeconds"], 1);

  // The next candidate takes over at once.
  LeaderElector b(fake_, config("b"), {}, clock_, quietLogger());
  EXPECT_TRUE(b.tryAcquireOrRenew());
  EXPECT_EQ(lease()["spec"]["leaseTransitions"], 1);
}

// Renewals fail past the renew deadline: it stops leading (onStoppedLeading,
// no exit), keeps the lease record (it could not reach the server anyway),
// and campaigns again; once the API server answers it leads again.
TEST_F(LeaderElectionTest, AfterTheRenewDeadlineItStopsLeadingAndCampaignsAgain) {
  std::atomic<int> started = 0, stopped = 0;
  LeaderElector a(fake_, config("a"),
                  {.onStartedLeading = [&] { ++started; },
                   .onStoppedLeading = [&] { ++stopped; }},
                  clock_, quietLogger());
  std::jthread t([&](std::stop_token st) { a.run(st); });
  ASSERT_TRUE(eventually([&] { return started == 1; }));
  for (int i = 0; i < 10; ++i)
    fake_.failNext("get", kube::apiError(503, "", "apiserver down"), "leases");
  auto lostAt = clock_.now();
  ASSERT_TRUE(advanceUntil(clock_, 500ms, [&] { return stopped == 1; }));
  EXPECT_GE(clock_.now() - lostAt, 8s);  // renewDeadline
  EXPECT_FALSE(a.isLeader());
  EXPECT_FALSE(a.leadingWithMargin(0s));
  EXPECT_EQ(lease()["spec"]["holderIdentity"], "a");
  // The API server is back: the same process leads again, without a restart.
  ASSERT_TRUE(advanceUntil(clock_, 500ms, [&] { return started == 2; }));
  EXPECT_TRUE(a.isLeader());
  EXPECT_TRUE(a.leadingWithMargin(2s));
  t.request_stop();
  t.join();
  EXPECT_EQ(stopped, 1);  // the release on stop is not a loss
}

// While it could not renew, another took the lease: it stays a follower.
TEST_F(LeaderElectionTest, AfterLosingTheLeaseToAnotherItFollows) {
  std::atomic<int> started = 0, stopped = 0;
  LeaderElector a(fake_, config("a"),
                  {.onStartedLeading = [&] { ++started; },
                   .onStoppedLeading = [&] { ++stopped; }},
                  clock_, quietLogger());
  std::jthread t([&](std::stop_token st) { a.run(st); });
  ASSERT_TRUE(eventually([&] { return started == 1; }));
  // b writes itself into the lease (as a candidate would after expiry);
  // a's renewals now see a fresh lease held by someone else.
  Json l = lease();
  l["spec"]["holderIdentity"] = "b";
  l["spec"]["renewTime"] = "2026-01-01T00:00:00.000000Z";
  ASSERT_TRUE(fake_.update(res::kLease, "patchgate-system", l, {}).ok());
  // The fence closes as soon as a renewal has seen b in the record, long
  // before the renew deadline.
  auto takenAt = clock_.steadyNow();
  ASSERT_TRUE(advanceUntil(clock_, 100ms, [&] { return !a.leadingWithMargin(2s); }));
  EXPECT_LT(clock_.steadyNow() - takenAt, 3s) << "the fence stayed open with another holder in the record";
  ASSERT_TRUE(advanceUntil(clock_, 500ms, [&] { return stopped == 1; }));
  EXPECT_FALSE(a.leadingWithMargin(0s));
  // b keeps renewing (its record changes every 2 s): a never takes over.
  for (int i = 0; i < 20; ++i) {
    Json cur = lease();
    cur["spec"]["renewTime"] = absl::StrCat("2026-01-01T00:00:", 10 + i, ".000000Z");
    ASSERT_TRUE(fake_.update(res::kLease, "patchgate-system", cur, {}).ok());
    clock_.advance(2s);
    patchgate::testing::briefly();
  }
  EXPECT_EQ(started, 1);
  EXPECT_EQ(lease()["spec"]["holderIdentity"], "b");
  t.request_stop();
}

// Expiry is judged on the monotonic clock: the wall clock stepping an hour
// ahead (NTP, a resumed VM) does not let a candidate take a lease its holder
// renewed a moment ago, nor close the holder's fence; stepping back does not
// stall the leader's renewals.
TEST_F(LeaderElectionTest, AWallClockStepNeitherExpiresALeaseNorClosesTheFence) {
  LeaderElector a(fake_, config("a"), {}, clock_, quietLogger());
  ASSERT_TRUE(a.tryAcquireOrRenew());
  LeaderElector b(fake_, config("b"), {}, clock_, quietLogger());
  EXPECT_FALSE(b.tryAcquireOrRenew());  // b has seen the record now
  clock_.set(clock_.now() + 1h);
  EXPECT_FALSE(b.tryAcquireOrRenew());
  EXPECT_EQ(lease()["spec"]["holderIdentity"], "a");
  // Real time passing does expire it.
  clock_.advance(13s);
  EXPECT_TRUE(b.tryAcquireOrRenew());

  std::atomic<bool> started = false;
  FakeClient other(clock_);
  LeaderElector c(other, config("c"), {.onStartedLeading = [&] { started = true; }}, clock_, quietLogger());
  std::jthread t([&](std::stop_token st) { c.run(st); });
  ASSERT_TRUE(eventually([&] { return started.load(); }));
  clock_.set(clock_.now() + 1h);
  EXPECT_TRUE(c.leadingWithMargin(2s));
  // A step back: the leader still renews every 2 s of real time (its pause
  // does not stretch by the hour), so its fence stays open.
  clock_.set(clock_.now() - 2h);
  size_t renewals = other.calls("update", "leases").size();
  ASSERT_TRUE(advanceUntil(clock_, 500ms, [&] { return other.calls("update", "leases").size() >= renewals + 2; }));
  EXPECT_TRUE(c.leadingWithMargin(2s));
  t.request_stop();
}

TEST_F(LeaderElectionTest, TheFenceClosesBeforeTheLeaseCanPassToAnother) {
  std::atomic<bool> started = false;
  LeaderElector a(fake_, config("a"), {.onStartedLeading = [&] { started = true; }}, clock_, quietLogger());
  EXPECT_FALSE(a.leadingWithMargin(2s));  // not leading yet
  std::jthread t([&](std::stop_token st) { a.run(st); });
  ASSERT_TRUE(eventually([&] { return started.load(); }));
  EXPECT_TRUE(a.leadingWithMargin(2s));
  // Renewals fail from now on (the API server is away).
  for (int i = 0; i < 100; ++i)
    fake_.failNext("get", kube::apiError(503, "", "apiserver down"), "leases");
  auto lastRenew = clock_.now();
  // Still leading (renewDeadline 8 s not reached) but no longer sure with a 2 s margin after 6 s.
  ASSERT_TRUE(advanceUntil(clock_, 100ms, [&] { return !a.leadingWithMargin(2s); }));
  EXPECT_GE(clock_.now() - lastRenew, 6s);
  EXPECT_LT(clock_.now() - lastRenew, 6s + 200ms);
  EXPECT_TRUE(a.isLeader());  // it has not given up yet: only the fence is closed
  t.request_stop();
  t.join();
}

// A planned handover from another thread: the lease is released at once,
// the fence closes, and this elector never takes the lease back, even if a
// renewal was on its way (its write conflicts, or it finds the lease free).
TEST_F(LeaderElectionTest, ReleaseNowHandsOverAndNeverTakesTheLeaseBack) {
  std::atomic<bool> started = false;
  LeaderElector a(fake_, config("a"), {.onStartedLeading = [&] { started = true; }}, clock_, quietLogger());
  std::jthread t([&](std::stop_token st) { a.run(st); });
  ASSERT_TRUE(eventually([&] { return started.load(); }));
  a.releaseNow();
  EXPECT_FALSE(a.isLeader());
  EXPECT_FALSE(a.leadingWithMargin(0s));
  EXPECT_EQ(lease()["spec"]["holderIdentity"], "");
  // The elector's thread keeps running (until its stop) but never renews.
  size_t writes = fake_.calls("update", "leases").size();
  for (int i = 0; i < 5; ++i) {
    clock_.advance(2s);
    patchgate::testing::briefly();
  }
  EXPECT_EQ(lease()["spec"]["holderIdentity"], "");
  EXPECT_FALSE(a.tryAcquireOrRenew());
  EXPECT_EQ(fake_.calls("update", "leases").size(), writes);
  LeaderElector b(fake_, config("b"), {}, clock_, quietLogger());
  EXPECT_TRUE(b.tryAcquireOrRenew()) << "the standby leads at once";
  t.request_stop();
}

// A renewal of ours that lands between the release's read and its write:
// the release reads again instead of leaving the lease held.
TEST_F(LeaderElectionTest, AReleaseRetriesWhenARenewalLandsInBetween) {
  LeaderElector a(fake_, config("a"), {}, clock_, quietLogger());
  ASSERT_TRUE(a.tryAcquireOrRenew());
  fake_.failNext("update", kube::apiError(409, "Conflict", "the object has been modified"), "leases");
  a.releaseNow();
  EXPECT_EQ(lease()["spec"]["holderIdentity"], "");
}

TEST_F(LeaderElectionTest, RunWaitsWhileAnotherHolds) {
  LeaderElector a(fake_, config("a"), {}, clock_, quietLogger());
  ASSERT_TRUE(a.tryAcquireOrRenew());
  std::atomic<bool> started = false;
  LeaderElector b(fake_, config("b"), {.onStartedLeading = [&] { started = true; }}, clock_,
                  quietLogger());
  std::jthread t([&](std::stop_token st) { b.run(st); });
  ASSERT_TRUE(fake_.waitForCalls([](const auto& c) { return c.size() >= 3; }));
  EXPECT_FALSE(started);
  // a is gone; b takes over once the lease has expired.
  ASSERT_TRUE(advanceUntil(clock_, 500ms, [&] { return started.load(); }));
  EXPECT_EQ(lease()["spec"]["holderIdentity"], "b");
  t.request_stop();
}

}  // namespace
}  // namespace patchgate::runtime
