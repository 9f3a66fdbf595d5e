#!/usr/bin/env bash
# tag-file.sh: tag a video (or image) file or URI with Chinese prompts.
#
# Usage: pipelines/tag-file.sh [FILE|URI] [MODEL_DIR] [PROMPT...]
#   FILE|URI    anything uridecodebin plays (default: the bundled example
#               pipelines/examples/slides.webm, else a test picture)
#   MODEL_DIR   Chinese-CLIP model directory (or $MODEL_DIR); default: the tiny
#               test model in tests/data (random weights: meaningless scores)
#   PROMPT...   prompts (default: a few everyday scenes)
# Environment:
#   SAMPLE_INTERVAL=1   seconds of video between inferences (0: every frame)
#   TOP_K=5             results per inference
#   SOURCE_ID           copied into every message (default: the file name)
#
# Prints one line per inference: the clipclassify message. mode=sync: every
# sampled frame is inferred, the file is read as fast as the model allows.
set -euo pipefail
. "$(dirname "$0")/common.sh"

default_input=$root/pipelines/examples/slides.webm
[ -e "$default_input" ] || default_input=$root/tests/data/cnclip-tiny/golden/images/shapes_1280x720.png
input=${1:-$default_input}
[ $# -gt 0 ] && shift
set_model "${1:-}"
[ $# -gt 0 ] && shift
set_prompts "$@"

case "$input" in
  *://*) uri=$input ;;
  *)
    if [ ! -e "$input" ]; then
      echo "error: $input not found" >&2
      exit 1
    fi
    uri="file://$(realpath "$input")"
    ;;
esac
interval_ns=$(awk -v s="${SAMPLE_INTERVAL:-1}" 'BEGIN { printf "%.0f", s * 1e9 }')

gst-launch-1.0 -m -e uridecodebin uri="$uri" ! videoconvert ! \
  clipclassify model="$model" prompts="$prompts_value" \
    sample-interval="$interval_ns" top-k="${TOP_K:-5}" \
    source-id="${SOURCE_ID:-$(basename "$input")}" ! \
  fakesink | print_messages
