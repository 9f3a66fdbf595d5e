#!/usr/bin/env bash
# Tests `cnclip convert`: every tensor of the converted file must equal the
# fixture's float32 bytes, from safetensors, pytorch_model.bin and the
# official .pt alike; failures exit 1 with one line on stderr and no file.
# Needs $CNCLIP, $CNCLIP_TEST_DATA and jq.
set -euo pipefail

: "${CNCLIP:?}" "${CNCLIP_TEST_DATA:?}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail () { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

header () {
  local n
  n=$(od -An -t u8 -N8 "$1" | tr -d ' ')
  head -c $((8 + n)) "$1" | tail -c +9
}
header_len () { od -An -t u8 -N8 "$1" | tr -d ' '; }

# "name dtype begin end shape" per tensor
entries () {
  header "$1" | jq -r 'to_entries[] | select(.key != "__metadata__")
    | "\(.key) \(.value.dtype) \(.value.data_offsets[0]) \(.value.data_offsets[1]) \(.value.shape | tostring)"' | sort
}

# tensor_bytes FILE DATA_START BEGIN END: the bytes of a tensor
tensor_bytes () {
  dd if="$1" iflag=skip_bytes,count_bytes bs=1M skip=$(($2 + $3)) count=$(($4 - $3)) status=none
}

# same_tensors REFERENCE OUT: every F32 tensor of REFERENCE is in OUT with
# the same shape and bytes; OUT has nothing else.
same_tensors () {
  local ref=$1 out=$2 checked=0
  entries "$ref" | grep ' F32 ' > "$tmp/ref.txt"
  entries "$out" > "$tmp/out.txt"
  if [ "$(wc -l < "$tmp/ref.txt")" != "$(wc -l < "$tmp/out.txt")" ]; then
    fail "$out: $(wc -l < "$tmp/out.txt") tensors, expected the $(wc -l < "$tmp/ref.txt") F32 ones"
    return
  fi
  if grep -qv ' F32 ' "$tmp/out.txt"; then
    fail "$out: non-F32 tensors: $(grep -v ' F32 ' "$tmp/out.txt" | head -3)"
  fi
  local rbase=$((8 + $(header_len "$ref"))) obase=$((8 + $(header_len "$out")))
  # joined: name dtype begin end shape odtype obegin oend oshape
  join "$tmp/ref.txt" "$tmp/out.txt" > "$tmp/joined.txt"
  while read -r name dtype begin end rshape odtype obegin oend oshape; do
    [ "$rshape" = "$oshape" ] || fail "$name: shape $oshape, expected $rshape"
    if ! cmp -s <(tensor_bytes "$ref" "$rbase" "$begin" "$end") \
        <(tensor_bytes "$out" "$obase" "$obegin" "$oend"); then
      fail "$name: bytes differ"
    fi
    checked=$((checked + 1))
  done < "$tmp/joined.txt"
  [ "$checked" = 79 ] || fail "$out: checked $checked tensors, expected 79"
  # layout: data section 8-aligned, file ends with the last tensor
  local size last
  [ $((obase % 8)) = 0 ] || fail "$out: data section at $obase is not 8-aligned"
  size=$(stat -c %s "$out")
  last=$(awk '{ if ($4 > m) m = $4 } END { print m }' "$tmp/out.txt")
  [ "$size" = $((obase + last)) ] || fail "$out: $size bytes, expected $((obase + last))"
}

tiny=$CNCLIP_TEST_DATA/cnclip-tiny
ref=$tiny/model.safetensors

# 1. safetensors -> safetensors
"$CNCLIP" convert "$tiny" "$tmp/a.safetensors" || fail "convert of cnclip-tiny failed"
same_tensors "$ref" "$tmp/a.safetensors"

# 2. the PyTorch checkpoints hold the same weights bit for bit (FIXTURES.md 9),
# and the writer's layout does not depend on the source: identical files.
"$CNCLIP" convert "$CNCLIP_TEST_DATA/cnclip-tiny-bin" "$tmp/bin.safetensors" \
  || fail "convert of pytorch_model.bin failed"
