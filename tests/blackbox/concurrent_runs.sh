#!/usr/bin/env bash
# Runs at the same time never interleave and never undo each other: two applies, two restores,
# an apply and a restore, an apply and the daemon's start. The test holds the agent's lock
# (flock) until every run is waiting for it, so they really meet at the lock, then lets go.
# Also: a daemon started after an apply was killed midway finishes the job at its start.
source "$TESTLIB"
for tool in flock strace; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (packaging/install-build-deps.sh)"
done
LOCK=$ROOT/run/k3s-mirror-agent/apply.lock
JOURNAL=$ROOT/var/lib/k3s-mirror-agent/journal.json
BACKUP=$ROOT/var/lib/k3s-mirror-agent/registries.yaml.orig
OWN=$WORK/own.yaml
printf '# the node'"'"'s own\nmirrors:\n  docker.io:\n    endpoint: ["https://mirror.gcr.io"]\n' >"$OWN"

fresh_node() {
  rm -rf "$ROOT"
  setup_node
  mkdir -p "$(dirname "$REG")"
  cp "$OWN" "$REG"
}
hold_lock() {
  mkdir -p "$(dirname "$LOCK")"
  exec 9>>"$LOCK"
  flock -n 9 || fail "the lock is taken before the test took it"
}
release_lock() { exec 9>&-; }  # what runs in the background must not inherit fd 9 (9>&-)

# run_bg NAME ARGS...: the agent in the background (PIDS[NAME]); its output in $WORK/NAME.*
declare -A PIDS
run_bg() {
  local name=$1
  shift
  "$AGENT" "$@" --root "$ROOT" --output json >"$WORK/$name.out" 2>"$WORK/$name.err" 9>&- &
  PIDS[$name]=$!
}
waiting() { grep -q "waiting for another apply to finish" "$WORK/$1.err"; }
finished() {  # finished NAME: waits for it; it must have exited 0
  local rc=0
  wait "${PIDS[$1]}" || rc=$?
  [ "$rc" -eq 0 ] || fail "$1 exited $rc: $(cat "$WORK/$1.out" "$WORK/$1.err")"
}
changed() { [ "$(jq -r .changed "$WORK/$1.out")" = true ]; }
in_bundle() { grep -qF "$(sed -n 2p "$WORK/harbor.pem")" "$BUNDLE"; }
expect_applied() {
  agent diff
  [ "$RC" -eq 0 ] || fail "$1: diff not clean (exit $RC): $OUT"
  in_bundle || fail "$1: the CA is not in the trust bundle"
  cmp -s "$BACKUP" "$OWN" || fail "$1: the backup is not the node's own file"
  [ ! -e "$JOURNAL" ] || fail "$1: a journal was left behind"
}
expect_restored() {
  cmp -s "$REG" "$OWN" || fail "$1: registries.yaml is not the node's own: $(cat "$REG")"
  ! in_bundle || fail "$1: the CA is still trusted"
  [ ! -e "$STATE" ] && [ ! -e "$BACKUP" ] && [ ! -e "$JOURNAL" ] || fail "$1: the agent's files remain"
}

# --- two applies: one changes the node, the other finds it done under the lock
fresh_node
hold_lock
run_bg a1 apply
run_bg a2 apply
wait_for "both applies waiting for the lock" eval 'waiting a1 && waiting a2'
release_lock
finished a1
finished a2
if changed a1 && changed a2; then fail "both applies changed the node"; fi
changed a1 || changed a2 || fail "neither apply changed the node"
expect_applied "two applies"

# --- two restores: one restores, the other finds nothing left (and re-emits nothing)
hold_lock
run_bg r1 restore
run_bg r2 restore
wait_for "both restores waiting for the lock" eval 'waiting r1 && waiting r2'
release_lock
finished r1
finished r2
if changed r1 && changed r2; then fail "both restores changed the node"; fi
expect_restored "two restores"

# --- an apply and a restore: whichever goes second sees what the first did
fresh_node
agent apply && expect_rc 0
echo "  registry.k8s.io: k8s-proxy" >>"$CONF/config.yaml"
hold_lock
run_bg a apply
run_bg r restore
wait_for "apply and restore waiting for the lock" eval 'waiting a && waiting r'
release_lock
finished a
finished r
if [ -e "$STATE" ]; then
  grep -q registry.k8s.io "$REG" || fail "apply + restore: the state is there but the change is not"
  expect_applied "restore, then apply"
else
  expect_restored "apply, then restore"
fi

# --- an apply and the daemon's start apply
fresh_node
hold_lock
start_scratch_daemon 9>&-  # not holding the test's lock fd
run_bg a apply
wait_for "apply and the daemon waiting for the lock" \
  eval 'waiting a && grep -q "waiting for another apply" "$WORK/daemon.err"'
release_lock
finished a
wait_for "the daemon's start apply" sj_is .applies 1
[ "$(sj .last_apply.error)" = null ] || fail "the daemon's apply failed: $(sj .last_apply.error)"
if changed a && [ "$(sj .last_apply.changed)" = true ]; then fail "apply and the daemon both changed the node"; fi
expect_applied "apply + the daemon"
kill "$DAEMON"
wait "$DAEMON" || true

# --- an apply killed midway (after the CA file, before registries.yaml), then the daemon starts
fresh_node
(
  ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
    strace -qq -o /dev/null -e trace=fsync -e inject=fsync:signal=KILL:when=6 \
    "$AGENT" apply --root "$ROOT" >/dev/null 2>&1
  echo $? >"$WORK/killed.rc"
) 2>/dev/null || true
[ "$(cat "$WORK/killed.rc")" -eq 137 ] || fail "the apply was not killed (exit $(cat "$WORK/killed.rc"))"
[ -e "$JOURNAL" ] || fail "the killed apply left no journal"
start_scratch_daemon
wait_for "the daemon's start apply" sj_is .applies 1
[ "$(sj .last_apply.error)" = null ] || fail "the daemon's apply failed: $(sj .last_apply.error)"
grep -q "an interrupted apply was undone first" "$WORK/daemon.err" ||
  fail "the daemon did not say it undid the interrupted apply: $(cat "$WORK/daemon.err")"
expect_applied "a daemon started after a killed apply"
pass "concurrent applies, restores and the daemon meet at the lock and converge"
