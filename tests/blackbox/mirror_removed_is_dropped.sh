#!/usr/bin/env bash
# A mirror removed from the config is removed from registries.yaml; entries the agent never
# wrote are kept; apply --dry-run reports pending changes with exit 3 and writes nothing.
source "$TESTLIB"
setup_node
mkdir -p "$(dirname "$REG")"
printf 'mirrors:\n  registry.internal:5000:\n    endpoint: ["http://registry.internal:5000"]\n' > "$REG"
agent apply
expect_rc 0
grep -q 'quay.io:' "$REG" || fail "quay.io not written"

sed -i '/quay.io: quay-proxy/d' "$CONF/config.yaml"
before=$(snapshot)
agent apply --dry-run --output json
expect_rc 3
[ "$(jq -r .dry_run <<<"$OUT")" = true ] || fail "dry run not reported: $OUT"
jq -e '.actions | map(.target) | index("/etc/rancher/k3s/registries.yaml") != null' <<<"$OUT" \
  >/dev/null || fail "dry run does not list registries.yaml: $OUT"
[ "$(snapshot)" = "$before" ] || fail "--dry-run changed the root"

agent apply --output json
expect_rc 0
[ "$(jq -r .restart_needed <<<"$OUT")" = true ] || fail "dropping a mirror needs a restart: $OUT"
grep -q 'quay.io:' "$REG" && fail "quay.io is still in registries.yaml"
grep -q 'docker.io:' "$REG" || fail "docker.io went missing"
grep -q '"registry.internal:5000":' "$REG" || fail "the node's own entry went missing"
# Only registries.yaml and the state changed; the CA was not reinstalled.
[ "$(update_ca_runs)" -eq 1 ] || fail "update-ca-certificates ran again for a mirror change"
pass "a removed mirror is dropped, the node's own entries stay"