cmp "$tmp/a.safetensors" "$tmp/bin.safetensors" || fail "pytorch_model.bin converts differently"
"$CNCLIP" convert "$CNCLIP_TEST_DATA/cnclip-tiny-official" "$tmp/pt.safetensors" \
  || fail "convert of the official model.pt failed"
cmp "$tmp/a.safetensors" "$tmp/pt.safetensors" || fail "the official model.pt converts differently"
# an explicit weights file
"$CNCLIP" convert -w model.pt "$CNCLIP_TEST_DATA/cnclip-tiny-official" "$tmp/pt2.safetensors" \
  || fail "convert -w model.pt failed"
cmp -s "$tmp/pt.safetensors" "$tmp/pt2.safetensors" || fail "convert -w gave a different file"

# 3. converting the converted file again changes nothing
mkdir "$tmp/again"
cp "$tiny/config.json" "$tiny/vocab.txt" "$tiny/preprocessor_config.json" "$tmp/again/"
cp "$tmp/a.safetensors" "$tmp/again/model.safetensors"
"$CNCLIP" convert "$tmp/again" "$tmp/b.safetensors" || fail "second convert failed"
cmp -s "$tmp/a.safetensors" "$tmp/b.safetensors" || fail "convert is not idempotent"
# ... and the converted model embeds exactly as the original
"$CNCLIP" embed-text -m "$tiny" 一只猫 一张狗的照片 > "$tmp/e1.txt" || fail "embed-text of the fixture failed"
"$CNCLIP" embed-text -m "$tmp/again" 一只猫 一张狗的照片 > "$tmp/e2.txt" || fail "embed-text of the converted model failed"
[ "$(wc -l < "$tmp/e1.txt")" = 2 ] || fail "embed-text gave $(wc -l < "$tmp/e1.txt") lines"
cmp -s "$tmp/e1.txt" "$tmp/e2.txt" || fail "the converted model embeds differently"

# 4. errors: exit 1, one line "cnclip convert: ...", nothing written
expect_error () {
  local what=$1
  shift
  local status=0
  "$CNCLIP" convert "$@" > "$tmp/stdout" 2> "$tmp/stderr" || status=$?
  if [ "$status" != 1 ]; then fail "$what: exit status $status, expected 1"; fi
  if [ -s "$tmp/stdout" ]; then fail "$what: wrote to stdout"; fi
  if [ "$(wc -l < "$tmp/stderr")" != 1 ] || ! grep -q '^cnclip convert: ' "$tmp/stderr"; then
    fail "$what: stderr is not one 'cnclip convert:' line: $(cat "$tmp/stderr")"
  fi
}
expect_error "missing model" "$tmp/no-such-model" "$tmp/x.safetensors"
[ ! -e "$tmp/x.safetensors" ] || fail "missing model: output created"
expect_error "disk full" "$tiny" /dev/full
expect_error "missing output dir" "$tiny" "$tmp/no/such/dir/x.safetensors"
[ ! -e "$tmp/no" ] || fail "missing output dir: directory created"
expect_error "one argument" "$tiny"
expect_error "bad option" --no-such-option "$tiny" "$tmp/x.safetensors"
mkdir "$tmp/broken"
cp "$tiny/config.json" "$tiny/vocab.txt" "$tmp/broken/"
head -c 1000000 "$ref" > "$tmp/broken/model.safetensors"
expect_error "truncated weights" "$tmp/broken" "$tmp/y.safetensors"
[ ! -e "$tmp/y.safetensors" ] || fail "truncated weights: output created"
leftovers=$(find "$tmp" -name '*.tmp-*' | wc -l)
[ "$leftovers" = 0 ] || fail "temporary files left behind: $leftovers"

if [ "$failures" != 0 ]; then
  echo "$failures failure(s)" >&2
  exit 1
fi
echo "cli-convert: all checks passed"
