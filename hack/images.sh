#!/usr/bin/env bash
# Builds the container images the real-mode cluster needs, without Docker and
# without a registry (none is reachable from these machines):
#
#   patchgate.dev/pause:3.10        pod sandbox ("pause") image: sleeps until TERM
#   patchgate.dev/demo-app:1.0      tiny web app on :8080 (/healthz, /version, /)
#   patchgate.dev/test-runner:1.0   busybox sh + wget, grpcurl and patchgate-report
#                                   (reports results to the patchgate API), for test Jobs
#
# Each image is one layer: Debian's busybox-static plus a few scripts (and, in
# test-runner, grpcurl built by hack/build-tools.sh and our .proto), put in an
# OCI layout with umoci and written as an OCI archive (a tar of the layout) that
# `ctr -n k8s.io images import --base-name patchgate.dev/<image>` accepts.
#
# The archives are cached in $PATCHGATE_CACHE/images/<hash>/, where <hash> covers
# everything that goes into them (this script, the busybox and grpcurl binaries,
# the .proto, images/patchgate-report, umoci's version), so a warm cache costs
# nothing and any change rebuilds.
#
# Usage: hack/images.sh            builds if needed, prints the cache folder
#        hack/images.sh --list     prints "<archive> <base-name>" per image
#
# demo-app behaviour, set by environment variables of its container:
#   VERSION=<text>   shown by GET /version (default "unknown")
#   HEALTHY=false    GET /healthz answers 500, so a readiness probe fails
#   CRASH=true       the container exits 1 at start (a rollout that never
#                    becomes healthy)
#   PORT=<n>         listen port (default 8080)
# It logs "demo-app starting version=..." at start and one line per request.
#
# Trap: Debian's static busybox 1.35 `wget -T N` segfaults; use `timeout N wget`.
set -euo pipefail
HACK=$(cd "$(dirname "$0")" && pwd)
source "$HACK/versions.sh"
source "$HACK/lib/common.sh"
hack_fail_loudly images   # any failure ends with a message naming the command

IMAGES=(pause:3.10 demo-app:1.0 test-runner:1.0)
BUSYBOX=/bin/busybox
GRPCURL=$BIN_DIR/grpcurl
PROTO=$HACK/../operator/proto/patchgate/v1/patchgate.proto
REPORT=$HACK/images/patchgate-report

for tool in umoci tar sha256sum; do
  command -v "$tool" >/dev/null || { echo "images: $tool missing; run hack/deps.sh" >&2; exit 1; }
done
[[ -x $BUSYBOX && $("$BUSYBOX" --list) == *wget* ]] ||
  { echo "images: $BUSYBOX (Debian busybox-static) missing; run hack/deps.sh" >&2; exit 1; }
[[ -x $GRPCURL ]] || { echo "images: $GRPCURL missing; run hack/build-tools.sh grpcurl" >&2; exit 1; }

key=$( { sha256sum < "$0"; sha256sum < "$BUSYBOX"; sha256sum < "$GRPCURL"; sha256sum < "$PROTO"; sha256sum < "$REPORT"
         umoci --version; } | sha256sum | cut -c1-16)
OUT=$PATCHGATE_CACHE/images/$key

list() {
  local img
  for img in "${IMAGES[@]}"; do
    echo "$OUT/${img%%:*}.tar patchgate.dev/${img%%:*}"
  done
}

if [[ -f $OUT/done ]]; then
  [[ ${1:-} == --list ]] && list || echo "$OUT"
  exit 0
fi

# --- the files inside the images ---------------------------------------------

# The sandbox image. PID 1 of a PID namespace ignores signals it has no handler
# for, so trap TERM to stop at once instead of waiting for the KILL.
write_pause() {
  cat > "$1/pause" <<'EOF'
#!/bin/sh
trap 'exit 0' TERM INT
while :; do sleep 3600 & wait; done
EOF
  chmod 755 "$1/pause"
}

