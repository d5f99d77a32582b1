#!/usr/bin/env bash
# hack/images/patchgate-report is a busybox shell script, which libFuzzer
# cannot drive: instead, a bounded randomized test in the style of
# tests/unit/hack/patchgate_report_test.sh. $PATCHGATE_REPORT_CASES inputs
# (default 200; seed $PATCHGATE_REPORT_SEED, printed, to replay a failure),
# each run with a 10 s limit, against a stand-in grpcurl:
# - a JSON object (random suites and cases: quotes, backslashes, '%' format
#   directives, unicode, tabs, CR/LF line ends, leading blanks, up to 256 KiB)
#   reaches grpcurl as valid JSON: the request's four fields plus exactly the
#   input's fields and values;
# - input that does not start with '{' (after blanks) exits 2, before any call;
# - anything else (a '{' followed by junk) ends with 0 or 2, never hangs or
#   crashes: the API refuses what is not JSON.
# Usage: patchgate_report_random_test.sh   (needs /bin/busybox and python3)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
REPORT=$REPO/hack/images/patchgate-report
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
[[ -x /bin/busybox ]] || fail "/bin/busybox missing; run hack/deps.sh"
CASES=${PATCHGATE_REPORT_CASES:-200}
SEED=${PATCHGATE_REPORT_SEED:-$RANDOM$RANDOM}
echo "seed $SEED, $CASES cases (PATCHGATE_REPORT_SEED=$SEED to replay)"

mkdir "$WORK/bin" "$WORK/in"
cat > "$WORK/bin/grpcurl" <<'G'
#!/bin/sh
cat > "$GRPCURL_OUT/stdin"
echo '{"suites": 1}'
G
chmod 755 "$WORK/bin/grpcurl"
echo -n "secret-token" > "$WORK/token"

# The inputs: kind ("object", "nonobject", "other") in a name, bytes inside.
python3 - "$SEED" "$CASES" "$WORK/in" <<'PY'
import json, random, sys
seed, n, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
r = random.Random(seed)
atoms = ['a', 'Z', ' ', '"', '\\', '%s', '%d', '%%', '\t', '\u00e9', '\u2603', '\U0001F600', '{', '}', '[', ']',
         ',', ':', '$', '`', '$(id)', "'", '\\n', '\x01', '\x7f', 'null', '-']
def text(k): return ''.join(r.choice(atoms) for _ in range(r.randint(0, k)))
def report():
    suites = [{"name": text(8), "cases": [{"name": text(8), "passed": r.random() < .5,
               "durationSeconds": round(r.random() * 10, 3), "output": text(r.choice([4, 40, 400]))}
              for _ in range(r.randint(0, 5))]} for _ in range(r.randint(0, 4))]
    o = {"suites": suites}
    if r.random() < .2: o["extra"] = {"nested": [1, 2.5, None, True, text(5)]}
    if r.random() < .1: o = {}
    return o
def dump(o):
    s = json.dumps(o, ensure_ascii=r.random() < .5, indent=r.choice([None, 1, '\t']))
    if r.random() < .3: s = s.replace('\n', '\r\n')
    return r.choice(['', ' ', '\n', '\t', ' \n\t ', '\r\n']) + s + r.choice(['', '\n', ' \n', '\r\n'])
cases = []
for i in range(n):
    k = r.random()
    if k < .6:
        cases.append(('object', dump(report())))
    elif k < .85:
        s = text(30)
        if s.lstrip(' \t\n').startswith('{'): s = 'x' + s
        cases.append(('nonobject', s))
    else:
        s = dump(report())
        cut = r.randint(0, len(s))
        cases.append(('other', s[:cut] + text(5)))
# One big report (about 256 KiB), always.
cases.append(('object', json.dumps({"suites": [{"name": "big", "cases": [{"name": "c%d" % i, "passed": True,
              "output": "x" * 2000} for i in range(128)]}]})))
for i, (kind, s) in enumerate(cases):
    open('%s/%04d-%s' % (out, i, kind), 'wb').write(s.encode('utf-8'))
PY

check_object() { # input file, request file
  python3 - "$1" "$2" <<'PY' || return 1
import json, sys
want = json.load(open(sys.argv[1], encoding='utf-8'))
got = json.load(open(sys.argv[2], encoding='utf-8'))
fixed = {"namespace": "pg-fix-1a2b", "patch": "fix", "patchNamespace": "shop", "test": "smoke"}
if got != dict(fixed, **want):
    sys.exit("request differs:\n got %r\nwant %r" % (got, dict(fixed, **want)))
PY
}

n=0
for f in "$WORK"/in/*; do
  kind=${f##*-}
  rm -f "$WORK/stdin"
  set +e
  timeout 10 env -i PATH="$WORK/bin:/bin:/usr/bin" GRPCURL_OUT="$WORK" PATCHGATE_TOKEN_FILE="$WORK/token" \
    PATCHGATE_API_ADDRESS=10.96.0.42:9443 PATCHGATE_API_SERVER_NAME=patchgate-api.patchgate-system.svc \
    PATCHGATE_API_CA_FILE=/var/run/patchgate/api/ca.crt PATCHGATE_NAMESPACE=pg-fix-1a2b \
    PATCHGATE_PATCH=fix PATCHGATE_PATCH_NAMESPACE=shop PATCHGATE_TEST=smoke \
    /bin/busybox sh "$REPORT" "$f" > "$WORK/out" 2>&1
  rc=$?
  set -e
  [[ $rc != 124 ]] || fail "$(basename "$f"): did not end within 10 s"
  case $kind in
    object)
      [[ $rc == 0 && -e $WORK/stdin ]] || fail "$(basename "$f"): a JSON object: exit $rc: $(head -c 300 "$WORK/out")"
      check_object "$f" "$WORK/stdin" || fail "$(basename "$f"): $(head -c 300 "$f" | od -c | head -5)" ;;
    nonobject)
      [[ $rc == 2 && ! -e $WORK/stdin ]] || fail "$(basename "$f"): not an object: exit $rc, grpcurl called: $([[ -e $WORK/stdin ]] && echo yes || echo no)" ;;
    other)
      [[ $rc == 0 || $rc == 2 ]] || fail "$(basename "$f"): exit $rc: $(head -c 300 "$WORK/out")" ;;
  esac
  n=$((n + 1))
done
echo "PASS: $n inputs"
