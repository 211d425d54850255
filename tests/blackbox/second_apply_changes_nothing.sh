#!/usr/bin/env bash
# A second apply with the same config changes nothing: no file rewritten (same inode and
# mtime), no command run, "changed": false.
source "$TESTLIB"
setup_node

agent apply --output json
expect_rc 0
before=$(snapshot)
runs=$(update_ca_runs)

agent apply --output json
expect_rc 0
[ "$(jq -r .changed <<<"$OUT")" = false ] || fail "second apply says changed: $OUT"
[ "$(jq -r .restart_needed <<<"$OUT")" = false ] || fail "second apply wants a restart: $OUT"
[ "$(jq '.actions | length' <<<"$OUT")" -eq 0 ] || fail "second apply did something: $OUT"
[ "$(update_ca_runs)" -eq "$runs" ] || fail "update-ca-certificates ran again"
[ "$(snapshot)" = "$before" ] || fail "the root changed: $(diff <(echo "$before") <(snapshot))"

# The text output says so too, and --apply is the same command.
RC=0
"$AGENT" --apply --root "$ROOT" >"$WORK/out" 2>&1 || RC=$?
OUT=$(cat "$WORK/out")
expect_rc 0
grep -q "nothing to change" <<<"$OUT" || fail "text output does not say nothing changed: $OUT"
[ "$(snapshot)" = "$before" ] || fail "the root changed on --apply"
pass "second apply changed nothing and ran nothing"
