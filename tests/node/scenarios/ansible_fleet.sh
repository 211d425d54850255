#!/usr/bin/env bash
# packaging/ansible/site.yml rolled out as an operator does: Debian's ansible-playbook on this
# machine, over ssh (strict host keys, a key made here) as a non-root user with `become`
# through sudo, into five booted nodes — two control-plane nodes (k3s.service) and three
# workers (k3s-agent.service), each with its own sshd on its own loopback address
# (tests/node/fleet-lib.sh). Workers go in batches of two: {agent1, agent2}, {agent3}.
#  0. --check --diff changes nothing on any node;
#  1. run 1 (-v --diff) installs the .deb and changes every host, with exactly one k3s start
#     per node, the servers never down at the same time, and every node's daemon active;
#  2. run 2 is changed=0 everywhere and starts nothing;
#  3. a one-mirror change starts k3s once on every node;
#  4. a file k3s refuses on server1 fails the run with server1's error, rolls server1 back, and
#     no other node is touched (server2 nor any worker);
#  5. a file k3s refuses on agent1, first of the worker batch {agent1, agent2}: the run fails
#     with agent1's error, agent1 is rolled back, agent2's daemon runs again, and the later
#     batch {agent3} is never touched (the regression of issue 15);
# and the registry password is in no output (run 1 with -v --diff).
# Needs the amd64 .deb (packaging/build-debs.sh) in $DEBS (ctest sets it from K3SMA_DEBS_DIR).
# shellcheck source=tests/node/fleet-lib.sh
source "$NODE_DIR/fleet-lib.sh"
fleet_deb
# shellcheck disable=SC2034 # read by lib.sh's fail: the journal of the daemon of the node in use
DAEMON_USED=1
fleet_start
echo "nodes: $(for n in "${FLEET[@]}"; do printf '%s=%s ' "$n" "${ADDR_OF[$n]}"; done)"
fleet_controller "$DEB"
echo "package: $(basename "$DEB")"
PASSWORD="pw-$(openssl rand -hex 16)"
fleet_vars "$PASSWORD"

show() { echo "--- output of run $1:" >&2; cat "$WORK/run$1.log" >&2; }
# touched N HOST: run N ran a task on HOST (any result line names it).
touched() { grep -Eq "^(ok|changed|fatal|skipping|failed): \\[$2\\]" "$WORK/run$1.log"; }

# The role starts each daemon again with systemctl, which returns after the daemon's start
# apply; a daemon has settled once its status.json says it is idle (nothing pending, nothing
# running: the look at its own writes included), or once it is not running at all. A daemon that
# restarted k3s would show in the counts taken after this.
daemon_settled() { ! in_node test -e "$STATUS_JSON" || djson_is .running false || daemon_idle; }
settle() {
  local n
  for n in "${FLEET[@]}"; do
    use "$n"
    wait_for "$n: the daemon idle" 60 daemon_settled
  done
}
# STARTS[NAME]: the stand-in's start count per node when last counted.
declare -A STARTS=()
count_starts() { local n; for n in "${FLEET[@]}"; do use "$n"; STARTS[$n]=$(starts); done; }
expect_starts() {  # expect_starts RUN DELTA NODE...: each NODE started DELTA more times
  local run=$1 delta=$2 n now
  shift 2
  for n in "$@"; do
    use "$n"
    now=$(starts)
    [ "$now" -eq $((STARTS[$n] + delta)) ] ||
      fail "run $run: k3s on $n started $((now - STARTS[$n])) times, want $delta"
  done
}
# Server 1's k3s was active again before server 2's went down (serial: 1).
servers_never_overlap() {
  local up1 down2
  up1=$(unit_usec server1 k3s.service ActiveEnterTimestampMonotonic)
  down2=$(unit_usec server2 k3s.service ActiveExitTimestampMonotonic)
  [ "$up1" -gt 0 ] && [ "$down2" -gt "$up1" ] ||
    fail "run $1: server2's k3s went down (at $down2 µs) before server1's was back (at $up1 µs)"
}

# run_ok N ARGS...: counts the starts, runs the playbook, wants it to succeed, lets the
# daemons settle; T<N> is its wall time.
run_ok() {
  local n=$1
  count_starts
  playbook "$@"
  [ "$RC" -eq 0 ] || { show "$n"; fail "run $n exited $RC"; }
  printf -v "T$n" %s "$SECS"
  settle
}

