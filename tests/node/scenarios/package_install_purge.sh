#!/usr/bin/env bash
# The amd64 package on a booted server node that already runs (stand-in) k3s with a
# registries.yaml of its own, as an operator would use it:
# 1. `apt-get install ./k3s-mirror-agent_*_amd64.deb`: the service is enabled and active, idles
#    on the shipped example config and says so in its status; nothing on the node changes;
# 2. writing a real config (and the cache's CA) makes the daemon apply it and restart k3s once;
# 3. reinstalling (an upgrade's path through the maintainer scripts) restarts the service and
#    not k3s;
# 4. `apt-get remove` stops the service and leaves the node pulling through the cache;
# 5. `apt-get purge` gives back the node's own registries.yaml and trust store, byte for byte.
INSTALL_AGENT=0
source "$NODE_DIR/lib.sh"
deb=$(compgen -G "${DEBS:-/nonexistent}/k3s-mirror-agent_*_amd64.deb" | head -1) || true
if [ -z "$deb" ]; then
  [ "${CI:-}" = true ] && fail "no amd64 package in DEBS=${DEBS:-} (tests/run-all.sh builds it)"
  echo "SKIP: no amd64 package in DEBS=${DEBS:-} (packaging/build-debs.sh DIR)"
  exit 77
fi

node_create server
reg=$NODE/etc/rancher/k3s/registries.yaml
bundle=$NODE/etc/ssl/certs/ca-certificates.crt
mkdir -p "$(dirname "$reg")"
cat >"$reg" <<'YAML'
# the node's own file: a login for a private registry
configs:
  registry.internal.lan:
    auth:
      username: ci
      password: not-a-real-secret
YAML
chmod 600 "$reg"
node_boot
wait_state k3s.service active
own_reg=$(sha256sum <"$reg")
own_bundle=$(sha256sum <"$bundle")
own_local=$(ls "$NODE/usr/local/share/ca-certificates")
boot_starts=$(starts)
cp "$deb" "$NODE/var/tmp/k3s-mirror-agent.deb"
pkg() { DEBIAN_FRONTEND=noninteractive in_node apt-get "$@" >"$WORK/apt.log" 2>&1 || fail "apt-get $*: $(cat "$WORK/apt.log")"; }

# 1. Install: enabled, active, idle, and the node untouched.
DAEMON_USED=1
pkg install -y /var/tmp/k3s-mirror-agent.deb
[ "$(in_node systemctl is-enabled k3s-mirror-agent.service)" = enabled ] || fail "the service is not enabled"
[ "$(unit_state k3s-mirror-agent.service)" = active ] || fail "the service is $(unit_state k3s-mirror-agent.service)"
status_text | grep -q '^idle: /etc/k3s-mirror-agent/config.yaml: not configured yet' ||
  fail "the unconfigured service does not say so: $(status_text)"
[ "$(sha256sum <"$reg")" = "$own_reg" ] || fail "installing changed registries.yaml"
[ "$(starts)" -eq "$boot_starts" ] || fail "installing restarted k3s"
echo "installed: $(status_text)"

# 2. A real config: applied by the daemon, k3s restarted once.
daemon_settings "splay: 1s" "probe_interval: 0s"  # the default 30 s splay would only slow the test
make_ca harbor
cp "$WORK/harbor.pem" "$NODE/etc/k3s-mirror-agent/harbor-ca.pem"
write_config
wait_for "the config reaching registries.yaml" 30 grep -q '/v2/dockerhub-proxy"' "$reg"
wait_for "the daemon's apply restarting k3s" 30 djson_is .last_apply.restarted k3s.service
[ "$(starts)" -eq $((boot_starts + 1)) ] || fail "the config gave $(( $(starts) - boot_starts )) k3s restarts"
grep -q 'registry.internal.lan' "$reg" || fail "the node's own entry was lost"
grep -qF "$(sed -n 2p "$WORK/harbor.pem")" "$bundle" || fail "the CA is not in the trust bundle"
pid=$(in_node systemctl show -p MainPID --value k3s-mirror-agent.service)

# 3. Reinstall: the service restarts (a new process, active again), k3s does not.
pkg install -y --reinstall /var/tmp/k3s-mirror-agent.deb
[ "$(unit_state k3s-mirror-agent.service)" = active ] || fail "not active after reinstall"
[ "$(in_node systemctl show -p MainPID --value k3s-mirror-agent.service)" != "$pid" ] ||
  fail "the service was not restarted by the reinstall"
[ "$(starts)" -eq $((boot_starts + 1)) ] || fail "reinstalling restarted k3s"

# 4. Remove: the service is gone, the node still pulls through the cache.
pkg remove -y k3s-mirror-agent
[ "$(unit_state k3s-mirror-agent.service)" != active ] || fail "still active after remove"
grep -q '/v2/dockerhub-proxy"' "$reg" || fail "remove took the mirrors away"
grep -qF "$(sed -n 2p "$WORK/harbor.pem")" "$bundle" || fail "remove took the CA away"

# 5. Purge: the node's own files back.
pkg purge -y k3s-mirror-agent
[ "$(sha256sum <"$reg")" = "$own_reg" ] || fail "purge did not give back registries.yaml: $(cat "$reg")"
[ "$(stat -c %a "$reg")" = 600 ] || fail "registries.yaml is $(stat -c %a "$reg") after purge"
[ "$(ls "$NODE/usr/local/share/ca-certificates")" = "$own_local" ] || fail "the agent's CA file is still there"
[ "$(sha256sum <"$bundle")" = "$own_bundle" ] || fail "the trust bundle is not the node's own after purge"
dangling=$(in_node find -L /etc/ssl/certs -type l)
[ -z "$dangling" ] || fail "purge left dangling links in /etc/ssl/certs: $dangling"
[ ! -e "$NODE/var/lib/k3s-mirror-agent" ] || fail "purge left /var/lib/k3s-mirror-agent"
[ ! -e "$NODE/etc/k3s-mirror-agent/config.yaml" ] || fail "purge left the conffile"
[ "$(starts)" -eq $((boot_starts + 1)) ] || fail "remove or purge restarted k3s"
grep -q 'restart k3s' "$WORK/apt.log" || fail "purge does not say k3s must restart to read the files"
pass "package: installed idle, applied a real config with one restart, reinstall restarted the service only, remove kept the mirrors, purge gave back the node's own files"
