# shellcheck shell=bash
# Several booted nodes for one test, reached over ssh as an Ansible controller reaches a
# cluster. Sourcing it sources lib.sh, which checks the prerequisites, builds (once) the root
# filesystem variant with sshd, sudo and python3, makes $WORK and boots nothing. Needs AGENT,
# STANDIN, NODE_DIR as lib.sh does, and DEBS (the .deb the role installs) for fleet_deb. Each
# node is a copy of that root in $WORK/NAME with the k3s stand-in units (lib.sh's node_create),
# booted with systemd-nspawn like lib.sh's single node.
#
# The nodes share the host's network namespace, so each node's sshd listens on port 22 of its
# own loopback address (all of 127.0.0.0/8 is loopback): 127.A.B.N, with A.B picked at random
# per run so that two runs (other tests, other engineers) never collide. Host keys and the
# client key are generated here; the controller checks host keys strictly against its own
# known_hosts. The login user is `ops`, not root, with passwordless sudo (Ansible's `become`).
#
#   fleet_node NAME ROLE   a node (ROLE: server -> k3s.service, agent -> k3s-agent.service)
#   fleet_boot             boots every node at once; returns when each runs and sshd listens
#   use NAME               points lib.sh's helpers (in_node, starts, unit_state, djson, ...) at NAME
#   fleet_ssh NAME CMD...  runs CMD on NAME over ssh as ops (to check the controller's way in)
#   fleet_start            the usual fleet: server1, server2 (k3s.service), agent1..agent3
#                          (k3s-agent.service), booted, k3s active, ops can become root
#   fleet_controller DEB   $CTL: the playbook as shipped with DEB in its debs/, an inventory of
#                          the fleet, an ansible.cfg naming this run's key and known_hosts
#   fleet_vars PASSWORD    $CTL/vars.yml: a cache with a CA, three mirrors, a robot account
#   playbook N ARGS...     ansible-playbook site.yml on the controller: $WORK/runN.log, RC, SECS
# After fleet_boot: FLEET (node names in order), ADDR_OF[NAME], SSH_DIR (id_ed25519, known_hosts).

# The nodes' root: sshd, sudo and python3 for Ansible's modules, python3-apt for its apt
# module. The agent comes from the .deb (fleet_controller). Both are read by lib.sh.
# shellcheck disable=SC2034
NODE_EXTRA="openssh-server sudo python3 python3-apt"
# shellcheck disable=SC2034
INSTALL_AGENT=0
# shellcheck source=tests/node/lib.sh
source "$NODE_DIR/lib.sh"
need_tools ssh ssh-keygen ss ansible-playbook

FLEET=()
declare -A ADDR_OF=() NSPAWN_OF=() PID1_OF=()
SSH_DIR=$WORK/ssh
mkdir -m 700 "$SSH_DIR"
ssh-keygen -q -t ed25519 -N '' -C "k3sma-fleet-$$" -f "$SSH_DIR/id_ed25519"
: >"$SSH_DIR/known_hosts"

# A loopback block nobody listens in: 127.A.B.0/24 with A in 2..254 (never 127.0.x or 127.1.x,
# which hosts use for their own names).
while :; do
  FLEET_NET="127.$((RANDOM % 253 + 2)).$((RANDOM % 254 + 1))"
  ss -Htln | awk '{print $4}' | grep -qF "$FLEET_NET." || break
done

# Every node is asked to shut down at once, then each is waited for (lib.sh's stop_node).
fleet_cleanup() {
  local name pid
  for name in "${FLEET[@]}"; do
    pid=${NSPAWN_OF[$name]:-}
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  for name in "${FLEET[@]}"; do
    stop_node "${NSPAWN_OF[$name]:-}" "${PID1_OF[$name]:-}"
  done
}
on_exit fleet_cleanup

use() {
  NODE=$WORK/$1
  PID1=${PID1_OF[$1]:-}
}

