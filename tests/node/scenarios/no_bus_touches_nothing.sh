#!/usr/bin/env bash
# A restart is due but the system bus cannot be reached (DBUS_SYSTEM_BUS_ADDRESS, which the
# agent honours, names a socket that does not exist): apply says so, exits 1 and touches
# nothing — the unit is looked up before any file is written. Then, with the bus, it works.
source "$NODE_DIR/lib.sh"
start_node server
before=$(snapshot)
RC=0
in_node env DBUS_SYSTEM_BUS_ADDRESS=unix:path=/run/no-such-bus \
  /usr/local/sbin/k3s-mirror-agent apply >"$WORK/out" 2>"$WORK/err" || RC=$?
ERR=$(cat "$WORK/err")
OUT=$(cat "$WORK/out")
expect_rc 1
grep -q "connect to the system bus" <<<"$ERR" || fail "the error does not name the bus: $ERR"
[ "$(snapshot)" = "$before" ] || fail "files changed without a bus"
[ "$(starts)" -eq 1 ] || fail "k3s was restarted"

apply
expect_rc 0
[ "$(json .restarted)" = k3s.service ] || fail "with the bus back, k3s was not restarted: $OUT"
pass "no system bus: exit 1, nothing touched"