# 0. A check run: succeeds, says what would change, changes nothing.
playbook 0 --check --diff
[ "$RC" -eq 0 ] || { show 0; fail "the check run exited $RC"; }
for n in "${FLEET[@]}"; do
  use "$n"
  [ "$(recap 0 "$n" failed)" = 0 ] && [ "$(recap 0 "$n" changed)" -gt 0 ] ||
    { show 0; fail "check run on $n: $(grep -E "^$n +:" "$WORK/run0.log")"; }
  [ ! -e "$NODE/usr/sbin/k3s-mirror-agent" ] || fail "the check run installed the package on $n"
  [ ! -e "$NODE/etc/rancher/k3s/registries.yaml" ] || fail "the check run wrote registries.yaml on $n"
  [ ! -e "$NODE/etc/k3s-mirror-agent/config.yaml" ] || fail "the check run wrote config.yaml on $n"
  [ "$(starts)" -eq 1 ] || fail "the check run restarted k3s on $n"
done

# 1. First run: everything is new on every node.
run_ok 1 -v --diff
grep -q 'PLAY \[Registry cache on control-plane nodes, one at a time\]' "$WORK/run1.log" &&
  grep -q 'PLAY \[Registry cache on workers, in batches\]' "$WORK/run1.log" || { show 1; fail "run 1 did not run both plays"; }
for n in "${FLEET[@]}"; do
  use "$n"
  [ "$(recap 1 "$n" failed)" = 0 ] && [ "$(recap 1 "$n" changed)" -gt 0 ] ||
    { show 1; fail "run 1 on $n: $(grep -E "^$n +:" "$WORK/run1.log")"; }
  # shellcheck disable=SC2016 # dpkg-query's own ${...} fields
  in_node dpkg-query -W -f='${Status}\n' k3s-mirror-agent | grep -q '^install ok installed' ||
    fail "$n: the package is not installed"
  reg=$NODE/etc/rancher/k3s/registries.yaml
  [ "$(stat -c %a "$reg")" = 600 ] || fail "$n: registries.yaml mode $(stat -c %a "$reg")"
  for m in docker.io:dockerhub-proxy ghcr.io:ghcr-proxy quay.io:quay-proxy; do
    grep -A2 "^  ${m%%:*}:" "$reg" | grep -q "\"https://harbor.home.lab/v2/${m#*:}\"" ||
      fail "$n: registries.yaml does not send ${m%%:*} to /v2/${m#*:}"
  done
  # shellcheck disable=SC2016 # a literal $ in the robot account's name
  grep -qF 'username: "robot$k3s"' "$reg" || fail "$n: registries.yaml has no auth for the cache"
  grep -qF "$(sed -n 2p "$WORK/harbor.pem")" "$NODE/etc/ssl/certs/ca-certificates.crt" ||
    fail "$n: the CA is not in the node's trust bundle"
  pwfile=$NODE/etc/k3s-mirror-agent/registry-password
  [ "$(stat -c '%a %U' "$pwfile")" = "600 root" ] || fail "$n: password file $(stat -c '%a %U' "$pwfile")"
  [ "$(cat "$pwfile")" = "$PASSWORD" ] || fail "$n: the password file does not hold the password"
  grep -q '^# Ansible managed' "$NODE/etc/k3s-mirror-agent/config.yaml" || fail "$n: config.yaml not from the role"
  ls "$NODE/etc/k3s-mirror-agent/"*~ 2>/dev/null && fail "$n: backups of replaced files were left behind"
  [ "$(unit_state "$(unit_of "$n")")" = active ] || fail "$n: $(unit_of "$n") is $(unit_state "$(unit_of "$n")")"
  [ "$(unit_state k3s-mirror-agent.service)" = active ] || fail "$n: the daemon is $(unit_state k3s-mirror-agent.service)"
  [ "$(in_node systemctl is-enabled k3s-mirror-agent.service)" = enabled ] || fail "$n: the daemon is not enabled"
  if [ "$(djson .config.valid)" != true ] || [ "$(djson .config.path)" != /etc/k3s-mirror-agent/config.yaml ]; then
    fail "$n: the daemon's config: $(daemon_status)"
  fi
  [ "$(djson .held_back)" = null ] && [ "$(djson .last_apply.error)" = null ] &&
    [ "$(djson '.drift.files | length')" = 0 ] || fail "$n: the daemon is not up to date: $(daemon_status)"
  # The role held the daemon, so the playbook's own apply restarted k3s, and says so per host.
  grep -A1 -E "^ok: \[$n\] => \{$" "$WORK/run1.log" |
    grep -qF "\"msg\": \"changed; reload: \\\"restart\\\"; restarted: \\\"$(unit_of "$n")\\\"\"" ||
    { show 1; fail "run 1 does not report $n as changed with a restart of $(unit_of "$n")"; }
