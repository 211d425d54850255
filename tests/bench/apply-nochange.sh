#!/usr/bin/env bash
# Benchmark, not a test: the median whole-process wall time of an `apply` that changes nothing
# (three mirrors and a CA on a scratch --root, the black-box tests' node), printed beside two
# floors from the same run: /bin/true (starting any process) and `k3s-mirror-agent --version`
# (starting this binary: loading libstdc++, libcrypto, libsystemd, yaml-cpp, spdlog and fmt,
# and doing nothing). The difference between the last two is the agent's own work.
# Target: under 5 ms.
# Usage: tests/bench/apply-nochange.sh [AGENT-BINARY]   (default: build/release's)
set -euo pipefail
cd "$(dirname "$0")/../.."
export AGENT=${1:-$PWD/build/release/agent/k3s-mirror-agent}
[ -x "$AGENT" ] || { echo "build first: cmake -S . -B build/release && cmake --build build/release" >&2; exit 1; }
command -v hyperfine >/dev/null || apt-get install -y -qq hyperfine >/dev/null
source tests/blackbox/lib.sh
setup_node
agent apply -q   # the first apply writes; the measured ones must not
expect_rc 0
before=$(snapshot)

hyperfine -N --warmup 20 --runs 300 --export-json "$WORK/times.json" \
  "/bin/true" "$AGENT --version" "$AGENT apply --root $ROOT -q" >/dev/null
[ "$before" = "$(snapshot)" ] || fail "an apply changed the root"

jq -r '.results[] | "\(.command | sub(" --root .*"; "")): median \(.median * 1000 * 100 | round / 100) ms, mean \(.mean * 1000 * 100 | round / 100) ms ± \(.stddev * 1000 * 100 | round / 100) ms over \(.times | length) runs"' \
  "$WORK/times.json"
