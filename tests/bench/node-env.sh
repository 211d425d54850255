# shellcheck shell=bash
# Sourced by the booted-node benchmarks, from the repository's top: the release build's agent
# and k3s stand-in (AGENT, STANDIN name others), and tests/node for its libraries.
export AGENT=${AGENT:-$PWD/build/release/agent/k3s-mirror-agent}
export STANDIN=${STANDIN:-$PWD/build/release/tests/k3s-standin}
export NODE_DIR=$PWD/tests/node
