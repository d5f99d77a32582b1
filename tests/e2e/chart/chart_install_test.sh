#!/usr/bin/env bash
# e2e on the real-node cluster: patchgate installed with its Helm chart runs
# in-cluster, as a user would run it.
#   GIVEN the image built from the Dockerfile (hack/image.sh) and loaded into the node
#   WHEN  helm install puts it in patchgate-system (Pod Security "restricted")
#   THEN  both replicas run with the chart's ServiceAccount (in-cluster config)
#         and one of them holds the Lease;
#   AND   a Patch goes from creation to Succeeded (promoted, verified), its
#         test Job reporting structured results through the gRPC API
#         (grpcurl, TLS with the operator's shared certificate, the pod's
#         token) that land in status.testReports;
#   WHEN  the leader pod crashes (SIGKILL: the Lease is not released)
#   THEN  the other replica takes the Lease over and a second Patch completes,
#         followed to its end by a pipeline Job (grpcurl WatchPatch with a
#         service-account token allowed get/watch); calls without a token or
#         without rights are refused (Unauthenticated, PermissionDenied);
#   WHEN  helm upgrade changes a value (log level, workers)
#   THEN  the pods roll to it and a leader is elected again;
#   WHEN  helm uninstall
#   THEN  the operator and its RBAC are gone, the CRDs and the Patches stay.
# Usage: KUBECONFIG=<kubeconfig> tests/e2e/chart/chart_install_test.sh
# Env: PATCHGATE_TEST_CLUSTER (default pg-e2e): the cluster to load the image into;
#      PATCHCTL: the patchctl binary (the change record).
source "$(dirname "$0")/lib.sh"
CLUSTER_NAME=${PATCHGATE_TEST_CLUSTER:-pg-e2e}
PATCHCTL=${PATCHCTL:?set PATCHCTL to the patchctl binary}
RELEASE=patchgate
NS=patchgate-system
FULL=patchgate               # the chart's fullname for release "patchgate"
APP_NS=pg-chart-shop-$(date +%s)-$RANDOM
WORK=$(mktemp -d)

cleanup() {
  h uninstall "$RELEASE" -n "$NS" --wait --timeout 60s >/dev/null 2>&1 || true
  # The Patches' finalizers need the operator, which is gone now: drop them.
  for p in $(k get patches -n "$APP_NS" -o name 2>/dev/null); do
    k patch -n "$APP_NS" "$p" --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true
  done
  for e in $(k get ns -l "patchgate.dev/environment=true" -o name 2>/dev/null); do
    [[ $(k get "$e" -o jsonpath='{.metadata.annotations.patchgate\.dev/source-namespace}' 2>/dev/null) == "$APP_NS" ]] &&
      k delete "$e" --wait=false >/dev/null 2>&1 || true
  done
  k delete namespace "$APP_NS" "$NS" --wait=false >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
on_fail() {
  k get pods -n "$NS" -o wide 2>&1
  k get lease -n "$NS" 2>&1
  k get events -n "$NS" --sort-by=.lastTimestamp 2>&1 | tail -15
  for p in $(k get pods -n "$NS" -o name 2>/dev/null); do echo "--- $p"; k logs -n "$NS" "$p" --tail=25 2>&1; done
  k get patches -n "$APP_NS" -o wide 2>&1
  for p in $(k get patches -n "$APP_NS" -o name 2>/dev/null); do
    k get -n "$APP_NS" "$p" -o jsonpath='{.status.history}' 2>&1; echo
  done
}

leader() { k get lease -n "$NS" patchgate-operator -o jsonpath='{.spec.holderIdentity}' 2>/dev/null || true; }
# The pod a Lease identity belongs to: the identity is "<hostname>_<suffix>".
leader_pod() { local id; id=$(leader); echo "${id%_*}"; }
wait_leader() { # timeout [not-this-pod] -> prints the leader pod
  local deadline=$(( $(date +%s) + $1 )) not=${2:-} pod
  while (( $(date +%s) < deadline )); do
    pod=$(leader_pod)
    if [[ -n $pod && $pod != "$not" ]] && k get pod -n "$NS" "$pod" >/dev/null 2>&1; then echo "$pod"; return 0; fi
    sleep 1
  done
  fail "no new leader within $1s (holder: '$(leader)')"
}
phase() { k get patch -n "$APP_NS" "$1" -o jsonpath='{.status.phase}' 2>/dev/null || true; }
wait_phase() { # patch timeout
  local deadline=$(( $(date +%s) + $2 )) ph=""
  while (( $(date +%s) < deadline )); do
    ph=$(phase "$1")
    case $ph in Succeeded) return 0 ;; Failed|RolledBack) fail "Patch $1 ended $ph: $(k get patch -n "$APP_NS" "$1" -o jsonpath='{.status.message}')" ;; esac
    sleep 2
  done
  fail "Patch $1 is '$ph' after $2s, expected Succeeded"
}
# The examples name alice as their author; admission wants whoever kubectl is
# (with its groups, where its rights come from: the two lines, for sed).
ME=$(k auth whoami -o jsonpath='  author: {.status.userInfo.username}\n  authorGroups: {.status.userInfo.groups}')
# deploy/examples/patch-good.yaml, in our namespace, shipping VERSION $2 under name $1.
good_patch() {
  sed -e "s/namespace: shop/namespace: $APP_NS/" -e "s/name: fix-checkout-pool/name: $1/" \
      -e "s|^  author: alice$|$ME|" \
      -e "s/value: \"v2\"/value: \"$2\"/" -e "s/\[ \"\$v\" = v2 \]/[ \"\$v\" = $2 ]/" \
      -e 's/ttlSecondsAfterFinished: 60/ttlSecondsAfterFinished: 5/' \
      "$REPO/deploy/examples/patch-good.yaml"
}

