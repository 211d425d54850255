# Shared by the booted-node tests: boots a throwaway Debian 12 node with a real systemd in a
# container (systemd-nspawn, tests/node/README.md), with the freshly built agent and the k3s
# stand-in installed, and runs commands inside it over its real D-Bus.
# Needs: root, systemd-nspawn and nsenter, debootstrap and Debian's archive for the first build
# of the root filesystem. Set by ctest: AGENT, STANDIN, NODE_DIR. With CI=true a missing
# prerequisite is a failure; elsewhere the test is skipped (exit 77).
# The helpers shared with the black-box tests (fail, on_exit, wait_until, make_ca, the daemon's
# facts, ...) are in tests/support/lib.sh.
# shellcheck source=tests/support/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../support/lib.sh"

# A daemon scenario's failure is read with the daemon's log beside it.
fail_context() {
  if [ "${DAEMON_USED:-}" = 1 ] && [ -n "${PID1:-}" ]; then
    echo "--- journal of k3s-mirror-agent.service:"
    nsenter -t "$PID1" -a journalctl -u k3s-mirror-agent.service --no-pager -o short-monotonic 2>&1 | tail -40
  fi
}

: "${AGENT:?AGENT must name the k3s-mirror-agent binary}"
: "${STANDIN:?STANDIN must name the k3s-standin binary}"
: "${NODE_DIR:?NODE_DIR must name tests/node}"

[ "$(id -u)" -eq 0 ] || skip_or_fail "prerequisites missing: root (booted nodes need it)"
need_tools systemd-nspawn nsenter debootstrap openssl jq pgrep

# The scenarios run on a server node (k3s.service) and, with ROLE=agent, on an agent node
# (k3s-agent.service); $UNIT is the unit the agent must find and restart.
ROLE=${ROLE:-server}
case "$ROLE" in
  agent) UNIT=k3s-agent.service ;;
  *) UNIT=k3s.service ;;
esac

# NODE_ARCH picks the node's architecture (arm64 boots under qemu), NODE_EXTRA adds packages to
# its root filesystem (a cached variant, e.g. ansible-core).
NODE_ARCH=${NODE_ARCH:-amd64}
# shellcheck disable=SC2086 # NODE_EXTRA is a list of package names
ROOTFS=$(bash "$NODE_DIR/build-rootfs.sh" "$NODE_ARCH" ${NODE_EXTRA:-})
WORK=$(mktemp -d /var/tmp/k3sma-node.XXXXXX)
NODE=$WORK/rootfs            # the node's / as seen from the host
NSPAWN_PID=""
PID1=""

# stop_node NSPAWN-PID PID1: the node gets 30 s to shut down (an emulated one can hang
# halfway); its init outlives a killed systemd-nspawn, and killing that ends every process the
# node's PID namespace holds.
stop_node() {
  local nspawn=$1 init=$2
  [ -n "$nspawn" ] && kill -0 "$nspawn" 2>/dev/null || return 0
  kill "$nspawn" 2>/dev/null || true
  local deadline=$((SECONDS + 30))
  while kill -0 "$nspawn" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
    sleep 0.1
  done
  [ -z "$init" ] || kill -9 "$init" 2>/dev/null || true
  kill -9 "$nspawn" 2>/dev/null || true
  wait "$nspawn" 2>/dev/null || true
}
cleanup() { stop_node "$NSPAWN_PID" "$PID1"; }
on_exit rm -rf "$WORK"
on_exit cleanup

# in_node CMD...: runs CMD inside the booted node (all its namespaces: its systemd, its bus).
in_node() { nsenter -t "$PID1" -a "$@"; }

# node_create ROLE: a fresh copy of the cached root filesystem with the agent and the k3s
# stand-in installed; ROLE server enables k3s.service, agent k3s-agent.service, both both,
# none neither. With INSTALL_AGENT=0 the agent is left out: the package tests install the .deb.
node_create() {
  cp -a "$ROOTFS" "$NODE"
  if [ "${INSTALL_AGENT:-1}" = 1 ]; then
    install -m 755 "$AGENT" "$NODE/usr/sbin/k3s-mirror-agent"
    ln -s /usr/sbin/k3s-mirror-agent "$NODE/usr/local/sbin/k3s-mirror-agent"
    # The daemon's unit as shipped (systemd/), installed but not enabled: scenarios start it.
    install -m 644 "$NODE_DIR/../../systemd/k3s-mirror-agent.service" \
      "$NODE/etc/systemd/system/k3s-mirror-agent.service"
  fi
  install -m 755 "$STANDIN" "$NODE/usr/local/bin/k3s-standin"
  local units=""
  case "$1" in
    server) units=k3s.service ;;
    agent) units=k3s-agent.service ;;
    both) units="k3s.service k3s-agent.service" ;;
    none) ;;
    *) fail "node_create: unknown role $1" ;;
  esac
  mkdir -p "$NODE/etc/systemd/system/multi-user.target.wants"
  for unit in $units; do
    install -m 644 "$NODE_DIR/units/$unit" "$NODE/etc/systemd/system/$unit"
    ln -s "/etc/systemd/system/$unit" "$NODE/etc/systemd/system/multi-user.target.wants/$unit"
  done
  [ "${INSTALL_AGENT:-1}" = 0 ] || mkdir -p "$NODE/etc/k3s-mirror-agent"
  # debootstrap's minbase writes no /etc/hosts; every installed node has one.
  printf '127.0.0.1\tlocalhost\n127.0.1.1\tnode\n::1\tlocalhost ip6-localhost\n' >"$NODE/etc/hosts"
}

