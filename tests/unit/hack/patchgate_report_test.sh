#!/usr/bin/env bash
# hack/images/patchgate-report (the test-runner image's reporter), run with
# the image's shell (busybox) and a stand-in grpcurl that records what it got:
# - the request is the test's JSON with namespace, patch, patchNamespace and
#   test put first (from the PATCHGATE_* variables the operator sets);
# - TLS settings and the method come from the environment; the token goes in
#   through the environment (-expand-headers), never on the command line;
# - input that is not a JSON object, or no API address, fails before any call.
# Usage: patchgate_report_test.sh   (needs /bin/busybox and python3)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../../.." && pwd)
REPORT=$REPO/hack/images/patchgate-report
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
[[ -x /bin/busybox ]] || fail "/bin/busybox missing; run hack/deps.sh"

mkdir "$WORK/bin"
cat > "$WORK/bin/grpcurl" <<'EOF'
#!/bin/sh
cat > "$GRPCURL_OUT/stdin"
printf '%s\n' "$@" > "$GRPCURL_OUT/args"
printf '%s' "$PATCHGATE_BEARER" > "$GRPCURL_OUT/bearer"
echo '{"suites": 1}'
EOF
chmod 755 "$WORK/bin/grpcurl"
echo -n "secret-token" > "$WORK/token"

report() { # stdin -> the script's output; status of the script
  env -i PATH="$WORK/bin:/bin:/usr/bin" GRPCURL_OUT="$WORK" PATCHGATE_TOKEN_FILE="$WORK/token" \
    PATCHGATE_API_ADDRESS="${ADDRESS-10.96.0.42:9443}" PATCHGATE_API_SERVER_NAME=patchgate-api.patchgate-system.svc \
    PATCHGATE_API_CA_FILE=/var/run/patchgate/api/ca.crt PATCHGATE_NAMESPACE=pg-fix-1a2b \
    PATCHGATE_PATCH=fix PATCHGATE_PATCH_NAMESPACE=shop PATCHGATE_TEST=smoke \
    /bin/busybox sh "$REPORT" "$@"
}
field() { python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))[sys.argv[2]]))' "$WORK/stdin" "$1"; }

# 1. A report over several lines: the request and the call.
printf '\n  {\n "suites": [{"name": "http", "cases": [{"name": "GET /", "passed": true}]}]\n}\n' |
  report > "$WORK/out" || fail "patchgate-report failed: $(cat "$WORK/out")"
[[ $(field namespace) == '"pg-fix-1a2b"' && $(field patch) == '"fix"' && $(field patchNamespace) == '"shop"' &&
   $(field test) == '"smoke"' ]] || fail "request fields: $(cat "$WORK/stdin")"
[[ $(field suites) == '[{"name": "http", "cases": [{"name": "GET /", "passed": true}]}]' ]] ||
  fail "suites: $(cat "$WORK/stdin")"
grep -qx -- '-cacert' "$WORK/args" && grep -qx /var/run/patchgate/api/ca.crt "$WORK/args" || fail "no CA: $(cat "$WORK/args")"
grep -qx patchgate-api.patchgate-system.svc "$WORK/args" || fail "no server name: $(cat "$WORK/args")"
grep -qx 'authorization: Bearer ${PATCHGATE_BEARER}' "$WORK/args" || fail "no expanded header: $(cat "$WORK/args")"
grep -q secret-token "$WORK/args" && fail "the token is on grpcurl's command line"
[[ $(cat "$WORK/bearer") == secret-token ]] || fail "the token did not reach grpcurl's environment"
[[ $(tail -2 "$WORK/args") == $'10.96.0.42:9443\npatchgate.v1.Patchgate/ReportTestResults' ]] ||
  fail "address and method: $(tail -2 "$WORK/args")"
grep -q '"suites": 1' "$WORK/out" || fail "grpcurl's answer not passed on"
echo "ok: the request, the TLS settings and the token (in the environment only)"

# 2. An empty object: only the request's own fields, valid JSON.
echo '{ }' | report >/dev/null || fail "an empty object failed"
[[ $(python3 -c 'import json,sys; print(sorted(json.load(open(sys.argv[1]))))' "$WORK/stdin") == \
   "['namespace', 'patch', 'patchNamespace', 'test']" ]] || fail "empty object: $(cat "$WORK/stdin")"
echo "ok: an empty object"

# 3. Refused before any call.
for bad in '' 'passed' '[1, 2]'; do
  rm -f "$WORK/args"
  set +e; printf '%s' "$bad" | report > "$WORK/out" 2>&1; rc=$?; set -e
  [[ $rc == 2 && ! -e $WORK/args ]] || fail "input '$bad': exit $rc, grpcurl called: $([[ -e $WORK/args ]] && echo yes || echo no)"
  grep -q "not a JSON object" "$WORK/out" || fail "input '$bad': $(cat "$WORK/out")"
done
rm -f "$WORK/args"
set +e; echo '{}' | ADDRESS='' report > "$WORK/out" 2>&1; rc=$?; set -e
[[ $rc != 0 && ! -e $WORK/args ]] || fail "no API address: exit $rc"
grep -q "PATCHGATE_API_ADDRESS" "$WORK/out" || fail "no API address: $(cat "$WORK/out")"
echo "ok: non-objects and a missing API address are refused before any call"
echo PASS
