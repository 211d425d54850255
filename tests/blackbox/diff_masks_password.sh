#!/usr/bin/env bash
# diff shows what apply would change as a unified diff, exits 3 while changes are pending and
# 0 after apply, and never prints the registry password; render masks it unless asked.
source "$TESTLIB"
setup_node
password='Sup3r-s3cret/pw'
printf '%s\n' "$password" > "$CONF/registry-password"
chmod 600 "$CONF/registry-password"
sed -i 's|^  ca_file: .*|&\n  auth:\n    username: robot$k3s\n    password_file: /etc/k3s-mirror-agent/registry-password|' \
  "$CONF/config.yaml"

agent diff
expect_rc 3
grep -q '^+++ b/etc/rancher/k3s/registries.yaml' <<<"$OUT" || fail "no diff of registries.yaml: $OUT"
grep -q '^+      password: "\*\*\*\*\*\*\*\*"' <<<"$OUT" || fail "password line not masked: $OUT"
grep -qF "$password" <<<"$OUT$ERR" && fail "diff printed the password"
[ ! -e "$REG" ] || fail "diff wrote registries.yaml"

agent render
expect_rc 0
grep -qF "$password" <<<"$OUT" && fail "render printed the password without --show-secrets"
agent render --show-secrets
grep -qF "password: \"$password\"" <<<"$OUT" || fail "render --show-secrets lacks the password"

agent apply -v
expect_rc 0
grep -qF "password: \"$password\"" "$REG" || fail "registries.yaml lacks the password"
grep -qF "$password" <<<"$OUT$ERR" && fail "apply printed the password"
[ "$(mode_of "$REG")" = 600 ] || fail "registries.yaml with a password is not 0600"

agent diff
expect_rc 0
[ -z "$OUT" ] || fail "diff after apply is not empty: $OUT"

# A password change shows as a masked change, old and new value both hidden.
printf 'another-pw\n' > "$CONF/registry-password"
agent diff --output json
expect_rc 3
[ "$(jq -r .changed <<<"$OUT")" = true ] || fail "JSON diff does not say changed"
grep -qF -e "$password" -e another-pw <<<"$OUT" && fail "diff printed a password: $OUT"
grep -qF "# /etc/rancher/k3s/registries.yaml: a secret changed (masked)" <<<"$(jq -r .diff <<<"$OUT")" ||
  fail "the diff does not say a secret changed: $OUT"
pass "diff and render mask the password"
