#!/usr/bin/env bash
# Builds the pinned upstream components (etcd, Kubernetes, kwok, helm, grpcurl, kube-router) from the Go
# module proxy through the tools modules in hack/tools, into a cache outside the
# repository keyed by version. A binary whose --version already matches is kept,
# so a warm cache costs seconds. Usage: hack/build-tools.sh [component...]
# Components: etcd kube-apiserver kube-controller-manager kube-scheduler kubectl
#             kubelet kube-proxy kwok kwokctl helm grpcurl kube-router   (default: all)
set -euo pipefail
HACK=$(cd "$(dirname "$0")" && pwd)
source "$HACK/versions.sh"
source "$HACK/lib/common.sh"
hack_fail_loudly build-tools   # any failure ends with a message naming the command
mkdir -p "$BIN_DIR"
# One build at a time (hack/test runs this in the background).
exec 8>"$BIN_DIR/.build-lock"
flock 8
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false

ALL=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok kwokctl kubelet kube-proxy helm grpcurl kube-router)
want=("$@"); ((${#want[@]})) || want=("${ALL[@]}")

k8s_ldflags() {
  local v=${K8S_VERSION#v} date
  date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  local major=${v%%.*} rest=${v#*.}; local minor=${rest%%.*}
  local f=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    f+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    f+=" -X $pkg.gitCommit=0000000000000000000000000000000000000000-$K8S_VERSION"
    f+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
  done
  echo "-s -w$f"
}

# spec: module-dir package version version-check-regex ldflags
spec() {
  case $1 in
    etcd) echo "etcd go.etcd.io/etcd/server/v3 $ETCD_VERSION" ;;
    kube-apiserver|kube-controller-manager|kube-scheduler|kubectl|kubelet|kube-proxy)
      echo "kubernetes k8s.io/kubernetes/cmd/$1 $K8S_VERSION" ;;
    kwok|kwokctl) echo "kwok sigs.k8s.io/kwok/cmd/$1 $KWOK_VERSION" ;;
    helm) echo "helm helm.sh/helm/v3/cmd/helm $HELM_VERSION" ;;
    grpcurl) echo "grpcurl github.com/fullstorydev/grpcurl/cmd/grpcurl $GRPCURL_VERSION" ;;
    kube-router) echo "kube-router github.com/cloudnativelabs/kube-router/v2/cmd/kube-router $KUBE_ROUTER_VERSION" ;;
    *) echo "unknown component $1" >&2; return 1 ;;
  esac
}

have_version() { # name version
  local out="" bin=$BIN_DIR/$1
  [[ -x $bin ]] || return 1
  case $1 in
    kubectl) out=$("$bin" version --client 2>/dev/null) ;;
    helm) out=$("$bin" version --short 2>/dev/null) ;;
    kwok|kwokctl|grpcurl) out=$(cat "$bin.version" 2>/dev/null) ;;
    kube-router) out=$("$bin" --version 2>&1) ;;   # (it prints its version on stderr)
    *) out=$("$bin" --version 2>/dev/null) ;;
  esac
  [[ $out == *"${2#v}"* ]]
}

i=0
for name in "${want[@]}"; do
  i=$((i + 1))
  read -r dir pkg version < <(spec "$name")
  if have_version "$name" "$version"; then
    echo "[build $i/${#want[@]}] $name $version: cached in $BIN_DIR"
    continue
  fi
  ldflags="-s -w"
  case $dir in
    kubernetes) ldflags=$(k8s_ldflags) ;;
    helm) ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" ;;
    kwok) ldflags="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}" ;;
    grpcurl) ldflags="-s -w -X main.version=$GRPCURL_VERSION" ;;
    kube-router)
      ldflags="-s -w -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$KUBE_ROUTER_VERSION"
      ldflags+=" -X github.com/cloudnativelabs/kube-router/v2/pkg/version.BuildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)" ;;
  esac
  echo "[build $i/${#want[@]}] $name $version: building (cold builds take minutes; go's own output follows)"
  start=$(date +%s)
  (cd "$HACK/tools/$dir" && go build -trimpath -ldflags "$ldflags" -o "$BIN_DIR/$name.tmp" "$pkg")
  mv "$BIN_DIR/$name.tmp" "$BIN_DIR/$name"
  echo "$version" > "$BIN_DIR/$name.version"
  echo "[build $i/${#want[@]}] $name $version: built in $(( $(date +%s) - start ))s"
done
