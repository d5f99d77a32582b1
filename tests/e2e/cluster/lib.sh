# Helpers of the cluster e2e tests. Sourced.
# The cluster comes from $KUBECONFIG (the ctest fixture, tests/integration/
# cluster_env.sh, gives it); kubectl is the pinned one hack/ builds, the
# preinstalled one is outside the supported version skew.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
source "$REPO/hack/versions.sh"
KUBECTL=$BIN_DIR/kubectl
[[ -x $KUBECTL ]] || { echo "FAIL: $KUBECTL missing; run hack/build-tools.sh kubectl" >&2; exit 1; }
[[ -n ${KUBECONFIG:-} && -f $KUBECONFIG ]] ||
  { echo "FAIL: KUBECONFIG must name the cluster's kubeconfig (hack/cluster kubeconfig)" >&2; exit 1; }
export KUBECONFIG

TEST=$(basename "$0" .sh)
T_START=$(date +%s.%N)
T_STEP=$T_START
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1fs", b - a }'; }
k() { "$KUBECTL" --request-timeout=30s "$@"; }

step() { # description
  echo "[$TEST $(since "$T_START")] $*"
  T_STEP=$(date +%s.%N)
}
done_step() { # description
  echo "[$TEST $(since "$T_START")]   ok: $* (took $(since "$T_STEP"))"
}

# Prints what helps to understand a failure, then exits non-zero.
fail() {
  echo "FAIL [$TEST]: $*" >&2
  if [[ -n ${NS:-} ]]; then
    echo "--- state of namespace $NS ---" >&2
    k get all -n "$NS" -o wide 2>&1 | head -40 >&2 || true
    k get events -n "$NS" --sort-by=.lastTimestamp 2>&1 | tail -20 >&2 || true
  fi
  exit 1
}

# kubectl wait, with a clear message on timeout.
wait_or_fail() { # description kubectl-wait-args...
  local what=$1; shift
  k wait "$@" >/dev/null 2>&1 || fail "timed out waiting for $what (kubectl wait $*)"
}

new_namespace() { # prefix
  NS=$1-$(date +%s)-$RANDOM
  k create namespace "$NS" >/dev/null
  # Delete it whatever happens, without waiting: a failed test must not leave
  # its objects in a cluster that is reused.
  trap 'k delete namespace "$NS" --wait=false >/dev/null 2>&1 || true' EXIT
}
