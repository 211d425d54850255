#!/usr/bin/env bash
# Benchmark, not a test: the daemon as the systemd service on a booted node (systemd-nspawn,
# stand-in k3s.service), probing a real registry (docker-registry behind nginx with TLS) so the
# TLS code and the trust store are in memory as on a real node. It reports
#   - resident memory (VmRSS) after start, and after 1,000 config change events, each one an
#     apply that rewrites registries.yaml (k3s.restart: never, so no k3s restart is in the loop;
#     debounce 0 so every event is applied on its own), with the peak (VmHWM);
#   - beside each RSS, PSS and private memory (/proc/PID/smaps_rollup): RSS counts every page of
#     libstdc++, libcrypto, libsystemd... the daemon maps, though every process on the node
#     that uses them shares those pages. PSS charges each shared page divided by the number of
#     processes mapping it; private (Private_Clean + Private_Dirty) is what only the daemon
#     maps, what stopping it would give back. Private includes library text no other process
#     maps at the moment: here the node's root filesystem is a copy of its own, so the node's
#     libcrypto is mapped by the daemon alone. Anonymous (heap, stack, data) is the daemon's
#     own memory whatever else runs;
#   - CPU time and wake-ups (voluntary context switches) over an idle window, extrapolated to
#     10 minutes, beside what the timers explain: the watchdog ping every WatchdogSec/2 (15 s)
#     and the probe every probe_interval.
# Targets (issue 4): under 8 MiB resident, no growth over the events, no idle wake-ups beyond
# the watchdog and probe timers. IDLE_SECONDS (default 120) sets the idle window.
# Usage: tests/bench/daemon-memory.sh   (after a build in build/release)
set -euo pipefail
cd "$(dirname "$0")/../.."
export AGENT=${AGENT:-$PWD/build/release/agent/k3s-mirror-agent}
export STANDIN=${STANDIN:-$PWD/build/release/tests/k3s-standin}
export NODE_DIR=$PWD/tests/node
IDLE_SECONDS=${IDLE_SECONDS:-120}
EVENTS=${EVENTS:-1000}
command -v bc >/dev/null || apt-get install -y -qq bc >/dev/null
source tests/node/lib.sh
TESTLIB=$NODE_DIR/../blackbox/lib.sh
source tests/blackbox/registry-lib.sh

start_node server
start_registry
make_server_cert harbor localhost 30
start_tls_front "$WORK/localhost.crt" "$WORK/localhost.key"
sed -i "s|url: https://harbor.home.lab|url: https://localhost:$TLS_PORT|; s|restart_timeout:.*|restart: never|" \
  "$NODE/etc/k3s-mirror-agent/config.yaml"
daemon_settings "debounce: 0s" "probe_interval: 60s"
start_daemon
wait_for "the first probe" 20 djson_is .cache.up true

pid=$(in_node systemctl show -p MainPID --value k3s-mirror-agent.service)
mem() { in_node grep "^$1:" "/proc/$pid/status" | awk '{print $2}'; }  # kB
cpu_ticks() { in_node cat "/proc/$pid/stat" | awk '{print $14 + $15}'; }
wakeups() { mem voluntary_ctxt_switches; }
rollup() { in_node cat "/proc/$pid/smaps_rollup" | awk -v f="$1:" '$1 == f {print $2}'; }  # kB
private() { echo $(($(rollup Private_Clean) + $(rollup Private_Dirty))); }
mib() { echo "$1 / 1024" | bc -l; }
rss_start=$(mem VmRSS)
pss_start=$(rollup Pss)
private_start=$(private)
anon_start=$(rollup Anonymous)

# 1,000 events, applied one by one: flip docker.io's project, wait for status.json to count
# the apply. All inside the node, so entering it is not in the figure.
base=$(djson .applies)
t0=$(date +%s%N)
in_node bash -c '
  cfg=/etc/k3s-mirror-agent/config.yaml
  for i in $(seq 1 '"$EVENTS"'); do
    sed -i "s|docker.io: .*|docker.io: project-$((i % 2))|" "$cfg"
    want=$(('"$base"' + i))
    until grep -q "\"applies\": $want," /run/k3s-mirror-agent/status.json; do :; done
  done'
t1=$(date +%s%N)
wait_applies $((base + EVENTS))
rss_events=$(mem VmRSS)
pss_events=$(rollup Pss)
private_events=$(private)
anon_events=$(rollup Anonymous)
hwm=$(mem VmHWM)

# Idle: nothing changes; only the watchdog and probe timers should wake the daemon. The window
# starts once status.json says nothing is pending (the look the last apply's writes raise).
wait_until 30 "the daemon idle after the events" daemon_idle
c0=$(cpu_ticks)
w0=$(wakeups)
sleep "$IDLE_SECONDS"
c1=$(cpu_ticks)
w1=$(wakeups)
hz=$(getconf CLK_TCK)
tt0=$(date +%s%N)
for _ in $(seq 100); do /bin/true; done
true_ms=$(echo "($(date +%s%N) - $tt0) / 100000000" | bc -l)

echo "daemon memory and idle cost ($(uname -m), $(nproc) cores)"
printf '  after start:        RSS %6.2f MiB, PSS %6.2f MiB, private %6.2f MiB, anonymous %.2f MiB\n' \
  "$(mib "$rss_start")" "$(mib "$pss_start")" "$(mib "$private_start")" "$(mib "$anon_start")"
printf '  after %d applies: RSS %6.2f MiB, PSS %6.2f MiB, private %6.2f MiB, anonymous %.2f MiB\n' \
  "$EVENTS" "$(mib "$rss_events")" "$(mib "$pss_events")" "$(mib "$private_events")" \
  "$(mib "$anon_events")"
printf '  peak RSS (VmHWM): %.2f MiB\n' "$(mib "$hwm")"
printf '  %d config events applied in %.1f s (%.1f ms each, status.json polled in the node)\n' \
  "$EVENTS" "$(echo "($t1 - $t0) / 1000000000" | bc -l)" "$(echo "($t1 - $t0) / 1000000 / $EVENTS" | bc -l)"
printf '  idle %d s: CPU %d ticks (%.3f s), %d wake-ups\n' "$IDLE_SECONDS" "$((c1 - c0))" \
  "$(echo "($c1 - $c0) / $hz" | bc -l)" "$((w1 - w0))"
printf '  extrapolated to 10 idle minutes: CPU %.3f s, %d wake-ups; the timers explain %d\n' \
  "$(echo "($c1 - $c0) / $hz * 600 / $IDLE_SECONDS" | bc -l)" \
  "$(( (w1 - w0) * 600 / IDLE_SECONDS ))" "$(( 600 / 15 + 600 / 60 ))"
printf '  (for scale, from the same run: /bin/true takes %.2f ms to start and exit)\n' "$true_ms"
