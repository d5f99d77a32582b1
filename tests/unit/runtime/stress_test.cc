// Stress tests for the runtime's concurrent pieces: many threads, many keys,
// and a shutdown in the middle of the traffic. They check the invariants that
// must hold under any interleaving, and exist above all to give ThreadSanitizer
// real races to look at (`ctest -L sanitize` runs them in a TSan build). They
// use the real clock, but bound every loop by a count, not by time.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <random>
#include <thread>

#include "fakes/fake_client.h"
#include "fakes/fake_clock.h"
#include "runtime/controller.h"
#include "runtime/informer.h"
#include "runtime/leader_election.h"
#include "runtime/rate_limiter.h"
#include "runtime/workqueue.h"
#include "test_util.h"

namespace patchgate::runtime {
namespace {

using namespace std::chrono_literals;
using patchgate::testing::eventually;
using patchgate::testing::FakeClient;
using patchgate::testing::FixedRandom;
using patchgate::testing::quietLogger;
namespace res = kube::resources;

constexpr int kKeys = 64;

std::string key(uint32_t i) { return "ns/k" + std::to_string(i % kKeys); }

// One in-flight flag per key: a second worker on the same key is a violation.
struct Exclusive {
  std::array<std::atomic<int>, kKeys> inFlight{};
  std::atomic<int> overlaps{0};
  std::atomic<int> processed{0};
  void enter(int k) {
    if (inFlight[k].fetch_add(1) != 0) ++overlaps;
  }
  void leave(int k) {
    inFlight[k].fetch_sub(1);
    ++processed;
  }
};

int keyIndex(const std::string& k) { return std::stoi(k.substr(4)); }

// Producers add, add later and add rate-limited; workers get/done; the queue
// is shut down while all of them still run. No key is ever handed to two
// workers at once, and every thread ends.
TEST(RuntimeStress, WorkQueueUnderProducersWorkersAndShutdown) {
  RealClock clock;
  WorkQueue q("stress", clock, defaultControllerRateLimiter(clock));
  Exclusive ex;
  std::atomic<int> produced{0};
  std::vector<std::jthread> threads;
  for (int p = 0; p < 6; ++p)
    threads.emplace_back([&, p] {
      std::mt19937 rng(p);
      // Until shut down (bounded): keys are de-duplicated, so producers
      // must keep adding while workers work for the two to overlap.
      for (int i = 0; i < 200000 && !q.shuttingDown(); ++i) {
        std::string k = key(rng());
        switch (rng() % 4) {
          case 0: q.addAfter(k, std::chrono::microseconds(rng() % 500)); break;
          case 1: q.addRateLimited(k); break;
          case 2: q.forget(k); [[fallthrough]];
          default: q.add(k);
        }
        ++produced;
        (void)q.len();
        (void)q.waitingLen();
        if (i % 64 == 0) std::this_thread::yield();
      }
    });
  for (int w = 0; w < 4; ++w)
    threads.emplace_back([&] {
      while (auto item = q.get()) {
        int k = keyIndex(*item);
        ex.enter(k);
        std::this_thread::yield();
        ex.leave(k);
        q.done(*item);
      }
    });
  bool busy = eventually([&] { return produced.load() > 6000 && ex.processed.load() > 2000; }, 30s);
  q.shutDown();
  threads.clear();  // joins: producers stop at shutdown, workers when get() ends
  EXPECT_TRUE(busy) << produced.load() << " produced, " << ex.processed.load() << " processed";
  EXPECT_EQ(ex.overlaps.load(), 0);
  EXPECT_FALSE(q.get().has_value());
}

// Writers create, update and delete objects in the fake API server while the
// informer follows its watch and readers list and index the cache; the
// informer is stopped in the middle, restarted, and must then converge on the
// server's contents.
TEST(RuntimeStress, InformerFollowsConcurrentWritersAndStopsMidStream) {
  RealClock clock;
  FixedRandom random;
  FakeClient fake(clock);
  std::atomic<int> handled{0};
  auto makeInformer = [&] {
    auto inf = std::make_unique<Informer>(fake, WatcherConfig{.resource = res::kPatch, .ns = "ns"}, clock,
                                          random, quietLogger());
    inf->store().addIndexer("replicas", [](const Json& o) {
      return std::vector<std::string>{std::to_string(o["spec"].value("replicas", 0) % 4)};
    });
    inf->addEventHandler({[&](const Object&) { ++handled; }, [&](const Object&, const Object&) { ++handled; },
                          [&](const Object&) { ++handled; }});
    return inf;
  };
  // Writes until asked to stop or `rounds` is reached: the informer must be
  // listing and watching while writes still arrive.
  auto writer = [&](int w, int rounds, std::stop_token st) {
    std::mt19937 rng(w);
    for (int i = 0; i < rounds && !st.stop_requested(); ++i) {
      std::string name = "p" + std::to_string(rng() % 40);
      Json obj = {{"metadata", {{"name", name}, {"namespace", "ns"}}},
                  {"spec", {{"replicas", static_cast<int>(rng() % 100)}}}};
      switch (rng() % 3) {
        case 0: (void)fake.create(res::kPatch, "ns", obj); break;
        case 1: {
          auto cur = fake.get(res::kPatch, "ns", name);
          if (cur.ok()) {
            Json upd = *cur;
            upd["spec"]["replicas"] = static_cast<int>(rng() % 100);
            (void)fake.update(res::kPatch, "ns", upd);
          }
          break;
        }
        default: (void)fake.remove(res::kPatch, "ns", name);
      }
    }
  };
  auto reader = [](Informer& inf, std::stop_token st) {
    while (!st.stop_requested()) {
      for (const auto& o : inf.store().list()) (void)o->at("metadata");
      (void)inf.store().byIndex("replicas", "1");
      (void)inf.store().size();
    }
  };

  {
    auto inf = makeInformer();
    std::jthread run([&](std::stop_token st) { inf->run(st); });
    std::vector<std::jthread> readers;
    for (int r = 0; r < 2; ++r) readers.emplace_back([&](std::stop_token st) { reader(*inf, st); });
    std::vector<std::jthread> writers;
    for (int w = 0; w < 4; ++w) writers.emplace_back([&, w](std::stop_token st) { writer(w, 200000, st); });
    EXPECT_TRUE(eventually([&] { return handled.load() > 100; }, 30s)) << handled.load() << " events handled";
    run.request_stop();  // mid-stream: writers still write
    run.join();
    readers.clear();
    writers.clear();  // requests stop, joins
  }

  // A fresh informer (as after a restart) converges on the server's contents.
  auto inf = makeInformer();
  std::jthread run([&](std::stop_token st) { inf->run(st); });
  std::vector<std::jthread> writers;
  for (int w = 4; w < 8; ++w) writers.emplace_back([&, w](std::stop_token st) { writer(w, 300, st); });
  writers.clear();
  auto want = [&] {
    std::map<std::string, int> m;
    for (const auto& o : fake.objects(res::kPatch, "ns"))
      m[o["metadata"]["name"]] = o["spec"].value("replicas", -1);
    return m;
  };
  auto have = [&] {
    std::map<std::string, int> m;
    for (const auto& o : inf->store().list()) m[(*o)["metadata"]["name"]] = (*o)["spec"].value("replicas", -1);
    return m;
  };
  EXPECT_TRUE(eventually([&] { return inf->hasSynced() && have() == want(); }, 30s))
      << have().size() << " cached, " << want().size() << " on the server";
}

// A reconciler that counts overlapping reconciles of one key.
class CountingReconciler final : public Reconciler {
 public:
  absl::StatusOr<Action> reconcile(const Object& obj, ReconcileContext&) override {
    int k = std::stoi(jsonString(*obj, "/metadata/name").substr(1)) % kKeys;
    ex.enter(k);
    std::this_thread::yield();
    ex.leave(k);
    // Some requeue, some fail (rate-limited retry), most settle.
    switch (ex.processed.load() % 5) {
      case 0: return Action::requeue(1ms);
      case 1: return absl::UnavailableError("flaky");
      default: return Action::await();
    }
  }
  Exclusive ex;
};

// A controller with four workers over an informer fed by concurrent writers,
// stopped while events still arrive: never two reconciles of one key at once,
// and it stops.
TEST(RuntimeStress, ControllerStopsCleanlyUnderEventStorm) {
  RealClock clock;
  FixedRandom random(0.0);
  FakeClient fake(clock);
  CountingReconciler rec;
  Informer inf(fake, WatcherConfig{.resource = res::kPatch, .ns = "ns"}, clock, random, quietLogger());
  Controller ctl(ControllerOptions{.name = "stress", .workers = 4, .cacheSyncTimeout = 10s}, inf, rec, clock,
                 quietLogger());
  std::jthread infThread([&](std::stop_token st) { inf.run(st); });
  std::jthread ctlThread([&](std::stop_token st) { ctl.run(st); });
  std::vector<std::jthread> writers;
  std::atomic<bool> stopWriting{false};
  for (int w = 0; w < 4; ++w)
    writers.emplace_back([&, w] {
      std::mt19937 rng(w);
      for (int i = 0; i < 2000 && !stopWriting; ++i) {
        std::string name = "p" + std::to_string(rng() % kKeys);
        Json obj = {{"metadata", {{"name", name}, {"namespace", "ns"}}}, {"spec", {{"replicas", i}}}};
        if (!fake.create(res::kPatch, "ns", obj).ok()) {
          auto cur = fake.get(res::kPatch, "ns", name);
          if (cur.ok()) {
            Json upd = *cur;
            upd["spec"]["replicas"] = i;
            (void)fake.update(res::kPatch, "ns", upd);
          }
        }
      }
    });
  ASSERT_TRUE(eventually([&] { return rec.ex.processed.load() > 300; }, 30s));
  ctlThread.request_stop();
  ctlThread.join();  // workers finish their reconcile and stop while writers still write
  stopWriting = true;
  writers.clear();
  infThread.request_stop();
  infThread.join();
  EXPECT_EQ(rec.ex.overlaps.load(), 0);
}

// Three candidates campaign on one Lease with short timings while the API
// server fails now and then; each is stopped at a different moment. The
// Lease always names one of them (or nobody after a release), and every
// elector thread ends.
TEST(RuntimeStress, LeaderElectorsCampaignAndStopConcurrently) {
  RealClock clock;
  FakeClient fake(clock);
  std::atomic<int> started{0}, stopped{0};
  std::vector<std::unique_ptr<LeaderElector>> electors;
  for (int i = 0; i < 3; ++i) {
    LeaderElectionConfig c{.leaseNamespace = "ns", .leaseName = "lease", .identity = "c" + std::to_string(i),
                           .leaseDuration = 300ms, .renewDeadline = 200ms, .retryPeriod = 20ms};
    LeaderCallbacks cb{.onStartedLeading = [&] { ++started; }, .onStoppedLeading = [&] { ++stopped; }};
    electors.push_back(std::make_unique<LeaderElector>(fake, c, cb, clock, quietLogger()));
  }
  std::vector<std::jthread> threads;
  for (auto& e : electors) threads.emplace_back([&e](std::stop_token st) { e->run(st); });
  std::jthread chaos([&](std::stop_token st) {
    for (int i = 0; i < 200 && !st.stop_requested(); ++i) {
      if (i % 7 == 0) fake.failNext("update", absl::UnavailableError("injected"), "leases");
      for (auto& e : electors) (void)e->currentLeader();
      std::this_thread::sleep_for(2ms);
    }
  });
  ASSERT_TRUE(eventually([&] { return started.load() >= 1; }, 10s));
  for (auto& t : threads) {
    std::this_thread::sleep_for(30ms);
    t.request_stop();
    t.join();
  }
  chaos.request_stop();
  chaos.join();
  std::string holder = jsonString(fake.object(res::kLease, "ns", "lease"), "/spec/holderIdentity");
  EXPECT_TRUE(holder.empty() || holder == "c0" || holder == "c1" || holder == "c2") << holder;
  for (auto& e : electors) EXPECT_FALSE(e->isLeader());
}

}  // namespace
}  // namespace patchgate::runtime
