#!/usr/bin/env bash
# Scenario 7: the daemon's cache probe against a real registry — Debian's docker-registry behind
# nginx with TLS from the test CA, on the host's loopback, which the node shares. Up with the
# right CA (days until the cache's 3-day certificate expires right), down with a wrong CA (the
# error says certificate), down when the cache stops; reported in status.json, STATUS= and the
# Prometheus textfile, and never "fixed" by touching the node's files.
source "$NODE_DIR/lib.sh"
TESTLIB=$NODE_DIR/../blackbox/lib.sh  # registry-lib.sh lives beside the black-box tests
source "$NODE_DIR/../blackbox/registry-lib.sh"

start_node "$ROLE"
start_registry
make_server_cert harbor localhost 3
start_tls_front "$WORK/localhost.crt" "$WORK/localhost.key"
url=https://localhost:$TLS_PORT
sed -i "s|url: https://harbor.home.lab|url: $url|" "$NODE/etc/k3s-mirror-agent/config.yaml"
prom=/var/lib/prometheus/node-exporter/k3s_mirror_agent.prom
# node_exporter's textfile directory, root:root 0755 as Debian's prometheus-node-exporter ships
# it. It must exist before the daemon starts: the unit's sandbox makes it writable only then.
mkdir -p "$NODE/var/lib/prometheus/node-exporter"
daemon_settings "debounce: 500ms" "splay: 0s" "probe_interval: 1s" "metrics_textfile: $prom"
start_daemon

wait_for "the cache reported up" 20 djson_is .cache.up true
[ "$(djson .cache.http_status)" = 200 ] || fail "not HTTP 200: $(daemon_status)"
days=$(djson .cache.certificate_days_left)
[ "$days" -eq 2 ] || [ "$days" -eq 3 ] || fail "certificate_days_left $days, want 2 or 3 (-days 3)"
status_text | grep -q "; cache up ([0-9]* ms, certificate expires in $days days)" ||
  fail "STATUS= does not show the cache: $(status_text)"
grep -qx 'k3s_mirror_agent_cache_up 1' "$NODE$prom" || fail "metrics: $(cat "$NODE$prom")"
grep -qx "k3s_mirror_agent_cache_certificate_days_left $days" "$NODE$prom" || fail "metrics days"
[ "$(stat -c %a "$NODE$prom")" = 644 ] || fail "the textfile is not 0644"
grep -v '^#' "$NODE$prom" | grep -qv '^k3s_mirror_agent_' && fail "a metric without the prefix"

# Another CA in the config: applied (it is the config), and the probe now fails on trust.
make_ca other
cp "$NODE/etc/k3s-mirror-agent/harbor-ca.pem" "$WORK/right-ca.pem"
cp "$WORK/other.pem" "$NODE/etc/k3s-mirror-agent/harbor-ca.pem"
wait_for "the cache reported down with the wrong CA" 20 djson_is .cache.up false
grep -q "certificate verify failed" <<<"$(djson .cache.error)" ||
  fail "the error does not say certificate: $(djson .cache.error)"
grep -qx 'k3s_mirror_agent_cache_up 0' "$NODE$prom" || fail "metrics after down: $(cat "$NODE$prom")"
status_text | grep -q "; cache down: .*certificate verify failed" || fail "STATUS=: $(status_text)"

cp "$WORK/right-ca.pem" "$NODE/etc/k3s-mirror-agent/harbor-ca.pem"
wait_for "the cache up again with the right CA" 20 djson_is .cache.up true
wait_applies 3
before=$(snapshot)
count=$(starts)
stop_tls_front
wait_for "the stopped cache reported down" 20 djson_is .cache.up false
grep -q "Connection refused" <<<"$(djson .cache.error)" || fail "stopped: $(djson .cache.error)"
daemon_journal | grep "cache $url is down: .*Connection refused" >/dev/null || fail "the journal is silent"
# Two more probes (1 s apart) find it down, and the daemon is idle: had a down cache made it
# change something, it would have by now.
checked=$(djson .cache.checked)
wait_for "a second probe of the stopped cache" 20 eval '! djson_is .cache.checked "$checked"'
checked=$(djson .cache.checked)
wait_for "a third probe of the stopped cache" 20 eval '! djson_is .cache.checked "$checked"'
[ "$(djson .cache.up)" = false ] && daemon_idle || fail "after the probes: $(daemon_status)"
[ "$(snapshot)" = "$before" ] && [ "$(starts)" -eq "$count" ] ||
  fail "a down cache changed the node or restarted k3s"
pass "probe: up with days left, down with a wrong CA (certificate), down when stopped; metrics"
