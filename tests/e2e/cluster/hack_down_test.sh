#!/usr/bin/env bash
# e2e of `hack/cluster down` from any state (issue 16, "the tooling too"). Each
# scenario starts clusters of its own names (pg-ht-*), checks with
# check_down_clean.sh that `down` left nothing, and cleans up after itself even
# when it fails (by the PIDs in the cluster's pid files, then `down` again).
#
#   hack_down_test.sh never          down of a name never created: exit 0, nothing done
#   hack_down_test.sh real-no-pod    up --mode real, no pod ever started; down; down again
#   hack_down_test.sh failed-up      up --mode real that fails (the kubelet's healthz
#                                    port held by another process), etcd then killed by
#                                    hand; down; down again
#   hack_down_test.sh no-state       up --mode kwok, its state folder removed while it
#                                    runs; down still stops its processes
#
# Real mode needs root and is one cluster per machine: if another real-mode cluster
# is up, this waits for it (PG_HT_WAIT seconds, default 600), then skips (exit 77).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
source "$REPO/hack/versions.sh"
CLUSTER=$REPO/hack/cluster
SCENARIO=${1:?usage: $0 never|real-no-pod|failed-up|no-state}
T0=$(date +%s)
OUT=$(mktemp -d -t pg-ht.XXXXXX)
NAMES=()
OCCUPIER=""

say() { echo "[hack_down $SCENARIO $(( $(date +%s) - T0 ))s] $*"; }
fail() { echo "FAIL [hack_down $SCENARIO]: $*" >&2; exit 1; }

# Runs `hack/cluster ARGS`, output to $OUT/<tag>.{out,err} and shown; sets RC.
run_cluster() { # tag args...
  local tag=$1; shift
  say "hack/cluster $*"
  RC=0
  "$CLUSTER" "$@" >"$OUT/$tag.out" 2>"$OUT/$tag.err" || RC=$?
  sed 's/^/    | /' "$OUT/$tag.err"
  say "  -> exit $RC"
}

expect_down_ok() { # tag name [expect-nothing-to-do]
  local tag=$1 name=$2
  run_cluster "$tag" down --name "$name"
  ((RC == 0)) || fail "'hack/cluster down --name $name' exited $RC ($tag)"
  if grep -q 'error:' "$OUT/$tag.err"; then fail "'down' ($tag) printed an error"; fi
  if [[ ${3:-} == nothing ]]; then
    grep -q 'nothing to do' "$OUT/$tag.err" || fail "second 'down' ($tag) did not say 'nothing to do'"
  fi
  "$HERE/check_down_clean.sh" "$name" || fail "'down' ($tag) left things of cluster '$name' behind"
}

# --- clean-up, whatever happened ------------------------------------------------

# Processes running with the cluster's folder in their command line (as
# check_down_clean.sh finds them), for the last-resort clean-up.
procs_of() { # name
  local dir=$PATCHGATE_CACHE/clusters/$1 p cmd
  for p in /proc/[0-9]*; do
    cmd=$( { tr '\0' ' ' < "$p/cmdline"; } 2>/dev/null) || continue
    [[ $cmd == *"$dir/"* ]] && echo "${p#/proc/}"
  done
  return 0
}

cleanup() {
  local rc=$? name pid
  trap - EXIT
  [[ -z $OCCUPIER ]] || { kill "$OCCUPIER" 2>/dev/null || true; wait "$OCCUPIER" 2>/dev/null || true; }
  for name in "${NAMES[@]}"; do
    "$HERE/check_down_clean.sh" "$name" >/dev/null 2>&1 && continue
    say "clean-up: cluster '$name' is not clean; hack/cluster down"
    "$CLUSTER" down --name "$name" >/dev/null 2>&1 || true
    "$HERE/check_down_clean.sh" "$name" >/dev/null 2>&1 && continue
    # `down` could not do it (the test failed for a reason): stop exactly the
    # processes of this cluster (folder in their command line), then down again
    for pid in $(procs_of "$name"); do
      say "clean-up: kill -KILL $pid ($(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | cut -c1-80))"
      kill -KILL "$pid" 2>/dev/null || true
    done
    sleep 1
    "$CLUSTER" down --name "$name" >/dev/null 2>&1 || true
    "$HERE/check_down_clean.sh" "$name" ||
      echo "WARNING: cluster '$name' still leaves things behind; see above" >&2
  done
  rm -rf "$OUT"
  exit $rc
}
trap cleanup EXIT

# --- real mode: root, and no other real-mode cluster -------------------------------------