# deploy/examples/patch-reporting-tests.yaml, in our namespace, under name $1.
reporting_patch() {
  sed -e "s/namespace: shop/namespace: $APP_NS/" -e "s/name: fix-checkout-timeouts/name: $1/" \
      -e "s|^  author: alice$|$ME|" \
      -e 's/ttlSecondsAfterFinished: 60/ttlSecondsAfterFinished: 5/' \
      "$REPO/deploy/examples/patch-reporting-tests.yaml"
}
# api_job NAME SERVICEACCOUNT|- METHOD JSON [patchgate|api-server]: a Job in
# $APP_NS that calls the gRPC API with grpcurl (the test-runner image) through
# the API Service, as a pipeline would: TLS verified with the CA a user copied
# from the operator's Secret, and as bearer token the pod's projected token for
# the audience patchgate (default), or its automounted API-server token
# (api-server: refused), or none ("-").
api_job() {
  local token='-rpc-header "authorization: Bearer $(cat /token/token)"'
  local sa=$2 mount=false
  local mounts='[{name: ca, mountPath: /ca}, {name: token, mountPath: /token}]'
  local volumes='[{name: ca, configMap: {name: patchgate-api-ca}}, {name: token, projected: {sources: [{serviceAccountToken: {audience: patchgate, expirationSeconds: 3600, path: token}}]}}]'
  if [[ ${5:-patchgate} == api-server ]]; then
    token='-rpc-header "authorization: Bearer $(cat /var/run/secrets/kubernetes.io/serviceaccount/token)"'
    mount=true mounts='[{name: ca, mountPath: /ca}]' volumes='[{name: ca, configMap: {name: patchgate-api-ca}}]'
  fi
  [[ $sa == - ]] && { token=""; sa=default; mounts='[{name: ca, mountPath: /ca}]'; volumes='[{name: ca, configMap: {name: patchgate-api-ca}}]'; }
  k apply -f - >/dev/null <<EOF
apiVersion: batch/v1
kind: Job
metadata: {name: $1, namespace: $APP_NS}
spec:
  backoffLimit: 0
  activeDeadlineSeconds: 300
  template:
    spec:
      restartPolicy: Never
      serviceAccountName: $sa
      automountServiceAccountToken: $mount
      containers:
      - name: grpcurl
        image: patchgate.dev/test-runner:1.0
        imagePullPolicy: IfNotPresent
        command: [/bin/sh, -c]
        args:
        - |
          grpcurl -cacert /ca/ca.crt -authority $FULL-api.$NS.svc $token \
            -import-path /usr/share/patchgate/proto -proto patchgate/v1/patchgate.proto \
            -d '$4' $API_ADDRESS patchgate.v1.Patchgate/$3
        volumeMounts: $mounts
      volumes: $volumes
EOF
}
job_result() { # name timeout -> Complete|Failed
  local deadline=$(( $(date +%s) + $2 )) c
  while (( $(date +%s) < deadline )); do
    c=$(k get job -n "$APP_NS" "$1" -o jsonpath='{.status.conditions[?(@.status=="True")].type}' 2>/dev/null || true)
    case " $c " in *" Complete "*) echo Complete; return 0 ;; *" Failed "*) echo Failed; return 0 ;; esac
    sleep 1
  done
  fail "Job $1 did not finish within $2s"
}

