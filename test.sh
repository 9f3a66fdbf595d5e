#!/usr/bin/env bash
# Builds (if needed) and runs the whole test suite; the last line reads
# "N passed, N failed". Exit status is non-zero when anything failed.
# Usage: ./test.sh [BUILD_DIR] [meson test arguments...]
set -uo pipefail
cd "$(dirname "$0")"
build=${1:-build}
shift || true

if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" >/dev/null || { echo "0 passed, 1 failed"; exit 1; }
fi
if ! ninja -C "$build" >"$build/ninja-test.log" 2>&1; then
  cat "$build/ninja-test.log"
  echo "0 passed, 1 failed"
  exit 1
fi

log="$build/meson-logs/test-summary.txt"
meson test -C "$build" --print-errorlogs "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

# meson's summary: "Ok: N", "Fail: N", "Timeout: N", ... (one line each).
count () {
  local n
  n=$(grep -E "^$1:[[:space:]]+[0-9]+" "$log" | tail -n 1 | awk '{print $NF}')
  echo "${n:-0}"
}
ok=$(( $(count Ok) + $(count Skipped) + $(count "Expected Fail") ))
failed=$(( $(count Fail) + $(count Timeout) + $(count "Unexpected Pass") ))
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1
fi
echo "$ok passed, $failed failed"
[ "$failed" -eq 0 ]