fleet_node() {  # fleet_node NAME ROLE
  local name=$1 addr
  addr="$FLEET_NET.$((${#FLEET[@]} + 1))"
  NODE=$WORK/$name
  node_create "$2"
  FLEET+=("$name")
  ADDR_OF[$name]=$addr
  echo "$name" >"$NODE/etc/hostname"
  printf '127.0.0.1\tlocalhost\n%s\t%s\n::1\tlocalhost ip6-localhost\n' "$addr" "$name" >"$NODE/etc/hosts"
  # Its own host key (the cached root's were made once, for every node).
  rm -f "$NODE"/etc/ssh/ssh_host_*
  ssh-keygen -q -t ed25519 -N '' -C "$name" -f "$NODE/etc/ssh/ssh_host_ed25519_key"
  echo "$addr $(cut -d' ' -f1,2 "$NODE/etc/ssh/ssh_host_ed25519_key.pub")" >>"$SSH_DIR/known_hosts"
  cat >"$NODE/etc/ssh/sshd_config.d/k3sma-test.conf" <<EOF
ListenAddress $addr:22
HostKey /etc/ssh/ssh_host_ed25519_key
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
AllowUsers ops
EOF
  # A container may not set the audit login uid; sshd's PAM stack requires it by default.
  sed -i 's/^session *required *pam_loginuid.so/session optional pam_loginuid.so/' "$NODE/etc/pam.d/sshd"
  chroot "$NODE" useradd --create-home --shell /bin/bash ops
  install -d -m 700 -o "$(chroot "$NODE" id -u ops)" -g "$(chroot "$NODE" id -g ops)" "$NODE/home/ops/.ssh"
  install -m 600 -o "$(chroot "$NODE" id -u ops)" -g "$(chroot "$NODE" id -g ops)" \
    "$SSH_DIR/id_ed25519.pub" "$NODE/home/ops/.ssh/authorized_keys"
  echo 'ops ALL=(ALL:ALL) NOPASSWD: ALL' >"$NODE/etc/sudoers.d/ops"
  chmod 440 "$NODE/etc/sudoers.d/ops"
}

sshd_listening() { ss -Htln "src $1 and sport = :22" | grep -q .; }

fleet_boot() {
  local name deadline
  for name in "${FLEET[@]}"; do
    systemd-nspawn -D "$WORK/$name" --boot --register=no --keep-unit --quiet \
      --machine="k3sma-$$-$name" >"$WORK/$name.console.log" 2>&1 &
    NSPAWN_OF[$name]=$!
  done
  deadline=$((SECONDS + ${BOOT_TIMEOUT:-120}))
  for name in "${FLEET[@]}"; do
    use "$name"
    booted_node "${NSPAWN_OF[$name]}" "$WORK/$name.console.log" "$deadline" "$name"
    PID1_OF[$name]=$PID1
    until sshd_listening "${ADDR_OF[$name]}"; do
      [ $SECONDS -lt $deadline ] || fail "$name's sshd does not listen on ${ADDR_OF[$name]}:22: $(in_node systemctl status ssh.service --no-pager 2>&1 | tail -5)"
      sleep 0.1
    done
  done
}

fleet_ssh() {  # fleet_ssh NAME CMD...
  local name=$1
  shift
  ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$SSH_DIR/known_hosts" \
    -o IdentitiesOnly=yes -i "$SSH_DIR/id_ed25519" "ops@${ADDR_OF[$name]}" "$@"
}

# The unit's timestamps (CLOCK_MONOTONIC, µs): the nodes share the host's kernel and so its
# monotonic clock, so these compare across nodes.
unit_usec() {  # unit_usec NAME UNIT PROPERTY   e.g. ActiveEnterTimestampMonotonic
  use "$1"
  in_node systemctl show -p "$3" --value "$2"
}

unit_of() { case $1 in server*) echo k3s.service ;; *) echo k3s-agent.service ;; esac; }

SERVERS=(server1 server2)
AGENTS=(agent1 agent2 agent3)
fleet_start() {
  local n
  for n in "${SERVERS[@]}"; do fleet_node "$n" server; done
  for n in "${AGENTS[@]}"; do fleet_node "$n" agent; done
  fleet_boot
  for n in "${FLEET[@]}"; do
    use "$n"
    wait_state "$(unit_of "$n")" active
    [ "$(starts)" -eq 1 ] || fail "$n: the stand-in started $(starts) times at boot"
    [ "$(fleet_ssh "$n" sudo -n id -un)" = root ] || fail "$n: ops cannot become root through sudo"
  done
}

