#!/usr/bin/env bash
# Checks that `hack/cluster down --name NAME` left nothing of that cluster on
# the machine: no process, mount, network interface, iptables rule or chain,
# ipset, cgroup, or state folder. Run it after the down.
# Usage: tests/e2e/cluster/check_down_clean.sh NAME
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../../.." && pwd)
source "$REPO/hack/versions.sh"
NAME=${1:?usage: $0 NAME}
DIR=$PATCHGATE_CACHE/clusters/$NAME
problems=()

[[ ! -e $DIR ]] || problems+=("state folder $DIR still exists")

for p in /proc/[0-9]*; do
  # (a process may end during the scan: the redirect's own error is hushed too)
  cmd=$( { tr '\0' ' ' < "$p/cmdline"; } 2>/dev/null) || continue
  [[ $cmd == *"$DIR/"* ]] && problems+=("process ${p#/proc/} still runs: ${cmd:0:100}")
done

mounts=$(findmnt -rn -o TARGET | grep -F "$DIR/" || true)
[[ -z $mounts ]] || problems+=("mounts left: $mounts")

# names as hack/cluster gives them in real mode
bridge=pg-${NAME:0:12}
ip link show "$bridge" >/dev/null 2>&1 && problems+=("interface $bridge still exists")
for m in $(findmnt -rn -t cgroup,cgroup2 -o TARGET); do
  [[ -d $m/patchgate-$NAME ]] && problems+=("cgroup $m/patchgate-$NAME still exists")
done

if command -v iptables-save >/dev/null && [[ $(id -u) -eq 0 ]]; then
  rules=$( { iptables-save; ip6tables-save; } 2>/dev/null | grep -F "\"patchgate-$NAME\"" || true)
  [[ -z $rules ]] || problems+=("CNI iptables rules of network patchgate-$NAME left: $(head -3 <<<"$rules")")
  # KUBE-* chains belong to the (single) real-mode cluster: none may be left
  # unless another real-mode cluster is running.
  other_real=$(grep -lx 'MODE=real' "$PATCHGATE_CACHE"/clusters/*/cluster.env 2>/dev/null || true)
  if [[ -z $other_real ]]; then
    kube=$( { iptables-save; ip6tables-save; } 2>/dev/null | grep -E '^(:|-A )KUBE-|-j KUBE-' || true)
    [[ -z $kube ]] || problems+=("KUBE-* iptables chains or rules left (kube-proxy's, the kubelet's or kube-router's): $(head -3 <<<"$kube")")
    # kube-router's ipsets (the NetworkPolicy enforcer of real mode)
    if command -v ipset >/dev/null; then
      sets=$(ipset list -n 2>/dev/null | grep -E '^(inet6:)?(KUBE-(SRC|DST)|TMP)-' || true)
      [[ -z $sets ]] || problems+=("kube-router ipsets left: $(head -3 <<<"$sets" | tr '\n' ' ')")
    fi
  fi
fi

if ((${#problems[@]})); then
  printf "FAIL [check_down_clean $NAME]: %s\n" "${problems[@]}" >&2
  exit 1
fi
echo "PASS [check_down_clean $NAME]: no process, mount, interface, iptables rule, ipset, cgroup or folder left"
