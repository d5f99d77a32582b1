#!/usr/bin/env bash
# e2e (kwok mode is enough: nothing here needs a container to run):
#   1. helm lint is clean, default and narrowed; the values schema refuses bad values;
#   2. `helm template | kubectl apply --dry-run=server` is clean (no error, no
#      warning) into a namespace that enforces Pod Security "restricted";
#   3. the operator's pod passes "restricted" admission (a Pod made from the
#      Deployment's template, server dry run), and a weakened copy does not;
#   4. helm install (watchNamespaces narrowed to one namespace): both replicas
#      are admitted in the restricted namespace and become Ready (kwok);
#      `kubectl auth can-i --as=<the operator's ServiceAccount>` proves what it
#      may do and what it may not (secrets elsewhere, wildcards, nodes,
#      cluster-admin verbs);
#   5. helm upgrade to cluster-wide (watchNamespaces=[]) widens exactly the
#      Patch rights; helm uninstall leaves the CRDs.
# Usage: KUBECONFIG=<kubeconfig> tests/e2e/chart/chart_static_test.sh
source "$(dirname "$0")/lib.sh"

RELEASE=pg-static
FULL=$RELEASE-patchgate
suffix=$(date +%s)-$RANDOM
NS=pg-chart-$suffix            # the release namespace (restricted)
PROD=pg-chart-prod-$suffix      # the one namespace patchgate may act in when narrowed
OTHER=pg-chart-other-$suffix    # a namespace it must not read
SA_USER=system:serviceaccount:$NS:$FULL
WORK=$(mktemp -d)
KVER=$(k get --raw /version | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p')

cleanup() {
  h uninstall "$RELEASE" -n "$NS" --wait --timeout 60s >/dev/null 2>&1 || true
  for n in "$NS" "$PROD" "$OTHER"; do k delete namespace "$n" --wait=false >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
on_fail() {
  k get all -n "$NS" -o wide 2>&1 | head -30
  k get events -n "$NS" --sort-by=.lastTimestamp 2>&1 | tail -20
}

say "1. helm lint and the values schema"
h lint "$CHART" >"$WORK/lint" 2>&1 || { cat "$WORK/lint"; fail "helm lint"; }
grep -qE '\[(WARNING|ERROR)\]' "$WORK/lint" && { cat "$WORK/lint"; fail "helm lint warns"; }
h lint "$CHART" --set "watchNamespaces={$PROD}" --set metrics.serviceMonitor.enabled=true >/dev/null 2>&1 ||
  fail "helm lint (narrowed, ServiceMonitor)"
for bad in operator.logLevel=loud 'watchNamespaces={a,b}' replicaCount=-1 image.pullPolicy=Sometimes unknownKey=1; do
  if h template x "$CHART" --kube-version "$KVER" --set "$bad" >/dev/null 2>&1; then
    fail "the schema accepts --set $bad"
  fi
done
say "   ok: lint clean; the schema refuses 5 bad values"

say "2. helm template | kubectl apply --server-side --dry-run=server, into a restricted namespace"
restricted_namespace "$NS"
k create namespace "$PROD" >/dev/null
k create namespace "$OTHER" >/dev/null
for variant in cluster-wide narrowed; do
  args=(); [[ $variant == narrowed ]] && args=(--set "watchNamespaces={$PROD}")
  h template "$RELEASE" "$CHART" -n "$NS" --kube-version "$KVER" "${args[@]}" > "$WORK/$variant.yaml"
  if ! k apply --server-side --force-conflicts --field-manager=chart-test --dry-run=server -f "$WORK/$variant.yaml" >"$WORK/apply.out" 2>"$WORK/apply.err"; then
    cat "$WORK/apply.err"; fail "server dry run of the $variant rendering failed"
  fi
  if [[ -s $WORK/apply.err ]]; then cat "$WORK/apply.err"; fail "server dry run of the $variant rendering warned"; fi
  say "   ok: $variant: $(wc -l < "$WORK/apply.out") objects, no error, no warning"
done

say "3. the pod passes Pod Security 'restricted' admission"
h template "$RELEASE" "$CHART" -n "$NS" --kube-version "$KVER" --show-only templates/deployment.yaml > "$WORK/deploy.yaml"
spec=$(k create --dry-run=client -f "$WORK/deploy.yaml" -o jsonpath='{.spec.template.spec}')
labels=$(k create --dry-run=client -f "$WORK/deploy.yaml" -o jsonpath='{.spec.template.metadata.labels}')
[[ $spec == *'"allowPrivilegeEscalation":false'* ]] || fail "unexpected pod spec JSON: $spec"
k create serviceaccount -n "$NS" "$FULL" >/dev/null   # admission looks it up; helm makes it later
pod() { printf '{"apiVersion":"v1","kind":"Pod","metadata":{"name":"psa-check","labels":%s},"spec":%s}' "$labels" "$1"; }
pod "$spec" | k create -n "$NS" --dry-run=server -f - >/dev/null 2>"$WORK/psa.err" ||
  { cat "$WORK/psa.err"; fail "the operator pod is refused in a restricted namespace"; }
# The check can fail: the same pod allowed to escalate privileges is refused.
if pod "${spec//\"allowPrivilegeEscalation\":false/\"allowPrivilegeEscalation\":true}" |
   k create -n "$NS" --dry-run=server -f - >/dev/null 2>"$WORK/psa.err"; then
  fail "a pod with allowPrivilegeEscalation=true was admitted: the namespace does not enforce restricted"
fi
grep -q 'violates PodSecurity "restricted' "$WORK/psa.err" || { cat "$WORK/psa.err"; fail "refused, but not by Pod Security"; }
k delete serviceaccount -n "$NS" "$FULL" >/dev/null
say "   ok: admitted; a weakened copy is refused: $(head -c 120 "$WORK/psa.err")..."

say "4. helm install, narrowed to namespace $PROD"
adopt_crds "$RELEASE" "$NS"
h install "$RELEASE" "$CHART" -n "$NS" --set "watchNamespaces={$PROD}" --wait --timeout 120s >"$WORK/install" 2>&1 ||
  { cat "$WORK/install"; fail "helm install"; }
ready=$(k get deploy -n "$NS" "$FULL" -o jsonpath='{.status.readyReplicas}')
[[ $ready == 2 ]] || fail "expected 2 ready replicas, got '$ready'"
k get deploy -n "$NS" "$FULL" -o jsonpath='{.spec.template.spec.containers[0].args}' | grep -q -- "--watch-namespaces=$PROD" ||
  fail "the operator is not told to watch only $PROD"
say "   ok: 2/2 pods admitted and Ready in the restricted namespace"

# What the Patch lifecycle needs, in the namespace it acts in.
allowed_in_prod() {
  local v r
  for v in get list watch update patch; do expect_can yes "$v" patches.patchgate.dev -n "$PROD"; done
  expect_can yes update patches.patchgate.dev --subresource=status -n "$PROD"
  for v in get list watch; do expect_can yes "$v" patchapprovals.patchgate.dev -n "$PROD"; done
  for v in get list watch; do expect_can yes "$v" patchpolicies.patchgate.dev -n "$PROD"; done
  expect_can yes create subjectaccessreviews.authorization.k8s.io   # the author's own rights
  expect_can yes create events.events.k8s.io -n "$PROD"
  expect_can yes patch events.events.k8s.io -n "$PROD"
  for r in deployments.apps statefulsets.apps daemonsets.apps configmaps secrets; do
    expect_can yes get "$r" -n "$PROD"; expect_can yes patch "$r" -n "$PROD"
  done
  for v in get list create delete; do expect_can yes "$v" controllerrevisions.apps -n "$PROD"; done
  expect_can yes get serviceaccounts -n "$PROD"
  expect_can yes list services -n "$PROD"
}
# What provisioning and testing need in environment namespaces, which do not
# exist ahead of time (any name).
allowed_for_environments() {
  local r env=pg-some-patch-1a2b
  for v in get create delete; do expect_can yes "$v" namespaces; done
  for r in deployments.apps statefulsets.apps daemonsets.apps configmaps secrets serviceaccounts services \
           resourcequotas networkpolicies.networking.k8s.io jobs.batch; do
    expect_can yes create "$r" -n "$env"
  done
  expect_can yes get jobs.batch -n "$env"
  expect_can yes update configmaps/patchgate-api-ca -n "$env"   # the API's CA for test pods
  expect_can no update configmaps/app-config -n "$env"
  expect_can yes get deployments.apps -n "$env"
  expect_can yes list pods -n "$env"
  expect_can yes get leases.coordination.k8s.io/patchgate-operator -n "$NS"
  expect_can yes update leases.coordination.k8s.io/patchgate-operator -n "$NS"
  expect_can yes create leases.coordination.k8s.io -n "$NS"
  # The gRPC API: its own key pair and Service.
  expect_can yes get "secrets/$FULL-api-tls" -n "$NS"
  expect_can yes get "services/$FULL-api" -n "$NS"
}
# Never, in any mode.
refused_always() {
  local v r
  expect_can no '*' '*'
  expect_can no '*' '*' -n "$PROD"
  expect_can no '*' patches.patchgate.dev -n "$PROD"
  expect_can no get nodes
  expect_can no list nodes
  expect_can no patch nodes
  expect_can no list secrets -A
  expect_can no list secrets -n "$PROD"
  expect_can no watch secrets -n "$PROD"
  for r in secrets configmaps deployments.apps; do
    expect_can no delete "$r" -n "$PROD"
    expect_can no update "$r" -n "$PROD"
  done
  expect_can no create pods -n "$PROD"
  expect_can no create pods --subresource=exec -n "$PROD"
  expect_can no create serviceaccounts --subresource=token -n kube-system
  expect_can no create patches.patchgate.dev -n "$PROD"
  expect_can no delete patches.patchgate.dev -n "$PROD"
  expect_can no create patchapprovals.patchgate.dev -n "$PROD"   # it must never approve
  for v in create update patch delete; do expect_can no "$v" patchpolicies.patchgate.dev -n "$PROD"; done  # nor set its own rules
  for r in clusterroles clusterrolebindings roles rolebindings; do
    expect_can no create "$r.rbac.authorization.k8s.io" -n "$PROD"
  done
  expect_can no bind clusterroles.rbac.authorization.k8s.io
  expect_can no escalate clusterroles.rbac.authorization.k8s.io
  expect_can no impersonate users
  expect_can no impersonate serviceaccounts -n kube-system
  expect_can no create certificatesigningrequests.certificates.k8s.io
  expect_can no delete customresourcedefinitions.apiextensions.k8s.io
  expect_can no update validatingadmissionpolicies.admissionregistration.k8s.io
  expect_can no delete validatingadmissionpolicybindings.admissionregistration.k8s.io
  expect_can no update leases.coordination.k8s.io/kube-controller-manager -n kube-system
  expect_can no update leases.coordination.k8s.io/other-lease -n "$NS"
  expect_can no get leases.coordination.k8s.io -n kube-system
}
# Narrowed: no Patch rights outside $PROD.
refused_outside_prod() {
  local r
  # (get on workloads is cluster-wide: environment copies are read back.)
  for r in secrets configmaps; do expect_can no get "$r" -n "$OTHER"; done
  for r in secrets configmaps deployments.apps statefulsets.apps daemonsets.apps; do expect_can no patch "$r" -n "$OTHER"; done
  expect_can no list patches.patchgate.dev -n "$OTHER"
  expect_can no list patches.patchgate.dev -A
  expect_can no create controllerrevisions.apps -n "$OTHER"
  expect_can no get secrets -n kube-system
  expect_can no get secrets/other -n "$NS"   # only the API's key pair in its own namespace
}
allowed_in_prod
allowed_for_environments
refused_always
refused_outside_prod
say "   ok: $CHECKS can-i checks as $SA_USER (narrowed)"

say "5. helm upgrade to cluster-wide, then helm uninstall"
h upgrade "$RELEASE" "$CHART" -n "$NS" --reset-values --wait --timeout 120s >"$WORK/upgrade" 2>&1 ||
  { cat "$WORK/upgrade"; fail "helm upgrade"; }
k get deploy -n "$NS" "$FULL" -o jsonpath='{.spec.template.spec.containers[0].args}' | grep -q -- "--watch-namespaces" &&
  fail "still told to watch one namespace after the upgrade"
CHECKS=0
allowed_in_prod
allowed_for_environments
refused_always
# Cluster-wide, the Patch rights reach every namespace, and nothing more.
expect_can yes get secrets -n "$OTHER"
expect_can yes list patches.patchgate.dev -A
expect_can no list secrets -n "$OTHER"
expect_can no delete secrets -n "$OTHER"
say "   ok: $CHECKS can-i checks as $SA_USER (cluster-wide)"

h uninstall "$RELEASE" -n "$NS" --wait --timeout 60s >/dev/null || fail "helm uninstall"
k get crd patches.patchgate.dev patchapprovals.patchgate.dev patchpolicies.patchgate.dev >/dev/null 2>&1 || fail "helm uninstall removed the CRDs"
k get clusterrole "$FULL-patches" >/dev/null 2>&1 && fail "helm uninstall left the ClusterRole"
k get deploy -n "$NS" "$FULL" >/dev/null 2>&1 && fail "helm uninstall left the Deployment"
say "   ok: uninstalled; the CRDs stay"
say "PASS"
