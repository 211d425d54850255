#!/usr/bin/env bash
# The restart-free apply on a booted node (server, or agent with ROLE=agent) whose stand-in k3s
# runs Debian's containerd from the certs.d it wrote with the model of k3s, pulling through a
# real pull-through cache (tests/node/cache-lib.sh): a mirror change, a CA rotation and a mirror
# removal reach containerd with zero k3s starts (the unit's InvocationID stays the same) and the
# next pull goes where the new files say (the access logs); the hosts.toml bytes equal
# `render --certs-d`, and a restart of the stand-in rewrites exactly the same bytes. An auth
# change, and a certs.d with an extra k3s-headed directory (the embedded registry's), restart
# k3s once, with the reason in the output. One booted node; scenarios in sequence, each PASS or
# FAIL by name.
NODE_EXTRA=containerd
source "${NODE_DIR:?NODE_DIR must name tests/node}/lib.sh"
source "$NODE_DIR/cache-lib.sh"

through_project() {
  served_by "$CACHE_LOG" "$1" "$2" || fail "$1 was not served by the cache's project $2"
  ! requested "$HUB_LOG" "$1" || fail "$1 was also fetched from Docker Hub"
}
through_hub() {
  served_by "$HUB_LOG" "$1" || fail "$1 was not served by Docker Hub"
  ! served_by "$CACHE_LOG" "$1" dockerhub-proxy && ! served_by "$CACHE_LOG" "$1" hub-cache ||
    fail "$1 was served by the cache too"
}
# One k3s start is one systemd invocation: equal IDs mean k3s was not started in between.
invocation() { in_node systemctl show -p InvocationID --value "$UNIT"; }
render_equals_certs_d() {
  in_node rm -rf /root/render
  in_node k3s-mirror-agent render --certs-d /root/render >"$WORK/render.out" 2>&1 ||
    fail "render --certs-d failed: $(cat "$WORK/render.out")"
  diff -r "$NODE/root/render" "$NODE$CERTS_D" >"$WORK/render.diff" 2>&1 ||
    fail "render --certs-d differs from certs.d: $(head -20 "$WORK/render.diff")"
}
certs_d_sums() { (cd "$NODE$CERTS_D" && find . -type f -exec sha256sum {} + | sort); }
expect_hot() {
  expect_rc 0
  [ "$(json .reload)" = hot ] || fail "not hot: $OUT"
  [ "$(json .restarted)" = null ] || fail "$UNIT was restarted: $OUT"
  [ "$(json .restart_needed)" = false ] || fail "restart_needed after a hot reload: $OUT"
  [ "$(invocation)" = "$1" ] || fail "k3s was started during a hot reload"
}

cache_node "$ROLE"
for img in first hot rotating rotated removed authed embedded daemonhot; do
  make_image "$img"
done

# No registries.yaml yet: an empty certs.d matches every k3s setting, which disagree on the new
# files, so the first apply restarts.
first_apply_restarts() {
  apply
  expect_rc 0
  [ "$(json .restarted)" = "$UNIT" ] || fail "the first apply did not restart $UNIT: $OUT"
  must_pull first
  through_project first dockerhub-proxy
}

mirror_change_is_hot_and_k3s_rewrites_the_same_bytes() {
  local before
  before=$(invocation)
  write_config hub-cache
  apply
  expect_hot "$before"
  jq -e '.notes | index("reloaded without restarting k3s (containerd reads hosts.toml at the next pull)")' \
    <<<"$OUT" >/dev/null || fail "no hot note: $OUT"
  must_pull hot
  through_project hot hub-cache
  grep -q '/v2/dockerhub-proxy/library/hot/' "$CACHE_LOG" && fail "hot went to the old project"
  render_equals_certs_d
  local sums
  sums=$(certs_d_sums)
  in_node systemctl restart "$UNIT"
  wait_state "$UNIT" active
  [ "$(certs_d_sums)" = "$sums" ] || fail "k3s's next start wrote other bytes than the hot apply"
  apply
  expect_rc 0
  [ "$(json .changed)" = false ] || fail "an apply after k3s's restart changed something: $OUT"
}

# The cache gets a certificate from a new CA: containerd cannot verify it (Docker Hub serves),
# then the CA file named by hosts.toml gets the new bytes, hot, and the next pull verifies.
ca_rotation_is_hot() {
  make_ca rotated
  server_cert rotated harbor.home.lab "$CACHE_IP"
  cache_down
  cache_up
  must_pull rotating
  through_hub rotating
  local before
  before=$(invocation)
  cp "$WORK/rotated.pem" "$NODE/etc/k3s-mirror-agent/harbor-ca.pem"
  apply
  expect_hot "$before"
  must_pull rotated
  through_project rotated hub-cache
}