# The demo app: busybox has no CGI-free dynamic httpd, so `nc -ll -e` forks one
# handler per connection; the handler speaks just enough HTTP/1.0.
write_demo_app() {
  mkdir -p "$1/app"
  cat > "$1/app/start" <<'EOF'
#!/bin/sh
# Entrypoint of patchgate.dev/demo-app. Runs as PID 1, so it traps TERM to stop
# quickly (a pod deletion must not wait for the grace period).
echo "demo-app starting version=${VERSION:-unknown} healthy=${HEALTHY:-true} crash=${CRASH:-false} port=${PORT:-8080}"
if [ "${CRASH:-false}" = true ]; then
  echo "demo-app crashing on purpose (CRASH=true)"
  exit 1
fi
nc -ll -p "${PORT:-8080}" -e /app/handle &
child=$!
trap 'echo "demo-app stopping"; kill $child 2>/dev/null; exit 0' TERM INT
wait $child
echo "demo-app: listener exited"
exit 1
EOF
  cat > "$1/app/handle" <<'EOF'
#!/bin/sh
# One HTTP request on stdin/stdout (the socket); logs go to stderr.
read -r method path proto || exit 0
while read -r line; do
  line=$(printf '%s' "$line" | tr -d '\r')
  [ -z "$line" ] && break
done
path=${path%%\?*}
status="200 OK"
case "$path" in
  /healthz)
    if [ "${HEALTHY:-true}" = false ]; then status="500 Internal Server Error"; body="unhealthy"
    else body="ok"; fi ;;
  /version) body="${VERSION:-unknown}" ;;
  /) body="demo-app version=${VERSION:-unknown} host=$(hostname)" ;;
  *) status="404 Not Found"; body="not found" ;;
esac
printf 'HTTP/1.0 %s\r\nContent-Type: text/plain\r\nContent-Length: %s\r\nConnection: close\r\n\r\n%s\n' \
  "$status" "$(( ${#body} + 1 ))" "$body"
echo "demo-app request method=$method path=$path status=${status%% *} version=${VERSION:-unknown}" >&2
EOF
  chmod 755 "$1/app/start" "$1/app/handle"
}

# The test runner: grpcurl (a gRPC client that is not ours), the API's .proto,
# and patchgate-report, which wraps the one call a test makes.
write_test_runner() {
  mkdir -p "$1/usr/share/patchgate/proto/patchgate/v1"
  cp "$GRPCURL" "$1/bin/grpcurl"
  cp "$PROTO" "$1/usr/share/patchgate/proto/patchgate/v1/patchgate.proto"
  install -m 755 "$REPORT" "$1/bin/patchgate-report"
}

# --- building ------------------------------------------------------------------

# Makes a root filesystem with busybox and one symlink per applet.
fill_rootfs() {
  local root=$1 applet
  mkdir -p "$root"/{bin,etc,tmp,proc,sys,dev,root}
  chmod 1777 "$root/tmp"
  cp "$BUSYBOX" "$root/bin/busybox"
  for applet in $("$BUSYBOX" --list); do
    [[ $applet == busybox ]] || ln -sf busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
}

build_one() { # name tag workdir
  local name=$1 tag=$2 work=$3
  local layout=$work/$name-layout bundle=$work/$name-bundle
  umoci init --layout "$layout"
  umoci new --image "$layout:$tag"
  umoci unpack --image "$layout:$tag" "$bundle" >/dev/null
  fill_rootfs "$bundle/rootfs"
  local cfg=(--config.env PATH=/bin --config.workingdir / --os linux --architecture amd64
             --author patchgate --config.label "org.opencontainers.image.title=$name")
  case $name in
    pause) write_pause "$bundle/rootfs"; cfg+=(--config.entrypoint /pause) ;;
    demo-app) write_demo_app "$bundle/rootfs"
      cfg+=(--config.entrypoint /app/start --config.exposedports 8080/tcp
            --config.env VERSION=1.0 --config.env HEALTHY=true) ;;
    test-runner) write_test_runner "$bundle/rootfs"; cfg+=(--config.cmd /bin/sh) ;;
  esac
  umoci repack --image "$layout:$tag" "$bundle"
  umoci config --image "$layout:$tag" "${cfg[@]}"
  umoci gc --layout "$layout"
  # The archive holds the layout at its root, as `ctr images import` expects.
  tar -C "$layout" -cf "$work/$name.tar" oci-layout index.json blobs
}

start=$(date +%s)
mkdir -p "$PATCHGATE_CACHE/images"
work=$(mktemp -d "$PATCHGATE_CACHE/images/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
for img in "${IMAGES[@]}"; do
  echo "[images] building patchgate.dev/$img" >&2
  build_one "${img%%:*}" "${img#*:}" "$work"
done
mkdir -p "$OUT"
# Older builds (other inputs) are of no use any more.
find "$PATCHGATE_CACHE/images" -mindepth 1 -maxdepth 1 -type d ! -name "$key" ! -name '.build.*' -exec rm -rf {} +
for img in "${IMAGES[@]}"; do mv "$work/${img%%:*}.tar" "$OUT/"; done
touch "$OUT/done"
echo "[images] built ${#IMAGES[@]} images in $(( $(date +%s) - start ))s into $OUT" >&2
[[ ${1:-} == --list ]] && list || echo "$OUT"
