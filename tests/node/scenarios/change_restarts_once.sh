#!/usr/bin/env bash
# Scenario 3 (server node, or agent node with ROLE=agent): changing one mirror gives exactly one restart; changing only the CA
# gives exactly one restart too, and the new CA replaces the old one in the node's bundle.
source "$NODE_DIR/lib.sh"
start_node "$ROLE"
apply
expect_rc 0

count=$(starts)
write_config hub-cache
apply
expect_rc 0
[ "$(json .restarted)" = $UNIT ] || fail "a mirror change did not restart: $OUT"
[ "$(starts)" -eq $((count + 1)) ] || fail "a mirror change gave $(( $(starts) - count )) restarts"
grep -q '/v2/hub-cache"' "$NODE/etc/rancher/k3s/registries.yaml" || fail "new project not written"
jq -e '.actions | map(.target) | index("update-ca-certificates") == null' <<<"$OUT" >/dev/null ||
  fail "a mirror change ran update-ca-certificates: $OUT"

count=$(starts)
make_ca rotated
cp "$WORK/rotated.pem" "$NODE/etc/k3s-mirror-agent/harbor-ca.pem"
apply
expect_rc 0
[ "$(json .restarted)" = $UNIT ] || fail "a CA change did not restart: $OUT"
[ "$(starts)" -eq $((count + 1)) ] || fail "a CA change gave $(( $(starts) - count )) restarts"
bundle=$NODE/etc/ssl/certs/ca-certificates.crt
grep -qF "$(sed -n 2p "$WORK/rotated.pem")" "$bundle" || fail "the new CA is not in the bundle"
grep -qF "$(sed -n 2p "$WORK/harbor.pem")" "$bundle" && fail "the old CA is still in the bundle"
pass "one mirror change: one restart; CA change alone: one restart"
