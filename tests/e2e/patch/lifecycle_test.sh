#!/usr/bin/env bash
# Patch lifecycle stories on the real-node cluster: each is what a user would
# do and see. Usage: lifecycle_test.sh STORY OPERATOR_BINARY
#   good | failing-test | rollback | config-rollback | drift | queue | approval | policy | restart | metrics
# KUBECONFIG: $PATCHGATE_TEST_KUBECONFIG or the e2e fixture cluster's.
STORY=${1:?usage: $0 STORY OPERATOR_BINARY}
OPERATOR=${2:?usage: $0 STORY OPERATOR_BINARY}
source "$(dirname "$0")/lib.sh"
KUBECONFIG=${PATCHGATE_TEST_KUBECONFIG:-$("$ROOT/hack/cluster" kubeconfig --name "${PATCHGATE_TEST_CLUSTER:-pg-e2e}")}
export KUBECONFIG
k apply -f "$ROOT/crds/" >/dev/null

story_good() {
  setup_app good
  start_operator
  k create secret generic -n "$NS" checkout-db --from-literal=password=o1d-s3cret >/dev/null
  k create secret generic -n "$NS" checkout-db-rotated --from-literal=password=n3w-s3cret >/dev/null
  k create rolebinding -n "$NS" viewer --clusterrole=view --user=viewer >/dev/null
  say "GIVEN a Patch that ships v2, raises POOL to 64 and rotates a Secret (new value from Secret checkout-db-rotated), with a smoke test"
  patch_yaml fix-pool v2 "$(smoke_test v2)" |
    sed "s|^    - {kind: ConfigMap, name: checkout-config, patch: '{\"data\":{\"POOL\":\"64\"}}'}|&\n    - {kind: Secret, name: checkout-db, fromSecret: checkout-db-rotated}|" |
    k apply -f - >/dev/null
  wait_phase fix-pool 240 Succeeded Failed RolledBack
  [[ $(phase fix-pool) == Succeeded ]] || fail "expected Succeeded"
  local test_msg; test_msg=$(k get patch -n "$NS" fix-pool -o jsonpath='{.status.tests[0].message}')
  [[ $test_msg == *"version ok: v2"* ]] || fail "the test did not see v2 through the copy's Service: '$test_msg'"
  say "THEN the test ran against the patched copy: $test_msg"
  [[ $(prod_env VERSION) == v2 ]] || fail "production does not run v2"
  [[ $(prod_config POOL) == 64 ]] || fail "production config not changed"
  k rollout status -n "$NS" deploy/checkout --timeout=60s >/dev/null
  say "AND production runs v2 with POOL=64"
  [[ $(revisions) == 1 ]] || fail "expected one revision, found $(revisions)"
  local rev; rev=$(k get controllerrevisions -n "$NS" -l patchgate.dev/target=Deployment.checkout -o jsonpath='{.items[0].metadata.name} revision={.items[0].revision} ticket={.items[0].metadata.annotations.patchgate\.dev/ticket}')
  say "AND the rollback point is recorded: $rev"
  local old64; old64=$(printf o1d-s3cret | base64)
  [[ $(k get secret -n "$NS" checkout-db -o jsonpath='{.data.password}' | base64 -d) == n3w-s3cret ]] || fail "the Secret was not rotated"
  if k --as=viewer get controllerrevisions -n "$NS" -o json | grep -qe "$old64" -e o1d-s3cret; then
    fail "a view user reads the old Secret value from the rollback point"
  fi
  local patch_json; patch_json=$(k get patch -n "$NS" fix-pool -o json)  # what anyone who may read Patches sees
  [[ -n $patch_json ]] || fail "cannot read the Patch"
  if grep -qe "$old64" -e o1d-s3cret -e "$(printf n3w-s3cret | base64)" -e n3w-s3cret <<<"$patch_json"; then
    fail "the Patch shows a Secret value"
  fi
  k --as=viewer get secret -n "$NS" checkout-pg-1-secrets -o name 2>"$WORK/err" >/dev/null && fail "a view user reads the Secret snapshot"
  say "AND no Secret value, old or new, in the rollback point (as a view user) or the Patch; the snapshot Secret answers the view user: $(head -c 120 "$WORK/err")"
  say "AND the diff says only: $(k get patch -n "$NS" fix-pool -o jsonpath='{.status.diff}' | grep -A1 'Secret/checkout-db' | tail -1)"
  for _ in $(seq 60); do [[ $(env_namespaces) == 0 ]] && break; sleep 1; done
  [[ $(env_namespaces) == 0 ]] || fail "environment not cleaned up after its TTL"
  say "AND the test environment was deleted after its TTL"
  k get events -n "$NS" --field-selector involvedObject.name=fix-pool -o jsonpath='{range .items[*]}{.reason}{" "}{end}' | grep -q Promoted || fail "no Promoted event"
}