say "GIVEN the operator image, built from the Dockerfile without Docker"
t=$(date +%s)
ARCHIVE=$("$REPO/hack/image.sh") || fail "hack/image.sh failed"
IMAGE=$("$REPO/hack/image.sh" --name)
"$REPO/hack/cluster" load-image --name "$CLUSTER_NAME" "$ARCHIVE" >/dev/null 2>"$WORK/load.err" ||
  { cat "$WORK/load.err"; fail "loading $ARCHIVE into cluster $CLUSTER_NAME"; }
say "   $IMAGE ($(du -h "$ARCHIVE" | cut -f1) archive) built/reused and loaded in $(( $(date +%s) - t ))s"

say "WHEN helm install puts it in $NS, a namespace enforcing Pod Security 'restricted'"
k delete namespace "$NS" --wait=true --timeout=60s >/dev/null 2>&1 || true
restricted_namespace "$NS"
adopt_crds "$RELEASE" "$NS"   # crds/ may have been applied by hand (the Patch e2e stories do)
t=$(date +%s)
h install "$RELEASE" "$CHART" -n "$NS" --set image.tag="${IMAGE##*:}" --set image.pullPolicy=IfNotPresent \
  --wait --timeout 180s >"$WORK/install" 2>&1 || { cat "$WORK/install"; fail "helm install"; }
say "   installed and Ready in $(( $(date +%s) - t ))s"

say "THEN both replicas run in-cluster with the chart's ServiceAccount, one holds the Lease"
[[ $(k get deploy -n "$NS" "$FULL" -o jsonpath='{.status.readyReplicas}') == 2 ]] || fail "expected 2 ready replicas"
for p in $(k get pods -n "$NS" -l app.kubernetes.io/instance="$RELEASE" -o name); do
  [[ $(k get -n "$NS" "$p" -o jsonpath='{.spec.serviceAccountName}') == "$FULL" ]] || fail "$p does not use ServiceAccount $FULL"
  [[ $(k logs -n "$NS" "$p") == *'"source":"in-cluster service account"'* ]] || fail "$p does not use the in-cluster config"
  [[ $(k get -n "$NS" "$p" -o jsonpath='{.status.containerStatuses[0].restartCount}') == 0 ]] || fail "$p restarted"
done
LEADER=$(wait_leader 60) || exit 1
say "   leader: $LEADER (Lease holder $(leader)); both use the in-cluster service account"

say "   the gRPC API's key pair: made once by the operator, in Secret $FULL-api-tls"
[[ $(k get secret -n "$NS" "$FULL-api-tls" -o jsonpath='{.type}') == kubernetes.io/tls ]] ||
  fail "no kubernetes.io/tls Secret $FULL-api-tls"
API_ADDRESS=$(k get svc -n "$NS" "$FULL-api" -o jsonpath='{.spec.clusterIP}:{.spec.ports[0].port}')

say "AND a Patch goes from creation to Succeeded, its test reporting results through the API"
k create namespace "$APP_NS" >/dev/null
k apply -n "$APP_NS" -f "$REPO/deploy/examples/checkout-app.yaml" >/dev/null
k rollout status -n "$APP_NS" deploy/checkout --timeout=120s >/dev/null || fail "the demo app did not start"
t=$(date +%s)
reporting_patch fix-one | k apply -f - >/dev/null
wait_phase fix-one 300
[[ $(k get deploy -n "$APP_NS" checkout -o jsonpath='{.spec.template.spec.containers[0].env[0].value}') == v2 ]] ||
  fail "production does not run v2"
