#!/usr/bin/env bash
# The example config the package installs (packaging/config.yaml): as shipped, every line a
# comment, it is "not configured yet" (check exits 2); with the leading "# " taken off its
# example block (from "# registry:" on) it passes check, so the example keeps up with the schema.
source "$TESTLIB"
EXAMPLE=$(dirname "${BASH_SOURCE[0]}")/../../packaging/config.yaml
[ -f "$EXAMPLE" ] || fail "no $EXAMPLE"
setup_node  # also puts a CA where the example's ca_file points
cp "$EXAMPLE" "$CONF/config.yaml"

for command in check render diff apply; do
  agent "$command" --config "$CONF/config.yaml"
  expect_rc 2
  grep -q "config.yaml: not configured yet" <<<"$ERR" || fail "$command on the example: $ERR"
done
[ ! -e "$REG" ] && [ ! -e "$STATE" ] || fail "the unconfigured example changed the node"

sed '/^# registry:/,$ s/^# //' "$EXAMPLE" >"$CONF/config.yaml"
cmp -s "$EXAMPLE" "$CONF/config.yaml" && fail "the example has no line starting \"# registry:\""
agent check --config "$CONF/config.yaml"
expect_rc 0
agent render --config "$CONF/config.yaml"
expect_rc 0
for upstream in docker.io ghcr.io quay.io; do
  grep -q "^  $upstream:" <<<"$OUT" || fail "the uncommented example does not mirror $upstream: $OUT"
done
pass "the shipped example is not configured as is, and valid uncommented"
