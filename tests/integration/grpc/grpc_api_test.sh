#!/usr/bin/env bash
# The gRPC API with a client that is not ours (Python grpcio from PyPI, stubs
# generated from operator/proto now), on the integration cluster (kwok):
# - a call without a token is UNAUTHENTICATED; a service account without
#   rights gets PERMISSION_DENIED;
# - a service account with get/watch on patches reads a Patch and watches it
#   through approval to Succeeded (the stream ends by itself);
# - the Patch's test pod (a token bound to it) reports test results, which
#   appear in status.testReports; a service account of another namespace, or
#   the environment's with a token bound to no pod, can't.
# The operator serves its self-signed development certificate; the client
# trusts exactly the certificate the server presents.
# Usage: grpc_api_test.sh OPERATOR_BINARY VENV_DIR
OPERATOR=${1:?usage: $0 OPERATOR_BINARY VENV_DIR}
VENV=${2:?usage: $0 OPERATOR_BINARY VENV_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../../e2e/patch/lib.sh"
KUBECONFIG=${PATCHGATE_TEST_KUBECONFIG:-$("$ROOT/hack/cluster" kubeconfig --name "${PATCHGATE_TEST_CLUSTER:-pg-integration}")}
export KUBECONFIG

# --- The client: a venv (kept between runs) and stubs generated from the proto.
if ! "$VENV/bin/python" -c 'import grpc, grpc_tools' 2>/dev/null; then
  python3 -m venv "$VENV" || fail "cannot create venv $VENV"
  "$VENV/bin/pip" install -q grpcio grpcio-tools || fail "cannot install grpcio from PyPI"
fi
mkdir -p "$WORK/stubs"
"$VENV/bin/python" -m grpc_tools.protoc -I "$ROOT/operator/proto" --python_out="$WORK/stubs" \
  --grpc_python_out="$WORK/stubs" "$ROOT/operator/proto/patchgate/v1/patchgate.proto" || fail "protoc (python) failed"
touch "$WORK/stubs/patchgate/__init__.py" "$WORK/stubs/patchgate/v1/__init__.py"
call() { PYTHONPATH="$WORK/stubs" "$VENV/bin/python" "$HERE/grpc_client.py" "127.0.0.1:$GRPC_PORT" "$WORK/ca.pem" "$@"; }
# expect_code CODE WHO TOKEN ARGS... : the call fails with that gRPC status code (WHO names the token in the log; tokens are never printed)
expect_code() {
  local want=$1 who=$2 token=$3; shift 3
  local got; got=$(call "$token" "$@" 2>&1) && fail "expected $want from $who '$*', got success: $got"
  [[ $got == *"\"code\": \"$want\""* ]] || fail "expected $want from $who '$*', got: $got"
  say "$who: $* -> $want"
}

k apply -f "$ROOT/crds/" >/dev/null
k wait --for=condition=Established crd/patches.patchgate.dev --timeout=60s >/dev/null
setup_app grpc
start_operator --grpc-bind-address 127.0.0.1:0
for _ in $(seq 100); do grep -q '"serving gRPC API"' "$WORK/operator.log" && break; sleep 0.2; done
GRPC_PORT=$(grep -m1 '"serving gRPC API"' "$WORK/operator.log" | sed 's/.*"port":\([0-9]*\).*/\1/')
[[ -n $GRPC_PORT ]] || fail "operator does not serve gRPC"
grep -q 'self-signed certificate' "$WORK/operator.log" || fail "no log line about the self-signed certificate"
"$VENV/bin/python" -c "import ssl,sys; sys.stdout.write(ssl.get_server_certificate(('127.0.0.1', $GRPC_PORT)))" \
  > "$WORK/ca.pem" || fail "cannot fetch the server certificate"
say "gRPC API on 127.0.0.1:$GRPC_PORT (TLS, self-signed)"

# --- Service accounts: a pipeline with get/watch on patches, one without rights.
k apply -n "$NS" -f - >/dev/null <<YAML
apiVersion: v1
kind: ServiceAccount
metadata: {name: pipeline}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: nobody}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: patch-reader}
rules:
- {apiGroups: [patchgate.dev], resources: [patches], verbs: [get, watch]}
- {apiGroups: [apps], resources: [controllerrevisions], verbs: [list]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: pipeline-reads-patches}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: patch-reader}
subjects: [{kind: ServiceAccount, name: pipeline, namespace: $NS}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: approver}
rules:
- {apiGroups: [patchgate.dev], resources: [patches, patchapprovals], verbs: [get, list, watch, create]}
# A Patch's author must be allowed to make its change themself.
- {apiGroups: [apps], resources: [deployments], verbs: [get, patch]}
- {apiGroups: [""], resources: [configmaps], verbs: [get, patch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: people}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: approver}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: bob}
YAML
PIPELINE=$(k create token -n "$NS" pipeline --audience patchgate --duration=1h) || fail "cannot create a token"
PIPELINE_API=$(k create token -n "$NS" pipeline --duration=1h) || fail "cannot create a token"
NOBODY=$(k create token -n "$NS" nobody --audience patchgate --duration=1h) || fail "cannot create a token"

patch_yaml fix v2 "$(smoke_test v2)
  author: alice
  promotion: {approval: {required: true, approvers: 1}}" |
  sed 's/ttlSecondsAfterFinished: 5/ttlSecondsAfterFinished: 600/' | k --as=alice apply -f - >/dev/null
wait_phase fix 180 AwaitingApproval

