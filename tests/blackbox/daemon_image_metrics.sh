#!/usr/bin/env bash
# The daemon's per-image probes on a scratch root (no systemd needed for what is checked here:
# the probe, status.json with the STATUS= line in it, and the Prometheus textfile), against a
# Harbor of Debian's parts (registry-lib.sh start_harbor): one image resolves and one does not
# yet; once it is pushed, a later probe says so. Between probes the daemon keeps its connection
# (one nginx connection serves every probe) rather than a new TLS handshake each interval.
source "$TESTLIB"
source "$(dirname "$TESTLIB")/registry-lib.sh"
setup_node
start_harbor
push_image dockerhub-proxy/library/busybox:1.36 "busybox 1.36"
want=$(registry_digest dockerhub-proxy/library/busybox:1.36)
PROM=$ROOT/var/lib/node-exporter/agent.prom
{ harbor_config; cat <<YAML; } > "$CONF/config.yaml"
verify:
  images: [docker.io/library/busybox:1.36, "docker.io/library/busybox:1.37"]
daemon:
  probe_interval: 1s
  metrics_textfile: /var/lib/node-exporter/agent.prom
YAML
start_scratch_daemon
metric() { grep -qxF "$1" "$PROM"; }
wait_for "the first probe" sj_is '.cache.images | length' 2
[ "$(sj .cache.up)" = true ] || fail "cache: $(cat "$STATUS")"
[ "$(sj '.cache.images[0].image')" = docker.io/library/busybox:1.36 ] &&
  [ "$(sj '.cache.images[0].up')" = true ] && [ "$(sj '.cache.images[0].digest')" = "$want" ] ||
  fail "image 0: $(cat "$STATUS")"
[ "$(sj '.cache.images[1].up')" = false ] && grep -q 'busybox:1.37 at .*MANIFEST_UNKNOWN' <<<"$(sj '.cache.images[1].error')" ||
  fail "image 1: $(cat "$STATUS")"
grep -q '; cache up (.*), images 1/2 resolve: resolve docker.io/library/busybox:1.37 at ' <<<"$(sj .status)" ||
  fail "STATUS= line: $(sj .status)"
wait_for "the image metrics" metric 'k3s_mirror_agent_image_up{image="docker.io/library/busybox:1.37"} 0'
metric 'k3s_mirror_agent_image_up{image="docker.io/library/busybox:1.36"} 1' || fail "metrics: $(cat "$PROM")"
grep -q '^k3s_mirror_agent_image_latency_seconds{image="docker.io/library/busybox:1.36"} [0-9.e-]*$' "$PROM" ||
  fail "latency metric: $(cat "$PROM")"
[ "$(grep -c '^# TYPE k3s_mirror_agent_image_up gauge$' "$PROM")" = 1 ] || fail "TYPE lines: $(cat "$PROM")"

# The missing tag appears upstream: a later probe sees it.
push_image dockerhub-proxy/library/busybox:1.37 "busybox 1.37"
wait_for "the pushed image resolves" metric 'k3s_mirror_agent_image_up{image="docker.io/library/busybox:1.37"} 1'
grep -q 'images 2/2 resolve' <<<"$(sj .status)" || fail "STATUS= after the push: $(sj .status)"

# Every interval's probe so far came over one connection (nginx's $connection), i.e. the handle was kept.
probes=$(grep -c '"GET /v2/ HTTP/1.1" [0-9]* "k3s-mirror-agent/' "$WORK/nginx/access.log")
[ "$probes" -ge 2 ] || fail "only $probes probes"
# (The start apply's preflight has a client, and a connection, of its own: it asks no /v2/.)
connections=$(grep '"GET /v2/ HTTP/1.1" [0-9]* "k3s-mirror-agent/' "$WORK/nginx/access.log" | cut -d' ' -f1 | sort -u | wc -l)
[ "$connections" = 1 ] || fail "$probes probes used $connections connections: $(cat "$WORK/nginx/access.log")"
grep -q "$(cat "$WORK/robot-password")" "$STATUS" "$PROM" && fail "a secret in the status files"
# A clean stop (under the sanitizer build, also no leak from the client it kept).
kill -TERM $DAEMON
rc=0
wait $DAEMON || rc=$?
[ "$rc" -eq 0 ] || fail "SIGTERM: exit $rc: $(tail -5 "$WORK/daemon.err")"
pass "daemon: per-image probes in status.json, STATUS= and the textfile; a pushed image seen by a later probe; one connection"
