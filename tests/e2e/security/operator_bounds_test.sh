#!/usr/bin/env bash
# e2e (kwok mode is enough: the operator does not run; we act as its
# ServiceAccount with kubectl --as): the ValidatingAdmissionPolicies of
# admissionPolicies.boundOperator (charts/patchgate/templates/admission-policies.yaml)
# bound the operator even when RBAC would let it do anything, and admit every
# kind of write the operator makes.
#   1. deploy/patchgate.yaml binds them to system:serviceaccount:patchgate-system:patchgate;
#   2. the chart's ServiceAccount, RBAC and bound policies (release pg-bounds in
#      a fresh namespace) applied server-side; wait until the API server enforces them;
#   3. with the chart's own RBAC, the writes the operator makes are admitted: an
#      environment namespace (created, then deleted), a Secret and a workload copy
#      in it, the production Deployment promoted and rolled back (stamped
#      patchgate.dev/last-write) and dry-run unstamped (validation), a production
#      Secret changed by a Patch, a rollback point's Secret snapshot, the API's key
#      pair in the release namespace;
#   4. with cluster-admin bound to the ServiceAccount as well (so that RBAC refuses
#      nothing), each forbidden write is refused, by one of those policies (deleting
#      kube-system or default is refused earlier still, by the API server's
#      NamespaceLifecycle: they are immortal). Every delete, and every write
#      outside this test's own namespaces, is a server-side dry run (admission
#      runs, nothing is written), so a broken policy cannot harm the cluster. The
#      unstamped patches of the test's own production Deployment are real
#      requests: a dry run is admitted by design (the operator's validation
#      dry-runs the change without a stamp).
# Each attempt prints "attempt: <what> -> admitted" or "-> refused (<by>): <message>".
# Usage: KUBECONFIG=<kubeconfig> tests/e2e/security/operator_bounds_test.sh
source "$(dirname "$0")/../chart/lib.sh"

