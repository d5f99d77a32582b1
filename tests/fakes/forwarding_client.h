#pragma once

// A kube::Client that passes every call to another one. Tests derive from it
// and override only the calls they intercept (answering reviews, slipping in
// another writer's change, ...).

#include <functional>
#include <stop_token>
#include <string>

#include "kube/client.h"

namespace patchgate::testing {

class ForwardingClient : public kube::Client {
 public:
  explicit ForwardingClient(kube::Client& next) : next_(next) {}

  absl::StatusOr<Json> get(const kube::ResourceType& rt, const std::string& ns, const std::string& n) override {
    return next_.get(rt, ns, n);
  }
  absl::StatusOr<Json> list(const kube::ResourceType& rt, const std::string& ns,
                            const kube::ListOptions& o) override {
    return next_.list(rt, ns, o);
  }
  absl::StatusOr<Json> create(const kube::ResourceType& rt, const std::string& ns, const Json& obj,
                              const kube::WriteOptions& o) override {
    return next_.create(rt, ns, obj, o);
  }
  absl::StatusOr<Json> update(const kube::ResourceType& rt, const std::string& ns, const Json& obj,
                              const kube::WriteOptions& o) override {
    return next_.update(rt, ns, obj, o);
  }
  absl::StatusOr<Json> updateStatus(const kube::ResourceType& rt, const std::string& ns, const Json& obj,
                                    const kube::WriteOptions& o) override {
    return next_.updateStatus(rt, ns, obj, o);
  }
  absl::StatusOr<Json> patch(const kube::ResourceType& rt, const std::string& ns, const std::string& n,
                             kube::PatchType t, const std::string& b, const kube::PatchOptions& o) override {
    return next_.patch(rt, ns, n, t, b, o);
  }
  absl::StatusOr<Json> remove(const kube::ResourceType& rt, const std::string& ns, const std::string& n,
                              const kube::DeleteOptions& o) override {
    return next_.remove(rt, ns, n, o);
  }
  absl::Status watch(const kube::ResourceType& rt, const std::string& ns, const kube::WatchOptions& o,
                     const std::function<bool(const kube::WatchEvent&)>& f, std::stop_token s) override {
    return next_.watch(rt, ns, o, f, s);
  }

 protected:
  kube::Client& next_;
};

}  // namespace patchgate::testing
