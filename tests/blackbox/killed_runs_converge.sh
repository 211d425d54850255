#!/usr/bin/env bash
# kill -9 at every fsync, then the next command: a first apply, a change, a CA rotation, a
# restore and a purge restore (restore --stage, then the package's postrm) are each killed as
# they enter their N-th fsync (strace's fault injection), for every N until a run gets through;
# the next command must converge: the right files, `diff` clean, the CA in (or out of) the trust
# bundle, and restore giving back the node's own registries.yaml byte for byte. Every write is
# fsync(file) rename fsync(dir), so the fsync points are the moments just before and just after
# each rename (and after each unlink): every state a crash can leave on disk.
# Needs strace, and (for the purge) a mount namespace for the chroot postrm runs in. Under
# strace (ptrace) LeakSanitizer cannot work, so a sanitizer build runs the killed runs without it.
source "$TESTLIB"
command -v strace >/dev/null || fail "strace is not installed (packaging/install-build-deps.sh)"
source "$(dirname "${BASH_SOURCE[0]}")/chroot-lib.sh"

OWN=$WORK/own.yaml
own_registries >"$OWN"
JOURNAL=$ROOT/var/lib/k3s-mirror-agent/journal.json
BACKUP=$ROOT/var/lib/k3s-mirror-agent/registries.yaml.orig
KILLS=0

# killed_at N ARGS...: the agent with ARGS, SIGKILLed as it enters its N-th fsync. True when it
# was killed; false when it finished first (then it must have succeeded).
killed_at() {
  local n=$1 rc
  shift
  # In a subshell whose stderr is dropped: bash's own "Killed" line is noise here.
  (
    ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
      strace -qq -o /dev/null -e trace=fsync -e "inject=fsync:signal=KILL:when=$n" \
      "$AGENT" "$@" --root "$ROOT" >"$WORK/killed.out" 2>"$WORK/killed.err"
    echo $? >"$WORK/killed.rc"
  ) 2>/dev/null || true
  rc=$(cat "$WORK/killed.rc")
  if [ "$rc" -eq 137 ]; then
    KILLS=$((KILLS + 1))
    return 0
  fi
  [ "$rc" -eq 0 ] || fail "$* (fsync $n not reached) exited $rc: $(cat "$WORK/killed.err")"
  return 1
}

fresh_node() {  # the node with its own registries.yaml and a config; nothing applied yet
  rm -rf "$ROOT" "$WORK/update-ca-runs"
  setup_node
  mkdir -p "$(dirname "$REG")"
  cp "$OWN" "$REG"
}
in_bundle() { grep -qF "$(sed -n 2p "$1")" "$BUNDLE"; }

# After the next command: nothing pending, CA $1 trusted (and $2, if given, not), the node's own
# file kept, no journal; then restore gives the node its file back and the CA leaves the bundle.
expect_applied() {
  local why=$1 ca=$2 old=${3:-}
  agent diff
  [ "$RC" -eq 0 ] || fail "$why: diff not clean (exit $RC): $OUT $ERR"
  cmp -s "$CONF/harbor-ca.pem" "$CA_INSTALLED" || fail "$why: the installed CA is not the configured one"
  in_bundle "$ca" || fail "$why: the CA is not in the trust bundle"
  [ -z "$old" ] || ! in_bundle "$old" || fail "$why: the old CA is still in the trust bundle"
  cmp -s "$BACKUP" "$OWN" || fail "$why: the backup is not the node's own file"
  [ ! -e "$JOURNAL" ] || fail "$why: the journal is still there"
  expect_restored_by restore "$why" "$ca"
}
expect_restored_by() {
  local command=$1 why=$2 ca=$3
  agent "$command"
  expect_rc 0
  cmp -s "$REG" "$OWN" || fail "$why: after $command registries.yaml is not the node's own: $(cat "$REG")"
  ! in_bundle "$ca" || fail "$why: after $command the CA is still in the trust bundle"
  [ ! -e "$STATE" ] && [ ! -e "$BACKUP" ] && [ ! -e "$JOURNAL" ] && [ ! -e "$CA_INSTALLED" ] ||
    fail "$why: after $command the agent's files remain: $(ls -A "$ROOT/var/lib/k3s-mirror-agent" 2>&1)"
}

