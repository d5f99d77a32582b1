#include "runtime/store.h"

#include "kube/resource.h"

namespace patchgate::runtime {

void Store::addIndexer(const std::string& name, IndexFunc fn) {
  std::unique_lock lock(mu_);
  indexers_[name] = std::move(fn);
  for (const auto& [key, obj] : items_) {
    for (const auto& v : indexers_[name](*obj)) indexes_[name][v].insert(key);
  }
}

void Store::indexLocked(const std::string& key, const Json& obj, bool add) {
  for (const auto& [name, fn] : indexers_) {
    for (const auto& v : fn(obj)) {
      auto& keys = indexes_[name][v];
      if (add) {
        keys.insert(key);
      } else {
        keys.erase(key);
        if (keys.empty()) indexes_[name].erase(v);
      }
    }
  }
}

std::map<std::string, Object> Store::replace(std::vector<Json> items) {
  std::unique_lock lock(mu_);
  std::map<std::string, Object> old = std::move(items_);
  items_.clear();
  indexes_.clear();
  for (auto& item : items) {
    std::string key = kube::objectKey(item);
    auto obj = std::make_shared<const Json>(std::move(item));
    indexLocked(key, *obj, true);
    items_[key] = std::move(obj);
  }
  return old;
}

Object Store::upsert(Json obj) {
  std::unique_lock lock(mu_);
  std::string key = kube::objectKey(obj);
  Object previous;
  if (auto it = items_.find(key); it != items_.end()) {
    previous = it->second;
    indexLocked(key, *previous, false);
  }
  auto ptr = std::make_shared<const Json>(std::move(obj));
  indexLocked(key, *ptr, true);
  items_[key] = std::move(ptr);
  return previous;
}

Object Store::erase(const std::string& key) {
  std::unique_lock lock(mu_);
  auto it = items_.find(key);
  if (it == items_.end()) return nullptr;
  Object previous = it->second;
  indexLocked(key, *previous, false);
  items_.erase(it);
  return previous;
}

Object Store::get(const std::string& key) const {
  std::shared_lock lock(mu_);
  auto it = items_.find(key);
  return it == items_.end() ? nullptr : it->second;
}

std::vector<Object> Store::list() const {
  std::shared_lock lock(mu_);
  std::vector<Object> out;
  out.reserve(items_.size());
  for (const auto& [_, obj] : items_) out.push_back(obj);
  return out;
}

std::vector<Object> Store::byIndex(const std::string& index, const std::string& value) const {
  std::shared_lock lock(mu_);
  std::vector<Object> out;
  auto idx = indexes_.find(index);
  if (idx == indexes_.end()) return out;
  auto keys = idx->second.find(value);
  if (keys == idx->second.end()) return out;
  for (const auto& k : keys->second) {
    if (auto it = items_.find(k); it != items_.end()) out.push_back(it->second);
  }
  return out;
}

std::vector<std::string> Store::keys() const {
  std::shared_lock lock(mu_);
  std::vector<std::string> out;
  for (const auto& [k, _] : items_) out.push_back(k);
  return out;
}

size_t Store::size() const {
  std::shared_lock lock(mu_);
  return items_.size();
}

}  // namespace patchgate::runtime
