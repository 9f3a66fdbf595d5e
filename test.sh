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

meson test -C "$build" --print-errorlogs "$@"
status=$?

# Count test programs and, inside TAP programs, individual test cases.
summary=$(python3 - "$build/meson-logs/testlog.json" <<'PY' 2>/dev/null
import json, sys
progs_ok = progs_fail = cases_ok = cases_fail = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("result") in ("OK", "EXPECTEDFAIL", "SKIP"):
        progs_ok += 1
    else:
        progs_fail += 1
    for l in (r.get("stdout") or "").splitlines():
        if l.startswith("ok "): cases_ok += 1
        elif l.startswith("not ok "): cases_fail += 1
print(f"{progs_ok} {progs_fail} {cases_ok} {cases_fail}")
PY
)
if [ -n "$summary" ]; then
  read -r pok pfail cok cfail <<<"$summary"
  echo "test programs: $pok passed, $pfail failed; test cases in them: $cok passed, $cfail failed"
else
  pok=0; pfail=1
fi
if [ "$status" -ne 0 ] && [ "$pfail" -eq 0 ]; then
  pfail=1
fi
echo "$pok passed, $pfail failed"
[ "$pfail" -eq 0 ]
