#!/usr/bin/env bash
# Scenario 4 (server node, or agent node with ROLE=agent): an apply changes the CA and a mirror,
# and the stand-in k3s refuses the new registries.yaml (it never becomes ready, like k3s with a
# file it cannot use). The agent gives up at restart_timeout, puts registries.yaml, the CA and
# the state back byte for byte, rebuilds the trust store (the new CA leaves the bundle), restarts
# k3s on the old files, and exits 1 with "rolled_back": true.
source "$NODE_DIR/lib.sh"
RESTART_TIMEOUT=8s start_node "$ROLE"
apply
expect_rc 0
reg=$NODE/etc/rancher/k3s/registries.yaml
cp -p "$reg" "$WORK/registries.before"
cp -p "$NODE/usr/local/share/ca-certificates/k3s-mirror-agent/harbor.home.lab.crt" "$WORK/ca.before"
cp -p "$NODE/var/lib/k3s-mirror-agent/state.json" "$WORK/state.before"
bundle=$NODE/etc/ssl/certs/ca-certificates.crt
make_ca rotated
cp "$WORK/rotated.pem" "$NODE/etc/k3s-mirror-agent/harbor-ca.pem"
touch "$WORK/before-failing-apply"

mkdir -p "$NODE/etc/k3s-standin"
echo "broken-proxy" > "$NODE/etc/k3s-standin/refuse"
RESTART_TIMEOUT=8s write_config broken-proxy
apply
expect_rc 1
[ "$(json .rolled_back)" = true ] || fail "not rolled back: $OUT"
[ "$(json .changed)" = false ] || fail "changed after a rollback: $OUT"
grep -q "$UNIT" <<<"$(json .error)" || fail "the error does not name the unit: $OUT"
grep -q "active again" <<<"$(json .error)" || fail "the error does not say k3s is back: $OUT"
cmp "$reg" "$WORK/registries.before" || fail "registries.yaml is not the old file byte for byte"
cmp "$NODE/usr/local/share/ca-certificates/k3s-mirror-agent/harbor.home.lab.crt" "$WORK/ca.before" ||
  fail "the CA is not the old one"
cmp "$NODE/var/lib/k3s-mirror-agent/state.json" "$WORK/state.before" || fail "the state is not the old one"
grep -qF "$(sed -n 2p "$WORK/harbor.pem")" "$bundle" || fail "the old CA is not in the bundle"
grep -qF "$(sed -n 2p "$WORK/rotated.pem")" "$bundle" && fail "the refused CA is still in the bundle"
[ "$(unit_state $UNIT)" = active ] || fail "$UNIT is $(unit_state $UNIT)"
hosts=$NODE/var/lib/rancher/k3s/agent/etc/containerd/certs.d/docker.io/hosts.toml
# The stand-in refuses before touching certs.d, so a hosts.toml newer than the failing apply
# was written by the start after the rollback — from the old file.
[ "$hosts" -nt "$WORK/before-failing-apply" ] || fail "k3s did not start again after the rollback"
grep -q '/v2/dockerhub-proxy"' "$hosts" || fail "k3s is not running on the old file: $(cat "$hosts")"
pass "a refused file is rolled back byte for byte and k3s is active on the old one"
