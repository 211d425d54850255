#!/usr/bin/env bash
# The packages packaging/build-debs.sh made (DEBS names their folder), amd64 and arm64, as a
# Debian developer would check them before an upload:
# - lintian finds no error (its warnings are listed in the README, with why they stay);
# - the binary is an ELF for the package's architecture, stripped, and its debug info is in the
#   -dbgsym package under its build-id;
# - Depends names the package of every library the binary links (dh_shlibdeps), plus
#   ca-certificates (update-ca-certificates) and procps (the unit's /bin/kill);
# - the files are where a Debian 12 node looks: the unit under /lib/systemd/system, the man
#   pages, the copyright file, and /etc/k3s-mirror-agent/config.yaml as a conffile that
#   configures nothing;
# - the maintainer scripts carry debhelper's systemd parts and the purge restore;
# - arm64: installed with dpkg into an arm64 Debian 12 root (tests/node/build-rootfs.sh), it
#   runs there under qemu: every library it needs is there and loads.
set -Eeuo pipefail
fail() { echo "FAIL: $*" >&2; exit 1; }
trap 'echo "FAIL: ${BASH_SOURCE[0]}:$LINENO: a command failed (exit $?)" >&2' ERR
: "${DEBS:?DEBS must name the folder packaging/build-debs.sh wrote}"
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)

missing=""
for tool in lintian dpkg-deb readelf chroot; do
  command -v "$tool" >/dev/null || missing="$missing $tool"
done
[ "$(id -u)" -eq 0 ] || missing="$missing root"
compgen -G "$DEBS/k3s-mirror-agent_*_amd64.deb" >/dev/null || missing="$missing $DEBS/*_amd64.deb"
compgen -G "$DEBS/k3s-mirror-agent_*_arm64.deb" >/dev/null || missing="$missing $DEBS/*_arm64.deb"
if [ -n "$missing" ]; then
  [ "${CI:-}" = true ] && fail "prerequisites missing:$missing (tests/run-all.sh builds the packages)"
  echo "SKIP: prerequisites missing:$missing (run packaging/build-debs.sh $DEBS)"
  exit 77
