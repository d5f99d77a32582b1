#!/usr/bin/env bash
# patchctl used as a person would, on the e2e cluster, every output checked:
# create -f, watch, get, describe, diff, history, report (promoted, failed and
# rolled back), rollback --wait, approve/reject as two users (kubeconfigs with
# `as:` impersonation), the kubectl plug-in, and the errors people meet.
# Usage: patchctl_test.sh OPERATOR_BINARY PATCHCTL_BINARY
# KUBECONFIG: $PATCHGATE_TEST_KUBECONFIG or the e2e fixture cluster's
# ($PATCHGATE_TEST_CLUSTER, default pg-e2e). On a kwok cluster test pods do
# not run, so the checks of test output are skipped there.
OPERATOR=${1:?usage: $0 OPERATOR_BINARY PATCHCTL_BINARY}
PATCHCTL=${2:?usage: $0 OPERATOR_BINARY PATCHCTL_BINARY}
source "$(dirname "$0")/../patch/lib.sh"
KUBECONFIG=${PATCHGATE_TEST_KUBECONFIG:-$("$ROOT/hack/cluster" kubeconfig --name "${PATCHGATE_TEST_CLUSTER:-pg-e2e}")}
export KUBECONFIG
k apply -f "$ROOT/crds/" >/dev/null
KWOK=false
[[ -n $(k get nodes -o jsonpath='{.items[*].metadata.annotations.kwok\.x-k8s\.io/node}') ]] && KWOK=true