other_real_up() { # prints the name of a real-mode cluster whose containerd or kubelet runs
  local env n p
  for env in "$PATCHGATE_CACHE"/clusters/*/cluster.env; do
    [[ -f $env ]] && grep -qx 'MODE=real' "$env" || continue
    n=$(basename "$(dirname "$env")")
    for p in "$PATCHGATE_CACHE/clusters/$n/pids/"{containerd,kubelet}.pid; do
      [[ -f $p && -d /proc/$(<"$p") ]] && { echo "$n"; return 0; }
    done
  done
  return 0
}

need_real_mode() {
  [[ $(id -u) -eq 0 ]] || { echo "SKIP: real mode needs root"; exit 77; }
  local deadline=$(( $(date +%s) + ${PG_HT_WAIT:-600} )) other
  while other=$(other_real_up) && [[ -n $other ]]; do
    (( $(date +%s) < deadline )) ||
      { echo "SKIP: real-mode cluster '$other' is still up after ${PG_HT_WAIT:-600}s (one per machine)"; exit 77; }
    say "real-mode cluster '$other' is up (one per machine); waiting"
    sleep 10
  done
}

# --- scenarios -----------------------------------------------------------------------------

scenario_never() {
  local name=pg-ht-never
  NAMES+=("$name")
  [[ ! -e $PATCHGATE_CACHE/clusters/$name ]] || fail "$name exists before the test"
  expect_down_ok down "$name" nothing
}

scenario_real_no_pod() {
  local name=pg-ht-real
  NAMES+=("$name")
  need_real_mode
  run_cluster up up --name "$name" --mode real
  ((RC == 0)) || fail "up --mode real failed"
  # The CNI bridge is made with the first pod's sandbox: none yet.
  local bridge
  bridge=$(grep '^BRIDGE=' "$PATCHGATE_CACHE/clusters/$name/cluster.env" | cut -d= -f2)
  ! ip link show "$bridge" >/dev/null 2>&1 || fail "bridge $bridge exists with no pod (the test would prove nothing)"
  expect_down_ok down1 "$name"
  expect_down_ok down2 "$name" nothing
}

scenario_failed_up() {
  local name=pg-ht-failup
  NAMES+=("$name")
  need_real_mode
  local dir=$PATCHGATE_CACHE/clusters/$name port=""
  [[ ! -e $dir ]] || "$CLUSTER" down --name "$name" >/dev/null 2>&1 || true
  "$CLUSTER" up --name "$name" --mode real >"$OUT/up.out" 2>"$OUT/up.err" &
  local up=$!
  # As soon as the port is picked, hold it: an HTTP server that answers 500, so
  # the kubelet's healthz never passes (the kubelet keeps running and registers).
  local i
  for ((i = 0; i < 1200; i++)); do
    port=$(grep -s '^KUBELET_HEALTHZ_PORT=' "$dir/cluster.env" | cut -d= -f2 || true)
    [[ -n $port ]] && break
    kill -0 "$up" 2>/dev/null || break
    sleep 0.05
  done
  [[ -n $port ]] || { wait "$up" || true; cat "$OUT/up.err" >&2; fail "up never picked the kubelet's healthz port"; }
  python3 -c '
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(500); self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()' "$port" &
  OCCUPIER=$!
  say "holding the kubelet's healthz port 127.0.0.1:$port (pid $OCCUPIER)"
  RC=0
  wait "$up" || RC=$?
  sed 's/^/    | /' "$OUT/up.err"
  say "up -> exit $RC"
  ((RC != 0)) || fail "up succeeded although the kubelet's healthz port was held"
  grep -q "the kubelet's healthz" "$OUT/up.err" || fail "up failed, but not at the kubelet's healthz"
  grep -q "clean up with: hack/cluster down --name $name" "$OUT/up.err" || fail "the failed up did not say how to clean up"
  [[ -f $dir/pids/kubelet.pid && -d /proc/$(<"$dir/pids/kubelet.pid") ]] ||
    fail "the kubelet is not running after the failed up (the test would not reach the drain)"
  # and one component already dead, as after a crash
  local etcd
  etcd=$(<"$dir/pids/etcd.pid")
  say "killing etcd (pid $etcd) by hand"
  kill -KILL "$etcd"
  kill "$OCCUPIER" 2>/dev/null || true
  wait "$OCCUPIER" 2>/dev/null || true
  OCCUPIER=""
  expect_down_ok down1 "$name"
  expect_down_ok down2 "$name" nothing
}

scenario_no_state() {
  local name=pg-ht-nostate
  NAMES+=("$name")
  local dir=$PATCHGATE_CACHE/clusters/$name
  run_cluster up up --name "$name" --mode kwok --nodes 1
  ((RC == 0)) || fail "up --mode kwok failed"
  local before
  before=$(procs_of "$name" | wc -l)
  ((before >= 5)) || fail "expected the cluster's 5 processes, found $before"
  say "removing $dir while the cluster runs ($before processes)"
  rm -rf "$dir"
  expect_down_ok down1 "$name"
  grep -q 'leftovers' "$OUT/down1.err" || fail "down did not say it found leftovers"
  expect_down_ok down2 "$name" nothing
}

case $SCENARIO in
  never) scenario_never ;;
  real-no-pod) scenario_real_no_pod ;;
  failed-up) scenario_failed_up ;;
  no-state) scenario_no_state ;;
  *) fail "unknown scenario $SCENARIO" ;;
esac
say "PASS"
