#!/usr/bin/env bash
# e2e (real mode, which enforces NetworkPolicies with kube-router): a Patch's
# test environment is isolated for real, by the NetworkPolicies the operator
# writes (patchgate-isolation, patchgate-test-api; operator/src/controllers/
# patch/environment.cc and test_api.cc).
#
#   1. The real operator (the binary given, on this host, its gRPC API on the
#      node's IP: --grpc-test-api-address NODE_IP:PORT) provisions a real Patch
#      of a production Deployment (demo-app "checkout", VERSION=prod-v1; the
#      copy gets env-v2). Its test Job, in the environment, tries the
#      connections itself and says what it saw (log, exit code, termination
#      message), and reports them through the API (patchgate-report):
#      the copy's own Service answers; production's Service (ClusterIP) and
#      pod (IP) and the Kubernetes API are refused; the API takes the report.
#      Known gap, printed, not failed: kube-router filters a pod only once the
#      API shows its IP, so the Job's first attempt, at container start, may
#      still reach production; the Job waits (at most 10 s) for its first
#      refusal, says how long that took, then tries everything.
#   2. In the same environment namespace, under the operator's policies, probe
#      pods (kubectl exec; each attempt printed) show the whole matrix:
#      environment -> production pod and Service: refused; environment ->
#      environment pod and Service: answered; test pod (labelled
#      patchgate.dev/test) -> operator API: reached, unlabelled pod: refused;
#      the same through a policy shaped as the operator writes it for an
#      in-cluster API (--grpc-service: its namespace and pod selector, the
#      target port), to a demo-app pod standing for the API's, reached through
#      its Service; another pod of that namespace: refused;
#      environment -> a kube-system pod standing in for DNS (the real-mode
#      cluster runs no DNS): names resolve over UDP 53 (pod IP and ClusterIP),
#      TCP 53 connects, its port 8080 is refused; environment -> the
#      Kubernetes API, listeners on the node (below and in the NodePort range)
#      and the host's resolver: refused; production -> environment pod and
#      Service: refused.
#   3. Control: the same attempts with the environment's NetworkPolicies
#      deleted all succeed (so each "refused" above came from the enforcer,
#      not from a broken network); put back, refusals return.
# Each attempt prints "attempt: <from> -> <to> -> answered ... | refused (...)".
# Allowed connections are retried (up to 5 x, 1 s apart: rules take a moment
# to be programmed); a connection counts as refused after a 3 s timeout or an
# immediate refusal (kube-router answers a denied SYN with ICMP port
# unreachable: "Connection refused").
#
# Needs root on the node's host (it checks kube-router's iptables chains and
# starts listeners there), python3 there (the DNS stand-in runs the node's
# python3 through a hostPath of / in kube-system) and the images of
# hack/images.sh. About 50 s. Usage:
#   KUBECONFIG=<kubeconfig> tests/e2e/security/isolation_test.sh OPERATOR_BINARY
#   tests/integration/cluster_env.sh run pg-e2e -- tests/e2e/security/isolation_test.sh OPERATOR_BINARY
OPERATOR=${1:?usage: $0 OPERATOR_BINARY}
source "$(dirname "$0")/../cluster/lib.sh"
[[ -x $OPERATOR ]] || fail "operator binary $OPERATOR is not executable"
HERE=$(cd "$(dirname "$0")" && pwd)

suffix=$(date +%s)-$RANDOM
PROD=iso-prod-$suffix            # production
DNS=iso-dns-$suffix              # the DNS stand-in's pod and Service, in kube-system
OPS=iso-ops-$suffix              # stands for an in-cluster operator's namespace
ENV=""                           # the environment namespace, once the operator made it
WORK=$(mktemp -d)
OP_PID=""
HOST_PIDS=""                     # the host listeners of step 2
say() { echo "[$TEST $(since "$T_START")] $*"; }

