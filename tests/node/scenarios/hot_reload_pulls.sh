#!/usr/bin/env bash
# The restart-free apply on a booted node (server, or agent with ROLE=agent) whose stand-in k3s
# runs Debian's containerd from the certs.d it wrote with the model of k3s, pulling through a
# real pull-through cache (tests/node/cache-lib.sh): a mirror change, a CA rotation and a mirror
# removal reach containerd with zero k3s starts (the unit's InvocationID stays the same) and the
# next pull goes where the new files say (the access logs); the hosts.toml bytes equal
# `render --certs-d`, and a restart of the stand-in rewrites exactly the same bytes. An auth
# change, and a certs.d with an extra k3s-headed directory (the embedded registry's), restart
# k3s once, with the reason in the output. A verify.images image that the new endpoint cannot
# resolve puts every file back byte for byte and pulls keep going through the old endpoint; a
# kill -9 at every fsync of a hot apply converges on the next run. With STANDIN_LAYOUT=1.29 the
# stand-in writes the hosts.toml bytes of k3s v1.29.4 ... v1.32.1 (run a subset with
# SCENARIOS=...). One booted node; scenarios in sequence, each PASS or FAIL by name.
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
LAYOUT=${STANDIN_LAYOUT:-1.32}
render_equals_certs_d() {
  in_node rm -rf /root/render
  in_node k3s-mirror-agent render --certs-d /root/render --k3s-layout "$LAYOUT" \
    >"$WORK/render.out" 2>&1 ||
    fail "render --certs-d failed: $(cat "$WORK/render.out")"
  diff -r "$NODE/root/render" "$NODE$CERTS_D" >"$WORK/render.diff" 2>&1 ||
    fail "render --certs-d differs from certs.d: $(head -20 "$WORK/render.diff")"
}
certs_d_sums() { (cd "$NODE$CERTS_D" && find . -type f -exec sha256sum {} + | sort); }
# Every file apply writes, by content, type and mode (a put-back file is a new inode, so no
# inode or mtime): registries.yaml, the CA file, the trust store (its bundle and links), the
# agent's state, all of certs.d.
agent_tree() {
  local paths=(etc/rancher usr/local/share/ca-certificates etc/ssl/certs var/lib/k3s-mirror-agent
    "${CERTS_D#/}")
  (cd "$NODE" && find "${paths[@]}" -printf '%p %y %m %l\n' | sort &&
    find "${paths[@]}" -type f -exec sha256sum {} + | sort -k2)
}
# The project docker.io's hosts.toml names (dockerhub-proxy or hub-cache).
docker_project() { sed -n 's|^\[host."https://harbor.home.lab/v2/\([^"]*\)"\]$|\1|p' "$NODE$CERTS_D/docker.io/hosts.toml"; }
other_project() { if [ "$1" = hub-cache ]; then echo dockerhub-proxy; else echo hub-cache; fi; }
expect_hot() {
  expect_rc 0
  [ "$(json .reload)" = hot ] || fail "not hot: $OUT"
  [ "$(json .restarted)" = null ] || fail "$UNIT was restarted: $OUT"
  [ "$(json .restart_needed)" = false ] || fail "restart_needed after a hot reload: $OUT"
  [ "$(invocation)" = "$1" ] || fail "k3s was started during a hot reload"
}

cache_node "$ROLE"
if [ "$LAYOUT" != 1.32 ]; then
  standin_env "K3S_STANDIN_LAYOUT=$LAYOUT"  # read at the first apply's restart
fi
for img in first hot rotating rotated removed verifyold authed embedded daemonhot restored \
  sandboxed unsandboxed; do
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