RELEASE=pg-bounds
FULL=$RELEASE-patchgate              # fullname, and the ServiceAccount's name
suffix=$(date +%s)-$RANDOM
NS=pg-bounds-$suffix                  # the release namespace
PROD=pg-bounds-prod-$suffix           # a production namespace (not an environment)
ENV=pg-bounds-env-$suffix             # an environment namespace, made as the operator
PROBE=pg-bounds-probe-$suffix         # a Secret in kube-system to try to change (dry run)
SA_USER=system:serviceaccount:$NS:$FULL
ADMIN_BINDING=$RELEASE-test-cluster-admin
WORK=$(mktemp -d)
KVER=$(k get --raw /version | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p')
UID1=$(cat /proc/sys/kernel/random/uuid)   # the uid of a Patch, for the stamps
UID2=$(cat /proc/sys/kernel/random/uuid)

cleanup() {
  k delete clusterrolebinding "$ADMIN_BINDING" --ignore-not-found >/dev/null 2>&1 || true
  k delete clusterrole,clusterrolebinding,validatingadmissionpolicy,validatingadmissionpolicybinding \
    -l app.kubernetes.io/instance=$RELEASE --ignore-not-found >/dev/null 2>&1 || true
  k delete secret -n kube-system "$PROBE" --ignore-not-found >/dev/null 2>&1 || true
  for n in "$NS" "$PROD" "$ENV"; do k delete namespace "$n" --wait=false --ignore-not-found >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
on_fail() { k get validatingadmissionpolicies -l app.kubernetes.io/instance=$RELEASE -o yaml 2>&1 | grep -A8 'status:'; }

# attempt admitted|refused WHAT KUBECTL-ARGS...: kubectl as the operator. A
# refusal must come from one of patchgate's bound policies, or from what
# $ALSO_REFUSED_BY names (the text the API server answers then).
ADMITTED=0 REFUSED=0 EARLIER=0
attempt() {
  local want=$1 what=$2; shift 2
  local out rc=0 by msg
  out=$(k --as="${AS_USER:-$SA_USER}" "$@" 2>&1) || rc=$?
  if ((rc == 0)); then
    say "attempt: $what -> admitted"
    [[ $want == admitted ]] || fail "the operator was allowed to $what: $out"
    ADMITTED=$((ADMITTED + 1))
    return 0
  fi
  by=$(sed -n "s/.*ValidatingAdmissionPolicy '\\($FULL-[a-z-]*\\)'.*/\\1/p" <<<"$out" | head -1)
  msg=$(sed -n 's/.*denied request: //p' <<<"$out" | head -1)
  if [[ -z $by && -n ${ALSO_REFUSED_BY:-} && $out == *"$ALSO_REFUSED_BY"* ]]; then
    by="the API server, before any policy"
    msg=$(head -1 <<<"$out")
    EARLIER=$((EARLIER + 1))
  fi
  say "attempt: $what -> refused (${by:-?}): ${msg:-$out}"
  [[ $want == refused ]] || fail "the operator could not $what: $out"
  [[ -n $by ]] || fail "refused, but not by patchgate's policies (RBAC? a policy error?): $out"
  REFUSED=$((REFUSED + 1))
}

say "1. deploy/patchgate.yaml binds the policies to the operator's ServiceAccount"
n=$(grep -c "request.userInfo.username == 'system:serviceaccount:patchgate-system:patchgate'" "$REPO/deploy/patchgate.yaml" || true)
[[ $n == 4 ]] || fail "deploy/patchgate.yaml: expected 4 policies naming system:serviceaccount:patchgate-system:patchgate, found $n (run hack/render-deploy.sh)"
say "   ok: 3 policies bound to it (namespaces, secrets, workloads) and 1 that lets only it write Patch status, in deploy/patchgate.yaml"

say "2. the chart's ServiceAccount, RBAC and bound policies, as release $RELEASE in $NS"
k delete clusterrole,clusterrolebinding,validatingadmissionpolicy,validatingadmissionpolicybinding \
  -l app.kubernetes.io/instance=$RELEASE --ignore-not-found >/dev/null   # left by an interrupted run
k create namespace "$NS" >/dev/null
k create namespace "$PROD" >/dev/null
h template "$RELEASE" "$CHART" -n "$NS" --kube-version "$KVER" --set admissionPolicies.install=false \
  --show-only templates/serviceaccount.yaml --show-only templates/rbac.yaml \
  --show-only templates/admission-policies.yaml >"$WORK/render.yaml"
[[ $(grep -c '^kind: ValidatingAdmissionPolicy$' "$WORK/render.yaml") == 4 ]] || fail "the chart renders no 4 policies (3 bound, 1 on Patch status)"
grep -q "request.userInfo.username == '$SA_USER'" "$WORK/render.yaml" || fail "the policies are not bound to $SA_USER"
k apply --server-side --field-manager=operator-bounds-test -f "$WORK/render.yaml" >/dev/null
for p in operator-namespaces operator-secrets operator-workloads patch-status; do
  warn=$(k get validatingadmissionpolicy "$FULL-$p" -o jsonpath='{.status.typeChecking.expressionWarnings}')
  [[ -z $warn ]] || fail "policy $FULL-$p: type-checking warnings: $warn"
done
# Until the API server's policy informer has them, requests pass unchecked:
# wait until one refusal of each policy is seen (dry runs, nothing written).
for i in $(seq 60); do
  a=$(k --as="$SA_USER" create namespace "$PROD-x" --dry-run=server 2>&1 || true)
  b=$(k --as="$SA_USER" create secret generic x -n "$PROD" --dry-run=server 2>&1 || true)
  c=$(k --as="$SA_USER" create deployment x --image=x -n "$PROD" --dry-run=server 2>&1 || true)
  [[ $a == *"'$FULL-operator-namespaces'"* && $b == *"'$FULL-operator-secrets'"* &&
     $c == *"'$FULL-operator-workloads'"* ]] && break
  ((i < 60)) || fail "the policies are not enforced after 30 s: $a / $b / $c"
  sleep 0.5
done
say "   ok: applied; enforced after $((i / 2)) s"

# Production, as a person made it (the admin): two Deployments (web is
# promoted and rolled back below; api is never touched), web's Secret.
for d in web api; do
  k apply -n "$PROD" -f - >/dev/null <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: $d}
spec:
  replicas: 0
  selector: {matchLabels: {app: $d}}
  template:
    metadata: {labels: {app: $d}}
    spec:
      containers:
      - name: app
        image: registry.example/$d:1
        envFrom: [{secretRef: {name: web-secret}}]
YAML
done
k apply -n "$PROD" -f - >/dev/null <<YAML
apiVersion: v1
kind: Secret
metadata: {name: web-secret}
stringData: {PASSWORD: one}
YAML
k create secret generic -n kube-system "$PROBE" --from-literal=a=b >/dev/null
rv() { k get deployment -n "$PROD" web -o jsonpath='{.metadata.resourceVersion}'; }

say "3. allowed, with the chart's own RBAC: what the operator does"
attempt admitted "create environment namespace $ENV (labelled patchgate.dev/environment=true)" \
  create -f - <<YAML
apiVersion: v1
kind: Namespace
metadata:
  name: $ENV
  labels: {patchgate.dev/environment: "true", app.kubernetes.io/managed-by: patchgate, patchgate.dev/patch-uid: $UID1}
YAML
attempt admitted "create a copy of Secret web-secret in $ENV" \
  create secret generic web-secret -n "$ENV" --from-literal=PASSWORD=one
attempt admitted "create the copy of Deployment web in $ENV" \
  create deployment web -n "$ENV" --image=registry.example/web:2 --replicas=1
attempt admitted "dry-run an unstamped patch of production Deployment $PROD/web (validation, provisioning)" \
  patch deployment web -n "$PROD" --dry-run=server -p '{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"registry.example/web:2"}]}}}}'
attempt admitted "dry-run a change of production Secret $PROD/web-secret (validation)" \
  patch secret web-secret -n "$PROD" --dry-run=server --type=merge -p '{"data":{"PASSWORD":"dHdv"}}'
attempt admitted "create rollback point $PROD/web-pg-1 (a ControllerRevision)" \
  create -n "$PROD" -f - <<YAML
apiVersion: apps/v1
kind: ControllerRevision
metadata:
  name: web-pg-1
  labels: {app.kubernetes.io/managed-by: patchgate, patchgate.dev/patch-uid: $UID1, patchgate.dev/target: Deployment.web}
revision: 1
data: {kind: Deployment, name: web}
YAML
rev_uid=$(k get controllerrevision -n "$PROD" web-pg-1 -o jsonpath='{.metadata.uid}')
snapshot() { # name owner-name: a rollback point's Secret snapshot, as promotion.cc makes it
  cat <<JSON
{"apiVersion": "v1", "kind": "Secret", "type": "patchgate.dev/rollback-snapshot", "immutable": true,
 "metadata": {"name": "$1", "namespace": "$PROD",
   "labels": {"app.kubernetes.io/managed-by": "patchgate", "patchgate.dev/patch": "fix-web",
              "patchgate.dev/patch-namespace": "$PROD", "patchgate.dev/patch-uid": "$UID1",
              "patchgate.dev/target": "Deployment.web"},
   "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ControllerRevision", "name": "$2", "uid": "$rev_uid"}]},
 "data": {"salt": "c2FsdA==", "web-secret.json": "e30="}}
