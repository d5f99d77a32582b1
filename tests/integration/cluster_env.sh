#!/usr/bin/env bash
# Gives tests a cluster, for a ctest FIXTURES_SETUP / FIXTURES_CLEANUP pair.
#
#   cluster_env.sh up MODE NAME [NODES]   start (or reuse) a cluster; prints its kubeconfig path
#   cluster_env.sh kubeconfig NAME        prints the kubeconfig path of that cluster
#   cluster_env.sh run NAME -- CMD...     runs CMD with KUBECONFIG set to it
#   cluster_env.sh down NAME [--check-clean]  tears down the cluster, only if `up` started it
#                                         (and then checks that nothing of it is left)
#
# MODE is kwok or real (real needs root); NODES (kwok only) defaults to 10.
# If PATCHGATE_TEST_KUBECONFIG is set, that cluster is used as is: nothing is
# started and nothing is torn down. A cluster of that NAME already up (e.g. a
# developer's `hack/cluster up --name NAME`) is reused and also left running.
# Only a cluster this script started is torn down by `down`; it marks such a
# cluster with a file in the cluster's state folder.
#
# Example (CMake):
#   add_test(NAME cluster_real_up COMMAND tests/integration/cluster_env.sh up real pg-e2e-real)
#   add_test(NAME cluster_real_down COMMAND tests/integration/cluster_env.sh down pg-e2e-real)
#   set_tests_properties(cluster_real_up PROPERTIES FIXTURES_SETUP cluster_real)
#   set_tests_properties(cluster_real_down PROPERTIES FIXTURES_CLEANUP cluster_real)
#   add_test(NAME e2e_real COMMAND tests/integration/cluster_env.sh run pg-e2e-real --
#            tests/e2e/cluster/real_mode_test.sh)
#   set_tests_properties(e2e_real PROPERTIES FIXTURES_REQUIRED cluster_real LABELS e2e)
set -euo pipefail
REPO=$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)
source "$REPO/hack/versions.sh"
CLUSTER=$REPO/hack/cluster

say() { echo "[cluster_env] $*" >&2; }
usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

marker() { echo "$PATCHGATE_CACHE/clusters/$1/.started-by-cluster_env"; }

external() { # PATCHGATE_TEST_KUBECONFIG given?
  [[ -n ${PATCHGATE_TEST_KUBECONFIG:-} ]] || return 1
  [[ -f $PATCHGATE_TEST_KUBECONFIG ]] || { say "PATCHGATE_TEST_KUBECONFIG=$PATCHGATE_TEST_KUBECONFIG: no such file"; exit 1; }
}

kubeconfig_of() { # name
  if external; then echo "$PATCHGATE_TEST_KUBECONFIG"; else "$CLUSTER" kubeconfig --name "$1"; fi
}

cmd_up() { # mode name [nodes]
  local mode=${1:-} name=${2:-} nodes=${3:-10}
  [[ -n $mode && -n $name ]] || usage
  if external; then
    say "using PATCHGATE_TEST_KUBECONFIG=$PATCHGATE_TEST_KUBECONFIG (not starting a cluster)"
    "$BIN_DIR/kubectl" --kubeconfig "$PATCHGATE_TEST_KUBECONFIG" --request-timeout=10s get --raw /readyz >/dev/null ||
      { say "that cluster is not ready"; exit 1; }
    echo "$PATCHGATE_TEST_KUBECONFIG"
    return 0
  fi
  if "$CLUSTER" status --name "$name" >/dev/null 2>&1; then
    local running_mode
    running_mode=$(grep -m1 '^MODE=' "$PATCHGATE_CACHE/clusters/$name/cluster.env" | cut -d= -f2)
    if [[ $running_mode == "$mode" ]]; then
      say "cluster '$name' is already up ($mode); reusing it$([[ -f $(marker "$name") ]] || echo ", and leaving it up afterwards")"
      "$CLUSTER" kubeconfig --name "$name"
      return 0
    fi
    say "cluster '$name' is up in $running_mode mode, not $mode"
    exit 1
  fi
  local args=(up --name "$name" --mode "$mode")
  [[ $mode == kwok ]] && args+=(--nodes "$nodes")
  say "starting cluster '$name': hack/cluster ${args[*]}"
  local kubeconfig
  if ! kubeconfig=$("$CLUSTER" "${args[@]}"); then
    say "starting '$name' failed; tearing down what was started (logs kept in $PATCHGATE_CACHE/last-logs/$name)"
    "$CLUSTER" down --name "$name" >&2 || true
    exit 1
  fi
  touch "$(marker "$name")"
  echo "$kubeconfig"
}

cmd_down() { # name [--check-clean]
  local name=${1:-} check=${2:-}
  [[ -n $name ]] || usage
  if external; then
    say "PATCHGATE_TEST_KUBECONFIG is set: the cluster is not ours to tear down"
    return 0
  fi
  if [[ ! -f $(marker "$name") ]]; then
    say "cluster '$name' was not started by cluster_env.sh (or is down already): leaving it"
    return 0
  fi
  "$CLUSTER" down --name "$name" >&2
  # Only a cluster we tore down can be checked for leftovers.
  if [[ $check == --check-clean ]]; then
    "$REPO/tests/e2e/cluster/check_down_clean.sh" "$name"
  fi
}

cmd_run() { # name -- cmd...
  local name=${1:-}; shift || true
  [[ -n $name && ${1:-} == -- ]] || usage
  shift
  (($#)) || usage
  KUBECONFIG=$(kubeconfig_of "$name") || { say "cluster '$name' is not up"; exit 1; }
  export KUBECONFIG
  export PATH=$BIN_DIR:$PATH
  exec "$@"
}

case ${1:-} in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  kubeconfig) shift; [[ -n ${1:-} ]] || usage; kubeconfig_of "$1" ;;
  run) shift; cmd_run "$@" ;;
  *) usage ;;
esac
