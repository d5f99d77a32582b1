#include "operator_setup.h"

namespace patchgate {

absl::Status setupOperator(runtime::Manager& manager, kube::Client& client, Clock& clock,
                           Random& random, metrics::Metrics& metrics, const Logger& log,
                           const OperatorOptions& options) {
  if (options.workers < 1) return absl::InvalidArgumentError("--workers must be at least 1");
  // The process is alive as long as main's threads are; controllers add
  // their own checks as they are registered.
  manager.addHealthzCheck("ping", [] { return std::string(); });
  manager.addReadyzCheck("ping", [] { return std::string(); });
  return absl::OkStatus();
}

}  // namespace patchgate
