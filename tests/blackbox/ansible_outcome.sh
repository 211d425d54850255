#!/usr/bin/env bash
# The Ansible role's per-host report of what apply did (roles/k3s_mirror_agent/tasks/outcome.yml
# and k3s_mirror_agent_report), run by the real ansible-playbook on apply's JSON: the agent's
# own output from a real apply against a scratch root, the shapes SPEC'd for today's agent
# (no "reload": a restarted unit reads as a restart), and those of the restart-free apply, whose
# "reload" is read as sent ("hot" is a change without a restart). A skipped apply (check mode)
# reports nothing. One local host per case.
source "$TESTLIB"
ROLE=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../packaging/ansible/roles" && pwd)
[ -f "$ROLE/k3s_mirror_agent/tasks/outcome.yml" ] || fail "no outcome.yml in $ROLE/k3s_mirror_agent/tasks"
command -v ansible-playbook >/dev/null || fail "no ansible-playbook (packaging/install-build-deps.sh installs ansible-core)"

setup_node
agent apply --output json
expect_rc 0
REAL=$OUT

PB=$WORK/pb
mkdir -p "$PB/host_vars"
# case NAME STDOUT EXPECTED [SKIPPED]
case_() {
  echo "$1 ansible_connection=local" >>"$PB/inventory.ini"
  jq -n --arg out "$2" --arg want "$3" --argjson skipped "${4:-false}" \
    '{k3s_mirror_agent_apply: ({rc: 0, stdout: $out} + (if $skipped then {skipped: true} else {} end)),
      want: $want}' >"$PB/host_vars/$1.yml"  # JSON is YAML
}
: >"$PB/inventory.ini"
case_ real_apply "$REAL" 'changed; reload: null; restarted: null'
case_ restarted '{"changed":true,"restart_needed":true,"restarted":"k3s.service","rolled_back":false,"actions":[],"error":null}' \
  'changed; reload: "restart"; restarted: "k3s.service"'
case_ up_to_date '{"changed":false,"restart_needed":false,"restarted":null,"rolled_back":false,"actions":[],"error":null}' \
  'up to date; reload: null; restarted: null'
case_ hot '{"changed":true,"restart_needed":false,"restarted":null,"reload":"hot","rolled_back":false,"actions":[],"error":null}' \
  'changed; reload: "hot"; restarted: null'
case_ reload_restart '{"changed":true,"restart_needed":true,"restarted":"k3s-agent.service","reload":"restart","rolled_back":false,"actions":[],"error":null}' \
  'changed; reload: "restart"; restarted: "k3s-agent.service"'
case_ state_only '{"changed":true,"restart_needed":false,"restarted":null,"reload":null,"rolled_back":false,"actions":[],"error":null}' \
  'changed; reload: null; restarted: null'
case_ check_mode '' 'no report' true

cat >"$PB/outcome.yml" <<'YAML'
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: k3s_mirror_agent
        tasks_from: outcome.yml
        public: true  # its vars (k3s_mirror_agent_report) stay visible to the next task
    - ansible.builtin.assert:
        that: got == want
        fail_msg: "{{ inventory_hostname }}: reported {{ got | to_json }}, want {{ want | to_json }}"
        quiet: true
      vars:
        got: "{{ k3s_mirror_agent_report if k3s_mirror_agent_outcome is defined else 'no report' }}"
YAML
RC=0
(cd "$PB" && env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$WORK" LANG=C.UTF-8 ANSIBLE_NOCOLOR=1 \
  ANSIBLE_ROLES_PATH="$ROLE" ANSIBLE_LOCAL_TEMP="$WORK/ansible-tmp" ANSIBLE_RETRY_FILES_ENABLED=0 \
  ansible-playbook -i inventory.ini outcome.yml) >"$WORK/run.log" 2>&1 || RC=$?
hosts=$(grep -c ' ansible_connection=local' "$PB/inventory.ini")
ok=$(grep -Ec '^[a-z_]+ +: ok=[0-9]+ +changed=0 +unreachable=0 +failed=0 ' "$WORK/run.log" || true)
if [ "$RC" -ne 0 ] || [ "$ok" -ne "$hosts" ]; then
  cat "$WORK/run.log" >&2
  fail "the role's report of apply's JSON (exit $RC, $ok of $hosts cases right)"
fi
pass "the role reports apply's JSON per host: $hosts cases, the agent's own and the reload field's"
