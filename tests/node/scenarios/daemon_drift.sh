#!/usr/bin/env bash
# Scenario 4: registries.yaml edited or deleted by hand while the daemon runs. With drift:
# correct (the default) it is put back — and k3s restarted, since k3s may have read the hand
# edit; with drift: report it is left as it is and the daemon says so (status, STATUS=, log).
source "$NODE_DIR/lib.sh"
start_node "$ROLE"
daemon_settings "debounce: 500ms" "splay: 1s" "probe_interval: 0s"
start_daemon
reg=$NODE/etc/rancher/k3s/registries.yaml
good=$(sha256sum <"$reg")

# Overwritten with other valid YAML: the agent's entries come back.
printf 'mirrors:\n  docker.io:\n    endpoint: ["https://elsewhere.example"]\n' >"$reg"
wait_for "the overwritten registries.yaml put back" 15 grep -q '/v2/dockerhub-proxy"' "$reg"
wait_applies 2
[ "$(sha256sum <"$reg")" = "$good" ] || fail "put back, but not as it was: $(cat "$reg")"
[ "$(stat -c %a "$reg")" = 600 ] || fail "put back with mode $(stat -c %a "$reg")"
[ "$(djson .drift.corrections)" = 1 ] && [ "$(djson .last_apply.trigger)" = drift ] ||
  fail "status after a correction: $(daemon_status)"

# Deleted: written again.
rm "$reg"
wait_for "the deleted registries.yaml put back" 15 test -f "$reg"
wait_applies 3
[ "$(sha256sum <"$reg")" = "$good" ] || fail "recreated, but not as it was"
[ "$(djson .drift.corrections)" = 2 ] || fail "status after a deletion: $(daemon_status)"

# A mode changed by hand (a 0644 file that may hold a password) counts too; no restart needed.
count=$(starts)
chmod 644 "$reg"
wait_for "the mode put back" 15 mode_is "$reg" 600
wait_applies 4
[ "$(starts)" -eq "$count" ] || fail "a mode fix restarted k3s"

# drift: report — only said.
daemon_settings "debounce: 500ms" "splay: 1s" "probe_interval: 0s" "drift: report"
wait_for "drift: report taking effect" 15 djson_is .drift.policy report
count=$(starts)
printf 'mirrors:\n  docker.io:\n    endpoint: ["https://elsewhere.example"]\n' >"$reg"
hand=$(sha256sum <"$reg")
wait_for "the drift reported" 15 djson_is '.drift.files | length' 1
sleep 1.5  # longer than debounce + splay: a correction would have happened by now
[ "$(sha256sum <"$reg")" = "$hand" ] || fail "drift: report changed the file"
[ "$(starts)" -eq "$count" ] || fail "drift: report restarted k3s"
[ "$(djson '.drift.files[0]')" = /etc/rancher/k3s/registries.yaml ] || fail "$(daemon_status)"
status_text | grep -q 'drift (drift: report, not corrected): /etc/rancher/k3s/registries.yaml' ||
  fail "STATUS= does not report the drift: $(status_text)"
daemon_journal | grep -q 'drift: /etc/rancher/k3s/registries.yaml changed by hand' ||
  fail "the journal does not report the drift"
pass "drift: overwrite, deletion and mode put back (correct); only reported (report)"
