#!/usr/bin/env bash
# packaging/ansible/site.yml, run by ansible-core inside a booted server node (connection local),
# as an operator runs it against a cluster:
# 1. the first run installs the .deb, writes the CA, the password file and the config, applies:
#    changed in the PLAY RECAP, registries.yaml sends docker.io, ghcr.io and quay.io through the
#    cache, the CA is in the node's trust bundle, k3s restarted exactly once, by the playbook's
#    apply (the role holds the daemon the package started while it applies), and the daemon is
#    active again with the new config;
# 2. the second run changes nothing (changed=0) and restarts nothing;
# 3. a change k3s refuses fails the run on the server (the agent rolled back, the role put the
#    config back, the daemon does not retry it) and the workers' play does not start;
# and before them, a --check --diff run changes nothing; the registry password never appears
# in any run's output (run 1 with -v and --diff).
# Needs the amd64 .deb (packaging/build-debs.sh) in $DEBS (ctest sets it from K3SMA_DEBS_DIR).
DEBS=${DEBS:-}
# The newest package, if several builds are there.
# shellcheck disable=SC2012 # package file names are plain
DEB=$(ls -t "$DEBS"/k3s-mirror-agent_*_amd64.deb 2>/dev/null | head -n 1 || true)
if [ -z "$DEB" ]; then
  msg="no k3s-mirror-agent_*_amd64.deb in '${DEBS}' (build it: bash packaging/build-debs.sh DIR, then DEBS=DIR)"
  [ "${CI:-}" = true ] && { echo "FAIL: $msg" >&2; exit 1; }
  echo "SKIP: $msg"
  exit 77
fi

# A root filesystem with ansible-core (and python3-apt, which ansible.builtin.apt needs on the
# node; python3-cffi-backend named because debootstrap does not resolve the virtual package
# python3-cryptography depends on). The agent comes from the .deb, not from the build tree.
# NODE_EXTRA, INSTALL_AGENT and DAEMON_USED are read by lib.sh.
# shellcheck disable=SC2034
NODE_EXTRA="ansible-core python3-apt python3-cffi-backend"
# shellcheck disable=SC2034
INSTALL_AGENT=0
# shellcheck source=tests/node/lib.sh
source "$NODE_DIR/lib.sh"
# shellcheck disable=SC2034
DAEMON_USED=1  # a failure report shows the daemon's journal
PLAYBOOK_SRC=$NODE_DIR/../../packaging/ansible
[ -f "$PLAYBOOK_SRC/site.yml" ] || fail "no playbook at $PLAYBOOK_SRC/site.yml"

node_create server
node_boot
wait_state k3s.service active
[ "$(starts)" -eq 1 ] || fail "the stand-in started $(starts) times at boot"
[ ! -e "$NODE/usr/sbin/k3s-mirror-agent" ] || fail "the agent is installed before the playbook ran"

# The playbook as shipped, with the package where the role looks by default (debs/ beside it).
dir=/root/k3sma-ansible
cp -a "$PLAYBOOK_SRC" "$NODE$dir"
mkdir -p "$NODE$dir/debs"
cp "$DEB" "$NODE$dir/debs/"
echo "package: $(basename "$DEB")"

cat >"$NODE$dir/inventory.ini" <<'INI'
[k3s_server]
node ansible_connection=local ansible_python_interpreter=/usr/bin/python3

[k3s_agent]
INI

make_ca harbor
PASSWORD="pw-$(openssl rand -hex 16)"
{
  echo "k3s_mirror_agent_registry_url: https://harbor.home.lab"
  echo "k3s_mirror_agent_ca_pem: |"
  sed 's/^/  /' "$WORK/harbor.pem"
  echo "k3s_mirror_agent_mirrors:"
  echo "  docker.io: dockerhub-proxy"
  echo "  ghcr.io: ghcr-proxy"
  echo "  quay.io: quay-proxy"
  echo "k3s_mirror_agent_auth_username: robot\$k3s"
  echo "k3s_mirror_agent_auth_password: \"$PASSWORD\""
  echo "k3s_mirror_agent_k3s:"
  echo "  restart_timeout: 30s"
  echo "k3s_mirror_agent_daemon:"
  echo "  splay: 3s"
  echo "  probe_interval: 0s"
} >"$NODE$dir/vars.yml"

# playbook N ARGS...: runs ansible-playbook in the node with a clean environment; output in
# $WORK/runN.log, exit status in RC, wall time in SECS.
playbook() {
  local n=$1 t0
  shift
  t0=$(date +%s%N)
  in_node mkdir -p /tmp/ansible-home
  RC=0
  in_node env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp/ansible-home LANG=C.UTF-8 \
    ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1 ANSIBLE_STDOUT_CALLBACK=default \
    ANSIBLE_LOCAL_TEMP=/tmp/ansible-local ANSIBLE_REMOTE_TEMP=/tmp/ansible-remote \
    ANSIBLE_RETRY_FILES_ENABLED=0 ANSIBLE_HOST_KEY_CHECKING=0 \
    sh -c "cd $dir && exec ansible-playbook -i ${INV:-inventory.ini} site.yml -e @vars.yml $*" \
    >"$WORK/run$n.log" 2>&1 || RC=$?
  local ms=$((($(date +%s%N) - t0) / 1000000))
  SECS=$(printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100)))
  echo "--- run $n: exit $RC in $SECS s"
  # The recap line for the node: "node : ok=N changed=N unreachable=N failed=N ..."
  RECAP=$(grep -E '^node +: ok=' "$WORK/run$n.log" || true)
  echo "$RECAP"
}
recap() { sed -nE "s/.* $1=([0-9]+).*/\\1/p" <<<"$RECAP"; }
show() { echo "--- output of run $1:" >&2; cat "$WORK/run$1.log" >&2; }

