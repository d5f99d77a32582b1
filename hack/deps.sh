#!/usr/bin/env bash
# Installs the Debian packages patchgate needs to build, test and run its local
# cluster. Idempotent: only missing packages are installed, and it says which.
set -euo pipefail
source "$(dirname "$(readlink -f "$0")")/lib/common.sh"
hack_fail_loudly deps   # any failure ends with a message naming the command

BUILD_PKGS=(build-essential cmake ninja-build pkg-config git ca-certificates
  libcpprest-dev libyaml-cpp-dev prometheus-cpp-dev libgrpc++-dev libprotobuf-dev
  protobuf-compiler protobuf-compiler-grpc libabsl-dev nlohmann-json3-dev
  googletest libgtest-dev libgmock-dev libssl-dev libboost-system-dev zlib1g-dev
  clang-14 libclang-rt-14-dev clang-tidy-14 python3)
# clang-14 + libclang-rt-14-dev: the libFuzzer targets (tests/fuzz, -DPATCHGATE_FUZZ=ON).
# clang-tidy-14: hack/tidy (ctest lint.ClangTidy). python3: the soak's statistics (also unit-tested).
# python3-venv: the gRPC integration test's client (grpcio from PyPI, in a venv).
# ipset: kube-router, real mode's NetworkPolicy enforcer, keeps policy peers in ipsets.
CLUSTER_PKGS=(openssl iproute2 iptables ipset conntrack socat ethtool kmod util-linux
  containerd runc containernetworking-plugins umoci busybox-static
  buildah mmdebstrap skopeo procps psmisc curl python3 python3-venv)

want=("${BUILD_PKGS[@]}")
case "${1:-all}" in
  build) ;;
  all|cluster) want+=("${CLUSTER_PKGS[@]}") ;;
  *) echo "usage: $0 [build|cluster|all]" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "deps: all ${#want[@]} Debian packages present"
  exit 0
fi
echo "deps: installing ${#missing[@]} Debian packages: ${missing[*]}"
SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
# containerd's postinst would start it as a service; we start our own per cluster.
$SUDO apt-get update -qq || true
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done"
