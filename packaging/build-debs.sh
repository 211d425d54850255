#!/usr/bin/env bash
# Builds the Debian packages, amd64 and arm64, on this amd64 Debian 12 machine:
#   packaging/build-debs.sh OUTDIR        (ARCHS="amd64" to build only some)
# OUTDIR gets k3s-mirror-agent_<version>_<arch>.deb and its -dbgsym package (the binary's debug
# info) for each architecture. The packaging is packaging/debian/ (debhelper): dh_shlibdeps
# computes Depends from the libraries the binary links, dh_strip splits the debug info,
# dh_installsystemd writes the maintainer-script parts that enable, start, restart on upgrade
# and stop the service. arm64 is cross-compiled against a sysroot of Debian's arm64 packages
# (packaging/arm64-sysroot.sh, packaging/cross-arm64.cmake). Needs root for apt-get the first
# time; the build itself needs no root (Rules-Requires-Root: no).
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: packaging/build-debs.sh OUTDIR" >&2; exit 2; }
src=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)
archs=${ARCHS:-amd64 arm64}
export DEBIAN_FRONTEND=noninteractive

# The tools: the build dependencies, debhelper, and for arm64 the cross compiler.
need="debhelper dpkg-dev"
case " $archs " in *" arm64 "*) need="$need g++-aarch64-linux-gnu" ;; esac
# shellcheck disable=SC2086 # a list of package names
bash "$src/packaging/install-build-deps.sh" $need

# One version, said once: the changelog's must be CMake's project version.
cmake_version=$(sed -n 's/^project(k3s-mirror-agent VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
deb_version=$(dpkg-parsechangelog -l "$src/packaging/debian/changelog" -S Version)
[ "$cmake_version" = "$deb_version" ] || {
  echo "build-debs: CMakeLists.txt says $cmake_version, packaging/debian/changelog $deb_version" >&2
  exit 1
}

work=$(mktemp -d /var/tmp/k3sma-debs.XXXXXX)
trap 'rm -rf "$work"' EXIT
for arch in $archs; do
  echo "== k3s-mirror-agent $deb_version for $arch"
  tree=$work/$arch/k3s-mirror-agent-$deb_version
  mkdir -p "$tree"
  # The source as it is (committed or not), without builds; debian/ from packaging/.
  tar -C "$src" --exclude=./build --exclude=./.git -cf - . | tar -C "$tree" -xf -
  cp -r "$src/packaging/debian" "$tree/debian"
  flags=(-b -uc -us)
  if [ "$arch" != "$(dpkg --print-architecture)" ]; then
    [ "$arch" = arm64 ] || { echo "build-debs: cannot build for $arch" >&2; exit 2; }
    K3SMA_SYSROOT=$(bash "$src/packaging/arm64-sysroot.sh")
    export K3SMA_SYSROOT
    # -d: the arm64 build dependencies are in the sysroot, not installed as packages.
    flags+=(-a "$arch" -d)
  fi
  (cd "$tree" && DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" dpkg-buildpackage "${flags[@]}") \
    >"$work/$arch.log" 2>&1 || { tail -60 "$work/$arch.log" >&2; echo "build-debs: $arch failed" >&2; exit 1; }
  mv "$work/$arch"/*.deb "$out/"
done
cd "$out"
for deb in k3s-mirror-agent*.deb; do
  printf '%-48s %8s bytes, installed %s KiB\n' "$deb" "$(stat -c %s "$deb")" \
    "$(dpkg-deb -f "$deb" Installed-Size)"
done
