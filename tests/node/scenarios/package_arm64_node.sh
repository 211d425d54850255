#!/usr/bin/env bash
# Our Raspberry Pi: an arm64 Debian 12 node booted under qemu (tests/node/README.md), a worker
# running the (arm64) stand-in k3s-agent.service.
# 1. `apt-get install ./k3s-mirror-agent_*_arm64.deb`: the hardened service comes up and idles
#    on the example config;
# 2. with a real config, `k3s-mirror-agent apply` writes the files, trusts the CA and restarts
#    k3s-agent.service through systemd's D-Bus API, once;
# 3. the daemon, told to look again (systemctl reload), finds nothing left to change.
INSTALL_AGENT=0
NODE_ARCH=arm64
ROLE=agent
BOOT_TIMEOUT=300       # systemd and everything else run emulated: ~40 s to boot, more when busy
RESTART_TIMEOUT=120s   # the stand-in's restart, emulated
source "$NODE_DIR/lib.sh"
deb=$(compgen -G "${DEBS:-/nonexistent}/k3s-mirror-agent_*_arm64.deb" | head -1) || true
if [ -z "$deb" ]; then
  [ "${CI:-}" = true ] && fail "no arm64 package in DEBS=${DEBS:-} (tests/run-all.sh builds it)"
  echo "SKIP: no arm64 package in DEBS=${DEBS:-} (packaging/build-debs.sh DIR)"
  exit 77
fi
STANDIN=$WORK/k3s-standin-arm64
bash "$NODE_DIR/build-standin-arm64.sh" "$STANDIN"

node_create agent
# The one part of the unit's sandbox qemu cannot give an emulated process: a user namespace
# (PrivateUsers=yes fails with 217/USER, "Failed to set up user namespacing: Invalid
# argument"; the other 21 hardening settings were each tried under qemu and work). A real Pi's
# kernel has user namespaces; here a drop-in, as an operator would write one, turns it off.
mkdir -p "$NODE/etc/systemd/system/k3s-mirror-agent.service.d"
printf '[Service]\nPrivateUsers=no\n' >"$NODE/etc/systemd/system/k3s-mirror-agent.service.d/qemu-user.conf"
t0=$SECONDS
node_boot
[ "$(in_node uname -m)" = aarch64 ] || fail "the node is not arm64: $(in_node uname -m)"
echo "arm64 node booted in $((SECONDS - t0)) s"
wait_state k3s-agent.service active
boot_starts=$(starts)

# 1. Install: the service comes up, idle.
DAEMON_USED=1
cp "$deb" "$NODE/var/tmp/k3s-mirror-agent.deb"
DEBIAN_FRONTEND=noninteractive in_node apt-get install -y /var/tmp/k3s-mirror-agent.deb >"$WORK/apt.log" 2>&1 ||
  fail "apt-get install: $(cat "$WORK/apt.log")"
[ "$(unit_state k3s-mirror-agent.service)" = active ] || fail "the service is $(unit_state k3s-mirror-agent.service)"
status_text | grep -q '^idle: .*not configured yet' || fail "status: $(status_text)"

# 2. A real config, applied by the command line; the daemon waits (a long debounce) meanwhile.
daemon_settings "debounce: 10m" "probe_interval: 0s"
setup_config
apply
expect_rc 0
[ "$(json .restarted)" = k3s-agent.service ] || fail "restarted is not k3s-agent.service: $OUT"
[ "$(starts)" -eq $((boot_starts + 1)) ] || fail "k3s-agent started $(( $(starts) - boot_starts )) times, want once"
[ "$(unit_state k3s-agent.service)" = active ] || fail "k3s-agent.service is $(unit_state k3s-agent.service)"
grep -q '/v2/dockerhub-proxy"' "$NODE/etc/rancher/k3s/registries.yaml" || fail "registries.yaml lacks the cache"
grep -qF "$(sed -n 2p "$WORK/harbor.pem")" "$NODE/etc/ssl/certs/ca-certificates.crt" ||
  fail "the CA is not in the node's trust bundle"
hosts=$NODE/var/lib/rancher/k3s/agent/etc/containerd/certs.d/docker.io/hosts.toml
grep -q 'host."https://harbor.home.lab/v2/dockerhub-proxy"' "$hosts" || fail "hosts.toml lacks the cache"

# 3. The daemon looks again at once (SIGHUP): nothing to change, no restart.
in_node systemctl reload k3s-mirror-agent.service
wait_for "the daemon's look after the reload" 60 djson_is .last_apply.trigger reload
[ "$(djson .last_apply.changed)" = false ] || fail "the daemon changed something: $(daemon_status)"
[ "$(starts)" -eq $((boot_starts + 1)) ] || fail "the reload restarted k3s-agent"
pass "arm64: the package installed and its service came up; apply restarted k3s-agent.service once through D-Bus; the daemon agrees"
