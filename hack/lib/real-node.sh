# real mode of hack/cluster: one real node on this machine. Sourced.
#
#   containerd (Debian 1.6, CRI v1), our own instance: config, root, state and
#     socket under $DIR/containerd; sandbox image = our locally built pause
#   runc (Debian), cgroupfs driver (this machine has cgroup v1)
#   CNI (Debian plug-ins in /usr/lib/cni): a bridge named per cluster, host-local
#     IPAM on the node's pod CIDR, portmap; containerd adds loopback itself
#   kubelet with a node certificate (system:node:<node>) and a serving
#     certificate, so `kubectl logs/exec` work with TLS checked both ways
#   kube-proxy in iptables mode
#   kube-router's network policy controller alone (--run-firewall; no router,
#     no service proxy): enforces NetworkPolicies with iptables (filter table:
#     KUBE-ROUTER-INPUT/FORWARD/OUTPUT, a KUBE-POD-FW-* chain per pod,
#     KUBE-NWPLCY-* per policy) and ipsets (KUBE-SRC-*, KUBE-DST-*)
#
# Host-wide things this mode touches, all undone by `down`: iptables (the
# KUBE-* chains of kube-proxy, kubelet and kube-router, CNI's masquerade
# rules), kube-router's ipsets, the bridge,
# two sysctls (ip_forward, bridge-nf-call-iptables: their old values are
# restored), a cgroup subtree /patchgate-<name> per controller, the
# /var/log/containers symlinks the kubelet makes, and the fixed folders of
# $HOST_DIRS below (removed if this cluster made them and they are empty). kube-proxy owns the host's
# KUBE-* chains, so only ONE real-mode cluster can run at a time (kwok-mode
# clusters can run beside it).

CNI_BIN_DIR=/usr/lib/cni
HOST_DIRS="/var/log/containers /var/lib/cni /run/containerd"

# The node's IP: the address of the interface holding the default route. The
# kubelet refuses a loopback node IP, and the apiserver reaches the kubelet
# there (logs, exec). PATCHGATE_NODE_IP overrides.
detect_host_ip() {
  if [[ -n ${PATCHGATE_NODE_IP:-} ]]; then echo "$PATCHGATE_NODE_IP"; return; fi
  local dev
  dev=$(ip -4 route show default 2>/dev/null | awk '{for (i = 1; i < NF; i++) if ($i == "dev") {print $(i+1); exit}}')
  [[ -n $dev ]] || return 0
  ip -4 -o addr show dev "$dev" scope global | awk '{split($4, a, "/"); print a[1]; exit}'
}

# The names of this cluster's host objects, from its name. Also what `down`
# falls back on when cluster.env lacks them (cut short, or no folder at all).
real_names() {
  BRIDGE=${BRIDGE:-pg-${NAME:0:12}}   # interface names: 15 chars at most
  CNI_NET=${CNI_NET:-patchgate-$NAME}
  CGROUP_ROOT=${CGROUP_ROOT:-patchgate-$NAME}
}

