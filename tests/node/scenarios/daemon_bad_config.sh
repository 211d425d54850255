#!/usr/bin/env bash
# Scenario 5: the config breaks while the daemon runs. The node stays as it is, the daemon stays
# active and says why (status.json, STATUS=, journal, naming file and line); once the config is
# fixed it is applied.
source "$NODE_DIR/lib.sh"
start_node "$ROLE"
daemon_settings "debounce: 500ms" "splay: 1s" "probe_interval: 0s"
start_daemon
before=$(snapshot)
count=$(starts)

conf=$NODE/etc/k3s-mirror-agent/config.yaml
n=$(idle_evaluations)
echo 'k3s_typo: 1' >>"$conf"  # line 10: an unknown key
wait_evaluated "$n" "the broken config evaluated" 15
[ "$(djson .config.valid)" = false ] || fail "the broken config is not reported: $(daemon_status)"
error=$(djson .config.error)
grep -q '/etc/k3s-mirror-agent/config.yaml:10: k3s_typo' <<<"$error" ||
  fail "the error does not name the file, line and key: $error"
status_text | grep -q "cannot apply, node left as it was: /etc/k3s-mirror-agent/config.yaml:10" ||
  fail "STATUS= does not say why: $(status_text)"
daemon_journal | grep -q "config.yaml:10: k3s_typo" || fail "the journal does not say why"
# Evaluated and idle: nothing is pending, so whatever the daemon did not do, it will not do.
[ "$(snapshot)" = "$before" ] || fail "a broken config changed the node"
[ "$(starts)" -eq "$count" ] || fail "a broken config restarted k3s"
[ "$(unit_state k3s-mirror-agent.service)" = active ] || fail "the daemon did not stay active"

# Fixed, with a change: applied.
n=$(idle_evaluations)
write_config fixed-proxy
wait_evaluated "$n" "the fixed config applied" 15
grep -q '/v2/fixed-proxy"' "$NODE/etc/rancher/k3s/registries.yaml" || fail "the fix did not reach registries.yaml"
[ "$(djson .applies)" = 2 ] || fail "the fix gave $(( $(djson .applies) - 1 )) applies: $(daemon_status)"
[ "$(djson .config.valid)" = true ] && [ "$(djson .config.error)" = null ] ||
  fail "status after the fix: $(daemon_status)"
[ "$(starts)" -eq $((count + 1)) ] || fail "the fix gave $(( $(starts) - count )) restarts"
status_text | grep -q '^up to date' || fail "STATUS= after the fix: $(status_text)"
pass "broken config: node unchanged, daemon active and saying why; fixed: applied"
