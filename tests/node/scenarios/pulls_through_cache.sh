#!/usr/bin/env bash
# Pulls, not files (server node, or agent node with ROLE=agent): the node's own containerd,
# run by the stand-in k3s from the certs.d it wrote with the model of k3s, pulls through a real
# pull-through cache (tests/node/cache-lib.sh) after each apply, and the access logs of the
# cache's projects and of "Docker Hub" say which endpoint served each pull. One booted node for
# every scenario (they build on each other); each prints PASS or FAIL with its name, and the
# script fails when one did.
#
# Every pull is what the CRI plugin does with the same hosts.toml code:
#   ctr --address /run/k3s/containerd/containerd.sock -n k8s.io images pull \
#       --hosts-dir <data-dir>/agent/etc/containerd/certs.d docker.io/library/<img>:1
# Each scenario pulls an image of its own, so one log line belongs to one scenario.
NODE_EXTRA=containerd  # the node's root filesystem with Debian's containerd (a cached variant)
# ${NODE_DIR:?}: without ctest's environment, stop here rather than write to the host's paths.
source "${NODE_DIR:?NODE_DIR must name tests/node}/lib.sh"
source "$NODE_DIR/cache-lib.sh"

# through_project NAME PROJECT: the cache's project served NAME and Docker Hub saw nothing of it.
through_project() {
  served_by "$CACHE_LOG" "$1" "$2" ||
    fail "$1 was not served by the cache's project $2; cache log: $(grep -c . "$CACHE_LOG" 2>/dev/null) lines, $(grep "/library/$1/" "$CACHE_LOG" | head -3)"
  ! requested "$HUB_LOG" "$1" || fail "$1 was also fetched from Docker Hub: $(grep "/library/$1/" "$HUB_LOG" | head -3)"
}
# through_hub NAME: Docker Hub (the default endpoint) served NAME, and no project did.
through_hub() {
  served_by "$HUB_LOG" "$1" || fail "$1 was not served by Docker Hub: $(grep "/library/$1/" "$HUB_LOG" | head -3)"
  ! served_by "$CACHE_LOG" "$1" dockerhub-proxy && ! served_by "$CACHE_LOG" "$1" hub-cache ||
    fail "$1 was served by the cache too"
}
# restart_k3s: a restart by hand (the stand-in reads its environment file again).
restart_k3s() {
  in_node systemctl restart "$UNIT" || fail "systemctl restart $UNIT failed"
  wait_state "$UNIT" active
}
# render_equals_certs_d ARGS...: `render --certs-d` in the node, with ARGS, writes exactly the
# files the stand-in wrote at its start: the same directories, the same bytes.
render_equals_certs_d() {
  in_node rm -rf /root/render
  in_node k3s-mirror-agent render --certs-d /root/render "$@" >"$WORK/render.out" 2>&1 ||
    fail "render --certs-d $* failed: $(cat "$WORK/render.out")"
  diff -r "$NODE/root/render" "$NODE$CERTS_D" >"$WORK/render.diff" 2>&1 ||
    fail "render --certs-d $* differs from what the stand-in wrote: $(head -20 "$WORK/render.diff")"
}

cache_node "$ROLE"
# These scenarios pin the restart path (a change, a CA rotation and a refused change each restart
# k3s); the restart-free path, which this node would otherwise take, is hot_reload_pulls.sh's.
mkdir -p "$NODE/etc/k3s-mirror-agent/config.d"
printf 'k3s:\n  reload: restart\n' >"$NODE/etc/k3s-mirror-agent/config.d/40-reload.yaml"
for img in before first second rotating third refused down nodefault layout129 auth; do
  make_image "$img"
done

# Before the agent: no registries.yaml, no certs.d entry, so containerd pulls from Docker Hub.
before_agent_pulls_from_hub() {
  must_pull before
  through_hub before
}