# node_boot: boots the node and waits until systemd has finished starting it.
node_boot() {
  systemd-nspawn -D "$NODE" --boot --register=no --keep-unit --quiet \
    --machine="k3sma-$$" >"$WORK/console.log" 2>&1 &
  NSPAWN_PID=$!
  # An arm64 node boots under qemu: ~40 s instead of ~2.
  booted_node "$NSPAWN_PID" "$WORK/console.log" $((SECONDS + ${BOOT_TIMEOUT:-60})) node
}

# node_init NSPAWN-PID: prints the node's init, the child of systemd-nspawn that is PID 1 of a
# PID namespace of its own. nspawn first forks an "outer child" in the host's PID namespace
# (clone(CLONE_NEWNS)), which forks the init (CLONE_NEWPID) and exits; the init is then
# re-parented to nspawn (strace shows it). Taken for the init, that short-lived outer child made
# every nsenter fail until the boot timed out (seen once in CI: "did not finish booting
# (state: )").
node_init() {
  local p host_ns
  host_ns=$(readlink /proc/self/ns/pid)
  for p in $(pgrep -P "$1" 2>/dev/null); do
    [ "$(readlink "/proc/$p/ns/pid" 2>/dev/null)" != "$host_ns" ] || continue
    echo "$p"
    return 0
  done
  return 1
}

# booted_node NSPAWN-PID CONSOLE-LOG DEADLINE NAME: sets PID1 (the node's init) once it runs,
# then waits until systemd has started the node and lets users log in.
booted_node() {
  local nspawn=$1 console=$2 deadline=$3 name=$4 state=""
  until PID1=$(node_init "$nspawn"); do
    [ $SECONDS -lt "$deadline" ] || fail "$name did not start: $(tail -5 "$console")"
    sleep 0.1
  done
  # is-system-running exits non-zero for "degraded" too: read what it says, not its status.
  # The init is looked up again before each try (a stale PID1 would fail every nsenter), and a
  # try that hangs (systemctl waits up to 25 s for the bus) is cut short so the deadline holds.
  # Twice in CI the state stayed empty for the whole minute while the console showed the boot
  # done: the failure names what was tried and what it said, to find out why.
  local why="$WORK/boot-$name.err"
  until PID1=$(node_init "$nspawn") &&
        state=$(timeout 10 nsenter -t "$PID1" -a systemctl is-system-running 2>"$why" || true) &&
        { [ "$state" = running ] || [ "$state" = degraded ]; }; do
    [ $SECONDS -lt "$deadline" ] ||
      fail "$name did not finish booting (state: $state; init: ${PID1:-none}," \
        "$(cat "/proc/${PID1:-0}/comm" 2>/dev/null || echo gone); nspawn's children:" \
        "$(pgrep -P "$nspawn" | tr '\n' ' '); systemctl said: $(tail -3 "$why" 2>/dev/null))" \
        "console: $(tail -5 "$console")"
    sleep 0.2
  done
  # pam_nologin refuses logins while /run/nologin exists ("System is booting up"); it was seen
  # to outlast is-system-running's "running" once in CI.
  until ! in_node test -e /run/nologin; do
    [ $SECONDS -lt "$deadline" ] || fail "$name still refuses logins (/run/nologin is there)"
    sleep 0.2
  done
}