# pc [patchctl args]: patchctl in the test namespace; output in $WORK/out, exit code in $RC.
RC=0
pc() {
  RC=0
  "$PATCHCTL" --kubeconfig "${PC_KUBECONFIG:-$KUBECONFIG}" -n "$NS" "$@" >"$WORK/out" 2>&1 || RC=$?
}
out_has() { grep -qF -- "$1" "$WORK/out" || fail "expected '$1' in the output of: $LAST_CMD
$(cat "$WORK/out")"; }
expect_rc() { # CODE DESCRIPTION
  [[ $RC == "$1" ]] || fail "$2: exit code $RC, expected $1
$(cat "$WORK/out")"
}
run_pc() { LAST_CMD="patchctl $*"; pc "$@"; }

setup_app cli
start_operator

say "GIVEN a Patch manifest that ships v2 with a smoke test"
PATCH_AUTHOR=- patch_yaml fix-pool v2 "$(smoke_test v2)" >"$WORK/good.yaml"   # patchctl names you the author
run_pc create -f "$WORK/good.yaml"
expect_rc 0 "create"
out_has "patch $NS/fix-pool created"

say "WHEN the user watches it"
run_pc watch fix-pool --timeout 300s
expect_rc 0 "watch of a good patch"
out_has "Succeeded"
out_has "Testing"
out_has "Promoting"
say "THEN watch followed it to Succeeded and exited 0 ($(grep -c . "$WORK/out") lines)"
[[ $(prod_env VERSION) == v2 ]] || fail "production does not run v2"

run_pc get
expect_rc 0 "get"
out_has "NAME"; out_has "TARGET"; out_has "PHASE"; out_has "TICKET"; out_has "AGE"
grep -E "^fix-pool +Deployment/checkout +Succeeded +INC-4211 " "$WORK/out" >/dev/null || fail "get table row: $(cat "$WORK/out")"
run_pc get fix-pool -o yaml
out_has "phase: Succeeded"; out_has "kind: Patch"
run_pc get -o json
out_has '"kind": "List"'
run_pc get -A
out_has "NAMESPACE"; out_has "$NS"
say "AND get shows it Succeeded (table, yaml, json, -A)"

run_pc describe fix-pool
expect_rc 0 "describe"
for s in "Target:       Deployment/checkout" "Ticket:       INC-4211" "Phase:        Succeeded" \
         "Conditions:" "Verified" "Tests:" "smoke" "Passed" "Environment:" "Diff:" "VERSION" \
         "Rollback point: checkout-pg-1 (revision 1)" "History:" "Promoted"; do out_has "$s"; done
$KWOK || out_has "version ok: v2"
say "AND describe shows conditions, tests, environment, diff, rollback point and history"

run_pc diff fix-pool
expect_rc 0 "diff"
# The operator's diff names fields by JSON pointer (env/0/value), not by env var name.
out_has '"v1" -> "v2"'; out_has 'POOL: "16" -> "64"'
say "AND diff shows the change: $(grep -m1 -F '"v1" -> "v2"' "$WORK/out")"

run_pc history deployment/checkout
expect_rc 0 "history"
grep -E "^1 +checkout-pg-1 +.* fix-pool +INC-4211 +Succeeded" "$WORK/out" >/dev/null || fail "history: $(cat "$WORK/out")"
say "AND history shows revision 1, recorded by fix-pool"

run_pc report fix-pool
expect_rc 0 "report"
for s in "# INC-4211: fix-pool" "## Root cause" "retry storm exhausts the connection pool" "## Diff" '```text' \
         "## Tests" "| smoke | Passed |" "## Promotion" "Rollback point: revision 1 (\`checkout-pg-1\`)" \
         "## Verification" "Production became healthy" "## Timeline" "| Succeeded |"; do out_has "$s"; done
$KWOK || out_has "version ok: v2"
cp "$WORK/out" "$WORK/report-good.md"
say "AND report writes the change record ($(wc -l <"$WORK/report-good.md") lines of Markdown)"

say "GIVEN an invalid manifest (no ticket)"
patch_yaml no-ticket v2 "$(smoke_test v2)" | grep -v '^  ticket:' >"$WORK/bad.yaml"
run_pc create -f "$WORK/bad.yaml"
expect_rc 1 "create of an invalid patch"
out_has "spec.ticket"
k get patch -n "$NS" no-ticket >/dev/null 2>&1 && fail "the invalid patch was created"
say "THEN create refuses it locally: $(head -1 "$WORK/out")"

if ! $KWOK; then
  say "GIVEN a Patch whose smoke test fails"
  patch_yaml bad-fix v2 "$(smoke_test v3)" >"$WORK/failing.yaml"
  run_pc create -f "$WORK/failing.yaml" --wait --timeout 300s
  expect_rc 1 "create --wait of a failing patch"
  out_has "Failed"
  run_pc report bad-fix
  out_has "**Failed**"; out_has "| smoke | Failed |"; out_has "saw: v2"
  out_has "_Not promoted: production was not changed by this patch._"
  say "THEN it ends Failed (exit 1) and its report shows the test's output"
  [[ $(prod_env VERSION) == v2 ]] || fail "a failed patch changed production"
fi

say "WHEN the user rolls checkout back to revision 1"
run_pc rollback deployment/checkout --to-revision 1 --ticket INC-4213 --reason "v2 misbehaves under load" --wait --timeout 300s
expect_rc 0 "rollback --wait"
out_has "back to revision 1"
out_has "Succeeded"
rb=$(grep -o "patch $NS/rollback-checkout-[a-z0-9]*" "$WORK/out" | head -1 | sed 's|.*/||')
[[ -n $rb ]] || fail "no rollback patch name in: $(cat "$WORK/out")"
[[ $(prod_env VERSION) == v1 && $(prod_config POOL) == 16 ]] || fail "production not restored (VERSION=$(prod_env VERSION) POOL=$(prod_config POOL))"
say "THEN $rb restored v1 and POOL=16 and exited 0"
run_pc report "$rb"
out_has "# INC-4213: $rb"; out_has "v2 misbehaves under load"; out_has "back to revision 1"
run_pc history deployment/checkout
grep -E "^2 +checkout-pg-2 +.* $rb +INC-4213 +Succeeded" "$WORK/out" >/dev/null || fail "history after rollback: $(cat "$WORK/out")"
say "AND history shows revision 2, recorded by the rollback"

say "GIVEN alice and bob, each with a kubeconfig that impersonates them"
k apply -f - >/dev/null <<YAML
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: patch-user, namespace: $NS}
rules:
- {apiGroups: [patchgate.dev], resources: [patches, patchapprovals], verbs: [get, list, watch, create]}
- {apiGroups: [apps], resources: [controllerrevisions], verbs: [get, list]}
# A Patch's author must be allowed to make its change themself (SubjectAccessReview).
- {apiGroups: [apps], resources: [deployments], verbs: [get, patch]}
- {apiGroups: [""], resources: [configmaps], verbs: [get, patch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: patch-users, namespace: $NS}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: patch-user}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: bob}
YAML
for u in alice bob; do
  # `as:` in the user entry: the admin credentials, impersonating $u
  sed "s/^\(\( *\)user:\)$/\1\n\2  as: $u/" "$KUBECONFIG" >"$WORK/$u.kubeconfig"
  grep -q "as: $u" "$WORK/$u.kubeconfig" || fail "could not add 'as: $u' to the kubeconfig"
done
PATCH_AUTHOR=- patch_yaml needs-approval v3 "$(smoke_test v3)
  promotion: {approval: {required: true, approvers: 1}}" >"$WORK/approval.yaml"
