#!/usr/bin/env bash
# Benchmark, not a test: what the registry client costs, against a Harbor of Debian's parts
# (tests/blackbox/registry-lib.sh start_harbor: docker-registry with token auth behind nginx
# with TLS, two images pushed with skopeo).
#   1. The daemon's idle cost: CPU time (from /proc/PID/schedstat, nanoseconds) and wake-ups
#      (voluntary context switches) of `run --root` on a scratch root over WINDOW seconds
#      (default 180) with daemon.probe_interval 60s, scaled to 10 minutes. AFTER (this build)
#      probes the cache and two verify.images; BEFORE (default: none; give it main's binary)
#      probes the cache only, with the config it understands. Both run at the same time, so the
#      machine's load is the same for both.
#   2. One `check --probe` with the two images beside /bin/true, with hyperfine.
# Usage: AFTER=build/agent/k3s-mirror-agent BEFORE=/path/to/main/k3s-mirror-agent \
#        tests/bench/probe-cost.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
AFTER=${AFTER:-$PWD/build/agent/k3s-mirror-agent}
BEFORE=${BEFORE:-}
WINDOW=${WINDOW:-180}
export AGENT=$AFTER TESTLIB=$PWD/tests/blackbox/lib.sh
source tests/blackbox/lib.sh
source tests/blackbox/registry-lib.sh
command -v hyperfine >/dev/null || fail "hyperfine is not installed (apt-get install hyperfine)"
make_root
make_ca harbor
start_harbor
push_image dockerhub-proxy/library/busybox:1.36 "busybox 1.36"
push_image dockerhub-proxy/library/alpine:3 "alpine 3"

# root NAME VERIFY: a scratch root of its own for one daemon; VERIFY=yes adds the two images.
root() {
  local dir=$WORK/$1
  mkdir -p "$dir/etc/k3s-mirror-agent" "$dir/etc/ssl/certs" "$dir/usr/share/ca-certificates" \
    "$dir/etc/ca-certificates/update.d"
  cp -r "$ROOT/usr/share/ca-certificates/." "$dir/usr/share/ca-certificates/"
  cp "$ROOT/etc/ca-certificates.conf" "$dir/etc/"
  cp "$WORK/harbor.pem" "$dir/etc/k3s-mirror-agent/harbor-ca.pem"
  { harbor_config; cat <<YAML; } > "$dir/etc/k3s-mirror-agent/config.yaml"
daemon:
  probe_interval: 60s
YAML
  if [ "$2" = yes ]; then
    printf 'verify:\n  images: [docker.io/library/busybox:1.36, docker.io/library/alpine:3]\n' \
      >> "$dir/etc/k3s-mirror-agent/config.yaml"
  fi
  echo "$dir"
}
cpu_ns() { awk '{print $1}' "/proc/$1/schedstat"; }
wakeups() { awk '/^voluntary_ctxt_switches/ {print $2}' "/proc/$1/status"; }

declare -A PID DIR
DIR[after]=$(root after yes)
[ -z "$BEFORE" ] || DIR[before]=$(root before no)
for who in "${!DIR[@]}"; do
  bin=$AFTER
  [ "$who" = after ] || bin=$BEFORE
  "$bin" run --root "${DIR[$who]}" >"$WORK/$who.out" 2>"$WORK/$who.err" &
  PID[$who]=$!
  PIDS+=($!)
done
for who in "${!DIR[@]}"; do
  deadline=$((SECONDS + 30))
  # The first probe done, and idle: the start apply and the look after it are over.
  until [ -f "${DIR[$who]}/run/k3s-mirror-agent/status.json" ] &&
    jq -e '.cache.up and (.busy | not)' "${DIR[$who]}/run/k3s-mirror-agent/status.json" >/dev/null; do
    [ $SECONDS -lt $deadline ] || fail "$who: no first probe: $(cat "$WORK/$who.err")"
    sleep 0.2
  done
done
declare -A CPU0 WAKE0
for who in "${!DIR[@]}"; do CPU0[$who]=$(cpu_ns "${PID[$who]}"); WAKE0[$who]=$(wakeups "${PID[$who]}"); done
sleep "$WINDOW"   # the measurement window itself, not a wait for an outcome
echo "daemon idle cost, probe_interval 60s, measured over ${WINDOW} s and scaled to 10 minutes:"
for who in "${!DIR[@]}"; do
  cpu=$(( $(cpu_ns "${PID[$who]}") - CPU0[$who] ))
  wake=$(( $(wakeups "${PID[$who]}") - WAKE0[$who] ))
  what="cache + 2 images"
  [ "$who" = after ] || what="cache only (main's binary)"
  awk -v w="$who" -v what="$what" -v c="$cpu" -v k="$wake" -v win="$WINDOW" \
    'BEGIN { printf "  %-6s %-27s %.3f s CPU, %d wake-ups per 10 min\n", w, what, c / 1e9 * 600 / win, k * 600 / win }'
done

echo "one check --probe with two images (a cold process: new handle, trust store, handshake):"
hyperfine -N --warmup 3 --runs "${RUNS:-30}" --export-json "$WORK/hf.json" \
  "/bin/true" "$AFTER check --probe --root ${DIR[after]}" >/dev/null
jq -r '.results[] | "  \(.command | split(" ")[0] | split("/")[-1]) \(.command | split(" ")[1:3] | join(" ")): mean \(.mean * 1000 | . * 100 | round / 100) ms ± \(.stddev * 1000 | . * 100 | round / 100) ms"' "$WORK/hf.json"