done
expect_starts 1 1 "${FLEET[@]}"
servers_never_overlap 1
grep -q 'censored' "$WORK/run1.log" || { show 1; fail "run 1 -v shows no censored (no_log) result for the password task"; }

# 2. Second run: nothing to do, nothing started.
run_ok 2
for n in "${FLEET[@]}"; do
  [ "$(recap 2 "$n" changed)" = 0 ] && [ "$(recap 2 "$n" failed)" = 0 ] ||
    { show 2; fail "run 2 is not a no-op on $n: $(grep -E "^$n +:" "$WORK/run2.log")"; }
  use "$n"
  [ "$(unit_state k3s-mirror-agent.service)" = active ] || fail "$n: the daemon is not active after run 2"
done
[ "$(grep -cF '"msg": "up to date; reload: null; restarted: null"' "$WORK/run2.log")" -eq "${#FLEET[@]}" ] ||
  { show 2; fail "run 2 does not report every node as up to date, without a reload"; }
expect_starts 2 0 "${FLEET[@]}"

# 3. One mirror changes: one start per node, servers one at a time.
sed -i 's/^  ghcr.io: ghcr-proxy$/  ghcr.io: ghcr-proxy-2/' "$CTL/vars.yml"
run_ok 3
for n in "${FLEET[@]}"; do
  [ "$(recap 3 "$n" changed)" -gt 0 ] || { show 3; fail "run 3 did not change $n"; }
  use "$n"
  grep -A2 '^  ghcr.io:' "$NODE/etc/rancher/k3s/registries.yaml" | grep -q '/v2/ghcr-proxy-2"' ||
    fail "$n: registries.yaml does not have the new ghcr.io project"
done
expect_starts 3 1 "${FLEET[@]}"
servers_never_overlap 3

# The state of every node, to tell later which ones a failed rollout touched.
save_files() {  # save_files TAG
  local n
  for n in "${FLEET[@]}"; do
    cp "$WORK/$n/etc/k3s-mirror-agent/config.yaml" "$WORK/$n.config.$1"
    cp "$WORK/$n/etc/rancher/k3s/registries.yaml" "$WORK/$n.registries.$1"
  done
}
# unchanged TAG RUN NODE...: NODE's files are those saved as TAG, and run RUN never touched it.
untouched() {
  local tag=$1 run=$2 n
  shift 2
  for n in "$@"; do
    touched "$run" "$n" && { show "$run"; fail "run $run touched $n after a node had failed"; }
    cmp -s "$WORK/$n/etc/k3s-mirror-agent/config.yaml" "$WORK/$n.config.$tag" || fail "run $run: $n's config.yaml changed"
    cmp -s "$WORK/$n/etc/rancher/k3s/registries.yaml" "$WORK/$n.registries.$tag" || fail "run $run: $n's registries.yaml changed"
  done
}
# rolled_back TAG RUN NODE: the refused change failed NODE with its error and left it as it was.
rolled_back() {
  local tag=$1 run=$2 n=$3 count
  # The failure that ends the rollout (raised after the role's block) carries the agent's error
  # and what the role put back.
  grep -E "^fatal: \\[$n\\]: FAILED! " "$WORK/run$run.log" |
    grep 'k3s-mirror-agent apply exited 1 (the previous files are back, and k3s runs on them)' |
    grep -q '(put back as they were: /etc/k3s-mirror-agent/config.yaml)' ||
    { show "$run"; fail "run $run does not end the rollout with $n's error and rollback"; }
  cmp -s "$WORK/$n/etc/k3s-mirror-agent/config.yaml" "$WORK/$n.config.$tag" || fail "run $run: $n's config.yaml was not put back"
  cmp -s "$WORK/$n/etc/rancher/k3s/registries.yaml" "$WORK/$n.registries.$tag" || fail "run $run: $n's registries.yaml is not the old file"
  ls "$WORK/$n/etc/k3s-mirror-agent/"*~ 2>/dev/null && fail "run $run: backups were left behind on $n"
  use "$n"
  wait_state "$(unit_of "$n")" active
  grep -q '/v2/dockerhub-proxy"' "$NODE/var/lib/rancher/k3s/agent/etc/containerd/certs.d/docker.io/hosts.toml" ||
    fail "run $run: k3s on $n does not run on the old file"
  [ "$(unit_state k3s-mirror-agent.service)" = active ] || fail "run $run: $n's daemon is not active"
  count=$(starts)
  settle  # a daemon retrying the refused change would restart k3s now
  use "$n"
  [ "$(starts)" -eq "$count" ] || fail "run $run: k3s on $n was restarted after the failed run"
}
cat >"$CTL/refused.yml" <<'YAML'
k3s_mirror_agent_k3s:
  restart_timeout: 8s
