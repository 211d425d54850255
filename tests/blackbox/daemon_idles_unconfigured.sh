#!/usr/bin/env bash
# The daemon started on the package's example config (every line a comment) idles: it keeps
# running, touches nothing, and status.json says the config is not valid and the status starts
# "idle:"; once the config is filled in, it applies it.
source "$TESTLIB"
setup_node
cp "$(dirname "${BASH_SOURCE[0]}")/../../packaging/config.yaml" "$CONF/config.yaml"
start_scratch_daemon

wait_for "the unconfigured status" sj_is .config.valid false
status=$(sj .status)
[[ $status == "idle: $CONF/config.yaml: not configured yet"* ]] || fail "status: $status"
grep -q "not configured yet" <<<"$(sj .config.error)" || fail "config.error: $(sj .config.error)"
[ "$(sj .last_apply)" = null ] && [ "$(sj .applies)" = 0 ] || fail "it applied: $(cat "$STATUS")"
[ ! -e "$REG" ] && [ ! -e "$STATE" ] && [ "$(update_ca_runs)" -eq 0 ] ||
  fail "the unconfigured daemon changed the node"
grep -q "not configured yet: .*; idle until then" "$WORK/daemon.err" || fail "log: $(cat "$WORK/daemon.err")"
grep -qi "error" "$WORK/daemon.err" && fail "an unconfigured node is logged as an error: $(cat "$WORK/daemon.err")"
kill -0 $DAEMON || fail "the daemon exited on the example config"

# Filled in (the debounce is still the default 2 s when the change is seen).
write_config
printf 'daemon:\n  probe_interval: 0s\n' >>"$CONF/config.yaml"
wait_for "the filled-in config applied" sj_is .applies 1
[ "$(sj .config.valid)" = true ] && [ "$(sj .last_apply.changed)" = true ] || fail "$(cat "$STATUS")"
[[ $(sj .status) == "up to date: 3 mirrors through https://harbor.home.lab" ]] || fail "status: $(sj .status)"
grep -q '/v2/dockerhub-proxy"' "$REG" || fail "registries.yaml was not written"
[ -f "$CA_INSTALLED" ] || fail "the CA was not installed"
pass "the daemon idles on the example config and applies once it is filled in"
