#!/usr/bin/env bash
# Test that `cnclip search` ranks time ranges by the cosine computed here,
# independently (awk), from the stored embeddings (`cnclip embed-image` of
# the golden images) and the query (`cnclip embed-text`), and that the
# ranges follow the merging rule exactly: hits of one source within two
# sampling intervals merge, padded by half an interval, k ranges best first.
# Also: the text format, several -i files, --image queries, --min-cosine,
# tolerated index damage (warnings) and usage errors (one stderr line,
# non-zero exit). The index is written by tests/common/make-index (the
# core's record writer). Needs only bash, coreutils and awk.
set -euo pipefail

: "${CNCLIP:?}" "${CNCLIP_TEST_DATA:?}" "${CNCLIP_GOLDEN_DUMP:?}" "${CNCLIP_MAKE_INDEX:?}"
model="$CNCLIP_TEST_DATA/cnclip-tiny"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

fail () {
  echo "FAIL: $*"
  failures=$((failures + 1))
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

# The numbers of the "embedding" array of each JSON line, space-separated.
embedding () {
  sed -e 's/.*"embedding": \[//' -e 's/\].*//' -e 's/,/ /g'
}

# --- embeddings: golden images and the query --------------------------------
pngs=() rgbs=() sizes=()
while IFS=$'\t' read -r name png rgb width height; do
  pngs+=("$png") rgbs+=("$rgb") sizes+=("${width}x${height}")
done < <("$CNCLIP_GOLDEN_DUMP" images)
[ "${#pngs[@]}" -eq 10 ] || { echo "expected 10 golden images"; exit 1; }

query="一只猫"
: >"$tmp/images.jsonl"
for i in "${!rgbs[@]}"; do
  "$CNCLIP" embed-image -m "$model" --raw "${sizes[$i]}" "${rgbs[$i]}" >>"$tmp/images.jsonl"
done
"$CNCLIP" embed-text -m "$model" "$query" | embedding >"$tmp/query"
embedding <"$tmp/images.jsonl" >"$tmp/images"

# Cosine of each image with the query, in double precision: "index cosine",
# best first. The layout below needs the 6 best and the worst to be apart.
awk 'NR == FNR { for (i = 1; i <= NF; i++) q[i] = $i; next }
     { d = 0; a = 0; b = 0
       for (i = 1; i <= NF; i++) { d += $i * q[i]; a += $i * $i; b += q[i] * q[i] }
       printf "%d %.9f\n", FNR - 1, d / sqrt (a * b) }' "$tmp/query" "$tmp/images" |
  sort -k2,2 -g -r >"$tmp/ranked"
mapfile -t rank < <(cut -d' ' -f1 "$tmp/ranked")
mapfile -t cos < <(cut -d' ' -f2 "$tmp/ranked")
echo "images by cosine with $query: ${rank[*]}"
if ! awk '{ c[NR] = $2 } END { for (i = 1; i < 6; i++) if (c[i] - c[i + 1] < 1e-4) exit 1
           if (c[6] - c[10] < 1e-4) exit 1 }' "$tmp/ranked"; then
  echo "the fixture's cosines are too close to rank them reliably"; exit 1
fi

# --- the index ---------------------------------------------------------------
# cam1.mp4: every 1 s from 0 to 11 s; cam2.mp4: every 0.5 s from 0 to 3.5 s.
# Image of rank r (1 = best) at: cam1 1 s r1, 3 s r3 (two intervals after
# 1 s: merges), 7 s r2, 10 s r6 (three intervals after 7 s: apart); cam2
# 1.0 s r4, 2.0 s r5 (two intervals: merges); everything else the worst
# image (r10).
line_of () { sed -n "$(($1 + 1))p" "$tmp/images.jsonl"; }
spec () {    # SOURCE SECONDS*1000 RANK
  printf '%s\t%d000000\t%s\n' "$1" "$2" "$(line_of "${rank[$(($3 - 1))]}")"
}
{
  for ms in 0 1000 2000 3000 4000 5000 6000 7000 8000 9000 10000 11000; do
    case $ms in
      1000) r=1 ;; 3000) r=3 ;; 7000) r=2 ;; 10000) r=6 ;; *) r=10 ;;
    esac
    spec cam1.mp4 "$ms" "$r"
  done
} >"$tmp/cam1.spec"
{
  for ms in 0 500 1000 1500 2000 2500 3000 3500; do
    case $ms in
      1000) r=4 ;; 2000) r=5 ;; *) r=10 ;;
    esac
    spec cam2.mp4 "$ms" "$r"
  done
} >"$tmp/cam2.spec"
cat "$tmp/cam1.spec" "$tmp/cam2.spec" | "$CNCLIP_MAKE_INDEX" "$tmp/index.jsonl"
"$CNCLIP_MAKE_INDEX" "$tmp/cam1.jsonl" <"$tmp/cam1.spec"
"$CNCLIP_MAKE_INDEX" "$tmp/cam2.jsonl" <"$tmp/cam2.spec"
[ "$(wc -l <"$tmp/index.jsonl")" -eq 20 ] || fail "make-index wrote $(wc -l <"$tmp/index.jsonl") records"

