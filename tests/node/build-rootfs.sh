#!/usr/bin/env bash
# Builds (once) the root filesystem of a throwaway Debian 12 node with systemd, for the node
# tests (tests/node/README.md, "A booted systemd node"): debootstrap minbase plus systemd, dbus,
# the trust store and the shared libraries the agent links, for amd64 or (under qemu) arm64.
# EXTRA packages make a variant (the pull scenarios add containerd, the Ansible fleet sshd).
# Cached under /var/cache/k3s-mirror-agent/; a fresh machine builds it from scratch (~2 min for
# amd64, ~5 for arm64). The cache is keyed by this script's commands (comment-only and blank
# lines left out, so editing a comment does not rebuild every node root) and the extra packages,
# so changing the package list rebuilds it. Two tests asking for the same root at once build it
# once (flock).
# Usage: tests/node/build-rootfs.sh [amd64|arm64] [EXTRA-PACKAGE...]   -> prints the rootfs path
set -euo pipefail
arch=${1:-amd64}
shift || true
extra=("$@")
here=$(cd "$(dirname "$0")" && pwd)
cache=/var/cache/k3s-mirror-agent
commands=$(grep -Ev '^[[:space:]]*(#|$)' "$here/build-rootfs.sh")
key=$({ echo "$commands"; echo "${extra[*]}"; } | sha256sum | cut -c1-12)
flavor=${extra[*]:+-$(IFS=-; echo "${extra[*]}")}
rootfs=$cache/node-$arch$flavor-$key

if [ -f "$rootfs/.complete" ]; then
  echo "$rootfs"
  exit 0
fi
mkdir -p "$cache"
exec 9>"$rootfs.lock"
flock 9
if [ -f "$rootfs/.complete" ]; then  # built by the test we waited for
  echo "$rootfs"
  exit 0
fi
command -v debootstrap >/dev/null && command -v systemd-nspawn >/dev/null ||
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap systemd-container >&2
if [ "$arch" != "$(dpkg --print-architecture)" ]; then
  bash "$here/enable-qemu.sh" "$arch" >&2
fi
rm -rf "$rootfs" "$rootfs.tmp"
# procps: /bin/kill, which the shipped unit's ExecReload uses (every non-minimal Debian has it).
# libcurl4: the registry client the agent links (the .deb depends on it).
packages=systemd,dbus,systemd-sysv,ca-certificates,procps,libyaml-cpp0.7,libspdlog1.10,libfmt9,libssl3,libcurl4
for p in "${extra[@]}"; do packages="$packages,$p"; done
debootstrap --arch="$arch" --variant=minbase --include="$packages" \
  bookworm "$rootfs.tmp" http://deb.debian.org/debian >&2
# A node needs no getty on the container's console, and no network setup.
chroot "$rootfs.tmp" systemctl mask console-getty.service getty@tty1.service \
  systemd-networkd.service systemd-resolved.service >/dev/null 2>&1 || true
echo node > "$rootfs.tmp/etc/hostname"
chroot "$rootfs.tmp" apt-get clean
touch "$rootfs.tmp/.complete"
mv "$rootfs.tmp" "$rootfs"
echo "$rootfs"
