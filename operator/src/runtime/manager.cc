#include "runtime/manager.h"

#include "absl/strings/str_cat.h"

namespace patchgate::runtime {

Manager::~Manager() { stop(); }

void Manager::add(std::shared_ptr<Runnable> r, bool needsLeader) {
  std::lock_guard lock(mu_);
  entries_.push_back(Entry{std::move(r), needsLeader, {}});
  if (started_ && (!needsLeader || leading_)) launch(entries_.back());
}

void Manager::addHealthzCheck(std::string name, HealthCheck check) {
  std::lock_guard lock(mu_);
  healthz_.emplace_back(std::move(name), std::move(check));
}

void Manager::addReadyzCheck(std::string name, HealthCheck check) {
  std::lock_guard lock(mu_);
  readyz_.emplace_back(std::move(name), std::move(check));
}

void Manager::launch(Entry& e) {
  auto r = e.runnable;
  auto token = e.needsLeader ? leaderStop_.get_token() : stop_.get_token();
  Logger log = log_;
  e.thread = std::jthread([r, token, log] {
    log.info("starting runnable", {{"runnable", r->name()}});
    r->run(token);
    log.info("runnable stopped", {{"runnable", r->name()}});
  });
}

void Manager::start() {
  std::lock_guard lock(mu_);
  started_ = true;
  for (auto& e : entries_)
    if (!e.needsLeader && !e.thread.joinable()) launch(e);
}

void Manager::startLeaderRunnables() {
  std::lock_guard joining(joinMu_);  // not while a stop still joins the last ones
  std::lock_guard lock(mu_);
  if (stop_.stop_requested()) return;  // shutting down: too late to lead
  if (leaderStop_.stop_requested()) leaderStop_ = std::stop_source();  // led before
  leading_ = true;
  for (auto& e : entries_)
    if (e.needsLeader && !e.thread.joinable()) launch(e);
}

// Joins the leader-only threads, newest first; not under mu_ (a runnable's
// last steps may need the manager, e.g. a health check).
void Manager::joinLeaderRunnables() {
  std::lock_guard joining(joinMu_);  // the elector and main may both stop them
  std::vector<Entry*> order;
  {
    std::lock_guard lock(mu_);
    leading_ = false;
    leaderStop_.request_stop();
    for (auto it = entries_.rbegin(); it != entries_.rend(); ++it)
      if (it->needsLeader) order.push_back(&*it);
  }
  for (Entry* e : order)
    if (e->thread.joinable()) e->thread.join();
}

void Manager::stopLeaderRunnables() {
  log_.info("stopping leader-only runnables");
  joinLeaderRunnables();
}

void Manager::stop() {
  stop_.request_stop();
  joinLeaderRunnables();
  std::vector<Entry*> order;
  {
    std::lock_guard lock(mu_);
    for (auto it = entries_.rbegin(); it != entries_.rend(); ++it)
      if (!it->needsLeader) order.push_back(&*it);
  }
  for (Entry* e : order)
    if (e->thread.joinable()) e->thread.join();
}

std::string Manager::runChecks(const std::vector<std::pair<std::string, HealthCheck>>& checks) {
  std::string failures;
  for (const auto& [name, check] : checks) {
    std::string why = check();
    if (!why.empty()) absl::StrAppend(&failures, name, ": ", why, "\n");
  }
  return failures;
}

std::string Manager::healthz() const {
  std::lock_guard lock(mu_);
  return runChecks(healthz_);
}

std::string Manager::readyz() const {
  std::lock_guard lock(mu_);
  return runChecks(readyz_);
}

}  // namespace patchgate::runtime
