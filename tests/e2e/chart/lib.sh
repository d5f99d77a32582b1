# shellcheck shell=bash disable=SC2034  # sourced: the variables are for the tests
# Helpers of the chart tests. Sourced, not run.
# Needs KUBECONFIG (the ctest fixture's cluster, or $PATCHGATE_TEST_KUBECONFIG)
# and the pinned kubectl and helm that hack/build-tools.sh builds.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
source "$REPO/hack/versions.sh"
KUBECTL=$BIN_DIR/kubectl
HELM=$BIN_DIR/helm
CHART=$REPO/charts/patchgate
for tool in "$KUBECTL" "$HELM"; do
  [[ -x $tool ]] || { echo "FAIL: $tool missing; run hack/build-tools.sh" >&2; exit 1; }
done
[[ -n ${KUBECONFIG:-} && -f $KUBECONFIG ]] ||
  { echo "FAIL: KUBECONFIG must name the cluster's kubeconfig" >&2; exit 1; }
export KUBECONFIG

TEST=$(basename "$0" .sh)
T0=$(date +%s)
say() { printf '[%s %4ds] %s\n' "$TEST" "$(( $(date +%s) - T0 ))" "$*"; }
k() { "$KUBECTL" --request-timeout=30s "$@"; }
h() { "$HELM" "$@"; }

# Called by fail() before it exits; tests set it to dump what explains a failure.
on_fail() { :; }
fail() {
  say "FAIL: $*" >&2
  on_fail >&2 || true
  exit 1
}

# A namespace whose pods must meet Pod Security "restricted" (enforced; warn
# and audit too, so that workloads get warnings at apply time).
restricted_namespace() { # name
  k create namespace "$1" >/dev/null
  k label namespace "$1" >/dev/null \
    pod-security.kubernetes.io/enforce=restricted pod-security.kubernetes.io/enforce-version=latest \
    pod-security.kubernetes.io/warn=restricted pod-security.kubernetes.io/audit=restricted
}

# Objects of crds/ applied by hand (kubectl apply -f crds/, as the Patch e2e
# stories do) are not Helm's: adopt them into release NAME in NAMESPACE the way
# Helm documents (its ownership label and annotations), so `helm install` can
# take them over instead of refusing (also when another release owned them).
adopt_crds() { # release namespace
  local obj
  for obj in crd/patches.patchgate.dev crd/patchapprovals.patchgate.dev crd/patchpolicies.patchgate.dev \
             validatingadmissionpolicy/patchgate-approval-identity \
             validatingadmissionpolicybinding/patchgate-approval-identity \
             validatingadmissionpolicy/patchgate-approval-not-author \
             validatingadmissionpolicybinding/patchgate-approval-not-author \
             validatingadmissionpolicy/patchgate-patch-author \
             validatingadmissionpolicybinding/patchgate-patch-author; do
    k get "$obj" >/dev/null 2>&1 || continue
    k label --overwrite "$obj" app.kubernetes.io/managed-by=Helm >/dev/null
    k annotate --overwrite "$obj" meta.helm.sh/release-name="$1" meta.helm.sh/release-namespace="$2" >/dev/null
  done
}

# expect_can yes|no VERB RESOURCE [kubectl auth can-i flags...]: the operator's
# ServiceAccount ($SA_USER) is allowed (yes) or refused (no) that.
CHECKS=0
expect_can() {
  local want=$1; shift
  local got
  got=$(k auth can-i --as="$SA_USER" "$@" 2>/dev/null || true)
  CHECKS=$((CHECKS + 1))
  [[ $got == "$want" ]] || fail "can-i $* as $SA_USER: expected '$want', got '$got'"
}
