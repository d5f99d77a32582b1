# kwok mode of hack/cluster: simulated nodes and pods. Sourced.
#
# We run the `kwok` controller binary ourselves (not kwokctl): it watches Nodes
# annotated kwok.x-k8s.io/node=fake, keeps their leases fresh and plays Stages
# on them and on the pods bound to them.

KWOK_MODULE_STAGES() {
  echo "$(go env GOMODCACHE)/sigs.k8s.io/kwok@${KWOK_VERSION}/kustomize/stage"
}

# Stages: kwok's defaults (what kwokctl would pass: fast node init, node
# heartbeat with leases, fast pod ready/complete/delete), then ours. They must
# all be given: as soon as a config holds one Stage, kwok adds no defaults.
kwok_write_stages() { # file
  local src f
  src=$(KWOK_MODULE_STAGES)
  [[ -d $src ]] || die "kwok's default stages not found in $src (hack/build-tools.sh kwok downloads the module)"
  : > "$1"
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    cat "$src/$f" >> "$1"
    echo "---" >> "$1"
  done
  cat "$HACK/kwok/patchgate-stages.yaml" >> "$1"
}

kwok_start() {
  mkdir -p "$DIR/kwok"
  kwok_write_stages "$DIR/kwok/stages.yaml"
  # --cidr: pod IPs come from one pool; a /16 holds thousands of pods (the
  # default /24 would run dry at 254). No node taint: this cluster has no real
  # node, so any pod may land on a fake one without a toleration.
  start_proc kwok "$BIN_DIR/kwok" \
    --kubeconfig="$DIR/kubeconfig" \
    --config="$DIR/kwok/stages.yaml" \
    --manage-all-nodes=false \
    --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --cidr="$CLUSTER_CIDR" \
    --node-lease-duration-seconds=40 \
    --v=WARN   # INFO logs a line per pod and node patch: gigabytes at scale
}

# Node objects, as kwok's docs create them, with a large capacity so that 1000+
# pods fit on 10 nodes.
kwok_node_manifests() { # count
  local i
  for ((i = 0; i < $1; i++)); do
    cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations:
    node.alpha.kubernetes.io/ttl: "0"
    kwok.x-k8s.io/node: fake
  labels:
    kubernetes.io/arch: amd64
    kubernetes.io/hostname: kwok-node-$i
    kubernetes.io/os: linux
    kubernetes.io/role: agent
    node-role.kubernetes.io/agent: ""
    type: kwok
status:
  allocatable:
    cpu: "1000"
    memory: 4Ti
    pods: "1000"
  capacity:
    cpu: "1000"
    memory: 4Ti
    pods: "1000"
EOF
  done
}

kwok_add_nodes() { # count
  # Node status is kept on create, so capacity is set here; kwok fills in the
  # conditions. `create` (not apply): the cluster is fresh.
  kwok_node_manifests "$1" | kc create -f - >/dev/null
}
