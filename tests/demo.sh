#!/usr/bin/env bash
# The quick start's "see it work": installs what it needs, builds the agent, boots a throwaway
# Debian 12 node with a real systemd (systemd-nspawn) running a stand-in for k3s, applies an
# example config there (three mirrors through a Harbor with its own CA) and shows the result:
# the registries.yaml written, the CA in the node's trust bundle, the restart of k3s.service
# seen through systemd, and a second apply that changes nothing. The node is removed at the
# end; nothing on this machine's own /etc is touched. Run as root on Debian 12. The first run
# builds the node's root filesystem from Debian's archive (~2 minutes; cached afterwards).
set -euo pipefail
cd "$(dirname "$0")/.."
bash packaging/install-build-deps.sh >&2
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/release -j "$(nproc)" --target k3s-mirror-agent k3s-standin >/dev/null
export AGENT=$PWD/build/release/agent/k3s-mirror-agent
export STANDIN=$PWD/build/release/tests/k3s-standin
export NODE_DIR=$PWD/tests/node
source tests/node/lib.sh

show() { printf '\n\033[1m[node]$ %s\033[0m\n' "$*"; in_node "$@"; }
echo "booting a throwaway node with a stand-in k3s.service ..."
start_node server

show cat /etc/k3s-mirror-agent/config.yaml
show k3s-mirror-agent apply
show cat /etc/rancher/k3s/registries.yaml
show ls -l /usr/local/share/ca-certificates/k3s-mirror-agent/
show openssl verify -CAfile /etc/ssl/certs/ca-certificates.crt /etc/k3s-mirror-agent/harbor-ca.pem
show journalctl -u k3s.service --no-pager -o short-monotonic --grep 'Stopp|Start'
show systemctl show k3s.service -p ActiveState -p NRestarts -p ExecMainStartTimestamp
show k3s-mirror-agent apply --output json
echo
echo "The second apply changed nothing and restarted nothing. The node is removed on exit."