PC_KUBECONFIG=$WORK/alice.kubeconfig run_pc create -f "$WORK/approval.yaml"
expect_rc 0 "alice creates a patch that needs approval"
out_has "spec.author set to alice"
[[ $(k get patch -n "$NS" needs-approval -o jsonpath='{.spec.author}') == alice ]] || fail "author not filled in"
[[ $(k get patch -n "$NS" needs-approval -o jsonpath='{.spec.authorGroups}') == *system:authenticated* ]] ||
  fail "authorGroups not filled in: $(k get patch -n "$NS" needs-approval -o jsonpath='{.spec.authorGroups}')"
say "AND alice creates a Patch needing approval; create fills in author=alice"
wait_phase needs-approval 240 AwaitingApproval
run_pc watch needs-approval --timeout 2s
expect_rc 1 "watch with a short timeout"
out_has "timed out"
say "AND watch --timeout gives up on a waiting patch with exit 1"
PC_KUBECONFIG=$WORK/alice.kubeconfig run_pc approve needs-approval
expect_rc 1 "alice approving her own patch"
out_has "author cannot approve"
say "WHEN alice approves her own patch, patchctl refuses: $(head -1 "$WORK/out")"
PC_KUBECONFIG=$WORK/bob.kubeconfig run_pc approve needs-approval --comment "diff reviewed"
expect_rc 0 "bob approves"
out_has "bob approves patch needs-approval"
run_pc watch needs-approval --timeout 300s
expect_rc 0 "watch after approval"
[[ $(prod_env VERSION) == v3 ]] || fail "the approved patch was not promoted"
run_pc report needs-approval
out_has "| bob | approve | true |"; out_has "diff reviewed"; out_has "| Author | alice |"
say "THEN bob's approval promotes it, and the report names him and his comment"

PATCH_AUTHOR=- patch_yaml wrong-fix v4 "$(smoke_test v4)
  promotion: {approval: {required: true, approvers: 1}}" >"$WORK/reject.yaml"
PC_KUBECONFIG=$WORK/alice.kubeconfig run_pc create -f "$WORK/reject.yaml"
expect_rc 0 "alice creates a second patch"
wait_phase wrong-fix 240 AwaitingApproval
PC_KUBECONFIG=$WORK/bob.kubeconfig run_pc reject wrong-fix --comment "v4 is not released"
expect_rc 0 "bob rejects"
run_pc watch wrong-fix --timeout 120s
expect_rc 1 "watch of a rejected patch"
out_has "Failed"; out_has "rejected by bob"
[[ $(prod_env VERSION) == v3 ]] || fail "a rejected patch changed production"
say "AND bob's rejection ends the next one Failed (watch exits 1), production untouched"

say "GIVEN the errors people meet"
run_pc get does-not-exist
expect_rc 1 "get of a missing patch"
out_has "patch $NS/does-not-exist not found"
cat >"$WORK/nowhere.kubeconfig" <<YAML
apiVersion: v1
kind: Config
clusters: [{name: nowhere, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: nobody, user: {token: x}}]
contexts: [{name: nowhere, context: {cluster: nowhere, user: nobody, namespace: shop}}]
current-context: nowhere
YAML
PC_KUBECONFIG=$WORK/nowhere.kubeconfig run_pc get
expect_rc 1 "get without a reachable cluster"
out_has "cannot reach the Kubernetes API at https://127.0.0.1:1"
PC_KUBECONFIG=$WORK/bob.kubeconfig run_pc get -A
expect_rc 1 "bob listing all namespaces"
out_has "forbidden"; out_has "bob"
run_pc rollback deployment/checkout --ticket X
expect_rc 2 "rollback without --reason"
out_has "--reason"
run_pc frobnicate
expect_rc 2 "unknown command"
run_pc history deployment/checkout --help
expect_rc 0 "--help"; out_has "Usage: patchctl history KIND/NAME"
say "THEN: not found, cannot reach, forbidden (server's message), usage errors exit 2"

plugin_dir=$(dirname "$PATCHCTL")
if [[ -x $plugin_dir/kubectl-patchgate ]]; then
  PATH="$plugin_dir:$PATH" KUBECONFIG=$KUBECONFIG "$KUBECTL" patchgate get -n "$NS" >"$WORK/out" 2>&1 || fail "kubectl patchgate: $(cat "$WORK/out")"
  out_has "needs-approval"
  say "AND it works as the kubectl plug-in: kubectl patchgate get"
else
  fail "no kubectl-patchgate next to $PATCHCTL"
fi
say "PASS"
