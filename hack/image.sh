#!/usr/bin/env bash
# Builds the operator image from the repository's Dockerfile without Docker and
# without a registry (none is reachable from these machines):
#
#   1. base: `mmdebstrap --variant=minbase` of bookworm from the Debian mirror
#      this machine's apt uses (read from /etc/apt at run time), imported with
#      `buildah from scratch` + `add` + `commit` under the name the Dockerfile's
#      FROM uses (debian:bookworm-slim, which buildah's short-name aliases expand
#      to Docker Hub's full name), once, cached;
#   2. `buildah bud --isolation chroot --pull-never` of ./Dockerfile: the build
#      stage apt-installs the -dev packages and compiles the operator (several
#      minutes on 2 cores), the runtime stage is bookworm-slim + runtime libs;
#   3. `buildah push` to a docker archive that `hack/cluster load-image` (i.e.
#      `ctr images import`) accepts; the archive carries the full image name.
#
# Cached: the archive lives in $PATCHGATE_CACHE/operator-image/<hash>/, where
# <hash> covers every input of the image (Dockerfile, .dockerignore,
# CMakeLists.txt, operator/, the image name), so an unchanged tree costs nothing.
# buildah's own storage is kept apart in $PATCHGATE_CACHE/buildah (vfs driver).
#
# Usage: hack/image.sh           builds if needed; prints the archive path on stdout
#        hack/image.sh --name    prints the image name
#        hack/image.sh --base    only makes the base image (light: no compiling)
# Env:   PATCHGATE_IMAGE         image name (default patchgate.dev/patchgate-operator:dev)
#        PATCHGATE_DEBIAN_MIRROR a Debian mirror URI to use instead of the one in /etc/apt
#        PATCHGATE_IMAGE_JOBS    parallel compile jobs in the build stage (default: all CPUs)
# Progress and the image size go to stderr; needs root (buildah/mmdebstrap).
set -euo pipefail
HACK=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
REPO=$(cd "$HACK/.." && pwd)
source "$HACK/versions.sh"
source "$HACK/lib/common.sh"
hack_fail_loudly image   # any failure ends with a message naming the command

IMAGE=${PATCHGATE_IMAGE:-patchgate.dev/patchgate-operator:dev}
BASE=debian:bookworm-slim      # as the Dockerfile's FROM (buildah expands the short name)
[[ ${1:-} == --name ]] && { echo "$IMAGE"; exit 0; }

say() { printf '[image %4ds] %s\n' "$(( $(date +%s) - T0 ))" "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }
T0=$(date +%s)

for tool in buildah mmdebstrap sha256sum flock; do
  command -v "$tool" >/dev/null || die "$tool missing; run hack/deps.sh"
done
[[ $(id -u) -eq 0 ]] || die "run as root (buildah with chroot isolation, mmdebstrap)"

STATE=$PATCHGATE_CACHE/operator-image
mkdir -p "$STATE"
bh() {
  buildah --root "$PATCHGATE_CACHE/buildah/storage" --runroot /run/patchgate-buildah \
    --storage-driver vfs "$@"
}

# --- inputs and cache --------------------------------------------------------
inputs_hash() {
  ( cd "$REPO"
    { echo "$IMAGE"
      find Dockerfile .dockerignore CMakeLists.txt operator -type f -print0 | LC_ALL=C sort -z |
        xargs -0 sha256sum
    } | sha256sum | cut -c1-16 )
}
KEY=$(inputs_hash)
OUT=$STATE/$KEY
ARCHIVE=$OUT/patchgate-operator.tar

# One build at a time (a second caller waits and then finds the cache warm).
exec 9>"$STATE/.lock"
flock 9

if [[ -f $OUT/done && ${1:-} != --base ]]; then
  say "cached: $IMAGE ($(cat "$OUT/size" 2>/dev/null || echo '?')) inputs $KEY"
  echo "$ARCHIVE"
  exit 0
fi

# --- the Debian mirror, from this machine's apt sources --------------------------
# Prints one-line apt entries ("deb URI SUITE main") for the bookworm suites of
# the enabled sources: sources.list, *.list and deb822 *.sources files.
debian_sources() {
  if [[ -n ${PATCHGATE_DEBIAN_MIRROR:-} ]]; then
    echo "deb $PATCHGATE_DEBIAN_MIRROR bookworm main"
    return
  fi
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    sed -E 's/\[[^]]*\]//' "$f" | awk '$1=="deb" && $3 ~ /^bookworm/ {print "deb", $2, $3, "main"}'
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    awk '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && enabled != "no")
          for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++)
            if (s[j] ~ /^bookworm/) print "deb", u[i], s[j], "main"
        types = ""; enabled = ""; nu = 0; ns = 0
      }
      /^[[:space:]]*#/ { next }
      /^[[:space:]]*$/ { flush(); next }
      tolower($1) == "types:"   { types = ""; for (k = 2; k <= NF; k++) types = types " " $k; types = types " " }
      tolower($1) == "uris:"    { for (k = 2; k <= NF; k++) u[++nu] = $k }
      tolower($1) == "suites:"  { for (k = 2; k <= NF; k++) s[++ns] = $k }
      tolower($1) == "enabled:" { enabled = tolower($2) }
      END { flush() }' "$f"
  done
}

