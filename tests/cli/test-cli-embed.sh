#!/usr/bin/env bash
# Test that `cnclip embed-text`, `embed-image` and `classify` reproduce the
# golden tensors of the tiny fixture model (FIXTURES.md 5, tolerances of 6)
# through the command line: texts from arguments and from JSON Lines,
# images decoded by GStreamer (PNG) and read raw (--raw), scores of classify;
# and that usage errors give one stderr line and a non-zero exit.
# Needs only bash, coreutils and awk; golden values come from golden-dump.
set -euo pipefail

: "${CNCLIP:?}" "${CNCLIP_TEST_DATA:?}" "${CNCLIP_GOLDEN_DUMP:?}"
model="$CNCLIP_TEST_DATA/cnclip-tiny"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

fail () {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

# JSON array member KEY of each line, as space-separated numbers. The member
# is found from the end of the line, so brackets inside the echoed text or
# file name cannot confuse it.
member () {
  awk -v key="\"$1\": [" '{
    i = 0; s = $0
    while ((j = index (s, key)) > 0) { i += j; s = substr (s, j + 1) }
    if (i == 0) { print "missing"; next }
    rest = substr ($0, i + length (key))
    rest = substr (rest, 1, index (rest, "]") - 1)
    gsub (/,/, " ", rest)
    print rest
  }'
}

# compare GOT EXPECTED TOLERANCE WHAT: same rows, same values per row, max
# absolute difference within TOLERANCE.
compare () {
  if ! awk -v tol="$3" -v what="$4" '
    NR == FNR { want[FNR] = $0; n = FNR; next }
    {
      rows++
      m = split (want[FNR], e, " "); k = split ($0, g, " ")
      if (k != m) { printf "%s: row %d has %d values, expected %d\n", what, FNR, k, m; bad = 1; next }
      for (i = 1; i <= k; i++) {
        if (g[i] !~ /^-?[0-9.]+([eE][-+]?[0-9]+)?$/) { printf "%s: row %d: not a number: %s\n", what, FNR, g[i]; bad = 1 }
        d = g[i] - e[i]; if (d < 0) d = -d; if (d > max) max = d
      }
    }
    END {
      if (rows != n) { printf "%s: %d rows, expected %d\n", what, rows, n; bad = 1 }
      printf "%s: max abs err %.3g over %d rows (tolerance %g)\n", what, max, rows, tol
      exit (bad || max > tol) ? 1 : 0
    }' "$2" "$1"; then
    fail "$4"
  fi
}

# expect_error WHAT COMMAND...: non-zero exit, exactly one line on stderr.
expect_error () {
  local what=$1
  shift
  if "$@" >"$tmp/out" 2>"$tmp/err"; then
    fail "$what: exit status 0"
  elif [ "$(wc -l <"$tmp/err")" -ne 1 ]; then
    fail "$what: stderr has $(wc -l <"$tmp/err") lines"
    cat "$tmp/err"
  else
    echo "$what: $(cat "$tmp/err")"
  fi
}

"$CNCLIP_GOLDEN_DUMP" tensor image_embeds >"$tmp/image_embeds"
"$CNCLIP_GOLDEN_DUMP" tensor text_embeds >"$tmp/text_embeds"
"$CNCLIP_GOLDEN_DUMP" tensor probs >"$tmp/probs"
"$CNCLIP_GOLDEN_DUMP" tensor logits_per_image >"$tmp/logits"
mapfile -t texts < <("$CNCLIP_GOLDEN_DUMP" texts)
names=() pngs=() rgbs=() sizes=()
while IFS=$'\t' read -r name png rgb width height; do
  names+=("$name") pngs+=("$png") rgbs+=("$rgb") sizes+=("${width}x${height}")
done < <("$CNCLIP_GOLDEN_DUMP" images)
[ "${#texts[@]}" -eq 19 ] || fail "expected 19 golden texts, got ${#texts[@]}"
[ "${#pngs[@]}" -eq 10 ] || fail "expected 10 golden images, got ${#pngs[@]}"

# --- embed-text ------------------------------------------------------------
"$CNCLIP_GOLDEN_DUMP" texts-jsonl | "$CNCLIP" embed-text -m "$model" >"$tmp/texts-stdin.jsonl"
member embedding <"$tmp/texts-stdin.jsonl" >"$tmp/got"
compare "$tmp/got" "$tmp/text_embeds" 1e-4 "embed-text (JSON Lines on stdin) vs text_embeds"

"$CNCLIP" embed-text -m "$model" "${texts[@]}" >"$tmp/texts-args.jsonl"
member embedding <"$tmp/texts-args.jsonl" >"$tmp/got"
compare "$tmp/got" "$tmp/text_embeds" 1e-4 "embed-text (arguments) vs text_embeds"
first=$(head -n 1 "$tmp/texts-args.jsonl")
case "$first" in
  '{"text": "一只猫", "embedding": ['*) ;;
  *) fail "embed-text line does not start with the text: ${first:0:60}" ;;
esac

# "--" lets a text start with '-'; it is not itself a text
out=$("$CNCLIP" embed-text -m "$model" -- -x)
case "$out" in
  '{"text": "-x", "embedding": ['*) ;;
  *) fail "embed-text -- -x gave: ${out:0:60}" ;;
esac

# --normalize: unit vectors in the same direction
"$CNCLIP" embed-text -m "$model" --normalize "${texts[@]:0:3}" | member embedding >"$tmp/unit"
if ! awk '{ s = 0; for (i = 1; i <= NF; i++) s += $i * $i; d = s - 1; if (d < 0) d = -d
            if (d > 1e-5) { print "norm^2 " s; bad = 1 } } END { exit bad }' "$tmp/unit"; then
  fail "embed-text --normalize does not give unit vectors"
