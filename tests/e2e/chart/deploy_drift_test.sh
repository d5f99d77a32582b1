#!/usr/bin/env bash
# unit (no cluster): the chart's copies of crds/ and deploy/patchgate.yaml are
# exactly what hack/render-deploy.sh makes from the sources today, and the
# rendering is what the chart promises (restricted pod, no RBAC wildcard).
# Fix a failure with: hack/render-deploy.sh
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../../.." && pwd)
source "$REPO/hack/versions.sh"
[[ -x $BIN_DIR/helm ]] || { echo "FAIL: $BIN_DIR/helm missing; run hack/build-tools.sh helm" >&2; exit 1; }
"$REPO/hack/render-deploy.sh" --check || { echo "FAIL: deploy/ or the chart's CRDs drifted from the sources" >&2; exit 1; }

D=$REPO/deploy/patchgate.yaml
fail() { echo "FAIL: deploy/patchgate.yaml: $*" >&2; exit 1; }
# The RBAC names no wildcard.
if sed -n '/^kind: \(Cluster\)\{0,1\}Role$/,/^---/p' "$D" | grep -nE "(\[|, |- )['\"]?\*['\"]?(\]|,|$)"; then
  fail "a Role or ClusterRole uses a wildcard"
fi
for want in 'runAsNonRoot: true' 'allowPrivilegeEscalation: false' 'readOnlyRootFilesystem: true' \
            'type: RuntimeDefault' '- ALL' 'path: /healthz' 'path: /readyz' 'helm.sh/resource-policy: keep' \
            'pod-security.kubernetes.io/enforce: restricted' 'kind: PodDisruptionBudget' 'replicas: 2'; do
  grep -qF -- "$want" "$D" || fail "missing '$want'"
done
for crd in "$REPO"/crds/*.yaml; do
  cmp -s "$crd" "$REPO/charts/patchgate/files/crds/$(basename "$crd")" || fail "chart copy of $(basename "$crd") differs"
done
# The optional dashboard and alerts render, from the checked files, unchanged.
source "$REPO/hack/versions.sh"
OPT=$("$BIN_DIR/helm" template t "$REPO/charts/patchgate" --kube-version "$K8S_VERSION" \
  --set metrics.grafanaDashboard.enabled=true --set metrics.prometheusRule.enabled=true)
grep -q '^kind: PrometheusRule$' <<<"$OPT" || fail "prometheusRule.enabled renders no PrometheusRule"
grep -q 'alert: PatchgateLeaderMissing' <<<"$OPT" || fail "the PrometheusRule lacks the alerts"
grep -q 'patchgate-dashboard.json: |-' <<<"$OPT" || fail "grafanaDashboard.enabled renders no dashboard ConfigMap"
grep -q '"uid": "patchgate"' <<<"$OPT" || fail "the dashboard ConfigMap lacks the dashboard"
echo "PASS: deploy/patchgate.yaml and the chart's CRDs match the sources ($(grep -c '^kind:' "$D") objects)"
