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
n=$(idle_evaluations)
printf 'mirrors:\n  docker.io:\n    endpoint: ["https://elsewhere.example"]\n' >"$reg"
wait_evaluated "$n" "the overwritten registries.yaml put back" 15
[ "$(sha256sum <"$reg")" = "$good" ] || fail "put back, but not as it was: $(cat "$reg")"
[ "$(stat -c %a "$reg")" = 600 ] || fail "put back with mode $(stat -c %a "$reg")"
[ "$(djson .drift.corrections)" = 1 ] && [ "$(djson .last_apply.trigger)" = drift ] ||
  fail "status after a correction: $(daemon_status)"

# Deleted: written again.
n=$(idle_evaluations)
rm "$reg"
wait_evaluated "$n" "the deleted registries.yaml put back" 15
[ -f "$reg" ] || fail "registries.yaml was not written again"
[ "$(sha256sum <"$reg")" = "$good" ] || fail "recreated, but not as it was"
[ "$(djson .drift.corrections)" = 2 ] || fail "status after a deletion: $(daemon_status)"

# A mode changed by hand (a 0644 file that may hold a password) counts too; no restart needed.
count=$(starts)
n=$(idle_evaluations)
chmod 644 "$reg"
wait_evaluated "$n" "the mode put back" 15
mode_is "$reg" 600 || fail "the mode is $(stat -c %a "$reg"), not put back"
[ "$(djson .drift.corrections)" = 3 ] || fail "status after a mode fix: $(daemon_status)"
[ "$(starts)" -eq "$count" ] || fail "a mode fix restarted k3s"

# drift: report — only said.
n=$(idle_evaluations)
daemon_settings "debounce: 500ms" "splay: 1s" "probe_interval: 0s" "drift: report"
wait_evaluated "$n" "drift: report taking effect" 15
[ "$(djson .drift.policy)" = report ] || fail "drift: report did not take effect: $(daemon_status)"
count=$(starts)
n=$(idle_evaluations)
printf 'mirrors:\n  docker.io:\n    endpoint: ["https://elsewhere.example"]\n' >"$reg"
hand=$(sha256sum <"$reg")
# Evaluated and idle: a correction, had there been one, would have happened by now.
wait_evaluated "$n" "the drift evaluated" 15
[ "$(djson '.drift.files | length')" = 1 ] || fail "the drift is not reported: $(daemon_status)"
[ "$(sha256sum <"$reg")" = "$hand" ] || fail "drift: report changed the file"
[ "$(starts)" -eq "$count" ] || fail "drift: report restarted k3s"
[ "$(djson '.drift.files[0]')" = /etc/rancher/k3s/registries.yaml ] || fail "$(daemon_status)"
status_text | grep -q 'drift (drift: report, not corrected): /etc/rancher/k3s/registries.yaml' ||
  fail "STATUS= does not report the drift: $(status_text)"
daemon_journal | grep -q 'drift: /etc/rancher/k3s/registries.yaml changed by hand' ||
  fail "the journal does not report the drift"
pass "drift: overwrite, deletion and mode put back (correct); only reported (report)"
