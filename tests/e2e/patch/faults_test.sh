#!/usr/bin/env bash
# The fault table, on the real node: the operator is killed right after each
# write of a Patch's life (tests/e2e/patch/faults.txt, failpoints of
# kube/failpoint_client.h) and started again, and what it leaves must hold:
#   at each kill   the state the row promises (e.g. after the production
#                  workload write: production runs v2, status still holds the
#                  promotion intent);
#   at the end     the Patch ends in the phase it should (good: Succeeded, bad:
#                  RolledBack); one environment namespace ever; one rollback
#                  point; production equals the promoted spec (good) or the
#                  original (bad); no re-test, one promotion in the history;
#                  the change record says what happened.
# Then faults that are not crashes:
#   revert         production reverted by a person during verification: the
#                  Patch fails with reason Reverted, never Succeeded;
#   apiserver      the API server frozen (SIGSTOP) for 30 s in each phase of a
#                  Patch's life (Provisioning, Testing, Promoting, Verifying;
#                  the operator holds each phase 8 s so the freeze lands in
#                  it): the operator stays up, loses the lead, leads again
#                  when the API server is back, and the Patch succeeds once;
#   conflict       the status write that records the promotion refused (409)
#                  three times right after the production write: production
#                  is written once, the promotion recorded once;
#   lease          the lease taken by another holder while the operator is
#                  between the promotion intent and the production write:
#                  no production write while the other holds it, then the
#                  operator leads again and finishes the promotion.
# Prints the table failpoint x outcome.
# Usage: faults_test.sh CHAIN|revert|apiserver|conflict|lease OPERATOR_BINARY   (CHAIN: good, bad)
# Env: PATCHGATE_TEST_CLUSTER (default pg-e2e), PATCHCTL (the change record).
SCENARIO=${1:?usage: $0 good|bad|revert|apiserver|conflict|lease OPERATOR_BINARY}
OPERATOR=${2:?usage: $0 SCENARIO OPERATOR_BINARY}
source "$(dirname "$0")/lib.sh"
CLUSTER=${PATCHGATE_TEST_CLUSTER:-pg-e2e}
KUBECONFIG=$("$ROOT/hack/cluster" kubeconfig --name "$CLUSTER")
export KUBECONFIG
k apply -f "$ROOT/crds/" >/dev/null
TABLE=$(dirname "$0")/faults.txt

# status FIELD-PATH -> a jsonpath of the Patch
pstatus() { k get patch -n "$NS" "$PATCH" -o jsonpath="{.status.$1}" 2>/dev/null || true; }
uid() { k get patch -n "$NS" "$PATCH" -o jsonpath='{.metadata.uid}'; }
env_names() { k get ns -l "patchgate.dev/patch-uid=$(uid)" -o jsonpath='{.items[*].metadata.name}' 2>/dev/null || true; }
ENVS_SEEN=""
note_envs() { local e; for e in $(env_names); do [[ " $ENVS_SEEN " == *" $e "* ]] || ENVS_SEEN="$ENVS_SEEN $e"; done; }

# The state each row promises at its kill ("" when the row promises only that
# the operator resumes).
check_at_kill() { # CHAIN FAILPOINT -> prints what was checked; fails if it does not hold
  local v c intent
  v=$(prod_env VERSION) c=$(prod_config POOL) intent=$(pstatus intent.action)
  case "$1 $2" in
    "good after:create:controllerrevisions")
      [[ $v == v1 && $c == 16 && $(revisions) == 1 && -z $intent ]] || return 1
      echo "rollback point stored; production untouched" ;;
    "good after:create:secrets")
      [[ $v == v1 && $c == 16 && -z $intent ]] || return 1
      [[ $(k get secret -n "$NS" checkout-pg-1-secrets -o jsonpath='{.immutable}') == true ]] || return 1
      echo "Secret snapshot stored beside the rollback point; production untouched" ;;
    "good after:updateStatus:patches:Promoting")
      [[ $intent == Promote && $v == v1 && $c == 16 ]] || return 1
      echo "intent Promote recorded; production untouched" ;;
    "good after:patch:configmaps")
      [[ $intent == Promote && $v == v1 && $c == 64 ]] || return 1
      echo "config POOL=64 before the workload; intent still open" ;;
    "good after:patch:deployments")
      [[ $intent == Promote && $v == v2 && $(pstatus phase) == Promoting ]] || return 1
      echo "production runs v2; status still says Promoting with the intent" ;;
    "good after:updateStatus:patches:Verifying")
      [[ -z $intent && $v == v2 && $c == 64 ]] || return 1
      echo "promotion recorded" ;;
    "bad after:updateStatus:patches:RollingBack")
      [[ $intent == Rollback && $v == v2 ]] || return 1
      echo "intent Rollback recorded; production still patched" ;;
    "bad after:patch:configmaps")
      [[ $intent == Rollback && $c == 16 && $v == v2 ]] || return 1
      echo "config restored before the workload" ;;
    "bad after:patch:deployments")
      [[ $intent == Rollback && $v == v1 ]] || return 1
      echo "workload restored; not yet in status" ;;
    *) echo "-" ;;
  esac
}