fi
WORK=$(mktemp -d /var/tmp/k3sma-debs-test.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

version=$(sed -n 's/^project(k3s-mirror-agent VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
for arch in amd64 arm64; do
  deb=$DEBS/k3s-mirror-agent_${version}_$arch.deb
  dbg=$DEBS/k3s-mirror-agent-dbgsym_${version}_$arch.deb
  [ -f "$deb" ] && [ -f "$dbg" ] || fail "$arch: no $deb and $dbg (version $version)"
  [ "$(dpkg-deb -f "$deb" Architecture)" = "$arch" ] || fail "$deb: Architecture is not $arch"

  # lintian: no error. Its other findings are printed for the log.
  lintian --tag-display-limit 0 -I "$deb" "$dbg" >"$WORK/lintian-$arch.txt" 2>&1 || true
  sed 's/^/  lintian: /' "$WORK/lintian-$arch.txt"
  if grep -q '^E: ' "$WORK/lintian-$arch.txt"; then
    fail "$arch: lintian reports errors: $(grep '^E: ' "$WORK/lintian-$arch.txt")"
  fi

  tree=$WORK/$arch
  dpkg-deb -R "$deb" "$tree"
  dpkg-deb -x "$dbg" "$tree.dbg"
  bin=$tree/usr/sbin/k3s-mirror-agent
  [ -x "$bin" ] || fail "$arch: no /usr/sbin/k3s-mirror-agent"
  case $arch in
    amd64) machine="Advanced Micro Devices X86-64" ;;
    arm64) machine="AArch64" ;;
  esac
  # grep without -q reads to the end: with -q it may exit first, readelf then dies of SIGPIPE,
  # and pipefail fails the line at random.
  readelf -h "$bin" | grep "Machine: *$machine" >/dev/null ||
    fail "$arch: the binary is not for $machine: $(readelf -h "$bin" | grep Machine)"
  ! readelf -S "$bin" | grep '\.debug_info' >/dev/null || fail "$arch: the binary is not stripped"
  build_id=$(readelf -n "$bin" | sed -n 's/.*Build ID: \([0-9a-f]*\).*/\1/p')
  [ -n "$build_id" ] || fail "$arch: the binary has no build-id"
  debug_file=$tree.dbg/usr/lib/debug/.build-id/${build_id:0:2}/${build_id:2}.debug
  [ -f "$debug_file" ] && readelf -S "$debug_file" 2>/dev/null | grep '\.debug_info' >/dev/null ||
    fail "$arch: the -dbgsym package has no debug info for build-id $build_id"

  # Every library the binary links comes from a package Depends names.
  depends=$(dpkg-deb -f "$deb" Depends)
  # The package names in it, one a line, without versions.
  sed 's/([^)]*)//g; s/[|,]/\n/g' <<<"$depends" | tr -d ' ' | sed '/^$/d' >"$WORK/depends-$arch"
  readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' >"$WORK/needed-$arch"
  [ -s "$WORK/needed-$arch" ] || fail "$arch: no NEEDED entries"
  triplet=$(dpkg-architecture -a "$arch" -qDEB_HOST_MULTIARCH 2>/dev/null)
  while read -r soname; do
    owner=$(dpkg -S "*/$triplet/$soname" 2>/dev/null | sed -n "s/^\([^:]*\):$arch: .*/\1/p" | head -1)
    [ -n "$owner" ] || fail "$arch: no installed $arch package has $soname (packaging/arm64-sysroot.sh installs them)"
    # The library's shlibs may name a virtual package it provides (libspdlog1.10-fmt9).
    names="$owner $(dpkg-query -W -f='${Provides}' "$owner:$arch" | sed 's/([^)]*)//g; s/,/ /g')"
    found=""
    for name in $names; do
      grep -qxF "$name" "$WORK/depends-$arch" && found=$name
    done
    [ -n "$found" ] || fail "$arch: links $soname from $owner ($names), which Depends lacks: $depends"
  done <"$WORK/needed-$arch"
  for p in ca-certificates procps; do
    grep -qxF "$p" "$WORK/depends-$arch" || fail "$arch: Depends lacks $p: $depends"
  done

  for f in lib/systemd/system/k3s-mirror-agent.service usr/share/man/man8/k3s-mirror-agent.8.gz \
      usr/share/man/man5/k3s-mirror-agent.yaml.5.gz usr/share/doc/k3s-mirror-agent/copyright \
      etc/k3s-mirror-agent/config.yaml; do
    [ -f "$tree/$f" ] || fail "$arch: /$f is not in the package"
  done
  cmp -s "$tree/lib/systemd/system/k3s-mirror-agent.service" "$src/systemd/k3s-mirror-agent.service" ||
    fail "$arch: the packaged unit is not systemd/k3s-mirror-agent.service"
  grep -qx /etc/k3s-mirror-agent/config.yaml "$tree/DEBIAN/conffiles" ||
    fail "$arch: config.yaml is not a conffile: $(cat "$tree/DEBIAN/conffiles" 2>&1)"
  grep -q 'deb-systemd-helper enable' "$tree/DEBIAN/postinst" &&
    grep -q '_dh_action=restart' "$tree/DEBIAN/postinst" &&
    grep -q 'deb-systemd-invoke stop' "$tree/DEBIAN/prerm" &&
    grep -q 'restore --stage' "$tree/DEBIAN/prerm" &&
    grep -q 'update-ca-certificates' "$tree/DEBIAN/postrm" ||
    fail "$arch: the maintainer scripts lack the service handling or the purge restore"
  echo "$arch: $(stat -c %s "$deb") bytes, Installed-Size $(dpkg-deb -f "$deb" Installed-Size) KiB," \
    "binary $(stat -c %s "$bin") bytes stripped; Depends: $depends"
done

# The shipped config is an example that configures nothing: the agent says so and exits 2.
RC=0
"$WORK/amd64/usr/sbin/k3s-mirror-agent" check --config "$WORK/amd64/etc/k3s-mirror-agent/config.yaml" \
  >"$WORK/check.out" 2>&1 || RC=$?
[ "$RC" -eq 2 ] && grep -q "not configured yet" "$WORK/check.out" ||
  fail "the shipped config.yaml: exit $RC, $(cat "$WORK/check.out")"

# arm64: into an arm64 Debian 12 root, with dpkg (which refuses unmet Depends), and run there.
rootfs=$(bash "$src/tests/node/build-rootfs.sh" arm64)
cp -a "$rootfs" "$WORK/arm64-root"
cp "$DEBS/k3s-mirror-agent_${version}_arm64.deb" "$WORK/arm64-root/tmp/agent.deb"
chroot "$WORK/arm64-root" dpkg -i /tmp/agent.deb >"$WORK/dpkg.log" 2>&1 ||
  fail "dpkg -i in the arm64 root failed: $(cat "$WORK/dpkg.log")"
out=$(chroot "$WORK/arm64-root" /usr/sbin/k3s-mirror-agent --version 2>&1) ||
  fail "the arm64 binary does not run in the arm64 root: $out"
[ "$(chroot "$WORK/arm64-root" uname -m)" = aarch64 ] || fail "the arm64 root does not run as aarch64"
echo "arm64 root: $out"
echo "PASS: both packages: lintian clean of errors, stripped with -dbgsym, Depends from the linked libraries, files in place; arm64 runs in an arm64 root"
