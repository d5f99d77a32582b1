#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "kube/config/rest_config.h"
#include "kube/transport/transport.h"

namespace patchgate::kube {

// Creates the cpprestsdk-backed Transport for `config` (TLS with the CA and
// client certificate kept in memory, bearer tokens per request).
absl::StatusOr<std::unique_ptr<Transport>> makeCpprestTransport(const RestConfig& config);

}  // namespace patchgate::kube