story_failing_test() {
  setup_app failing
  start_operator
  say "GIVEN a Patch whose smoke test expects a version the patch does not ship"
  patch_yaml bad-fix v2 "$(smoke_test v3)
  " | sed 's/ttlSecondsAfterFinished: 5}/ttlSecondsAfterFinished: 5, keepOnFailure: true}/' | k apply -f - >/dev/null
  wait_phase bad-fix 240 Failed Succeeded
  [[ $(phase bad-fix) == Failed ]] || fail "expected Failed"
  [[ $(prod_env VERSION) == v1 && $(prod_config POOL) == 16 ]] || fail "production was touched"
  say "THEN production is untouched (v1, POOL=16)"
  [[ $(revisions) == 0 ]] || fail "a revision was recorded for a failed patch"
  sleep 8
  [[ $(env_namespaces) == 1 ]] || fail "the environment was not kept (keepOnFailure)"
  say "AND the environment is kept for debugging: $(k get ns -l patchgate.dev/patch-namespace=$NS -o name)"
  k get patch -n "$NS" bad-fix -o jsonpath='{.status.conditions[?(@.type=="TestsPassed")].message}' | grep -q "smoke failed" || fail "no clear TestsPassed message"
}

story_rollback() {
  setup_app rollback
  start_operator
  say "GIVEN a Patch that works in the test copy but crashes in production's namespace"
  patch_yaml crash-in-prod v2 "$(smoke_test v2)" | sed "s|env: \[{name: VERSION, value: \"v2\"}\]}\]}}}|env: [{name: VERSION, value: \"v2\"}, {name: PROD_NS, value: $NS}, {name: POD_NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}], command: [/bin/sh, -c, 'if [ \"\$POD_NS\" = \"\$PROD_NS\" ]; then echo crashing in production; exit 1; fi; exec /app/start']}]}}}|; s/timeoutSeconds: 60, bakeSeconds: 5}/timeoutSeconds: 25, bakeSeconds: 5}/" | k apply -f - >/dev/null
  wait_phase crash-in-prod 300 RolledBack Succeeded Failed
  [[ $(phase crash-in-prod) == RolledBack ]] || fail "expected RolledBack"
  k rollout status -n "$NS" deploy/checkout --timeout=120s >/dev/null || fail "production did not recover"
  [[ $(prod_env VERSION) == v1 && $(prod_config POOL) == 16 ]] || fail "production not restored (VERSION=$(prod_env VERSION) POOL=$(prod_config POOL))"
  local cmd; cmd=$(k get deploy -n "$NS" checkout -o jsonpath='{.spec.template.spec.containers[0].command}')
  [[ -z $cmd ]] || fail "the crashing command is still in production: $cmd"
  say "THEN production is back on v1 with POOL=16, healthy"
  k get events -n "$NS" --field-selector reason=RolledBack -o name | grep -q . || fail "no RolledBack event"
  say "AND a RolledBack event says why: $(k get patch -n "$NS" crash-in-prod -o jsonpath='{.status.rollback.reason}')"
  if [[ -n ${PATCHCTL:-} ]]; then
    "$PATCHCTL" --kubeconfig "$KUBECONFIG" report crash-in-prod -n "$NS" > "$WORK/report.md" || fail "patchctl report failed"
    for want in "INC-4211" "RolledBack" "not healthy within 25s" "checkout-pg-1" "smoke"; do
      grep -qF -- "$want" "$WORK/report.md" || fail "the change record lacks '$want'"
    done
    say "AND patchctl report writes the change record of the rolled-back patch ($(wc -l < "$WORK/report.md") lines)"
  fi
}

story_config_rollback() {
  setup_app configrb
  start_operator
  patch_yaml fix-pool v2 "$(smoke_test v2)" | k apply -f - >/dev/null
  wait_phase fix-pool 240 Succeeded Failed RolledBack
  [[ $(prod_env VERSION) == v2 && $(prod_config POOL) == 64 ]] || fail "first patch not promoted"
  say "GIVEN production on v2 with POOL=64 after a patch (revision 1 holds v1 + POOL=16)"
  k apply -f - >/dev/null <<YAML
apiVersion: patchgate.dev/v1alpha1
kind: Patch
metadata: {name: undo-fix-pool, namespace: $NS}
spec:
$(me_as_author)
  target: {kind: Deployment, name: checkout}
  change: {rollbackTo: {revision: 1}}
  ticket: INC-4212
  rootCause: "POOL=64 overloads the database"
  verification: {timeoutSeconds: 90, bakeSeconds: 5}
YAML
  wait_phase undo-fix-pool 240 Succeeded Failed RolledBack
  [[ $(phase undo-fix-pool) == Succeeded ]] || fail "rollback patch did not succeed"
  [[ $(prod_env VERSION) == v1 ]] || fail "workload not restored"
  [[ $(prod_config POOL) == 16 ]] || fail "config not restored"
  say "THEN code and config are both restored: v1, POOL=16 (and the rollback itself left revision $(k get patch -n "$NS" undo-fix-pool -o jsonpath='{.status.revision.number}'))"
}