# check_ranges WHAT FILE EXPECTED...: each expected range is
# "SOURCE START END TIMESTAMP RANK"; the score must be cos[RANK] within 1e-5.
check_ranges () {
  local what=$1 file=$2
  shift 2
  printf '%s\n' "$@" >"$tmp/expected"
  sed -e 's/^{"source": "\([^"]*\)", "start": \([0-9.]*\), "end": \([0-9.]*\), "score": \([-0-9.e]*\), "timestamp": \([0-9.]*\)}$/\1 \2 \3 \5 \4/' \
    "$file" >"$tmp/got"
  if ! awk -v what="$what" -v cosines="${cos[*]}" '
    BEGIN { n = split (cosines, c, " ") }
    NR == FNR { want[FNR] = $0; rows = FNR; next }
    {
      got++
      split (want[FNR], e, " ")
      if ($1 != e[1] || $2 != e[2] || $3 != e[3] || $4 != e[4]) {
        printf "%s: range %d is \"%s %s %s %s\", expected \"%s %s %s %s\"\n", what, FNR,
          $1, $2, $3, $4, e[1], e[2], e[3], e[4]; bad = 1
      }
      d = $5 - c[e[5]]; if (d < 0) d = -d
      if (d > 1e-5 || NF != 5) { printf "%s: range %d score %s, expected %s\n", what, FNR, $5, c[e[5]]; bad = 1 }
    }
    END {
      if (got != rows) { printf "%s: %d ranges, expected %d\n", what, got, rows; bad = 1 }
      exit bad
    }' "$tmp/expected" "$tmp/got"; then
    fail "$what"
    cat "$file"
  fi
}

# --- search ------------------------------------------------------------------
# k = 4: r1 (cam1 1 s), r2 (cam1 7 s), r3 joins r1's range, r4 (cam2 1 s),
# r5 joins it, r6 (cam1 10 s) is the fourth range: stop.
"$CNCLIP" search -m "$model" -i "$tmp/index.jsonl" -k 4 --json "$query" >"$tmp/k4.jsonl"
check_ranges "k 4" "$tmp/k4.jsonl" \
  "cam1.mp4 0.5 3.5 1 1" \
  "cam1.mp4 6.5 7.5 7 2" \
  "cam2.mp4 0.75 2.25 1 4" \
  "cam1.mp4 9.5 10.5 10 6"

# k = 2 stops after r2: r3 has not joined the first range yet.
"$CNCLIP" search -m "$model" -i "$tmp/index.jsonl" -k 2 --json "$query" >"$tmp/k2.jsonl"
check_ranges "k 2" "$tmp/k2.jsonl" \
  "cam1.mp4 0.5 1.5 1 1" \
  "cam1.mp4 6.5 7.5 7 2"

# --min-cosine between r4 and r5: r5 is not a hit, cam2's range stays short.
min=$(awk -v a="${cos[3]}" -v b="${cos[4]}" 'BEGIN { printf "%.9f", (a + b) / 2 }')
"$CNCLIP" search -m "$model" -i "$tmp/index.jsonl" --min-cosine "$min" --json "$query" \
  >"$tmp/min.jsonl"
check_ranges "--min-cosine" "$tmp/min.jsonl" \
  "cam1.mp4 0.5 3.5 1 1" \
  "cam1.mp4 6.5 7.5 7 2" \
  "cam2.mp4 0.75 1.25 1 4"

# Default k (10): every record becomes a hit before there are 10 ranges, so
# each source's records chain into one range, first to last record, padded.
"$CNCLIP" search -m "$model" -i "$tmp/index.jsonl" --json "$query" >"$tmp/all.jsonl"
check_ranges "default k" "$tmp/all.jsonl" \
  "cam1.mp4 0 11.5 1 1" \
  "cam2.mp4 0 3.75 1 4"

# Two index files give what the combined one gives.
"$CNCLIP" search -m "$model" -i "$tmp/cam1.jsonl" -i "$tmp/cam2.jsonl" -k 4 --json "$query" \
  >"$tmp/two.jsonl"
