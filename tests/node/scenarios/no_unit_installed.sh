#!/usr/bin/env bash
# Scenario 6, a node without k3s: apply writes the files, exits 0, restarts nothing and says
# that k3s will read them at first start.
source "$NODE_DIR/lib.sh"
start_node none
apply
expect_rc 0
[ "$(json .changed)" = true ] || fail "files not written: $OUT"
[ "$(json .restarted)" = null ] || fail "restarted something: $OUT"
[ -f "$NODE/etc/rancher/k3s/registries.yaml" ] || fail "registries.yaml not written"
grep -q "first starts" <<<"$(json '.notes | join(" ")')" || fail "no note about first start: $OUT"
pass "no k3s unit: files written, nothing restarted, k3s reads them at first start"
