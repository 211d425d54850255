#!/usr/bin/env bash
# Scenario 4, server node: the stand-in k3s refuses the new registries.yaml (it never becomes
# ready, like k3s with a file it cannot use). The agent gives up at restart_timeout, puts the
# old files back byte for byte, restarts k3s on them, and exits 1 with "rolled_back": true.
source "$NODE_DIR/lib.sh"
RESTART_TIMEOUT=8s start_node server
apply
expect_rc 0
reg=$NODE/etc/rancher/k3s/registries.yaml
cp -p "$reg" "$WORK/registries.before"
cp -p "$NODE/usr/local/share/ca-certificates/k3s-mirror-agent/harbor.home.lab.crt" "$WORK/ca.before"

mkdir -p "$NODE/etc/k3s-standin"
echo "broken-proxy" > "$NODE/etc/k3s-standin/refuse"
RESTART_TIMEOUT=8s write_config broken-proxy
apply
expect_rc 1
[ "$(json .rolled_back)" = true ] || fail "not rolled back: $OUT"
[ "$(json .changed)" = false ] || fail "changed after a rollback: $OUT"
grep -q "k3s.service" <<<"$(json .error)" || fail "the error does not name the unit: $OUT"
grep -q "active again" <<<"$(json .error)" || fail "the error does not say k3s is back: $OUT"
cmp "$reg" "$WORK/registries.before" || fail "registries.yaml is not the old file byte for byte"
cmp "$NODE/usr/local/share/ca-certificates/k3s-mirror-agent/harbor.home.lab.crt" "$WORK/ca.before" ||
  fail "the CA is not the old one"
[ "$(unit_state k3s.service)" = active ] || fail "k3s.service is $(unit_state k3s.service)"
hosts=$NODE/var/lib/rancher/k3s/agent/etc/containerd/certs.d/docker.io/hosts.toml
grep -q '/v2/dockerhub-proxy"' "$hosts" || fail "k3s is not running on the old file: $(cat "$hosts")"
pass "a refused file is rolled back byte for byte and k3s is active on the old one"
