# Shared helpers of the Patch lifecycle e2e stories. Sourced, not run.
# Needs: OPERATOR (binary), KUBECONFIG (the e2e cluster), BIN_DIR (kubectl).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
source "$ROOT/hack/versions.sh"
KUBECTL=$BIN_DIR/kubectl
k() { "$KUBECTL" --kubeconfig "$KUBECONFIG" --request-timeout=30s "$@"; }

WORK=$(mktemp -d)
OP_PID=""
NS=""
T0=$(date +%s)
say() { printf '[%4ds] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }
fail() {
  say "FAIL: $*" >&2
  if [[ -n $NS ]]; then
    k get patches -n "$NS" -o wide >&2 || true
    for p in $(k get patches -n "$NS" -o name 2>/dev/null); do
      k get -n "$NS" "$p" -o jsonpath='{.status.history}' >&2 || true; echo >&2
    done
    k get events -n "$NS" --sort-by=.metadata.creationTimestamp 2>/dev/null | tail -30 >&2 || true
  fi
  [[ -f $WORK/operator.log ]] && { echo "--- operator log (tail)" >&2; tail -40 "$WORK/operator.log" >&2; }
  exit 1
}
cleanup() {
  stop_operator
  if [[ -n $NS ]]; then
    # Patches first (their finalizers need the operator, so drop them here).
    for p in $(k get patches -n "$NS" -o name 2>/dev/null); do
      k patch -n "$NS" "$p" --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true
    done
    k delete ns "$NS" --wait=false >/dev/null 2>&1 || true
    for e in $(k get ns -l "patchgate.dev/patch-namespace=$NS" -o name 2>/dev/null); do
      k delete "$e" --wait=false >/dev/null 2>&1 || true
    done
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

start_operator() {
  "$OPERATOR" --kubeconfig "$KUBECONFIG" --leader-election-namespace default \
    --leader-election-id "pg-e2e-$$" --metrics-bind-address 127.0.0.1:0 --grpc-bind-address 127.0.0.1:0 \
    --health-probe-bind-address 127.0.0.1:0 "$@" >>"$WORK/operator.log" 2>&1 &
  OP_PID=$!
}
stop_operator() {
  if [[ -n $OP_PID ]] && kill -0 "$OP_PID" 2>/dev/null; then
    kill -TERM "$OP_PID" 2>/dev/null || true
    wait "$OP_PID" 2>/dev/null || true
  fi
  OP_PID=""
}
kill_operator() {  # SIGKILL: no chance to clean up or release the Lease
  [[ -n $OP_PID ]] && kill -9 "$OP_PID" 2>/dev/null || true
  wait "$OP_PID" 2>/dev/null || true
  OP_PID=""
}

# A fresh production namespace with the demo app (2 replicas), its config and Service.
setup_app() {
  NS=e2e-$1-$$
  k create ns "$NS" >/dev/null
  k apply -n "$NS" -f - >/dev/null <<YAML
apiVersion: v1
kind: ConfigMap
metadata: {name: checkout-config}
data: {POOL: "16"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: checkout}
spec:
  replicas: 2
  progressDeadlineSeconds: 600
  selector: {matchLabels: {app: checkout}}
  template:
    metadata: {labels: {app: checkout}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: app
        image: patchgate.dev/demo-app:1.0
        imagePullPolicy: IfNotPresent
        envFrom: [{configMapRef: {name: checkout-config}}]
        env: [{name: VERSION, value: "v1"}]
        readinessProbe:
          httpGet: {path: /healthz, port: 8080}
          periodSeconds: 2
---
apiVersion: v1
kind: Service
metadata: {name: checkout}
spec:
  selector: {app: checkout}
  ports: [{port: 8080, targetPort: 8080}]
YAML
  k rollout status -n "$NS" deploy/checkout --timeout=120s >/dev/null || fail "demo app did not start"
  say "production: $NS/checkout running v1 (2 replicas), config POOL=16"
}

# phase PATCH -> prints the phase
phase() { k get patch -n "$NS" "$1" -o jsonpath='{.status.phase}' 2>/dev/null || true; }
# wait_phase PATCH TIMEOUT PHASE... : waits until the phase is one of those given
wait_phase() {
  local p=$1 timeout=$2; shift 2
  local deadline=$(( $(date +%s) + timeout )) ph=""
  while (( $(date +%s) < deadline )); do
    ph=$(phase "$p")
    for want in "$@"; do [[ $ph == "$want" ]] && { say "patch $p: $ph — $(k get patch -n "$NS" "$p" -o jsonpath='{.status.message}')"; return 0; }; done
    sleep 1
  done
  fail "patch $p is '$ph', expected one of: $*"
}
prod_env() { k get deploy -n "$NS" checkout -o jsonpath="{.spec.template.spec.containers[0].env[?(@.name=='$1')].value}"; }
prod_config() { k get cm -n "$NS" checkout-config -o jsonpath="{.data.$1}"; }
env_namespaces() { k get ns -l "patchgate.dev/patch-namespace=$NS,patchgate.dev/environment=true" -o name 2>/dev/null | wc -l; }
revisions() { k get controllerrevisions -n "$NS" -l patchgate.dev/target=Deployment.checkout -o name | wc -l; }

# The author lines of a Patch by whoever kubectl is (the test cluster's admin,
# whose rights come from its groups): admission wants every Patch to name its
# creator, and patchgate checks the author's rights with those groups.
me_as_author() {  # the groups come as a JSON list, which is YAML too
  k auth whoami -o jsonpath='  author: {.status.userInfo.username}{"\n"}  authorGroups: {.status.userInfo.groups}'
}

# patch_yaml NAME VERSION [EXTRA-SPEC-YAML] : a Patch that sets VERSION and POOL=64.
# Its author is whoever kubectl is, unless EXTRA-SPEC-YAML names one or
# PATCH_AUTHOR is set (a user name; "-": none, for patchctl to fill in).
patch_yaml() {
  local author
  if [[ ${3:-} == *"author:"* || ${PATCH_AUTHOR:-} == - ]]; then author=""
  elif [[ -n ${PATCH_AUTHOR:-} ]]; then author="  author: $PATCH_AUTHOR"
  else author=$(me_as_author); fi
  cat <<YAML
apiVersion: patchgate.dev/v1alpha1
kind: Patch
metadata: {name: $1, namespace: $NS}
spec:
  target: {kind: Deployment, name: checkout}
  change:
    patch: |
      spec: {template: {spec: {containers: [{name: app, env: [{name: VERSION, value: "$2"}]}]}}}
    config:
    - {kind: ConfigMap, name: checkout-config, patch: '{"data":{"POOL":"64"}}'}
  ticket: INC-4211
  rootCause: "retry storm exhausts the connection pool"
  description: "raise the pool size and ship $2"
  environment: {ttlSecondsAfterFinished: 5}
  verification: {timeoutSeconds: 60, bakeSeconds: 5}
$author
${3:-}
YAML
}
# A test that checks the patched copy through its Service, as clients would.
# It first waits (up to 20 s) for the Service to answer /healthz: a Service made
# a moment ago may not be routed by kube-proxy yet (on this machine an unrouted
# address is answered by the sandbox's egress proxy with its own 404).
SMOKE_TEST='  tests:
  - name: smoke
    image: patchgate.dev/test-runner:1.0
    command: ["/bin/sh", "-c", "url=http://$CHECKOUT_SERVICE_HOST:$CHECKOUT_SERVICE_PORT; i=0; until wget -qO- $url/healthz >/dev/null 2>&1 || [ $i -ge 20 ]; do i=$((i+1)); sleep 1; done; out=$(wget -qO- $url/version) && echo \"saw: $out\" && echo \"$out\" | grep -q \"$WANT\" && echo \"version ok: $out\" > /dev/termination-log"]
    env: [{name: WANT, value: "VERSION_PLACEHOLDER"}]
    timeoutSeconds: 120'
smoke_test() { echo "${SMOKE_TEST//VERSION_PLACEHOLDER/$1}"; }
