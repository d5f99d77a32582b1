// Request building for label/field selectors and names (kube ClientImpl:
// ResourceType::path and the query string). The input, split at NUL bytes,
// is the namespace, name, label selector, field selector, resourceVersion and
// continue token of a get, list and watch. Properties: the path has exactly
// the segments of its resource (a namespace or name such as "a/../secrets" or
// "x?watch=1" cannot add a segment or a query), and each query value decodes
// back to what was given.
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_split.h"
#include "kube/client_impl.h"
#include "kube/resource.h"

namespace kube = patchgate::kube;

namespace {

class CapturingTransport final : public kube::Transport {
 public:
  explicit CapturingTransport(std::vector<std::string>& seen) : seen_(seen) {}
  absl::StatusOr<kube::HttpResponse> send(const kube::HttpRequest& r) override {
    seen_.push_back(r.pathAndQuery);
    return kube::HttpResponse{200, R"({"kind":"List","metadata":{},"items":[]})"};
  }
  absl::Status stream(const kube::HttpRequest& r, const std::function<bool(std::string_view)>&,
                      std::stop_token) override {
    seen_.push_back(r.pathAndQuery);
    return absl::OkStatus();
  }

 private:
  std::vector<std::string>& seen_;
};

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool unreserved(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '~';
}

// Decodes %XX; false for any byte that should have been encoded.
bool decode(std::string_view in, bool path, std::string& out) {
  out.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%') {
      if (i + 2 >= in.size()) return false;
      int hi = hexValue(in[i + 1]), lo = hexValue(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (unreserved(in[i]) || (path && in[i] == ':')) {
      out.push_back(in[i]);
    } else {
      return false;
    }
  }
  return true;
}

void check(const std::string& pathAndQuery, const std::vector<std::string>& wantSegments,
           const std::map<std::string, std::string>& wantQuery) {
  std::string_view pq = pathAndQuery;
  size_t q = pq.find('?');
  std::string_view path = pq.substr(0, q);
  if (path.empty() || path[0] != '/') __builtin_trap();
  std::vector<std::string> segs = absl::StrSplit(std::string(path.substr(1)), '/');
  if (segs.size() != wantSegments.size()) __builtin_trap();
  std::string decoded;
  for (size_t i = 0; i < segs.size(); ++i) {
    if (segs[i] == "." || segs[i] == ".." || !decode(segs[i], true, decoded)) __builtin_trap();
    if (decoded != wantSegments[i]) __builtin_trap();
  }
  std::map<std::string, std::string> got;
  if (q != std::string_view::npos) {
    for (const std::string& kvs : std::vector<std::string>(absl::StrSplit(std::string(pq.substr(q + 1)), '&'))) {
      std::string_view kv = kvs;
      size_t eq = kv.find('=');
      if (eq == std::string_view::npos || !decode(kv.substr(eq + 1), false, decoded)) __builtin_trap();
      if (!got.emplace(std::string(kv.substr(0, eq)), decoded).second) __builtin_trap();
    }
  }
  for (const auto& [k, v] : wantQuery) {
    auto it = got.find(k);
    if (v.empty() ? it != got.end() : (it == got.end() || it->second != v)) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::string> f =
      absl::StrSplit(std::string(reinterpret_cast<const char*>(data), size), absl::ByChar('\0'));
  f.resize(6);
  const std::string &ns = f[0], &name = f[1];
  std::vector<std::string> seen;
  kube::ClientImpl client(std::make_unique<CapturingTransport>(seen), "fuzz", /*qps=*/0, /*burst=*/1);

  kube::ListOptions lo;
  lo.labelSelector = f[2];
  lo.fieldSelector = f[3];
  lo.resourceVersion = f[4];
  lo.continueToken = f[5];
  lo.limit = 500;
  (void)client.list(kube::resources::kPod, ns, lo);
  kube::WatchOptions wo;
  wo.labelSelector = f[2];
  wo.fieldSelector = f[3];
  wo.resourceVersion = f[4];
  (void)client.watch(kube::resources::kPod, ns, wo, [](const kube::WatchEvent&) { return true; }, {});
  if (!name.empty()) (void)client.get(kube::resources::kPod, ns, name);
  if (seen.size() != (name.empty() ? 2u : 3u)) __builtin_trap();

  std::vector<std::string> collection = {"api", "v1"};
  if (!ns.empty()) collection.insert(collection.end(), {"namespaces", ns});
  collection.push_back("pods");
  check(seen[0], collection,
        {{"labelSelector", lo.labelSelector}, {"fieldSelector", lo.fieldSelector},
         {"resourceVersion", lo.resourceVersion}, {"continue", lo.continueToken}, {"limit", "500"}});
  check(seen[1], collection,
        {{"watch", "true"}, {"labelSelector", wo.labelSelector}, {"fieldSelector", wo.fieldSelector},
         {"resourceVersion", wo.resourceVersion}});
  if (!name.empty()) {
    std::vector<std::string> item = collection;
    item.push_back(name);
    check(seen[2], item, {});
  }
  return 0;
}
