#!/usr/bin/env bash
# The quick start's "see it work": installs what it needs, builds the agent, and applies an
# example config (three mirrors through a Harbor with its own CA) to a scratch node root with
# --root, then shows what it wrote, that the real update-ca-certificates put the CA into the
# trust bundle, and that a second apply changes nothing. Touches nothing outside the scratch
# root and the build directory. Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
bash packaging/install-build-deps.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/release -j "$(nproc)" --target k3s-mirror-agent >/dev/null
agent=$PWD/build/release/agent/k3s-mirror-agent

root=$(mktemp -d /tmp/k3s-mirror-agent-demo.XXXXXX)
# What a Debian node has: the trust store's folders (empty here, so the bundle stays small).
mkdir -p "$root/etc/ssl/certs" "$root/usr/share/ca-certificates" \
  "$root/etc/ca-certificates/update.d" "$root/etc/k3s-mirror-agent"
: > "$root/etc/ca-certificates.conf"
# The cache's CA, as Harbor's installer would have made it.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
  -subj "/CN=Home Lab Harbor CA" -addext basicConstraints=critical,CA:TRUE \
  -addext keyUsage=critical,keyCertSign,cRLSign \
  -keyout /dev/null -out "$root/etc/k3s-mirror-agent/harbor-ca.pem" 2>/dev/null
cat > "$root/etc/k3s-mirror-agent/config.yaml" <<'YAML'
registry:
  url: https://harbor.home.lab
  ca_file: /etc/k3s-mirror-agent/harbor-ca.pem
mirrors:
  docker.io: dockerhub-proxy
  ghcr.io: ghcr-proxy
  quay.io: quay-proxy
YAML

show() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
echo "scratch node root: $root"
show cat "$root/etc/k3s-mirror-agent/config.yaml"
show "$agent" apply --root "$root"
show cat "$root/etc/rancher/k3s/registries.yaml"
show ls -l "$root/usr/local/share/ca-certificates/k3s-mirror-agent/" "$root/etc/ssl/certs/"
show openssl x509 -in "$root/etc/ssl/certs/ca-certificates.crt" -noout -subject -enddate
show "$agent" apply --root "$root" --output json
echo
echo "The second apply changed nothing. Try: $agent diff --root $root  (after editing the config)"
