#include "runtime/workqueue.h"

namespace patchgate::runtime {

WorkQueue::WorkQueue(std::string name, Clock& clock, std::unique_ptr<RateLimiter> limiter,
                     QueueMetrics* metrics)
    : name_(std::move(name)), clock_(clock), limiter_(std::move(limiter)),
      metrics_(metrics ? metrics : &defaultMetrics_) {}

WorkQueue::~WorkQueue() { shutDown(); }

void WorkQueue::addLocked(const std::string& item, std::vector<std::function<void()>>& after) {
  if (shuttingDown_) return;
  if (dirty_.count(item)) return;
  after.push_back([m = metrics_] { m->add(); });
  dirty_.insert(item);
  addedAt_.emplace(item, clock_.now());
  if (processing_.count(item)) return;  // re-queued by done()
  queue_.push_back(item);
  after.push_back([m = metrics_, d = static_cast<int64_t>(queue_.size())] { m->depth(d); });
  cv_.notify_one();
}

void WorkQueue::add(const std::string& item) {
  std::vector<std::function<void()>> after;
  {
    std::lock_guard lock(mu_);
    addLocked(item, after);
  }
  for (auto& f : after) f();
}

void WorkQueue::addAfter(const std::string& item, Clock::Duration delay) {
  if (delay <= Clock::Duration::zero()) {
    add(item);
    return;
  }
  std::lock_guard lock(mu_);
  if (shuttingDown_) return;
  auto readyAt = clock_.now() + delay;
  auto it = waitingReadyAt_.find(item);
  if (it != waitingReadyAt_.end() && it->second <= readyAt) return;  // an earlier one is pending
  waitingReadyAt_[item] = readyAt;
  waiting_.push(Waiting{readyAt, seq_++, item});
  cv_.notify_all();  // a getter may need to wake earlier
}

void WorkQueue::addRateLimited(const std::string& item) {
  metrics_->retry();
  addAfter(item, limiter_->when(item));
}

void WorkQueue::forget(const std::string& item) { limiter_->forget(item); }
int WorkQueue::numRequeues(const std::string& item) { return limiter_->numRequeues(item); }

void WorkQueue::promoteReadyLocked(std::vector<std::function<void()>>& after) {
  auto now = clock_.now();
  while (!waiting_.empty() && waiting_.top().readyAt <= now) {
    Waiting w = waiting_.top();
    waiting_.pop();
    auto it = waitingReadyAt_.find(w.item);
    if (it == waitingReadyAt_.end() || it->second != w.readyAt) continue;  // superseded
    waitingReadyAt_.erase(it);
    addLocked(w.item, after);
  }
}

std::optional<std::string> WorkQueue::get() {
  std::vector<std::function<void()>> after;
  std::optional<std::string> out;
  {
    std::unique_lock lock(mu_);
    while (true) {
      promoteReadyLocked(after);
      if (!queue_.empty() || shuttingDown_) break;
      if (waiting_.empty()) {
        cv_.wait(lock);
      } else {
        clock_.waitUntil(cv_, lock, waiting_.top().readyAt);
      }
    }
    if (!queue_.empty() && !shuttingDown_) {
      out = queue_.front();
      queue_.pop_front();
      processing_.insert(*out);
      dirty_.erase(*out);
      auto now = clock_.now();
      double queued = 0;
      if (auto it = addedAt_.find(*out); it != addedAt_.end()) {
        queued = std::chrono::duration<double>(now - it->second).count();
        addedAt_.erase(it);
      }
      startedAt_[*out] = now;
      after.push_back([m = metrics_, queued, d = static_cast<int64_t>(queue_.size())] {
        m->queueDuration(queued);
        m->depth(d);
      });
    }
  }
  for (auto& f : after) f();
  return out;
}

void WorkQueue::done(const std::string& item) {
  double worked = 0;
  {
    std::lock_guard lock(mu_);
    processing_.erase(item);
    if (auto it = startedAt_.find(item); it != startedAt_.end()) {
      worked = std::chrono::duration<double>(clock_.now() - it->second).count();
      startedAt_.erase(it);
    }
    if (dirty_.count(item) && !shuttingDown_) {
      queue_.push_back(item);
      cv_.notify_one();
    }
  }
  metrics_->workDuration(worked);
}

void WorkQueue::shutDown() {
  std::lock_guard lock(mu_);
  shuttingDown_ = true;
  cv_.notify_all();
}

void WorkQueue::restart() {
  std::lock_guard lock(mu_);
  if (!shuttingDown_) return;
  shuttingDown_ = false;
  // done() during the shutdown left its re-adds dirty but unqueued.
  std::set<std::string> queued(queue_.begin(), queue_.end());
  for (const auto& item : dirty_)
    if (!queued.count(item) && !processing_.count(item)) queue_.push_back(item);
  cv_.notify_all();
}

bool WorkQueue::shuttingDown() const {
  std::lock_guard lock(mu_);
  return shuttingDown_;
}

size_t WorkQueue::len() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

size_t WorkQueue::waitingLen() const {
  std::lock_guard lock(mu_);
  return waitingReadyAt_.size();
}

}  // namespace patchgate::runtime
