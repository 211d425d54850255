#!/usr/bin/env bash
# Scenario 6: SIGHUP (systemctl reload) reads the config again and applies it at once — here
# long before the minute of debounce the config asks for; SIGTERM (systemctl stop) stops the
# daemon cleanly within a second.
source "$NODE_DIR/lib.sh"
start_node "$ROLE"
daemon_settings "debounce: 60s" "splay: 1s" "probe_interval: 0s"
start_daemon
count=$(starts)

# Not idle_evaluations: the look at the start apply's own writes waits out the 60 s debounce.
# systemctl start returned after the start apply, so this count includes it.
n=$(djson .evaluations)
t0=$SECONDS
write_config reloaded-proxy
in_node systemctl reload k3s-mirror-agent.service
wait_for "the reload applying the edit" 10 evaluations_past "$n"
grep -q '/v2/reloaded-proxy"' "$NODE/etc/rancher/k3s/registries.yaml" || fail "the reload did not apply the edit"
[ "$(djson .applies)" = 2 ] || fail "the reload gave $(( $(djson .applies) - 1 )) applies: $(daemon_status)"
[ $((SECONDS - t0)) -lt 30 ] || fail "the reload waited for the debounce"
[ "$(djson .last_apply.trigger)" = reload ] || fail "trigger: $(daemon_status)"
[ "$(starts)" -eq $((count + 1)) ] || fail "the reload gave $(( $(starts) - count )) restarts"
daemon_journal | grep -q 'SIGHUP: reading the config again' || fail "the journal says nothing of SIGHUP"

# SIGTERM: systemctl stop returns once the daemon has exited.
start_ns=$(date +%s%N)
in_node systemctl stop k3s-mirror-agent.service
stop_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
echo "systemctl stop took $stop_ms ms"
[ "$stop_ms" -lt 1000 ] || fail "stopping took $stop_ms ms"
[ "$(in_node systemctl show -p Result --value k3s-mirror-agent.service)" = success ] ||
  fail "the daemon did not stop cleanly: $(in_node systemctl show -p Result,ExecMainStatus k3s-mirror-agent.service)"
[ "$(djson .running)" = false ] && [ "$(djson .status)" = stopped ] ||
  fail "status.json after stop: $(daemon_status)"
daemon_journal | grep -q 'SIGTERM: stopping' || fail "the journal says nothing of SIGTERM"
in_node /usr/sbin/k3s-mirror-agent status >"$WORK/st" || fail "status failed after stop"
grep -q '^daemon: stopped' "$WORK/st" || fail "status after stop: $(cat "$WORK/st")"
[ "$(unit_state "$UNIT")" = active ] || fail "stopping the daemon touched $UNIT"
pass "SIGHUP applies at once; SIGTERM stops cleanly in $stop_ms ms"
