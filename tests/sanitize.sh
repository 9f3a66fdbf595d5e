#!/usr/bin/env bash
# The whole test suite under AddressSanitizer + UndefinedBehaviorSanitizer.
#
# Usage: tests/sanitize.sh [BUILD_DIR] [meson test arguments...]
# Configures BUILD_DIR (default build-asan; gcc, -Db_sanitize=address,undefined)
# when it has no build.ninja, builds it and runs ./test.sh in it: every core,
# CLI, plugin and fuzz-replay test. Any ASan report (out-of-bounds,
# use-after-free, double free, ...), any leak not in tests/asan.supp and any
# UBSan report (halt_on_error) fails the test it happens in. The last line
# reads "N passed, N failed", as test.sh's; exit status non-zero on failure.
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build-asan}
shift || true
case "$build" in /*) ;; *) build=$src/$build ;; esac

if [ ! -f "$build/build.ninja" ]; then
  log=$(mktemp)
  if ! meson setup "$build" "$src" -Db_sanitize=address,undefined -Db_lundef=false \
      >"$log" 2>&1; then
    cat "$log"
    rm -f "$log"
    echo "0 passed, 1 failed"
    exit 1
  fi
  rm -f "$log"
fi

# detect_leaks: LeakSanitizer at exit of every test program (gcc enables it
#   by default on x86-64 Linux; explicit here).
# The GLib/GStreamer one-time allocations that are unreachable by design are
# listed, narrowly and with reasons, in tests/asan.supp.
export ASAN_OPTIONS="detect_leaks=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1:${ASAN_OPTIONS:-}"
export LSAN_OPTIONS="suppressions=$src/tests/asan.supp:print_suppressions=0:${LSAN_OPTIONS:-}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:${UBSAN_OPTIONS:-}"
# GLib 2.74 slices hand out pieces of their own pages, which hides overflows
# and use-after-free of small GLib-allocated blocks from ASan: use malloc.
export G_SLICE=always-malloc

exec "$src/test.sh" "$build" "$@"