say "   fix-one Succeeded in $(( $(date +%s) - t ))s; production runs v2 ($(k get patch -n "$APP_NS" fix-one -o jsonpath='{.status.tests[0].message}'))"
report=$(k get patch -n "$APP_NS" fix-one -o jsonpath='{.status.testReports.smoke[0].name} {.status.testReports.smoke[0].cases[*].name} {.status.testReports.smoke[0].cases[*].passed}')
[[ $report == "checkout-http version healthz true true" ]] ||
  fail "status.testReports.smoke is not what the test Job reported: '$report'"
[[ $(k get patch -n "$APP_NS" fix-one -o jsonpath='{.status.environment.testApi.address}') == "$API_ADDRESS" ]] ||
  fail "the environment did not record the API Service's address $API_ADDRESS"
"$PATCHCTL" report -n "$APP_NS" fix-one > "$WORK/record.md" || fail "patchctl report fix-one"
grep -q "checkout-http" "$WORK/record.md" || { cat "$WORK/record.md" >&2; fail "the change record lacks the reported suite"; }
say "   the test Job reported suite checkout-http (cases version, healthz: passed) through the API; it is in status.testReports"

# SIGKILL the leader's container through the node's containerd (a crash: the
# Lease is not released, so the standby must wait for it to expire), then
# force-delete the pod so that the kubelet does not restart it in place. On a
# cluster whose containerd we cannot reach, only the force delete.
crash_pod() { # pod
  local sock=$PATCHGATE_CACHE/clusters/$CLUSTER_NAME/containerd/containerd.sock cid
  cid=$(k get pod -n "$NS" "$1" -o jsonpath='{.status.containerStatuses[0].containerID}')
  if [[ -S $sock ]] && command -v ctr >/dev/null; then
    ctr --address "$sock" -n k8s.io tasks kill -s SIGKILL "${cid#containerd://}" >/dev/null ||
      fail "cannot SIGKILL container $cid"
    echo "SIGKILL to its container, then a forced delete"
  else
    echo "forced delete only (no access to the node's containerd)"
  fi
  k delete pod -n "$NS" "$1" --grace-period=0 --force >/dev/null 2>&1
}
say "WHEN the leader pod $LEADER crashes"
t=$(date +%s)
say "   $(crash_pod "$LEADER")"
NEW=$(wait_leader 90 "$LEADER") || exit 1
say "THEN $NEW took the Lease over after $(( $(date +%s) - t ))s"
t=$(date +%s)
good_patch fix-two v3 | k apply -f - >/dev/null
# A pipeline waits on it through the API: a ServiceAccount allowed get/watch
# on Patches, the CA copied from the operator's Secret.
k get secret -n "$NS" "$FULL-api-tls" -o jsonpath='{.data.ca\.crt}' | base64 -d > "$WORK/ca.crt"
k create configmap -n "$APP_NS" patchgate-api-ca --from-file=ca.crt="$WORK/ca.crt" >/dev/null
k create serviceaccount -n "$APP_NS" pipeline >/dev/null
k create serviceaccount -n "$APP_NS" nobody >/dev/null
k create role -n "$APP_NS" patch-watcher --verb=get,watch --resource=patches.patchgate.dev >/dev/null
k create rolebinding -n "$APP_NS" pipeline-watches --role=patch-watcher --serviceaccount="$APP_NS:pipeline" >/dev/null
api_job watch-fix-two pipeline WatchPatch "{\"namespace\":\"$APP_NS\",\"name\":\"fix-two\"}"
api_job no-token - GetPatch "{\"namespace\":\"$APP_NS\",\"name\":\"fix-two\"}"
api_job no-rights nobody GetPatch "{\"namespace\":\"$APP_NS\",\"name\":\"fix-two\"}"
api_job api-server-token pipeline GetPatch "{\"namespace\":\"$APP_NS\",\"name\":\"fix-two\"}" api-server
wait_phase fix-two 300
say "   AND a second Patch, fix-two, Succeeded in $(( $(date +%s) - t ))s under the new leader"
[[ $(k get patch -n "$APP_NS" fix-two -o jsonpath='{.status.history}') == *Succeeded* ]] || fail "no Succeeded entry in fix-two's history"
[[ $(job_result watch-fix-two 120) == Complete ]] || { k logs -n "$APP_NS" job/watch-fix-two >&2; fail "the WatchPatch Job failed"; }
k logs -n "$APP_NS" job/watch-fix-two > "$WORK/watch.log"
grep -q '"phase": "Succeeded"' "$WORK/watch.log" || { cat "$WORK/watch.log" >&2; fail "the watch did not end on Succeeded"; }
say "   AND the pipeline Job's WatchPatch (grpcurl, in-cluster) followed it to Succeeded: $(grep -c '^  "type"' "$WORK/watch.log") event(s)"
# (Logs into a variable first: `k logs | grep -q` can fail on SIGPIPE under pipefail.)
[[ $(job_result no-token 60) == Failed ]] || fail "a call without a token succeeded"
out=$(k logs -n "$APP_NS" job/no-token 2>&1)
[[ $out == *"Code: Unauthenticated"* ]] || fail "no token: expected Unauthenticated, got: $out"
[[ $(job_result no-rights 60) == Failed ]] || fail "a call without rights succeeded"
out=$(k logs -n "$APP_NS" job/no-rights 2>&1)
[[ $out == *"Code: PermissionDenied"* ]] || fail "no rights: expected PermissionDenied, got: $out"
[[ $(job_result api-server-token 60) == Failed ]] || fail "a call with an API-server token succeeded"
out=$(k logs -n "$APP_NS" job/api-server-token 2>&1)
[[ $out == *"Code: Unauthenticated"*audience* ]] || fail "API-server token: expected Unauthenticated (audience), got: $out"
say "   AND without a token: Unauthenticated; with the pipeline's API-server token: Unauthenticated (not for audience patchgate); a ServiceAccount without rights: PermissionDenied"

