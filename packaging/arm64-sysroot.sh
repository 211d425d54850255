#!/usr/bin/env bash
# Makes (once) the arm64 sysroot the arm64 package is cross-compiled against
# (tests/node/README.md, "Cross-compiling for arm64"): Debian 12's arm64 -dev and library
# packages, unpacked with dpkg -x into /var/cache/k3s-mirror-agent/sysroot-arm64-KEY (KEY: the
# hash of this script's commands, comment-only and blank lines left out, so a changed package
# list makes a new one and a comment edit does not). Also installs the same runtime libraries as arm64 packages beside the
# amd64 ones (multiarch: they are co-installable, the -dev packages are not), because
# dpkg-shlibdeps computes the package's Depends from the installed packages' symbols files.
# libcurl's own libraries (krb5, ldap, gnutls for rtmp/ldap, nghttp2, ...) are in the sysroot
# too: the linker follows libcurl.so's NEEDED entries through -rpath-link.
# Usage: packaging/arm64-sysroot.sh   -> prints the sysroot path
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=/var/cache/k3s-mirror-agent
key=$(grep -Ev '^[[:space:]]*(#|$)' "$here/arm64-sysroot.sh" | sha256sum | cut -c1-12)
sysroot=$cache/sysroot-arm64-$key
export DEBIAN_FRONTEND=noninteractive

runtime="libyaml-cpp0.7:arm64 libspdlog1.10:arm64 libfmt9:arm64 libssl3:arm64 libsystemd0:arm64
  libcurl4:arm64 libstdc++6:arm64 libgcc-s1:arm64 libc6:arm64"
dpkg --print-foreign-architectures | grep -qx arm64 || { dpkg --add-architecture arm64 && apt-get update -qq; }
missing=""
for p in $runtime; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  # shellcheck disable=SC2086 # a list of package names
  apt-get install -y -qq --no-install-recommends $missing >&2 ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing >&2; }
fi

if [ -f "$sysroot/.complete" ]; then
  echo "$sysroot"
  exit 0
fi
mkdir -p "$cache"
exec 9>"$sysroot.lock"
flock 9
[ -f "$sysroot/.complete" ] && { echo "$sysroot"; exit 0; }
rm -rf "$sysroot" "$sysroot.tmp"
mkdir -p "$sysroot.tmp/debs"
chmod 777 "$sysroot.tmp/debs"  # apt-get download runs as the _apt user where it can
(cd "$sysroot.tmp/debs" && apt-get download -qq \
  libyaml-cpp-dev:arm64 libyaml-cpp0.7:arm64 libssl-dev:arm64 libssl3:arm64 \
  libsystemd-dev:arm64 libsystemd0:arm64 libspdlog-dev:arm64 libspdlog1.10:arm64 \
  libfmt-dev:arm64 libfmt9:arm64 liblzma5:arm64 libzstd1:arm64 liblz4-1:arm64 libgcrypt20:arm64 \
  libcap2:arm64 libgpg-error0:arm64 libstdc++6:arm64 libgcc-s1:arm64 libc6:arm64 libc6-dev:arm64 \
  libcurl4-openssl-dev:arm64 libcurl4:arm64 \
  libbrotli1:arm64 libcom-err2:arm64 libffi8:arm64 libgmp10:arm64 libgnutls30:arm64 \
  libgssapi-krb5-2:arm64 libhogweed6:arm64 libidn2-0:arm64 libk5crypto3:arm64 libkeyutils1:arm64 \
  libkrb5-3:arm64 libkrb5support0:arm64 libldap-2.5-0:arm64 libnettle8:arm64 libnghttp2-14:arm64 \
  libp11-kit0:arm64 libpsl5:arm64 librtmp1:arm64 libsasl2-2:arm64 libssh2-1:arm64 \
  libtasn1-6:arm64 libunistring2:arm64 zlib1g:arm64 \
  libcli11-dev nlohmann-json3-dev libdtl-dev >&2)
for d in "$sysroot.tmp"/debs/*.deb; do dpkg -x "$d" "$sysroot.tmp"; done
rm -rf "$sysroot.tmp/debs"
touch "$sysroot.tmp/.complete"
mv "$sysroot.tmp" "$sysroot"
echo "$sysroot"