# --- a first apply
for n in $(seq 1 40); do
  fresh_node
  killed_at "$n" apply || break
  agent apply
  expect_rc 0
  expect_applied "first apply killed at fsync $n" "$WORK/harbor.pem"
done
first=$KILLS

# --- a change: one more mirror
for n in $(seq 1 40); do
  fresh_node
  agent apply && expect_rc 0
  echo "  registry.k8s.io: k8s-proxy" >>"$CONF/config.yaml"
  killed_at "$n" apply || break
  agent apply
  expect_rc 0
  grep -q 'registry.k8s.io' "$REG" || fail "change killed at fsync $n: the new mirror is not there"
  expect_applied "change killed at fsync $n" "$WORK/harbor.pem"
done
change=$((KILLS - first))

# --- a CA rotation
make_ca rotated
for n in $(seq 1 40); do
  fresh_node
  agent apply && expect_rc 0
  cp "$WORK/rotated.pem" "$CONF/harbor-ca.pem"
  killed_at "$n" apply || break
  agent apply
  expect_rc 0
  expect_applied "CA rotation killed at fsync $n" "$WORK/rotated.pem" "$WORK/harbor.pem"
done
rotation=$((KILLS - first - change))

# --- a restore
for n in $(seq 1 40); do
  fresh_node
  agent apply && expect_rc 0
  killed_at "$n" restore || break
  expect_restored_by restore "restore killed at fsync $n" "$WORK/harbor.pem"
done
restores=$((KILLS - first - change - rotation))

# --- a purge: prerm's restore --stage killed; postrm then keeps everything (nothing is lost);
# prerm again (dpkg runs it again on the next purge) and postrm give the node back its own.
STAGE_DIR=/var/lib/k3s-mirror-agent/purge
for n in $(seq 1 40); do
  fresh_node
  agent apply && expect_rc 0
  cp "$REG" "$WORK/applied.yaml"
  killed_at "$n" restore --stage "$ROOT$STAGE_DIR" || break
  if [ ! -e "$ROOT$STAGE_DIR/complete" ]; then
    in_chroot /bin/sh -e /postrm purge >/dev/null || fail "postrm failed: $(cat "$WORK/chroot.err")"
    cmp -s "$REG" "$WORK/applied.yaml" && cmp -s "$BACKUP" "$OWN" && [ -e "$STATE" ] ||
      fail "purge after restore --stage killed at fsync $n lost something: $(ls -A "$ROOT/var/lib/k3s-mirror-agent" 2>&1)"
    grep -q "no complete restore was staged" "$WORK/chroot.err" ||
      fail "postrm did not say why it kept the state: $(cat "$WORK/chroot.err")"
    agent restore --stage "$ROOT$STAGE_DIR"
    expect_rc 0
  fi  # else killed after the stage was complete (its last fsync): postrm carries it out
  in_chroot /bin/sh -e /postrm purge >/dev/null || fail "postrm failed: $(cat "$WORK/chroot.err")"
  cmp -s "$REG" "$OWN" || fail "purge after a killed stage ($n): registries.yaml is not the node's own"
  ! in_bundle "$WORK/harbor.pem" || fail "purge after a killed stage ($n): the CA is still trusted"
  [ ! -e "$ROOT/var/lib/k3s-mirror-agent" ] || fail "purge left the agent's state"
done
purges=$((KILLS - first - change - rotation - restores))

# Each kind must have been killed at several points, or the fault injection did not bite.
for kind in first change rotation restores purges; do
  [ "${!kind}" -ge 2 ] || fail "only ${!kind} kill points for $kind"
done
pass "killed at every fsync: $first of a first apply, $change of a change, $rotation of a CA" \
  "rotation, $restores of a restore, $purges of a staged purge restore ($KILLS kills); each converged"