story_drift() {
  setup_app drift
  start_operator
  say "GIVEN a Patch whose test takes 20 s"
  patch_yaml slow-fix v2 "  tests:
  - {name: slow, image: patchgate.dev/test-runner:1.0, command: [/bin/sh, -c, 'sleep 20'], timeoutSeconds: 120}" | k apply -f - >/dev/null
  wait_phase slow-fix 180 Testing
  say "WHEN someone edits production by hand while it is testing"
  k set env -n "$NS" deploy/checkout HOTFIX=manual >/dev/null
  wait_phase slow-fix 300 Succeeded Failed RolledBack
  [[ $(phase slow-fix) == Succeeded ]] || fail "expected Succeeded after a re-test"
  local retests; retests=$(k get patch -n "$NS" slow-fix -o jsonpath='{.status.retests}')
  [[ $retests == 1 ]] || fail "expected one re-test, status.retests=$retests"
  k get events -n "$NS" --field-selector reason=DriftDetected -o name | grep -q . || fail "no DriftDetected event"
  [[ $(prod_env HOTFIX) == manual && $(prod_env VERSION) == v2 ]] || fail "production should carry both the hand edit and the patch"
  say "THEN it was re-tested on the new base (retests=1) and promoted on top of the hand edit"
}

story_queue() {
  setup_app queue
  start_operator
  local slow="  tests:
  - {name: slow, image: patchgate.dev/test-runner:1.0, command: [/bin/sh, -c, 'sleep 8'], timeoutSeconds: 120}"
  patch_yaml first v2 "$slow" | k apply -f - >/dev/null
  wait_phase first 120 Provisioning Testing
  patch_yaml second v3 "$slow" | k apply -f - >/dev/null
  sleep 1
  patch_yaml urgent v4 "$slow
  priority: emergency" | k apply -f - >/dev/null
  say "GIVEN three patches on one target: first (in flight), second (normal), urgent (emergency, created last)"
  for p in first urgent second; do wait_phase "$p" 400 Succeeded Failed RolledBack; done
  for p in urgent second; do
    k get patch -n "$NS" "$p" -o jsonpath='{.status.history[*].phase}' | grep -qw Queued || fail "$p was never Queued"
  done
  local a b c
  a=$(k get patch -n "$NS" first -o jsonpath='{.status.promotion.promotedAt}')
  b=$(k get patch -n "$NS" urgent -o jsonpath='{.status.promotion.promotedAt}')
  c=$(k get patch -n "$NS" second -o jsonpath='{.status.promotion.promotedAt}')
  [[ $a < $b || $a == "$b" ]] && [[ $b < $c || $b == "$c" ]] || fail "order was first=$a urgent=$b second=$c"
  say "THEN they went one at a time: first ($a), urgent ($b), second ($c)"
  [[ $(prod_env VERSION) == v3 ]] || fail "last promoted should be second (v3)"
}

