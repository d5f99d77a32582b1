#!/usr/bin/env bash
# Keeps the chart and the plain install manifests in step with the sources:
#
#   1. copies crds/*.yaml (the CRDs and admission policies) into
#      charts/patchgate/files/crds/, which the chart's templates read;
#   2. renders deploy/patchgate.yaml from the chart with its default values
#      (release "patchgate" in namespace patchgate-system, which the file also
#      creates, with Pod Security "restricted" enforced), so that
#      `kubectl apply --server-side -f deploy/patchgate.yaml` installs patchgate.
#
# Usage: hack/render-deploy.sh           write both
#        hack/render-deploy.sh --check   write nothing; exit 1 and show a diff
#                                        when either is out of date
# Needs helm from hack/build-tools.sh ($PATCHGATE_CACHE/bin/helm).
set -euo pipefail
HACK=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
REPO=$(cd "$HACK/.." && pwd)
source "$HACK/versions.sh"
source "$HACK/lib/common.sh"
hack_fail_loudly render-deploy   # any failure ends with a message naming the command
HELM=${HELM:-$BIN_DIR/helm}
CHART=$REPO/charts/patchgate
OUT=$REPO/deploy/patchgate.yaml
NAMESPACE=patchgate-system
K8S_FOR_RENDER=${K8S_VERSION}   # helm template checks the chart's kubeVersion against this

check=false
[[ ${1:-} == --check ]] && check=true
[[ -x $HELM ]] || { echo "render-deploy: $HELM missing; run hack/build-tools.sh" >&2; exit 1; }

render() { # chart-dir -> stdout
  cat <<EOF
# patchgate: plain install manifests, rendered from charts/patchgate by
# hack/render-deploy.sh with the chart's default values. Do not edit by hand.
#
#   kubectl apply --server-side -f deploy/patchgate.yaml
#
# Uninstall: NOT "kubectl delete -f" on this file, which would delete the CRDs
# and with them every Patch; see charts/patchgate/README.md, "Uninstall".
apiVersion: v1
kind: Namespace
metadata:
  name: $NAMESPACE
  labels:
    app.kubernetes.io/part-of: patchgate
    pod-security.kubernetes.io/enforce: restricted
    pod-security.kubernetes.io/enforce-version: latest
EOF
  "$HELM" template patchgate "$1" --namespace "$NAMESPACE" --kube-version "$K8S_FOR_RENDER"
}

rc=0
if $check; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  # Render from a copy of the chart holding the CRDs as they are in crds/.
  cp -r "$CHART" "$tmp/chart"
  rm -f "$tmp/chart/files/crds/"*.yaml
  cp "$REPO"/crds/*.yaml "$tmp/chart/files/crds/"
  if ! diff -r "$REPO/crds" "$CHART/files/crds"; then
    echo "render-deploy: charts/patchgate/files/crds differs from crds/ (run hack/render-deploy.sh)" >&2
    rc=1
  fi
  render "$tmp/chart" > "$tmp/patchgate.yaml"
  if ! diff -u "$OUT" "$tmp/patchgate.yaml"; then
    echo "render-deploy: deploy/patchgate.yaml is not what the chart renders (run hack/render-deploy.sh)" >&2
    rc=1
  fi
  ((rc == 0)) && echo "render-deploy: chart CRDs and deploy/patchgate.yaml are up to date" >&2
  exit $rc
fi

rm -f "$CHART/files/crds/"*.yaml
mkdir -p "$CHART/files/crds"
cp "$REPO"/crds/*.yaml "$CHART/files/crds/"
render "$CHART" > "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "render-deploy: wrote charts/patchgate/files/crds/ and deploy/patchgate.yaml ($(grep -c '^kind:' "$OUT") objects)" >&2