cleanup() {
  local rc=$?
  trap - EXIT
  if [[ -n $OP_PID ]] && kill -0 "$OP_PID" 2>/dev/null; then
    kill -TERM "$OP_PID" 2>/dev/null || true
    wait "$OP_PID" 2>/dev/null || true
  fi
  for p in $HOST_PIDS; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  if ((rc != 0)) && [[ -f $WORK/operator.log ]]; then
    echo "--- operator log (tail)" >&2
    tail -30 "$WORK/operator.log" >&2
  fi
  # the Patch's finalizer needs the operator: drop it, then the namespaces
  k patch patch -n "$PROD" isolation --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true
  for n in $(k get ns -l "patchgate.dev/patch-namespace=$PROD" -o name 2>/dev/null) namespace/"$PROD" namespace/"$OPS"; do
    k delete "$n" --wait=false --ignore-not-found >/dev/null 2>&1 || true
  done
  k delete pod,service -n kube-system "$DNS" --wait=false --ignore-not-found >/dev/null 2>&1 || true
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT

# --- 0. the enforcer is there ---------------------------------------------------------
step "0. a real node whose NetworkPolicies are enforced (kube-router)"
[[ $(id -u) -eq 0 ]] || fail "needs root (it reads the node's iptables)"
k get nodes -o jsonpath='{.items[*].status.nodeInfo.containerRuntimeVersion}' | grep -q containerd ||
  fail "no node runs containerd: not a real-mode cluster"
NODE_IP=$(k get nodes -o jsonpath='{.items[0].status.addresses[?(@.type=="InternalIP")].address}')
[[ -n $NODE_IP ]] || fail "the node has no InternalIP"
chains=$(iptables -S 2>/dev/null | grep -cE '^-N KUBE-ROUTER-(INPUT|FORWARD|OUTPUT)$' || true)
((chains == 3)) || fail "no kube-router chains in iptables (KUBE-ROUTER-INPUT/FORWARD/OUTPUT): nothing enforces NetworkPolicies here (hack/cluster up --mode real starts kube-router)"
brnf=$(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null || echo missing)
[[ $brnf == 1 ]] || fail "net.bridge.bridge-nf-call-iptables is $brnf: traffic between pods on the bridge bypasses iptables"
done_step "node $NODE_IP; kube-router's chains in iptables; bridge-nf-call-iptables=1"

# --- probes: one attempt, as seen from a pod -----------------------------------------
# Runs in the pod (sh -c PROBE KIND TARGET [NAME]); prints "rc=N t=SECONDS" and
# what the client said. Kinds: http (GET /version: the demo app's VERSION),
# tcp (connect; busybox nc), dns (nslookup NAME at server TARGET), grpc
# (grpcurl, TLS not verified: any gRPC answer means it was reached).
# `timeout 3 wget`, not `wget -T 3`: Debian's static busybox 1.35 wget segfaults with -T.
# shellcheck disable=SC2016  # expanded in the pod
PROBE='
exec 2>/dev/null   # (the shell'"'"'s own "Terminated" when timeout ends a client)
kind=$1 target=$2 name=${3:-}
t0=$(cut -d" " -f1 /proc/uptime)
case $kind in
  http) out=$(timeout 3 wget -q -O - "http://$target/version" 2>&1); rc=$? ;;
  tcp)  out=$(timeout 5 nc -w 3 "${target%:*}" "${target##*:}" </dev/null 2>&1); rc=$? ;;
  dns)  out=$(timeout 3 nslookup "$name" "$target" 2>&1); rc=$? ;;
  grpc) out=$(timeout 4 grpcurl -insecure -connect-timeout 3 "$target" list 2>&1); rc=$? ;;
esac
t1=$(cut -d" " -f1 /proc/uptime)
echo "rc=$rc t=$(awk -v a="$t0" -v b="$t1" "BEGIN { printf \"%.1f\", b - a }")"
printf "%s\n" "$out"
'

# verdict KIND RAW -> sets ANSWER (what was answered) or REFUSAL (why not)
verdict() {
  local kind=$1 raw=$2 rc t out
  rc=$(sed -n '1s/^rc=\([0-9]*\) .*/\1/p' <<<"$raw")
  t=$(sed -n '1s/.* t=//p' <<<"$raw")
  out=$(sed '1d' <<<"$raw" | tr -s '\n' ' ' | sed 's/ *$//')
  ANSWER="" REFUSAL=""
  case $kind in
    http)
      if [[ $rc == 0 ]]; then ANSWER="\"$out\""; fi ;;
    tcp)
      # busybox nc exits at once when the peer closes, or is still connected when
      # timeout ends it (rc 124/143): both mean connected; a refusal says so
      if [[ $out != *"Connection refused"* && $out != *"timed out"* && ($rc == 0 || $rc == 124 || $rc == 143) ]]; then
        ANSWER="connected"
      fi ;;
    dns)
      if [[ $rc == 0 && $out == *"Address:"*"Name:"* ]]; then
        ANSWER="resolved $(tr -s ' \t' '  ' <<<"$out" | grep -oE 'Name: [^ ]+ Address: [0-9.]+' | head -1)"
      elif [[ $out == *NXDOMAIN* ]]; then
        ANSWER="answered NXDOMAIN"
      fi ;;
    grpc)
      if [[ $out != *"Failed to dial"* && $out != *"connection refused"* && $out != *"deadline exceeded"* &&
            $rc != 124 && $rc != 143 ]]; then
        ANSWER="TLS + gRPC answered: $(cut -c1-90 <<<"$out")"
      fi ;;
  esac
  if [[ -z $ANSWER ]]; then
    if [[ $rc == 124 || $rc == 143 ]]; then REFUSAL="no answer in ${t}s"
    elif [[ $out == *"Connection refused"* || $out == *"connection refused"* ]]; then REFUSAL="connection refused after ${t}s"
    elif [[ $out == *"deadline exceeded"* ]]; then REFUSAL="no connection in ${t}s (grpcurl: context deadline exceeded)"
    else REFUSAL="$(cut -c1-100 <<<"$out") (rc $rc, ${t}s)"
    fi
  fi
}

