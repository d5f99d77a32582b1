#!/usr/bin/env bash
# e2e: a kwok-mode cluster (hack/cluster up --mode kwok --nodes 10) does what
# patchgate's scale tests need:
#   1. 1000 pods of one Deployment become Ready on 10 simulated nodes;
#   2. a Job whose pods are labelled patchgate.dev/simulate=fail ends Failed,
#      after the delay in annotation patchgate.dev/simulate-delay;
#   3. one labelled patchgate.dev/simulate=succeed ends Complete, and so does
#      one without the label (kwok's default stages);
#   4. deleting the namespace removes it and everything in it.
# Usage: KUBECONFIG=<kubeconfig> tests/e2e/cluster/kwok_mode_test.sh
# Env: REPLICAS (default 1000), TIMEOUT (per wait, default 300s).
source "$(dirname "$0")/lib.sh"
REPLICAS=${REPLICAS:-1000}
TIMEOUT=${TIMEOUT:-300s}
DELAY=3

step "cluster has Ready kwok nodes"
nodes=$(k get nodes -l type=kwok --no-headers 2>/dev/null | grep -cw Ready || true)
((nodes > 0)) || fail "no Ready kwok node (is this a kwok-mode cluster?)"
echo "    $nodes kwok nodes Ready"
new_namespace e2e-kwok

step "Deployment of $REPLICAS replicas becomes Ready"
k apply -n "$NS" -f - >/dev/null <<EOF
apiVersion: apps/v1
kind: Deployment
metadata:
  name: scale
spec:
  replicas: $REPLICAS
  selector:
    matchLabels: {app: scale}
  template:
    metadata:
      labels: {app: scale}
    spec:
      containers:
      - name: app
        image: patchgate.dev/demo-app:1.0
        imagePullPolicy: Never
EOF
wait_or_fail "$REPLICAS ready replicas" -n "$NS" deployment/scale \
  --for=jsonpath='{.status.readyReplicas}'="$REPLICAS" --timeout="$TIMEOUT"
ready=$(k get pods -n "$NS" -l app=scale --no-headers | grep -c ' 1/1 *Running ' || true)
((ready == REPLICAS)) || fail "$ready of $REPLICAS pods are Running and 1/1 Ready"
spread=$(k get pods -n "$NS" -l app=scale -o jsonpath='{range .items[*]}{.spec.nodeName}{"\n"}{end}' | sort -u | wc -l)
done_step "$ready pods Running+Ready on $spread nodes"

job() { # name simulate-label
  k apply -n "$NS" -f - >/dev/null <<EOF
apiVersion: batch/v1
kind: Job
metadata:
  name: $1
  labels: {patchgate.dev/simulate: $2}
spec:
  backoffLimit: 0
  template:
    metadata:
      labels: {patchgate.dev/simulate: $2}
      annotations: {patchgate.dev/simulate-delay: "${DELAY}s"}
    spec:
      restartPolicy: Never
      containers:
      - name: runner
        image: patchgate.dev/test-runner:1.0
        imagePullPolicy: Never
EOF
}

step "Job labelled simulate=fail ends Failed after ${DELAY}s"
t0=$(date +%s.%N)
job fails fail
wait_or_fail "Job fails to be Failed" -n "$NS" job/fails --for=condition=Failed --timeout=120s
took=$(since "$t0")
awk -v t="${took%s}" -v d="$DELAY" 'BEGIN { exit !(t >= d) }' ||
  fail "Job failed after $took, before the ${DELAY}s delay"
code=$(k get pods -n "$NS" -l job-name=fails \
  -o jsonpath='{.items[0].status.containerStatuses[0].state.terminated.exitCode}')
[[ $code == 1 ]] || fail "failed pod's exit code is '$code', want 1"
done_step "Job Failed after $took, pod exit code 1"

step "Job labelled simulate=succeed ends Complete"
job succeeds succeed
wait_or_fail "Job succeeds to be Complete" -n "$NS" job/succeeds --for=condition=Complete --timeout=120s
done_step "Job Complete"

step "unlabelled Job ends Complete (kwok's default stages are loaded too)"
job plain none
wait_or_fail "Job plain to be Complete" -n "$NS" job/plain --for=condition=Complete --timeout=120s
done_step "Job Complete"

step "deleting the namespace removes it (namespace + garbage collection)"
k delete namespace "$NS" --wait=false >/dev/null
wait_or_fail "namespace $NS to be deleted" namespace "$NS" --for=delete --timeout="$TIMEOUT"
done_step "namespace gone"

echo "PASS [$TEST] in $(since "$T_START")"
