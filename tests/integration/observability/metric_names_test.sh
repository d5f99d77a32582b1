#!/usr/bin/env bash
# Takes one Patch through its life with the operator on the integration
# cluster (kwok: test Jobs complete at once), scrapes /metrics, and checks the
# chart's dashboard and alert rules against what the operator exports.
# Usage: metric_names_test.sh OPERATOR_BINARY
OPERATOR=${1:?usage: $0 OPERATOR_BINARY}
source "$(dirname "$0")/../../e2e/patch/lib.sh"
KUBECONFIG=${PATCHGATE_TEST_KUBECONFIG:-$("$ROOT/hack/cluster" kubeconfig --name "${PATCHGATE_TEST_CLUSTER:-pg-integration}")}
export KUBECONFIG
k apply -f "$ROOT/crds/" >/dev/null
k wait --for=condition=Established crd/patches.patchgate.dev --timeout=60s >/dev/null
setup_app metrics-names
start_operator
patch_yaml fix v2 "$(smoke_test v2)" | k apply -f - >/dev/null
wait_phase fix 180 Succeeded Failed RolledBack
port=$(grep -m1 '"serving metrics"' "$WORK/operator.log" | sed 's/.*"port":\([0-9]*\).*/\1/')
curl -sf "http://127.0.0.1:$port/metrics" > "$WORK/metrics.txt" || fail "cannot scrape /metrics"
python3 "$(dirname "$0")/check_metric_names.py" "$WORK/metrics.txt" \
  "$ROOT/charts/patchgate/files/patchgate-dashboard.json" "$ROOT/charts/patchgate/files/prometheus-rules.yaml" ||
  fail "dashboard or alert rules name metrics the operator does not export"
