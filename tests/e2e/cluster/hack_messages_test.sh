#!/usr/bin/env bash
# Every hack/ command ends with a message on failure, never silently (issue 16).
# Each case makes one command fail on a step that prints nothing itself (a
# failed mkdir under a cache path that is a file, a helm or apt-get that exits
# non-zero quietly, an openssl that fails inside hack/lib/pki.sh) and checks that
# stderr names the command, the file and line, and the exit code:
#   [TAG] error: exit code N from: COMMAND  (at FILE:LINE, in FUNCTION)
# Nothing is installed or written outside a temporary folder. The hack/lib case
# starts `hack/cluster up --mode kwok` (name pg-ht-msg), which fails in its
# certificates step; `down` must then leave nothing (check_down_clean.sh).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
source "$REPO/hack/versions.sh"
T=$(mktemp -d -t pg-ht-msg.XXXXXX)
NAME=pg-ht-msg
failures=()

cleanup() {
  local rc=$?
  if [[ -d $PATCHGATE_CACHE/clusters/$NAME ]]; then "$REPO/hack/cluster" down --name "$NAME" >/dev/null 2>&1 || true; fi
  rm -rf "$T"
  exit $rc
}
trap cleanup EXIT

# case: description, expected tag, expected file (of the failing line), command...
check() { # what tag file cmd...
  local what=$1 tag=$2 file=$3; shift 3
  local rc=0 line
  ( cd "$REPO" && "$@" ) >"$T/out" 2>"$T/err" </dev/null || rc=$?
  line=$(grep -E "^\[$tag[^]]*\] error: exit code [0-9]+ from: .+  \(at $file:[0-9]+, in [A-Za-z_0-9]+\)$" "$T/err" | tail -1 || true)
  if ((rc == 0)); then
    failures+=("$what: exited 0")
    echo "FAIL $what: exited 0"
  elif [[ -z $line ]]; then
    failures+=("$what: exit $rc without the error line")
    echo "FAIL $what: exit $rc, and stderr has no '[$tag] error: ... (at $file:LINE, ...)' line; it was:"
    tail -5 "$T/err" | sed 's/^/    | /'
  else
    echo "ok   $what: exit $rc: $line"
  fi
}

# A cache path under a regular file: every mkdir in it fails.
touch "$T/file"
BAD_CACHE=$T/file/cache
# A PATH where dpkg-query reports every package missing and apt-get fails
# quietly: deps.sh (and the commands that run it first) fail on the install.
mkdir -p "$T/fakebin"
printf '#!/bin/sh\nexit 1\n' > "$T/fakebin/dpkg-query"
printf '#!/bin/sh\nexit 100\n' > "$T/fakebin/apt-get"
# Not root: deps.sh would call sudo, whose reset PATH finds the real apt-get.
printf '#!/bin/sh\nexit 1\n' > "$T/fakebin/sudo"
# and an openssl that fails without a word
mkdir -p "$T/fakessl"
printf '#!/bin/sh\nexit 3\n' > "$T/fakessl/openssl"
chmod +x "$T"/fakebin/* "$T/fakessl/openssl"
# images.sh: a stand-in grpcurl, and the images folder taken by a file
mkdir -p "$T/imgcache/bin"
printf '#!/bin/sh\nexit 0\n' > "$T/imgcache/bin/grpcurl"
chmod +x "$T/imgcache/bin/grpcurl"
touch "$T/imgcache/images"

check "hack/cluster down (state folder cannot be made)" "cluster $NAME" hack/cluster \
  env PATCHGATE_CACHE="$BAD_CACHE" hack/cluster down --name "$NAME"
check "hack/build-tools.sh (cache cannot be made)" build-tools hack/build-tools.sh \
  env PATCHGATE_CACHE="$BAD_CACHE" hack/build-tools.sh kubectl
check "hack/deps.sh (apt-get fails quietly)" deps hack/deps.sh \
  env PATH="$T/fakebin:$PATH" hack/deps.sh build
check "hack/demo (its deps step fails)" demo hack/demo \
  env PATH="$T/fakebin:$PATH" hack/demo
check "hack/test (its deps step fails)" test hack/test \
  env PATH="$T/fakebin:$PATH" hack/test
check "hack/images.sh (images folder cannot be made)" images hack/images.sh \
  env PATCHGATE_CACHE="$T/imgcache" hack/images.sh
if [[ $(id -u) -eq 0 ]] && command -v buildah >/dev/null && command -v mmdebstrap >/dev/null; then
  check "hack/image.sh (state folder cannot be made)" image hack/image.sh \
    env PATCHGATE_CACHE="$BAD_CACHE" hack/image.sh
else
  echo "skip hack/image.sh: needs root, buildah and mmdebstrap (hack/deps.sh)"
fi
check "hack/render-deploy.sh --check (helm fails quietly)" render-deploy hack/render-deploy.sh \
  env HELM=/bin/false hack/render-deploy.sh --check

# hack/lib: a failure inside a sourced library names the library's line.
if [[ -x $BIN_DIR/kube-apiserver && -x $BIN_DIR/kwok ]]; then
  [[ ! -d $PATCHGATE_CACHE/clusters/$NAME ]] || "$REPO/hack/cluster" down --name "$NAME" >/dev/null 2>&1 || true
  check "hack/cluster up, failing in hack/lib/pki.sh" "cluster $NAME" hack/lib/pki.sh \
    env PATH="$T/fakessl:$PATH" hack/cluster up --name "$NAME" --mode kwok --nodes 1
  grep -q "up failed; logs in .*clean up with: hack/cluster down --name $NAME" "$T/err" ||
    { failures+=("failed up did not say how to clean up"); echo "FAIL failed up did not say how to clean up"; }
  # down after that failed up
  if "$REPO/hack/cluster" down --name "$NAME" >"$T/out" 2>"$T/err" && "$HERE/check_down_clean.sh" "$NAME"; then
    echo "ok   down after the failed up: exit 0, nothing left"
  else
    failures+=("down after the failed kwok up"); echo "FAIL down after the failed kwok up:"; sed 's/^/    | /' "$T/err"
  fi
else
  failures+=("hack/lib case: binaries missing"); echo "FAIL hack/lib case: $BIN_DIR lacks the binaries; run hack/build-tools.sh"
fi

if ((${#failures[@]})); then
  printf 'FAIL [hack_messages]: %s\n' "${failures[@]}" >&2
  exit 1
fi
echo "PASS [hack_messages]: every hack/ command said what failed, where, with which exit code"