say "GIVEN a Patch awaiting approval"
expect_code UNAUTHENTICATED "no token" - get "$NS" fix
expect_code UNAUTHENTICATED "bad token" not-a-token get "$NS" fix
expect_code UNAUTHENTICATED "the pipeline's API-server token (not for audience patchgate)" "$PIPELINE_API" get "$NS" fix
expect_code PERMISSION_DENIED "SA nobody (no Role)" "$NOBODY" get "$NS" fix
expect_code PERMISSION_DENIED "SA nobody (no Role)" "$NOBODY" watch "$NS" fix
expect_code NOT_FOUND "SA pipeline" "$PIPELINE" get "$NS" no-such-patch
got=$(call "$PIPELINE" get "$NS" fix) || fail "GetPatch failed: $got"
[[ $got == *'"phase": "AwaitingApproval"'* && $got == *'"ticket": "INC-4211"'* ]] || fail "GetPatch: $got"
say "GetPatch with the pipeline's token: phase AwaitingApproval, ticket INC-4211"

# --- The environment's test pod reports results.
ENV_NS=$(k get patch -n "$NS" fix -o jsonpath='{.status.environment.namespace}')
[[ -n $ENV_NS ]] || fail "no environment namespace in status"
# The test Job's pod (it ran as the environment's default service account):
# a token bound to it is what the pod's automounted token is.
TEST_POD=$(k get pods -n "$ENV_NS" -l patchgate.dev/test -o jsonpath='{.items[0].metadata.name}')
[[ -n $TEST_POD ]] || fail "no test pod in $ENV_NS"
TESTER=$(k create token -n "$ENV_NS" default --bound-object-kind Pod --bound-object-name "$TEST_POD" --audience patchgate --duration=1h) ||
  fail "cannot create a token bound to pod $ENV_NS/$TEST_POD"
UNBOUND=$(k create token -n "$ENV_NS" default --audience patchgate --duration=1h) || fail "cannot create a token in $ENV_NS"
k create sa -n "$NS" reporter >/dev/null
OUTSIDER=$(k create token -n "$NS" reporter --audience patchgate --duration=1h)
expect_code PERMISSION_DENIED "SA reporter of the production namespace" "$OUTSIDER" report "$ENV_NS" fix smoke
expect_code PERMISSION_DENIED "SA pipeline" "$PIPELINE" report "$ENV_NS" fix smoke
expect_code PERMISSION_DENIED "the environment's SA, token bound to no pod" "$UNBOUND" report "$ENV_NS" fix smoke
expect_code PERMISSION_DENIED "the test pod of smoke, for another test" "$TESTER" report "$ENV_NS" fix load
got=$(call "$TESTER" report "$ENV_NS" fix smoke) || fail "ReportTestResults failed: $got"
[[ $got == *'"failed": 1'* ]] || fail "ReportTestResults answer: $got"
reported=$(k get patch -n "$NS" fix -o jsonpath='{.status.testReports.smoke[0].cases[1].name}')
[[ $reported == "POST /pay" ]] || fail "reported results not in status: '$reported'"
say "ReportTestResults with the token of test pod $ENV_NS/$TEST_POD: in status.testReports.smoke"

# --- Watch through approval to the end.
call "$PIPELINE" watch "$NS" fix > "$WORK/watch.out" 2>&1 &
WATCH_PID=$!
for _ in $(seq 50); do [[ -s $WORK/watch.out ]] && break; sleep 0.2; done
grep -q '"type": "CURRENT", "phase": "AwaitingApproval"' "$WORK/watch.out" || fail "watch: $(cat "$WORK/watch.out")"
k --as=bob apply -f - >/dev/null <<YAML
apiVersion: patchgate.dev/v1alpha1
kind: PatchApproval
metadata: {name: lgtm, namespace: $NS}
spec: {patch: fix, patchUID: "$(k get patch -n "$NS" fix -o jsonpath='{.metadata.uid}')", patchGeneration: $(k get patch -n "$NS" fix -o jsonpath='{.metadata.generation}'), approver: bob, comment: "ok"}
YAML
for _ in $(seq 900); do kill -0 "$WATCH_PID" 2>/dev/null || break; sleep 0.2; done
kill -0 "$WATCH_PID" 2>/dev/null && { kill "$WATCH_PID"; fail "watch did not end: $(cat "$WORK/watch.out")"; }
wait "$WATCH_PID" || fail "watch failed: $(cat "$WORK/watch.out")"
grep -q '"type": "MODIFIED", "phase": "Succeeded"' "$WORK/watch.out" || fail "watch never saw Succeeded: $(cat "$WORK/watch.out")"
tail -1 "$WORK/watch.out" | grep -q '"end": "OK"' || fail "watch did not end OK: $(cat "$WORK/watch.out")"
say "WatchPatch followed it to Succeeded: $(grep -c phase "$WORK/watch.out") events, then the stream ended"

got=$(call "$PIPELINE" revisions "$NS" Deployment checkout) || fail "ListRevisions failed: $got"
[[ $got == *'"revisions"'* ]] || fail "ListRevisions: $got"
got=$(call "$PIPELINE" changerecord "$NS" fix) || fail "GetChangeRecord failed: $got"
[[ $got == *INC-4211* && $got == *'| smoke | api | POST /pay | **failed** |'* ]] || fail "GetChangeRecord: $got"
say "GetChangeRecord: Markdown with the ticket and the reported results"
say "PASS"
