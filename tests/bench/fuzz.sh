#!/usr/bin/env bash
# Benchmark, not a test: runs each libFuzzer harness (tests/fuzz/) for at least RUNS executions
# (default 10^6) from its seed corpus and prints, per harness, the executions, the executions per
# second (wall clock, ASan+UBSan build) and every crash, grouped by what failed. libFuzzer's fork
# mode keeps going after a crash (-ignore_crashes), so one known bug does not end the run.
# Runs at low priority, two harnesses at a time (the machine is shared).
# Usage: tests/bench/fuzz.sh [RUNS] [HARNESS...]   e.g. tests/bench/fuzz.sh 1000000 fuzz_state
# K3SMA_FUZZ_SECONDS=N stops each harness after N seconds even short of RUNS (the report says so);
# K3SMA_FUZZ_BUILD=DIR uses the harnesses built in DIR (default build/fuzz, built if missing).
# K3SMA_FUZZ_SEED=N (default 1, CI's seed): another seed takes other paths. CI's -seed=1 does not
# make its run the same as one in another checkout, so try a few seeds after changing a harness.
set -euo pipefail
cd "$(dirname "$0")/../.."
src=$PWD
runs=${1:-1000000}
shift || true
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=(fuzz_config fuzz_registries fuzz_mask fuzz_ca fuzz_state)
build=${K3SMA_FUZZ_BUILD:-$src/build/fuzz}
if [ ! -x "$build/tests/fuzz/fuzz_state" ]; then
  cmake -S "$src" -B "$build" -DCMAKE_CXX_COMPILER=clang++-14 -DK3SMA_FUZZ=ON -DBUILD_TESTING=OFF \
    >/dev/null
fi
nice -n 19 cmake --build "$build" -j 2 --target fuzz_all >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

dict_of() {
  case $1 in
    fuzz_ca) echo "$src/tests/fuzz/pem.dict" ;;
    fuzz_state) echo "$src/tests/fuzz/json.dict" ;;
    *) echo "$src/tests/fuzz/yaml.dict" ;;
  esac
}

# bench HARNESS: fuzzes, then writes the harness's report to $work/HARNESS.report.
bench() {
  local h=$1 bin="$build/tests/fuzz/$1" dir="$work/$1"
  mkdir -p "$dir/corpus" "$dir/crashes"
  local start end
  start=$(date +%s.%N)
  # -ignore_timeouts/-ignore_ooms: a bomb is counted as a crash below and the run goes on.
  local cap=()
  [ -z "${K3SMA_FUZZ_SECONDS:-}" ] || cap=(-max_total_time="$K3SMA_FUZZ_SECONDS")
  nice -n 19 "$bin" "${cap[@]}" -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 -runs="$runs" \
    -seed="${K3SMA_FUZZ_SEED:-1}" -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10 -max_len=4096 \
    -dict="$(dict_of "$h")" -artifact_prefix="$dir/crashes/" \
    "$dir/corpus" "$src/tests/fuzz/corpus/$h" >"$dir/log" 2>&1 || true
  end=$(date +%s.%N)
  local execs
  execs=$(grep -E '^#[0-9]+:' "$dir/log" | tail -n 1 | sed -E 's/^#([0-9]+):.*/\1/')
  execs=${execs:-0}
  {
    local crashes
    crashes=$(find "$dir/crashes" -type f | wc -l)
    awk -v h="$h" -v r="$runs" -v n="$execs" -v s="$start" -v e="$end" -v c="$crashes" 'BEGIN {
      t = e - s; printf "%s: %d executions in %.0f s, %.0f exec/s, %d crashing inputs%s\n", h, n, t,
        n / t, c, n < r ? sprintf(" (stopped by the time limit, short of %d)", r) : "" }'
    # What each crashing input breaks: the failed property, or the sanitizer's report and the
    # first frame of the agent's code.
    for crash in "$dir/crashes"/*; do
      [ -f "$crash" ] || continue
      "$bin" -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10 "$crash" >"$dir/one" 2>&1 || true
      what=$(grep -m1 -oE 'property failed: .*|ERROR: (AddressSanitizer|LeakSanitizer): [a-z-]+|runtime error: .{0,80}|ERROR: libFuzzer: (timeout|out-of-memory)' "$dir/one" |
        sed -E 's/^(property failed: [^:]*):.*/\1/' || true)
      where=$(grep -oE '(common|tests/fuzz)/[a-z_]+\.cpp:[0-9]+' "$dir/one" | grep -v fuzz_support |
        head -n 1 || true)
      echo "${what:-no longer fails}${where:+ [$where]}"
    done | sort | uniq -c | sort -rn | sed 's/^/    /'
  } >"$work/$h.report"
}

echo "fuzzing ${#harnesses[@]} harnesses for $runs executions each, two at a time (nice 19)"
for ((i = 0; i < ${#harnesses[@]}; i += 2)); do
  bench "${harnesses[i]}" &
  if ((i + 1 < ${#harnesses[@]})); then bench "${harnesses[i + 1]}" & fi
  wait
  cat "$work/${harnesses[i]}.report"
  if ((i + 1 < ${#harnesses[@]})); then cat "$work/${harnesses[i + 1]}.report"; fi
done
