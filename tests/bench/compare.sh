#!/usr/bin/env bash
# compare.sh: gst-cnclip side by side with ONNX Runtime and PyTorch on the
# full-size Chinese-CLIP shapes (ViT-B/16 + RoBERTa-base, random weights),
# on this machine, in one session (issue 8's targets are ratios to ORT fp32).
#
# Usage: tests/bench/compare.sh [OUT_DIR]
#
# Runs, in ROUNDS alternating rounds (shared machines drift; ratios are taken
# within a round, then the median over rounds is reported):
#   cnclip bench   fp32 and bf16, 1 and 2 threads (oneDNN backend)
#   ONNX Runtime   fp32, 1 and 2 threads (ort_quick.js: image, 10-token text)
#   PyTorch        fp32 and bf16 autocast, 1 and 2 threads (torch_clip.py, batch 1)
# and prints a table plus OUT_DIR/results.jsonl (one JSON object per run).
#
# Needs (none of it at build, test or run time of gst-cnclip):
#   - a built cnclip ($CNCLIP, default build/core/tools/cnclip) and jq;
#   - BENCH_TOOLS (default ../shared/bench next to the repository) holding
#     ort_quick.js and torch_clip.py, the anchor tools (not part of this repo);
#   - ONNX Runtime for Node: ORT_NODE_MODULES=<dir>/node_modules, installed once
#     outside the repository with
#       ONNXRUNTIME_NODE_INSTALL_CUDA=skip npm install onnxruntime-node
#   - Debian's python3-torch (/usr/bin/python3), to export the ONNX models once
#     and for the PyTorch rows (skipped when missing; SKIP_TORCH=1 skips them).
# Models are made on first use and reused: MODEL_DIR (cnclip make-random-model
# --config base, 753 MB) and ONNX_DIR (torch_clip.py export, 750 MB).
#
# Time: about 1 min per round without PyTorch on 2 cores, plus the first
# export (~2 min) and model creation (~15 s); PyTorch adds ~1.5 min per round.
# Defaults: ROUNDS=3 ITER=15 (cnclip iterations), ORT_REPS=15, TORCH_REPS=7.
#
# Wait policy: OMP_WAIT_POLICY is passed through as set by the caller (unset =
# libgomp's default spinning). On a machine busy with other work, spinning
# OpenMP threads can cost 100x (each parallel region waits for a descheduled
# peer); set OMP_WAIT_POLICY=PASSIVE there, and say which you used.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-$repo/build/bench-compare}
CNCLIP=${CNCLIP:-$repo/build/core/tools/cnclip}
BENCH_TOOLS=${BENCH_TOOLS:-$repo/../shared/bench}
MODEL_DIR=${MODEL_DIR:-$out/base-model}
ONNX_DIR=${ONNX_DIR:-$out/onnx}
ORT_NODE_MODULES=${ORT_NODE_MODULES:-}
ROUNDS=${ROUNDS:-3}
ITER=${ITER:-15}
ORT_REPS=${ORT_REPS:-15}
TORCH_REPS=${TORCH_REPS:-7}
PYTHON=${PYTHON:-/usr/bin/python3}

die () { echo "compare.sh: $*" >&2; exit 1; }
[ -x "$CNCLIP" ] || die "no cnclip at $CNCLIP (build first or set CNCLIP)"
command -v jq >/dev/null || die "jq is needed"
command -v node >/dev/null || die "node is needed for ONNX Runtime"
[ -f "$BENCH_TOOLS/ort_quick.js" ] || die "no ort_quick.js in BENCH_TOOLS=$BENCH_TOOLS"
[ -n "$ORT_NODE_MODULES" ] && [ -d "$ORT_NODE_MODULES/onnxruntime-node" ] \
  || die "set ORT_NODE_MODULES to the node_modules holding onnxruntime-node"
have_torch=0
if [ "${SKIP_TORCH:-0}" != 1 ] && "$PYTHON" -c "import torch" 2>/dev/null; then
  have_torch=1
fi
mkdir -p "$out"
results="$out/results.jsonl"
: > "$results"

if [ ! -f "$MODEL_DIR/model.safetensors" ]; then
  echo "# making the full-size random model in $MODEL_DIR"
  "$CNCLIP" make-random-model --config base "$MODEL_DIR" >/dev/null
