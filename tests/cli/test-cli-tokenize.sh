#!/usr/bin/env bash
# test-cli-tokenize.sh: `cnclip tokenize` against the reference tokenizer
# (tests/data/tokenizer/cases.json) and its error contract.
# Needs $CNCLIP and $CNCLIP_TEST_DATA; uses only bash, coreutils and grep.
set -u

: "${CNCLIP:?CNCLIP must name the cnclip tool}"
: "${CNCLIP_TEST_DATA:?CNCLIP_TEST_DATA must name tests/data}"

failures=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail () {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

# A model directory holding nothing but the vocabulary: tokenize must not
# need config.json or weights.
model="$tmp/vocab-only"
mkdir "$model"
cp "$CNCLIP_TEST_DATA/cnclip-tiny/vocab.txt" "$model/"

# Expected lines, built from cases.json: "text" is the case text, "input_ids"
# the case input_ids (context 52), "tokens" the case tokens. Case ids:
# 0, 1, 7, 43, 50, 270, 306 (306 has 74 tokens: row truncated, tokens not).
case0='{"text": "一只猫", "input_ids": [101,671,1372,4344,102,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0], "tokens": ["一","只","猫"]}'
case1='{"text": "一张狗的照片", "input_ids": [101,671,2476,4318,4638,4212,4275,102,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0], "tokens": ["一","张","狗","的","照","片"]}'
case7='{"text": "今天天气很好，我们去公园散步吧。", "input_ids": [101,791,1921,1921,3698,2523,1962,8024,2769,812,1343,1062,1736,3141,3635,1416,511,102,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0], "tokens": ["今","天","天","气","很","好","，","我","们","去","公","园","散","步","吧","。"]}'
case43='{"text": "\"quoted\"", "input_ids": [101,107,10733,8303,107,102,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0], "tokens": ["\"","quot","##ed","\""]}'
case50='{"text": "a/b\\c", "input_ids": [101,143,120,144,139,145,102,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0], "tokens": ["a","/","b","\\","c"]}'
case270='{"text": "iPhone 15 Pro Max 手机壳", "input_ids": [101,8210,8115,8376,8621,2797,3322,1900,102,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0], "tokens": ["iphone","15","pro","max","手","机","壳"]}'
case306='{"text": "这是一段非常长的中文描述，用来测试文本截断：在一个阳光明媚的早晨，一位老人牵着他的小狗沿着河边慢慢地散步，远处的山峰被白雪覆盖，近处的柳树随风摇摆。", "input_ids": [101,6821,3221,671,3667,7478,2382,7270,4638,704,3152,2989,6835,8024,4500,3341,3844,6407,3152,3315,2779,3171,8038,1762,671,702,7345,1045,3209,2055,4638,3193,3247,8024,671,855,5439,782,4293,4708,800,4638,2207,4318,3784,4708,3777,6804,2714,2714,1765,102], "tokens": ["这","是","一","段","非","常","长","的","中","文","描","述","，","用","来","测","试","文","本","截","断","：","在","一","个","阳","光","明","媚","的","早","晨","，","一","位","老","人","牵","着","他","的","小","狗","沿","着","河","边","慢","慢","地","散","步","，","远","处","的","山","峰","被","白","雪","覆","盖","，","近","处","的","柳","树","随","风","摇","摆","。"]}'
# Cases 7 and 306 with -l 8: [CLS] + their first 6 ids + [SEP].
case7_l8='{"text": "今天天气很好，我们去公园散步吧。", "input_ids": [101,791,1921,1921,3698,2523,1962,102], "tokens": ["今","天","天","气","很","好","，","我","们","去","公","园","散","步","吧","。"]}'
case306_l8='{"text": "这是一段非常长的中文描述，用来测试文本截断：在一个阳光明媚的早晨，一位老人牵着他的小狗沿着河边慢慢地散步，远处的山峰被白雪覆盖，近处的柳树随风摇摆。", "input_ids": [101,6821,3221,671,3667,7478,2382,102], "tokens": ["这","是","一","段","非","常","长","的","中","文","描","述","，","用","来","测","试","文","本","截","断","：","在","一","个","阳","光","明","媚","的","早","晨","，","一","位","老","人","牵","着","他","的","小","狗","沿","着","河","边","慢","慢","地","散","步","，","远","处","的","山","峰","被","白","雪","覆","盖","，","近","处","的","柳","树","随","风","摇","摆","。"]}'

# check NAME EXPECTED_FILE ACTUAL_FILE
check () {
  if ! cmp -s "$2" "$3"; then
    fail "$1: output differs"
    diff "$2" "$3" | head -n 20
  fi
}

# Texts as arguments.
printf '%s\n' "$case0" "$case1" "$case7" "$case43" "$case50" "$case270" "$case306" >"$tmp/expected"
if "$CNCLIP" tokenize -m "$model" '一只猫' '一张狗的照片' '今天天气很好，我们去公园散步吧。' \
    '"quoted"' 'a/b\c' 'iPhone 15 Pro Max 手机壳' \
    '这是一段非常长的中文描述，用来测试文本截断：在一个阳光明媚的早晨，一位老人牵着他的小狗沿着河边慢慢地散步，远处的山峰被白雪覆盖，近处的柳树随风摇摆。' \
    >"$tmp/actual" 2>"$tmp/stderr"; then
  check "arguments" "$tmp/expected" "$tmp/actual"
  [ -s "$tmp/stderr" ] && fail "arguments: unexpected stderr: $(cat "$tmp/stderr")"
else
  fail "arguments: exit status $?: $(cat "$tmp/stderr")"
fi

# The same texts as JSON Lines on standard input, with JSON escapes (\u4e00
# is 一) and a blank line, which is skipped.
printf '%s\n' '"\u4e00只猫"' '"一张狗的照片"' '' '"今天天气很好，我们去公园散步吧。"' '"\"quoted\""' \
    '"a/b\\c"' '  "iPhone 15 Pro Max 手机壳"  ' \
    '"这是一段非常长的中文描述，用来测试文本截断：在一个阳光明媚的早晨，一位老人牵着他的小狗沿着河边慢慢地散步，远处的山峰被白雪覆盖，近处的柳树随风摇摆。"' \
    >"$tmp/input.jsonl"
if "$CNCLIP" tokenize -m "$model" <"$tmp/input.jsonl" >"$tmp/actual" 2>"$tmp/stderr"; then
  check "stdin" "$tmp/expected" "$tmp/actual"
else
  fail "stdin: exit status $?: $(cat "$tmp/stderr")"
fi

# -l overrides the context length.
printf '%s\n' "$case7_l8" "$case306_l8" >"$tmp/expected"
"$CNCLIP" tokenize -m "$model" -l 8 '今天天气很好，我们去公园散步吧。' \
    '这是一段非常长的中文描述，用来测试文本截断：在一个阳光明媚的早晨，一位老人牵着他的小狗沿着河边慢慢地散步，远处的山峰被白雪覆盖，近处的柳树随风摇摆。' \
    >"$tmp/actual" 2>"$tmp/stderr" || fail "-l 8: exit status $?"
check "-l 8" "$tmp/expected" "$tmp/actual"

# tokenizer_config.json model_max_length sets the default; -l still wins.
cp "$model/vocab.txt" "$tmp/"
mkdir "$tmp/ctx8"
cp "$model/vocab.txt" "$tmp/ctx8/"
printf '{"do_lower_case": true, "model_max_length": 8}\n' >"$tmp/ctx8/tokenizer_config.json"
printf '%s\n' "$case7_l8" >"$tmp/expected"
"$CNCLIP" tokenize -m "$tmp/ctx8" '今天天气很好，我们去公园散步吧。' >"$tmp/actual" 2>&1 \
  || fail "model_max_length 8: exit status $?"
check "model_max_length 8" "$tmp/expected" "$tmp/actual"
printf '%s\n' "$case7" >"$tmp/expected"
"$CNCLIP" tokenize -m "$tmp/ctx8" -l 52 '今天天气很好，我们去公园散步吧。' >"$tmp/actual" 2>&1 \
  || fail "model_max_length 8 with -l 52: exit status $?"
check "model_max_length 8 with -l 52" "$tmp/expected" "$tmp/actual"

# Hugging Face's "no limit" value falls back to 52, as the model loader does.
printf '{"model_max_length": 1000000000000000019884624838656}\n' >"$tmp/ctx8/tokenizer_config.json"
"$CNCLIP" tokenize -m "$tmp/ctx8" '今天天气很好，我们去公园散步吧。' >"$tmp/actual" 2>&1 \
  || fail "model_max_length 1e30: exit status $?"
check "model_max_length 1e30" "$tmp/expected" "$tmp/actual"

# The fixture model directory (with tokenizer_config.json, 52) gives the same.
printf '%s\n' "$case0" >"$tmp/expected"
"$CNCLIP" tokenize -m "$CNCLIP_TEST_DATA/cnclip-tiny" '一只猫' >"$tmp/actual" 2>&1 \
  || fail "cnclip-tiny: exit status $?"
check "cnclip-tiny" "$tmp/expected" "$tmp/actual"

# No input lines: no output, success.
: >"$tmp/empty"
"$CNCLIP" tokenize -m "$model" <"$tmp/empty" >"$tmp/actual" 2>&1 || fail "empty stdin: exit status $?"
[ -s "$tmp/actual" ] && fail "empty stdin: unexpected output"

# Errors: non-zero status, empty stdout, exactly one stderr line
# "cnclip tokenize: ...".
# expect_error NAME STDIN_FILE ARGS...
expect_error () {
  local name=$1 input=$2
  shift 2
  "$CNCLIP" tokenize "$@" <"$input" >"$tmp/out" 2>"$tmp/err"
  local status=$?
  if [ "$status" -eq 0 ]; then
    fail "$name: exit status 0"
  fi
  [ -s "$tmp/out" ] && fail "$name: output on stdout: $(head -c 200 "$tmp/out")"
  local lines
  lines=$(wc -l <"$tmp/err")
  [ "$lines" -eq 1 ] || fail "$name: $lines stderr lines: $(cat "$tmp/err")"
  grep -q '^cnclip tokenize: ' "$tmp/err" || fail "$name: stderr is '$(cat "$tmp/err")'"
}

mkdir "$tmp/novocab"
expect_error "missing vocab" "$tmp/empty" -m "$tmp/novocab" '一只猫'
expect_error "missing model dir" "$tmp/empty" -m "$tmp/does-not-exist" '一只猫'
expect_error "no -m" "$tmp/empty" '一只猫'
expect_error "-l 1" "$tmp/empty" -m "$model" -l 1 '一只猫'
expect_error "-l not a number" "$tmp/empty" -m "$model" -l abc '一只猫'
# Truncated UTF-8 (E4 B8) after valid text: the message names byte offset 9.
expect_error "bad UTF-8 argument" "$tmp/empty" -m "$model" '一只猫' $'一只猫\xe4\xb8'
grep -q 'byte offset 9' "$tmp/err" || fail "bad UTF-8 argument: no byte offset in '$(cat "$tmp/err")'"
expect_error "overlong UTF-8 argument" "$tmp/empty" -m "$model" $'a\xc0\xafb'
printf '"一只猫"\n"\xff\xfe"\n' >"$tmp/bad-utf8.jsonl"
expect_error "bad UTF-8 line" "$tmp/bad-utf8.jsonl" -m "$model"
printf '"一只猫"\n"unterminated\n' >"$tmp/bad-json.jsonl"
expect_error "unterminated JSON string" "$tmp/bad-json.jsonl" -m "$model"
printf '"一只猫"\n123\n' >"$tmp/not-string.jsonl"
expect_error "JSON line not a string" "$tmp/not-string.jsonl" -m "$model"
printf '["一只猫"]\n' >"$tmp/array.jsonl"
expect_error "JSON array line" "$tmp/array.jsonl" -m "$model"
printf '{"model_max_length": 8\n' >"$tmp/ctx8/tokenizer_config.json"
expect_error "malformed tokenizer_config.json" "$tmp/empty" -m "$tmp/ctx8" '一只猫'
printf '[PAD]\n[UNK]\n[SEP]\n' >"$tmp/novocab/vocab.txt"
expect_error "vocab without [CLS]" "$tmp/empty" -m "$tmp/novocab" '一只猫'

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all cnclip tokenize checks passed"