# attempt WANT FROM-DESC NS POD TO-DESC KIND TARGET [NAME] [EXPECT]
#   WANT: answered (retried up to 5 x; EXPECT must be in the answer) | refused (once)
ATTEMPTS=0
attempt() {
  local want=$1 from=$2 ns=$3 pod=$4 to=$5 kind=$6 target=$7 name=${8:-} expect=${9:-} raw i tries=1 shown
  [[ $want == answered ]] && tries=5
  for ((i = 1; i <= tries; i++)); do
    raw=$(k exec -n "$ns" "$pod" -- sh -c "$PROBE" probe "$kind" "$target" "$name" 2>&1) ||
      [[ $raw == rc=* ]] || fail "kubectl exec into $ns/$pod failed: $raw"
    verdict "$kind" "$raw"
    if [[ $want == answered && -n $ANSWER && $ANSWER == *"$expect"* ]]; then break; fi
    if [[ $want == refused ]]; then break; fi
    ((i < tries)) && sleep 1
  done
  shown=$([[ -n $ANSWER ]] && echo "answered: $ANSWER" || echo "refused ($REFUSAL)")
  ((i > 1 && i <= tries)) && shown+=" [try $i]"
  echo "    attempt: $from -> $to -> $shown"
  ATTEMPTS=$((ATTEMPTS + 1))
  if [[ $want == answered ]]; then
    [[ -n $ANSWER ]] || fail "$from -> $to: expected an answer, got: $REFUSAL"
    [[ $ANSWER == *"$expect"* ]] || fail "$from -> $to: expected '$expect' in the answer, got: $ANSWER"
  else
    [[ -z $ANSWER ]] || fail "$from -> $to: expected a refusal, got: $ANSWER"
    # a refusal must look like one: a connection refused (kube-router's REJECT
    # answers ICMP port unreachable) or no answer; not, say, an HTTP error
    # from something else on the way
    [[ $REFUSAL == *"connection refused"* || $REFUSAL == *"no answer"* || $REFUSAL == *"deadline exceeded"* ||
       $REFUSAL == *"timed out"* ]] || fail "$from -> $to: neither answered nor refused: $REFUSAL"
  fi
}

pod_ip() { k get pod -n "$1" "$2" -o jsonpath='{.status.podIP}'; }
svc_ip() { k get service -n "$1" "$2" -o jsonpath='{.spec.clusterIP}'; }

# a pod of the demo app or the test runner, with small resources (the
# environment has a ResourceQuota)
run_pod() { # NS NAME IMAGE-KIND(web|runner) [LABELS-YAML] [VERSION]
  local ns=$1 name=$2 kind=$3 labels=${4:-"{app: $2}"} version=${5:-$2} image cmd
  if [[ $kind == web ]]; then
    image=patchgate.dev/demo-app:1.0 cmd=""
  else
    image=patchgate.dev/test-runner:1.0 cmd='command: [sh, -c, "trap \"exit 0\" TERM; sleep 3600 & wait"]'
  fi
  k apply -n "$ns" -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: $name, labels: $labels}
spec:
  terminationGracePeriodSeconds: 1
  automountServiceAccountToken: false
  containers:
  - name: main
    image: $image
    imagePullPolicy: Never
    $cmd
    env: [{name: VERSION, value: "$version"}]
    resources:
      requests: {cpu: 10m, memory: 16Mi, ephemeral-storage: 1Mi}
      limits: {cpu: 100m, memory: 64Mi, ephemeral-storage: 64Mi}
YAML
}

# --- 1. the real operator, a real Patch, its test Job tries the connections ------------
step "1. production, the DNS stand-in, the operator and a Patch whose test Job tries the connections"
k apply -f "$REPO/crds/" >/dev/null
k create namespace "$PROD" >/dev/null
k apply -n "$PROD" -f - >/dev/null <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata: {name: checkout}
spec:
  replicas: 1
  selector: {matchLabels: {app: checkout}}
  template:
    metadata: {labels: {app: checkout}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: app
        image: patchgate.dev/demo-app:1.0
        imagePullPolicy: IfNotPresent
        env: [{name: VERSION, value: prod-v1}]
        readinessProbe:
          httpGet: {path: /healthz, port: 8080}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: checkout}