cmp -s "$tmp/two.jsonl" "$tmp/k4.jsonl" || fail "-i cam1 -i cam2 differs from the combined index"

# The text format.
"$CNCLIP" search -m "$model" -i "$tmp/index.jsonl" -k 4 "$query" >"$tmp/k4.txt"
expected_text=$(awk -v c1="${cos[0]}" -v c2="${cos[1]}" -v c4="${cos[3]}" -v c6="${cos[5]}" 'BEGIN {
  printf "cam1.mp4  00:00:00.500-00:00:03.500  %.4f\n", c1
  printf "cam1.mp4  00:00:06.500-00:00:07.500  %.4f\n", c2
  printf "cam2.mp4  00:00:00.750-00:00:02.250  %.4f\n", c4
  printf "cam1.mp4  00:00:09.500-00:00:10.500  %.4f\n", c6 }')
if [ "$(cat "$tmp/k4.txt")" != "$expected_text" ]; then
  fail "text output"
  diff <(echo "$expected_text") "$tmp/k4.txt" || true
fi

# An image query: the image of rank 2 is stored at cam1 7 s, cosine 1.
"$CNCLIP" search -m "$model" -i "$tmp/index.jsonl" -k 1 --json --image "${pngs[${rank[1]}]}" \
  >"$tmp/image.jsonl"
sed -e 's/"score": 0\.99999[0-9]*\|"score": 1\.0000[0-9]*\|"score": 1,/"score": ONE,/' \
  "$tmp/image.jsonl" >"$tmp/image.norm"
case "$(cat "$tmp/image.norm")" in
  '{"source": "cam1.mp4", "start": 6.5, "end": 7.5, "score": ONE, "timestamp": 7}') ;;
  *) fail "--image search: $(cat "$tmp/image.jsonl")" ;;
esac

# A cut last record (interrupted writer) is tolerated with a warning.
cp "$tmp/index.jsonl" "$tmp/cut.jsonl"
head -c 100 "$tmp/index.jsonl" >>"$tmp/cut.jsonl"
"$CNCLIP" search -m "$model" -i "$tmp/cut.jsonl" -k 4 --json "$query" >"$tmp/cut.out" \
  2>"$tmp/cut.err"
cmp -s "$tmp/cut.out" "$tmp/k4.jsonl" || fail "a cut last record changed the results"
grep -q "warning: ignored 1 cut record" "$tmp/cut.err" || fail "no warning for the cut record"

# --- errors ------------------------------------------------------------------
"$CNCLIP_MAKE_INDEX" "$tmp/dim3.jsonl" <<<$'cam\t0\t[1, 2, 3]'
"$CNCLIP_MAKE_INDEX" --dtype none "$tmp/none.jsonl" <"$tmp/cam1.spec"
printf 'this is not\nan index\n' >"$tmp/garbage.jsonl"
expect_error "no index" "$CNCLIP" search -m "$model" "$query"
expect_error "missing index" "$CNCLIP" search -m "$model" -i "$tmp/missing.jsonl" "$query"
expect_error "not an index" "$CNCLIP" search -m "$model" -i "$tmp/garbage.jsonl" "$query"
expect_error "no embeddings" "$CNCLIP" search -m "$model" -i "$tmp/none.jsonl" "$query"
expect_error "dim mismatch" "$CNCLIP" search -m "$model" -i "$tmp/dim3.jsonl" "$query"
expect_error "mixed dims" "$CNCLIP" search -m "$model" -i "$tmp/index.jsonl" \
  -i "$tmp/dim3.jsonl" "$query"
expect_error "no query" "$CNCLIP" search -m "$model" -i "$tmp/index.jsonl"
expect_error "query and image" "$CNCLIP" search -m "$model" -i "$tmp/index.jsonl" \
  --image "${pngs[0]}" "$query"
expect_error "k 0" "$CNCLIP" search -m "$model" -i "$tmp/index.jsonl" -k 0 "$query"
expect_error "no model" "$CNCLIP" search -i "$tmp/index.jsonl" "$query"
expect_error "missing image" "$CNCLIP" search -m "$model" -i "$tmp/index.jsonl" \
  --image "$tmp/missing.png"
"$CNCLIP" search -m "$model" -i "$tmp/index.jsonl" -i "$tmp/dim3.jsonl" "$query" \
  2>"$tmp/err" >/dev/null || true
grep -q "dim3.jsonl:1: embedding has 3 values, earlier records 64" "$tmp/err" ||
  fail "mixed dims error does not name the line: $(cat "$tmp/err")"

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all checks passed"
