#!/usr/bin/env bash
# Benchmark, not a test: packaging/ansible/site.yml over ssh into the five booted nodes of
# node.ansible_fleet (tests/node/fleet-lib.sh: two servers one at a time, three workers in
# batches of two), after a first run installed everything. Whole-process wall time of
#   - a no-op run (the same variables again: changed=0, no k3s restart);
#   - a one-mirror change (ghcr.io's project flips before each run: one k3s restart per node,
#     each apply waiting for its k3s to be active and settled, servers one after the other);
# with the number of k3s restarts counted on the nodes, beside /bin/true and
# `ansible -m ping` of all five nodes from the same run (the floor of any playbook here).
# Usage: DEBS=DIR tests/bench/ansible-fleet.sh [RUNS]   (DIR from packaging/build-debs.sh;
#        after a build in build/release, for the k3s stand-in)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-3}
# shellcheck source=tests/bench/node-env.sh
source tests/bench/node-env.sh
export DEBS=${DEBS:-$PWD/build/release/debs}
command -v hyperfine >/dev/null || apt-get install -y -qq hyperfine >/dev/null
# shellcheck source=tests/node/fleet-lib.sh
source tests/node/fleet-lib.sh
fleet_deb
fleet_start
fleet_controller "$DEB"
fleet_vars "pw-$(openssl rand -hex 16)"
playbook install >/dev/null
[ "$RC" -eq 0 ] || { cat "$WORK/runinstall.log"; fail "the first run exited $RC"; }
echo "first run (install on 5 nodes): $SECS s"

total_starts() {
  local n sum=0
  for n in "${FLEET[@]}"; do
    use "$n"
    sum=$((sum + $(starts)))
  done
  echo "$sum"
}
# The command hyperfine times: playbook() without its bookkeeping, failing on a failed run.
cat >"$WORK/play.sh" <<PLAY
#!/bin/sh
cd "$CTL" && exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$WORK/ansible-home" LANG=C.UTF-8 \
  ANSIBLE_CONFIG="$CTL/ansible.cfg" ansible-playbook site.yml -e @vars.yml \
  -e k3s_mirror_agent_worker_batch=2 >"$WORK/bench.log" 2>&1
PLAY
cat >"$WORK/ping.sh" <<PING
#!/bin/sh
cd "$CTL" && exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$WORK/ansible-home" LANG=C.UTF-8 \
  ANSIBLE_CONFIG="$CTL/ansible.cfg" ansible all -m ansible.builtin.ping >/dev/null 2>&1
PING
cat >"$WORK/flip.sh" <<FLIP
#!/bin/sh
if grep -q '^  ghcr.io: ghcr-proxy\$' "$CTL/vars.yml"; then
  sed -i 's/^  ghcr.io: ghcr-proxy\$/  ghcr.io: ghcr-cache/' "$CTL/vars.yml"
else
  sed -i 's/^  ghcr.io: ghcr-cache\$/  ghcr.io: ghcr-proxy/' "$CTL/vars.yml"
fi
FLIP
chmod +x "$WORK/play.sh" "$WORK/ping.sh" "$WORK/flip.sh"

before=$(total_starts)
hyperfine -N --runs "$runs" --export-json "$WORK/noop.json" "$WORK/play.sh" >/dev/null
noop_restarts=$(($(total_starts) - before))
before=$(total_starts)
hyperfine -N --runs "$runs" --prepare "$WORK/flip.sh" --export-json "$WORK/change.json" "$WORK/play.sh" >/dev/null
change_restarts=$(($(total_starts) - before))
hyperfine -N --warmup 3 --runs 20 --export-json "$WORK/true.json" /bin/true >/dev/null
hyperfine -N --runs "$runs" --export-json "$WORK/ping.json" "$WORK/ping.sh" >/dev/null

fmt() {  # fmt FILE: mean ± stddev (min … max) in seconds
  jq -r '.results[0] | "\(.mean*1000|round/1000) s ± \(.stddev*1000|round/1000) (min \(.min*1000|round/1000), max \(.max*1000|round/1000))"' "$1"
}
echo "ansible-core $(ansible-playbook --version | sed -n '1s/.*core \([0-9.]*\).*/\1/p'), 5 nodes over ssh, $runs runs each:"
echo "  no-op run:          $(fmt "$WORK/noop.json"); k3s restarts: $noop_restarts"
echo "  one-mirror change:  $(fmt "$WORK/change.json"); k3s restarts: $change_restarts ($((change_restarts / runs)) per run, 5 nodes)"
echo "  ansible -m ping:    $(fmt "$WORK/ping.json")"
echo "  /bin/true:          $(jq -r '.results[0].mean*1e6|round' "$WORK/true.json") µs"