spec:
  selector: {app: checkout}
  ports: [{port: 8080, targetPort: 8080}]
YAML
# The DNS stand-in: the node's own python3 (hostPath /, chroot) runs
# dns_standin.py from this checkout; kube-system is not under Pod Security.
k apply -n kube-system -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: $DNS, labels: {app: $DNS}}
spec:
  terminationGracePeriodSeconds: 1
  automountServiceAccountToken: false
  containers:
  - name: dns
    image: patchgate.dev/test-runner:1.0
    imagePullPolicy: Never
    command: [chroot, /host, /usr/bin/python3, -u, $HERE/dns_standin.py, 10.53.53.53]
    volumeMounts: [{name: host, mountPath: /host, readOnly: true}]
  volumes: [{name: host, hostPath: {path: /}}]
---
apiVersion: v1
kind: Service
metadata: {name: $DNS}
spec:
  selector: {app: $DNS}
  ports:
  - {name: dns-udp, port: 53, protocol: UDP}
  - {name: dns-tcp, port: 53, protocol: TCP}
  - {name: http, port: 8080, protocol: TCP}
YAML
run_pod "$PROD" prod-web web
run_pod "$PROD" prod-client runner
k rollout status -n "$PROD" deploy/checkout --timeout=120s >/dev/null || fail "production checkout did not start"
for p in "$PROD/prod-web" "$PROD/prod-client" "kube-system/$DNS"; do
  wait_or_fail "pod $p Ready" -n "${p%%/*}" "pod/${p#*/}" --for=condition=Ready --timeout=120s
done
for i in $(seq 30); do [[ $(k logs -n kube-system "$DNS" 2>/dev/null) == *ready:* ]] && break; sleep 0.5; done
[[ $(k logs -n kube-system "$DNS") == *ready:* ]] || fail "the DNS stand-in did not start: $(k logs -n kube-system "$DNS" 2>&1 | tail -3)"
PROD_POD=$(k get pods -n "$PROD" -l app=checkout -o jsonpath='{.items[0].status.podIP}')
PROD_SVC=$(svc_ip "$PROD" checkout)
say "   production $PROD: checkout pod $PROD_POD:8080, Service $PROD_SVC:8080 (prod-v1); DNS stand-in kube-system/$DNS"

# free_port LOW COUNT: a free TCP port in LOW..LOW+COUNT-1
free_port() {
  local p i
  for i in $(seq 50); do
    p=$(($1 + RANDOM % $2))
    [[ -z $(ss -Hltn "sport = :$p") ]] && { echo "$p"; return; }
  done
  fail "no free port in $1+$2"
}
# The API on the node's IP, at a free port below the kernel's ephemeral range.
API_PORT=$(free_port 20000 12768)
"$OPERATOR" --kubeconfig "$KUBECONFIG" --leader-election-namespace default --leader-election-id "iso-$suffix" \
  --metrics-bind-address 127.0.0.1:0 --health-probe-bind-address 127.0.0.1:0 \
  --grpc-bind-address "0.0.0.0:$API_PORT" --grpc-test-api-address "$NODE_IP:$API_PORT" \
  --watch-namespaces "$PROD" >>"$WORK/operator.log" 2>&1 &
OP_PID=$!
API=$NODE_IP:$API_PORT
say "   operator (pid $OP_PID) serves its API at $API (test pods get --grpc-test-api-address $API)"

# The test: every connection from inside the environment, as its test pod.
# The first packets of a new pod can pass before the enforcer has seen the
# pod's IP (kube-router programs a pod's rules once the API shows its IP), so
# the Job first waits until its own address is filtered: until a connection
# to production is refused (at most 10 s; how long it took is printed), then
# tries everything.
# shellcheck disable=SC2016  # expanded in the pod
JOB_SCRIPT='
fails=0 cases="" n=0
now() { cut -d" " -f1 /proc/uptime; }
get() { timeout 3 wget -q -O - "http://$1/version" 2>&1; }
record() { # name passed output
  n=$((n + 1))
  cases="$cases${cases:+,}{\"name\":\"$1\",\"passed\":$2,\"output\":\"$(printf %s "$3" | tr -d "\"\\\\" | tr "\n" " ")\"}"
  [ "$2" = true ] || fails=$((fails + 1))
}
t0=$(now)
first=$(get "$PROD_SVC") && first="answered \"$first\"" || first="refused ($first)"
echo "attempt (at container start): test pod -> production Service checkout $PROD_SVC -> $first"
i=0
while out=$(get "$PROD_SVC"); do
  i=$((i + 1)); [ $i -ge 100 ] && break; sleep 0.1
