// Kubeconfig parsing (kube/config kubeconfigFromString) with the files it
// names served from memory: a path ending in "-missing" does not exist, any
// other path reads as a short PEM-like text. Property: an error or a config,
// never a crash or an uncaught exception. Then the in-cluster config from
// the input as KUBERNETES_SERVICE_HOST and _PORT (split at the first NUL).
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/match.h"
#include "kube/config/rest_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  patchgate::kube::FileReader read = [](const std::string& path) -> absl::StatusOr<std::string> {
    if (absl::EndsWith(path, "-missing")) return absl::NotFoundError("cannot read " + path);
    return "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
  };
  for (const char* context : {"", "kind-pg"}) {
    (void)patchgate::kube::kubeconfigFromString(text, "/home/u/.kube", context, "<fuzz>", read);
  }
  const size_t nul = text.find('\0');
  const std::string host = text.substr(0, nul), port = nul == std::string::npos ? "443" : text.substr(nul + 1);
  auto cfg = patchgate::kube::inClusterConfigFrom(host, port, {}, read);
  if (cfg.ok() && cfg->server.find_first_of(" \t\r\n") != std::string::npos) __builtin_trap();
  return 0;
}
