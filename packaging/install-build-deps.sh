#!/bin/sh
# Installs the Debian 12 packages needed to build and test k3s-mirror-agent: the libraries, and
# for the tests jq, openssl, ca-certificates, docker-registry and nginx (the probe's real
# registry, and the pull-through cache of the pull scenarios), skopeo (pushes their images),
# debootstrap and systemd-container (the booted nodes), procps (pgrep), man-db and groff-base
# (the man page test renders the pages as lintian does), systemd (systemd-analyze judges the
# unit's hardening; a container image may lack it), lintian (checks the packages),
# ansible-core, openssh-client and iproute2 (ss) for the fleet test (Ansible over ssh into nodes),
# clang-14 and libclang-rt-14-dev (libFuzzer and the sanitizers' runtime, for tests/fuzz/),
# clang-tidy-14 (tests/clang-tidy.sh, the .clang-tidy checks),
# strace (the crash tests kill the agent at every fsync with its fault injection), util-linux
# (flock: the concurrency tests hold the agent's lock).
# Used by the README's quick start and by .ci/run; safe to run again (apt-get is idempotent).
# Extra package names on the command line are installed too (build-debs.sh adds debhelper).
set -eu
export DEBIAN_FRONTEND=noninteractive
pkgs="cmake g++ make pkg-config
  libyaml-cpp-dev libssl-dev libsystemd-dev libcli11-dev libspdlog-dev libfmt-dev libcurl4-openssl-dev
  nlohmann-json3-dev libdtl-dev libgtest-dev libgmock-dev
  ca-certificates openssl jq docker-registry nginx-light skopeo python3 python3-cryptography
  debootstrap systemd-container procps man-db groff-base systemd lintian strace util-linux
  ansible-core openssh-client iproute2
  clang-14 libclang-rt-14-dev clang-tidy-14 $*"
# Only touch the package lists when something is missing: keeps a second run fast and offline.
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  apt-get update -qq
  # shellcheck disable=SC2086 # word splitting of the package list is intended
  apt-get install -y -qq --no-install-recommends $missing
fi
