#!/usr/bin/env bash
# An invalid config exits 2, names file, line and key, and leaves every byte of the root as it
# was, on a node already applied and on a fresh one.
source "$TESTLIB"
setup_node
agent apply
expect_rc 0
good=$(cat "$CONF/config.yaml")

check_invalid() {  # check_invalid EXPECTED-MESSAGE-PART; config.yaml already broken
  local before
  before=$(snapshot)
  agent apply --output json
  expect_rc 2
  grep -qF -- "$1" <<<"$ERR" || fail "stderr does not say '$1': $ERR"
  [ "$(jq -r .error <<<"$OUT")" != null ] || fail "JSON has no error: $OUT"
  [ "$(jq -r .changed <<<"$OUT")" = false ] || fail "JSON says changed: $OUT"
  [ "$(snapshot)" = "$before" ] || fail "the root changed for '$1'"
}

printf '%s\nextra_key: 1\n' "$good" > "$CONF/config.yaml"
check_invalid "$CONF/config.yaml:8: extra_key: unknown key"

sed 's|https://harbor.home.lab|harbor.home.lab|' <<<"$good" > "$CONF/config.yaml"
check_invalid "$CONF/config.yaml:2: registry.url: must start with https:// or http://"

sed 's|docker.io: dockerhub-proxy|docker.io: Docker_Hub|' <<<"$good" > "$CONF/config.yaml"
check_invalid "$CONF/config.yaml:5: mirrors.docker.io: project \"Docker_Hub\""

printf 'mirrors:\n  ghcr.io: other-proxy\n' > "$CONF/config.d.tmp"
mkdir -p "$CONF/config.d" && mv "$CONF/config.d.tmp" "$CONF/config.d/50-more.yaml"
printf '%s\n' "$good" > "$CONF/config.yaml"
check_invalid "$CONF/config.d/50-more.yaml:2: mirrors.ghcr.io: already set at $CONF/config.yaml:6"
rm -r "$CONF/config.d"

# A fresh node: nothing at all is created.
rm -rf "$ROOT"
make_root
printf 'registry:\n  url: https://harbor.home.lab\n  verify: yes\nmirrors: {docker.io: p}\n' \
  > "$CONF/config.yaml"
check_invalid "$CONF/config.yaml:3: registry.verify: unknown key"
[ ! -e "$ROOT/var" ] || fail "an invalid config created $ROOT/var"
pass "invalid configs exit 2, name file:line: key, and touch nothing"