# --- 1. the base image -----------------------------------------------------------
if bh inspect --type image "$BASE" >/dev/null 2>&1; then
  say "base $BASE present"
else
  mapfile -t sources < <(debian_sources | awk '!seen[$0]++')
  ((${#sources[@]})) || die "no bookworm source in /etc/apt/sources.list*; set PATCHGATE_DEBIAN_MIRROR"
  say "base: mmdebstrap --variant=minbase bookworm from this machine's apt sources (${#sources[@]} suites)"
  tmp=$(mktemp -d "$STATE/.base.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  # Like the official slim image: no docs, man pages or locales.
  mmdebstrap --quiet --variant=minbase --format=tar \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    bookworm "$tmp/base.tar" "${sources[@]}" >&2
  ctr=$(bh from scratch)
  bh add --quiet "$ctr" "$tmp/base.tar" / >/dev/null
  bh config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --cmd bash --os linux --arch amd64 "$ctr"
  bh commit --quiet --rm "$ctr" "$BASE" >/dev/null
  rm -rf "$tmp"; trap - EXIT
  say "base $BASE imported ($(bh images --format '{{.Size}}' "$BASE"))"
fi

[[ ${1:-} == --base ]] && exit 0

# --- 2. the image ----------------------------------------------------------------------
mkdir -p "$OUT"
log=$OUT/build.log
build_image() {
  say "buildah bud $IMAGE (inputs $KEY; log $log) — compiling takes minutes"
  local jobs=() pid seen=0 n
  [[ -n ${PATCHGATE_IMAGE_JOBS:-} ]] && jobs=(--build-arg "JOBS=$PATCHGATE_IMAGE_JOBS")
  bh bud --isolation chroot --pull-never --layers=false "${jobs[@]}" --label "patchgate.dev/inputs=$KEY" \
    -f "$REPO/Dockerfile" -t "$IMAGE" "$REPO" >"$log" 2>&1 < /dev/null &
  pid=$!
  # Progress: the Dockerfile steps as they start ("[1/2] STEP 3/9: RUN ...").
  local step_re='^(\[[0-9]+/[0-9]+\] )?STEP '
  while kill -0 "$pid" 2>/dev/null; do
    sleep 5
    n=$(grep -cE "$step_re" "$log" || true)
    if (( n > seen )); then
      grep -E "$step_re" "$log" | sed -n "$((seen + 1)),${n}p" | cut -c1-110 | while read -r l; do say "$l"; done
      seen=$n
    fi
  done
  if ! wait "$pid"; then
    tail -40 "$log" >&2
    die "buildah bud failed (full log: $log)"
  fi
  grep -m1 '^runtime packages:' "$log" | while read -r l; do say "$l"; done
}
# The image of these inputs may be in buildah's storage already (the archive
# was removed, or an earlier run stopped after building): then only push it.
if [[ $(bh inspect --type image --format '{{index .OCIv1.Config.Labels "patchgate.dev/inputs"}}' "$IMAGE" 2>/dev/null) == "$KEY" ]]; then
  say "$IMAGE of inputs $KEY is in buildah's storage already; not rebuilding"
else
  build_image
fi

# --- 3. the archive -----------------------------------------------------------------------
rm -f "$ARCHIVE"
bh push --quiet "$IMAGE" "docker-archive:$ARCHIVE:$IMAGE" >&2
size=$(bh images --format '{{.Size}}' "$IMAGE")
echo "$size (archive $(du -h "$ARCHIVE" | cut -f1))" > "$OUT/size"
touch "$OUT/done"
# Earlier builds (other inputs) and dangling build-stage images are of no use any more.
find "$STATE" -mindepth 1 -maxdepth 1 -type d ! -name "$KEY" ! -name '.*' -exec rm -rf {} +
bh rmi --prune >/dev/null 2>&1 || true
say "built $IMAGE: $(cat "$OUT/size") in $(( $(date +%s) - T0 ))s -> $ARCHIVE"
echo "$ARCHIVE"
