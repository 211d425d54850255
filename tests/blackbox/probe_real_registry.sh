#!/usr/bin/env bash
# check --probe against a real registry (docker-registry behind nginx with TLS from a test CA):
# up with the right CA (HTTP 200 from /v2/, days until the cache certificate expires right),
# down with exit 5 and a message about the certificate when the CA is wrong, down with exit 5
# when the cache is not running. Never changes a file.
source "$TESTLIB"
source "$(dirname "$TESTLIB")/registry-lib.sh"
setup_node
start_registry
make_server_cert harbor localhost 3     # a cache certificate that expires soon
start_tls_front "$WORK/localhost.crt" "$WORK/localhost.key"
sed -i "s|url: https://harbor.home.lab|url: https://localhost:$TLS_PORT|" "$CONF/config.yaml"
agent check --probe --output json
expect_rc 0
[ "$(jq -r .probe.up <<<"$OUT")" = true ] || fail "cache not up: $OUT"
[ "$(jq -r .probe.http_status <<<"$OUT")" = 200 ] || fail "not HTTP 200: $OUT"
days=$(jq -r .probe.certificate_days_left <<<"$OUT")
[ "$days" -eq 2 ] || [ "$days" -eq 3 ] || fail "certificate_days_left $days, want 2 or 3 (-days 3)"
agent check --probe
expect_rc 0
grep -q "cache up: https://localhost:$TLS_PORT/v2/ answered HTTP 200" <<<"$OUT" || fail "text: $OUT"

# Another CA than the one that signed the cache's certificate.
make_ca other
cp "$WORK/other.pem" "$CONF/harbor-ca.pem"
agent check --probe --output json
expect_rc 5
[ "$(jq -r .probe.up <<<"$OUT")" = false ] || fail "up with the wrong CA: $OUT"
grep -q "certificate verify failed" <<<"$(jq -r .probe.error <<<"$OUT")" ||
  fail "the error does not say certificate: $OUT"
cp "$WORK/harbor.pem" "$CONF/harbor-ca.pem"

# The host name is checked: the certificate is for localhost, not for 127.0.0.1.
sed -i "s|url: https://localhost:|url: https://127.0.0.1:|" "$CONF/config.yaml"
agent check --probe
expect_rc 5
grep -qi "certificate verify failed" <<<"$OUT$ERR" || fail "an IP not in the certificate passed: $OUT"
sed -i "s|url: https://127.0.0.1:|url: https://localhost:|" "$CONF/config.yaml"

stop_tls_front
agent check --probe --output json
expect_rc 5
grep -q "Connection refused" <<<"$(jq -r .probe.error <<<"$OUT")" || fail "stopped cache: $OUT"
# The test edits the config and CA between checks; what check must never create is the agent's.
for made in "$REG" "$ROOT/var/lib/k3s-mirror-agent" "$ROOT/run" "$ROOT/usr/local/share/ca-certificates"; do
  [ ! -e "$made" ] || fail "check --probe created $made"
done
pass "check --probe: up with the right CA, down (exit 5) with a wrong CA, a wrong name, or no cache"
