#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this): installs the build dependencies,
# checks formatting, builds with warnings as errors and runs every test (unit and black-box),
# then builds again with AddressSanitizer, UBSan and libstdc++ assertions and runs them again.
# Run as root on Debian 12: the black-box tests need root-owned files and update-ca-certificates.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
jobs=$(nproc)

echo "== installing build dependencies"
bash packaging/install-build-deps.sh
command -v clang-format >/dev/null || apt-get install -y -qq clang-format >/dev/null

echo "== checking formatting (clang-format, .clang-format)"
mapfile -t sources < <(git ls-files '*.cpp' '*.h' 2>/dev/null || find agent common tests -name '*.cpp' -o -name '*.h')
clang-format --dry-run --Werror "${sources[@]}"

build() {  # build DIR CMAKE-ARGS...
  local dir=$1
  shift
  cmake -S "$src" -B "$dir" -DK3SMA_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
  # CI=true makes a missing prerequisite of a black-box test a failure (lib.sh checks them).
  (cd "$dir" && ctest --output-on-failure -j "$jobs")
}

echo "== release build, warnings as errors"
build "$src/build/release" -DCMAKE_BUILD_TYPE=RelWithDebInfo
echo "== ASan + UBSan + _GLIBCXX_ASSERTIONS build"
build "$src/build/sanitize" -DCMAKE_BUILD_TYPE=Debug -DK3SMA_SANITIZE=ON -DK3SMA_GLIBCXX_ASSERTIONS=ON
echo "== all tests passed"
