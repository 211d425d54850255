#!/usr/bin/env bash
# Scenario 7, agent node: unit auto finds k3s-agent.service; the first apply restarts it once,
# a second apply restarts nothing.
source "$NODE_DIR/lib.sh"
start_node agent
apply
expect_rc 0
[ "$(json .restarted)" = k3s-agent.service ] || fail "k3s-agent.service not restarted: $OUT"
[ "$(starts)" -eq 2 ] || fail "k3s-agent started $(starts) times, want boot + one restart"
[ "$(unit_state k3s-agent.service)" = active ] || fail "k3s-agent.service is not active"
apply
expect_rc 0
[ "$(json .restarted)" = null ] || fail "second apply restarted: $OUT"
[ "$(starts)" -eq 2 ] || fail "second apply restarted k3s-agent"
pass "agent node: k3s-agent.service restarted once, then never"
