#!/usr/bin/env bash
# Tests `cnclip make-random-model`: the directory it writes loads (tokenize,
# convert, embed-text), is deterministic for a seed, has the documented
# layout and weight statistics; bad usage exits 1 with one stderr line.
# Needs $CNCLIP, $CNCLIP_TEST_DATA and jq.
set -euo pipefail

: "${CNCLIP:?}" "${CNCLIP_TEST_DATA:?}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail () { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

header_len () { od -An -t u8 -N8 "$1" | tr -d ' '; }
header () { head -c $((8 + $(header_len "$1"))) "$1" | tail -c +9; }
# floats NAME FILE [COUNT]: the first COUNT (default all) float32 values of a tensor, one per line
floats () {
  local file=$2 begin end
  read -r begin end < <(header "$file" | jq -r --arg n "$1" '.[$n].data_offsets | "\(.[0]) \(.[1])"')
  local n=$(((end - begin) / 4))
  if [ $# -ge 3 ] && [ "$3" -lt "$n" ]; then n=$3; fi
  od -An -v -t f4 -w4 -j $((8 + $(header_len "$file") + begin)) -N $((4 * n)) "$file"
}
# stats: "min max mean std" of numbers on stdin
stats () {
  awk '{ x = $1 + 0; s += x; q += x * x; if (NR == 1 || x < lo) lo = x; if (NR == 1 || x > hi) hi = x }
       END { m = s / NR; printf "%.6f %.6f %.6f %.6f\n", lo, hi, m, sqrt(q / NR - m * m) }'
}
# within VALUE LOW HIGH
within () { awk -v v="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(v >= lo && v <= hi) }'; }

d1=$tmp/tiny1
"$CNCLIP" make-random-model --config tiny --seed 7 "$d1" || fail "make-random-model --config tiny failed"
for f in config.json preprocessor_config.json vocab.txt model.safetensors; do
  [ -s "$d1/$f" ] || fail "$f missing or empty"
done
[ -z "$(find "$d1" -name '*.tmp-*')" ] || fail "temporary file left in $d1"

# config: the tiny fixture's sizes
[ "$(jq .projection_dim "$d1/config.json")" = 64 ] || fail "projection_dim"
[ "$(jq .vision_config.patch_size "$d1/config.json")" = 16 ] || fail "patch_size"
[ "$(jq .text_config.vocab_size "$d1/config.json")" = 21128 ] || fail "vocab_size"
[ "$(wc -l < "$d1/vocab.txt")" = 21128 ] || fail "vocab.txt has $(wc -l < "$d1/vocab.txt") lines"
sed -n '1p;101p;102p;103p;104p' "$d1/vocab.txt" | tr '\n' ' ' | grep -qx '\[PAD\] \[UNK\] \[CLS\] \[SEP\] \[MASK\] ' \
  || fail "special tokens are not at 0, 100..103"

# weights: the fixture's layout (81 tensors: 79 F32 + 2 I64), packed, 8-aligned
h=$(header "$d1/model.safetensors")
[ "$(jq '[to_entries[] | select(.key != "__metadata__")] | length' <<< "$h")" = 81 ] || fail "not 81 tensors"
[ "$(jq '[to_entries[] | select(.value.dtype == "F32")] | length' <<< "$h")" = 79 ] || fail "not 79 F32 tensors"
[ "$(jq -c '.["vision_model.embeddings.patch_embedding.weight"].shape' <<< "$h")" = "[128,3,16,16]" ] \
  || fail "patch embedding shape"
[ "$(jq -c '.logit_scale.shape' <<< "$h")" = "[]" ] || fail "logit_scale is not 0-d"
size=$(stat -c %s "$d1/model.safetensors")
last=$(jq '[to_entries[] | select(.key != "__metadata__") | .value.data_offsets[1]] | max' <<< "$h")
[ "$size" = $((8 + $(header_len "$d1/model.safetensors") + last)) ] || fail "file size $size"
cmp -s <(jq -S 'with_entries(.value |= .shape)' <<< "$h") \
  <(header "$CNCLIP_TEST_DATA/cnclip-tiny/model.safetensors" | jq -S 'with_entries(.value |= .shape)') \
  || fail "names or shapes differ from the tiny fixture"

# weight statistics resemble FIXTURES.md 1.2
ls_value=$(floats logit_scale "$d1/model.safetensors" | tr -d ' ')
within "$ls_value" 2.6591 2.6593 || fail "logit_scale $ls_value"
read -r lo hi mean std < <(floats vision_model.encoder.layers.0.layer_norm1.weight "$d1/model.safetensors" | stats)
{ within "$lo" 0.85 1.15 && within "$hi" 0.85 1.15 && within "$mean" 0.95 1.05; } \
  || fail "LayerNorm weights: min $lo max $hi mean $mean"
read -r lo hi mean std < <(floats text_model.embeddings.word_embeddings.weight "$d1/model.safetensors" 65536 | stats)
{ within "$std" 0.019 0.021 && within "$mean" -0.001 0.001; } || fail "word embeddings: mean $mean std $std"
read -r lo hi mean std < <(floats vision_model.encoder.layers.1.mlp.fc2.weight "$d1/model.safetensors" | stats)
# fan_in 512: std 1/sqrt(512) = 0.0442
within "$std" 0.043 0.0455 || fail "fc2 weight std $std"
read -r lo hi mean std < <(floats vision_model.embeddings.patch_embedding.weight "$d1/model.safetensors" | stats)
# fan_in 3*16*16: std 0.0361
within "$std" 0.035 0.037 || fail "patch embedding std $std"

# deterministic for a seed, different across seeds
"$CNCLIP" make-random-model --config tiny --seed 7 "$tmp/tiny2" || fail "second run failed"
cmp -s "$d1/model.safetensors" "$tmp/tiny2/model.safetensors" || fail "same seed, different weights"
cmp -s "$d1/vocab.txt" "$tmp/tiny2/vocab.txt" || fail "same seed, different vocab"
"$CNCLIP" make-random-model --config tiny --seed 8 "$tmp/tiny3" || fail "third run failed"
if cmp -s "$d1/model.safetensors" "$tmp/tiny3/model.safetensors"; then fail "different seeds, same weights"; fi

# the directory loads: tokenizer, full model (convert), encoders
out=$("$CNCLIP" tokenize -m "$d1" 一只猫) || fail "tokenize failed"
[ "$(jq -c '.input_ids[0:6]' <<< "$out")" = "[101,234,1748,9749,102,0]" ] || fail "tokenize: $out"
[ "$(jq -c .tokens <<< "$out")" = '["一","只","猫"]' ] || fail "tokens: $out"
"$CNCLIP" convert "$d1" "$tmp/converted.safetensors" || fail "the random model does not load"
if "$CNCLIP" embed-text -m "$d1" 一只猫 > "$tmp/embed.txt" 2> "$tmp/embed.err"; then
  n=$(jq '[.embedding[] | select(. != 0)] | length' "$tmp/embed.txt" 2>/dev/null || echo 0)
  [ "$n" = 64 ] || fail "embed-text gave $n non-zero values: $(head -c 200 "$tmp/embed.txt")"
else
  fail "embed-text failed: $(cat "$tmp/embed.err")"
fi
# ... and the same text embeds the same from the same seed, differently from another
"$CNCLIP" embed-text -m "$tmp/tiny2" 一只猫 > "$tmp/embed2.txt" || fail "embed-text tiny2 failed"
cmp -s "$tmp/embed.txt" "$tmp/embed2.txt" || fail "same seed, different embeddings"
"$CNCLIP" embed-text -m "$tmp/tiny3" 一只猫 > "$tmp/embed3.txt" || fail "embed-text tiny3 failed"
if cmp -s "$tmp/embed.txt" "$tmp/embed3.txt"; then fail "different seeds, same embeddings"; fi

# --vocab copies the given vocabulary (the real one here)
"$CNCLIP" make-random-model --config tiny --vocab "$CNCLIP_TEST_DATA/cnclip-tiny/vocab.txt" "$tmp/real-vocab" \
  || fail "--vocab failed"
cmp -s "$CNCLIP_TEST_DATA/cnclip-tiny/vocab.txt" "$tmp/real-vocab/vocab.txt" || fail "--vocab did not copy"
out=$("$CNCLIP" tokenize -m "$tmp/real-vocab" 一只猫) || fail "tokenize with the real vocab failed"
[ "$(jq -c '.input_ids[0:5]' <<< "$out")" = "[101,671,1372,4344,102]" ] || fail "real-vocab ids: $out"

# errors: exit 1 and one "cnclip make-random-model:" line
expect_error () {
  local what=$1
  shift
  local status=0
  "$CNCLIP" make-random-model "$@" > "$tmp/stdout" 2> "$tmp/stderr" || status=$?
  [ "$status" = 1 ] || fail "$what: exit status $status, expected 1"
  [ ! -s "$tmp/stdout" ] || fail "$what: wrote to stdout"
  if [ "$(wc -l < "$tmp/stderr")" != 1 ] || ! grep -q '^cnclip make-random-model: ' "$tmp/stderr"; then
    fail "$what: stderr is not one 'cnclip make-random-model:' line: $(cat "$tmp/stderr")"
  fi
}
expect_error "unknown config" --config huge "$tmp/x"
[ ! -e "$tmp/x" ] || fail "unknown config: directory created"
expect_error "no OUTDIR"
expect_error "two OUTDIRs" "$tmp/a" "$tmp/b"
touch "$tmp/file"
expect_error "OUTDIR below a file" --config tiny "$tmp/file/sub"
expect_error "missing vocab file" --config tiny --vocab "$tmp/no-such-vocab.txt" "$tmp/v1"
{ cat "$CNCLIP_TEST_DATA/cnclip-tiny/vocab.txt"; echo extra; } > "$tmp/long-vocab.txt"
expect_error "vocab longer than vocab_size" --config tiny --vocab "$tmp/long-vocab.txt" "$tmp/v2"
expect_error "bad seed" --seed abc "$tmp/v3"

if [ "$failures" != 0 ]; then
  echo "$failures failure(s)" >&2
  exit 1
fi
echo "cli-model: all checks passed"