story_approval() {
  setup_app approval
  k apply -f - >/dev/null <<YAML
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: patch-author, namespace: $NS}
rules:
- {apiGroups: [patchgate.dev], resources: [patches, patchapprovals], verbs: [get, list, watch, create, update, patch]}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: ci-bot, namespace: $NS}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: patch-authors, namespace: $NS}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: patch-author}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: bob}
- {kind: ServiceAccount, name: ci-bot, namespace: $NS}
YAML
  start_operator
  say "GIVEN alice, who may write Patches but not change the Deployment herself"
  patch_yaml over-her-head v2 "$(smoke_test v2)
  author: alice" | k --as=alice apply -f - >/dev/null
  wait_phase over-her-head 60 Failed Provisioning Testing
  [[ $(phase over-her-head) == Failed ]] || fail "a patch went ahead although its author may not patch the target"
  [[ $(k get patch -n "$NS" over-her-head -o jsonpath='{.status.conditions[?(@.type=="Validated")].reason}') == Forbidden ]] ||
    fail "expected reason Forbidden"
  [[ $(prod_env VERSION) == v1 && $(env_namespaces) == 0 ]] || fail "something was created for a forbidden patch"
  say "THEN her patch fails Forbidden, nothing created: $(k get patch -n "$NS" over-her-head -o jsonpath='{.status.message}' | head -c 220)"
  if PATCH_AUTHOR=- patch_yaml anonymous v2 "$(smoke_test v2)" | k --as=alice apply -f - 2>"$WORK/err" >/dev/null; then
    fail "a patch without an author was admitted: its author's rights could not be checked"
  fi
  grep -q 'spec.author is required' "$WORK/err" || fail "unexpected answer to a patch without author: $(cat "$WORK/err")"
  say "AND she cannot leave her name out to skip that check: $(sed 's/.*denied request: //' "$WORK/err" | head -c 200)"
  k apply -f - >/dev/null <<YAML
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: checkout-fixer, namespace: $NS}
rules:
- {apiGroups: [apps], resources: [deployments], resourceNames: [checkout], verbs: [get, patch]}
- {apiGroups: [""], resources: [configmaps], resourceNames: [checkout-config], verbs: [get, patch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: checkout-fixers, namespace: $NS}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: checkout-fixer}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}]
YAML
  k create secret generic -n "$NS" checkout-db --from-literal=password=s3cret >/dev/null
  patch_yaml wants-the-secret v2 "$(smoke_test v2)
  author: alice" | sed 's/environment: {ttlSecondsAfterFinished: 5}/environment: {ttlSecondsAfterFinished: 5, secrets: copy, include: [{kind: Secret, name: checkout-db}]}/' |
    k --as=alice apply -f - >/dev/null
  wait_phase wants-the-secret 60 Failed Provisioning Testing
  [[ $(phase wants-the-secret) == Failed ]] || fail "a patch copied a Secret its author may not read"
  k get patch -n "$NS" wants-the-secret -o jsonpath='{.status.message}' | grep -q 'may not read Secret/checkout-db' ||
    fail "unexpected message: $(k get patch -n "$NS" wants-the-secret -o jsonpath='{.status.message}')"
  say "AND a patch of hers that would copy a Secret she may not read fails too: $(k get patch -n "$NS" wants-the-secret -o jsonpath='{.status.message}' | head -c 200)"
  say "GIVEN alice, now allowed to patch checkout, and her Patch that requires one approval"
  patch_yaml needs-approval v2 "$(smoke_test v2)
  author: alice
  promotion: {approval: {required: true, approvers: 1}}" | k --as=alice apply -f - >/dev/null
  if patch_yaml sneaky v2 "$(smoke_test v2)
  author: alice" | k --as=bob apply -f - 2>"$WORK/err"; then fail "bob created a patch claiming alice as author"; fi
  say "AND bob cannot claim to be its author: $(head -c 160 "$WORK/err")"
  # A Patch whose target does not exist fails before any environment, where
  # the spec may still be edited: the identity rules must hold there too.
  patch_yaml swap v2 "$(smoke_test v2)
  author: alice
  promotion: {approval: {required: true, approvers: 1}}" | sed 's/name: checkout}/name: no-such-workload}/' |
    k --as=alice apply -f - >/dev/null
  wait_phase swap 60 Failed
  if k --as=alice patch patch -n "$NS" swap --type merge -p '{"spec":{"author":"bob"}}' 2>"$WORK/err" >/dev/null; then
    fail "alice changed the author of her patch to bob"
  fi
  grep -q 'spec.author and spec.authorGroups cannot change' "$WORK/err" || fail "unexpected answer to the author swap: $(cat "$WORK/err")"
  say "AND alice cannot hand her patch to bob by editing it: $(head -c 160 "$WORK/err")"
  if k --as=alice patch patch -n "$NS" swap --type merge -p '{"spec":{"promotion":{"approval":{"required":false}}}}' 2>"$WORK/err" >/dev/null; then
    fail "alice dropped the approval her patch needs"
  fi
  grep -q 'spec.promotion.approval cannot change' "$WORK/err" || fail "unexpected answer to dropping the approval: $(cat "$WORK/err")"
  say "AND she cannot drop the approval it needs: $(head -c 160 "$WORK/err")"
  wait_phase needs-approval 240 AwaitingApproval
  local uid gen; uid=$(k get patch -n "$NS" needs-approval -o jsonpath='{.metadata.uid}'); gen=$(k get patch -n "$NS" needs-approval -o jsonpath='{.metadata.generation}')
  approval() { # user name
    cat <<YAML
apiVersion: patchgate.dev/v1alpha1
kind: PatchApproval
metadata: {name: $2, namespace: $NS}
spec: {patch: needs-approval, patchUID: "$uid", patchGeneration: $gen, approver: "$1", comment: "looks right"}
YAML
  }
  if approval alice by-bob-as-alice | k --as=bob apply -f - 2>"$WORK/err"; then fail "bob approved in alice's name"; fi
  say "WHEN bob tries to approve in alice's name, the API server refuses: $(head -c 120 "$WORK/err")"
  if approval alice self | k --as=alice apply -f - 2>"$WORK/err" >/dev/null; then
    fail "the API server admitted alice's approval of her own patch"
  fi
  grep -q 'are the author of patch needs-approval' "$WORK/err" || fail "unexpected answer to a self-approval: $(cat "$WORK/err")"
  sleep 2
  [[ $(phase needs-approval) == AwaitingApproval && $(prod_env VERSION) == v1 ]] || fail "production changed without approval"
  say "AND alice's approval of her own patch is refused by the API server: $(sed 's/.*denied request: //' "$WORK/err" | head -c 200)"
  local bot=system:serviceaccount:$NS:ci-bot
  if approval "$bot" by-a-bot | k --as="$bot" --as-group=system:serviceaccounts apply -f - 2>"$WORK/err" >/dev/null; then
    fail "a ServiceAccount's approval was admitted"
  fi
  grep -q 'is not a person' "$WORK/err" || fail "unexpected answer to a ServiceAccount's approval: $(cat "$WORK/err")"
  sleep 2
  [[ $(phase needs-approval) == AwaitingApproval ]] || fail "the patch moved on a ServiceAccount's attempt"
  say "AND a ServiceAccount cannot approve (the operator would not count it either): $(head -c 170 "$WORK/err")"
  # Without patchgate's identity policies the API server checks no name:
  # the operator notices and trusts none, and what was made in that gap is
  # never trusted later.
  say "WHEN an admin removes the bindings of patchgate's three identity policies"
  k delete validatingadmissionpolicybinding patchgate-patch-author patchgate-approval-identity \
    patchgate-approval-not-author >/dev/null
  local i
  for i in $(seq 40); do   # until the API server stops enforcing them
    patch_yaml forged v2 "$(smoke_test v2)
  author: alice" | k --as=bob apply --dry-run=server -f - >/dev/null 2>&1 && break
    ((i < 40)) || fail "the API server still checks spec.author 20 s after its binding was deleted"
    sleep 0.5
  done
  patch_yaml forged v2 "$(smoke_test v2)
  author: alice" | k --as=bob apply -f - >/dev/null || fail "bob's Patch in alice's name was not admitted without the policy"
  approval carol carol-by-alice | k --as=alice apply -f - >/dev/null || fail "alice's approval in carol's name was not admitted"
  local cond='{.status.conditions[?(@.type=="Validated")].reason}'
  for i in $(seq 60); do
    [[ $(k get patch -n "$NS" forged -o jsonpath="$cond") == IdentityUnverified ]] && break
    ((i < 60)) || fail "the operator trusted spec.author without the policy: $(k get patch -n "$NS" forged -o jsonpath='{.status}')"
    sleep 1
  done
  say "THEN bob's Patch in alice's name waits, nothing created: $(k get patch -n "$NS" forged -o jsonpath='{.status.message}' | head -c 260)"
  [[ $(phase forged) != Provisioning && $(phase forged) != Testing ]] || fail "the forged patch went ahead"
  cond='{.status.conditions[?(@.type=="Approved")].reason}'
  for i in $(seq 60); do
    [[ $(k get patch -n "$NS" needs-approval -o jsonpath="$cond") == IdentityUnverified ]] && break
    ((i < 60)) || fail "the operator counted approvals without the policies: $(k get patch -n "$NS" needs-approval -o jsonpath='{.status.conditions}')"
    sleep 1
  done
  [[ $(phase needs-approval) == AwaitingApproval && $(prod_env VERSION) == v1 ]] || fail "production changed on an unchecked approval"
  say "AND alice's approval in carol's name is not counted: $(k get patch -n "$NS" needs-approval -o jsonpath="{.status.conditions[?(@.type==\"Approved\")].message}" | head -c 200)"
  say "WHEN the policies are installed again"
  k apply -f "$ROOT/crds/patchgate.dev_admission-policies.yaml" >/dev/null
  wait_phase forged 90 Failed
  k get patch -n "$NS" forged -o jsonpath='{.status.message}' | grep -q 'create it again' ||
    fail "unexpected message: $(k get patch -n "$NS" forged -o jsonpath='{.status.message}')"
  k get patch -n "$NS" forged -o jsonpath='{.status.history[*].phase}' | grep -qw Provisioning &&
    fail "an environment was made for the forged patch"
  say "THEN the Patch made in the gap never goes ahead: $(k get patch -n "$NS" forged -o jsonpath='{.status.message}' | head -c 240)"
  for i in $(seq 60); do
    k get patch -n "$NS" needs-approval -o jsonpath='{.status.approvals}' | grep -q 'nobody checked who gave it' && break
    ((i < 60)) || fail "carol's approval is not shown void: $(k get patch -n "$NS" needs-approval -o jsonpath='{.status.approvals}')"
    sleep 1
  done
  [[ $(phase needs-approval) == AwaitingApproval && $(prod_env VERSION) == v1 ]] || fail "the gap's approval counted"
  say "AND the approval given in the gap stays void"
  approval bob lgtm | k --as=bob apply -f - >/dev/null
  wait_phase needs-approval 180 Succeeded Failed RolledBack
  [[ $(phase needs-approval) == Succeeded && $(prod_env VERSION) == v2 ]] || fail "bob's approval did not promote"
  say "THEN bob's approval promotes it: $(k get patch -n "$NS" needs-approval -o jsonpath='{.status.conditions[?(@.type=="Approved")].message}')"
  say "GIVEN another Patch of alice's, tested and waiting for approval"
  patch_yaml revoked v3 "$(smoke_test v3)
  author: alice
  promotion: {approval: {required: true, approvers: 1}}" | k --as=alice apply -f - >/dev/null
  wait_phase revoked 240 AwaitingApproval
  k delete rolebinding -n "$NS" checkout-fixers >/dev/null
  uid=$(k get patch -n "$NS" revoked -o jsonpath='{.metadata.uid}'); gen=$(k get patch -n "$NS" revoked -o jsonpath='{.metadata.generation}')
  approval bob lgtm-revoked | sed 's/patch: needs-approval/patch: revoked/' | k --as=bob apply -f - >/dev/null
  say "WHEN her right to patch checkout is taken away and bob approves"
  wait_phase revoked 120 Failed Succeeded
  [[ $(phase revoked) == Failed && $(prod_env VERSION) == v2 ]] || fail "a change went out after its author lost the right to make it"
  k get patch -n "$NS" revoked -o jsonpath='{.status.message}' | grep -q 'at promotion, the author alice may not patch' ||
    fail "unexpected message: $(k get patch -n "$NS" revoked -o jsonpath='{.status.message}')"
  say "THEN it ends before production is touched: $(k get patch -n "$NS" revoked -o jsonpath='{.status.message}' | head -c 200)"
}

# PatchPolicy: a Patch tested at once waits for its change window (in another
# time zone) before touching production; in a freeze a normal Patch waits,
# and an emergency passes only with the approval the policy asks of it.
story_policy() {
  setup_app policy
  k apply -f - >/dev/null <<YAML
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: fixer, namespace: $NS}
rules:
- {apiGroups: [patchgate.dev], resources: [patches, patchapprovals], verbs: [get, list, watch, create, update, patch]}
- {apiGroups: [apps], resources: [deployments], verbs: [get, patch]}
- {apiGroups: [""], resources: [configmaps], verbs: [get, patch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: fixers, namespace: $NS}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: fixer}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: bob}
YAML
  # A window that opens one to two minutes from now, written in New York time.
  local zone=America/New_York opens closes
  opens=$(( ($(date +%s) / 60 + 2) * 60 ))
  closes=$(( opens + 1800 ))
  local start end; start=$(TZ=$zone date -d "@$opens" +%H:%M); end=$(TZ=$zone date -d "@$closes" +%H:%M)
  local day; day=$(TZ=$zone date -d "@$opens" +%a)
  k apply -f - >/dev/null <<YAML
