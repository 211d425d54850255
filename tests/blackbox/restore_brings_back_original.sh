#!/usr/bin/env bash
# restore puts back the registries.yaml the node had before the agent, byte for byte, removes
# the agent's CA from the trust store and forgets the state; on a node that had no file, it
# removes the file again.
source "$TESTLIB"
setup_node
mkdir -p "$(dirname "$REG")"
cat > "$REG" <<'YAML'
# hand-written by the operator
mirrors:
  docker.io:
    endpoint: ["https://mirror.gcr.io"]   # old mirror
configs:
  registry.internal:5000:
    tls: {insecure_skip_verify: true}
YAML
chmod 644 "$REG"
cp -p "$REG" "$WORK/original.yaml"

agent apply
expect_rc 0
cmp -s "$REG" "$WORK/original.yaml" && fail "apply did not change registries.yaml"
grep -q 'registry.internal:5000' "$REG" || fail "apply dropped the node's own entry"
grep -qF "$(sed -n 2p "$WORK/harbor.pem")" "$BUNDLE" || fail "CA not in the bundle after apply"

agent restore --output json
expect_rc 0
[ "$(jq -r .changed <<<"$OUT")" = true ] || fail "restore says nothing changed: $OUT"
cmp "$REG" "$WORK/original.yaml" || fail "registries.yaml is not the original byte for byte"
[ ! -e "$CA_INSTALLED" ] || fail "the agent's CA file is still installed"
grep -qF "$(sed -n 2p "$WORK/harbor.pem")" "$BUNDLE" && fail "the CA is still in the bundle"
[ ! -e "$STATE" ] || fail "the state file is still there"
[ ! -e "$ROOT/var/lib/k3s-mirror-agent/registries.yaml.orig" ] || fail "the backup is still there"
[ "$(grep -c 'BEGIN CERTIFICATE' "$BUNDLE")" -eq 1 ] || fail "the bundle is not back to the distribution CA alone"

agent restore
expect_rc 0
grep -q "nothing to restore" <<<"$OUT" || fail "second restore does not say nothing to restore"

# A node without a registries.yaml gets none back.
rm "$REG"
agent apply
expect_rc 0
[ -f "$REG" ] || fail "apply did not write registries.yaml"
agent restore
expect_rc 0
[ ! -e "$REG" ] || fail "restore left a registries.yaml on a node that had none"
pass "restore brings back the node's own files"
