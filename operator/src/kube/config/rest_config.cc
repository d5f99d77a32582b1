#include "kube/config/rest_config.h"

#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace patchgate::kube {
namespace fs = std::filesystem;

absl::StatusOr<std::string> readFile(const std::string& path, size_t maxBytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::string out;
  char buf[64 * 1024];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    if (out.size() + static_cast<size_t>(in.gcount()) > maxBytes)
      return absl::InvalidArgumentError(absl::StrCat(path, " is larger than ", maxBytes, " bytes"));
    out.append(buf, static_cast<size_t>(in.gcount()));
  }
  return out;
}

absl::StatusOr<std::string> FileTokenSource::token() {
  std::lock_guard lock(mu_);
  struct stat st{};
  // Nanoseconds: a token rotated twice within a second is still noticed.
  int64_t mtime = ::stat(path_.c_str(), &st) == 0
                      ? static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec
                      : -2;
  auto now = std::chrono::steady_clock::now();
  if (cached_.empty() || mtime != mtime_ || now - readAt_ > std::chrono::minutes(1)) {
    auto text = readFile(path_);
    if (!text.ok()) {
      if (!cached_.empty()) return cached_;  // keep the last good token
      return absl::UnauthenticatedError(absl::StrCat("token file: ", text.status().message()));
    }
    cached_ = std::string(absl::StripAsciiWhitespace(*text));
    mtime_ = mtime;
    readAt_ = now;
  }
  return cached_;
}

namespace {

absl::StatusOr<std::string> defaultRead(const std::string& path) { return readFile(path); }

// A parsed kubeconfig file: named maps plus current-context, kept with the
// file they came from so that relative paths and messages are right.
struct Entry {
  YAML::Node node;
  std::string file;
};
struct Merged {
  std::map<std::string, Entry> clusters, users, contexts;
  std::string currentContext;
};

absl::Status mergeFile(const std::string& text, const std::string& file, Merged& m) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": not valid YAML: ", e.what()));
  }
  if (!root || root.IsNull()) return absl::OkStatus();
  if (!root.IsMap()) return absl::InvalidArgumentError(absl::StrCat(file, ": not a kubeconfig map"));
  auto addAll = [&](const char* key, const char* inner,
                    std::map<std::string, Entry>& out) -> absl::Status {
    YAML::Node list = root[key];
    if (!list) return absl::OkStatus();
    if (!list.IsSequence())
      return absl::InvalidArgumentError(absl::StrCat(file, ": field '", key, "' must be a list"));
    for (const auto& item : list) {
      if (!item["name"] || !item[inner]) {
        return absl::InvalidArgumentError(
            absl::StrCat(file, ": an entry of '", key, "' lacks 'name' or '", inner, "'"));
      }
      auto name = item["name"].as<std::string>();
      out.emplace(name, Entry{item[inner], file});  // first file wins
    }
    return absl::OkStatus();
  };
  try {
    if (auto s = addAll("clusters", "cluster", m.clusters); !s.ok()) return s;
    if (auto s = addAll("users", "user", m.users); !s.ok()) return s;
    if (auto s = addAll("contexts", "context", m.contexts); !s.ok()) return s;
    if (m.currentContext.empty() && root["current-context"])
      m.currentContext = root["current-context"].as<std::string>();
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": ", e.what()));
  }
  return absl::OkStatus();
}

std::string resolve(const std::string& path, const std::string& file) {
  if (path.empty() || fs::path(path).is_absolute() || file.empty() || file[0] == '<') return path;
  return (fs::path(file).parent_path() / path).string();
}

// Reads `<field>-data` (base64) or `<field>` (a path) from a node.
absl::StatusOr<std::string> pemField(const YAML::Node& node, const std::string& field,
                                     const std::string& file, const std::string& where,
                                     const FileReader& read) {
  if (node[field + "-data"]) {
    std::string decoded;
    if (!absl::Base64Unescape(node[field + "-data"].as<std::string>(), &decoded)) {
      return absl::InvalidArgumentError(
          absl::StrCat(file, ": ", where, ".", field, "-data is not valid base64"));
    }
    return decoded;
  }
  if (node[field]) {
    std::string path = resolve(node[field].as<std::string>(), file);
    auto text = read(path);
    if (!text.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(file, ": ", where, ".", field, ": cannot read '", path, "'"));
    }
    return *text;
  }
  return std::string();
}

