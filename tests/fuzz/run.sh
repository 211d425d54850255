#!/usr/bin/env bash
# Runs one libFuzzer harness as a test: first over every file in regressions/<harness>/ (inputs
# that crashed it once; each must pass), then -runs=RUNS executions mutating corpus/<harness>/.
# New inputs go to a scratch folder, never into the repository's corpus.
#   run.sh BINARY HARNESS RUNS
# Exits 0 when everything passed, 1 otherwise (never 77: a fuzz failure is not a skip).
set -uo pipefail
binary=$1
harness=$2
runs=$3
here=$(cd "$(dirname "$0")" && pwd)
# Limits turn a bomb into a failure instead of a hang: 2 GB of memory, 10 s for one input.
# The dictionary holds the file format's tokens (YAML, PEM or JSON).
case $harness in
  fuzz_ca) dict=$here/pem.dict ;;
  fuzz_state) dict=$here/json.dict ;;
  *) dict=$here/yaml.dict ;;
esac
limits=(-rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10 -error_exitcode=1 -timeout_exitcode=1)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# What a failure was, and the top of its stack without libFuzzer's, the sanitizers' and libc's own
# frames (a failed property aborts through them).
summary() {
  grep -E 'property failed|ERROR: (AddressSanitizer|libFuzzer|LeakSanitizer)|runtime error|^    #[0-9]+ ' "$1" |
    grep -v -E 'fuzzer::|__sanitizer|libc\.so|nptl/|stdlib/abort|signal/|k3sma::fuzz::fail' | head -n 8
}

failed=0
regressions=0
shopt -s nullglob
for input in "$here/regressions/$harness"/*; do
  regressions=$((regressions + 1))
  if ! "$binary" "${limits[@]}" "$input" >"$work/log" 2>&1; then
    failed=$((failed + 1))
    echo "FAIL $harness: regression input $(basename "$input"):"
    summary "$work/log"
  fi
done
echo "$harness: $regressions regression inputs, $failed failed"

mkdir "$work/corpus" "$work/artifacts"
if "$binary" "${limits[@]}" -runs="$runs" -seed=1 -max_len=4096 -dict="$dict" \
  -artifact_prefix="$work/artifacts/" -print_final_stats=1 \
  "$work/corpus" "$here/corpus/$harness" >"$work/log" 2>&1; then
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log")
  echo "$harness: $execs executions from the corpus, no crash"
else
  failed=$((failed + 1))
  echo "FAIL $harness: fuzzing from the corpus found a failure:"
  summary "$work/log"
  for crash in "$work/artifacts"/*; do
    echo "  input ($(wc -c <"$crash") bytes, base64): $(head -c 600 "$crash" | base64 -w0)"
  done
fi
[ "$failed" -eq 0 ]
