#!/usr/bin/env bash
# The daemon against a scratch --root (no systemd: nothing is restarted), for what needs no
# booted node, and under the sanitizer build too: a drop-in created later in a config.d that did
# not exist at start, an editor's save by rename, a broken then fixed config, hand edits put
# back, SIGHUP, SIGTERM (exit 0, status.json says stopped), and the status command.
source "$TESTLIB"
setup_node
cat >>"$CONF/config.yaml" <<'YAML'
daemon:
  debounce: 200ms
  splay: 5s        # never waited here: without a restart there is nothing to splay
  probe_interval: 0s
  metrics_textfile: /var/lib/node-exporter/agent.prom
YAML
start_scratch_daemon

wait_for "the start apply" sj_is .applies 1
[ "$(sj .last_apply.trigger)" = start ] && [ "$(sj .last_apply.changed)" = true ] || fail "$(cat "$STATUS")"
grep -q '/v2/dockerhub-proxy"' "$REG" || fail "start apply did not write registries.yaml"
[ "$(mode_of "$STATUS")" = 644 ] || fail "status.json mode $(mode_of "$STATUS")"
grep -q '"password\|BEGIN' "$STATUS" && fail "status.json holds secrets or certificates"
grep -qx 'k3s_mirror_agent_applies_total 1' "$ROOT/var/lib/node-exporter/agent.prom" ||
  fail "metrics: $(cat "$ROOT/var/lib/node-exporter/agent.prom")"

# config.d did not exist at start: a drop-in created later is seen. Each step waits until the
# daemon has evaluated what changed and is idle (status.json's evaluations and busy).
n=$(idle_evaluations)
mkdir "$CONF/config.d"
printf 'mirrors:\n  registry.k8s.io: k8s-proxy\n' >"$CONF/config.d/20-k8s.yaml"
wait_evaluated "$n" "the new drop-in applied" 10
grep -q '/v2/k8s-proxy"' "$REG" || fail "the new drop-in is not in registries.yaml"

# An editor's save: a new file renamed over the old one.
n=$(idle_evaluations)
sed 's/quay-proxy/quay-cache/' "$CONF/config.yaml" >"$CONF/.config.yaml.swp"
mv "$CONF/.config.yaml.swp" "$CONF/config.yaml"
wait_evaluated "$n" "the renamed-over config applied" 10
grep -q '/v2/quay-cache"' "$REG" || fail "the renamed-over config is not in registries.yaml"
[ ! -e "$ROOT/var/lib/k3s-mirror-agent/journal.json" ] || fail "an idle daemon left its journal"

# Broken: nothing changes and the status says why; fixed: applied.
# What the agent manages: everything but the config being edited and the daemon's own reports.
node_files() { snapshot | grep -v 'etc/k3s-mirror-agent\|run/k3s-mirror-agent\|node-exporter'; }
before=$(node_files)
n=$(idle_evaluations)
printf 'mirrors:\n  ghcr.io: [\n' >"$CONF/config.d/30-broken.yaml"
wait_evaluated "$n" "the broken drop-in evaluated" 10
[ "$(sj .config.valid)" = false ] || fail "the broken drop-in is not reported: $(cat "$STATUS")"
grep -q '30-broken.yaml:' <<<"$(sj .config.error)" || fail "error: $(sj .config.error)"
# Evaluated and idle: nothing is pending, so a change it did not make, it will not make.
[ "$(node_files)" = "$before" ] || fail "a broken config changed the node"
kill -0 $DAEMON || fail "the daemon died on a broken config"
n=$(idle_evaluations)
rm "$CONF/config.d/30-broken.yaml"
wait_evaluated "$n" "the fixed config evaluated" 10
[ "$(sj .config.valid)" = true ] || fail "the fixed config is not valid: $(cat "$STATUS")"

# A hand edit of registries.yaml is put back.
n=$(idle_evaluations)
echo '# hand edit' >>"$REG"
wait_evaluated "$n" "the hand edit put back" 10
[ "$(sj .drift.corrections)" = 1 ] || fail "the hand edit was not corrected: $(cat "$STATUS")"
grep -q 'hand edit' "$REG" && fail "the hand edit is still there"

# SIGHUP: applies at once (an apply is counted even with nothing to change).
applies=$(sj .applies)
n=$(idle_evaluations)
kill -HUP $DAEMON
wait_evaluated "$n" "SIGHUP's apply" 10
[ "$(sj .last_apply.trigger)" = reload ] || fail "SIGHUP: $(cat "$STATUS")"
[ "$(sj .applies)" -eq $((applies + 1)) ] || fail "SIGHUP: $(cat "$STATUS")"

agent status
expect_rc 0
grep -q '^daemon: running' <<<"$OUT" && grep -q '^config: .*, valid' <<<"$OUT" &&
  grep -q '^managed: /etc/rancher/k3s/registries.yaml (mirrors: docker.io, ghcr.io, quay.io, registry.k8s.io)' <<<"$OUT" ||
  fail "status text: $OUT"
agent status --output json
expect_rc 0
[ "$(jq -r .daemon.alive <<<"$OUT")" = true ] && [ "$(jq -r '.managed.mirrors | length' <<<"$OUT")" = 4 ] ||
  fail "status json: $OUT"

kill -TERM $DAEMON
rc=0
wait $DAEMON || rc=$?
[ "$rc" -eq 0 ] || fail "SIGTERM: exit $rc"
[ "$(sj .running)" = false ] || fail "status.json still says running"
agent status
grep -q '^daemon: stopped' <<<"$OUT" || fail "status after stop: $OUT"
pass "daemon in a scratch root: later drop-in, rename-save, broken/fixed config, drift, SIGHUP, SIGTERM, status"