fi
if [ ! -f "$ONNX_DIR/image.onnx" ]; then
  [ "$have_torch" = 1 ] || die "no $ONNX_DIR/image.onnx and no python3-torch to export it"
  echo "# exporting the ONNX models to $ONNX_DIR"
  "$PYTHON" "$BENCH_TOOLS/torch_clip.py" export --dir "$ONNX_DIR" >/dev/null
fi

# Machine and software, recorded with the results.
{
  echo "# $(date -u +%FT%TZ) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
  echo "# flags: $(grep -m1 '^flags' /proc/cpuinfo | grep -o -w -E 'avx512f|avx512_bf16|avx512_vnni|amx_bf16' | tr '\n' ' ')"
  echo "# OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-(unset)} OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-(unset)}"
  echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out/machine.txt"

record () {  # record ROUND JSON
  printf '%s\n' "$2" | jq -c --argjson round "$1" '. + {round: $round}' >> "$results"
}

for round in $(seq 1 "$ROUNDS"); do
  echo "# round $round/$ROUNDS (load $(cut -d' ' -f1 /proc/loadavg))"
  for threads in 2 1; do
    for precision in fp32 bf16; do
      json=$("$CNCLIP" bench -m "$MODEL_DIR" --backend onednn --precision "$precision" \
        --threads "$threads" --iterations "$ITER" --json)
      record "$round" "$(printf '%s' "$json" | jq -c '. + {runtime: "cnclip"}')"
    done
    json=$(NODE_PATH="$ORT_NODE_MODULES" node "$BENCH_TOOLS/ort_quick.js" "$ONNX_DIR" "$threads" \
      "$ORT_REPS")
    record "$round" "$(printf '%s' "$json" | jq -c '. + {runtime: "onnxruntime", precision: "fp32"}')"
    if [ "$have_torch" = 1 ]; then
      tmp="$out/torch-$round-$threads.json"
      OMP_WAIT_POLICY=PASSIVE MALLOC_MMAP_THRESHOLD_=4294967296 \
        MALLOC_TRIM_THRESHOLD_=68719476736 MALLOC_TOP_PAD_=268435456 \
        "$PYTHON" "$BENCH_TOOLS/torch_clip.py" bench --threads "$threads" --quick \
        --reps "$TORCH_REPS" --out "$tmp" >/dev/null
      for mode in fp32 bf16-autocast; do
        json=$(jq -c --arg mode "$mode" --argjson threads "$threads" '
          [.[] | select(.mode == $mode and .batch == 1)] as $r
          | {runtime: "pytorch", threads: $threads,
             precision: (if $mode == "fp32" then "fp32" else "bf16" end),
             image_ms: ($r[] | select(.kind == "image") | .med_ms),
             text10_ms: ($r[] | select(.kind == "text" and .tokens == 10) | .med_ms),
             text52_ms: ($r[] | select(.kind == "text" and .tokens == 52) | .med_ms)}' "$tmp")
        record "$round" "$json"
      done
    fi
  done
done

# Per round: each row's ratio to ORT fp32 at the same thread count; then the
# median over rounds of times and ratios.
echo
jq -rs '
  def median: sort | if length == 0 then null
    elif length % 2 == 1 then .[length / 2 | floor]
    else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  def fmt: if . == null then "-" else (. * 100 | round / 100 | tostring) end;
  . as $all
  | [ .[] | . as $r
      | ($all[] | select(.runtime == "onnxruntime" and .round == $r.round
                         and .threads == $r.threads)) as $ort
      | $r + {image_ratio: ($r.image_ms / $ort.image_ms),
              text10_ratio: (if $r.text10_ms then $r.text10_ms / $ort.text10_ms else null end)} ]
  | group_by([.runtime, .precision, .threads])
  | (["runtime", "precision", "threads", "image_ms", "text10_ms", "text52_ms", "image/ORT",
      "text10/ORT", "peak_rss_mb"] | @tsv),
    (.[] | [.[0].runtime, .[0].precision, .[0].threads,
            ([.[].image_ms] | median | fmt), ([.[].text10_ms] | median | fmt),
            ([.[].text52_ms | select(. != null)] | median | fmt),
            ([.[].image_ratio] | median | fmt), ([.[].text10_ratio | select(. != null)] | median | fmt),
            ([.[].peak_rss_mb | select(. != null)] | median | fmt)] | @tsv)
' "$results" | column -t -s $'\t' | tee "$out/summary.txt"
echo
echo "# results: $results (medians over $ROUNDS rounds; ratios within each round)"
