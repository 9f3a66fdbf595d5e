#!/usr/bin/env bash
# demo.sh: installs the dependencies (apt-get), builds, and runs the main job:
# a real GStreamer tagging pipeline (uridecodebin ! clipclassify) over the
# bundled example video, printing one clipclassify message per inference.
#
#   ./demo.sh                 the tiny test model (random weights: the
#                             pipeline is real, the scores are meaningless)
#   MODEL_DIR=/path/to/chinese-clip-vit-base-patch16 ./demo.sh
#                             the real model (see README.md, "The real model")
#   ./demo.sh VIDEO_OR_URI [PROMPT...]   your own input and prompts
set -euo pipefail
cd "$(dirname "$0")"

bash scripts/install-deps.sh
if [ ! -f build/build.ninja ]; then
  meson setup build
fi
ninja -C build

input=${1:-pipelines/examples/slides.webm}
[ $# -gt 0 ] && shift
export BUILD_DIR=$PWD/build
exec pipelines/tag-file.sh "$input" "${MODEL_DIR:-}" "$@"