ROWS=()
row() { ROWS+=("$(printf '%-42s %-5s %-17s %-12s %s' "$@")"); }
print_table() {
  say "fault table ($SCENARIO):"
  printf '  %-42s %-5s %-17s %-12s %s\n' FAILPOINT CHAIN "PHASE AT KILL" OUTCOME "CHECKED AT THE KILL"
  for r in "${ROWS[@]}"; do printf '  %s\n' "$r"; done
}

# Creates the chain's Patch.
start_patch() {
  case $SCENARIO in
    good|apiserver|conflict|lease)
      PATCH=fix
      patch_yaml "$PATCH" v2 "$(smoke_test v2)" | k apply -f - >/dev/null ;;
    revert)  # a long bake: the person reverts while it runs
      PATCH=fix
      patch_yaml "$PATCH" v2 "$(smoke_test v2)" | sed 's/bakeSeconds: 5}/bakeSeconds: 120}/' | k apply -f - >/dev/null ;;
    bad)
      PATCH=crash-in-prod
      # Works in the copy, crashes in production's namespace: verification fails.
      patch_yaml "$PATCH" v2 "$(smoke_test v2)" |
        sed "s|env: \[{name: VERSION, value: \"v2\"}\]}\]}}}|env: [{name: VERSION, value: \"v2\"}, {name: PROD_NS, value: $NS}, {name: POD_NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}], command: [/bin/sh, -c, 'if [ \"\$POD_NS\" = \"\$PROD_NS\" ]; then echo crashing in production; exit 1; fi; exec /app/start']}]}}}|; s/timeoutSeconds: 60, bakeSeconds: 5}/timeoutSeconds: 25, bakeSeconds: 5}/" |
        k apply -f - >/dev/null ;;
  esac
}

