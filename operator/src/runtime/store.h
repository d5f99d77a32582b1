#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <vector>

#include "common/json.h"

namespace patchgate::runtime {

using Object = std::shared_ptr<const Json>;

// Computes index values for an object (e.g. the target a Patch names).
using IndexFunc = std::function<std::vector<std::string>(const Json&)>;

// Thread-safe local cache of objects of one kind, keyed "namespace/name",
// with secondary indexes. Objects are immutable snapshots: readers share them
// and must copy before changing anything. May be stale by the watch latency.
class Store {
 public:
  // Indexers must be added before the first write.
  void addIndexer(const std::string& name, IndexFunc fn);

  // Replaces the whole content (after a relist); returns what was there.
  std::map<std::string, Object> replace(std::vector<Json> items);
  // Inserts or replaces one object; returns the previous one (may be null).
  Object upsert(Json obj);
  // Removes by key; returns what was removed (may be null).
  Object erase(const std::string& key);

  Object get(const std::string& key) const;
  std::vector<Object> list() const;
  std::vector<Object> byIndex(const std::string& index, const std::string& value) const;
  std::vector<std::string> keys() const;
  size_t size() const;

 private:
  void indexLocked(const std::string& key, const Json& obj, bool add);

  mutable std::shared_mutex mu_;
  std::map<std::string, Object> items_;
  std::map<std::string, IndexFunc> indexers_;
  // index name -> value -> keys
  std::map<std::string, std::map<std::string, std::set<std::string>>> indexes_;
};

}  // namespace patchgate::runtime