# 0. A check run (--check --diff), as an operator previews a rollout: it succeeds, says what
# would change, and changes nothing.
playbook 0 --check --diff
[ "$RC" -eq 0 ] || { show 0; fail "the check run exited $RC"; }
if [ "$(recap failed)" != 0 ] || [ "$(recap changed)" -eq 0 ]; then show 0; fail "check run: $RECAP"; fi
[ ! -e "$NODE/usr/sbin/k3s-mirror-agent" ] || fail "the check run installed the package"
[ ! -e "$NODE/etc/rancher/k3s/registries.yaml" ] || fail "the check run wrote registries.yaml"
[ "$(starts)" -eq 1 ] || fail "the check run restarted k3s"

# 1. First run: everything is new.
playbook 1 -v --diff
[ "$RC" -eq 0 ] || { show 1; fail "run 1 exited $RC"; }
[ -n "$RECAP" ] || { show 1; fail "run 1 printed no PLAY RECAP for the node"; }
if [ "$(recap failed)" != 0 ] || [ "$(recap changed)" -eq 0 ]; then show 1; fail "run 1: $RECAP"; fi
grep -q 'PLAY \[Registry cache on control-plane nodes, one at a time\]' "$WORK/run1.log" ||
  { show 1; fail "the control-plane play did not run"; }
# shellcheck disable=SC2016 # dpkg-query's own ${...} fields
in_node dpkg-query -W -f='${Status} ${Version}\n' k3s-mirror-agent | grep -q '^install ok installed' ||
  fail "the package is not installed"

reg=$NODE/etc/rancher/k3s/registries.yaml
[ "$(stat -c %a "$reg")" = 600 ] || fail "registries.yaml mode $(stat -c %a "$reg")"
for m in docker.io:dockerhub-proxy ghcr.io:ghcr-proxy quay.io:quay-proxy; do
  grep -A2 "^  ${m%%:*}:" "$reg" | grep -q "\"https://harbor.home.lab/v2/${m#*:}\"" ||
    fail "registries.yaml does not send ${m%%:*} to /v2/${m#*:}: $(cat "$reg")"
done
# shellcheck disable=SC2016 # a literal $ in the robot account's name
grep -qF 'username: "robot$k3s"' "$reg" || fail "registries.yaml has no auth for the cache: $(sed 's/password:.*/password: <hidden>/' "$reg")"
grep -qF "$(sed -n 2p "$WORK/harbor.pem")" "$NODE/etc/ssl/certs/ca-certificates.crt" ||
  fail "the CA is not in the node's trust bundle"
pwfile=$NODE/etc/k3s-mirror-agent/registry-password
[ "$(stat -c '%a %U' "$pwfile")" = "600 root" ] || fail "password file: $(stat -c '%a %U' "$pwfile")"
[ "$(cat "$pwfile")" = "$PASSWORD" ] || fail "the password file does not hold the password"
grep -q '^# Ansible managed' "$NODE/etc/k3s-mirror-agent/config.yaml" || fail "config.yaml not from the role"

# The daemon saw config.yaml change (debounce 2 s); if it found changes pending it waited for
# the splay (3 s) and the apply lock, and then found nothing left to do. Give it that time, then
# count the restarts.
sleep 6
wait_for "the daemon idle" 60 applies_at_least 0
[ "$(starts)" -eq 2 ] || fail "k3s started $(starts) times: want the boot and exactly one restart"
[ "$(unit_state k3s.service)" = active ] || fail "k3s.service is $(unit_state k3s.service)"
[ "$(unit_state k3s-mirror-agent.service)" = active ] || fail "the daemon is $(unit_state k3s-mirror-agent.service)"
[ "$(in_node systemctl is-enabled k3s-mirror-agent.service)" = enabled ] || fail "the daemon is not enabled"
# The daemon has the new config and nothing against it. (Its STATUS= may still say "starting":
# a daemon whose only apply so far found the node already up to date has no last apply.)
if [ "$(djson .config.valid)" != true ] || [ "$(djson .config.path)" != /etc/k3s-mirror-agent/config.yaml ]; then
  fail "the daemon's config: $(daemon_status)"
