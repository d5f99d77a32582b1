#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <stop_token>
#include <vector>

#include "runtime/manager.h"
#include "runtime/store.h"
#include "runtime/watcher.h"

namespace patchgate::runtime {

// Callbacks for changes seen by an Informer. They run on the informer's
// thread: keep them short (enqueue a key). `old` is null for adds.
struct EventHandler {
  std::function<void(const Object& obj)> onAdd;
  std::function<void(const Object& old, const Object& obj)> onUpdate;
  std::function<void(const Object& obj)> onDelete;
};

// A Watcher feeding a Store, with handlers. After a relist the store holds
// exactly the new snapshot, and handlers hear of each difference (objects
// deleted while disconnected included). With a resync period, every cached
// object is re-announced as an update, so level-based controllers recheck.
class Informer final : public Runnable {
 public:
  Informer(kube::Client& client, WatcherConfig config, Clock& clock, Random& random, Logger log,
           Clock::Duration resyncPeriod = Clock::Duration::zero());

  Store& store() { return store_; }
  const Store& store() const { return store_; }
  // Must be called before run().
  void addEventHandler(EventHandler handler);

  std::string name() const override;
  void run(std::stop_token stop) override;
  bool hasSynced() const { return synced_; }
  bool healthy() const { return watcher_.healthy(); }
  // Completed lists (1 after the first sync; more after 410 Gone).
  int relists() const { return watcher_.relists(); }

  // Blocks until synced or stop; returns hasSynced().
  bool waitForSync(std::stop_token stop, std::chrono::milliseconds timeout);

 private:
  void handle(WatcherEvent ev);
  void resyncLoop(std::stop_token stop);

  Store store_;
  Watcher watcher_;
  WatcherConfig config_;
  Clock& clock_;
  Logger log_;
  Clock::Duration resyncPeriod_;
  std::vector<EventHandler> handlers_;
  std::vector<Json> pending_;  // items of a relist in progress
  std::atomic<bool> synced_{false};
  std::mutex syncMu_;
  std::condition_variable_any syncCv_;
};

}  // namespace patchgate::runtime