absl::StatusOr<RestConfig> buildUnchecked(const Merged& m, const std::string& contextName,
                                          const std::string& source, const FileReader& read) {
  std::string ctxName = contextName.empty() ? m.currentContext : contextName;
  if (ctxName.empty())
    return absl::InvalidArgumentError(absl::StrCat(source, ": no current-context is set"));
  auto ctx = m.contexts.find(ctxName);
  if (ctx == m.contexts.end())
    return absl::InvalidArgumentError(absl::StrCat(source, ": context '", ctxName, "' not found"));
  const YAML::Node& c = ctx->second.node;
  std::string clusterName = c["cluster"] ? c["cluster"].as<std::string>() : "";
  auto cl = m.clusters.find(clusterName);
  if (cl == m.clusters.end()) {
    return absl::InvalidArgumentError(absl::StrCat(ctx->second.file, ": context '", ctxName,
                                                   "' names cluster '", clusterName,
                                                   "', which is not defined"));
  }
  RestConfig cfg;
  cfg.source = absl::StrCat(cl->second.file, " (context ", ctxName, ")");
  const YAML::Node& cn = cl->second.node;
  const std::string& cfile = cl->second.file;
  if (!cn["server"])
    return absl::InvalidArgumentError(
        absl::StrCat(cfile, ": cluster '", clusterName, "' has no 'server'"));
  cfg.server = std::string(absl::StripSuffix(cn["server"].as<std::string>(), "/"));
  if (cfg.server.rfind("https://", 0) != 0 && cfg.server.rfind("http://", 0) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        cfile, ": cluster '", clusterName, "'.server '", cfg.server, "' is not an http(s) URL"));
  }
  std::string where = absl::StrCat("cluster '", clusterName, "'");
  auto ca = pemField(cn, "certificate-authority", cfile, where, read);
  if (!ca.ok()) return ca.status();
  cfg.caPem = *ca;
  if (cn["insecure-skip-tls-verify"]) cfg.insecureSkipTlsVerify = cn["insecure-skip-tls-verify"].as<bool>();
  if (cn["tls-server-name"]) cfg.tlsServerName = cn["tls-server-name"].as<std::string>();
  if (c["namespace"]) cfg.defaultNamespace = c["namespace"].as<std::string>();

  std::string userName = c["user"] ? c["user"].as<std::string>() : "";
  if (!userName.empty()) {
    auto u = m.users.find(userName);
    if (u == m.users.end()) {
      return absl::InvalidArgumentError(absl::StrCat(ctx->second.file, ": context '", ctxName,
                                                     "' names user '", userName,
                                                     "', which is not defined"));
    }
    const YAML::Node& un = u->second.node;
    const std::string& ufile = u->second.file;
    std::string uwhere = absl::StrCat("user '", userName, "'");
    auto cert = pemField(un, "client-certificate", ufile, uwhere, read);
    if (!cert.ok()) return cert.status();
    auto key = pemField(un, "client-key", ufile, uwhere, read);
    if (!key.ok()) return key.status();
    if (cert->empty() != key->empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          ufile, ": ", uwhere, " has a client certificate without a key, or a key without one"));
    }
    cfg.clientCertPem = *cert;
    cfg.clientKeyPem = *key;
    if (un["token"]) {
      cfg.tokenSource = std::make_shared<StaticTokenSource>(un["token"].as<std::string>());
    } else if (un["tokenFile"]) {
      std::string path = resolve(un["tokenFile"].as<std::string>(), ufile);
      auto probe = read(path);
      if (!probe.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(ufile, ": ", uwhere, ".tokenFile: cannot read '", path, "'"));
      }
      cfg.tokenSource = std::make_shared<FileTokenSource>(path);
    }
    if (un["username"]) cfg.username = un["username"].as<std::string>();
    if (un["password"]) cfg.password = un["password"].as<std::string>();
    if (un["as"]) cfg.impersonateUser = un["as"].as<std::string>();
    if (un["exec"] || un["auth-provider"]) {
      if (!cfg.tokenSource && cfg.clientCertPem.empty()) {
        return absl::UnimplementedError(absl::StrCat(
            ufile, ": ", uwhere,
            " uses an exec or auth-provider plug-in, which patchgate does not run; use a token, "
            "a tokenFile or a client certificate"));
      }
    }
  }
  return cfg;
}

// yaml-cpp throws when a node has another shape than asked for (a user that
// is a string, a server that is a list): an error naming the file, never an
// exception (found by tests/fuzz kubeconfig_fuzzer).
absl::StatusOr<RestConfig> build(const Merged& m, const std::string& contextName,
                                 const std::string& source, const FileReader& read) {
  try {
    return buildUnchecked(m, contextName, source, read);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": not a valid kubeconfig: ", e.what()));
  }
}

}  // namespace

