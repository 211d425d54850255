#!/usr/bin/env bash
# Builds (once) the root filesystem of a throwaway Debian 12 node with systemd, for the node
# tests (../../shared/RECIPES.md, recipe 1): debootstrap minbase plus systemd, dbus, the trust
# store and the shared libraries the agent links. Cached under /var/cache/k3s-mirror-agent/;
# a fresh machine builds it from scratch (~2 min). The cache is keyed by this script's content,
# so changing the package list rebuilds it.
# Usage: tests/node/build-rootfs.sh [amd64|arm64]   -> prints the rootfs path
set -euo pipefail
arch=${1:-amd64}
here=$(cd "$(dirname "$0")" && pwd)
cache=/var/cache/k3s-mirror-agent
key=$(sha256sum "$here/build-rootfs.sh" | cut -c1-12)
rootfs=$cache/node-$arch-$key

if [ -f "$rootfs/.complete" ]; then
  echo "$rootfs"
  exit 0
fi
command -v debootstrap >/dev/null && command -v systemd-nspawn >/dev/null ||
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap systemd-container >&2
mkdir -p "$cache"
rm -rf "$rootfs" "$rootfs.tmp"
# procps: /bin/kill, which the shipped unit's ExecReload uses (every non-minimal Debian has it).
packages=systemd,dbus,systemd-sysv,ca-certificates,procps,libyaml-cpp0.7,libspdlog1.10,libfmt9,libssl3
debootstrap --arch="$arch" --variant=minbase --include="$packages" \
  bookworm "$rootfs.tmp" http://deb.debian.org/debian >&2
# A node needs no getty on the container's console, and no network setup.
chroot "$rootfs.tmp" systemctl mask console-getty.service getty@tty1.service \
  systemd-networkd.service systemd-resolved.service >/dev/null 2>&1 || true
echo node > "$rootfs.tmp/etc/hostname"
touch "$rootfs.tmp/.complete"
mv "$rootfs.tmp" "$rootfs"
echo "$rootfs"
