#pragma once

#include <string>

#include "absl/status/status.h"
#include "common/clock.h"
#include "common/logging.h"
#include "common/random.h"
#include "controllers/patch/reconciler.h"
#include "kube/client.h"
#include "metrics/metrics.h"
#include "runtime/informer.h"
#include "runtime/manager.h"

namespace patchgate {

struct OperatorOptions {
  int workers = 2;
  std::string watchNamespaces;  // comma-separated; empty = all
  std::string identity;
  controllers::patch::PatchReconcilerOptions::TestApi testApi;
};

// Adds the informers and controllers of the operator to `manager`, with their
// health and readiness checks. Controllers run only on the leader; informers
// run on every replica so that a new leader starts with warm caches.
// `patchInformer`, when given, receives the Patch informer (for the gRPC API,
// which reads the same cache; add its event handlers before manager.start()).
absl::Status setupOperator(runtime::Manager& manager, kube::Client& client, Clock& clock,
                           Random& random, metrics::Metrics& metrics, const Logger& log,
                           const OperatorOptions& options,
                           std::shared_ptr<runtime::Informer>* patchInformer = nullptr);

}  // namespace patchgate