absl::StatusOr<RestConfig> kubeconfigFromString(const std::string& yaml, const std::string& dir,
                                                const std::string& context, const std::string& source,
                                                const FileReader& read) {
  Merged m;
  std::string file = dir.empty() ? source : (fs::path(dir) / "kubeconfig").string();
  if (auto s = mergeFile(yaml, file, m); !s.ok()) return s;
  return build(m, context, source, read ? read : FileReader(defaultRead));
}

absl::StatusOr<RestConfig> loadKubeconfig(const KubeconfigOptions& options) {
  std::vector<std::string> paths = options.paths;
  if (paths.empty()) {
    if (const char* env = std::getenv("KUBECONFIG"); env && *env) {
      for (auto p : absl::StrSplit(env, ':', absl::SkipEmpty())) paths.emplace_back(p);
    } else if (const char* home = std::getenv("HOME")) {
      paths.push_back(absl::StrCat(home, "/.kube/config"));
    }
  }
  if (paths.empty()) return absl::NotFoundError("no kubeconfig: set KUBECONFIG or use --kubeconfig");
  Merged m;
  int found = 0;
  for (const auto& p : paths) {
    auto text = readFile(p);
    if (!text.ok()) {
      if (paths.size() == 1 || !options.paths.empty())
        return absl::NotFoundError(absl::StrCat("kubeconfig ", p, ": cannot be read"));
      continue;  // missing files in KUBECONFIG are skipped, as kubectl does
    }
    ++found;
    if (auto s = mergeFile(*text, p, m); !s.ok()) return s;
  }
  if (found == 0) return absl::NotFoundError(absl::StrCat("no kubeconfig file found in ", absl::StrJoin(paths, ":")));
  return build(m, options.context, paths.front(), defaultRead);
}

absl::StatusOr<RestConfig> inClusterConfig(const InClusterPaths& paths) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (!host || !*host || !port || !*port) {
    return absl::NotFoundError(
        "not running in a cluster: KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are not set");
  }
  return inClusterConfigFrom(host, port, paths, defaultRead);
}

absl::StatusOr<RestConfig> inClusterConfigFrom(const std::string& host, const std::string& port,
                                               const InClusterPaths& paths, const FileReader& read) {
  int portNumber = 0;
  if (!absl::SimpleAtoi(port, &portNumber) || portNumber < 1 || portNumber > 65535)
    return absl::InvalidArgumentError(absl::StrCat("KUBERNETES_SERVICE_PORT is not a port: '",
                                                   port.substr(0, 64), "'"));
  // A host name or an IP address: letters, digits, '.', '-', ':' (IPv6).
  if (host.empty() || host.size() > 253 ||
      host.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:") !=
          std::string::npos)
    return absl::InvalidArgumentError(absl::StrCat("KUBERNETES_SERVICE_HOST is not a host: '",
                                                   host.substr(0, 64), "'"));
  RestConfig cfg;
  std::string h = host;
  if (h.find(':') != std::string::npos) h = absl::StrCat("[", h, "]");
  cfg.server = absl::StrCat("https://", h, ":", portNumber);
  auto ca = read(paths.caFile);
  if (!ca.ok()) return absl::NotFoundError(absl::StrCat("in-cluster CA: cannot read ", paths.caFile));
  cfg.caPem = *ca;
  auto token = read(paths.tokenFile);
  if (!token.ok())
    return absl::NotFoundError(absl::StrCat("in-cluster token: cannot read ", paths.tokenFile));
  cfg.tokenSource = std::make_shared<FileTokenSource>(paths.tokenFile);
  if (auto ns = read(paths.namespaceFile); ns.ok())
    cfg.defaultNamespace = std::string(absl::StripAsciiWhitespace(*ns));
  cfg.source = "in-cluster service account";
  return cfg;
}

absl::StatusOr<RestConfig> loadDefaultConfig(const std::string& kubeconfigPath,
                                             const std::string& context) {
  if (!kubeconfigPath.empty()) return loadKubeconfig({{kubeconfigPath}, context});
  const char* env = std::getenv("KUBECONFIG");
  const char* home = std::getenv("HOME");
  bool haveFile = (env && *env) ||
                  (home && fs::exists(absl::StrCat(home, "/.kube/config")));
  if (haveFile) return loadKubeconfig({{}, context});
  return inClusterConfig();
}

}  // namespace patchgate::kube
