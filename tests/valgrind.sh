#!/usr/bin/env bash
# The element tests (tests/plugin/test-*.c) under valgrind memcheck.
#
# Usage: tests/valgrind.sh [BUILD_DIR] [TEST...]
#   BUILD_DIR  a built build directory without sanitizers (default: build)
#   TEST       meson test names (default: the whole 'plugin' suite)
# A test fails when it fails by itself or when memcheck finds an error
# (invalid read/write, use of uninitialised values, bad free, overlapping
# copies) or a definite leak; "possibly lost" and "still reachable" blocks
# (thread stacks, caches held until exit) are not errors. Suppressions: GLib's
# own glib.supp (libglib2.0-dev) and tests/valgrind.supp, each entry explained.
# The last line reads "N passed, N failed"; exit status non-zero on failure.
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
shift || true
case "$build" in /*) ;; *) build=$src/$build ;; esac

if ! command -v valgrind >/dev/null; then
  echo "valgrind not installed (apt-get install valgrind)"
  echo "0 passed, 1 failed"
  exit 1
fi
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" "$src" >/dev/null || { echo "0 passed, 1 failed"; exit 1; }
fi
if grep -q -- '-fsanitize' "$build/build.ninja"; then
  echo "$build is a sanitizer build; valgrind needs a plain one"
  echo "0 passed, 1 failed"
  exit 1
fi

supp=(--suppressions="$src/tests/valgrind.supp")
if [ -f /usr/share/glib-2.0/valgrind/glib.supp ]; then
  supp+=(--suppressions=/usr/share/glib-2.0/valgrind/glib.supp)
fi
# 99 tells memcheck findings apart from a test's own failure.
wrapper="valgrind --tool=memcheck --error-exitcode=99 --leak-check=full \
--show-leak-kinds=definite --errors-for-leak-kinds=definite --num-callers=40 \
--child-silent-after-fork=yes ${supp[*]}"

# One process per test program (no check fork), so that the leak check sees
# every allocation; GLib slices as plain malloc blocks; no OpenMP spinning
# (valgrind runs one thread at a time). GstCheck timeouts x20 (memcheck is
# 20-50 times slower).
export CK_FORK=no CK_TIMEOUT_MULTIPLIER=20 G_SLICE=always-malloc OMP_WAIT_POLICY=PASSIVE

if ! ninja -C "$build" >"$build/ninja-valgrind.log" 2>&1; then
  cat "$build/ninja-valgrind.log"
  echo "0 passed, 1 failed"
  exit 1
fi
# The tests use their own registry; fill it outside valgrind first, so the
# runs under memcheck do not load every system plugin to scan it.
GST_PLUGIN_PATH_1_0="$build/plugin" GST_REGISTRY_1_0="$build/tests/registry.bin" \
  GST_REGISTRY_FORK=no gst-inspect-1.0 clipclassify >/dev/null 2>&1 || true

log="$build/meson-logs/valgrind-summary.txt"
if [ $# -eq 0 ]; then
  set -- --suite plugin
fi
meson test -C "$build" --no-rebuild --print-errorlogs --wrapper "$wrapper" \
  --timeout-multiplier 10 "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

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
memcheck=$(grep -c "exit status 99" "$log")
echo "valgrind: $memcheck test program(s) with memcheck errors or definite leaks"
echo "$ok passed, $failed failed"
[ "$failed" -eq 0 ]
