# common.sh: shared by the tagging pipelines (sourced, not run).
#
# Sets: model (directory), prompts_value (a prompts= value for gst-launch),
# and makes the freshly built plugin visible when nothing else is set.

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# The plugin: an installed one, GST_PLUGIN_PATH, or this checkout's build.
if [ -z "${GST_PLUGIN_PATH:-}${GST_PLUGIN_PATH_1_0:-}" ]; then
  for b in "${BUILD_DIR:-}" "$root/build" "$root"/build-*; do
    if [ -n "$b" ] && [ -e "$b/plugin/libgstcnclip.so" ]; then
      export GST_PLUGIN_PATH="$b/plugin"
      break
    fi
  done
fi
if ! gst-inspect-1.0 clipclassify >/dev/null 2>&1; then
  echo "error: the clipclassify element was not found; build the project (meson setup build &&" \
       "ninja -C build) or set GST_PLUGIN_PATH to the directory holding libgstcnclip.so" >&2
  exit 1
fi

# The model: argument, $MODEL_DIR, else the tiny test model.
set_model () {
  model=${1:-${MODEL_DIR:-}}
  if [ -z "$model" ]; then
    model="$root/tests/data/cnclip-tiny"
    echo "notice: no MODEL_DIR given, using $model:" \
         "its weights are random, so the scores are meaningless (the pipeline is real)." >&2
  fi
  if [ ! -d "$model" ]; then
    echo "error: model directory $model not found" >&2
    exit 1
  fi
}

# Escapes \ and " and wraps in double quotes.
quote () {
  local s=${1//\\/\\\\}
  s=${s//\"/\\\"}
  printf '"%s"' "$s"
}

# prompts_value from the arguments (default: a few everyday scenes): a
# GstValueArray of strings, itself quoted so that gst-launch keeps prompts
# with spaces or quotes in one piece.
set_prompts () {
  local p items=() joined
  if [ $# -eq 0 ]; then
    set -- "一只猫" "一只狗" "一个人" "一辆红色的汽车" "城市夜景" "下雨的街道"
  fi
  for p in "$@"; do
    items+=("$(quote "$p")")
  done
  joined=$(IFS=,; echo "${items[*]}")
  prompts_value=$(quote "<$joined>")
}

# Prints the clipclassify messages of `gst-launch-1.0 -m`, one per line, with
# the octal escapes of UTF-8 text turned back into characters.
print_messages () {
  perl -ne 'BEGIN { $| = 1 }
    next unless /\(element\): (clipclassify[^,]*,.*)$/;
    my $s = $1;
    $s =~ s/\\([0-7]{3})/chr(oct($1))/ge;
    $s =~ s/\\ / /g;
    print "$s\n";'
}
