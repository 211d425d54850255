#!/usr/bin/env bash
# Cross-compiles the k3s stand-in (k3s-standin.cpp) for the arm64 node, against the same arm64
# sysroot as the package (packaging/arm64-sysroot.sh). Two files (the stand-in and the model of
# k3s's certs.d it writes with, common/certs_d.cpp, which needs only the standard library and
# yaml-cpp), so one compiler call rather than a second CMake build.
# Usage: tests/node/build-standin-arm64.sh OUT
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
sysroot=$(bash "$here/../../packaging/arm64-sysroot.sh")
command -v aarch64-linux-gnu-g++ >/dev/null ||
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends g++-aarch64-linux-gnu >&2
lib=$sysroot/usr/lib/aarch64-linux-gnu
aarch64-linux-gnu-g++ -std=c++20 -O2 --sysroot="$sysroot" -isystem "$sysroot/usr/include" \
  -isystem "$sysroot/usr/include/aarch64-linux-gnu" -I "$here/../.." "$here/k3s-standin.cpp" \
  "$here/../../common/certs_d.cpp" -o "$1" \
  -L "$lib" -Wl,-rpath-link,"$lib" -Wl,-rpath-link,"$sysroot/lib/aarch64-linux-gnu" \
  -lyaml-cpp -lsystemd
