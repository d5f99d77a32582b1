#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <queue>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "runtime/rate_limiter.h"

namespace patchgate::runtime {

// Observes a queue for metrics (workqueue_* series). All methods are called
// with no queue lock held. Default: no-op.
class QueueMetrics {
 public:
  virtual ~QueueMetrics() = default;
  virtual void add() {}
  virtual void depth(int64_t) {}
  virtual void queueDuration(double /*seconds*/) {}
  virtual void workDuration(double /*seconds*/) {}
  virtual void retry() {}
  virtual void unfinishedWork(double /*seconds*/, double /*longestSeconds*/) {}
};

// The controller work queue, with client-go's semantics:
// - an item is queued at most once ("dirty" set), however often it is added;
// - an item being processed (between get() and done()) is never handed to a
//   second worker; adds meanwhile re-queue it once done() is called;
// - addAfter() delays an add; addRateLimited() delays by the rate limiter;
//   forget() resets its backoff.
// Thread-safe. get() blocks until an item is ready or the queue shuts down.
class WorkQueue {
 public:
  WorkQueue(std::string name, Clock& clock, std::unique_ptr<RateLimiter> limiter,
            QueueMetrics* metrics = nullptr);
  ~WorkQueue();

  void add(const std::string& item);
  void addAfter(const std::string& item, Clock::Duration delay);
  void addRateLimited(const std::string& item);
  void forget(const std::string& item);
  int numRequeues(const std::string& item);

  // Next item; nullopt once shut down and (for shutDownWithDrain) drained.
  std::optional<std::string> get();
  void done(const std::string& item);

  void shutDown();
  // Takes items again after shutDown() (a controller that lost the lead and
  // won it back), once every get() has returned: items added before the
  // shutdown and not yet processed are queued again.
  void restart();
  bool shuttingDown() const;
  size_t len() const;          // ready items
  size_t waitingLen() const;   // delayed items not yet ready
  const std::string& name() const { return name_; }

 private:
  void addLocked(const std::string& item, std::vector<std::function<void()>>& after);
  void promoteReadyLocked(std::vector<std::function<void()>>& after);

  struct Waiting {
    Clock::TimePoint readyAt;
    uint64_t seq;
    std::string item;
    bool operator>(const Waiting& o) const {
      return readyAt != o.readyAt ? readyAt > o.readyAt : seq > o.seq;
    }
  };

  std::string name_;
  Clock& clock_;
  std::unique_ptr<RateLimiter> limiter_;
  QueueMetrics defaultMetrics_;
  QueueMetrics* metrics_;

  mutable std::mutex mu_;
  std::condition_variable_any cv_;
  std::deque<std::string> queue_;
  std::set<std::string> dirty_;
  std::set<std::string> processing_;
  std::map<std::string, Clock::TimePoint> addedAt_;
  std::map<std::string, Clock::TimePoint> startedAt_;
  std::priority_queue<Waiting, std::vector<Waiting>, std::greater<>> waiting_;
  std::map<std::string, Clock::TimePoint> waitingReadyAt_;  // earliest per item
  uint64_t seq_ = 0;
  bool shuttingDown_ = false;
};

}  // namespace patchgate::runtime
