#!/usr/bin/env bash
# Lets this amd64 machine run arm64 programs (tests/node/README.md, "An arm64 node"):
# qemu-user-static, and its binfmt_misc entry registered with the kernel, so a chroot or a booted
# node of arm64 Debian runs every program through qemu. The F (fix binary) flag of Debian's entry
# makes it work inside containers too. Safe to run again.
# Usage: tests/node/enable-qemu.sh [arm64]
set -euo pipefail
arch=${1:-arm64}
[ "$arch" = arm64 ] || { echo "enable-qemu.sh: only arm64 is known, not $arch" >&2; exit 2; }
command -v qemu-aarch64-static >/dev/null ||
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-user-static
[ -e /proc/sys/fs/binfmt_misc/register ] ||
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] ||
  grep -v '^#' /usr/lib/binfmt.d/qemu-aarch64.conf > /proc/sys/fs/binfmt_misc/register
