#!/usr/bin/env bash
# Scenario 2 (server node, or agent node with ROLE=agent): a second apply with the same config restarts nothing (the stand-in's
# start count stays) and rewrites nothing (same inode, mtime and bytes).
source "$NODE_DIR/lib.sh"
start_node "$ROLE"
apply
expect_rc 0
[ "$(json .restarted)" = $UNIT ] || fail "first apply did not restart: $OUT"
before=$(snapshot)
count=$(starts)

apply
expect_rc 0
[ "$(json .changed)" = false ] || fail "second apply changed something: $OUT"
[ "$(json .restarted)" = null ] || fail "second apply restarted: $OUT"
[ "$(starts)" -eq "$count" ] || fail "k3s was restarted by the second apply"
[ "$(snapshot)" = "$before" ] || fail "files changed: $(diff <(echo "$before") <(snapshot))"
pass "second apply: zero restarts, nothing rewritten"