fi

# --- embed-image -----------------------------------------------------------
"$CNCLIP" embed-image -m "$model" "${pngs[@]}" >"$tmp/png.jsonl"
member embedding <"$tmp/png.jsonl" >"$tmp/got"
compare "$tmp/got" "$tmp/image_embeds" 1e-4 "embed-image (PNG via GStreamer) vs image_embeds"
first=$(head -n 1 "$tmp/png.jsonl")
case "$first" in
  "{\"file\": \"${pngs[0]}\", \"embedding\": ["*) ;;
  *) fail "embed-image line does not start with the file: ${first:0:80}" ;;
esac

: >"$tmp/raw.jsonl"
for i in "${!rgbs[@]}"; do
  "$CNCLIP" embed-image -m "$model" --raw "${sizes[$i]}" "${rgbs[$i]}" >>"$tmp/raw.jsonl"
done
member embedding <"$tmp/raw.jsonl" >"$tmp/got"
compare "$tmp/got" "$tmp/image_embeds" 1e-4 "embed-image (--raw .rgb) vs image_embeds"

# The portable backend through the CLI as well (the default may be oneDNN).
"$CNCLIP" embed-image -m "$model" --backend openblas --threads 1 "${pngs[@]:0:3}" \
  | member embedding >"$tmp/got"
head -n 3 "$tmp/image_embeds" >"$tmp/image_embeds3"
compare "$tmp/got" "$tmp/image_embeds3" 1e-4 "embed-image --backend openblas vs image_embeds[0:3]"
"$CNCLIP" embed-text -m "$model" --backend openblas "${texts[@]}" | member embedding >"$tmp/got"
compare "$tmp/got" "$tmp/text_embeds" 1e-4 "embed-text --backend openblas vs text_embeds"

# --- classify ----------------------------------------------------------------
prompt_args=()
for t in "${texts[@]}"; do
  prompt_args+=(-p "$t")
done
"$CNCLIP" classify -m "$model" "${prompt_args[@]}" "${pngs[@]}" >"$tmp/classify.jsonl"
member probs <"$tmp/classify.jsonl" >"$tmp/got"
compare "$tmp/got" "$tmp/probs" 1e-5 "classify probs vs probs"
member logits <"$tmp/classify.jsonl" >"$tmp/got"
compare "$tmp/got" "$tmp/logits" 1e-4 "classify logits vs logits_per_image"
# cosines are logits / exp(logit_scale)
member cosines <"$tmp/classify.jsonl" >"$tmp/got"
awk '{ for (i = 1; i <= NF; i++) $i = $i / 17.960562; print }' "$tmp/logits" >"$tmp/cosines"
compare "$tmp/got" "$tmp/cosines" 1e-5 "classify cosines vs logits_per_image / logit_scale_exp"
case "$(head -n 1 "$tmp/classify.jsonl")" in
  *'"labels": ["一只猫","一张狗的照片","城市夜景",'*) ;;
  *) fail "classify labels are not the prompts in order" ;;
esac

# A template: labels stay as given, "{}" is replaced for encoding only. With
# "{}" alone the texts are the golden ones, so the probs are too.
"$CNCLIP" classify -m "$model" --template "{}" "${prompt_args[@]}" --raw "${sizes[1]}" \
  "${rgbs[1]}" | member probs >"$tmp/got"
sed -n 2p "$tmp/probs" >"$tmp/probs1"
compare "$tmp/got" "$tmp/probs1" 1e-5 "classify --template {} --raw vs probs[1]"
"$CNCLIP" classify -m "$model" --template "一张{}的照片" -p 狗 -p 猫 --raw "${sizes[0]}" \
  "${rgbs[0]}" >"$tmp/template.jsonl"
"$CNCLIP" classify -m "$model" -p 一张狗的照片 -p 一张猫的照片 --raw "${sizes[0]}" \
  "${rgbs[0]}" >"$tmp/plain.jsonl"
case "$(cat "$tmp/template.jsonl")" in
  *'"labels": ["狗","猫"]'*) ;;
  *) fail "classify --template changed the labels" ;;
esac
if [ "$(member probs <"$tmp/template.jsonl")" != "$(member probs <"$tmp/plain.jsonl")" ]; then
  fail "classify --template 一张{}的照片 differs from the expanded prompts"
fi

# --- errors ------------------------------------------------------------------
expect_error "no model" "$CNCLIP" embed-text 一只猫
expect_error "missing model dir" "$CNCLIP" embed-text -m "$tmp/nowhere" 一只猫
expect_error "no image file" "$CNCLIP" embed-image -m "$model"
expect_error "missing image" "$CNCLIP" embed-image -m "$model" "$tmp/missing.png"
expect_error "raw size mismatch" "$CNCLIP" embed-image -m "$model" --raw 10x10 "${rgbs[0]}"
expect_error "unknown backend" "$CNCLIP" embed-text -m "$model" --backend cuda 一只猫
expect_error "negative threads" "$CNCLIP" embed-text -m "$model" --threads -1 一只猫
expect_error "bad raw size" "$CNCLIP" embed-image -m "$model" --raw 10 "${rgbs[0]}"
expect_error "template without {}" "$CNCLIP" classify -m "$model" -p 猫 --template 照片 "${pngs[0]}"
expect_error "no prompt" "$CNCLIP" classify -m "$model" "${pngs[0]}"
expect_error "invalid UTF-8" "$CNCLIP" embed-text -m "$model" $'\xff\xfe'
expect_error "bad JSON line" bash -c "echo '{\"x\": 1}' | \"\$0\" embed-text -m \"\$1\"" \
  "$CNCLIP" "$model"

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all checks passed"