# The cache's CA (make_ca, tests/support/lib.sh) and a config for three mirrors through it.
write_config() {  # write_config [DOCKER-PROJECT]
  cat > "$NODE/etc/k3s-mirror-agent/config.yaml" <<YAML
registry:
  url: https://harbor.home.lab
  ca_file: /etc/k3s-mirror-agent/harbor-ca.pem
mirrors:
  docker.io: ${1:-dockerhub-proxy}
  ghcr.io: ghcr-proxy
  quay.io: quay-proxy
k3s:
  restart_timeout: ${RESTART_TIMEOUT:-30s}
YAML
}
setup_config() {
  make_ca harbor
  cp "$WORK/harbor.pem" "$NODE/etc/k3s-mirror-agent/harbor-ca.pem"
  write_config
}

# start_node ROLE: a node with the example config and CA, booted, its k3s unit active.
start_node() {
  node_create "$1"
  setup_config
  node_boot
  case "$1" in
    server | both) wait_state k3s.service active ;;
    agent) wait_state k3s-agent.service active ;;
  esac
}

# apply ARGS...: runs `k3s-mirror-agent apply --output json` in the node; sets RC, OUT, ERR.
apply() {
  # The test build's copy, or the package's when the test installed the .deb (INSTALL_AGENT=0).
  local bin=/usr/local/sbin/k3s-mirror-agent
  [ -e "$NODE$bin" ] || bin=/usr/sbin/k3s-mirror-agent
  capture in_node "$bin" apply --output json "$@"
}

# How often the stand-in k3s has started, and the state of a unit.
starts() { [ -f "$NODE/var/log/k3s-standin/starts" ] && wc -l <"$NODE/var/log/k3s-standin/starts" || echo 0; }
unit_state() { in_node systemctl is-active "$1" || true; }
# Waits until a unit reaches a state (for setting up scenarios, not for asserting timing).
wait_state() {  # wait_state UNIT STATE
  local deadline=$((SECONDS + 30))
  until [ "$(unit_state "$1")" = "$2" ]; do
    [ $SECONDS -lt $deadline ] || fail "$1 did not become $2 (is $(unit_state "$1"))"
    sleep 0.1
  done
}
# Every file the agent could touch, with inode, mtime, mode and hash (missing paths are fine).
snapshot() {
  local paths=(etc/rancher etc/ssl usr/local/share/ca-certificates var/lib/k3s-mirror-agent)
  (cd "$NODE" && { find "${paths[@]}" -printf '%p %i %T@ %m\n' 2>/dev/null || true; } | sort &&
    { find "${paths[@]}" -type f -exec sha256sum {} + 2>/dev/null || true; } | sort -k2)
}

# --- the daemon (k3s-mirror-agent run as the systemd service) ---------------------------------

STATUS_JSON=/run/k3s-mirror-agent/status.json

# daemon_settings KEY: VALUE...: a config.d drop-in with the daemon's settings, so write_config
# can rewrite config.yaml without losing them. Tests keep debounce and splay short.
daemon_settings() {
  mkdir -p "$NODE/etc/k3s-mirror-agent/config.d"
  { echo "daemon:"; for kv in "$@"; do echo "  $kv"; done; } \
    > "$NODE/etc/k3s-mirror-agent/config.d/50-daemon.yaml"
}

# The daemon's status.json, read inside the node (its /run is the node's own tmpfs). djson,
# djson_is, idle_evaluations, wait_evaluated read it (tests/support/lib.sh).
daemon_status() { in_node cat "$STATUS_JSON"; }
wait_context() { echo "status: $(daemon_status 2>&1 | jq -c . 2>/dev/null)"; }

# wait_for DESCRIPTION SECONDS CMD...: polls CMD until it succeeds; fails naming DESCRIPTION.
wait_for() {
  local what=$1 limit=$2
  shift 2
  wait_until "$limit" "$what" "$@"
}

mode_is() { [ "$(stat -c %a "$1")" = "$2" ]; }

# The daemon has run at least N applies and is idle (nothing pending, no apply, no splay wait).
applies_at_least() {
  local s
  s=$(daemon_status) || return 1
  [ "$(jq -r .applies <<<"$s")" -ge "$1" ] && [ "$(jq -r .busy <<<"$s")" = false ]
}
wait_applies() { wait_for "the daemon reaching $1 applies" "${2:-30}" applies_at_least "$1"; }

# The unit's STATUS= text as systemd holds it (what `systemctl status` shows people).
status_text() { in_node systemctl show -p StatusText --value k3s-mirror-agent.service; }

# start_daemon: systemctl start, which returns once the daemon sent READY=1.
start_daemon() {
  DAEMON_USED=1
  in_node systemctl start k3s-mirror-agent.service ||
    fail "k3s-mirror-agent did not start: $(in_node journalctl -u k3s-mirror-agent --no-pager | tail -20)"
}
daemon_journal() { in_node journalctl -u k3s-mirror-agent.service --no-pager -o cat; }
