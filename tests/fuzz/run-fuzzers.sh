#!/usr/bin/env bash
# Bounded libFuzzer runs of every fuzz target (tests/fuzz/README.md).
#
# Usage: tests/fuzz/run-fuzzers.sh [-k] [SECONDS_PER_TARGET] [TARGET...]
#   SECONDS_PER_TARGET  fuzzing time of each target (default 30)
#   TARGET              safetensors, config, tokenizer, torch, index (default all)
#   -k                  copy crashing inputs into tests/fuzz/regressions/TARGET/
# Environment: CNCLIP_FUZZ_BUILD   build dir (default build-fuzz in the source root;
#                                  configured with clang + ASan/UBSan when missing)
#              CNCLIP_FUZZ_JOBS    targets fuzzed at once (default: number of CPUs)
#
# Each target starts from its seed corpus (tests/fuzz/corpus/TARGET) and its
# regressions, which it runs first; new inputs go to BUILD/fuzz/corpus/TARGET
# (kept between runs, never into the source tree). Any crash, sanitizer
# report, leak, timeout (10 s per input), allocation over the malloc limit or
# RSS over the limit fails the run; the script prints the saved input.
# Exit status: 0 when every target ran clean.
set -uo pipefail

keep=0
if [ "${1:-}" = "-k" ]; then
  keep=1
  shift
fi
seconds=${1:-30}
shift || true
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${CNCLIP_FUZZ_BUILD:-$src/build-fuzz}
case "$build" in /*) ;; *) build=$PWD/$build ;; esac
all_targets=(safetensors config tokenizer torch index)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
jobs=${CNCLIP_FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}

# Longest input per target: a little above the largest seed, so mutations
# stay small and fast while every structure (a zip with several entries, a
# record line with an embedding, a config with all three files) fits.
max_len () {
  case "$1" in
    safetensors) echo 4096 ;;
    config) echo 4096 ;;
    tokenizer) echo 2048 ;;
    torch) echo 8192 ;;
    index) echo 8192 ;;
    *) echo 4096 ;;
  esac
}

if [ ! -f "$build/build.ninja" ]; then
  echo "run-fuzzers: configuring $build (clang, ASan + UBSan, libFuzzer)"
  setup_log=$(mktemp)
  CC=clang meson setup "$build" -Dfuzzing=true -Dplugin=disabled \
    -Db_sanitize=address,undefined -Db_lundef=false >"$setup_log" 2>&1 \
    || { cat "$setup_log"; rm -f "$setup_log"; exit 1; }
  rm -f "$setup_log"
fi
bins=()
for t in "${targets[@]}"; do
  bins+=("tests/fuzz/fuzz-$t")
done
if ! ninja -C "$build" "${bins[@]}" >"$build/fuzz-build.log" 2>&1; then
  cat "$build/fuzz-build.log"
  echo "run-fuzzers: build failed"
  exit 1
fi

out=$build/fuzz
mkdir -p "$out"
export CNCLIP_TEST_DATA="$src/tests/data"
# halt_on_error makes UBSan reports crashes; the search in fuzz-index needs
# no BLAS threads.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:${UBSAN_OPTIONS:-}"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE

run_one () {
  local t=$1
  local corpus=$out/corpus/$t artifacts=$out/artifacts/$t log=$out/$t.log
  mkdir -p "$corpus" "$artifacts"
  rm -f "$artifacts"/*
  local dirs=("$corpus" "$src/tests/fuzz/corpus/$t")
  [ -d "$src/tests/fuzz/regressions/$t" ] && dirs+=("$src/tests/fuzz/regressions/$t")
  "$build/tests/fuzz/fuzz-$t" -max_total_time="$seconds" -max_len="$(max_len "$t")" \
    -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "${dirs[@]}" >"$log" 2>&1
  echo $? >"$out/$t.status"
}

start=$(date +%s)
running=0
for t in "${targets[@]}"; do
  if [ ! -x "$build/tests/fuzz/fuzz-$t" ]; then
    echo "run-fuzzers: no target fuzz-$t"
    exit 1
  fi
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n
    running=$((running - 1))
  fi
done
wait

failed=0
printf '%-12s %12s %10s %8s %6s  %s\n' target execs exec/s corpus cov result
for t in "${targets[@]}"; do
  log=$out/$t.log
  status=$(cat "$out/$t.status" 2>/dev/null || echo 1)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n 1 | awk '{print $2}')
  corp=$(grep -oE 'corp: [0-9]+' "$log" | tail -n 1 | awk '{print $2}')
  result=ok
  if [ "$status" != 0 ]; then
    result="FAILED (exit $status)"
    failed=$((failed + 1))
  fi
  printf '%-12s %12s %10s %8s %6s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "${corp:-?}" \
    "${cov:-?}" "$result"
done
for t in "${targets[@]}"; do
  status=$(cat "$out/$t.status" 2>/dev/null || echo 1)
  [ "$status" = 0 ] && continue
  echo
  echo "=== fuzz-$t failed; end of $out/$t.log:"
  grep -vE '^#[0-9]+|^INFO:' "$out/$t.log" | tail -n 60
  for f in "$out/artifacts/$t"/*; do
    [ -f "$f" ] || continue
    echo "crashing input: $f"
    echo "  reproduce: $build/tests/fuzz/fuzz-$t $f"
    if [ "$keep" = 1 ]; then
      mkdir -p "$src/tests/fuzz/regressions/$t"
      cp "$f" "$src/tests/fuzz/regressions/$t/"
      echo "  kept as tests/fuzz/regressions/$t/$(basename "$f")"
    else
      echo "  keep it as a regression test: cp $f tests/fuzz/regressions/$t/"
    fi
  done
done
echo "run-fuzzers: ${#targets[@]} targets, ${seconds} s each, $failed failed," \
  "$(( $(date +%s) - start )) s"
[ "$failed" -eq 0 ]