first_apply_pulls_through_project() {
  apply
  expect_rc 0
  [ "$(json .restarted)" = "$UNIT" ] || fail "the first apply did not restart $UNIT: $OUT"
  must_pull first
  through_project first dockerhub-proxy
  cache_holds first || fail "the pull-through cache does not hold library/first"
  # The CRI plugin (which k3s's kubelet pulls through) reads the same certs.d: config.toml says
  # so, and containerd loaded that config (the plugin is "ok").
  local toml=$NODE/var/lib/rancher/k3s/agent/etc/containerd/config.toml
  grep -qxF "  config_path = \"$CERTS_D\"" "$toml" || fail "config.toml lacks config_path: $(cat "$toml")"
  in_node ctr --address /run/k3s/containerd/containerd.sock plugins ls >"$WORK/plugins"
  grep -qE '^io\.containerd\.grpc\.v1 +cri +.* ok *$' "$WORK/plugins" ||
    fail "containerd's CRI plugin is not ok: $(grep cri "$WORK/plugins")"
  # containerd logs the CRI config it parsed (to the unit's journal, as k3s's containerd.log).
  in_node journalctl -u "$UNIT" --no-pager -o cat >"$WORK/journal"
  grep -qF "Registry:{ConfigPath:$CERTS_D " "$WORK/journal" ||
    fail "containerd's CRI plugin did not take config_path from config.toml"
}

render_equals_what_k3s_wrote() {
  render_equals_certs_d
}

mirror_change_pulls_through_new_project() {
  write_config hub-cache
  apply
  expect_rc 0
  [ "$(json .restarted)" = "$UNIT" ] || fail "the mirror change did not restart $UNIT: $OUT"
  must_pull second
  through_project second hub-cache
  grep -q '/v2/dockerhub-proxy/library/second/' "$CACHE_LOG" && fail "second went to the old project"
  render_equals_certs_d
}

# The cache gets a certificate from a new CA. Until the agent installs that CA, the node cannot
# verify the cache and containerd falls back to Docker Hub; after the apply it verifies again.
ca_rotation_still_verifies() {
  make_ca rotated
  server_cert rotated harbor.home.lab "$CACHE_IP"
  cache_down
  cache_up
  must_pull rotating
  through_hub rotating
  cp "$WORK/rotated.pem" "$NODE/etc/k3s-mirror-agent/harbor-ca.pem"
  apply
  expect_rc 0
  [ "$(json .restarted)" = "$UNIT" ] || fail "the CA change did not restart $UNIT: $OUT"
  must_pull third
  through_project third hub-cache
}

# k3s refuses the new file: the agent rolls back, k3s is active on the old files, and pulls
# still go through the old project.
refused_change_rolls_back() {
  mkdir -p "$NODE/etc/k3s-standin"
  echo "broken-proxy" >"$NODE/etc/k3s-standin/refuse"
  RESTART_TIMEOUT=10s write_config broken-proxy
  apply
  rm -f "$NODE/etc/k3s-standin/refuse"
  write_config hub-cache
  expect_rc 1
  [ "$(json .rolled_back)" = true ] || fail "not rolled back: $OUT"
  [ "$(unit_state "$UNIT")" = active ] || fail "$UNIT is $(unit_state "$UNIT") after the rollback"
  must_pull refused
  through_project refused hub-cache
  grep -q '/v2/broken-proxy/' "$CACHE_LOG" && fail "a pull went to the refused project"
  render_equals_certs_d
}

# The cache is down: containerd tries the project, then its default endpoint, Docker Hub.
cache_down_falls_back_to_hub() {
  cache_down
  must_pull down
  cache_up
  through_hub down
}

# k3s --disable-default-registry-endpoint leaves the server line out of hosts.toml, and k3s's own
# containerd then never falls back. Debian's containerd 1.6.20 does not honour that (without
# `server` it still uses https://registry-1.docker.io/v2): with the cache down the pull is served
# by Docker Hub. This asserts what Debian's containerd does, not what k3s's would.
no_default_endpoint_still_falls_back_on_debian_containerd() {
  standin_env K3S_STANDIN_NO_DEFAULT_ENDPOINT=1
  restart_k3s
  grep -q '^server' "$NODE$CERTS_D/docker.io/hosts.toml" &&
    fail "hosts.toml keeps a server line: $(cat "$NODE$CERTS_D/docker.io/hosts.toml")"
  render_equals_certs_d --no-default-endpoint
  cache_down
  must_pull nodefault
  cache_up
  through_hub nodefault
}