apiVersion: patchgate.dev/v1alpha1
kind: PatchPolicy
metadata: {name: windows, namespace: $NS}
spec:
  changeWindows: [{days: [$day], start: "$start", end: "$end", timeZone: $zone}]
YAML
  start_operator
  say "GIVEN a policy: changes land only $day $start-$end $zone (opens at $(date -u -d "@$opens" +%H:%M:%SZ))"
  PATCH_AUTHOR=alice patch_yaml in-window v2 "$(smoke_test v2)" | k --as=alice apply -f - >/dev/null
  wait_phase in-window 240 AwaitingWindow Succeeded Failed
  [[ $(phase in-window) == AwaitingWindow ]] || fail "expected AwaitingWindow, got $(phase in-window)"
  (( $(date +%s) < opens )) || fail "the test ran past the window's start; the story cannot tell"
  [[ $(prod_env VERSION) == v1 ]] || fail "production changed outside the window"
  say "THEN it was tested and waits: $(k get patch -n "$NS" in-window -o jsonpath='{.status.message}')"
  wait_phase in-window 300 Succeeded Failed RolledBack
  [[ $(phase in-window) == Succeeded && $(prod_env VERSION) == v2 ]] || fail "not promoted in the window: $(phase in-window)"
  local promoted; promoted=$(k get patch -n "$NS" in-window -o jsonpath='{.status.promotion.promotedAt}')
  (( $(date -d "$promoted" +%s) >= opens )) || fail "promoted at $promoted, before the window opened"
  say "AND it was promoted at $promoted, inside the window"
  k delete patchpolicy -n "$NS" windows >/dev/null

  local from to; from=$(date -u -d '-1 hour' +%Y-%m-%dT%H:%M:%SZ); to=$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)
  k apply -f - >/dev/null <<YAML