JSON
}
attempt admitted "create the rollback point's Secret snapshot $PROD/web-pg-1-secrets" \
  create -f - <<<"$(snapshot web-pg-1-secrets web-pg-1)"
attempt admitted "change production Secret $PROD/web-secret stamped $UID1/Promote (a Patch's spec.change.config)" \
  patch secret web-secret -n "$PROD" --type=merge \
  -p "{\"metadata\":{\"annotations\":{\"patchgate.dev/last-write\":\"$UID1/Promote\"}},\"data\":{\"PASSWORD\":\"dHdv\"}}"
attempt admitted "repeat that write after a crash (same stamp, same content)" \
  patch secret web-secret -n "$PROD" --type=merge \
  -p "{\"metadata\":{\"annotations\":{\"patchgate.dev/last-write\":\"$UID1/Promote\"}},\"data\":{\"PASSWORD\":\"dHdv\"}}"
attempt admitted "restore it in a rollback: JSON-patch stamped $UID1/Rollback" \
  patch secret web-secret -n "$PROD" --type=json \
  -p "[{\"op\":\"add\",\"path\":\"/data\",\"value\":{\"PASSWORD\":\"b25l\"}},{\"op\":\"add\",\"path\":\"/metadata/annotations/patchgate.dev~1last-write\",\"value\":\"$UID1/Rollback\"}]"