mirror_removed_is_hot_and_falls_back() {
  local before
  before=$(invocation)
  write_config hub-cache
  sed -i '/^  docker.io:/d' "$NODE/etc/k3s-mirror-agent/config.yaml"
  apply
  expect_hot "$before"
  [ -e "$NODE$CERTS_D/docker.io" ] && fail "certs.d/docker.io is still there"
  must_pull removed
  through_hub removed
  write_config hub-cache
  apply
  expect_hot "$before"
}

auth_change_restarts_once() {
  local before
  before=$(invocation)
  printf 'p4ss-%s\n' "$RANDOM$RANDOM" >"$NODE/etc/k3s-mirror-agent/registry-password"
  chmod 600 "$NODE/etc/k3s-mirror-agent/registry-password"
  printf '  auth:\n    username: robot$k3s\n    password_file: /etc/k3s-mirror-agent/registry-password\n' \
    >"$WORK/auth.yaml"
  sed -i "/^  ca_file:/r $WORK/auth.yaml" "$NODE/etc/k3s-mirror-agent/config.yaml"
  apply
  expect_rc 0
  [ "$(json .restarted)" = "$UNIT" ] || fail "the auth change did not restart $UNIT: $OUT"
  [ "$(json .reload)" = restart ] || fail "reload is not restart: $OUT"
  jq -e '.notes | map(select(contains("configs.*.auth changed"))) | length == 1' <<<"$OUT" \
    >/dev/null || fail "the reason is not in the notes: $OUT"
  [ "$(invocation)" != "$before" ] || fail "k3s was not started"
  must_pull authed
  through_project authed hub-cache
}

embedded_registry_dir_restarts_once() {
  local dir=$NODE$CERTS_D/127.0.0.1:6443
  mkdir -p "$dir"
  printf '# File generated by k3s. DO NOT EDIT.\nserver = "https://127.0.0.1:6443/v2"\n[host]\n' \
    >"$dir/hosts.toml"
  sed -i 's/hub-cache/dockerhub-proxy/' "$NODE/etc/k3s-mirror-agent/config.yaml"
  local before
  before=$(invocation)
  apply
  expect_rc 0
  [ "$(json .restarted)" = "$UNIT" ] || fail "not restarted despite the embedded registry: $OUT"
  jq -e '.notes | map(select(contains("certs.d/127.0.0.1:6443 carries k3s'"'"'s header"))) | length == 1' \
    <<<"$OUT" >/dev/null || fail "the reason is not in the notes: $OUT"
  [ "$(invocation)" != "$before" ] || fail "k3s was not started"
  must_pull embedded
  through_project embedded dockerhub-proxy
}

# The daemon, as the hardened systemd service: a config edit is applied hot within the debounce
# — no splay (60 s here would show) and no k3s start — and counted as a hot reload.
daemon_applies_an_edit_hot() {
  daemon_settings "debounce: 500ms" "splay: 60s" "probe_interval: 0s"
  start_daemon
  local before applies t0
  before=$(invocation)
  applies=$(djson .applies)
  t0=$SECONDS
  sed -i 's/dockerhub-proxy/hub-cache/' "$NODE/etc/k3s-mirror-agent/config.yaml"
  wait_applies $((applies + 1)) 20
  wait_for "the edit reaching certs.d" 20 grep -q '/v2/hub-cache"' "$NODE$CERTS_D/docker.io/hosts.toml"
  echo "edit applied hot by the daemon after $((SECONDS - t0)) s (debounce 0.5 s; splay 60 s)"
  # A splay is logged ("waiting N s (splay) first"): a hot reload must not have taken one.
  daemon_journal | grep -q '(splay)' && fail "the daemon splayed before a hot reload: $(daemon_journal | grep splay)"
  [ "$(djson .last_apply.reload)" = hot ] || fail "the daemon's apply was not hot: $(daemon_status)"
  [ "$(djson .reloads.hot)" = 1 ] || fail "status.json does not count the hot reload: $(daemon_status)"
  [ "$(invocation)" = "$before" ] || fail "k3s was started by the daemon's hot reload"
  must_pull daemonhot
  through_project daemonhot hub-cache
  in_node systemctl stop k3s-mirror-agent.service
}

for s in ${SCENARIOS:-first_apply_restarts mirror_change_is_hot_and_k3s_rewrites_the_same_bytes \
  ca_rotation_is_hot mirror_removed_is_hot_and_falls_back auth_change_restarts_once \
  embedded_registry_dir_restarts_once daemon_applies_an_edit_hot}; do
  scenario "$s"
done
[ ${#FAILED[@]} -eq 0 ] || fail "${#FAILED[@]} scenario(s) failed: ${FAILED[*]}"
pass "changes reached containerd without a k3s restart where they can, with one where not ($ROLE node)"