# verify.images after a hot write: the new project (the cache has no such project: nginx
# answers 404) cannot resolve the image, so everything is put back byte for byte, exit 1, and
# containerd's next pull still goes through the old project. No k3s start either way.
verify_failure_after_hot_write_puts_every_file_back() {
  local before old tree
  apply
  expect_rc 0
  old=$(docker_project)
  [ -n "$old" ] || fail "no project in docker.io's hosts.toml: $(cat "$NODE$CERTS_D/docker.io/hosts.toml")"
  before=$(invocation)
  tree=$(agent_tree)
  cp "$NODE/etc/k3s-mirror-agent/config.yaml" "$WORK/config.before"
  sed -i "s/^  docker.io: .*/  docker.io: no-such-proxy/" "$NODE/etc/k3s-mirror-agent/config.yaml"
  printf 'verify:\n  preflight: none\n  images: [docker.io/library/first:1]\n' \
    >>"$NODE/etc/k3s-mirror-agent/config.yaml"
  apply
  expect_rc 1
  [ "$(json .rolled_back)" = true ] || fail "not rolled back: $OUT"
  [ "$(json .reload)" = null ] || fail "reload after a rollback: $OUT"
  grep -q 'resolve docker.io/library/first:1 at https://harbor.home.lab/v2/no-such-proxy/library/first/manifests/1: HTTP 404' \
    <<<"$(json .error)" || fail "the error does not name the image, URL and answer: $OUT"
  [ "$(agent_tree)" = "$tree" ] ||
    fail "files not put back byte for byte: $(diff <(echo "$tree") <(agent_tree) | head -20)"
  [ -e "$NODE/var/lib/k3s-mirror-agent/journal.json" ] && fail "the journal was left behind"
  [ "$(invocation)" = "$before" ] || fail "k3s was started"
  must_pull verifyold
  through_project verifyold "$old"
  grep -q '/v2/no-such-proxy/library/verifyold/' "$CACHE_LOG" && fail "verifyold was asked of the new project"
  cp "$WORK/config.before" "$NODE/etc/k3s-mirror-agent/config.yaml"
  apply
  expect_rc 0
  [ "$(json .changed)" = false ] || fail "the old config changed something after the rollback: $OUT"
}

# killed_at N: apply in the node, SIGKILLed as it enters its N-th fsync (strace's fault
# injection on the host, following nsenter into the node; every write is fsync(file), rename,
# fsync(dir), so these are the moments just before and after each rename). True when killed;
# false when it finished first (then it must have succeeded).
killed_at() {
  local rc
  # In a subshell whose stderr is dropped (and which is not strace itself: the echo after it):
  # bash's own "Killed" line is noise here.
  (
    strace -f -qq -o /dev/null -e trace=fsync -e "inject=fsync:signal=KILL:when=$1" \
      nsenter -t "$PID1" -a /usr/local/sbin/k3s-mirror-agent apply --output json \
      >"$WORK/killed.out" 2>"$WORK/killed.err"
    echo $? >"$WORK/killed.rc"
  ) 2>/dev/null || true
  rc=$(cat "$WORK/killed.rc")
  [ "$rc" -eq 137 ] && return 0
  [ "$rc" -eq 0 ] || fail "apply (fsync $1 not reached) exited $rc: $(cat "$WORK/killed.err")"
  return 1
}

