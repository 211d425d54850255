#!/usr/bin/env bash
# The first apply on a node writes registries.yaml (0600) and the CA (0644), and the real
# update-ca-certificates puts the CA into the trust bundle inside the root, where the real
# openssl then trusts a server certificate the CA signed.
source "$TESTLIB"
setup_node

agent apply --output json
expect_rc 0
[ "$(jq -r .changed <<<"$OUT")" = true ] || fail "changed is not true: $OUT"
[ "$(jq -r .restart_needed <<<"$OUT")" = true ] || fail "restart_needed is not true: $OUT"
[ "$(jq -r .error <<<"$OUT")" = null ] || fail "error is set: $OUT"
jq -e '.actions | map(.action + " " + .target) | index("run update-ca-certificates") != null' \
  <<<"$OUT" >/dev/null || fail "no update-ca-certificates action: $OUT"

[ -f "$REG" ] || fail "registries.yaml not written"
[ "$(mode_of "$REG")" = 600 ] || fail "registries.yaml mode $(mode_of "$REG"), want 600"
grep -q '"https://harbor.home.lab/v2/dockerhub-proxy"' "$REG" || fail "docker.io endpoint missing"
grep -q "ca_file: \"/usr/local/share/ca-certificates/k3s-mirror-agent/harbor.home.lab.crt\"" \
  "$REG" || fail "ca_file is not the node path of the installed CA: $(cat "$REG")"
grep -q "$ROOT" "$REG" && fail "registries.yaml mentions the scratch root; it must use node paths"

[ "$(mode_of "$CA_INSTALLED")" = 644 ] || fail "CA mode $(mode_of "$CA_INSTALLED"), want 644"
cmp -s <(openssl x509 -in "$CA_INSTALLED" -outform DER) <(openssl x509 -in "$WORK/harbor.pem" -outform DER) \
  || fail "installed CA is not the configured certificate"
[ "$(mode_of "$STATE")" = 600 ] || fail "state mode $(mode_of "$STATE"), want 600"
[ "$(update_ca_runs)" -eq 1 ] || fail "update-ca-certificates ran $(update_ca_runs) times, want 1"

# The bundle k3s's containerd reads now trusts the cache.
grep -qF "$(sed -n 2p "$WORK/harbor.pem")" "$BUNDLE" || fail "CA not in $BUNDLE"
make_server_cert harbor harbor.home.lab
openssl verify -CAfile "$BUNDLE" "$WORK/harbor.home.lab.crt" >/dev/null \
  || fail "openssl does not trust the cache's server certificate through the bundle"
pass "first apply wrote registries.yaml and the CA, and the trust bundle trusts the cache"
