#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "common/logging.h"

namespace patchgate::runtime {

// Something the Manager runs on a thread of its own until stopped: informers,
// controllers, servers. run() must return soon after `stop` is requested.
class Runnable {
 public:
  virtual ~Runnable() = default;
  virtual std::string name() const = 0;
  virtual void run(std::stop_token stop) = 0;
};

// A named health check for /healthz or /readyz; returns "" when fine, or why not.
using HealthCheck = std::function<std::string()>;

// Starts runnables and stops them in reverse order. Runnables added with
// needsLeader run only while this process leads (see LeaderElector): losing
// the lead stops them (each run() gets its stop and returns once its
// in-flight work ends) and the process campaigns again, keeping its caches
// and its probes; winning again starts them anew. (controller-runtime exits
// instead; through a long API-server outage that crash-loops every replica.)
class Manager {
 public:
  explicit Manager(Logger log) : log_(std::move(log)) {}
  ~Manager();

  void add(std::shared_ptr<Runnable> r, bool needsLeader = false);
  void addHealthzCheck(std::string name, HealthCheck check);
  void addReadyzCheck(std::string name, HealthCheck check);

  // Starts runnables that don't need the lead.
  void start();
  // Starts the leader-only ones (called by the elector when it wins).
  void startLeaderRunnables();
  // Stops the leader-only ones and waits for them (the lead was lost).
  void stopLeaderRunnables();
  // Requests stop and joins every thread, leader-only ones first.
  void stop();
  bool isLeader() const { return leading_; }

  // "" when all checks pass, else the failures, one per line.
  std::string healthz() const;
  std::string readyz() const;

 private:
  struct Entry {
    std::shared_ptr<Runnable> runnable;
    bool needsLeader;
    std::jthread thread;
  };
  void launch(Entry& e);
  void joinLeaderRunnables();
  static std::string runChecks(const std::vector<std::pair<std::string, HealthCheck>>& checks);

  Logger log_;
  mutable std::mutex mu_;
  std::mutex joinMu_;  // held while leader-only threads are started or joined
  std::vector<Entry> entries_;
  std::vector<std::pair<std::string, HealthCheck>> healthz_, readyz_;
  std::stop_source stop_;
  std::stop_source leaderStop_;  // a new one each time the lead is won
  std::atomic<bool> leading_{false};
  bool started_ = false;
};

}  // namespace patchgate::runtime