attempt admitted "promote: patch production Deployment $PROD/web stamped $UID1/Promote (strategic merge)" \
  patch deployment web -n "$PROD" -p "{\"metadata\":{\"resourceVersion\":\"$(rv)\",\"annotations\":{\"patchgate.dev/last-write\":\"$UID1/Promote\"}},\"spec\":{\"template\":{\"spec\":{\"containers\":[{\"name\":\"app\",\"image\":\"registry.example/web:2\"}]}}}}"
attempt admitted "roll back: JSON-patch $PROD/web stamped $UID1/Rollback" \
  patch deployment web -n "$PROD" --type=json -p "[{\"op\":\"test\",\"path\":\"/metadata/resourceVersion\",\"value\":\"$(rv)\"},{\"op\":\"replace\",\"path\":\"/spec/template/spec/containers/0/image\",\"value\":\"registry.example/web:1\"},{\"op\":\"add\",\"path\":\"/metadata/annotations/patchgate.dev~1last-write\",\"value\":\"$UID1/Rollback\"}]"
attempt admitted "promote another Patch: JSON-patch $PROD/web stamped $UID2/Promote" \
  patch deployment web -n "$PROD" --type=json -p "[{\"op\":\"test\",\"path\":\"/metadata/resourceVersion\",\"value\":\"$(rv)\"},{\"op\":\"add\",\"path\":\"/metadata/annotations/patchgate.dev~1last-write\",\"value\":\"$UID2/Promote\"},{\"op\":\"replace\",\"path\":\"/spec/minReadySeconds\",\"value\":5}]"
attempt admitted "create the gRPC API's key pair, Secret $NS/$FULL-api-tls" \
  create secret generic "$FULL-api-tls" -n "$NS" --from-literal=tls.crt=one --from-literal=tls.key=one
k create secret generic "$FULL-api-tls" -n "$NS" --from-literal=tls.crt=two --from-literal=tls.key=two \
  --dry-run=client -o json >"$WORK/tls.json"
attempt admitted "renew it (update $NS/$FULL-api-tls)" replace -f "$WORK/tls.json"
attempt admitted "delete environment namespace $ENV" delete namespace "$ENV" --wait=false
say "   ok: $ADMITTED writes admitted"

say "4. refused, even with cluster-admin bound to $SA_USER"
k create clusterrolebinding "$ADMIN_BINDING" --clusterrole=cluster-admin --serviceaccount="$NS:$FULL" >/dev/null
# RBAC is now out of the way: this must pass (it did not before).
[[ $(k auth can-i --as="$SA_USER" delete namespaces 2>/dev/null) == yes ]] || fail "cluster-admin did not take"
ADMITTED=0
ALSO_REFUSED_BY="this namespace may not be deleted" attempt refused "delete namespace kube-system" \
  delete namespace kube-system --dry-run=server
ALSO_REFUSED_BY="this namespace may not be deleted" attempt refused "delete namespace default" \
  delete namespace default --dry-run=server