# A hot apply (a project change) killed -9 at each of its fsyncs in turn; the next apply
# converges, hot: certs.d is what `render --certs-d` makes, `diff` is clean (registries.yaml,
# CA, trust store), no journal, no k3s start, and containerd's next pull goes through the new
# project. Each round changes the project back the other way, so one node serves every point.
killed_hot_apply_converges() {
  command -v strace >/dev/null || fail "strace is not installed (packaging/install-build-deps.sh)"
  local before n to kills=0
  apply
  expect_rc 0
  before=$(invocation)
  cp "$NODE/etc/k3s-mirror-agent/config.yaml" "$WORK/config.before"
  for n in $(seq 1 60); do
    to=$(other_project "$(docker_project)")
    sed -i "s/^  docker.io: .*/  docker.io: $to/" "$NODE/etc/k3s-mirror-agent/config.yaml"
    killed_at "$n" || break
    kills=$((kills + 1))
    apply
    expect_rc 0
    # Killed at the last fsync (the journal's directory, after its unlink) the run had done
    # everything: the next apply has nothing to do. Before that, it undoes the run and goes hot.
    [ "$(json .reload)" = hot ] || [ "$(json .changed)" = false ] ||
      fail "killed at fsync $n: the next apply was not hot: $OUT"
    [ -e "$NODE/var/lib/k3s-mirror-agent/journal.json" ] && fail "killed at fsync $n: journal left"
    [ "$(docker_project)" = "$to" ] || fail "killed at fsync $n: docker.io does not name $to"
    render_equals_certs_d
    in_node k3s-mirror-agent diff >"$WORK/diff.out" 2>&1 ||
      fail "killed at fsync $n: diff not clean: $(cat "$WORK/diff.out")"
    [ "$(invocation)" = "$before" ] || fail "killed at fsync $n: k3s was started"
    make_image "killed$n"
    must_pull "killed$n"
    through_project "killed$n" "$to"
  done
  [ "$n" -lt 60 ] || fail "apply was still killed at fsync 60"
  [ "$kills" -ge 6 ] || fail "only $kills kill points in a hot apply"
  echo "a hot apply killed at each of its $kills fsyncs converged on the next run"
  [ "$(invocation)" = "$before" ] || fail "k3s was started"
  cp "$WORK/config.before" "$NODE/etc/k3s-mirror-agent/config.yaml"
  apply
  expect_rc 0
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
  local before applies t0 to
  before=$(invocation)
  applies=$(djson .applies)
  to=$(other_project "$(docker_project)")
  t0=$SECONDS
  sed -i "s/^  docker.io: .*/  docker.io: $to/" "$NODE/etc/k3s-mirror-agent/config.yaml"
  wait_applies $((applies + 1)) 20
  wait_for "the edit reaching certs.d" 20 grep -q "/v2/$to\"" "$NODE$CERTS_D/docker.io/hosts.toml"
  echo "edit applied hot by the daemon after $((SECONDS - t0)) s (debounce 0.5 s; splay 60 s)"
  # A splay is logged ("waiting N s (splay) first"): a hot reload must not have taken one.
  daemon_journal | grep -q '(splay)' && fail "the daemon splayed before a hot reload: $(daemon_journal | grep splay)"
  [ "$(djson .last_apply.reload)" = hot ] || fail "the daemon's apply was not hot: $(daemon_status)"
  [ "$(djson .reloads.hot)" = 1 ] || fail "status.json does not count the hot reload: $(daemon_status)"
  [ "$(invocation)" = "$before" ] || fail "k3s was started by the daemon's hot reload"
  must_pull daemonhot
  through_project daemonhot "$to"
  in_node systemctl stop k3s-mirror-agent.service
}

# restore after a hot apply leaves the node as k3s would have it, without a restart: the node
# had no registries.yaml, so certs.d ends as k3s makes it of none (the agent's directories
# gone: containerd pulls from the upstream), and a restart of k3s changes nothing there.
restore_after_a_hot_apply_is_hot() {
  local before sums
  # Without the auth of auth_change_restarts_once (restoring a registries.yaml without the
  # credentials would need a restart: containerd reads them only at start), then a hot change.
  write_config dockerhub-proxy
  apply
  expect_rc 0
  write_config hub-cache
  apply
  expect_rc 0
  [ "$(json .reload)" = hot ] || fail "the apply before restore was not hot: $OUT"
  before=$(invocation)
  RC=0
  in_node k3s-mirror-agent restore --output json >"$WORK/out" 2>"$WORK/err" || RC=$?
  OUT=$(cat "$WORK/out")
  ERR=$(cat "$WORK/err")
  expect_rc 0
  [ "$(json .reload)" = hot ] || fail "restore was not hot: $OUT"
  [ "$(json .restart_needed)" = false ] || fail "restart_needed after a hot restore: $OUT"
  [ "$(invocation)" = "$before" ] || fail "k3s was started by restore"
  [ -e "$NODE/etc/rancher/k3s/registries.yaml" ] && fail "registries.yaml is still there"
  [ -e "$NODE$CERTS_D/docker.io" ] && fail "certs.d/docker.io is still there: $(ls "$NODE$CERTS_D")"
  must_pull restored
  through_hub restored
  sums=$(certs_d_sums)
  in_node systemctl restart "$UNIT"
  wait_state "$UNIT" active
  [ "$(certs_d_sums)" = "$sums" ] || fail "k3s's next start wrote other files than restore left"
}

