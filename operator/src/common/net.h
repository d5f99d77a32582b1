#pragma once

#include <arpa/inet.h>

#include <string>

namespace patchgate {

// 4 or 6 for an IPv4 or IPv6 literal (no brackets), 0 for anything else, such
// as a host name.
inline int ipVersion(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  if (inet_pton(AF_INET, host.c_str(), buf) == 1) return 4;
  if (inet_pton(AF_INET6, host.c_str(), buf) == 1) return 6;
  return 0;
}

}  // namespace patchgate