apiVersion: patchgate.dev/v1alpha1
kind: PatchPolicy
metadata: {name: freeze, namespace: $NS}
spec:
  freezes: [{start: "$from", end: "$to", reason: "incident review freeze"}]
  emergency: {bypassFreezes: true, approvers: 1}
YAML
  say "GIVEN a freeze until $to; emergencies may pass it with one approval"
  PATCH_AUTHOR=alice patch_yaml frozen v3 "$(smoke_test v3)" | k --as=alice apply -f - >/dev/null
  wait_phase frozen 240 AwaitingWindow Succeeded Failed
  [[ $(phase frozen) == AwaitingWindow ]] || fail "a normal patch passed the freeze: $(phase frozen)"
  say "THEN a normal patch waits: $(k get patch -n "$NS" frozen -o jsonpath='{.status.message}')"
  k --as=alice patch patch -n "$NS" frozen --type merge -p '{"spec":{"cancel":true}}' >/dev/null
  wait_phase frozen 60 Failed
  # An approval is for the base the tests ran on: given, then production
  # edited by hand while the Patch waits for the freeze to end.
  local ends; ends=$(date -u -d '+45 seconds' +%Y-%m-%dT%H:%M:%SZ)
  k patch patchpolicy -n "$NS" freeze --type merge \
    -p "{\"spec\":{\"approval\":{\"required\":true},\"freezes\":[{\"start\":\"$from\",\"end\":\"$ends\",\"reason\":\"short freeze\"}]}}" >/dev/null
  patch_yaml approved-then-drifted v4 "$(smoke_test v4)
  author: alice" | k --as=alice apply -f - >/dev/null
  wait_phase approved-then-drifted 240 AwaitingApproval
  local uid4; uid4=$(k get patch -n "$NS" approved-then-drifted -o jsonpath='{.metadata.uid}')
  echo "{apiVersion: patchgate.dev/v1alpha1, kind: PatchApproval, metadata: {name: before-drift, namespace: $NS},
    spec: {patch: approved-then-drifted, patchUID: \"$uid4\", patchGeneration: 1, approver: bob}}" | k --as=bob apply -f - >/dev/null
  wait_phase approved-then-drifted 60 AwaitingWindow
  k set env -n "$NS" deploy/checkout HOTFIX=by-hand >/dev/null
  say "GIVEN bob approved a patch that waits for a freeze to end ($ends), and then someone edited production by hand"
  wait_phase approved-then-drifted 240 AwaitingApproval Succeeded Failed
  [[ $(phase approved-then-drifted) == AwaitingApproval ]] || fail "the approval carried over the re-test: $(phase approved-then-drifted)"
  [[ $(k get patch -n "$NS" approved-then-drifted -o jsonpath='{.status.retests}') == 1 ]] || fail "no re-test recorded"
  k get patch -n "$NS" approved-then-drifted -o jsonpath='{.status.approvals[0].why}' | grep -q 're-tested' ||
    fail "bob's approval is not shown void: $(k get patch -n "$NS" approved-then-drifted -o jsonpath='{.status.approvals}')"
  [[ $(prod_env HOTFIX) == by-hand && $(prod_env VERSION) == v2 ]] || fail "production changed without a valid approval"
  say "THEN it is re-tested on the new base and bob's approval no longer counts: $(k get patch -n "$NS" approved-then-drifted -o jsonpath='{.status.approvals[0].why}')"
  echo "{apiVersion: patchgate.dev/v1alpha1, kind: PatchApproval, metadata: {name: after-drift, namespace: $NS},
    spec: {patch: approved-then-drifted, patchUID: \"$uid4\", patchGeneration: 1, approver: bob}}" | k --as=bob apply -f - >/dev/null
  wait_phase approved-then-drifted 180 Succeeded Failed RolledBack
  [[ $(phase approved-then-drifted) == Succeeded && $(prod_env VERSION) == v4 && $(prod_env HOTFIX) == by-hand ]] ||
    fail "bob's new approval did not promote onto the new base"
  say "AND bob's approval of the re-tested patch promotes it, keeping the hand edit"
  k patch patchpolicy -n "$NS" freeze --type merge \
    -p "{\"spec\":{\"approval\":null,\"freezes\":[{\"start\":\"$from\",\"end\":\"$to\",\"reason\":\"incident review freeze\"}]}}" >/dev/null
  patch_yaml urgent v3 "$(smoke_test v3)
  author: alice
  priority: emergency" | k --as=alice apply -f - >/dev/null
  wait_phase urgent 240 AwaitingApproval Succeeded Failed
  [[ $(phase urgent) == AwaitingApproval ]] || fail "the emergency passed the freeze without approval: $(phase urgent)"
  say "WHEN alice's emergency is tested, it waits for an approval: $(k get patch -n "$NS" urgent -o jsonpath='{.status.message}')"
  local uid; uid=$(k get patch -n "$NS" urgent -o jsonpath='{.metadata.uid}')
  approval_yaml() { # approver name
    echo "{apiVersion: patchgate.dev/v1alpha1, kind: PatchApproval, metadata: {name: $2, namespace: $NS},
      spec: {patch: urgent, patchUID: \"$uid\", patchGeneration: 1, approver: $1}}"
  }
  if approval_yaml alice self | k --as=alice apply -f - 2>"$WORK/err" >/dev/null; then
    fail "the API server admitted alice's approval of her own emergency"
  fi
  sleep 2
  [[ $(phase urgent) == AwaitingApproval && $(prod_env VERSION) == v4 ]] || fail "alice's own approval let the emergency through"
  say "AND alice cannot approve her own emergency: $(sed 's/.*denied request: //' "$WORK/err" | head -c 200)"
  approval_yaml bob lgtm | k --as=bob apply -f - >/dev/null
  wait_phase urgent 180 Succeeded Failed RolledBack
  [[ $(phase urgent) == Succeeded && $(prod_env VERSION) == v3 ]] || fail "bob's approval did not let the emergency through"
  k get events -n "$NS" --field-selector reason=EmergencyBypass -o jsonpath='{.items[0].note}{.items[0].message}' >"$WORK/ev"
  grep -q 'incident review freeze' "$WORK/ev" || fail "no EmergencyBypass event naming the freeze"
  say "THEN with bob's approval it passes the freeze, and says so: $(cat "$WORK/ev")"
}

story_restart() {
  setup_app restart
  say "GIVEN an operator that dies right after creating the environment namespace"
  PATCHGATE_FAILPOINTS=provision.afterNamespace start_operator
  patch_yaml survive v2 "$(smoke_test v2)" | k apply -f - >/dev/null
  for _ in $(seq 60); do kill -0 "$OP_PID" 2>/dev/null || break; sleep 0.5; done
  kill -0 "$OP_PID" 2>/dev/null && fail "failpoint provision.afterNamespace never fired"
  OP_PID=""
  say "AND again right after recording the rollback point, before touching production"
  PATCHGATE_FAILPOINTS=promote.afterRevision start_operator
  for _ in $(seq 240); do kill -0 "$OP_PID" 2>/dev/null || break; sleep 0.5; done
  kill -0 "$OP_PID" 2>/dev/null && fail "failpoint promote.afterRevision never fired"
  OP_PID=""
  [[ $(prod_env VERSION) == v1 ]] || fail "production changed before the crash point"
  say "WHEN it starts again without failpoints"
  start_operator
  wait_phase survive 240 Succeeded Failed RolledBack
  [[ $(phase survive) == Succeeded ]] || fail "expected Succeeded"
  local envs; envs=$(k get ns -l "patchgate.dev/patch-namespace=$NS" -o name | wc -l)
  [[ $envs -le 1 ]] || fail "more than one environment namespace: $envs"
  [[ $(revisions) == 1 ]] || fail "expected exactly one rollback point, found $(revisions)"
  local promoted; promoted=$(k get patch -n "$NS" survive -o jsonpath='{.status.history[*].phase}' | tr ' ' '\n' | grep -c '^Verifying$')
  [[ $promoted == 1 ]] || fail "promoted $promoted times"
  say "THEN it resumed: one environment, one rollback point, one promotion"
}

# metric NAME [label=value ...] : the value of one series on the operator's /metrics
metric() {
  local port; port=$(grep -m1 '"serving metrics"' "$WORK/operator.log" | sed 's/.*"port":\([0-9]*\).*/\1/')
  curl -sf "http://127.0.0.1:$port/metrics" > "$WORK/metrics.txt" || fail "cannot scrape /metrics on port $port"
  python3 - "$WORK/metrics.txt" "$@" <<'PY'
import re, sys
path, name, *want = sys.argv[1:]
want = dict(w.split("=", 1) for w in want)
for line in open(path):
    m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$', line.strip())
    if not m or m.group(1) != name:
        continue
    labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(3) or ""))
    if all(labels.get(k) == v for k, v in want.items()):
        print(float(m.group(4)))
        sys.exit(0)
print("missing")
PY
}
# expect_metric VALUE NAME [label=value ...]    (VALUE ">0" means positive)
expect_metric() {
  local want=$1; shift
  local got; got=$(metric "$@")
  if [[ $want == ">0" ]]; then
    [[ $got != missing ]] && awk -v g="$got" 'BEGIN { exit !(g > 0) }' || fail "metric $* = $got, want > 0"
  else
    [[ $got != missing ]] && awk -v g="$got" -v w="$want" 'BEGIN { exit !(g == w) }' || fail "metric $* = $got, want $want"
  fi
  say "  $* = $got"
}

