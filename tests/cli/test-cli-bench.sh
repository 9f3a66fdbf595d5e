#!/usr/bin/env bash
# test-cli-bench.sh: `cnclip bench` runs and prints the JSON contract
# (README, issue 8). No timing assertions: speed lives in benchmarks.
# Needs $CNCLIP, $CNCLIP_TEST_DATA and jq (scripts/test-packages.txt).
set -uo pipefail

model="$CNCLIP_TEST_DATA/cnclip-tiny"
failures=0
fail () { echo "FAIL: $*"; failures=$((failures + 1)); }

# Prints the single stdout line of a --json run, or fails.
bench_json () {
  local out
  if ! out=$("$CNCLIP" bench -m "$model" --iterations 2 --json "$@" 2>/tmp/cnclip-bench-err.$$); then
    fail "bench $* exited non-zero: $(cat /tmp/cnclip-bench-err.$$)"
    return 1
  fi
  if [ "$(printf '%s\n' "$out" | wc -l)" -ne 1 ]; then
    fail "bench $* printed more than one line: $out"
    return 1
  fi
  printf '%s\n' "$out"
}

# The contract keys with the right types and sane values.
check_contract () {
  local json=$1 threads=$2 precision=$3 backend=$4
  if ! printf '%s' "$json" | jq -e \
      --argjson threads "$threads" --arg precision "$precision" --arg backend "$backend" '
      (.threads == $threads) and (.precision == $precision)
      and (if $backend == "any" then (.backend == "onednn" or .backend == "openblas")
           else .backend == $backend end)
      and ([.image_ms, .image_ms_min, .text10_ms, .text52_ms, .peak_rss_mb]
           | all(type == "number" and . > 0))
      and (.image_ms_min <= .image_ms)
      and (.peak_rss_mb < 100000)' >/dev/null; then
    fail "contract not met (threads=$threads precision=$precision backend=$backend): $json"
  fi
}

# Test that the default run prints the contract with all cores and fp32.
json=$(bench_json) && check_contract "$json" "$(nproc)" fp32 any

# Test that --threads, --backend and --precision are reported as used.
json=$(bench_json --threads 1 --backend openblas) && check_contract "$json" 1 fp32 openblas

if "$CNCLIP" bench -m "$model" --iterations 1 --json --backend onednn >/dev/null 2>&1; then
  json=$(bench_json --backend onednn --threads 2) && check_contract "$json" 2 fp32 onednn
  # bf16 and int8 run where the CPU has fast kernels for them, else they
  # are refused by name (never a silent fp32 run).
  for precision in bf16 int8; do
    if out=$("$CNCLIP" bench -m "$model" --iterations 2 --json --backend onednn \
        --precision "$precision" 2>&1); then
      check_contract "$out" "$(nproc)" "$precision" onednn
    elif ! printf '%s' "$out" | grep -q "^cnclip bench: .*$precision"; then
      fail "$precision refused without saying why: $out"
    fi
  done
  # OpenBLAS runs fp32 only.
  if out=$("$CNCLIP" bench -m "$model" --iterations 1 --json --backend openblas \
      --precision bf16 2>&1); then
    fail "openblas bf16 ran: $out"
  fi
else
  echo "# oneDNN not built in: onednn cases skipped"
fi

# Test that the human table names each measurement.
if out=$("$CNCLIP" bench -m "$model" --iterations 1 2>&1); then
  for label in "image (224x224, batch 1)" "text, 10 tokens" "text, 52 tokens" "peak RSS"; do
    printf '%s' "$out" | grep -qF "$label" || fail "table lacks '$label': $out"
  done
else
  fail "table run failed: $out"
fi

# Test that bad arguments fail with a one-line error and a non-zero status.
for args in "" "-m $model --precision fp64" "-m $model --backend cuda" "-m $model --iterations 0" \
    "-m /nonexistent/model"; do
  # shellcheck disable=SC2086
  if out=$("$CNCLIP" bench $args 2>&1 >/dev/null); then
    fail "bench $args succeeded"
  elif ! printf '%s' "$out" | grep -q "^cnclip bench"; then
    fail "bench $args: unexpected error text: $out"
  fi
done

rm -f /tmp/cnclip-bench-err.$$
if [ "$failures" -ne 0 ]; then
  echo "$failures failure(s)"
  exit 1
fi
echo "all bench checks passed"