attempt refused "delete namespace kube-node-lease" delete namespace kube-node-lease --dry-run=server
attempt refused "delete namespace $PROD (not an environment)" delete namespace "$PROD" --dry-run=server
attempt refused "label namespace kube-system patchgate.dev/environment=true (to delete it next)" \
  label namespace kube-system patchgate.dev/environment=true --dry-run=server
attempt refused "create a namespace without the environment label" \
  create namespace "$PROD-unlabelled" --dry-run=server
attempt refused "create a Secret in default" \
  create secret generic pg-bounds-test -n default --from-literal=a=b --dry-run=server
attempt refused "update Secret kube-system/$PROBE" \
  patch secret "$PROBE" -n kube-system --type=merge -p '{"data":{"a":"Yw=="}}' --dry-run=server
attempt refused "change production Secret $PROD/web-secret without a stamp" \
  patch secret web-secret -n "$PROD" --type=merge -p '{"data":{"PASSWORD":"ZXZpbA=="}}'
attempt refused "change production Secret $PROD/web-secret under the stamp of an earlier write" \
  patch secret web-secret -n "$PROD" --type=merge \
  -p "{\"metadata\":{\"annotations\":{\"patchgate.dev/last-write\":\"$UID1/Rollback\"}},\"data\":{\"PASSWORD\":\"ZXZpbA==\"}}"
attempt refused "delete production Secret $PROD/web-secret" \
  delete secret web-secret -n "$PROD" --dry-run=server
attempt refused "create a Secret posing as a rollback snapshot, not owned by its revision" \
  create --dry-run=server -f - <<<"$(snapshot web-pg-7-secrets web-pg-1)"
attempt refused "relabel the rollback snapshot $PROD/web-pg-1-secrets" \
  label secret web-pg-1-secrets -n "$PROD" patchgate.dev/patch-uid=other --overwrite --dry-run=server
# Real requests on the test's own Deployment (a dry run is admitted by design).
attempt refused "patch production Deployment $PROD/api without the last-write stamp" \
  patch deployment api -n "$PROD" -p '{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"evil:1"}]}}}}'
attempt refused "patch $PROD/web again under the stamp of the earlier write ($UID2/Promote)" \
  patch deployment web -n "$PROD" -p "{\"metadata\":{\"annotations\":{\"patchgate.dev/last-write\":\"$UID2/Promote\"}},\"spec\":{\"minReadySeconds\":9}}"
attempt refused "patch $PROD/web with a malformed stamp" \
  patch deployment web -n "$PROD" -p '{"metadata":{"annotations":{"patchgate.dev/last-write":"whoever"}},"spec":{"minReadySeconds":9}}'
attempt refused "delete production Deployment $PROD/web" delete deployment web -n "$PROD" --dry-run=server
attempt refused "scale production Deployment $PROD/web" scale deployment web -n "$PROD" --replicas=3 --dry-run=server
attempt refused "create a Deployment in production namespace $PROD" \
  create deployment other -n "$PROD" --image=registry.example/x:1 --dry-run=server
image=$(k get deployment -n "$PROD" api -o jsonpath='{.spec.template.spec.containers[0].image}')
[[ $image == registry.example/api:1 ]] || fail "$PROD/api runs $image: a refused write landed"
ready=$(k get deployment -n "$PROD" web -o jsonpath='{.spec.minReadySeconds}')
[[ $ready == 5 ]] || fail "$PROD/web has minReadySeconds $ready, not 5: a refused write landed"
say "   ok: $REFUSED writes refused; production unchanged"

