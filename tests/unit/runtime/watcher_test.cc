// Watcher and Informer against FakeClient: list, watch, resume, relist.
#include "runtime/watcher.h"

#include <gtest/gtest.h>

#include <thread>

#include "fakes/fake_client.h"
#include "fakes/fake_clock.h"
#include "kube/errors.h"
#include "runtime/informer.h"
#include "test_util.h"

namespace patchgate::runtime {
namespace {

using namespace std::chrono_literals;
using patchgate::testing::advanceUntil;
using patchgate::testing::eventually;
using patchgate::testing::FakeClient;
using patchgate::testing::FakeClock;
using patchgate::testing::FixedRandom;
using patchgate::testing::quietLogger;
using V = std::vector<std::string>;
namespace res = kube::resources;

Json pod(const std::string& name, const std::string& ns = "ns") {
  return {{"metadata", {{"name", name}, {"namespace", ns}}}, {"spec", {{"nodeName", "n1"}}}};
}

// Collects what a Watcher reports, as "Init", "InitApply a", "Apply a", ...
class Sink {
 public:
  void operator()(WatcherEvent ev) {
    static const char* kNames[] = {"Init", "InitApply", "InitDone", "Apply", "Delete"};
    std::string s = kNames[static_cast<int>(ev.type)];
    if (!ev.object.is_null()) s += " " + jsonString(ev.object, "/metadata/name");
    std::lock_guard l(mu_);
    seen_.push_back(s);
    objects_.push_back(ev.object);
  }
  V seen() const {
    std::lock_guard l(mu_);
    return seen_;
  }
  std::vector<Json> objects() const {
    std::lock_guard l(mu_);
    return objects_;
  }
  bool waitFor(size_t n) {
    return eventually([&] { return seen().size() >= n; });
  }