# The newest amd64 package in $DEBS, or a skip (a failure with CI=true) when there is none.
fleet_deb() {
  # shellcheck disable=SC2012 # package file names are plain
  DEB=$(ls -t "${DEBS:-}"/k3s-mirror-agent_*_amd64.deb 2>/dev/null | head -n 1 || true)
  [ -n "$DEB" ] && return 0
  local msg="no k3s-mirror-agent_*_amd64.deb in '${DEBS:-}' (build it: bash packaging/build-debs.sh DIR, then DEBS=DIR)"
  [ "${CI:-}" = true ] && fail "$msg"
  echo "SKIP: $msg"
  exit 77
}

fleet_controller() {  # fleet_controller DEB
  local src=$NODE_DIR/../../packaging/ansible n
  [ -f "$src/site.yml" ] || fail "no playbook at $src/site.yml"
  CTL=$WORK/controller
  cp -a "$src" "$CTL"
  mkdir -p "$CTL/debs" "$WORK/ansible-home"
  cp "$1" "$CTL/debs/"
  {
    echo "[k3s_server]"
    for n in "${SERVERS[@]}"; do echo "$n ansible_host=${ADDR_OF[$n]}"; done
    echo "[k3s_agent]"
    for n in "${AGENTS[@]}"; do echo "$n ansible_host=${ADDR_OF[$n]}"; done
    printf '[k3s_cluster:children]\nk3s_server\nk3s_agent\n[k3s_cluster:vars]\nansible_user=ops\n'
  } >"$CTL/inventory.ini"
  # Pipelining (one ssh round trip per task instead of three) is what operators turn on for
  # speed; become through sudo needs no tty for it.
  cat >"$CTL/ansible.cfg" <<CFG
[defaults]
inventory = $CTL/inventory.ini
private_key_file = $SSH_DIR/id_ed25519
interpreter_python = /usr/bin/python3
retry_files_enabled = False
forks = 10
local_tmp = $WORK/ansible-local
[ssh_connection]
ssh_args = -o ControlMaster=auto -o ControlPersist=60s -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$SSH_DIR/known_hosts -o IdentitiesOnly=yes -o BatchMode=yes
control_path_dir = $WORK/cp
pipelining = True
CFG
}

fleet_vars() {  # fleet_vars PASSWORD
  make_ca harbor
  {
    echo "k3s_mirror_agent_registry_url: https://harbor.home.lab"
    echo "k3s_mirror_agent_ca_pem: |"
    sed 's/^/  /' "$WORK/harbor.pem"
    echo "k3s_mirror_agent_mirrors:"
    echo "  docker.io: dockerhub-proxy"
    echo "  ghcr.io: ghcr-proxy"
    echo "  quay.io: quay-proxy"
    echo "k3s_mirror_agent_auth_username: robot\$k3s"
    echo "k3s_mirror_agent_auth_password: \"$1\""
    echo "k3s_mirror_agent_k3s:"
    echo "  restart_timeout: 30s"
    echo "k3s_mirror_agent_daemon:"
    echo "  debounce: 1s"
    echo "  splay: 1s"
    echo "  probe_interval: 0s"
  } >"$CTL/vars.yml"
}

# playbook N ARGS...: with a clean environment and the workers in batches of two.
playbook() {
  local n=$1 t0 ms
  shift
  t0=$(date +%s%N)
  RC=0
  (cd "$CTL" && env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$WORK/ansible-home" LANG=C.UTF-8 \
    ANSIBLE_CONFIG="$CTL/ansible.cfg" ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 \
    ansible-playbook site.yml -e @vars.yml -e k3s_mirror_agent_worker_batch=2 "$@") \
    >"$WORK/run$n.log" 2>&1 || RC=$?
  ms=$((($(date +%s%N) - t0) / 1000000))
  SECS=$(printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100)))
  echo "--- run $n: exit $RC in $SECS s"
  sed -n '/^PLAY RECAP/,$p' "$WORK/run$n.log"
}
# recap N HOST FIELD: a number from HOST's PLAY RECAP line of run N (empty: not in the recap).
recap() { sed -nE "s/^$2 +: .* $3=([0-9]+).*/\\1/p" "$WORK/run$1.log"; }
