#!/usr/bin/env bash
# e2e: a real-mode cluster (hack/cluster up --mode real) really runs pods:
#   1. a Deployment of 2 demo-app replicas and a Service: pods Running + Ready
#      (their readiness probe hits the app's /healthz);
#   2. a Job (test-runner image) wgets the Service through the address in its
#      DEMO_SERVICE_HOST/_PORT env vars (ClusterIP, routed by kube-proxy) and
#      completes;
#   3. `kubectl logs` shows the app's output and the Job's; `kubectl exec` works.
# Usage: KUBECONFIG=<kubeconfig> tests/e2e/cluster/real_mode_test.sh
source "$(dirname "$0")/lib.sh"
VERSION=e2e-$RANDOM

step "cluster has a Ready real node"
node=$(k get nodes -o jsonpath='{range .items[?(@.status.nodeInfo.containerRuntimeVersion)]}{.status.nodeInfo.containerRuntimeVersion}{"\n"}{end}' | grep -m1 containerd || true)
[[ -n $node ]] || fail "no node runs containerd (is this a real-mode cluster?)"
wait_or_fail "nodes Ready" nodes --all --for=condition=Ready --timeout=60s
echo "    runtime: $node"
new_namespace e2e-real

step "Deployment (2 x demo-app $VERSION) + Service become Ready"
k apply -n "$NS" -f - >/dev/null <<EOF
apiVersion: apps/v1
kind: Deployment
metadata:
  name: demo
spec:
  replicas: 2
  selector:
    matchLabels: {app: demo}
  template:
    metadata:
      labels: {app: demo}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: app
        image: patchgate.dev/demo-app:1.0
        imagePullPolicy: Never
        env:
        - {name: VERSION, value: "$VERSION"}
        ports:
        - {containerPort: 8080}
        readinessProbe:
          httpGet: {path: /healthz, port: 8080}
          periodSeconds: 2
---
apiVersion: v1
kind: Service
metadata:
  name: demo
spec:
  selector: {app: demo}
  ports:
  - {port: 80, targetPort: 8080}
EOF
wait_or_fail "2 ready replicas of demo" -n "$NS" deployment/demo \
  --for=jsonpath='{.status.readyReplicas}'=2 --timeout=120s
wait_or_fail "demo pods Ready" -n "$NS" pods -l app=demo --for=condition=Ready --timeout=60s
running=$(k get pods -n "$NS" -l app=demo -o jsonpath='{range .items[*]}{.status.phase} {.status.podIP}{"\n"}{end}')
[[ $(grep -c '^Running 10\.' <<<"$running") == 2 ]] || fail "want 2 Running pods with pod IPs, got: $running"
done_step "2 pods Running+Ready: $(awk '{print $2}' <<<"$running" | tr '\n' ' ')"

step "Job (test-runner) reaches the Service via \$DEMO_SERVICE_HOST:\$DEMO_SERVICE_PORT"
# The Service exists before the Job's pod, so the kubelet injects its env vars.
# A few tries: the first packets may race kube-proxy's rule sync. `timeout 3
# wget`, not `wget -T 3`: Debian's static busybox 1.35 wget segfaults with -T.
k apply -n "$NS" -f - >/dev/null <<'EOF'
apiVersion: batch/v1
kind: Job
metadata:
  name: probe
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: runner
        image: patchgate.dev/test-runner:1.0
        imagePullPolicy: Never
        command:
        - sh
        - -c
        - |
          url="http://$DEMO_SERVICE_HOST:$DEMO_SERVICE_PORT"
          echo "test-runner: GET $url/version"
          for i in 1 2 3 4 5 6 7 8 9 10; do
            if v=$(timeout 3 wget -q -O - "$url/version"); then
              echo "test-runner: version=$v"
              timeout 3 wget -q -O - "$url/healthz" | sed 's/^/test-runner: healthz=/'
              exit 0
            fi
            echo "test-runner: try $i failed"; sleep 1
          done
          exit 1
EOF
if ! k wait -n "$NS" job/probe --for=condition=Complete --timeout=120s >/dev/null 2>&1; then
  k logs -n "$NS" job/probe >&2 || true
  fail "Job probe did not complete"
fi
job_log=$(k logs -n "$NS" job/probe)
grep -qx "test-runner: version=$VERSION" <<<"$job_log" || fail "Job's output lacks version=$VERSION: $job_log"
done_step "Job Complete; it read version=$VERSION through the Service"

step "kubectl logs shows the app's output; kubectl exec works"
app_log=$(k logs -n "$NS" -l app=demo --tail=-1 --prefix)
grep -q "demo-app starting version=$VERSION" <<<"$app_log" || fail "app logs lack the start line: $(head -5 <<<"$app_log")"
grep -q "demo-app request method=GET path=/version" <<<"$app_log" ||
  fail "app logs lack the Job's request: $(tail -5 <<<"$app_log")"
echo "    $(grep -m1 'demo-app starting' <<<"$app_log")"
echo "    $(grep -m1 'path=/version' <<<"$app_log")"
out=$(k exec -n "$NS" deployment/demo -- wget -q -O - http://127.0.0.1:8080/version) ||
  fail "kubectl exec failed"
[[ $out == "$VERSION" ]] || fail "kubectl exec: got '$out', want '$VERSION'"
done_step "logs and exec"

step "cleanup"
k delete namespace "$NS" --wait=false >/dev/null
wait_or_fail "namespace $NS to be deleted" namespace "$NS" --for=delete --timeout=120s
done_step "namespace deleted"

echo "PASS [$TEST] in $(since "$T_START")"
