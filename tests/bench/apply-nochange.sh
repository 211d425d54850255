#!/usr/bin/env bash
# Benchmark, not a test: the median whole-process wall time of an `apply` that changes nothing
# (three mirrors and a CA on a scratch --root), printed beside two floors from the same run:
# /bin/true (starting any process) and `k3s-mirror-agent --version` (starting this binary:
# loading libstdc++, libcrypto, libsystemd, yaml-cpp, spdlog and fmt, and doing nothing).
# The difference between the last two is the agent's own work. Target: under 5 ms.
# Usage: tests/bench/apply-nochange.sh [AGENT-BINARY]   (default: build/release's)
set -euo pipefail
cd "$(dirname "$0")/../.."
agent=${1:-$PWD/build/release/agent/k3s-mirror-agent}
[ -x "$agent" ] || { echo "build first: cmake -S . -B build/release && cmake --build build/release" >&2; exit 1; }
command -v hyperfine >/dev/null || apt-get install -y -qq hyperfine >/dev/null

root=$(mktemp -d /tmp/k3sma-bench.XXXXXX)
times=$(mktemp /tmp/k3sma-bench-times.XXXXXX.json)
trap 'rm -rf "$root" "$times"' EXIT
mkdir -p "$root/etc/ssl/certs" "$root/usr/share/ca-certificates" \
  "$root/etc/ca-certificates/update.d" "$root/etc/k3s-mirror-agent"
: > "$root/etc/ca-certificates.conf"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 -subj /CN=bench-ca \
  -addext basicConstraints=critical,CA:TRUE -keyout /dev/null \
  -out "$root/etc/k3s-mirror-agent/harbor-ca.pem" 2>/dev/null
cat > "$root/etc/k3s-mirror-agent/config.yaml" <<'YAML'
registry:
  url: https://harbor.home.lab
  ca_file: /etc/k3s-mirror-agent/harbor-ca.pem
mirrors:
  docker.io: dockerhub-proxy
  ghcr.io: ghcr-proxy
  quay.io: quay-proxy
YAML
"$agent" apply --root "$root" -q >/dev/null   # the first apply writes; the measured ones must not
before=$(find "$root" -printf '%p %i %T@\n' | sort)

hyperfine -N --warmup 20 --runs 300 --export-json "$times" \
  "/bin/true" "$agent --version" "$agent apply --root $root -q" >/dev/null
after=$(find "$root" -printf '%p %i %T@\n' | sort)
[ "$before" = "$after" ] || { echo "an apply changed the root" >&2; exit 1; }

jq -r '.results[] | "\(.command | sub(" --root .*"; "")): median \(.median * 1000 * 100 | round / 100) ms, mean \(.mean * 1000 * 100 | round / 100) ms ± \(.stddev * 1000 * 100 | round / 100) ms over \(.times | length) runs"' \
  "$times"
