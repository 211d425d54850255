#!/usr/bin/env bash
# clang-tidy with the repository's .clang-tidy over the project's own sources: agent/, common/,
# tests/unit/, tests/support/ and tests/node/ (the k3s stand-in), and, through HeaderFilterRegex,
# their headers. Fails on any warning. It reads the compile database of an already configured
# build (every build here writes one: CMAKE_EXPORT_COMPILE_COMMANDS), so nothing is compiled
# twice; CI passes the release build.
#
#   bash tests/clang-tidy.sh BUILD-DIR [FILE-REGEX]
#
# FILE-REGEX narrows the files (e.g. 'agent/cli'). TIDY_JOBS sets the parallel runs (default:
# nproc). clang-tidy-14 is packaging/install-build-deps.sh's clang-tidy-14; CLANG_TIDY overrides.
# Cost, measured on 2 cores: see the README's "Static analysis" paragraph.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:?usage: clang-tidy.sh BUILD-DIR [FILE-REGEX]}" && pwd)
filter=${2:-}
tidy=${CLANG_TIDY:-clang-tidy-14}
jobs=${TIDY_JOBS:-$(nproc)}
command -v "$tidy" >/dev/null || { echo "clang-tidy.sh: $tidy not found (apt-get install clang-tidy-14)" >&2; exit 1; }
[[ -f $build/compile_commands.json ]] || { echo "clang-tidy.sh: no $build/compile_commands.json: configure the build first" >&2; exit 1; }

mapfile -t files < <(jq -r '.[].file' "$build/compile_commands.json" |
  grep -E "^$src/(agent|common|tests/unit|tests/support|tests/node)/[^/]+\.cpp$" | grep -E -- "$filter" | sort -u)
((${#files[@]} > 0)) || { echo "clang-tidy.sh: no file of the project in $build/compile_commands.json matches '$filter'" >&2; exit 1; }

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
trap 'exit 143' TERM INT
# One clang-tidy per file; each writes its diagnostics (stdout) and its status to its own files,
# so parallel runs never interleave. stderr only says "N warnings generated" (system headers,
# which are not reported) unless something is broken: then it is kept too.
run_one() {  # run_one OUTDIR FILE
  local log
  log="$1/$(printf '%s' "$2" | tr '/' '_')"
  local rc=0
  "$tidy" -p "$build" --quiet "$2" >"$log.out" 2>"$log.err" || rc=$?
  echo "$rc $2" >"$log.rc"
}
export -f run_one
export tidy build
start=$SECONDS
printf '%s\0' "${files[@]}" | xargs -0 -n1 -P "$jobs" bash -c 'run_one "$0" "$1"' "$out"

failed=0
for rc in "$out"/*.rc; do
  read -r status file <"$rc"
  if [[ $status != 0 ]]; then
    failed=1
    echo "clang-tidy.sh: $tidy exited with $status on $file:" >&2
    grep -v ' warnings\? generated\.$' "${rc%.rc}.err" >&2 || true
  fi
done
# A warning in a header shows up once per file that includes it: report it once.
warnings=$(cat "$out"/*.out | grep -E '^/.*:[0-9]+:[0-9]+: (warning|error):' | sort -u || true)
count=$(printf '%s' "$warnings" | grep -c . || true)
echo "clang-tidy.sh: ${#files[@]} files, $count warnings, $((SECONDS - start)) s with $jobs jobs"
if ((count > 0)); then
  # Each warning with its context (the source line, notes), as clang-tidy printed it.
  cat "$out"/*.out
  echo "$warnings" | sed 's/^/clang-tidy.sh: /'
  exit 1
fi
exit "$failed"