story_metrics() {
  setup_app metrics
  start_operator
  say "GIVEN one operator that takes three Patches: one good, one with a failing test, one that breaks production"
  patch_yaml good v2 "$(smoke_test v2)" | k apply -f - >/dev/null
  wait_phase good 240 Succeeded Failed RolledBack
  patch_yaml failing v2b "$(smoke_test v3)" | k apply -f - >/dev/null
  wait_phase failing 240 Failed Succeeded RolledBack
  patch_yaml crash v4 "$(smoke_test v4)" | sed "s|env: \[{name: VERSION, value: \"v4\"}\]}\]}}}|env: [{name: VERSION, value: \"v4\"}, {name: PROD_NS, value: $NS}, {name: POD_NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}], command: [/bin/sh, -c, 'if [ \"\$POD_NS\" = \"\$PROD_NS\" ]; then exit 1; fi; exec /app/start']}]}}}|; s/timeoutSeconds: 60, bakeSeconds: 5}/timeoutSeconds: 25, bakeSeconds: 5}/" | k apply -f - >/dev/null
  wait_phase crash 300 RolledBack Succeeded Failed
  say "THEN /metrics tells the same story:"
  expect_metric 1 patchgate_promotions_total
  expect_metric 1 patchgate_changes_total outcome=succeeded
  expect_metric 1 patchgate_changes_total outcome=failed
  expect_metric 1 patchgate_changes_total outcome=rolled_back
  expect_metric 1 patchgate_rollbacks_total reason=VerificationTimeout
  expect_metric 0 patchgate_rollbacks_total reason=ProgressDeadlineExceeded
  expect_metric 1 patchgate_patches phase=Succeeded
  expect_metric 1 patchgate_patches phase=Failed
  expect_metric 1 patchgate_patches phase=RolledBack
  expect_metric 0 patchgate_patches phase=Testing
  expect_metric 2 patchgate_tests_total test=smoke result=Passed
  expect_metric 1 patchgate_tests_total test=smoke result=Failed
  expect_metric 1 patchgate_lead_time_seconds_count
  expect_metric 1 patchgate_time_to_restore_seconds_count
  expect_metric 3 patchgate_environments_created_total
  expect_metric 3 patchgate_patch_transitions_total phase=Provisioning
  expect_metric 0 patchgate_drift_detected_total
  expect_metric 1 leader_election_master_status
  expect_metric ">0" controller_runtime_reconcile_total controller=patch result=success
  expect_metric 0 controller_runtime_terminal_reconcile_errors_total controller=patch
  expect_metric 2 controller_runtime_max_concurrent_reconciles controller=patch
  expect_metric ">0" workqueue_adds_total name=patch
  expect_metric ">0" workqueue_queue_duration_seconds_count name=patch
  expect_metric ">0" rest_client_requests_total method=PATCH code=200
  local hz; hz=$(grep -m1 '"serving health probes"' "$WORK/operator.log" | sed 's/.*"port":\([0-9]*\).*/\1/')
  [[ $(curl -s "http://127.0.0.1:$hz/readyz") == ok ]] || fail "/readyz is not ok"
  [[ $(curl -s "http://127.0.0.1:$hz/healthz") == ok ]] || fail "/healthz is not ok"
  say "AND /healthz and /readyz answer ok"
}

case $STORY in
  good) story_good ;;
  failing-test) story_failing_test ;;
  rollback) story_rollback ;;
  config-rollback) story_config_rollback ;;
  drift) story_drift ;;
  queue) story_queue ;;
  approval) story_approval ;;
  policy) story_policy ;;
  restart) story_restart ;;
  metrics) story_metrics ;;
  *) echo "unknown story $STORY" >&2; exit 2 ;;
esac
say "PASS: $STORY"
