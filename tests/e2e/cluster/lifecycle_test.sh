#!/usr/bin/env bash
# e2e, self-contained: starts a cluster of its own, runs the mode's test,
# tears the cluster down and checks that nothing is left.
# Usage: tests/e2e/cluster/lifecycle_test.sh kwok|real [NAME]
# (real mode needs root; the default NAME is pg-e2e-<mode>-lifecycle)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
MODE=${1:?usage: $0 kwok|real [NAME]}
NAME=${2:-pg-e2e-$MODE-lifecycle}
args=(--name "$NAME" --mode "$MODE")
[[ $MODE == kwok ]] && args+=(--nodes 10)

t0=$(date +%s)
KUBECONFIG=$("$REPO/hack/cluster" up "${args[@]}") || { "$REPO/hack/cluster" down --name "$NAME" || true; exit 1; }
echo "[lifecycle $MODE] up in $(( $(date +%s) - t0 ))s"
rc=0
KUBECONFIG=$KUBECONFIG "$HERE/${MODE}_mode_test.sh" || rc=$?
t1=$(date +%s)
"$REPO/hack/cluster" down --name "$NAME" || rc=1
echo "[lifecycle $MODE] down in $(( $(date +%s) - t1 ))s"
"$HERE/check_down_clean.sh" "$NAME" || rc=1
exit $rc
