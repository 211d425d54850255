#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this): installs the build dependencies,
# checks formatting, builds with warnings as errors, runs clang-tidy (in the background, from the
# release build's compile database), builds the amd64 and arm64 packages, and runs every test
# (unit, black-box, booted amd64 and arm64 nodes, the packages, Ansible), then
# builds again with AddressSanitizer, UBSan and libstdc++ assertions and runs the unit and
# black-box tests again, and last builds the libFuzzer harnesses with clang and runs them.
# Run as root on Debian 12: the black-box tests need root-owned files and update-ca-certificates.
set -euo pipefail
cd "$(dirname "$0")/.."
# The whole suite means the whole suite: a missing prerequisite of an end-to-end test fails it.
export CI=true
src=$PWD
jobs=$(nproc)

echo "== installing build and test dependencies"
bash packaging/install-build-deps.sh
# Formatting, and the booted-node tests: systemd-nspawn boots a Debian node from debootstrap.
for tool in clang-format:clang-format debootstrap:debootstrap systemd-nspawn:systemd-container; do
  command -v "${tool%%:*}" >/dev/null || apt-get install -y -qq "${tool##*:}" >/dev/null
done

echo "== checking formatting (clang-format, .clang-format)"
mapfile -t sources < <(git ls-files '*.cpp' '*.h' 2>/dev/null || find agent common tests -name '*.cpp' -o -name '*.h')
clang-format --dry-run --Werror "${sources[@]}"

build() {  # build DIR CMAKE-ARGS...
  local dir=$1
  shift
  cmake -S "$src" -B "$dir" -DK3SMA_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
}

echo "== release build, warnings as errors; every test, booted nodes included"
build "$src/build/release" -DCMAKE_BUILD_TYPE=RelWithDebInfo
echo "== clang-tidy (.clang-tidy) over agent/, common/, tests/unit/, in the background"
# From the release build's compile database, at the lowest priority: it runs on the CPU that the
# steps below leave idle (debootstrap's downloads, nodes booting, tests waiting), so it adds to
# CI only what finds no idle CPU (README, "Static analysis"). Its result is collected, and
# fails CI, at the end.
tidy_log=$src/build/clang-tidy.log
# Its own process group (setsid), so a failing step stops it and its clang-tidy runs with it.
setsid -w nice -n 19 bash tests/clang-tidy.sh "$src/build/release" >"$tidy_log" 2>&1 &
tidy_pid=$!
trap 'kill -- -"$tidy_pid" 2>/dev/null || true' EXIT
echo "== the packages, amd64 and arm64 (packaging/build-debs.sh)"
# Where the package tests look for them (K3SMA_DEBS_DIR's default).
bash packaging/build-debs.sh "$src/build/release/debs"
# The nodes' root filesystems are built (or taken from the cache) before the clock of any test
# starts: amd64, arm64 (run under qemu), amd64 with Ansible, and amd64 with Debian's containerd
# (the pull scenarios). Node tests run one at a time (RUN_SERIAL); with CI=true a missing
# prerequisite of a test fails it instead of skipping it.
bash tests/node/enable-qemu.sh arm64
bash tests/node/build-rootfs.sh amd64 >/dev/null
bash tests/node/build-rootfs.sh arm64 >/dev/null
bash tests/node/build-rootfs.sh amd64 containerd >/dev/null
bash tests/node/build-rootfs.sh amd64 openssh-server sudo python3 python3-apt >/dev/null  # the Ansible fleet
(cd "$src/build/release" && ctest --output-on-failure -j "$jobs")

echo "== ASan + UBSan + _GLIBCXX_ASSERTIONS build: unit and black-box tests"
# Not the node and package tests: the node has no sanitizer runtime, the packages are built
# without sanitizers, and the release run covered them.
build "$src/build/sanitize" -DCMAKE_BUILD_TYPE=Debug -DK3SMA_SANITIZE=ON -DK3SMA_GLIBCXX_ASSERTIONS=ON
(cd "$src/build/sanitize" && ctest --output-on-failure -j "$jobs" -LE 'node|package')

echo "== libFuzzer harnesses (clang, ASan+UBSan): their regression inputs, then a fixed number of runs"
# Only the harnesses and the library they need; a crash or a failed property fails CI.
cmake -S "$src" -B "$src/build/fuzz" -DK3SMA_WERROR=ON -DCMAKE_CXX_COMPILER=clang++-14 \
  -DK3SMA_FUZZ=ON -DBUILD_TESTING=OFF >/dev/null
cmake --build "$src/build/fuzz" -j "$jobs" --target fuzz_all
(cd "$src/build/fuzz" && ctest --output-on-failure -j "$jobs" -L fuzz)

echo "== clang-tidy: its result (started after the release build)"
tidy_status=0
wait "$tidy_pid" || tidy_status=$?
cat "$tidy_log"
((tidy_status == 0)) || { echo "clang-tidy reported warnings or failed (exit $tidy_status)"; exit 1; }
echo "== all tests passed"