say "5. admitted by the policies (RBAC aside)"
# promotion.cc removes a stale snapshot left by an earlier revision of the
# same name. The chart's RBAC grants no delete on Secrets, so today RBAC
# refuses it; the policy would not.
can=$(k auth can-i --as="$SA_USER" delete secrets -n "$PROD" 2>/dev/null || true)
k delete clusterrolebinding "$ADMIN_BINDING" >/dev/null
rbac=$(k auth can-i --as="$SA_USER" delete secrets -n "$PROD" 2>/dev/null || true)
k create clusterrolebinding "$ADMIN_BINDING" --clusterrole=cluster-admin --serviceaccount="$NS:$FULL" >/dev/null
attempt admitted "delete the stale rollback snapshot $PROD/web-pg-1-secrets (cluster-admin: $can; chart RBAC alone: $rbac)" \
  delete secret web-pg-1-secrets -n "$PROD" --dry-run=server
say "6. the status of a Patch is written by the operator alone"
# Mallory may do anything with patchgate.dev objects in $PROD (a wildcard Role,
# as namespace admins often get): still, she may not write a Patch's status,
# where the lifecycle keeps its phase, tests, promotion and approvals.
k apply -f "$REPO/crds/patchgate.dev_patches.yaml" >/dev/null
k wait --for condition=Established --timeout=60s crd/patches.patchgate.dev >/dev/null
k create role -n "$PROD" patchgate-everything --verb='*' --resource='*.patchgate.dev' >/dev/null
k create rolebinding -n "$PROD" mallory-everything --role=patchgate-everything --user=mallory >/dev/null
k apply -n "$PROD" -f - >/dev/null <<YAML
apiVersion: patchgate.dev/v1alpha1
kind: Patch
metadata: {name: fix-web}
spec:
  author: $(k auth whoami -o jsonpath='{.status.userInfo.username}')
  ticket: OPS-1
  rootCause: a bounds test
  target: {kind: Deployment, name: web}
  change: {type: strategic, patch: '{"spec":{"minReadySeconds":1}}'}
  tests: [{name: smoke, image: registry.example/test:1}]
YAML
for i in $(seq 60); do   # the Patch CRD is new: wait until the policy refuses its status writes
  out=$(k --as=mallory patch patch fix-web -n "$PROD" --subresource=status --type=merge \
    -p '{"status":{"phase":"AwaitingApproval"}}' --dry-run=server 2>&1 || true)
  [[ $out == *"'$FULL-patch-status'"* ]] && break
  ((i < 60)) || fail "the patch-status policy is not enforced after 30 s: $out"
  sleep 0.5
done
[[ $(k auth can-i --as=mallory patch patches/status -n "$PROD" 2>/dev/null) == yes ]] || fail "RBAC should allow mallory"
AS_USER=mallory attempt refused "mallory (every right on patchgate.dev in $PROD) marks Patch fix-web's tests passed" \
  patch patch fix-web -n "$PROD" --subresource=status --type=merge \
  -p '{"status":{"phase":"AwaitingApproval","conditions":[{"type":"Tested","status":"True","reason":"TestsPassed","message":"forged","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}'
AS_USER=mallory attempt refused "mallory clears status.retestedAt so that approvals of an older base count again" \
  patch patch fix-web -n "$PROD" --subresource=status --type=merge -p '{"status":{"retestedAt":null}}'
AS_USER=admin-by-hand attempt refused "an admin (system:masters) sets its phase by hand" patch patch fix-web -n "$PROD" \
  --subresource=status --type=merge -p '{"status":{"phase":"Succeeded"}}' --as-group=system:masters
attempt admitted "the operator writes it" patch patch fix-web -n "$PROD" --subresource=status --type=merge \
  -p '{"status":{"phase":"Pending","message":"written by the operator"}}'
[[ $(k get patch -n "$PROD" fix-web -o jsonpath='{.status.message}') == "written by the operator" ]] ||
  fail "the status is not the operator's: $(k get patch -n "$PROD" fix-web -o jsonpath='{.status}')"
say "   ok: only the operator's write landed"
say "PASS: $REFUSED forbidden writes refused ($((REFUSED - EARLIER)) by the bound policies, $EARLIER earlier by the API server); every kind of operator write admitted"