 private:
  mutable std::mutex mu_;
  V seen_;
  std::vector<Json> objects_;
};

class WatcherTest : public ::testing::Test {
 protected:
  FakeClock clock_;
  FixedRandom random_{0.0};  // no jitter: backoff is exactly 0.8 s, 1.6 s, ...
  FakeClient fake_{clock_};
};

TEST_F(WatcherTest, ListsThenWatches) {
  fake_.seed(res::kPod, pod("a"));
  fake_.seed(res::kPod, pod("b"));
  fake_.seed(res::kPod, pod("elsewhere", "other"));  // rv 3, another namespace
  Watcher w(fake_, {.resource = res::kPod, .ns = "ns"}, clock_, random_, quietLogger());
  Sink sink;
  std::jthread t([&](std::stop_token st) { w.run(st, std::ref(sink)); });
  ASSERT_TRUE(sink.waitFor(4));
  EXPECT_EQ(sink.seen(), (V{"Init", "InitApply a", "InitApply b", "InitDone"}));
  EXPECT_EQ(sink.objects()[1]["kind"], "Pod");
  EXPECT_EQ(sink.objects()[1]["apiVersion"], "v1");

  ASSERT_TRUE(fake_.waitForActiveWatches(1));
  fake_.seed(res::kPod, pod("c"));
  fake_.erase(res::kPod, "ns", "a");
  ASSERT_OK(fake_.patch(res::kPod, "ns", "b", kube::PatchType::kMerge,
                        R"({"metadata":{"labels":{"x":"y"}}})"));
  fake_.seed(res::kPod, pod("ignored", "other"));
  ASSERT_TRUE(sink.waitFor(7));
  t.request_stop();
  t.join();
  EXPECT_EQ(sink.seen(), (V{"Init", "InitApply a", "InitApply b", "InitDone", "Apply c",
                            "Delete a", "Apply b"}));
  EXPECT_EQ(w.lastResourceVersion(), "6");  // b's patch; rv 7 is in another namespace
  EXPECT_EQ(w.relists(), 1);
  EXPECT_TRUE(w.healthy());

  auto lists = fake_.calls("list");
  ASSERT_EQ(lists.size(), 1u);
  EXPECT_EQ(lists[0].ns, "ns");
  EXPECT_EQ(lists[0].limit, 500);
  auto watches = fake_.calls("watch");
  ASSERT_EQ(watches.size(), 1u);
  EXPECT_EQ(watches[0].resourceVersion, "3");  // the list's resourceVersion
  EXPECT_EQ(watches[0].ns, "ns");
}

TEST_F(WatcherTest, ListsInPages) {
  for (auto n : {"a", "b", "c", "d", "e"}) fake_.seed(res::kPod, pod(n));
  Watcher w(fake_, {.resource = res::kPod, .ns = "ns", .pageSize = 2}, clock_, random_,
            quietLogger());
  Sink sink;
  std::jthread t([&](std::stop_token st) { w.run(st, std::ref(sink)); });
  ASSERT_TRUE(sink.waitFor(7));
  t.request_stop();
  t.join();
  EXPECT_EQ(sink.seen().back(), "InitDone");
  auto lists = fake_.calls("list");
  ASSERT_EQ(lists.size(), 3u);
  EXPECT_TRUE(lists[0].continueToken.empty());
  EXPECT_FALSE(lists[1].continueToken.empty());
  EXPECT_EQ(lists[2].limit, 2);
}

TEST_F(WatcherTest, RetriesAFailedListWithBackoff) {
  fake_.seed(res::kPod, pod("a"));
  fake_.failNext("list", kube::apiError(503, "", "apiserver down"));
  fake_.failNext("list", kube::apiError(503, "", "apiserver down"));
  Watcher w(fake_, {.resource = res::kPod, .ns = "ns"}, clock_, random_, quietLogger());
  Sink sink;
  std::jthread t([&](std::stop_token st) { w.run(st, std::ref(sink)); });
  ASSERT_TRUE(fake_.waitForCalls([](const auto& c) { return c.size() >= 1; }));
  // Not before the 0.8 s backoff has passed.
  patchgate::testing::briefly();
  EXPECT_EQ(fake_.calls("list").size(), 1u);
  EXPECT_FALSE(w.healthy());
  ASSERT_TRUE(advanceUntil(clock_, 100ms, [&] { return sink.seen().size() >= 3; }));
  EXPECT_EQ(fake_.calls("list").size(), 3u);
  t.request_stop();
  t.join();
}

TEST_F(WatcherTest, ResumesFromTheLastResourceVersionAfterATransportError) {
  fake_.seed(res::kPod, pod("a"));  // rv 1
  Watcher w(fake_, {.resource = res::kPod, .ns = "ns"}, clock_, random_, quietLogger());
  Sink sink;
  std::jthread t([&](std::stop_token st) { w.run(st, std::ref(sink)); });
  ASSERT_TRUE(sink.waitFor(3));
  ASSERT_TRUE(fake_.waitForActiveWatches(1));
  fake_.seed(res::kPod, pod("b"));  // rv 2
  ASSERT_TRUE(sink.waitFor(4));

  fake_.interruptWatches(kube::transportError("connection reset by peer"));
  fake_.seed(res::kPod, pod("c"));  // rv 3, while disconnected
  ASSERT_TRUE(advanceUntil(clock_, 100ms, [&] { return fake_.calls("watch").size() >= 2; }));
  ASSERT_TRUE(sink.waitFor(5));
  t.request_stop();
  t.join();

  auto watches = fake_.calls("watch");
  EXPECT_EQ(watches[0].resourceVersion, "1");
  EXPECT_EQ(watches[1].resourceVersion, "2");  // resumed, not relisted
  EXPECT_EQ(fake_.calls("list").size(), 1u);
  EXPECT_EQ(sink.seen(), (V{"Init", "InitApply a", "InitDone", "Apply b", "Apply c"}));
}

TEST_F(WatcherTest, WaitsForTheBackoffBeforeRewatching) {
  Watcher w(fake_, {.resource = res::kPod, .ns = "ns"}, clock_, random_, quietLogger());
  Sink sink;
  fake_.failNextWatch(kube::transportError("refused"));
  std::jthread t([&](std::stop_token st) { w.run(st, std::ref(sink)); });
  ASSERT_TRUE(fake_.waitForCalls([](const auto& c) { return c.size() >= 2; }));  // list, watch
  patchgate::testing::briefly();
  EXPECT_EQ(fake_.calls("watch").size(), 1u);
  ASSERT_TRUE(advanceUntil(clock_, 100ms, [&] { return fake_.calls("watch").size() >= 2; }));
  t.request_stop();
  t.join();
}

TEST_F(WatcherTest, AnErrorEventOtherThanGoneIsRetriedWithBackoff) {
  fake_.seed(res::kPod, pod("a"));  // rv 1
  fake_.failNextWatchWithEvent({{"apiVersion", "v1"},
                                {"kind", "Status"},
                                {"status", "Failure"},
                                {"reason", "InternalError"},
                                {"message", "etcdserver: leader changed"},
                                {"code", 500}});
  Watcher w(fake_, {.resource = res::kPod, .ns = "ns"}, clock_, random_, quietLogger());
  Sink sink;
  std::jthread t([&](std::stop_token st) { w.run(st, std::ref(sink)); });
  ASSERT_TRUE(fake_.waitForCalls([](const auto& c) { return c.size() >= 2; }));  // list, watch
  // Not an immediate re-watch (a server sending errors must not be hammered)...
  patchgate::testing::briefly();
  EXPECT_EQ(fake_.calls("watch").size(), 1u);
  EXPECT_FALSE(w.healthy());
  // ...but a resume from the same resourceVersion after the backoff, no relist.
  ASSERT_TRUE(advanceUntil(clock_, 100ms, [&] { return fake_.calls("watch").size() >= 2; }));
  t.request_stop();
  t.join();
  EXPECT_EQ(fake_.calls("watch")[1].resourceVersion, "1");
  EXPECT_EQ(fake_.calls("list").size(), 1u);
}

TEST_F(WatcherTest, ABookmarkMovesTheResourceVersion) {
  fake_.seed(res::kPod, pod("a"));  // rv 1
  Watcher w(fake_, {.resource = res::kPod, .ns = "ns"}, clock_, random_, quietLogger());
  Sink sink;
  std::jthread t([&](std::stop_token st) { w.run(st, std::ref(sink)); });
  ASSERT_TRUE(sink.waitFor(3));
  ASSERT_TRUE(fake_.waitForActiveWatches(1));
  int64_t bookmark = fake_.bookmark(res::kPod);
  fake_.interruptWatches();  // the server ends the stream after the bookmark
  ASSERT_TRUE(eventually([&] { return fake_.calls("watch").size() >= 2; }));
  t.request_stop();
  t.join();
  EXPECT_EQ(fake_.calls("watch")[1].resourceVersion, std::to_string(bookmark));
  EXPECT_EQ(sink.seen().size(), 3u);  // bookmarks are not reported
  EXPECT_EQ(fake_.calls("list").size(), 1u);
}

TEST_F(WatcherTest, RelistsOnAGoneErrorEvent) {
  fake_.seed(res::kPod, pod("a"));
  fake_.failNextWatchWithEvent(
      {{"kind", "Status"}, {"reason", "Expired"}, {"message", "too old"}, {"code", 410}});
  Watcher w(fake_, {.resource = res::kPod, .ns = "ns"}, clock_, random_, quietLogger());
  Sink sink;
  std::jthread t([&](std::stop_token st) { w.run(st, std::ref(sink)); });
  ASSERT_TRUE(sink.waitFor(6));  // relisted at once, no backoff
  t.request_stop();
  t.join();
  EXPECT_EQ(fake_.calls("list").size(), 2u);
}

TEST_F(WatcherTest, RelistsWhenTheWatchReturnsGone) {
  fake_.seed(res::kPod, pod("a"));
  Watcher w(fake_, {.resource = res::kPod, .ns = "ns"}, clock_, random_, quietLogger());
  Sink sink;
  std::jthread t([&](std::stop_token st) { w.run(st, std::ref(sink)); });
  ASSERT_TRUE(sink.waitFor(3));
  ASSERT_TRUE(fake_.waitForActiveWatches(1));
  fake_.interruptWatches(kube::apiError(410, "Expired", "too old resource version"));
  ASSERT_TRUE(sink.waitFor(6));  // relisted at once, no backoff
  t.request_stop();
  t.join();
  EXPECT_EQ(sink.seen(),
            (V{"Init", "InitApply a", "InitDone", "Init", "InitApply a", "InitDone"}));
  EXPECT_EQ(w.relists(), 2);
}

// Records informer callbacks as "add a", "update a", "delete a".
class Handlers {
 public:
  EventHandler handler() {
    return EventHandler{
        [this](const Object& o) { record("add", o); },
        [this](const Object& old, const Object& o) {
          record(old == o ? "resync" : "update", o);
        },
        [this](const Object& o) { record("delete", o); },
    };
  }
  V seen() const {
    std::lock_guard l(mu_);
    return seen_;
  }
  void clear() {
    std::lock_guard l(mu_);
    seen_.clear();
  }

