# Pinned versions of everything hack/ builds. Sourced by the other scripts.
# Change a pin only with a reason (see ../shared/TOOLCHAIN.md in the project notes).
K8S_VERSION=v1.35.4
ETCD_VERSION=v3.6.16
KWOK_VERSION=v0.8.0
HELM_VERSION=v3.21.4
GRPCURL_VERSION=v1.9.4
# Real mode's NetworkPolicy enforcer (its policy controller only). v2.1.0 is the only
# version the module proxy serves here.
KUBE_ROUTER_VERSION=v2.1.0
PATCHGATE_CACHE=${PATCHGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/patchgate}
BIN_DIR=$PATCHGATE_CACHE/bin