done
echo "    (refused $(awk -v a=$t0 -v b=$(now) "BEGIN { printf \"%.1f\", b - a }")s after container start)"
own="$CHECKOUT_SERVICE_HOST:$CHECKOUT_SERVICE_PORT"
i=0
until out=$(get "$own") && [ "$out" = "$WANT" ]; do
  i=$((i + 1)); [ $i -ge 20 ] && break; sleep 1
done
if [ "$out" = "$WANT" ]; then
  echo "attempt: test pod -> own environment Service checkout $own -> answered \"$out\""; record own-service true "$out"
else
  echo "attempt: test pod -> own environment Service checkout $own -> FAILED: $out"; record own-service false "$out"
fi
for target in "production-service:$PROD_SVC" "production-pod:$PROD_POD"; do
  what=${target%%:*} addr=${target#*:}
  if out=$(get "$addr"); then
    echo "attempt: test pod -> $what checkout $addr -> answered \"$out\" (LEAK)"; record "$what" false "answered: $out"
  else
    echo "attempt: test pod -> $what checkout $addr -> refused ($out)"; record "$what" true "refused: $out"
  fi
done
kapi="$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT"
out=$(timeout 5 nc -w 3 "$KUBERNETES_SERVICE_HOST" "$KUBERNETES_SERVICE_PORT" </dev/null 2>&1); rc=$?
case "$rc:$out" in
  *refused*|*"timed out"*) ok=1 ;;
  0:*|124:*|143:*) ok=0 ;;
  *) ok=1 ;;
esac
if [ $ok = 1 ]; then
  echo "attempt: test pod -> Kubernetes API $kapi -> refused ($out)"; record kubernetes-api true "refused: $out"
else
  echo "attempt: test pod -> Kubernetes API $kapi -> connected (LEAK)"; record kubernetes-api false "connected"
fi
report="{\"suites\":[{\"name\":\"isolation\",\"cases\":[$cases]}]}"
if out=$(printf "%s" "$report" | timeout 10 patchgate-report 2>&1); then
  echo "attempt: test pod -> patchgate API $PATCHGATE_API_ADDRESS (patchgate-report) -> answered: $(echo $out | tr -d "\n")"
  n=$((n + 1))
else
  echo "attempt: test pod -> patchgate API $PATCHGATE_API_ADDRESS (patchgate-report) -> FAILED: $out"
  n=$((n + 1)); fails=$((fails + 1))
fi
summary="isolation: $((n - fails))/$n as expected; at start: $first"
echo "$summary" > /dev/termination-log
echo "$summary"
[ $fails = 0 ]
'
# Its author is whoever kubectl is (with the groups, which make the admin's rights).
AUTHOR=$(k auth whoami -o jsonpath='  author: {.status.userInfo.username}{"\n"}  authorGroups: {.status.userInfo.groups}')
k apply -f - >/dev/null <<YAML
apiVersion: patchgate.dev/v1alpha1
kind: Patch
metadata: {name: isolation, namespace: $PROD}
spec:
  target: {kind: Deployment, name: checkout}
  change:
    patch: |
      spec: {template: {spec: {containers: [{name: app, env: [{name: VERSION, value: env-v2}]}]}}}
$AUTHOR
  ticket: SEC-12
  rootCause: "isolation e2e"
  description: "a copy whose test tries to leave its environment"
  environment: {ttlSecondsAfterFinished: 900}
  verification: {timeoutSeconds: 60, bakeSeconds: 1}
  tests:
  - name: isolation
    image: patchgate.dev/test-runner:1.0
    command:
    - sh
    - -c
    - |
$(sed 's/^/      /' <<<"$JOB_SCRIPT")
    env:
    - {name: PROD_SVC, value: "$PROD_SVC:8080"}
    - {name: PROD_POD, value: "$PROD_POD:8080"}
    - {name: WANT, value: env-v2}
    timeoutSeconds: 120
YAML
result=""
for i in $(seq 240); do
  result=$(k get patch -n "$PROD" isolation -o jsonpath='{.status.tests[0].result}' 2>/dev/null || true)
  [[ $result == Passed || $result == Failed ]] && break
  [[ $(k get patch -n "$PROD" isolation -o jsonpath='{.status.phase}') == Failed ]] && break
  kill -0 "$OP_PID" 2>/dev/null || fail "the operator exited: $(tail -5 "$WORK/operator.log")"
  sleep 1