say "WHEN helm upgrade changes values (logLevel=debug, workers=3)"
t=$(date +%s)
h upgrade "$RELEASE" "$CHART" -n "$NS" --reuse-values --set operator.logLevel=debug --set operator.workers=3 \
  --wait --timeout 180s >"$WORK/upgrade" 2>&1 || { cat "$WORK/upgrade"; fail "helm upgrade"; }
k rollout status -n "$NS" deploy/"$FULL" --timeout=120s >/dev/null || fail "the upgrade did not roll out"
args=$(k get deploy -n "$NS" "$FULL" -o jsonpath='{.spec.template.spec.containers[0].args}')
[[ $args == *--log-level=debug* && $args == *--workers=3* ]] || fail "the new values are not in the Deployment: $args"
[[ $(h status "$RELEASE" -n "$NS" -o json | grep -o '"version":[0-9]*' | tail -1) == '"version":2' ]] ||
  fail "expected release revision 2"
# The old pods go away (each releases the Lease on SIGTERM, if it held it).
deadline=$(( $(date +%s) + 60 ))
while :; do
  old=$(k get pods -n "$NS" -l app.kubernetes.io/instance="$RELEASE" \
        -o jsonpath='{range .items[*]}{.metadata.name}{" "}{.spec.containers[0].args}{"\n"}{end}' | grep -vc -- --log-level=debug || true)
  (( old == 0 )) && break
  (( $(date +%s) < deadline )) || fail "$old pod(s) with the old args still there after 60s"
  sleep 1
done
UP=$(wait_leader 90 "$NEW") || exit 1
say "THEN the pods rolled to the new values in $(( $(date +%s) - t ))s; leader now $UP"

say "WHEN helm uninstall"
h uninstall "$RELEASE" -n "$NS" --wait --timeout 120s >/dev/null || fail "helm uninstall"
k get deploy -n "$NS" "$FULL" >/dev/null 2>&1 && fail "the Deployment is still there"
k get clusterrole "$FULL-patches" "$FULL-environments" >/dev/null 2>&1 && fail "the ClusterRoles are still there"
k get crd patches.patchgate.dev patchapprovals.patchgate.dev >/dev/null 2>&1 || fail "the CRDs were removed"
[[ $(k get patches -n "$APP_NS" -o name | wc -l) == 2 ]] || fail "the Patches were not kept"
[[ $(phase fix-one) == Succeeded && $(phase fix-two) == Succeeded ]] || fail "the Patches lost their status"
say "THEN the operator and its RBAC are gone; the CRDs and both Patches (Succeeded) stay"
say "PASS"