# Another real-mode cluster that is still running, if any (see the limit above).
other_real_cluster() {
  local env other
  for env in "$PATCHGATE_CACHE"/clusters/*/cluster.env; do
    [[ -f $env ]] || continue
    other=$(basename "$(dirname "$env")")
    [[ $other == "$NAME" ]] && continue
    if grep -qx 'MODE=real' "$env"; then
      # its containerd or kubelet pid still alive?
      local p
      for p in "$PATCHGATE_CACHE/clusters/$other/pids/"{containerd,kubelet}.pid; do
        [[ -f $p && -d /proc/$(<"$p") ]] && { echo "$other"; return 0; }
      done
    fi
  done
  return 0
}

real_check_host() {
  [[ $(id -u) -eq 0 ]] || die "real mode needs root (containerd, iptables, mounts)"
  local c
  for c in containerd runc ctr ip iptables ip6tables ipset findmnt umoci; do
    command -v "$c" >/dev/null || die "$c missing; run hack/deps.sh"
  done
  for c in bridge host-local loopback portmap; do
    [[ -x $CNI_BIN_DIR/$c ]] || die "CNI plug-in $CNI_BIN_DIR/$c missing; run hack/deps.sh"
  done
  local other
  other=$(other_real_cluster)
  [[ -z $other ]] || die "real-mode cluster '$other' is running; only one real-mode cluster at a time (they would share the host's KUBE-* iptables chains). Run: hack/cluster down --name $other"
  [[ -n $NODE_IP ]] || die "no IPv4 address on the default-route interface; set PATCHGATE_NODE_IP"
}

# --- host network --------------------------------------------------------------

sysctl_path() { echo "/proc/sys/${1//.//}"; }

# Pods reach Services through the host: packets between pods on the same bridge
# must pass iptables (bridge-nf-call-iptables) and be forwarded (ip_forward).
# NetworkPolicies need the same: kube-router filters pod-to-pod traffic on the
# bridge in iptables' FORWARD chain, which bridged packets only reach through
# br_netfilter, so `up` refuses to go on without it (policies would be ignored
# between pods of this node without a word). The old values go to cluster.env
# so `down` restores them. br_netfilter is built into these VMs' kernels
# (/proc/modules does not exist); elsewhere it is loaded if it can be.
real_prepare_host() {
  local key path
  # Fixed host folders the components use whatever their config says: the
  # kubelet's /var/log/containers links, libcni's result cache, the shims'
  # sockets in /run/containerd/s. Note which did not exist, so that `down`
  # removes them (if empty) and leaves the machine as it found it.
  local d made=""
  for d in $HOST_DIRS; do [[ -e $d ]] || made+="$d "; done
  echo "MADE_HOST_DIRS=\"$made\"" >> "$DIR/cluster.env"
  if [[ ! -e $(sysctl_path net.bridge.bridge-nf-call-iptables) ]] && command -v modprobe >/dev/null; then
    modprobe br_netfilter 2>/dev/null || true
  fi
  [[ -w $(sysctl_path net.bridge.bridge-nf-call-iptables) ]] ||
    die "net.bridge.bridge-nf-call-iptables is missing (no br_netfilter): traffic between pods on the bridge would bypass iptables, so neither Services nor NetworkPolicies would work between them"
  for key in net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables; do
    path=$(sysctl_path "$key")
    echo "SAVED_SYSCTL_${key//[.-]/_}=$(<"$path")" >> "$DIR/cluster.env"
    echo 1 > "$path"
    [[ $(<"$path") == 1 ]] || die "could not set $key to 1"
  done
}

real_restore_host_sysctls() {
  local key var path
  for key in net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables; do
    var="SAVED_SYSCTL_${key//[.-]/_}"
    path=$(sysctl_path "$key")
    [[ -n ${!var:-} && -w $path ]] && echo "${!var}" > "$path"
  done
  return 0
}

# The kubelet's pods live under cgroupRoot=/patchgate-<name> in every mounted
# hierarchy, so `down` knows exactly which cgroups are this cluster's. The kubelet
# requires that root to exist. A new cpuset cgroup starts with no CPUs and no
# memory nodes: copy the parent's, or nothing could run in it.
cgroup_mounts() { findmnt -rn -t cgroup,cgroup2 -o TARGET; }

real_make_cgroups() {
  local m
  for m in $(cgroup_mounts); do
    mkdir -p "$m/$CGROUP_ROOT"
    if [[ -f $m/cpuset.cpus && -f $m/$CGROUP_ROOT/cpuset.cpus ]]; then
      [[ -n $(<"$m/$CGROUP_ROOT/cpuset.cpus") ]] || cat "$m/cpuset.cpus" > "$m/$CGROUP_ROOT/cpuset.cpus"
      [[ -n $(<"$m/$CGROUP_ROOT/cpuset.mems") ]] || cat "$m/cpuset.mems" > "$m/$CGROUP_ROOT/cpuset.mems"
    fi
  done
}

real_remove_cgroups() {
  local m pid procs
  [[ -n ${CGROUP_ROOT:-} ]] || return 0
  # Any process still in our subtree is a container process of this cluster
  # whose shim is gone: kill it by PID.
  for procs in $(for m in $(cgroup_mounts); do find "$m/$CGROUP_ROOT" -name cgroup.procs 2>/dev/null; done | sort -u); do
    for pid in $(<"$procs"); do
      log "killing leftover container process $pid ($(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | cut -c1-80))"
      kill -KILL "$pid" 2>/dev/null || true
    done
  done
  sleep 0.2
  for m in $(cgroup_mounts); do
    [[ -d $m/$CGROUP_ROOT ]] || continue
    # deepest first; a cgroup with a process left in it stays (and is reported)
    find "$m/$CGROUP_ROOT" -depth -type d -exec rmdir {} + 2>/dev/null ||
      log "warning: could not remove every cgroup under $m/$CGROUP_ROOT"
  done
}

real_write_cni() {
  mkdir -p "$DIR/cni/net.d" "$DIR/cni/ipam"
  # One conflist, named per cluster; host-local keeps its leases in our folder.
  cat > "$DIR/cni/net.d/10-$CNI_NET.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "$CNI_NET",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$DIR/cni/ipam",
        "ranges": [[{"subnet": "$NODE_POD_CIDR"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

# --- containerd --------------------------------------------------------------------

CTR() { ctr --address "$DIR/containerd/containerd.sock" "$@"; }

real_start_containerd() {
  local c=$DIR/containerd
  mkdir -p "$c/root" "$c/state" "$c/runc"
  # Only what differs from the defaults. netns_mounts_under_state_dir keeps the
  # pods' network namespaces inside our folder (not /var/run/netns); runc's
  # state goes under our folder too, so nothing is shared with another
  # containerd on this machine. restrict_oom_score_adj: these machines run us
  # without CAP_SYS_RESOURCE (not even in the bounding set), so runc cannot
  # lower a container's oom_score_adj below ours ("nsexec: failed to update
  # /proc/self/oom_score_adj: Permission denied"); containerd then clamps the
  # kubelet's values (e.g. -998 for sandboxes) to what is allowed.
  cat > "$c/config.toml" <<EOF
version = 2
root = "$c/root"
state = "$c/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "$c/containerd.sock"

[ttrpc]
  address = "$c/containerd.sock.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "$c/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "patchgate.dev/pause:3.10"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  netns_mounts_under_state_dir = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$c/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN_DIR"
    conf_dir = "$DIR/cni/net.d"
EOF
  start_proc containerd "$(command -v containerd)" --config "$c/config.toml"
  wait_for 30 "containerd to answer on its socket" containerd CTR version
}

# Imports our images (hack/images.sh builds or reuses them) into k8s.io, the
# namespace the CRI plugin uses.
real_import_images() {
  local archive base
  while read -r archive base; do
    CTR -n k8s.io images import --base-name "$base" "$archive" >/dev/null ||
      die "importing $archive into containerd failed"
  done < <("$HACK/images.sh" --list)
}

# --- kubelet and kube-proxy ------------------------------------------------------------

real_node_pki() {
  local pki=$DIR/pki
  pki_cert "$pki" kubelet client "/O=system:nodes/CN=system:node:$NODE_NAME"
  pki_cert "$pki" kubelet-serving server "/CN=$NODE_NAME" \
    "IP:$NODE_IP,IP:127.0.0.1,DNS:$NODE_NAME,DNS:localhost"
  pki_cert "$pki" kube-proxy client "/CN=system:kube-proxy"
  pki_cert "$pki" kube-router client "/CN=patchgate:kube-router"
  write_kubeconfig "$DIR/kubelet.kubeconfig" "https://127.0.0.1:$APISERVER_PORT" "system:node:$NODE_NAME" \
    "$pki/kubelet.crt" "$pki/kubelet.key" "$pki/ca.crt"
  write_kubeconfig "$DIR/kube-proxy.kubeconfig" "https://127.0.0.1:$APISERVER_PORT" system:kube-proxy \
    "$pki/kube-proxy.crt" "$pki/kube-proxy.key" "$pki/ca.crt"
  write_kubeconfig "$DIR/kube-router.kubeconfig" "https://127.0.0.1:$APISERVER_PORT" patchgate:kube-router \
    "$pki/kube-router.crt" "$pki/kube-router.key" "$pki/ca.crt"
}

real_start_kubelet() {
  mkdir -p "$DIR/kubelet" "$DIR/pod-logs"
  cat > "$DIR/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: $DIR/pki/ca.crt
authorization:
  mode: Webhook
tlsCertFile: $DIR/pki/kubelet-serving.crt
tlsPrivateKeyFile: $DIR/pki/kubelet-serving.key
rotateCertificates: false
serverTLSBootstrap: false
containerRuntimeEndpoint: unix://$DIR/containerd/containerd.sock
# cgroup v1 here: kubelet 1.35 refuses it unless told otherwise.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /$CGROUP_ROOT
podLogsDir: $DIR/pod-logs
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
failSwapOn: false
# Images cannot be pulled again (no registry): never garbage-collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 50Mi
  nodefs.available: 1%
  imagefs.available: 1%
  nodefs.inodesFree: 1%
serializeImagePulls: false
maxPods: 110
EOF
  # --root-dir keeps pod volumes (and their mounts) inside our folder.
  start_proc kubelet "$BIN_DIR/kubelet" \
    --config="$DIR/kubelet.yaml" \
    --kubeconfig="$DIR/kubelet.kubeconfig" \
    --root-dir="$DIR/kubelet" \
    --hostname-override="$NODE_NAME" \
    --node-ip="$NODE_IP" \
    --v=1
}

real_start_kube_proxy() {
  # conntrack max/timeouts 0 and localhostNodePorts false: leave the host's
  # conntrack and route_localnet sysctls alone.
  cat > "$DIR/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $DIR/kube-proxy.kubeconfig
mode: iptables
clusterCIDR: $CLUSTER_CIDR
hostnameOverride: $NODE_NAME
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:$PROXY_HEALTHZ_PORT
metricsBindAddress: 127.0.0.1:$PROXY_METRICS_PORT
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
iptables:
  localhostNodePorts: false
  minSyncPeriod: 1s
  syncPeriod: 30s
EOF
  start_proc kube-proxy "$BIN_DIR/kube-proxy" --config="$DIR/kube-proxy.yaml"
}

# kube-router's network policy controller, as a host process like kube-proxy.
# Its user (certificate CN patchgate:kube-router) may read what its informers
# list and watch: kube-router starts informers for Services, Endpoints,
# EndpointSlices and Nodes even with only its firewall on, and waits for all of
# them. It writes nothing to the API. Ready once its first full sync has
# written its rules (the ACCEPT of traffic marked as allowed closes each of
# its top-level chains). Its health port (also serving Go's pprof) listens on
# all interfaces: kube-router has no flag for the address.
# --service-node-port-range: kube-router lets every pod reach the node's own
# addresses on these ports before any policy (for its own IPVS service proxy).
# kube-proxy (iptables) sends node-port traffic on in PREROUTING (DNAT to the
# backend pod, filtered in FORWARD like any pod traffic), so here that opening
# would only expose the node's own listeners on 30000-32767 (the apiserver, at
# a free port picked up to 31999, or an operator's API) to pods a policy
# isolates. Give it ports 1-2, where nothing listens.
real_start_kube_router() {
  kc apply -f - >/dev/null <<'EOF'
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: patchgate:kube-router
rules:
- apiGroups: [""]
  resources: [namespaces, pods, services, nodes, endpoints]
  verbs: [get, list, watch]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: patchgate:kube-router
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: patchgate:kube-router
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: User
  name: patchgate:kube-router
EOF
  start_proc kube-router "$BIN_DIR/kube-router" \
    --kubeconfig="$DIR/kube-router.kubeconfig" \
    --hostname-override="$NODE_NAME" \
    --run-firewall=true --run-router=false --run-service-proxy=false \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --service-node-port-range=1-2 \
    --health-port="$KUBE_ROUTER_HEALTH_PORT" --metrics-port=0 \
    --v=1
}

# True once kube-router's first full sync is in iptables.
real_kube_router_synced() {
  local rules
  rules=$(iptables -w 5 -S KUBE-ROUTER-FORWARD 2>/dev/null) || return 1
  [[ $rules == *"0x20000/0x20000 -j ACCEPT"* ]]
}

real_up() {
  log "[real 1/7] host: sysctls, cgroups /$CGROUP_ROOT, CNI config for bridge $BRIDGE ($NODE_POD_CIDR)"
  real_prepare_host
  real_make_cgroups
  real_write_cni
  log "[real 2/7] images: building or reusing the pause, demo-app and test-runner images"
  "$HACK/images.sh" >/dev/null
  log "[real 3/7] containerd: own instance on $DIR/containerd/containerd.sock"
  real_start_containerd
  real_import_images
  log "[real 4/7] kubelet: node $NODE_NAME on $NODE_IP:$KUBELET_PORT"
  real_node_pki
  real_start_kubelet
  wait_for 60 "the kubelet's healthz" kubelet curl -sf "http://127.0.0.1:$KUBELET_HEALTHZ_PORT/healthz"
  wait_for 60 "node $NODE_NAME to register" kubelet kc get node "$NODE_NAME"
  log "[real 5/7] kube-proxy: iptables mode"
  real_start_kube_proxy
  wait_for 60 "kube-proxy's healthz" kube-proxy curl -sf "http://127.0.0.1:$PROXY_HEALTHZ_PORT/healthz"
  log "[real 6/7] kube-router: NetworkPolicy enforcement (its firewall only: no routing, no service proxy)"
  real_start_kube_router
  wait_for 60 "kube-router's first policy sync (chain KUBE-ROUTER-FORWARD)" kube-router real_kube_router_synced
  log "[real 7/7] node registered"
}

# --- teardown --------------------------------------------------------------------------

# Pods are stopped through the kubelet, so each sandbox's network is torn down
# by CNI (veth, IP lease, masquerade rules) the normal way. Controllers are
# stopped first so nothing recreates the pods.
real_drain() {
  proc_is_ours kubelet && proc_is_ours kube-apiserver || return 0
  log "deleting all pods through the kubelet (so CNI tears their networks down)"
  kc delete pods --all --all-namespaces --force --grace-period=0 --wait=false >/dev/null 2>&1 || true
  local deadline=$(( $(date +%s) + 60 )) running veths
  while (( $(date +%s) < deadline )); do
    # captured, not piped into grep -q (pipefail + SIGPIPE would lie)
    # (|| true: containerd may stop answering, and the bridge does not exist
    # until the first pod's sandbox is made: `ip` then exits 255)
    running=$(CTR -n k8s.io tasks ls 2>/dev/null | awk 'NR > 1 && $3 == "RUNNING"' || true)
    veths=$(ip link show master "$BRIDGE" 2>/dev/null || true)
    if [[ -z $running && -z $veths ]]; then
      log "all pod containers stopped"
      return 0
    fi
    sleep 1
  done
  log "warning: pods still running after 60s; killing the rest directly"
}

# Whatever the kubelet did not stop: kill the tasks in containerd's k8s.io
# namespace, before containerd itself stops (its shims would outlive it).
real_kill_tasks() {
  proc_is_ours containerd || return 0
  local id
  # remembered for the CNI cache cleanup in real_down_host
  CTR -n k8s.io containers ls -q > "$DIR/container-ids" 2>/dev/null || true
  for id in $(CTR -n k8s.io tasks ls -q 2>/dev/null); do
    CTR -n k8s.io tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
  done
  sleep 1
  for id in $(CTR -n k8s.io tasks ls -q 2>/dev/null); do
    CTR -n k8s.io tasks delete -f "$id" >/dev/null 2>&1 || true
  done
}

# iptables: kube-proxy's own cleanup first, then any KUBE-* chain left (the
# kubelet's canary and hint chains), then CNI's rules tagged with our network's
# name (the bridge plug-in's masquerading, portmap's DNAT), which are only left
# if a pod's network was not torn down.
real_cleanup_iptables() {
  local ipt table line chain chains log=/dev/null
  [[ -d $DIR/logs ]] && log=$DIR/logs/kube-proxy-cleanup.log
  if [[ -z $(other_real_cluster) ]]; then
    if [[ -x $BIN_DIR/kube-proxy ]]; then
      "$BIN_DIR/kube-proxy" --cleanup >> "$log" 2>&1 || true
    fi
    for ipt in iptables ip6tables; do
      for table in filter nat mangle raw; do
        "$ipt" -t "$table" -S >/dev/null 2>&1 || continue
        # jumps from other chains into KUBE-* chains, then the chains
        while read -r line; do
          eval "$ipt -t $table ${line/#-A/-D}" 2>/dev/null || true
        done < <("$ipt" -t "$table" -S | grep -E '^-A ' | grep -vE '^-A KUBE-' | grep -E -- '-j KUBE-|-g KUBE-' || true)
        chains=$("$ipt" -t "$table" -S | awk '/^-N KUBE-/ {print $2}')
        for chain in $chains; do "$ipt" -t "$table" -F "$chain" 2>/dev/null || true; done
        for chain in $chains; do "$ipt" -t "$table" -X "$chain" 2>/dev/null || true; done
      done
    done
    # kube-router's ipsets, now that no rule refers to them
    local set
    for set in $(kube_router_ipsets); do
      ipset destroy "$set" 2>/dev/null || log "warning: could not destroy ipset $set"
    done
  fi
  # CNI leftovers: rules whose comment names our network, then their chains.
  for ipt in iptables ip6tables; do
    for table in nat filter; do
      "$ipt" -t "$table" -S >/dev/null 2>&1 || continue
      chains=""
      while read -r line; do
        chain=$(grep -oE -- '-j CNI-[A-Za-z0-9-]+' <<<"$line" | cut -d' ' -f2 || true)
        [[ -n $chain ]] && chains+=" $chain"
        eval "$ipt -t $table ${line/#-A/-D}" 2>/dev/null || true
      done < <("$ipt" -t "$table" -S | grep -E '^-A ' | grep -F "name: \\\"$CNI_NET\\\"" || true)
      for chain in $chains; do
        [[ $chain == CNI-HOSTPORT-* ]] && continue
        "$ipt" -t "$table" -F "$chain" 2>/dev/null || true
        "$ipt" -t "$table" -X "$chain" 2>/dev/null || true
      done
    done
  done
}

# The bridge is ours by name, unless a running real-mode cluster of another
# name uses the same one (names are cut to 12 characters). veths of pods that
# were not torn down go with their namespaces.
real_delete_bridge() {
  ip link show "$BRIDGE" >/dev/null 2>&1 || return 0
  local other
  other=$(other_real_cluster)
  if [[ -n $other ]] && grep -qx "BRIDGE=$BRIDGE" "$PATCHGATE_CACHE/clusters/$other/cluster.env"; then
    log "warning: bridge $BRIDGE belongs to running cluster '$other'; left in place"
    return 0
  fi
  ip link del "$BRIDGE" || { log "error: could not delete bridge $BRIDGE"; return 1; }
  log "deleted bridge $BRIDGE"
}

# Each part isolated: one failing does not keep the others from running.
real_down_host() {
  local rc=0 step
  for step in real_cleanup_iptables real_delete_bridge real_remove_cgroups real_remove_host_files; do
    hack_run_isolated "$step"
    ((HACK_RC == 0)) || rc=1
  done
  return $rc
}

# kube-router's ipsets on this host: KUBE-SRC-*/KUBE-DST-* of its policies and
# the TMP-* it swaps them through (inet6: their IPv6 twins). Nothing if ipset
# is not installed or we are not root.
kube_router_ipsets() {
  command -v ipset >/dev/null && [[ $(id -u) -eq 0 ]] || return 0
  local sets
  sets=$(ipset list -n 2>/dev/null) || return 0
  grep -E '^(inet6:)?(KUBE-(SRC|DST)|TMP)-[A-Z2-7]{16}$' <<<"$sets" || true
}

# What a real-mode cluster of this name left on the host, found by name (for a
# `down` without the state folder): prints a description, nothing if nothing.
# kube-router's chains (KUBE-ROUTER-*, KUBE-POD-FW-*, KUBE-NWPLCY-*) and ipsets
# are not named after a cluster, but only one real-mode cluster runs at a time:
# with none running, they are a leftover of one (real_down_host then removes
# every KUBE-* chain, as a `down` with state does).
real_leftovers() {
  local m rules
  # (a bridge named in another cluster's cluster.env is that one's: names are
  # cut to 12 characters)
  if ip link show "$BRIDGE" >/dev/null 2>&1 &&
     ! grep -qsx "BRIDGE=$BRIDGE" "$PATCHGATE_CACHE"/clusters/*/cluster.env; then
    printf 'bridge %s; ' "$BRIDGE"
  fi
  for m in $(cgroup_mounts); do
    [[ -d $m/$CGROUP_ROOT ]] && { printf 'cgroups /%s; ' "$CGROUP_ROOT"; break; }
  done
  if command -v iptables-save >/dev/null && [[ $(id -u) -eq 0 ]]; then
    rules=$( { iptables-save; ip6tables-save; } 2>/dev/null | grep -F "\"$CNI_NET\"" || true)
    [[ -z $rules ]] || printf 'iptables rules of CNI network %s; ' "$CNI_NET"
    if [[ -z $(other_real_cluster) ]]; then
      rules=$( { iptables-save; ip6tables-save; } 2>/dev/null | grep -E '^:KUBE-(ROUTER|POD-FW|NWPLCY)-' || true)
      [[ -z $rules ]] || printf "kube-router's iptables chains; "
      [[ -z $(kube_router_ipsets) ]] || printf "kube-router's ipsets; "
    fi
  fi
  return 0
}

real_remove_host_files() {
  # The kubelet links container logs in the fixed /var/log/containers.
  # libcni's cached results of pods whose network was not torn down: ours are
  # named after our network or (loopback) after one of our sandboxes.
  rm -f /var/lib/cni/results/"$CNI_NET"-* 2>/dev/null || true
  local id
  for id in $(cat "$DIR/container-ids" 2>/dev/null); do
    rm -f /var/lib/cni/results/*-"$id"-* 2>/dev/null || true
  done
  local l
  for l in /var/log/containers/*; do
    [[ -L $l && $(readlink "$l") == "$DIR"/* ]] && rm -f "$l"
  done
  local d
  for d in ${MADE_HOST_DIRS:-}; do
    [[ -d $d ]] || continue
    find "$d" -depth -type d -empty -delete 2>/dev/null || true
    [[ -e $d ]] && log "warning: $d (made by this cluster) is not empty; left in place"
  done
  [[ -z $(other_real_cluster) ]] && real_restore_host_sysctls
  return 0
}