done
ENV=$(k get patch -n "$PROD" isolation -o jsonpath='{.status.environment.namespace}')
job=$(k get patch -n "$PROD" isolation -o jsonpath='{.status.tests[0].job}')
[[ -n $ENV && -n $job ]] || fail "the Patch has no environment or test Job: $(k get patch -n "$PROD" isolation -o jsonpath='{.status.phase}: {.status.message}')"
say "   environment $ENV; test Job $job said:"
k logs -n "$ENV" "job/$job" 2>&1 | sed 's/^/      /'
message=$(k get patch -n "$PROD" isolation -o jsonpath='{.status.tests[0].message}')
[[ $result == Passed ]] || fail "the test Job failed ($result): $message"
reported=$(k get patch -n "$PROD" isolation -o jsonpath='{range .status.testReports.isolation[*].cases[*]}{.name}={.passed} {end}')
[[ $reported == *"own-service=true"* && $reported == *"production-service=true"* && $reported == *"production-pod=true"* &&
   $reported == *"kubernetes-api=true"* ]] || fail "the API did not record the Job's report: '$reported'"
say "   Patch status: test Passed ($message); reported through the API: $reported"
if [[ $message == *"at start: answered"* ]]; then
  say "   known gap: at container start the test pod still reached production: kube-router filters a pod only once the API shows its IP ($(k logs -n "$ENV" "job/$job" | sed -n 's/.*(refused \(.*\) after container start).*/refused \1 after its start/p'))"
fi
for p in patchgate-isolation patchgate-test-api; do
  k get networkpolicy -n "$ENV" "$p" -o json >"$WORK/$p.json" || fail "no NetworkPolicy $p in $ENV"
done
say "   the operator's policies in $ENV:"
k get networkpolicy -n "$ENV" -o jsonpath='{range .items[*]}      {.metadata.name}: {.spec}{"\n"}{end}'
done_step "the test Job, in the environment, saw only what its policies allow; the API took its report"

# --- 2. the whole matrix from probe pods, under the operator's policies ---------------
step "2. probe pods in $ENV and $PROD, under the operator's NetworkPolicies"
run_pod "$ENV" env-web web "{app: env-web}" env-web
run_pod "$ENV" env-plain runner "{app: env-plain}"
run_pod "$ENV" env-tester runner "{app: env-tester, patchgate.dev/test: probe}"
k apply -n "$ENV" -f - >/dev/null <<'YAML'
apiVersion: v1
kind: Service
metadata: {name: env-web}
spec:
  selector: {app: env-web}
  ports: [{port: 8080, targetPort: 8080}]
YAML
k apply -n "$PROD" -f - >/dev/null <<'YAML'
apiVersion: v1
kind: Service
metadata: {name: prod-web}
spec:
  selector: {app: prod-web}
  ports: [{port: 8080, targetPort: 8080}]
YAML
# An in-cluster operator's API, simulated: a demo-app pod behind a Service
# (port 9443 -> 8080) in a namespace of its own, and the policy the operator
# writes for --grpc-service (test_api.cc: the Service's namespace and selector,
# its target port), beside the operator's own for this host-run operator.
k create namespace "$OPS" >/dev/null
run_pod "$OPS" api web "{app: patchgate-api}" in-cluster-api
run_pod "$OPS" other web "{app: other}" ops-other
k apply -n "$OPS" -f - >/dev/null <<'YAML'
apiVersion: v1
kind: Service
metadata: {name: patchgate-api}
spec:
  selector: {app: patchgate-api}
  ports: [{name: grpc, port: 9443, targetPort: 8080}]
YAML
cat >"$WORK/patchgate-test-api-service.json" <<JSON
{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
 "metadata": {"name": "patchgate-test-api-service", "namespace": "$ENV"},
 "spec": {"podSelector": {"matchExpressions": [{"key": "patchgate.dev/test", "operator": "Exists"}]},
          "policyTypes": ["Egress"],
          "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "$OPS"}},
                              "podSelector": {"matchLabels": {"app": "patchgate-api"}}}],
                      "ports": [{"protocol": "TCP", "port": 8080}]}]}}
JSON
k apply -f "$WORK/patchgate-test-api-service.json" >/dev/null
for p in "$ENV/env-web" "$ENV/env-plain" "$ENV/env-tester" "$OPS/api" "$OPS/other"; do
  wait_or_fail "pod $p Ready" -n "${p%%/*}" "pod/${p#*/}" --for=condition=Ready --timeout=120s