fi
! status_text | grep -Eq '^(cannot apply|the last apply failed|drift)' || fail "the daemon says: $(status_text)"
echo "the daemon says: $(status_text)"
# The role holds the daemon while its own apply runs, so that apply did the restart.
grep -qF '\"restarted\":\"k3s.service\"' "$WORK/run1.log" ||
  { show 1; fail "the playbook's apply did not report restarting k3s.service"; }
ls "$NODE/etc/k3s-mirror-agent/"*~ 2>/dev/null && fail "backups of replaced files were left behind"
T1=$SECS

# 2. Second run: nothing to do, nothing restarted.
playbook 2
[ "$RC" -eq 0 ] || { show 2; fail "run 2 exited $RC"; }
if [ "$(recap changed)" != 0 ] || [ "$(recap failed)" != 0 ]; then show 2; fail "run 2 is not a no-op: $RECAP"; fi
T2=$SECS
sleep 3  # a daemon reacting to anything run 2 touched would have applied by now (debounce 2 s)
wait_for "the daemon idle" 60 applies_at_least 0
[ "$(starts)" -eq 2 ] || fail "run 2 restarted k3s: $(starts) starts"
[ "$(unit_state k3s-mirror-agent.service)" = active ] || fail "the daemon is not active after run 2"

# 3. A change k3s cannot use, rolled out to the server and a worker (the same node under a
# second name): the stand-in refuses a registries.yaml naming broken-proxy, as k3s that cannot
# start with a file. The agent rolls back; the role puts config.yaml back, so the daemon does
# not try the same change again; the playbook fails and the workers' play never starts.
mkdir -p "$NODE/etc/k3s-standin"
echo broken-proxy >"$NODE/etc/k3s-standin/refuse"
cp "$NODE/etc/k3s-mirror-agent/config.yaml" "$WORK/config.before"
cp "$reg" "$WORK/registries.before"
cat >"$NODE$dir/broken.yml" <<'YAML'
k3s_mirror_agent_mirrors:
  docker.io: broken-proxy
  ghcr.io: ghcr-proxy
  quay.io: quay-proxy
k3s_mirror_agent_k3s:
  restart_timeout: 8s
YAML
cat >"$NODE$dir/rollout.ini" <<'INI'
[k3s_server]
node ansible_connection=local ansible_python_interpreter=/usr/bin/python3

[k3s_agent]
worker1 ansible_connection=local ansible_python_interpreter=/usr/bin/python3
INI
INV=rollout.ini playbook 3 -e @broken.yml
[ "$RC" -ne 0 ] || { show 3; fail "run 3 succeeded with a file k3s refuses"; }
grep -q 'k3s-mirror-agent apply exited 1 (the previous files are back, and k3s runs on them)' "$WORK/run3.log" ||
  { show 3; fail "run 3 does not say the apply was rolled back"; }
grep -q 'PLAY \[Registry cache on workers' "$WORK/run3.log" && { show 3; fail "the workers' play ran after a failed server"; }
grep -Eq '^worker1 +:' "$WORK/run3.log" && { show 3; fail "worker1 was touched after a failed server"; }
cmp -s "$NODE/etc/k3s-mirror-agent/config.yaml" "$WORK/config.before" ||
  { show 3; fail "config.yaml was not put back: $(cat "$NODE/etc/k3s-mirror-agent/config.yaml")"; }
cmp -s "$reg" "$WORK/registries.before" || fail "registries.yaml is not the old file"
ls "$NODE/etc/k3s-mirror-agent/"*~ 2>/dev/null && fail "backups were left behind after the failure"
wait_state k3s.service active
[ "$(unit_state k3s-mirror-agent.service)" = active ] || fail "the daemon is not active after the failed run"
count=$(starts)
sleep 6  # debounce 2 s + splay 3 s: a daemon retrying the refused change would restart k3s now
wait_for "the daemon idle" 60 applies_at_least 0
[ "$(starts)" -eq "$count" ] || fail "k3s was restarted after the failed run ($count -> $(starts) starts)"
grep -q '/v2/dockerhub-proxy"' "$NODE/var/lib/rancher/k3s/agent/etc/containerd/certs.d/docker.io/hosts.toml" ||
  fail "k3s does not run on the old file"
echo "run 3 failed as it should, in $SECS s: $(grep -o 'k3s-mirror-agent apply exited 1[^"]*' "$WORK/run3.log" | head -1 | cut -c1-200)"

# The secret stayed out of every run's output (and out of the daemon's journal).
for n in 0 1 2 3; do
  ! grep -qF "$PASSWORD" "$WORK/run$n.log" || fail "run $n printed the registry password"
done
! daemon_journal | grep -qF "$PASSWORD" || fail "the daemon logged the registry password"
grep -q 'censored' "$WORK/run1.log" ||
  { show 1; fail "run 1 -v shows no censored (no_log) result for the password task"; }
if [ -n "${SHOW_RUNS:-}" ]; then
  for n in 0 1 2 3; do echo "=== run $n"; cat "$WORK/run$n.log"; done
fi
pass "ansible: run 1 changed the node ($T1 s, one k3s restart), run 2 changed nothing ($T2 s), a refused change stopped the rollout with the node as it was, the password never shown"
