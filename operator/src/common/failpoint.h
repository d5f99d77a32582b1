#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace patchgate {

// Crash points for restart tests, in the spirit of etcd's gofail: when
// PATCHGATE_FAILPOINTS (comma-separated) names this point, the process exits
// at once, as a SIGKILL or a node loss would stop it. Never set in production.
inline void failpoint(std::string_view name) {
  static const std::string enabled = [] {
    const char* v = std::getenv("PATCHGATE_FAILPOINTS");
    return v ? "," + std::string(v) + "," : std::string();
  }();
  if (enabled.empty()) return;
  if (enabled.find("," + std::string(name) + ",") == std::string::npos) return;
  std::fprintf(stderr, "{\"level\":\"error\",\"msg\":\"failpoint hit; exiting\",\"failpoint\":\"%.*s\"}\n",
               static_cast<int>(name.size()), name.data());
  std::fflush(stderr);
  std::_Exit(3);
}

}  // namespace patchgate