done
ENV_WEB=$(pod_ip "$ENV" env-web):8080 ENV_WEB_SVC=$(svc_ip "$ENV" env-web):8080
ENV_COPY_SVC=$(svc_ip "$ENV" checkout):8080
PROD_WEB=$(pod_ip "$PROD" prod-web):8080 PROD_WEB_SVC=$(svc_ip "$PROD" prod-web):8080
DNS_POD=$(pod_ip kube-system "$DNS") DNS_SVC=$(svc_ip kube-system "$DNS")
KAPI=$(svc_ip default kubernetes):443
HOST_DNS=$(awk '/^nameserver/ {print $2; exit}' /etc/resolv.conf)
OPS_API_SVC=$(svc_ip "$OPS" patchgate-api):9443 OPS_OTHER=$(pod_ip "$OPS" other):8080
# Two listeners on the node itself (like the operator's API, not pods): one at
# a port below the NodePort range, one in it.
mkdir -p "$WORK/host-low" "$WORK/host-nodeport"
echo host-low >"$WORK/host-low/version"
echo host-nodeport >"$WORK/host-nodeport/version"
HOST_LOW=$NODE_IP:$(free_port 20000 10000) HOST_NP=$NODE_IP:$(free_port 30000 2768)
for h in "low:$HOST_LOW" "nodeport:$HOST_NP"; do
  addr=${h#*:}
  python3 -m http.server --bind "${addr%:*}" --directory "$WORK/host-${h%%:*}" "${addr##*:}" >/dev/null 2>&1 &
  HOST_PIDS+=" $!"
done
# Until kube-router has programmed the probe pods (their IPs came after the
# policies), a refusal is not yet sure: wait for one from each (at most 10 s).
wait_enforced() { # NS POD TARGET
  local i raw
  for i in $(seq 50); do
    raw=$(k exec -n "$1" "$2" -- sh -c "$PROBE" probe http "$3" 2>&1 || true)
    verdict http "$raw"; [[ -z $ANSWER ]] && return 0; sleep 0.2
  done
  fail "$1/$2 still reaches $3 after 10 s: is kube-router running? (hack/cluster status)"
}
wait_enforced "$ENV" env-plain "$PROD_WEB"
wait_enforced "$ENV" env-tester "$PROD_WEB"
wait_enforced "$PROD" prod-client "$ENV_WEB"

matrix() { # policies: on|off
  local DP=refused   # what a connection the policies deny does: refused, or answered without them
  [[ $1 == off ]] && DP=answered
  attempt "$DP" "environment pod" "$ENV" env-plain "production pod prod-web $PROD_WEB" http "$PROD_WEB" "" prod-web
  attempt "$DP" "environment pod" "$ENV" env-plain "production Service prod-web $PROD_WEB_SVC" http "$PROD_WEB_SVC" "" prod-web
  attempt "$DP" "test pod" "$ENV" env-tester "production pod prod-web $PROD_WEB" http "$PROD_WEB" "" prod-web
  attempt "$DP" "test pod" "$ENV" env-tester "production Service prod-web $PROD_WEB_SVC" http "$PROD_WEB_SVC" "" prod-web
  attempt answered "environment pod" "$ENV" env-plain "environment pod env-web $ENV_WEB" http "$ENV_WEB" "" env-web
  attempt answered "environment pod" "$ENV" env-plain "environment Service env-web $ENV_WEB_SVC" http "$ENV_WEB_SVC" "" env-web
  attempt answered "test pod" "$ENV" env-tester "environment Service checkout (the copy) $ENV_COPY_SVC" http "$ENV_COPY_SVC" "" env-v2
  attempt answered "test pod (patchgate.dev/test)" "$ENV" env-tester "operator API $API" grpc "$API" "" "TLS + gRPC"
  attempt "$DP" "environment pod (no test label)" "$ENV" env-plain "operator API $API" grpc "$API" "" "TLS + gRPC"
  attempt answered "test pod (patchgate.dev/test)" "$ENV" env-tester "in-cluster API Service $OPS/patchgate-api $OPS_API_SVC" http "$OPS_API_SVC" "" in-cluster-api
  attempt "$DP" "environment pod (no test label)" "$ENV" env-plain "in-cluster API Service $OPS/patchgate-api $OPS_API_SVC" http "$OPS_API_SVC" "" in-cluster-api
  attempt "$DP" "test pod (patchgate.dev/test)" "$ENV" env-tester "another pod of $OPS $OPS_OTHER" http "$OPS_OTHER" "" ops-other
  attempt answered "environment pod" "$ENV" env-plain "kube-system DNS stand-in pod $DNS_POD:53/udp (svc.patchgate.test)" dns "$DNS_POD" svc.patchgate.test 10.53.53.53
  attempt answered "environment pod" "$ENV" env-plain "kube-system DNS stand-in Service $DNS_SVC:53/udp (svc.patchgate.test)" dns "$DNS_SVC" svc.patchgate.test 10.53.53.53
  attempt answered "environment pod" "$ENV" env-plain "kube-system DNS stand-in pod $DNS_POD:53/tcp" tcp "$DNS_POD:53" "" connected
  attempt "$DP" "environment pod" "$ENV" env-plain "kube-system DNS stand-in pod $DNS_POD:8080 (not DNS)" tcp "$DNS_POD:8080" "" connected
  attempt "$DP" "environment pod" "$ENV" env-plain "Kubernetes API $KAPI" tcp "$KAPI" "" connected
  attempt "$DP" "environment pod" "$ENV" env-plain "a listener on the node $HOST_LOW" http "$HOST_LOW" "" host-low
  # (kube-router's default would let pods reach the node's own NodePort range,
  # 30000-32767, before any policy: hack/lib/real-node.sh closes that)
  attempt "$DP" "environment pod" "$ENV" env-plain "a listener on the node in the NodePort range $HOST_NP" http "$HOST_NP" "" host-nodeport
  attempt "$DP" "production pod" "$PROD" prod-client "environment pod env-web $ENV_WEB" http "$ENV_WEB" "" env-web
  attempt "$DP" "production pod" "$PROD" prod-client "environment Service env-web $ENV_WEB_SVC" http "$ENV_WEB_SVC" "" env-web
  attempt "$DP" "production pod" "$PROD" prod-client "environment Service checkout (the copy) $ENV_COPY_SVC" http "$ENV_COPY_SVC" "" env-v2
  attempt answered "production pod" "$PROD" prod-client "production Service prod-web $PROD_WEB_SVC" http "$PROD_WEB_SVC" "" prod-web
}
matrix on
# The host's resolver (not a kube-system pod): what environment pods would
# need without cluster DNS. Printed, and must be refused under the policy.
host_dns() { # want
  attempt "$1" "environment pod" "$ENV" env-plain "the host's resolver $HOST_DNS:53/udp (kubernetes.io)" dns "$HOST_DNS" kubernetes.io ""
}
host_dns refused
done_step "$ATTEMPTS attempts as the policies say"

# --- 3. control: the same without the policies, then with them again --------------------
step "3. control: the environment's NetworkPolicies deleted, the same attempts all succeed"
k delete networkpolicy -n "$ENV" patchgate-isolation patchgate-test-api patchgate-test-api-service >/dev/null
ATTEMPTS=0
matrix off
# Whether the sandbox's resolver answers pods at all is this machine's
# business: printed, not required.
raw=$(k exec -n "$ENV" env-plain -- sh -c "$PROBE" probe dns "$HOST_DNS" kubernetes.io 2>&1 || true)
verdict dns "$raw"
echo "    attempt (informational): environment pod -> the host's resolver $HOST_DNS:53/udp (kubernetes.io) -> $([[ -n $ANSWER ]] && echo "answered: $ANSWER" || echo "refused ($REFUSAL)")"
done_step "$ATTEMPTS attempts, each answered without the policies"

step "3b. the policies put back (as the operator wrote them): refused again"
for p in patchgate-isolation patchgate-test-api; do
  # without server-set metadata
  python3 -c 'import json,sys; o=json.load(open(sys.argv[1])); m=o["metadata"]; o["metadata"]={k: m[k] for k in ("name","namespace","labels") if k in m}; o.pop("status",None); print(json.dumps(o))' \
    "$WORK/$p.json" | k apply -f - >/dev/null
done
k apply -f "$WORK/patchgate-test-api-service.json" >/dev/null
ATTEMPTS=0
wait_enforced "$ENV" env-plain "$PROD_WEB"
wait_enforced "$PROD" prod-client "$ENV_WEB"
attempt refused "environment pod" "$ENV" env-plain "production Service prod-web $PROD_WEB_SVC" http "$PROD_WEB_SVC"
attempt refused "environment pod" "$ENV" env-plain "production pod prod-web $PROD_WEB" http "$PROD_WEB"
attempt refused "production pod" "$PROD" prod-client "environment pod env-web $ENV_WEB" http "$ENV_WEB"
attempt answered "test pod (patchgate.dev/test)" "$ENV" env-tester "operator API $API" grpc "$API" "" "TLS + gRPC"
attempt refused "environment pod (no test label)" "$ENV" env-plain "operator API $API" grpc "$API"
attempt answered "test pod (patchgate.dev/test)" "$ENV" env-tester "in-cluster API Service $OPS/patchgate-api $OPS_API_SVC" http "$OPS_API_SVC" "" in-cluster-api
attempt refused "environment pod (no test label)" "$ENV" env-plain "in-cluster API Service $OPS/patchgate-api $OPS_API_SVC" http "$OPS_API_SVC"
done_step "refused again"

echo "PASS [$TEST] in $(since "$T_START")"
