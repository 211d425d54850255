#!/usr/bin/env bash
# Benchmark, not a test: on a booted node (systemd-nspawn, stand-in k3s.service), the
# whole-process wall time of
#   - an apply that changes registries.yaml only (one mirror's project flips before each run),
#     restart of k3s.service through D-Bus included — it waits for the unit to be active and to
#     stay active for the settle time (2 s), so that is most of the figure by design;
#   - an apply that changes nothing;
# beside the floors from the same run: /bin/true and `k3s-mirror-agent --version`, both
# entered into the node the same way (nsenter), so the entering cost is in every line.
# Usage: tests/bench/node-apply.sh   (after a build in build/release)
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/bench/node-env.sh
source tests/bench/node-env.sh
command -v hyperfine >/dev/null || apt-get install -y -qq hyperfine >/dev/null
source tests/node/lib.sh
start_node server
apply
expect_rc 0

# flip.sh runs before each timed change: it swaps docker.io's project, so every timed apply
# rewrites registries.yaml (not the CA) and restarts k3s once.
cat > "$WORK/flip.sh" <<FLIP
#!/bin/sh
cfg=$NODE/etc/k3s-mirror-agent/config.yaml
if grep -q 'docker.io: dockerhub-proxy' "\$cfg"; then
  sed -i 's/docker.io: dockerhub-proxy/docker.io: hub-cache/' "\$cfg"
else
  sed -i 's/docker.io: hub-cache/docker.io: dockerhub-proxy/' "\$cfg"
fi
FLIP
chmod +x "$WORK/flip.sh"
enter="nsenter -t $PID1 -a"
before=$(starts)
hyperfine -N --runs 10 --prepare "$WORK/flip.sh" --export-json "$WORK/change.json" \
  "$enter /usr/local/sbin/k3s-mirror-agent apply -q" >/dev/null
restarts=$(( $(starts) - before ))
hyperfine -N --warmup 10 --runs 100 --export-json "$WORK/nochange.json" \
  "$enter /bin/true" "$enter /usr/local/sbin/k3s-mirror-agent --version" \
  "$enter /usr/local/sbin/k3s-mirror-agent apply -q" >/dev/null
[ "$(starts)" -eq $((before + restarts)) ] || fail "an apply that changes nothing restarted k3s"

report() {
  jq -r --arg name "$2" '.results[] | "\($name): median \(.median * 1000 * 10 | round / 10) ms, mean \(.mean * 1000 * 10 | round / 10) ms ± \(.stddev * 1000 * 10 | round / 10) ms over \(.times | length) runs"' "$1"
}
report "$WORK/change.json" "apply changing registries.yaml (restart included, $restarts restarts in 10 runs)"
jq -r '.results[] | "\(.command | sub("nsenter -t [0-9]+ -a "; "in node: ")): median \(.median * 1000 * 10 | round / 10) ms, mean \(.mean * 1000 * 10 | round / 10) ms ± \(.stddev * 1000 * 10 | round / 10) ms over \(.times | length) runs"' "$WORK/nochange.json"
