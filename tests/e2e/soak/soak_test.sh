#!/usr/bin/env bash
# Soak (issue 16): Patch life cycles back to back on a kwok cluster for a fixed
# time while the operator's RSS, threads and open fds are sampled.
#
#   soak_test.sh OPERATOR_BINARY [--seconds N]
#
# Each round creates one Patch per target Deployment (TARGETS of them), waits
# until every Patch is terminal, checks its phase and production, and deletes
# them (the finalizer removes the environments). Every FAIL_EVERY-th Patch has a
# test named `simulate-fail`, which kwok ends Failed (hack/kwok/patchgate-stages.yaml):
# those must end Failed at the test step with production untouched; all others
# must end Succeeded with production on their version. So a soak exercises
# validate, provision, test, promote (rollback points), verify, cleanup and
# finalizers. Rounds start until the time is up; the last one finishes.
#
# It fails if: a Patch ends in an unexpected phase (or not at all within
# ROUND_TIMEOUT), production is not what the Patches say, a deletion hangs,
# environments are left after the run, the operator dies, no cycle completed,
# or soak_stats.py finds RSS still growing over the last half of the samples or
# threads/fds above their post-warm-up value plus an allowance.
#
# KUBECONFIG: as given (tests/integration/cluster_env.sh run sets it), else
# $PATCHGATE_TEST_KUBECONFIG, else the cluster $PATCHGATE_TEST_CLUSTER (pg-e2e-kwok).
# Env (all optional):
#   PATCHGATE_SOAK_SECONDS          how long to start rounds (default 600; --seconds wins).
#                                   Below ~3 minutes the last half still holds start-up
#                                   growth (a 90 s run fit +1034 KiB/min): too short to judge.
#   PATCHGATE_SOAK_SAMPLE_SECONDS   sample interval (default 5; at least 2 s is sensible)
#   PATCHGATE_SOAK_WARMUP_SECONDS   warm-up before the thread/fd baseline
#                                   (default: a fifth of the run, at most 120)
#   PATCHGATE_SOAK_MAX_SLOPE_KIB_PER_MIN, PATCHGATE_SOAK_THREAD_ALLOWANCE,
#   PATCHGATE_SOAK_FD_ALLOWANCE     override soak_stats.py's limits (see there why)
#   PATCHGATE_SOAK_DIR              where soak.csv, summary.txt and operator.log
#                                   are kept (ctest: <build>/soak-artifacts;
#                                   default ${TMPDIR:-/tmp}/patchgate-soak-<pid>)
OPERATOR=${1:?usage: $0 OPERATOR_BINARY [--seconds N]}
shift
SOAK_SECONDS=${PATCHGATE_SOAK_SECONDS:-600}
while (($#)); do
  case $1 in
    --seconds) SOAK_SECONDS=${2:?--seconds needs a value}; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../patch/lib.sh"   # k, say, fail, start_operator, WORK, the NS cleanup
[[ $SOAK_SECONDS =~ ^[0-9]+$ ]] && ((SOAK_SECONDS > 0)) || fail "soak seconds must be a positive integer, not '$SOAK_SECONDS'"
[[ -x $OPERATOR ]] || fail "no operator binary at $OPERATOR"
INTERVAL=${PATCHGATE_SOAK_SAMPLE_SECONDS:-5}
WARMUP=${PATCHGATE_SOAK_WARMUP_SECONDS:-$(( SOAK_SECONDS / 5 < 120 ? SOAK_SECONDS / 5 : 120 ))}
TARGETS=3
FAIL_EVERY=5
ROUND_TIMEOUT=180
ART=${PATCHGATE_SOAK_DIR:-${TMPDIR:-/tmp}/patchgate-soak-$$}
mkdir -p "$ART"
ART=$(cd "$ART" && pwd)
CSV=$ART/soak.csv
SUMMARY=$ART/summary.txt
rm -f "$CSV" "$SUMMARY" "$ART/operator.log"
if [[ -z ${KUBECONFIG:-} ]]; then
  KUBECONFIG=${PATCHGATE_TEST_KUBECONFIG:-$("$ROOT/hack/cluster" kubeconfig --name "${PATCHGATE_TEST_CLUSTER:-pg-e2e-kwok}")}
fi
export KUBECONFIG

SAMPLER_PID=""
stop_sampler() {
  [[ -n $SAMPLER_PID ]] || return 0
  touch "$WORK/stop-sampler"
  kill -TERM "$SAMPLER_PID" 2>/dev/null || true
  wait "$SAMPLER_PID" 2>/dev/null || true
  SAMPLER_PID=""
}
# SIGTERM, then SIGKILL after 30 s: the soak never waits forever on a shutdown.
stop_operator_bounded() {
  [[ -n $OP_PID ]] || return 0
  if kill -0 "$OP_PID" 2>/dev/null; then
    kill -TERM "$OP_PID" 2>/dev/null || true
    for _ in $(seq 60); do kill -0 "$OP_PID" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$OP_PID" 2>/dev/null; then
      say "operator did not stop within 30s of SIGTERM; SIGKILL" >&2
      kill -KILL "$OP_PID" 2>/dev/null || true
    fi
  fi
  wait "$OP_PID" 2>/dev/null || true
  OP_PID=""
}
soak_cleanup() {
  local rc=$?
  stop_sampler
  stop_operator_bounded
  [[ -f $WORK/operator.log ]] && cp "$WORK/operator.log" "$ART/operator.log"
  cleanup   # lib.sh: drops the Patches' finalizers, deletes $NS and its environments, $WORK
  exit "$rc"
}
trap soak_cleanup EXIT
trap 'exit 130' INT TERM

k apply -f "$ROOT/crds/" >/dev/null
# Admission wants every Patch to name its creator; patchgate checks its rights with its groups.
SOAK_AUTHOR=$(k auth whoami -o jsonpath='  author: {.status.userInfo.username}{"\n"}  authorGroups: {.status.userInfo.groups}')
nodes=$(k get nodes -l type=kwok --no-headers 2>/dev/null | grep -cw Ready || true)
((nodes > 0)) || fail "no Ready kwok node: the soak needs a kwok-mode cluster"

# --- production: TARGETS Deployments, each with its ConfigMap.
NS=soak-$$
k create ns "$NS" >/dev/null
for i in $(seq 0 $((TARGETS - 1))); do
  cat <<YAML
apiVersion: v1
kind: ConfigMap
metadata: {name: app-$i-config}
data: {POOL: "16"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: app-$i, labels: {soak: app}}
spec:
  replicas: 2
  selector: {matchLabels: {app: app-$i}}
  template:
    metadata: {labels: {app: app-$i}}
    spec:
      containers:
      - name: app
        image: patchgate.dev/demo-app:1.0
        envFrom: [{configMapRef: {name: app-$i-config}}]
        env: [{name: VERSION, value: "v0"}]
---
YAML
done | k apply -n "$NS" -f - >/dev/null
for i in $(seq 0 $((TARGETS - 1))); do
  k rollout status -n "$NS" "deploy/app-$i" --timeout=120s >/dev/null || fail "production app-$i did not become ready"
done

# --- this cluster's kwok fails a test named simulate-fail (a cluster started
# before that Stage existed does not: restart it rather than soak without failures).
k apply -n "$NS" -f - >/dev/null <<YAML
apiVersion: batch/v1
kind: Job
metadata: {name: probe-simulate-fail}
spec:
  backoffLimit: 0
  template:
    metadata: {labels: {patchgate.dev/test: simulate-fail}}
    spec:
      restartPolicy: Never
      containers: [{name: test, image: patchgate.dev/test-runner:1.0}]
YAML
k wait -n "$NS" job/probe-simulate-fail --for=condition=Failed --timeout=60s >/dev/null 2>&1 ||
  fail "a Job pod labelled patchgate.dev/test=simulate-fail did not fail: this cluster's kwok lacks the Stage patchgate-test-simulate-fail (hack/kwok/patchgate-stages.yaml); restart the cluster (hack/cluster down --name NAME)"
k delete -n "$NS" job/probe-simulate-fail --wait=false >/dev/null
say "production: $NS with $TARGETS Deployments on $nodes kwok nodes; kwok fails tests named simulate-fail"

# --- the operator and its sampler.
echo 0 > "$WORK/cycles"
start_operator
T_START=$EPOCHREALTIME
DEADLINE=$(( ${T_START%.*} + SOAK_SECONDS ))
# The sampler stops when told, when the operator is gone, or at this hard bound.
HARD_END=$(( DEADLINE + ROUND_TIMEOUT + 300 ))
# sample_once: one CSV row of /proc/$OP_PID (VmRSS KiB, Threads, open fds) and
# the cycles finished so far; fails if the operator is gone.
sample_once() {
  local status fds
  status=$(cat "/proc/$OP_PID/status" 2>/dev/null) || return 1
  fds=$(ls "/proc/$OP_PID/fd" 2>/dev/null | wc -l) || return 1
  awk -v t0="$T_START" -v now="$EPOCHREALTIME" -v fds="$fds" -v cycles="$(cat "$WORK/cycles")" '
    /^VmRSS:/ { rss = $2 } /^Threads:/ { thr = $2 }
    END { if (rss != "" && thr != "") printf "%.1f,%d,%d,%d,%d\n", now - t0, rss, thr, fds, cycles }' \
    <<<"$status" >> "$CSV"
}
sampler() {
  local sp=""
  trap - EXIT INT
  trap '[[ -n $sp ]] && kill "$sp" 2>/dev/null; exit 0' TERM
  while [[ ! -e $WORK/stop-sampler ]] && (( ${EPOCHREALTIME%.*} < HARD_END )); do
    sample_once || break
    sleep "$INTERVAL" & sp=$!
    wait "$sp" || true
    sp=""
  done
}
echo "t_s,rss_kib,threads,fds,cycles" > "$CSV"
sampler & SAMPLER_PID=$!
say "operator pid $OP_PID; soaking for ${SOAK_SECONDS}s (warm-up ${WARMUP}s, a sample every ${INTERVAL}s) into $CSV"

operator_alive() {
  kill -0 "$OP_PID" 2>/dev/null && return 0
  local rc=0; wait "$OP_PID" 2>/dev/null || rc=$?
  OP_PID=""
  fail "the operator died (exit status $rc)"
}

patch_yaml_soak() { # name target version failing
  local test=smoke; [[ $4 == yes ]] && test=simulate-fail
  cat <<YAML
apiVersion: patchgate.dev/v1alpha1
kind: Patch
metadata: {name: $1, namespace: $NS}
spec:
  target: {kind: Deployment, name: $2}
  change:
    patch: |
      spec: {template: {spec: {containers: [{name: app, env: [{name: VERSION, value: "$3"}]}]}}}
    config:
    - {kind: ConfigMap, name: $2-config, patch: '{"data":{"POOL":"${3#r}"}}'}
  ticket: SOAK-$3
  rootCause: "soak cycle $3"
$SOAK_AUTHOR
  environment: {ttlSecondsAfterFinished: 5}
  verification: {timeoutSeconds: 60, bakeSeconds: 5}
  tests:
  - {name: $test, image: patchgate.dev/test-runner:1.0, command: [/bin/true], timeoutSeconds: 60}
---
YAML
}

declare -A want_version   # target -> VERSION production must run
for i in $(seq 0 $((TARGETS - 1))); do want_version[app-$i]=v0; done
round=0 cycles=0 succeeded=0 failed=0
while (( ${EPOCHREALTIME%.*} < DEADLINE )); do
  operator_alive
  round=$((round + 1))
  declare -A expect=()
  for i in $(seq 0 $((TARGETS - 1))); do
    n=$(( (round - 1) * TARGETS + i + 1 ))
    name=soak-r$round-t$i
    if (( n % FAIL_EVERY == 0 )); then expect[$name]=Failed; fail_it=yes; else expect[$name]=Succeeded; fail_it=no; fi
    patch_yaml_soak "$name" "app-$i" "r$round" "$fail_it"
  done > "$WORK/round.yaml"
  r0=$EPOCHREALTIME
  k apply -f "$WORK/round.yaml" >/dev/null || fail "round $round: cannot create its Patches"
  # Wait until every Patch of the round is terminal.
  round_deadline=$(( ${EPOCHREALTIME%.*} + ROUND_TIMEOUT ))
  while :; do
    operator_alive
    k get patches -n "$NS" -o jsonpath='{range .items[*]}{.metadata.name} {.status.phase} {.status.conditions[?(@.type=="TestsPassed")].reason}{"\n"}{end}' \
      > "$WORK/phases" 2>/dev/null || true
    terminal=$(awk '$2 == "Succeeded" || $2 == "Failed" || $2 == "RolledBack"' "$WORK/phases" | wc -l)
    ((terminal == TARGETS)) && break
    (( ${EPOCHREALTIME%.*} < round_deadline )) || fail "round $round: after ${ROUND_TIMEOUT}s only $terminal of $TARGETS Patches are terminal: $(tr '\n' ';' < "$WORK/phases")"
    sleep 1
  done
  while read -r name phase reason; do
    want=${expect[$name]:-}
    [[ -n $want ]] || fail "round $round: unexpected Patch $name"
    [[ $phase == "$want" ]] || fail "round $round: Patch $name ended $phase, expected $want (TestsPassed reason: ${reason:-none})"
    target=app-${name##*-t}
    if [[ $phase == Failed ]]; then
      [[ $reason == TestFailed ]] || fail "round $round: Patch $name Failed, but not at its test (TestsPassed reason: ${reason:-none})"
      failed=$((failed + 1))
    else
      want_version[$target]=r$round
      succeeded=$((succeeded + 1))
    fi
  done < "$WORK/phases"
  # Production runs what the Succeeded Patches shipped, and nothing of the Failed ones.
  k get deploy -n "$NS" -l soak=app -o jsonpath='{range .items[*]}{.metadata.name} {.spec.template.spec.containers[0].env[?(@.name=="VERSION")].value}{"\n"}{end}' > "$WORK/prod"
  while read -r target version; do
    [[ $version == "${want_version[$target]}" ]] || fail "round $round: production $target runs VERSION=$version, expected ${want_version[$target]}"
  done < "$WORK/prod"
  # Finished Patches are deleted: the finalizer cleans their environments up.
  k delete patches -n "$NS" --all --wait=true --timeout=120s >/dev/null 2>"$WORK/delete.err" ||
    fail "round $round: deleting the finished Patches did not finish in 120s: $(head -c 300 "$WORK/delete.err")"
  cycles=$((cycles + TARGETS))
  echo "$cycles" > "$WORK/cycles"
  say "round $round: $(grep -c ' Succeeded ' "$WORK/phases" || true) Succeeded, $(grep -c ' Failed ' "$WORK/phases" || true) Failed, deleted; $(awk -v a="$r0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')s; $cycles cycles so far"
  unset expect
done
operator_alive
stop_sampler
sample_once || fail "cannot sample the operator after the last round"   # the end state, all cycles counted
T_END=$EPOCHREALTIME

# --- nothing left behind by the operator: environments and rollback points bounded.
for _ in $(seq 120); do
  left=$(k get ns -l "patchgate.dev/patch-namespace=$NS" -o name 2>/dev/null | wc -l)
  ((left == 0)) && break
  sleep 1
done
((left == 0)) || fail "$left environment namespaces left 120s after the last Patch was deleted: $(k get ns -l "patchgate.dev/patch-namespace=$NS" -o name | head -5 | tr '\n' ' ')"
for i in $(seq 0 $((TARGETS - 1))); do
  revs=$(k get controllerrevisions -n "$NS" -l "patchgate.dev/target=Deployment.app-$i" -o name | wc -l)
  ((revs <= 10)) || fail "app-$i has $revs rollback points, more than revisionHistoryLimit (10)"
done
operator_alive

# --- the verdict on the samples, and the summary.
((cycles > 0)) || fail "no cycle completed in ${SOAK_SECONDS}s"
stats_args=(--warmup-seconds "$WARMUP")
[[ -n ${PATCHGATE_SOAK_MAX_SLOPE_KIB_PER_MIN:-} ]] && stats_args+=(--max-slope-kib-per-min "$PATCHGATE_SOAK_MAX_SLOPE_KIB_PER_MIN")
[[ -n ${PATCHGATE_SOAK_THREAD_ALLOWANCE:-} ]] && stats_args+=(--thread-allowance "$PATCHGATE_SOAK_THREAD_ALLOWANCE")
[[ -n ${PATCHGATE_SOAK_FD_ALLOWANCE:-} ]] && stats_args+=(--fd-allowance "$PATCHGATE_SOAK_FD_ALLOWANCE")
stats_rc=0
stats=$(python3 "$HERE/soak_stats.py" "$CSV" "${stats_args[@]}") || stats_rc=$?
elapsed=$(awk -v a="$T_START" -v b="$T_END" 'BEGIN { printf "%.0f", b - a }')
{
  echo "soak summary ($(date -u +%FT%TZ), operator $(basename "$OPERATOR"), kwok nodes $nodes)"
  echo "rounds $round x $TARGETS targets = $cycles cycles in ${elapsed}s ($succeeded Succeeded, $failed Failed at test, all as expected; $(awk -v c="$cycles" -v e="$elapsed" 'BEGIN { printf "%.1f", c * 60 / e }') cycles/min)"
  echo "$stats"
} | tee "$SUMMARY"
case $stats_rc in
  0) ;;
  1) fail "resource check failed (see above; samples in $CSV)" ;;
  *) fail "cannot judge the samples in $CSV (exit $stats_rc)" ;;
esac
say "PASS: soak (${elapsed}s, $cycles cycles); artifacts in $ART"
