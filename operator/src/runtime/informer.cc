#include "runtime/informer.h"

#include <thread>

#include "kube/resource.h"

namespace patchgate::runtime {

Informer::Informer(kube::Client& client, WatcherConfig config, Clock& clock, Random& random,
                   Logger log, Clock::Duration resyncPeriod)
    : watcher_(client, config, clock, random, log), config_(config), clock_(clock),
      log_(log), resyncPeriod_(resyncPeriod) {}

void Informer::addEventHandler(EventHandler handler) { handlers_.push_back(std::move(handler)); }

std::string Informer::name() const { return "informer/" + config_.resource.resource; }

void Informer::handle(WatcherEvent ev) {
  switch (ev.type) {
    case WatcherEvent::Type::kInit:
      pending_.clear();
      break;
    case WatcherEvent::Type::kInitApply:
      pending_.push_back(std::move(ev.object));
      break;
    case WatcherEvent::Type::kInitDone: {
      auto old = store_.replace(std::move(pending_));
      pending_.clear();
      for (const auto& key : store_.keys()) {
        Object now = store_.get(key);
        auto it = old.find(key);
        if (it == old.end()) {
          for (auto& h : handlers_)
            if (h.onAdd) h.onAdd(now);
        } else {
          if (jsonString(*it->second, "/metadata/resourceVersion") !=
              jsonString(*now, "/metadata/resourceVersion")) {
            for (auto& h : handlers_)
              if (h.onUpdate) h.onUpdate(it->second, now);
          }
          old.erase(it);
        }
      }
      for (const auto& [key, gone] : old) {
        for (auto& h : handlers_)
          if (h.onDelete) h.onDelete(gone);
      }
      if (!synced_) {
        std::lock_guard lock(syncMu_);
        synced_ = true;
        syncCv_.notify_all();
      }
      break;
    }
    case WatcherEvent::Type::kApply: {
      Object previous = store_.upsert(ev.object);
      Object now = store_.get(kube::objectKey(ev.object));
      for (auto& h : handlers_) {
        if (previous) {
          if (h.onUpdate) h.onUpdate(previous, now);
        } else if (h.onAdd) {
          h.onAdd(now);
        }
      }
      break;
    }
    case WatcherEvent::Type::kDelete: {
      Object previous = store_.erase(kube::objectKey(ev.object));
      Object last = std::make_shared<const Json>(std::move(ev.object));
      for (auto& h : handlers_)
        if (h.onDelete) h.onDelete(last);
      break;
    }
  }
}

void Informer::resyncLoop(std::stop_token stop) {
  while (sleepFor(clock_, stop, resyncPeriod_)) {
    if (!synced_) continue;
    for (const auto& obj : store_.list()) {
      for (auto& h : handlers_)
        if (h.onUpdate) h.onUpdate(obj, obj);
    }
  }
}

void Informer::run(std::stop_token stop) {
  std::jthread resync;
  if (resyncPeriod_ > Clock::Duration::zero()) {
    resync = std::jthread([this, stop] { resyncLoop(stop); });
  }
  watcher_.run(stop, [this](WatcherEvent ev) { handle(std::move(ev)); });
}

bool Informer::waitForSync(std::stop_token stop, std::chrono::milliseconds timeout) {
  std::stop_callback wake(stop, [&] {
    std::lock_guard l(syncMu_);
    syncCv_.notify_all();
  });
  std::unique_lock lock(syncMu_);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!synced_ && !stop.stop_requested() && std::chrono::steady_clock::now() < deadline) {
    syncCv_.wait_until(lock, deadline);
  }
  return synced_;
}

}  // namespace patchgate::runtime