# The log of the daemon's current run only (journalctl -u shows every run of the unit).
this_daemon_journal() {
  in_node journalctl --no-pager -o cat \
    "_SYSTEMD_INVOCATION_ID=$(in_node systemctl show -p InvocationID --value k3s-mirror-agent.service)"
}

# The daemon started before k3s ever ran on this node: the unit's ReadWritePaths=- for the
# containerd folder skipped it (it did not exist), so inside the daemon's sandbox certs.d is
# read-only. A change then restarts k3s, with a note that says why and what to do; after a
# restart of k3s-mirror-agent.service the next change is hot.
daemon_started_before_k3s_restarts_then_hot_after_its_restart() {
  local before applies
  in_node systemctl stop k3s-mirror-agent.service "$UNIT"
  rm -rf "$NODE/var/lib/rancher/k3s/agent/etc/containerd"
  write_config dockerhub-proxy
  daemon_settings "debounce: 500ms" "splay: 0s" "probe_interval: 0s"
  start_daemon
  in_node systemctl start "$UNIT"
  wait_state "$UNIT" active
  wait_for "k3s writing certs.d" 20 test -f "$NODE$CERTS_D/docker.io/hosts.toml"
  before=$(invocation)
  applies=$(djson .applies)
  sed -i "s/^  docker.io: .*/  docker.io: hub-cache/" "$NODE/etc/k3s-mirror-agent/config.yaml"
  wait_applies $((applies + 1)) 60
  [ "$(djson .last_apply.reload)" = restart ] || fail "not restarted: $(daemon_status)"
  this_daemon_journal | grep -q "certs.d is read-only to this process.*restart k3s-mirror-agent.service" ||
    fail "no note on the read-only certs.d: $(this_daemon_journal | tail -20)"
  [ "$(invocation)" != "$before" ] || fail "k3s was not started"
  must_pull sandboxed
  through_project sandboxed hub-cache
  in_node systemctl restart k3s-mirror-agent.service
  wait_applies 1 30
  before=$(invocation)
  applies=$(djson .applies)
  sed -i "s/^  docker.io: .*/  docker.io: dockerhub-proxy/" "$NODE/etc/k3s-mirror-agent/config.yaml"
  wait_applies $((applies + 1)) 30
  [ "$(djson .last_apply.reload)" = hot ] || fail "not hot after the daemon's restart: $(daemon_status)"
  [ "$(invocation)" = "$before" ] || fail "k3s was started"
  must_pull unsandboxed
  through_project unsandboxed dockerhub-proxy
  in_node systemctl stop k3s-mirror-agent.service
}

for s in ${SCENARIOS:-first_apply_restarts mirror_change_is_hot_and_k3s_rewrites_the_same_bytes \
  ca_rotation_is_hot mirror_removed_is_hot_and_falls_back \
  verify_failure_after_hot_write_puts_every_file_back killed_hot_apply_converges auth_change_restarts_once \
  embedded_registry_dir_restarts_once daemon_applies_an_edit_hot restore_after_a_hot_apply_is_hot \
  daemon_started_before_k3s_restarts_then_hot_after_its_restart}; do
  scenario "$s"
done
[ ${#FAILED[@]} -eq 0 ] || fail "${#FAILED[@]} scenario(s) failed: ${FAILED[*]}"
pass "changes reached containerd without a k3s restart where they can, with one where not ($ROLE node, layout $LAYOUT)"
