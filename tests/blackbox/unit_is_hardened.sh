#!/usr/bin/env bash
# The shipped unit (systemd/k3s-mirror-agent.service) stays hardened: systemd's own assessment
# (`systemd-analyze security --offline=yes`) puts its exposure at 3.0 or lower and flags nothing
# beyond the exposures the README lists as accepted; `systemd-analyze verify` has nothing to say
# about it; and it is still the service the daemon needs (notify, watchdog, restart on failure,
# a run directory that outlives a stop). Whether the agent works inside this sandbox is what
# the booted-node daemon scenarios check. UNIT_FILE names another unit file (to try a change).
source "$TESTLIB"
UNIT=${UNIT_FILE:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/systemd/k3s-mirror-agent.service}
[ -f "$UNIT" ] || fail "no unit file at $UNIT"

if ! command -v systemd-analyze >/dev/null; then
  [ "${CI:-}" = true ] && fail "systemd-analyze is not installed (package systemd; tests/run-all.sh installs it)"
  echo "SKIP: systemd-analyze is not installed (package systemd)"
  exit 77
fi

# 3.0 is the target the hardening was done against (it measured 1.5 on systemd 252).
max_exposure=3.0
RC=0
systemd-analyze security --offline=yes --threshold="${max_exposure/./}" "$UNIT" >"$WORK/security.txt" 2>&1 || RC=$?
exposure=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' "$WORK/security.txt")
[ -n "$exposure" ] || fail "systemd-analyze security gave no exposure level (exit $RC): $(cat "$WORK/security.txt")"
awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e <= m) }' && [ "$RC" -eq 0 ] ||
  fail "exposure of $(basename "$UNIT") is $exposure, above $max_exposure (exit $RC):
$(grep '✗\|^X ' "$WORK/security.txt")"

# What may stay exposed, and why (the unit's comments and the README give the same reasons):
accepted=(
  "RootDirectory=/RootImage="                # the agent edits the host's own /etc
  "User=/DynamicUser="                       # the files are root's; only root may restart k3s without polkit
  "PrivateNetwork="                          # it probes the cache over the network
  "RestrictAddressFamilies=~AF_(INET|INET6)" # the cache, over TCP
  "RestrictAddressFamilies=~AF_UNIX"         # the system bus, to restart k3s
  "IPAddressDeny="                           # the cache's address is configuration, and may move
  "MemoryDenyWriteExecute="                  # ca-certificates-java's hook runs a JVM (a JIT)
  "UMask="                                   # update-ca-certificates' hooks create files all must read
  "DeviceAllow="                             # char-rtc:r, which ProtectClock= itself adds
)
systemd-analyze security --offline=yes --json=short "$UNIT" >"$WORK/security.json" ||
  fail "systemd-analyze security --json=short failed"
unexpected=$(jq -r --argjson ok "$(printf '%s\n' "${accepted[@]}" | jq -R . | jq -s .)" \
  '.[] | select(.set == false and (.name as $n | $ok | index($n) | not))
       | "\(.name) (\(.description), exposure \(.exposure))"' "$WORK/security.json")
[ -z "$unexpected" ] ||
  fail "$(basename "$UNIT") (exposure $exposure) lost hardening, or systemd offers more: $unexpected"

# What the daemon needs from its unit, whatever else changes.
for line in Type=notify NotifyAccess=main WatchdogSec=30s Restart=on-failure \
    RuntimeDirectoryPreserve=yes "ExecStartPre=+/bin/mkdir -p /etc/rancher" CapabilityBoundingSet=; do
  grep -qxF "$line" "$UNIT" || fail "$(basename "$UNIT") has no '$line'"
done

# verify checks that ExecStart= is executable: point it at the binary under test. Any output is
# a complaint (an unknown or misspelt directive is only a warning, with exit 0).
sed "s|^ExecStart=/usr/sbin/k3s-mirror-agent |ExecStart=$AGENT |" "$UNIT" >"$WORK/k3s-mirror-agent.service"
RC=0
systemd-analyze verify --man=no "$WORK/k3s-mirror-agent.service" >"$WORK/verify.txt" 2>&1 || RC=$?
[ "$RC" -eq 0 ] && [ ! -s "$WORK/verify.txt" ] ||
  fail "systemd-analyze verify $(basename "$UNIT") (exit $RC): $(cat "$WORK/verify.txt")"
pass "$(basename "$UNIT"): exposure $exposure (at most $max_exposure), only the accepted exposures, verify clean"