# Runs one chain of faults.txt: the operator armed with the failpoints of all
# the rows not yet done dies at the first it meets; the rows before that one
# were folded into it (allowed unless "must"); then again with the rest.
run_chain() {
  local chain=$1 fp c must what
  local -a fps=() musts=() whats=()
  while read -r fp c must what <&3; do
    [[ -z $fp || $fp == \#* || $c != "$chain" ]] && continue
    fps+=("$fp") musts+=("$must") whats+=("$what")
  done 3< "$TABLE"
  local i=0 j k armed fired
  while (( i < ${#fps[@]} )); do
    armed=$(printf '%s\n' "${fps[@]:i}" | awk '!seen[$0]++' | paste -sd, -)
    PATCHGATE_FAILPOINTS=$armed start_operator --watch-namespaces "$NS" --leader-elect=false
    [[ -z ${PATCH:-} ]] && start_patch
    local exited=false
    for _ in $(seq 400); do
      kill -0 "$OP_PID" 2>/dev/null || { exited=true; break; }
      sleep 0.5
    done
    if ! $exited; then
      for (( k = i; k < ${#fps[@]}; k++ )); do row "${fps[k]}" "$chain" "$(pstatus phase)" "NOT REACHED" "${whats[k]}"; done
      stop_operator
      print_table
      fail "none of the failpoints $armed was reached within 200 s"
    fi
    wait "$OP_PID" 2>/dev/null || true
    OP_PID=""
    fired=$(grep '"failpoint hit' "$WORK/operator.log" | tail -1 | sed 's/.*"failpoint":"\([^"]*\)".*/\1/')
    for (( j = i; j < ${#fps[@]}; j++ )); do [[ ${fps[j]} == "$fired" ]] && break; done
    (( j < ${#fps[@]} )) || { print_table; fail "the operator exited, not at one of $armed (last failpoint: ${fired:-none})"; }
    for (( k = i; k < j; k++ )); do
      if [[ ${musts[k]} == yes ]]; then
        row "${fps[k]}" "$chain" "$(pstatus phase)" "SKIPPED" "${whats[k]}"
        print_table
        fail "${fps[k]} must come before $fired but did not happen"
      fi
      row "${fps[k]}" "$chain" "" "folded" "done within the write below"
    done
    note_envs
    local ph checked
    ph=$(pstatus phase)
    if ! checked=$(check_at_kill "$chain" "$fired"); then
      row "$fired" "$chain" "$ph" "WRONG STATE" "VERSION=$(prod_env VERSION) POOL=$(prod_config POOL) intent=$(pstatus intent.action)"
      print_table
      fail "after $fired the state is not what the row promises"
    fi
    row "$fired" "$chain" "$ph" "killed" "$checked"
    i=$((j + 1))
  done
}

# The end state, with the operator started without failpoints.
check_end() { # WANT-PHASE VERSION POOL
  start_operator --watch-namespaces "$NS"
  wait_phase "$PATCH" 300 Succeeded Failed RolledBack
  note_envs
  local got; got=$(phase "$PATCH")
  [[ $got == "$1" ]] || { print_table; fail "ended $got, expected $1"; }
  k rollout status -n "$NS" deploy/checkout --timeout=120s >/dev/null || fail "production is not healthy"
  [[ $(prod_env VERSION) == "$2" && $(prod_config POOL) == "$3" ]] ||
    fail "production runs VERSION=$(prod_env VERSION) POOL=$(prod_config POOL), expected $2/$3"
  local envs; envs=$(wc -w <<<"$ENVS_SEEN")
  (( envs <= 1 )) || fail "more than one environment namespace:$ENVS_SEEN"
  [[ $(revisions) == 1 ]] || fail "expected one rollback point, found $(revisions)"
  [[ -z $(pstatus retests) && -z $(pstatus intent) ]] || fail "re-tested or an intent left: retests=$(pstatus retests) intent=$(pstatus intent)"
  local hist; hist=$(pstatus 'history[*].phase')
  [[ $(tr ' ' '\n' <<<"$hist" | grep -c '^Verifying$') == 1 ]] || fail "promoted more than once: $hist"
  if [[ -n ${PATCHCTL:-} ]]; then
    "$PATCHCTL" --kubeconfig "$KUBECONFIG" report "$PATCH" -n "$NS" > "$WORK/report.md" || fail "patchctl report failed"
    grep -qF -- "$1" "$WORK/report.md" || fail "the change record does not say $1"
    grep -qF -- "checkout-pg-1" "$WORK/report.md" || fail "the change record does not name the rollback point"
  fi
  row "(restart, no failpoint)" "$SCENARIO" "$got" "ok" "VERSION=$2 POOL=$3, environments:${ENVS_SEEN:- none}, 1 rollback point, history: $hist"
}

case $SCENARIO in
  good|bad)
    setup_app "faults-$SCENARIO"
    say "GIVEN a Patch ($SCENARIO chain) and an operator killed right after each write of its life"
    if [[ $SCENARIO == bad ]]; then  # its chain starts once production runs the change
      start_operator --watch-namespaces "$NS" --leader-elect=false
      start_patch
      wait_phase "$PATCH" 300 Verifying RolledBack Succeeded Failed
      [[ $(phase "$PATCH") == Verifying ]] || fail "never saw Verifying"
      stop_operator
    fi
    run_chain "$SCENARIO"
    if [[ $SCENARIO == good ]]; then
      check_end Succeeded v2 64
      # The last kill was right after the environment was deleted: the restart records it.
      for _ in $(seq 60); do [[ -n $(pstatus environment.deletedAt) ]] && break; sleep 1; done
      [[ -n $(pstatus environment.deletedAt) ]] || fail "the environment's deletion was never recorded"
    else
      check_end RolledBack v1 16
      [[ -z $(k get deploy -n "$NS" checkout -o jsonpath='{.spec.template.spec.containers[0].command}') ]] ||
        fail "the crashing command is still in production"
    fi
    print_table ;;
  revert)
    setup_app faults-revert
    run_chain revert  # killed right after the finalizer went on; then no more kills
    start_operator --watch-namespaces "$NS" --leader-elect=false
    say "GIVEN a Patch in Verifying (a 120 s bake); WHEN a person puts v1 back in production"
    wait_phase "$PATCH" 300 Verifying Succeeded Failed
    [[ $(phase "$PATCH") == Verifying ]] || fail "never saw Verifying"
    k set env -n "$NS" deploy/checkout VERSION=v1 >/dev/null
    wait_phase "$PATCH" 120 Succeeded Failed RolledBack
    [[ $(phase "$PATCH") == Failed ]] || fail "a reverted Patch ended $(phase "$PATCH")"
    [[ $(k get patch -n "$NS" "$PATCH" -o jsonpath='{.status.conditions[?(@.type=="Ready")].reason}') == Reverted ]] ||
      fail "reason is not Reverted"
    k get events -n "$NS" --field-selector reason=Reverted -o name | grep -q . || fail "no Reverted event"
    say "THEN it failed with reason Reverted: $(k get patch -n "$NS" "$PATCH" -o jsonpath='{.status.message}')"
    print_table ;;
  apiserver)
    setup_app faults-apiserver
    APISERVER_PID=$(cat "${PATCHGATE_CACHE:-$HOME/.cache/patchgate}/clusters/$CLUSTER/pids/kube-apiserver.pid")
    [[ -d /proc/$APISERVER_PID ]] || fail "cannot find the API server's process"
    thaw() { kill -CONT "$APISERVER_PID" 2>/dev/null || true; }
    trap 'thaw; cleanup' EXIT
    hold=""
    for ph in Provisioning Testing Promoting Verifying; do hold="$hold,after:updateStatus:patches:$ph=pause:8"; done
    PATCHGATE_FAILPOINTS=${hold#,} start_operator --watch-namespaces "$NS"
    start_patch
    say "GIVEN a Patch; WHEN the API server is frozen (SIGSTOP) for 30 s in each phase of its life"
    for ph in Provisioning Testing Promoting Verifying; do
      seen=""
      for _ in $(seq 600); do
        cur=$(phase "$PATCH")
        [[ $cur == "$ph" ]] && { seen=yes; break; }
        [[ $cur =~ ^(Succeeded|Failed|RolledBack)$ ]] && break
        sleep 0.2
      done
      [[ -n $seen ]] || { print_table; fail "never saw $ph (now ${cur:-nothing})"; }
      kill -STOP "$APISERVER_PID"
      sleep 30
      thaw
      kill -0 "$OP_PID" 2>/dev/null || { print_table; fail "the operator died while the API server was away in $ph"; }
      row "freeze 30 s" "$SCENARIO" "$ph" "survived" "operator up; lead lost $(grep -c 'leader election lost' "$WORK/operator.log") time(s) so far"
    done
    wait_phase "$PATCH" 300 Succeeded Failed RolledBack
    [[ $(phase "$PATCH") == Succeeded ]] || { print_table; fail "ended $(phase "$PATCH") after the freezes"; }
    [[ $(prod_env VERSION) == v2 && $(prod_config POOL) == 64 ]] || fail "production does not run v2/64"
    hist=$(pstatus 'history[*].phase')
    [[ $(tr ' ' '\n' <<<"$hist" | grep -c '^Verifying$') == 1 ]] || fail "promoted more than once: $hist"
    grep -q 'leader election lost' "$WORK/operator.log" || fail "the lead was never lost: the freezes did not reach the operator"
    (( $(grep -c 'acquired leader lease' "$WORK/operator.log") >= 2 )) || fail "the operator never led again"
    row "(end)" "$SCENARIO" "Succeeded" "ok" "v2/64, history: $hist"
    print_table
    say "THEN the operator stayed up, led again after each outage and the Patch succeeded once" ;;
  conflict)
    setup_app faults-conflict
    gen0=$(k get deploy -n "$NS" checkout -o jsonpath='{.metadata.generation}')
    PATCHGATE_FAILPOINTS=before:updateStatus:patches:Verifying=refuse:3 start_operator --watch-namespaces "$NS" --leader-elect=false
    start_patch
    say "GIVEN a Patch; WHEN the status write after the production write is refused (409) three times"
    wait_phase "$PATCH" 300 Succeeded Failed RolledBack
    [[ $(phase "$PATCH") == Succeeded ]] || fail "ended $(phase "$PATCH")"
    refusals=$(grep -c 'failpoint hit; refusing' "$WORK/operator.log" || true)
    [[ $refusals == 3 ]] || fail "expected 3 refused status writes, saw $refusals"
    gen=$(k get deploy -n "$NS" checkout -o jsonpath='{.metadata.generation}')
    (( gen == gen0 + 1 )) || fail "production was written $((gen - gen0)) times (generation $gen0 -> $gen), expected once"
    hist=$(pstatus 'history[*].phase')
    [[ $(tr ' ' '\n' <<<"$hist" | grep -c '^Verifying$') == 1 ]] || fail "promotion recorded more than once: $hist"
    promoted=$(k get events -n "$NS" --field-selector "involvedObject.name=$PATCH,reason=Promoted" -o jsonpath='{range .items[*]}{.count}{"\n"}{end}' | awk '{s += ($1 == "" ? 1 : $1)} END {print s + 0}')
    [[ $promoted == 1 ]] || fail "the Promoted event was sent $promoted times"
    row "before:updateStatus:patches:Verifying" "$SCENARIO" "Promoting" "refused x3" "production written once (generation $gen0 -> $gen), 1 Promoted event, history: $hist"
    print_table
    say "THEN production was written once and the promotion recorded once" ;;
  lease)
    setup_app faults-lease
    LEASE=pg-e2e-$$
    microtime() { date -u +%Y-%m-%dT%H:%M:%S.000000Z; }
    PATCHGATE_FAILPOINTS=after:updateStatus:patches:Promoting=pause:20 start_operator --watch-namespaces "$NS"
    start_patch
    for _ in $(seq 600); do grep -q '"failpoint hit; pausing' "$WORK/operator.log" && break; sleep 0.5; done
    grep -q '"failpoint hit; pausing' "$WORK/operator.log" || fail "the operator never reached the promotion intent"
    gen0=$(k get deploy -n "$NS" checkout -o jsonpath='{.metadata.generation}')
    [[ $(prod_env VERSION) == v1 ]] || fail "production changed before the takeover"
    say "GIVEN the operator between the promotion intent and the production write; WHEN another holder takes the lease"
    k patch lease -n default "$LEASE" --type merge -p "{\"spec\":{\"holderIdentity\":\"intruder\",\"leaseDurationSeconds\":12,\"acquireTime\":\"$(microtime)\",\"renewTime\":\"$(microtime)\"}}" >/dev/null
    checks=0
    for _ in $(seq 15); do  # the intruder renews for 30 s
      sleep 2
      k patch lease -n default "$LEASE" --type merge -p "{\"spec\":{\"renewTime\":\"$(microtime)\"}}" >/dev/null
      [[ $(k get deploy -n "$NS" checkout -o jsonpath='{.metadata.generation}') == "$gen0" ]] ||
        fail "production was written while another replica held the lease"
      checks=$((checks + 1))
    done
    grep -q '"failpoint pause over' "$WORK/operator.log" || fail "the pause did not end while the intruder held the lease"
    grep -q 'not sure it still leads' "$WORK/operator.log" || fail "the production write was not refused by the fence"
    grep -q 'leader election lost' "$WORK/operator.log" || fail "the operator did not notice it lost the lease"
    kill -0 "$OP_PID" 2>/dev/null || fail "the operator exited on losing the lease"
    say "the intruder stops renewing; the operator takes the lease back once it expires"
    for _ in $(seq 60); do
      holder=$(k get lease -n default "$LEASE" -o jsonpath='{.spec.holderIdentity}')
      [[ $holder != intruder && -n $holder ]] && break
      [[ $(k get deploy -n "$NS" checkout -o jsonpath='{.metadata.generation}') == "$gen0" ]] ||
        fail "production was written while another replica held the lease"
      sleep 1
    done
    [[ $holder != intruder && -n $holder ]] || fail "the operator never led again"
    wait_phase "$PATCH" 300 Succeeded Failed RolledBack
    [[ $(phase "$PATCH") == Succeeded ]] || fail "ended $(phase "$PATCH")"
    [[ $(prod_env VERSION) == v2 && $(prod_config POOL) == 64 ]] || fail "production does not run v2/64"
    hist=$(pstatus 'history[*].phase')
    [[ $(tr ' ' '\n' <<<"$hist" | grep -c '^Verifying$') == 1 ]] || fail "promoted more than once: $hist"
    row "after:updateStatus:patches:Promoting" "$SCENARIO" "Promoting" "fenced" "no production write in $checks checks while the intruder held the lease; led again, Succeeded, history: $hist"
    print_table
    say "THEN no production write after the lease was lost; the promotion finished once the operator led again" ;;
  *) echo "unknown scenario $SCENARIO" >&2; exit 2 ;;
esac
say "PASS: faults $SCENARIO"
