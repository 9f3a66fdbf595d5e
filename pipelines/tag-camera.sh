#!/usr/bin/env bash
# tag-camera.sh: tag a live camera with Chinese prompts, once a second.
#
# Usage: pipelines/tag-camera.sh [MODEL_DIR] [PROMPT...]
#   MODEL_DIR   Chinese-CLIP model directory (or $MODEL_DIR); default: the tiny
#               test model in tests/data (random weights: meaningless scores)
#   PROMPT...   prompts (default: a few everyday scenes)
# Environment:
#   DEVICE=/dev/video0   camera; when absent, a live test pattern stands in
#   SAMPLE_INTERVAL=1    seconds between inferences (0: every frame the model keeps up with)
#   NUM_BUFFERS=-1       stop after this many frames (-1: run until Ctrl-C)
#   SOURCE_ID=camera     copied into every message
#
# Prints one line per inference: the clipclassify message (labels, scores,
# matched, timing). mode=async: the camera never waits for the model, frames
# that arrive while it is busy are simply not inferred.
set -euo pipefail
. "$(dirname "$0")/common.sh"

set_model "${1:-}"
[ $# -gt 0 ] && shift
set_prompts "$@"

device=${DEVICE:-/dev/video0}
num_buffers=${NUM_BUFFERS:--1}
interval_ns=$(awk -v s="${SAMPLE_INTERVAL:-1}" 'BEGIN { printf "%.0f", s * 1e9 }')

if [ -e "$device" ]; then
  # decodebin takes raw and MJPEG cameras alike.
  source=(v4l2src device="$device" num-buffers="$num_buffers" ! decodebin)
  echo "camera: $device" >&2
else
  source=(videotestsrc is-live=true pattern=ball num-buffers="$num_buffers"
          ! video/x-raw,width=640,height=480,framerate=30/1)
  echo "camera: $device not found, using a live test pattern" >&2
fi

gst-launch-1.0 -m -e "${source[@]}" ! videoconvert ! \
  clipclassify model="$model" prompts="$prompts_value" mode=async \
    sample-interval="$interval_ns" source-id="${SOURCE_ID:-camera}" ! \
  fakesink sync=false | print_messages