 private:
  void record(const std::string& what, const Object& o) {
    std::lock_guard l(mu_);
    seen_.push_back(what + " " + jsonString(*o, "/metadata/name"));
  }
  mutable std::mutex mu_;
  V seen_;
};

std::vector<std::string> storeNames(const Store& s) {
  V out;
  for (const auto& o : s.list()) out.push_back(jsonString(*o, "/metadata/name"));
  return out;
}

class InformerTest : public WatcherTest {
 protected:
  void start(Clock::Duration resync = Clock::Duration::zero()) {
    informer_ = std::make_unique<Informer>(fake_, WatcherConfig{.resource = res::kPod, .ns = "ns"},
                                           clock_, random_, quietLogger(), resync);
    informer_->addEventHandler(handlers_.handler());
    thread_ = std::jthread([this](std::stop_token st) { informer_->run(st); });
    ASSERT_TRUE(informer_->waitForSync({}, 5s));
  }
  void TearDown() override {
    thread_.request_stop();
    if (thread_.joinable()) thread_.join();
  }
  Handlers handlers_;
  std::unique_ptr<Informer> informer_;
  std::jthread thread_;
};

TEST_F(InformerTest, InitialListFillsTheStoreAndWatchEventsUpdateIt) {
  fake_.seed(res::kPod, pod("a"));
  fake_.seed(res::kPod, pod("b"));
  start();
  EXPECT_TRUE(informer_->hasSynced());
  EXPECT_EQ(storeNames(informer_->store()), (V{"a", "b"}));
  EXPECT_EQ(handlers_.seen(), (V{"add a", "add b"}));

  ASSERT_TRUE(fake_.waitForActiveWatches(1));
  fake_.seed(res::kPod, pod("c"));
  ASSERT_OK(fake_.patch(res::kPod, "ns", "a", kube::PatchType::kMerge, R"({"spec":{"x":1}})"));
  ASSERT_OK(fake_.remove(res::kPod, "ns", "b"));
  ASSERT_TRUE(eventually([&] { return handlers_.seen().size() == 5; }));
  EXPECT_EQ(handlers_.seen(), (V{"add a", "add b", "add c", "update a", "delete b"}));
  EXPECT_EQ(storeNames(informer_->store()), (V{"a", "c"}));
  EXPECT_EQ(jsonInt(*informer_->store().get("ns/a"), "/spec/x"), 1);
}

TEST_F(InformerTest, AfterGoneTheStoreEqualsTheNewSnapshot) {
  fake_.seed(res::kPod, pod("a"));
  fake_.seed(res::kPod, pod("b"));
  fake_.seed(res::kPod, pod("c"));
  start();
  ASSERT_TRUE(fake_.waitForActiveWatches(1));
  handlers_.clear();

  // Disconnect; while the watcher backs off, the world changes and the
  // server compacts past the watcher's resourceVersion.
  fake_.interruptWatches(kube::transportError("connection reset"));
  fake_.erase(res::kPod, "ns", "b");
  fake_.seed(res::kPod, pod("d"));
  Json a2 = pod("a");
  a2["spec"]["nodeName"] = "n2";
  fake_.seed(res::kPod, a2);
  fake_.expireWatchesBefore(fake_.resourceVersion());
  ASSERT_TRUE(advanceUntil(clock_, 100ms, [&] { return fake_.calls("list").size() >= 2; }));
  ASSERT_TRUE(eventually([&] { return handlers_.seen().size() >= 3; }));

  EXPECT_EQ(storeNames(informer_->store()), (V{"a", "c", "d"}));
  EXPECT_EQ(jsonString(*informer_->store().get("ns/a"), "/spec/nodeName"), "n2");
  // Only the differences are announced: c did not change.
  EXPECT_EQ(handlers_.seen(), (V{"update a", "add d", "delete b"}));
  // The resumed watch got a 410 ERROR event, which led to the relist.
  auto watches = fake_.calls("watch");
  ASSERT_GE(watches.size(), 2u);
  EXPECT_EQ(watches[1].resourceVersion, "3");
  // ...and the new watch starts from the new list.
  ASSERT_TRUE(eventually([&] { return fake_.calls("watch").size() >= 3; }));
  EXPECT_EQ(fake_.calls("watch")[2].resourceVersion, std::to_string(fake_.resourceVersion()));
}

TEST_F(InformerTest, ResyncReannouncesCachedObjects) {
  fake_.seed(res::kPod, pod("a"));
  start(30s);
  handlers_.clear();
  ASSERT_TRUE(advanceUntil(clock_, 1s, [&] { return !handlers_.seen().empty(); }));
  EXPECT_EQ(handlers_.seen()[0], "resync a");
}

}  // namespace
}  // namespace patchgate::runtime
