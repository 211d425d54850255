#!/usr/bin/env bash
# A node with both k3s.service and k3s-agent.service and `unit: auto`: apply cannot know which
# to restart, says to set k3s.unit, exits 2, and touches nothing.
source "$NODE_DIR/lib.sh"
start_node both
before=$(snapshot)
count=$(starts)
apply
expect_rc 2
grep -q "set k3s.unit" <<<"$ERR" || fail "the error does not say to set k3s.unit: $ERR"
[ "$(snapshot)" = "$before" ] || fail "files changed"
[ "$(starts)" -eq "$count" ] || fail "something was restarted"
pass "both units installed: exit 2, nothing touched"
