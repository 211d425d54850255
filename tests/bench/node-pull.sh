#!/usr/bin/env bash
# Benchmark, not a test: on a booted node whose stand-in k3s runs Debian's containerd, pulling
# through the real cache of tests/node/cache-lib.sh, the time from the start of `apply` for a
# mirror change (docker.io's project flips between dockerhub-proxy and hub-cache) to the end of
# the first successful pull through the new project, as the cache's access log shows it, for
# both paths: with `k3s.reload: restart` (a k3s restart per change) and the restart-free apply
# (`k3s.reload: auto`: containerd's certs.d rewritten, no restart). Printed beside:
#   - apply alone and the pull alone, from the same runs;
#   - k3s starts per change (the stand-in counts its starts);
#   - /bin/true entered into the node the same way (nsenter), the floor of every figure.
# Then the same for the daemon: from the write of config.yaml to the first pull through the new
# project, both paths.
# Each round pulls an image of its own, so every pull fetches its manifest and blobs through the
# cache (nothing is in containerd's store yet). The apply includes update-ca-certificates only at
# the first apply (not timed); the restart path's apply includes the restart's settle time (2 s:
# the unit must stay active).
# Usage: tests/bench/node-pull.sh [ROUNDS]   (after a build in build/release; default 5 rounds)
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-5}
# shellcheck source=tests/bench/node-env.sh
source tests/bench/node-env.sh
NODE_EXTRA=containerd
source tests/node/lib.sh
source tests/node/cache-lib.sh
cache_node server
apply
expect_rc 0

now_ms() { echo $(($(date +%s%N) / 1000000)); }
stats() {  # stats NAME VALUES...: median, min and max in ms
  local name=$1
  shift
  printf '%s\n' "$@" | sort -n | awk -v name="$name" '{v[NR] = $1}
    END {m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
         printf "%s: median %d ms, min %d ms, max %d ms over %d runs\n", name, m, v[1], v[NR], NR}'
}
project=dockerhub-proxy
i=0
# first_pull: round $i's image pulled through $project, timed. The first pull that succeeds:
# once the change is applied containerd reads the new files, so this is one try unless something
# is wrong (then it is retried for 30 s). Sets t2 (pull done), then t3..t4 around /bin/true
# entered the same way; the caller's locals (dynamic scope).
first_pull() {
  local deadline=$((SECONDS + 30))
  until pull "bench$i"; do
    [ $SECONDS -lt $deadline ] || fail "no pull of bench$i succeeded: $(tail -3 "$WORK/pull-bench$i.log")"
  done
  t2=$(now_ms)
  served_by "$CACHE_LOG" "bench$i" $project || fail "bench$i was not served by the project $project"
  ! requested "$HUB_LOG" "bench$i" || fail "bench$i went to Docker Hub"
  t3=$(now_ms)
  in_node /bin/true
  t4=$(now_ms)
}
# bench MODE: ROUNDS mirror changes with k3s.reload: MODE, the figures printed.
bench() {
  mkdir -p "$NODE/etc/k3s-mirror-agent/config.d"
  printf 'k3s:\n  reload: %s\n' "$1" >"$NODE/etc/k3s-mirror-agent/config.d/40-reload.yaml"
  local total=() apply_ms=() pull_ms=() true_ms=() before t0 t1 t2 t3 t4 deadline
  before=$(starts)
  for _ in $(seq "$rounds"); do
    i=$((i + 1))
    if [ $project = dockerhub-proxy ]; then project=hub-cache; else project=dockerhub-proxy; fi
    write_config $project
    t0=$(now_ms)
    in_node k3s-mirror-agent apply -q >"$WORK/apply-$i.log" 2>&1 || fail "apply $i failed: $(cat "$WORK/apply-$i.log")"
    t1=$(now_ms)
    first_pull
    total+=($((t2 - t0))) apply_ms+=($((t1 - t0))) pull_ms+=($((t2 - t1))) true_ms+=($((t4 - t3)))
  done
  echo "mirror change, k3s.reload: $1, $rounds rounds on a booted server node (nsenter into the node):"
  stats "apply start -> first pull through the new project done" "${total[@]}"
  stats "  of which apply" "${apply_ms[@]}"
  stats "  of which the pull (manifest and blobs through the cache)" "${pull_ms[@]}"
  stats "/bin/true entered the same way" "${true_ms[@]}"
  echo "k3s starts per change: $(($(starts) - before)) in $rounds changes"
}
# bench_daemon MODE: the same changes made by writing config.yaml while the daemon (the hardened
# systemd service) runs with k3s.reload: MODE, debounce 500 ms and no splay: from the write to
# the end of the first pull through the new project. The pull starts once status.json shows the
# daemon's apply finished (polled every 50 ms through nsenter), so a pull never goes through the
# old project and leaves the new one's manifest in containerd's store.
bench_daemon() {
  printf 'k3s:\n  reload: %s\n' "$1" >"$NODE/etc/k3s-mirror-agent/config.d/40-reload.yaml"
  daemon_settings "debounce: 500ms" "splay: 0s" "probe_interval: 0s"
  start_daemon
  local total=() applied_ms=() true_ms=() before applies t0 t1 t2 t3 t4 deadline
  before=$(starts)
  for _ in $(seq "$rounds"); do
    i=$((i + 1))
    if [ $project = dockerhub-proxy ]; then project=hub-cache; else project=dockerhub-proxy; fi
    applies=$(djson .applies)
    t0=$(now_ms)
    write_config $project
    deadline=$((SECONDS + 60))
    until applies_at_least $((applies + 1)); do
      [ $SECONDS -lt $deadline ] || fail "the daemon did not apply change $i: $(daemon_status)"
      sleep 0.05
    done
    t1=$(now_ms)
    [ "$(djson .last_apply.error)" = null ] || fail "the daemon's apply $i failed: $(daemon_status)"
    first_pull
    total+=($((t2 - t0))) applied_ms+=($((t1 - t0))) true_ms+=($((t4 - t3)))
  done
  in_node systemctl stop k3s-mirror-agent.service
  echo "mirror change by a config write, the daemon with k3s.reload: $1 (debounce 500 ms, no splay), $rounds rounds:"
  stats "config write -> first pull through the new project done" "${total[@]}"
  stats "  of which until status.json shows the apply done (debounce included)" "${applied_ms[@]}"
  stats "/bin/true entered the same way" "${true_ms[@]}"
  echo "k3s starts per change: $(($(starts) - before)) in $rounds changes"
}
for i0 in $(seq $((4 * rounds))); do make_image "bench$i0"; done
bench restart
bench auto
bench_daemon restart
bench_daemon auto
