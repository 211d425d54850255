#!/usr/bin/env bash
# The daemon as a real systemd service (Type=notify, WatchdogSec=30s, the unit in systemd/):
# 1. it becomes active only after its first apply, which restarted k3s once, and
#    `systemctl status` shows what it says (STATUS=);
# 2. a config edit is applied within debounce + splay (short here), with one restart;
# 3. 100 writes to the config in a burst give exactly one apply and one restart.
source "$NODE_DIR/lib.sh"
start_node "$ROLE"
daemon_settings "debounce: 500ms" "splay: 2s" "probe_interval: 0s"
before=$(starts)

# 1. `systemctl start` returns when the unit is active, and that is after the first apply.
start_daemon
[ "$(unit_state k3s-mirror-agent.service)" = active ] || fail "the daemon is not active"
grep -q '/v2/dockerhub-proxy"' "$NODE/etc/rancher/k3s/registries.yaml" ||
  fail "active before registries.yaml was written"
[ "$(starts)" -eq $((before + 1)) ] || fail "start apply gave $(( $(starts) - before )) restarts"
agent_active=$(in_node systemctl show -p ActiveEnterTimestampMonotonic --value k3s-mirror-agent.service)
k3s_active=$(in_node systemctl show -p ActiveEnterTimestampMonotonic --value "$UNIT")
[ "$k3s_active" -lt "$agent_active" ] ||
  fail "the daemon became active ($agent_active) before the restarted $UNIT did ($k3s_active)"
[ "$(djson .applies)" = 1 ] && [ "$(djson .last_apply.restarted)" = "$UNIT" ] ||
  fail "status.json after start: $(daemon_status)"
in_node systemctl status k3s-mirror-agent.service --no-pager >"$WORK/status.txt" || true
grep -q 'Status: "up to date: 3 mirrors through https://harbor.home.lab"' "$WORK/status.txt" ||
  fail "systemctl status does not show the daemon's status: $(cat "$WORK/status.txt")"
[ "$(in_node systemctl show -p WatchdogUSec --value k3s-mirror-agent.service)" = 30s ] ||
  fail "the unit has no watchdog"

# 2. An edit: applied after the debounce (0.5 s) and a splay of at most 2 s, plus the restart's
# 2 s settle; 15 s leaves room for a slow machine without hiding a missed event.
count=$(starts)
n=$(idle_evaluations)
t0=$SECONDS
write_config hub-cache
wait_evaluated "$n" "the edit applied" 15
grep -q '/v2/hub-cache"' "$NODE/etc/rancher/k3s/registries.yaml" || fail "the edit did not reach registries.yaml"
[ "$(djson .applies)" = 2 ] || fail "an edit gave $(( $(djson .applies) - 1 )) applies: $(daemon_status)"
echo "edit applied after $((SECONDS - t0)) s (debounce 0.5 s + splay <= 2 s + restart)"
[ "$(starts)" -eq $((count + 1)) ] || fail "an edit gave $(( $(starts) - count )) restarts"
[ "$(djson .last_apply.trigger)" = config ] || fail "trigger: $(daemon_status)"

# 3. A burst: 100 writes inside the node as fast as the shell goes, the last one a change.
# Once the daemon has evaluated the burst and is idle, nothing is pending: a second apply would
# have to have happened already.
count=$(starts)
n=$(idle_evaluations)
in_node bash -c 'for i in $(seq 1 100); do
  sed -i "s|docker.io: .*|docker.io: burst-$i|" /etc/k3s-mirror-agent/config.yaml; done'
wait_evaluated "$n" "the burst applied" 15
grep -q '/v2/burst-100"' "$NODE/etc/rancher/k3s/registries.yaml" || fail "the burst's last write is not in registries.yaml"
[ "$(djson .applies)" = 3 ] || fail "100 writes gave $(( $(djson .applies) - 2 )) applies: $(daemon_status)"
[ "$(starts)" -eq $((count + 1)) ] || fail "100 writes gave $(( $(starts) - count )) restarts"
[ "$(unit_state k3s-mirror-agent.service)" = active ] || fail "the daemon is not active"
pass "daemon: active after its first apply; an edit applied once; a burst of 100 writes: one apply, one restart"