YAML

# 4. server1 refuses the file (the stand-in's test hook: it will not start on a registries.yaml
# naming the marker, as k3s that cannot use a file): the rollout stops at server1.
save_files before4
mkdir -p "$WORK/server1/etc/k3s-standin"
echo broken-on-server >"$WORK/server1/etc/k3s-standin/refuse"
sed -i 's/^  docker.io: .*/  docker.io: broken-on-server/' "$CTL/vars.yml"
count_starts
playbook 4 -e @refused.yml
[ "$RC" -ne 0 ] || { show 4; fail "run 4 succeeded with a file k3s refuses"; }
grep -q 'PLAY \[Registry cache on workers' "$WORK/run4.log" && { show 4; fail "the workers' play ran after a failed server"; }
untouched before4 4 server2 "${AGENTS[@]}"
expect_starts 4 0 server2 "${AGENTS[@]}"
rolled_back before4 4 server1
rm "$WORK/server1/etc/k3s-standin/refuse"

# 5. agent1 refuses, first of the worker batch {agent1, agent2}: the batch fails, and the later
# batch {agent3} never starts. Rolled out to the workers only (--limit), as an operator does
# once the servers have it: the servers' play has no host then.
save_files before5
mkdir -p "$WORK/agent1/etc/k3s-standin"
echo broken-on-agent1 >"$WORK/agent1/etc/k3s-standin/refuse"
sed -i 's/^  docker.io: .*/  docker.io: broken-on-agent1/' "$CTL/vars.yml"
count_starts
playbook 5 -e @refused.yml --limit k3s_agent
[ "$RC" -ne 0 ] || { show 5; fail "run 5 succeeded with a file k3s refuses on agent1"; }
T5=$SECS
expect_starts 5 1 agent2
expect_starts 5 0 server1 server2
rolled_back before5 5 agent1
untouched before5 5 agent3
expect_starts 5 0 agent3
[ "$(recap 5 agent3 changed)" = "" ] || [ "$(recap 5 agent3 changed)" = 0 ] || fail "run 5 changed agent3"
use agent2
[ "$(unit_state k3s-mirror-agent.service)" = active ] || fail "run 5: agent2's daemon was left stopped"

# The secret stayed out of every run's output and every daemon's journal.
for r in 0 1 2 3 4 5; do
  ! grep -qF "$PASSWORD" "$WORK/run$r.log" || fail "run $r printed the registry password"
done
for n in "${FLEET[@]}"; do
  use "$n"
  ! daemon_journal | grep -qF "$PASSWORD" || fail "$n's daemon logged the registry password"
done
if [ -n "${SHOW_RUNS:-}" ]; then
  for r in 0 1 2 3 4 5; do echo "=== run $r"; cat "$WORK/run$r.log"; done
fi
pass "ansible over ssh, 5 nodes: run 1 changed every node with one k3s start each ($T1 s), run 2 changed nothing ($T2 s), a mirror change one start per node ($T3 s), a refused file on server1 stopped the rollout there, one on agent1 stopped the later worker batch ($T5 s), the password never shown"
