#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace patchgate::kube {

// Supplies the bearer token for each request. A token read from a file is
// re-read when the file changes (projected service-account tokens rotate).
class TokenSource {
 public:
  virtual ~TokenSource() = default;
  virtual absl::StatusOr<std::string> token() = 0;
};

class StaticTokenSource final : public TokenSource {
 public:
  explicit StaticTokenSource(std::string token) : token_(std::move(token)) {}
  absl::StatusOr<std::string> token() override { return token_; }

 private:
  std::string token_;
};

// Re-reads the file at most once a minute, or at once when its mtime changed.
class FileTokenSource final : public TokenSource {
 public:
  explicit FileTokenSource(std::string path) : path_(std::move(path)) {}
  absl::StatusOr<std::string> token() override;

 private:
  std::mutex mu_;
  std::string path_;
  std::string cached_;
  std::chrono::steady_clock::time_point readAt_{};
  int64_t mtime_ = -1;
};

// Everything needed to talk to one API server: where, how to trust it, who we
// are. PEM material is held in memory (the TLS callback runs per connection).
struct RestConfig {
  std::string server;             // https://127.0.0.1:6443
  std::string caPem;              // empty: system trust store
  bool insecureSkipTlsVerify = false;
  std::string tlsServerName;
  std::string clientCertPem;      // client-certificate authentication
  std::string clientKeyPem;
  std::shared_ptr<TokenSource> tokenSource;  // bearer authentication, may be null
  std::string username, password;            // basic auth, rarely used
  std::string impersonateUser;
  std::string defaultNamespace = "default";
  std::string userAgent = "patchgate";
  std::string source;             // where it came from, for messages
  double qps = 50;                // client-side rate limit
  int burst = 100;
};

struct KubeconfigOptions {
  std::vector<std::string> paths;  // empty: $KUBECONFIG, then ~/.kube/config
  std::string context;             // empty: current-context
};

// Loads a kubeconfig (several files are merged as kubectl does: the first file
// to set a map entry or current-context wins). Errors name the file and field.
absl::StatusOr<RestConfig> loadKubeconfig(const KubeconfigOptions& options = {});

// Reads a file a kubeconfig names (CA, client certificate and key, token
// file). A seam so that the parsing can be tested and fuzzed without a disk.
using FileReader = std::function<absl::StatusOr<std::string>(const std::string& path)>;

// Parses one kubeconfig document; `dir` resolves relative file paths, which
// `read` reads (default: readFile).
absl::StatusOr<RestConfig> kubeconfigFromString(const std::string& yaml, const std::string& dir,
                                                const std::string& context = {},
                                                const std::string& source = "<string>",
                                                const FileReader& read = {});

struct InClusterPaths {
  std::string tokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token";
  std::string caFile = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
  std::string namespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";
};

// In-cluster config from KUBERNETES_SERVICE_HOST/PORT and the mounted
// service-account token (re-read on rotation) and CA.
absl::StatusOr<RestConfig> inClusterConfig(const InClusterPaths& paths = {});

// The same from the given KUBERNETES_SERVICE_HOST and _PORT values, reading
// the CA and namespace files with `read`. InvalidArgument for a host or port
// that cannot make a URL.
absl::StatusOr<RestConfig> inClusterConfigFrom(const std::string& host, const std::string& port,
                                               const InClusterPaths& paths, const FileReader& read);

// The usual order: an explicit kubeconfig path, else $KUBECONFIG or
// ~/.kube/config if present, else in-cluster.
absl::StatusOr<RestConfig> loadDefaultConfig(const std::string& kubeconfigPath = {},
                                             const std::string& context = {});

// Kubeconfigs, PEM files and tokens are small; a bigger file (or a device
// such as /dev/zero named by mistake) is refused, not read without end.
inline constexpr size_t kMaxConfigFileBytes = 16 << 20;

// The whole file; NotFound when it cannot be opened, InvalidArgument when it
// is larger than `maxBytes`.
absl::StatusOr<std::string> readFile(const std::string& path, size_t maxBytes = kMaxConfigFileBytes);

}  // namespace patchgate::kube
