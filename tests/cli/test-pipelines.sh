#!/usr/bin/env bash
# test-pipelines.sh: runs pipelines/tag-file.sh and pipelines/tag-camera.sh on
# short inputs and checks that they print clipclassify messages with the
# configured labels.
set -euo pipefail

src=${CNCLIP_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
data=${CNCLIP_TEST_DATA:-$src/tests/data}
model="$data/cnclip-tiny"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

fail () {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# check NAME FILE EXPECTED_MIN EXPECTED_MAX LABEL...: FILE holds between MIN
# and MAX clipclassify messages, each listing every LABEL (as printed: quoted).
check () {
  local name=$1 out=$2 min=$3 max=$4 n label
  shift 4
  grep '^clipclassify, ' "$out" >"$out.msgs" || true
  n=$(wc -l <"$out.msgs")
  if [ "$n" -lt "$min" ] || [ "$n" -gt "$max" ]; then
    fail "$name: $n clipclassify messages, expected $min..$max"
    sed 's/^/  | /' "$out" >&2
    return
  fi
  for label in "$@"; do
    if [ "$(grep -cF "\"$label\"" "$out.msgs")" -ne "$n" ]; then
      fail "$name: label $label missing from some messages"
      sed 's/^/  | /' "$out.msgs" >&2
    fi
  done
  if grep -qv 'top-label=(string)' "$out.msgs"; then
    fail "$name: a message without top-label"
  fi
  echo "ok: $name ($n messages)"
}

# A 2-second clip at 10 frames per second, encoded here.
gst-launch-1.0 -q videotestsrc num-buffers=20 pattern=ball ! \
  video/x-raw,width=320,height=240,framerate=10/1 ! jpegenc ! matroskamux ! \
  filesink location="$tmp/clip.mkv"

# One inference per half second of video: t = 0, 0.5, 1.0, 1.5.
SAMPLE_INTERVAL=0.5 timeout 300 "$src/pipelines/tag-file.sh" "$tmp/clip.mkv" "$model" \
  一只猫 城市夜景 "a \"quoted\" prompt" >"$tmp/file.out" 2>"$tmp/file.err" \
  || fail "tag-file.sh exited with $?: $(cat "$tmp/file.err")"
check "tag-file.sh clip.mkv" "$tmp/file.out" 4 4 一只猫 城市夜景 'a \"quoted\" prompt'

# As written: the bundled example and the tiny model (with its notice); all
# six default prompts reported.
MODEL_DIR= TOP_K=0 timeout 300 "$src/pipelines/tag-file.sh" >"$tmp/default.out" 2>"$tmp/default.err" \
  || fail "tag-file.sh without arguments exited with $?: $(cat "$tmp/default.err")"
check "tag-file.sh (defaults)" "$tmp/default.out" 1 1000 一只猫 一只狗 一个人 一辆红色的汽车 城市夜景 下雨的街道
grep -q "random" "$tmp/default.err" || fail "no notice about the tiny model's random weights"

# The camera script without a camera: a live test pattern, 30 frames (1 s).
DEVICE=/nonexistent/video0 NUM_BUFFERS=30 SAMPLE_INTERVAL=0.25 timeout 300 \
  "$src/pipelines/tag-camera.sh" "$model" 一只猫 一辆红色的汽车 \
  >"$tmp/camera.out" 2>"$tmp/camera.err" \
  || fail "tag-camera.sh exited with $?: $(cat "$tmp/camera.err")"
check "tag-camera.sh (test pattern)" "$tmp/camera.out" 1 4 一只猫 一辆红色的汽车
grep -q "live test pattern" "$tmp/camera.err" || fail "tag-camera.sh did not say it used the test pattern"

# A missing model fails with the loader's message.
if timeout 300 "$src/pipelines/tag-file.sh" "$tmp/clip.mkv" "$tmp/no-model" >"$tmp/bad.out" 2>&1; then
  fail "tag-file.sh with a missing model succeeded"
fi

if [ "$failures" -ne 0 ]; then
  echo "$failures failure(s)" >&2
  exit 1
fi
echo "all pipeline checks passed"
