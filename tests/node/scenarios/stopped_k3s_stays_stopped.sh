#!/usr/bin/env bash
# Scenario 5 (server node, or agent node with ROLE=agent): with k3s stopped, apply updates the files and restarts nothing:
# k3s stays stopped (TryRestartUnit semantics), and the output says why.
source "$NODE_DIR/lib.sh"
start_node "$ROLE"
in_node systemctl stop $UNIT
count=$(starts)

apply
expect_rc 0
[ "$(json .changed)" = true ] || fail "files not written: $OUT"
[ "$(json .restarted)" = null ] || fail "restarted a stopped k3s: $OUT"
[ "$(unit_state $UNIT)" = inactive ] || fail "$UNIT is $(unit_state $UNIT)"
[ "$(starts)" -eq "$count" ] || fail "k3s was started"
[ -f "$NODE/etc/rancher/k3s/registries.yaml" ] || fail "registries.yaml not written"
grep -q "stays stopped" <<<"$(json '.notes | join(" ")')" || fail "no note about the stopped unit: $OUT"
pass "a stopped k3s stays stopped; files updated"