# Layout 1.29 (k3s v1.29.4 .. v1.32.1): other bytes, the same pulls. At its start the stand-in
# cleans certs.d as k3s >= v1.31.1 does: a directory with k3s's header that it does not
# regenerate is removed, one without the header survives.
layout_129_and_certs_d_cleanup() {
  standin_env K3S_STANDIN_LAYOUT=1.29
  mkdir -p "$NODE$CERTS_D/stale.example" "$NODE$CERTS_D/mine.example"
  printf '# File generated by k3s. DO NOT EDIT.\nserver = "https://stale.example/v2"\n[host]\n' \
    >"$NODE$CERTS_D/stale.example/hosts.toml"
  printf 'server = "https://mine.example/v2"\n[host]\n' >"$NODE$CERTS_D/mine.example/hosts.toml"
  restart_k3s
  [ -d "$NODE$CERTS_D/stale.example" ] && fail "a k3s-headed directory k3s no longer writes survived"
  [ -f "$NODE$CERTS_D/mine.example/hosts.toml" ] || fail "a directory without k3s's header was removed"
  rm -rf "$NODE$CERTS_D/mine.example"
  render_equals_certs_d --k3s-layout 1.29
  must_pull layout129
  through_project layout129 hub-cache
}

# Credentials go to containerd's config.toml (read at start), never to hosts.toml; the pull goes
# on through the project (this cache does not ask for them).
auth_goes_to_config_toml_only() {
  standin_env  # back to layout 1.32: the apply's restart starts the stand-in with it
  printf 'p4ss-%s\n' "$RANDOM$RANDOM" >"$NODE/etc/k3s-mirror-agent/registry-password"
  chmod 600 "$NODE/etc/k3s-mirror-agent/registry-password"
  write_config hub-cache
  printf '  auth:\n    username: robot$k3s\n    password_file: /etc/k3s-mirror-agent/registry-password\n' \
    >"$WORK/auth.yaml"
  sed -i "/^  ca_file:/r $WORK/auth.yaml" "$NODE/etc/k3s-mirror-agent/config.yaml"
  apply
  expect_rc 0
  [ "$(json .restarted)" = "$UNIT" ] || fail "the auth change did not restart $UNIT: $OUT"
  local password toml=$NODE/var/lib/rancher/k3s/agent/etc/containerd/config.toml
  password=$(cat "$NODE/etc/k3s-mirror-agent/registry-password")
  grep -qF "[plugins.\"io.containerd.grpc.v1.cri\".registry.configs.\"harbor.home.lab\".auth]" "$toml" ||
    fail "config.toml has no auth table for harbor.home.lab"
  grep -qxF "  password = \"$password\"" "$toml" || fail "config.toml lacks the password"
  grep -qxF '  username = "robot$k3s"' "$toml" || fail "config.toml lacks the username"
  [ "$(stat -c %a "$toml")" = 600 ] || fail "config.toml holds a password and is $(stat -c %a "$toml")"
  grep -rqF "$password" "$NODE$CERTS_D" && fail "the password is in certs.d"
  grep -qF "$password" <<<"$OUT$ERR" && fail "the password is in apply's output"
  render_equals_certs_d
  must_pull auth
  through_project auth hub-cache
}

# Stopping the unit stops containerd: nothing answers on the socket any more.
stopping_k3s_stops_containerd() {
  in_node systemctl stop "$UNIT"
  in_node test -S /run/k3s/containerd/containerd.sock &&
    in_node ctr --address /run/k3s/containerd/containerd.sock --timeout 2s version >/dev/null 2>&1 &&
    fail "containerd still answers after $UNIT stopped"
  in_node pgrep -x containerd >/dev/null &&
    fail "containerd still runs after $UNIT stopped: $(in_node ps -eo pid,ppid,lstart,args | grep -E 'containerd|standin')"
  return 0
}

# SCENARIOS="NAME..." runs only those (when working on one).
for s in ${SCENARIOS:-before_agent_pulls_from_hub first_apply_pulls_through_project \
  render_equals_what_k3s_wrote mirror_change_pulls_through_new_project ca_rotation_still_verifies \
  refused_change_rolls_back cache_down_falls_back_to_hub \
  no_default_endpoint_still_falls_back_on_debian_containerd layout_129_and_certs_d_cleanup \
  auth_goes_to_config_toml_only stopping_k3s_stops_containerd}; do
  scenario "$s"
done
[ ${#FAILED[@]} -eq 0 ] || fail "${#FAILED[@]} scenario(s) failed: ${FAILED[*]}"
pass "every pull went through the endpoint the node's certs.d names ($ROLE node)"
