/* test-tokenizer.c: the tokenizer against the official Chinese-CLIP tokenizer
 * (tests/data/tokenizer/cases.json, FIXTURES.md sections 3 and 7). */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <json-glib/json-glib.h>
#include <utf8proc.h>

#include "test-util.h"

#define CASES_CONTEXT 52
#define MAX_IDS 4096

typedef struct
{
  int id;
  char *category;
  char *text;                    /* for messages */
  char *bytes;                   /* utf8_hex decoded, NUL added */
  gsize len;
  GArray *ids;                   /* gint32 */
  GPtrArray *tokens;
  GArray *input_ids;
  GArray *attention_mask;
} RefCase;

static CnclipTokenizer *tokenizer;
static GPtrArray *cases;

static char *
hex_decode (const char *hex, gsize *len)
{
  gsize n = strlen (hex) / 2;
  char *out = g_malloc (n + 1);
  for (gsize k = 0; k < n; k++)
    out[k] = (char) ((g_ascii_xdigit_value (hex[2 * k]) << 4)
        | g_ascii_xdigit_value (hex[2 * k + 1]));
  out[n] = '\0';
  *len = n;
  return out;
}

static GArray *
int_array (JsonObject *o, const char *member)
{
  JsonArray *a = json_object_get_array_member (o, member);
  GArray *out = g_array_new (FALSE, FALSE, sizeof (gint32));
  for (guint i = 0; i < json_array_get_length (a); i++) {
    gint32 v = (gint32) json_array_get_int_element (a, i);
    g_array_append_val (out, v);
  }
  return out;
}

static void
ref_case_free (gpointer data)
{
  RefCase *c = data;
  g_free (c->category);
  g_free (c->text);
  g_free (c->bytes);
  g_array_unref (c->ids);
  g_ptr_array_unref (c->tokens);
  g_array_unref (c->input_ids);
  g_array_unref (c->attention_mask);
  g_free (c);
}

static void
load_cases (void)
{
  GError *error = NULL;
  char *path = test_data_path ("tokenizer/cases.json");
  JsonParser *parser = json_parser_new ();
  json_parser_load_from_file (parser, path, &error);
  g_assert_no_error (error);
  JsonObject *root = json_node_get_object (json_parser_get_root (parser));
  g_assert_cmpint (json_object_get_int_member (root, "context_length"), ==, CASES_CONTEXT);
  g_assert_cmpint (json_object_get_int_member (root, "max_input_chars_per_word"), ==, 200);

  JsonArray *array = json_object_get_array_member (root, "cases");
  cases = g_ptr_array_new_with_free_func (ref_case_free);
  for (guint i = 0; i < json_array_get_length (array); i++) {
    JsonObject *o = json_array_get_object_element (array, i);
    RefCase *c = g_new0 (RefCase, 1);
    c->id = (int) json_object_get_int_member (o, "id");
    c->category = g_strdup (json_object_get_string_member (o, "category"));
    c->text = g_strdup (json_object_get_string_member (o, "text"));
    c->bytes = hex_decode (json_object_get_string_member (o, "utf8_hex"), &c->len);
    c->ids = int_array (o, "ids");
    c->input_ids = int_array (o, "input_ids");
    c->attention_mask = int_array (o, "attention_mask");
    c->tokens = g_ptr_array_new_with_free_func (g_free);
    JsonArray *tokens = json_object_get_array_member (o, "tokens");
    for (guint k = 0; k < json_array_get_length (tokens); k++)
      g_ptr_array_add (c->tokens, g_strdup (json_array_get_string_element (tokens, k)));
    g_ptr_array_add (cases, c);
  }
  g_assert_cmpint (cases->len, ==, json_object_get_int_member (root, "num_cases"));
  g_object_unref (parser);
  g_free (path);
}

static const RefCase *
find_case (int id)
{
  for (guint i = 0; i < cases->len; i++) {
    const RefCase *c = g_ptr_array_index (cases, i);
    if (c->id == id)
      return c;
  }
  g_assert_not_reached ();
}

static void
print_ids (const char *label, const gint32 *ids, int n)
{
  GString *s = g_string_new (label);
  for (int i = 0; i < n; i++)
    g_string_append_printf (s, i ? ",%d" : "%d", ids[i]);
  g_printerr ("  %s]\n", s->str);
  g_string_free (s, TRUE);
}

static void
report_case (const RefCase *c, const char *what, const gint32 *expected, int n_expected,
    const gint32 *got, int n_got)
{
  g_printerr ("case %d (%s) %s differs; text \"%s\"\n", c->id, c->category, what, c->text);
  print_ids ("expected [", expected, n_expected);
  print_ids ("got      [", got, n_got);
}

static CnclipTokenizer *
load_vocab_text (const char *contents, gssize len, GError **error)
{
  char *dir = test_make_temp_dir ();
  char *path = g_build_filename (dir, "vocab.txt", NULL);
  GError *local = NULL;
  g_file_set_contents (path, contents, len, &local);
  g_assert_no_error (local);
  CnclipTokenizer *tok = cnclip_tokenizer_load (path, error);
  g_free (path);
  g_free (dir);
  return tok;
}

/* Test that the fixture vocabulary loads with the expected size, checksum and special ids. */
static void
test_vocab_real (void)
{
  char *path = test_data_path ("cnclip-tiny/vocab.txt");
  gsize len;
  guint8 *data = test_read_file (path, &len);
  char *sha = g_compute_checksum_for_data (G_CHECKSUM_SHA256, data, len);
  g_assert_cmpstr (sha, ==, "45bbac6b341c319adc98a532532882e91a9cefc0329aa57bac9ae761c27b291c");

  g_assert_cmpint (cnclip_tokenizer_get_vocab_size (tokenizer), ==, 21128);
  g_assert_cmpstr (cnclip_tokenizer_id_to_token (tokenizer, CNCLIP_TOKEN_PAD), ==, "[PAD]");
  g_assert_cmpstr (cnclip_tokenizer_id_to_token (tokenizer, CNCLIP_TOKEN_UNK), ==, "[UNK]");
  g_assert_cmpstr (cnclip_tokenizer_id_to_token (tokenizer, CNCLIP_TOKEN_CLS), ==, "[CLS]");
  g_assert_cmpstr (cnclip_tokenizer_id_to_token (tokenizer, CNCLIP_TOKEN_SEP), ==, "[SEP]");
  g_assert_cmpstr (cnclip_tokenizer_id_to_token (tokenizer, CNCLIP_TOKEN_MASK), ==, "[MASK]");
  /* Lines 343 (U+2028) and 13502 ("##" U+2028): str.strip() removes U+2028. */
  g_assert_cmpstr (cnclip_tokenizer_id_to_token (tokenizer, 343), ==, "");
  g_assert_cmpstr (cnclip_tokenizer_id_to_token (tokenizer, 13502), ==, "##");
  g_assert_cmpstr (cnclip_tokenizer_id_to_token (tokenizer, 671), ==, "一");
  g_assert_cmpstr (cnclip_tokenizer_id_to_token (tokenizer, 21127), ==, "##😎");
  g_assert_null (cnclip_tokenizer_id_to_token (tokenizer, 21128));
  g_assert_null (cnclip_tokenizer_id_to_token (tokenizer, -1));
  g_assert_null (cnclip_tokenizer_id_to_token (tokenizer, G_MAXINT));
  g_free (sha);
  g_free (data);
  g_free (path);
}

/* Test that every reference case gives the exact ids, tokens, 52-id row and attention mask. */
static void
test_reference_cases (void)
{
  gint32 *ids = g_new (gint32, MAX_IDS);
  gint32 row[CASES_CONTEXT];
  int failures = 0;

  for (guint i = 0; i < cases->len; i++) {
    const RefCase *c = g_ptr_array_index (cases, i);
    GError *error = NULL;
    int n = cnclip_tokenizer_tokenize (tokenizer, c->bytes, (gssize) c->len, ids, MAX_IDS, &error);
    g_assert_no_error (error);
    g_assert_cmpint (n, <=, MAX_IDS);
    gboolean same = n == (int) c->ids->len
        && (n == 0 || memcmp (ids, c->ids->data, sizeof (gint32) * n) == 0);
    if (!same) {
      report_case (c, "ids", (gint32 *) c->ids->data, c->ids->len, ids, MAX (n, 0));
      failures++;
      continue;
    }
    for (int k = 0; k < n; k++) {
      const char *token = cnclip_tokenizer_id_to_token (tokenizer, ids[k]);
      if (g_strcmp0 (token, g_ptr_array_index (c->tokens, k)) != 0) {
        g_printerr ("case %d token %d: expected \"%s\", got \"%s\"\n", c->id, k,
            (char *) g_ptr_array_index (c->tokens, k), token);
        failures++;
      }
    }

    int n_tokens = -1;
    gboolean ok = cnclip_tokenizer_encode (tokenizer, c->bytes, (gssize) c->len, CASES_CONTEXT,
        row, &n_tokens, &error);
    g_assert_no_error (error);
    g_assert_true (ok);
    g_assert_cmpint (n_tokens, ==, c->ids->len);
    g_assert_cmpint (c->input_ids->len, ==, CASES_CONTEXT);
    if (memcmp (row, c->input_ids->data, sizeof row) != 0) {
      report_case (c, "input_ids", (gint32 *) c->input_ids->data, CASES_CONTEXT, row,
          CASES_CONTEXT);
      failures++;
    }
    for (int k = 0; k < CASES_CONTEXT; k++)
      g_assert_cmpint (g_array_index (c->attention_mask, gint32, k), ==, row[k] != 0);

    /* Without NUL bytes inside, -1 (NUL-terminated) must read the same text. */
    if (memchr (c->bytes, '\0', c->len) == NULL) {
      int n2 = cnclip_tokenizer_tokenize (tokenizer, c->bytes, -1, ids, MAX_IDS, &error);
      g_assert_no_error (error);
      g_assert_cmpint (n2, ==, n);
    }
  }
  g_assert_cmpint (failures, ==, 0);
  g_free (ids);
}

/* Test that rows of other context lengths are [CLS] + the first ids + [SEP] + padding. */
static void
test_context_lengths (void)
{
  /* Long cases (49 to 200 ids) and short ones, from several categories. */
  static const int case_ids[] = { 0, 79, 84, 246, 289, 290, 296, 299, 300, 301, 303, 305, 308 };
  static const int lengths[] = { 2, 3, 8, 51, 52, 53, 77, 202, 512 };

  for (gsize i = 0; i < G_N_ELEMENTS (case_ids); i++) {
    const RefCase *c = find_case (case_ids[i]);
    const gint32 *ref = (const gint32 *) c->ids->data;
    int n_ref = (int) c->ids->len;
    for (gsize j = 0; j < G_N_ELEMENTS (lengths); j++) {
      int ctx = lengths[j];
      gint32 *row = g_new (gint32, ctx + 1);
      GError *error = NULL;
      int n_tokens = -1;
      row[ctx] = 12345;          /* must stay untouched */
      g_assert_true (cnclip_tokenizer_encode (tokenizer, c->bytes, (gssize) c->len, ctx, row,
              &n_tokens, &error));
      g_assert_no_error (error);
      g_assert_cmpint (n_tokens, ==, n_ref);
      int kept = MIN (n_ref, ctx - 2);
      g_assert_cmpint (row[0], ==, CNCLIP_TOKEN_CLS);
      for (int k = 0; k < kept; k++)
        g_assert_cmpint (row[1 + k], ==, ref[k]);
      g_assert_cmpint (row[1 + kept], ==, CNCLIP_TOKEN_SEP);
      for (int k = kept + 2; k < ctx; k++)
        g_assert_cmpint (row[k], ==, CNCLIP_TOKEN_PAD);
      g_assert_cmpint (row[ctx], ==, 12345);
      if (ctx == CASES_CONTEXT)
        g_assert_cmpmem (row, ctx * sizeof (gint32), c->input_ids->data, ctx * sizeof (gint32));
      g_free (row);
    }
  }

  /* The encode call accepts a NULL n_tokens. */
  gint32 row[2];
  g_assert_true (cnclip_tokenizer_encode (tokenizer, "一只猫", -1, 2, row, NULL, NULL));
  g_assert_cmpint (row[0], ==, CNCLIP_TOKEN_CLS);
  g_assert_cmpint (row[1], ==, CNCLIP_TOKEN_SEP);
}

/* Test that a context length below 2 is CNCLIP_ERROR_INVALID_ARGUMENT. */
static void
test_context_length_invalid (void)
{
  static const int lengths[] = { 1, 0, -1, G_MININT };
  for (gsize i = 0; i < G_N_ELEMENTS (lengths); i++) {
    gint32 row[4] = { 7, 7, 7, 7 };
    GError *error = NULL;
    g_assert_false (cnclip_tokenizer_encode (tokenizer, "一只猫", -1, lengths[i], row, NULL,
            &error));
    test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT);
    g_assert_cmpint (row[0], ==, 7);
  }
}

/* Test that tokenize() counts past max_ids like snprintf and writes only max_ids ids. */
static void
test_max_ids (void)
{
  const RefCase *c = find_case (305);   /* 56 ids */
  const gint32 *ref = (const gint32 *) c->ids->data;
  int n_ref = (int) c->ids->len;
  gint32 buf[64];

  g_assert_cmpint (cnclip_tokenizer_tokenize (tokenizer, c->bytes, (gssize) c->len, NULL, 0,
          NULL), ==, n_ref);
  for (int max = 0; max <= n_ref + 2; max += 5) {
    for (int k = 0; k < 64; k++)
      buf[k] = -7;
    int n = cnclip_tokenizer_tokenize (tokenizer, c->bytes, (gssize) c->len, buf, max, NULL);
    g_assert_cmpint (n, ==, n_ref);
    for (int k = 0; k < 64; k++)
      g_assert_cmpint (buf[k], ==, k < MIN (max, n_ref) ? ref[k] : -7);
  }
}

/* Test that an explicit length reads embedded NULs (dropped) and stops where it says. */
static void
test_explicit_length (void)
{
  gint32 ids[8];
  GError *error = NULL;

  /* Case 211 is "a\0b": code point 0 is dropped and does not split the word. */
  const RefCase *c = find_case (211);
  g_assert_cmpint (c->len, ==, 3);
  g_assert_cmpint (cnclip_tokenizer_tokenize (tokenizer, "a\0b", 3, ids, 8, NULL), ==, 1);
  g_assert_cmpint (ids[0], ==, g_array_index (c->ids, gint32, 0));
  /* NUL-terminated, the same bytes are just "a". */
  g_assert_cmpint (cnclip_tokenizer_tokenize (tokenizer, "a\0b", -1, ids, 8, NULL), ==, 1);
  g_assert_cmpstr (cnclip_tokenizer_id_to_token (tokenizer, ids[0]), ==, "a");
  /* Case 254 is a lone NUL: no tokens. */
  g_assert_cmpint (cnclip_tokenizer_tokenize (tokenizer, "\0", 1, ids, 8, NULL), ==, 0);

  /* A prefix of case 0 ("一只猫"): 3 bytes are "一". */
  c = find_case (0);
  g_assert_cmpint (cnclip_tokenizer_tokenize (tokenizer, c->bytes, 3, ids, 8, NULL), ==, 1);
  g_assert_cmpint (ids[0], ==, g_array_index (c->ids, gint32, 0));
  g_assert_cmpint (cnclip_tokenizer_tokenize (tokenizer, c->bytes, 0, ids, 8, NULL), ==, 0);
  g_assert_cmpint (cnclip_tokenizer_tokenize (tokenizer, NULL, 0, ids, 8, NULL), ==, 0);

  /* Cutting inside a character makes the text invalid at that character. */
  g_assert_cmpint (cnclip_tokenizer_tokenize (tokenizer, c->bytes, 4, ids, 8, &error), ==, -1);
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_UTF8);
}

typedef struct
{
  const char *name;
  const char *bad;               /* bytes after the valid prefix */
  gsize bad_len;
} BadUtf8;

/* Test that each class of ill-formed UTF-8 is CNCLIP_ERROR_UTF8 naming the byte offset. */
static void
test_invalid_utf8 (void)
{
  static const BadUtf8 table[] = {
    { "lone continuation byte", "\x80", 1 },
    { "continuation byte 0xBF", "\xBF" "a", 2 },
    { "overlong 2-byte '/'", "\xC0\xAF", 2 },
    { "overlong 2-byte U+007F", "\xC1\xBF", 2 },
    { "overlong 3-byte '/'", "\xE0\x80\xAF", 3 },
    { "overlong 3-byte U+07FF", "\xE0\x9F\xBF", 3 },
    { "overlong 4-byte '/'", "\xF0\x80\x80\xAF", 4 },
    { "overlong 4-byte U+FFFF", "\xF0\x8F\xBF\xBF", 4 },
    { "surrogate U+D800", "\xED\xA0\x80", 3 },
    { "surrogate U+DFFF", "\xED\xBF\xBF", 3 },
    { "CESU-8 surrogate pair", "\xED\xA0\xBD\xED\xB8\x80", 6 },
    { "U+110000", "\xF4\x90\x80\x80", 4 },
    { "lead byte 0xF5", "\xF5\x80\x80\x80", 4 },
    { "lead byte 0xF7 (U+1FFFFF)", "\xF7\xBF\xBF\xBF", 4 },
    { "5-byte form", "\xF8\x88\x80\x80\x80", 5 },
    { "byte 0xFE", "\xFE", 1 },
    { "byte 0xFF", "\xFF" "abc", 4 },
    { "truncated 2-byte at the end", "\xC3", 1 },
    { "truncated 3-byte at the end", "\xE4\xB8", 2 },
    { "truncated 4-byte at the end", "\xF0\x9F\x98", 3 },
    { "truncated 3-byte before ASCII", "\xE4\xB8" "a", 3 },
    { "truncated 2-byte before a 2-byte", "\xC3\xC3\xA9", 3 },
    { "truncated 4-byte before a CJK", "\xF0\x9F\xE4\xB8\x80", 5 },
    { "NUL inside a sequence", "\xE4\x00\x80", 3 },
  };
  /* Valid prefixes: the offset must count bytes, not characters. */
  static const char *prefixes[] = { "", "猫a", "一只猫 a photo of a cat, 一只猫。" };

  for (gsize p = 0; p < G_N_ELEMENTS (prefixes); p++) {
    gsize prefix_len = strlen (prefixes[p]);
    for (gsize i = 0; i < G_N_ELEMENTS (table); i++) {
      gsize len = prefix_len + table[i].bad_len;
      char *text = g_malloc (len);
      memcpy (text, prefixes[p], prefix_len);
      memcpy (text + prefix_len, table[i].bad, table[i].bad_len);
      char *expected = g_strdup_printf ("byte offset %" G_GSIZE_FORMAT, prefix_len);
      GError *error = NULL;
      gint32 ids[64];
      gint32 row[8] = { 9, 9, 9, 9, 9, 9, 9, 9 };

      if (g_test_verbose ())
        g_printerr ("%s after %" G_GSIZE_FORMAT " bytes\n", table[i].name, prefix_len);
      g_assert_cmpint (cnclip_tokenizer_tokenize (tokenizer, text, (gssize) len, ids, 64, &error),
          ==, -1);
      g_assert_nonnull (error);
      g_assert_nonnull (strstr (error->message, expected));
      test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_UTF8);

      g_assert_false (cnclip_tokenizer_encode (tokenizer, text, (gssize) len, 8, row, NULL,
              &error));
      g_assert_nonnull (error);
      g_assert_nonnull (strstr (error->message, expected));
      test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_UTF8);
      g_assert_cmpint (row[0], ==, 9);    /* nothing written on error */
      g_free (expected);
      g_free (text);
    }
  }
}

/* Test that a missing vocab file or directory is CNCLIP_ERROR_IO. */
static void
test_vocab_missing (void)
{
  GError *error = NULL;
  char *dir = test_make_temp_dir ();
  char *path = g_build_filename (dir, "no-such-vocab.txt", NULL);

  g_assert_null (cnclip_tokenizer_load (path, &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO);
  g_assert_null (cnclip_tokenizer_load (dir, &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO);
  g_free (path);
  g_free (dir);
}

typedef struct
{
  const char *name;
  const char *contents;
  gssize len;
  const char *message;           /* part of the expected message */
} BadVocab;

/* Test that empty vocabularies, missing special tokens and bad UTF-8 are CNCLIP_ERROR_VOCAB. */
static void
test_vocab_invalid (void)
{
  static const BadVocab table[] = {
    { "empty file", "", 0, "empty" },
    { "one empty line", "\n", -1, "[PAD]" },
    { "no [CLS]", "[PAD]\n[UNK]\n[SEP]\na\n", -1, "[CLS]" },
    { "no [SEP]", "[PAD]\n[UNK]\n[CLS]\n", -1, "[SEP]" },
    { "no [UNK]", "[PAD]\n[CLS]\n[SEP]\n", -1, "[UNK]" },
    { "no [PAD]", "[UNK]\n[CLS]\n[SEP]\n", -1, "[PAD]" },
    { "lower-case [cls]", "[PAD]\n[UNK]\n[cls]\n[SEP]\n", -1, "[CLS]" },
    /* U+FEFF is not whitespace for str.strip(), so "[PAD]" is missing. */
    { "byte order mark", "\xEF\xBB\xBF[PAD]\n[UNK]\n[CLS]\n[SEP]\n", -1, "[PAD]" },
    { "invalid UTF-8", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n\xFF\n", -1, "line 5" },
    { "truncated UTF-8", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n\xE4\xB8", -1, "byte offset 24" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (table); i++) {
    GError *error = NULL;
    if (g_test_verbose ())
      g_printerr ("%s\n", table[i].name);
    g_assert_null (load_vocab_text (table[i].contents, table[i].len, &error));
    g_assert_nonnull (error);
    g_assert_nonnull (strstr (error->message, table[i].message));
    test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_VOCAB);
  }
}

/* Test that vocab files beyond the limits (16 MiB, 2^20 lines) are CNCLIP_ERROR_TOO_LARGE. */
static void
test_vocab_too_large (void)
{
  GError *error = NULL;
  gsize size = 16 * 1024 * 1024 + 1;
  char *big = g_malloc (size);

  /* Valid otherwise: the special tokens, then one long line. */
  memset (big, 'x', size);
  memcpy (big, "[PAD]\n[UNK]\n[CLS]\n[SEP]\n", 24);
  g_assert_null (load_vocab_text (big, (gssize) size, &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_TOO_LARGE);
  /* One byte less loads. */
  CnclipTokenizer *tok = load_vocab_text (big, (gssize) size - 1, &error);
  g_assert_no_error (error);
  g_assert_cmpint (cnclip_tokenizer_get_vocab_size (tok), ==, 5);
  cnclip_tokenizer_free (tok);

  /* 4 special lines (24 bytes), then empty lines: 2^20 + 1 lines in all. */
  gsize lines = (1 << 20) + 1;
  memset (big, '\n', lines + 20);
  memcpy (big, "[PAD]\n[UNK]\n[CLS]\n[SEP]\n", 24);
  g_assert_null (load_vocab_text (big, (gssize) lines + 20, &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_TOO_LARGE);
  tok = load_vocab_text (big, (gssize) lines + 19, &error);
  g_assert_no_error (error);
  g_assert_cmpint (cnclip_tokenizer_get_vocab_size (tok), ==, 1 << 20);
  cnclip_tokenizer_free (tok);
  g_free (big);
}

/* Test that vocab lines are split and stripped as Python reads them, duplicates keep the last id
 * and the special ids come from the file. */
static void
test_vocab_format (void)
{
  static const char vocab[] =
      "[UNK]\r\n"                        /* 0 */
      "  [CLS]\xE3\x80\x80\r"            /* 1: U+3000 stripped, lone CR ends the line */
      "a\n"                              /* 2 */
      "\xC2\xA0##b\xE2\x80\xA8\n"        /* 3: NBSP and U+2028 stripped */
      "[SEP]\x0B\x0C\n"                  /* 4: VT and FF stripped */
      "a\n"                              /* 5: duplicate of 2, wins */
      "[PAD]\n"                          /* 6 */
      "\n"                               /* 7: "" */
      "\x1C##c";                         /* 8: no final newline, U+001C stripped */
  GError *error = NULL;
  CnclipTokenizer *tok = load_vocab_text (vocab, -1, &error);
  g_assert_no_error (error);
  g_assert_nonnull (tok);

  static const char *expected[] = {
    "[UNK]", "[CLS]", "a", "##b", "[SEP]", "a", "[PAD]", "", "##c",
  };
  g_assert_cmpint (cnclip_tokenizer_get_vocab_size (tok), ==, G_N_ELEMENTS (expected));
  for (gsize i = 0; i < G_N_ELEMENTS (expected); i++)
    g_assert_cmpstr (cnclip_tokenizer_id_to_token (tok, (int) i), ==, expected[i]);

  /* "ab" -> a ##b; "abc" -> a ##b ##c; "A" -> a; "x" -> [UNK]. */
  static const gint32 ids_ref[] = { 5, 3, 5, 3, 8, 5, 0 };
  gint32 ids[16];
  g_assert_cmpint (cnclip_tokenizer_tokenize (tok, "ab abc A x", -1, ids, 16, &error), ==, 7);
  g_assert_no_error (error);
  g_assert_cmpmem (ids, sizeof ids_ref, ids_ref, sizeof ids_ref);

  static const gint32 row_ref[] = { 1, 5, 3, 5, 3, 8, 5, 0, 4, 6, 6 };
  gint32 row[G_N_ELEMENTS (row_ref)];
  g_assert_true (cnclip_tokenizer_encode (tok, "ab abc A x", -1, G_N_ELEMENTS (row), row, NULL,
          &error));
  g_assert_cmpmem (row, sizeof row, row_ref, sizeof row_ref);
  cnclip_tokenizer_free (tok);

  /* A file of "\r\n" lines only. */
  tok = load_vocab_text ("[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\n", -1, &error);
  g_assert_no_error (error);
  g_assert_cmpint (cnclip_tokenizer_get_vocab_size (tok), ==, 4);
  g_assert_cmpstr (cnclip_tokenizer_id_to_token (tok, 3), ==, "[SEP]");
  cnclip_tokenizer_free (tok);
  cnclip_tokenizer_free (NULL);
}

typedef struct
{
  const char *text;
  gint32 ids[8];
  int n;
} ExtraCase;

/* Test that the Unicode 14.0 behaviour holds where Unicode 15.0 data would differ, and more
 * final-sigma contexts than cases.json has. */
static void
test_unicode14 (void)
{
  /* Expected ids computed with Python 3.11 (unicodedata 14.0.0) running the
   * official BasicTokenizer + WordPiece code on the fixture vocab. */
  static const ExtraCase table[] = {
    /* U+10EFD is Mn in 15.0 (would be dropped, leaving "a"), Cn in 14.0. */
    { "a\xF0\x90\xBB\xBD", { 100 }, 1 },
    /* U+13439 is Cf in 15.0 (would be dropped, leaving "ab"). */
    { "a\xF0\x93\x90\xB9" "b", { 100 }, 1 },
    /* U+11F43 is Po in 15.0 (would split off). */
    { "a\xF0\x91\xBD\x83" "b", { 100 }, 1 },
    { "ΟΔΟΣ.", { 222, 13383, 13392, 13395, 119 }, 5 },
    { "ΟΔΟΣ'Α", { 222, 13383, 13392, 13396, 112, 210 }, 6 },
    { "ΑΣΑ", { 210, 13396, 13380 }, 3 },
    { "ΑΣ\xCC\x81", { 210, 13395 }, 2 },                    /* combining acute: ignorable */
    { "Σ", { 226 }, 1 },
    { "ΑΣ\xC2\xAD" "Β", { 210, 13396, 13381 }, 3 },         /* soft hyphen is cleaned first */
    { "ΑΣ:Β", { 210, 13396, 131, 211 }, 4 },
    { "ΑΣ\xE2\x80\x8D" "α", { 210, 13396, 13380 }, 3 },     /* ZWJ cleaned first */
    { "'Σ'", { 112, 226, 112 }, 3 },
    { "ΑΣ\xE3\x80\x80" "Α", { 210, 13395, 210 }, 3 },       /* U+3000 ends the word */
    { "ΑΣ一", { 210, 13395, 671 }, 3 },                     /* so does a CJK character */
    { "\xE1\xBA\x9E", { 191 }, 1 },                         /* U+1E9E -> ß */
    { "\xEF\xAC\x81", { 100 }, 1 },                         /* ﬁ has no canonical decomposition */
  };

  for (gsize i = 0; i < G_N_ELEMENTS (table); i++) {
    gint32 ids[16];
    GError *error = NULL;
    int n = cnclip_tokenizer_tokenize (tokenizer, table[i].text, -1, ids, 16, &error);
    g_assert_no_error (error);
    if (n != table[i].n || memcmp (ids, table[i].ids, n * sizeof (gint32)) != 0) {
      g_printerr ("\"%s\"\n", table[i].text);
      print_ids ("expected [", table[i].ids, table[i].n);
      print_ids ("got      [", ids, MAX (n, 0));
    }
    g_assert_cmpint (n, ==, table[i].n);
    g_assert_cmpmem (ids, n * sizeof (gint32), table[i].ids, n * sizeof (gint32));
  }

  /* The Unicode data must be at least 14.0 for the code points it knows. */
  int major = atoi (utf8proc_unicode_version ());
  g_assert_cmpint (major, >=, 14);
}

/* Test that NFD's canonical reordering is applied before accents are stripped. */
static void
test_canonical_order (void)
{
  /* U+1D165 (Mc, class 216) and U+1D16D (Mc, class 226) survive accent
   * stripping, so their NFD order shows in the WordPiece result. */
  static const char vocab[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\na\n"
      "##\xF0\x9D\x85\xA5\xF0\x9D\x85\xAD\n"       /* 5: ## U+1D165 U+1D16D */
      "##\xF0\x9D\x85\xAD\xF0\x9D\x85\xA5\n";      /* 6: ## U+1D16D U+1D165 */
  /* Expected ids from Python 3.11 running the official code with this vocab. */
  static const ExtraCase table[] = {
    { "a\xF0\x9D\x85\xAD\xF0\x9D\x85\xA5", { 4, 5 }, 2 },                /* reordered */
    { "a\xF0\x9D\x85\xA5\xF0\x9D\x85\xAD", { 4, 5 }, 2 },                /* already ordered */
    /* U+0941 is Mn of class 0: dropped, but it blocks the reordering. */
    { "a\xF0\x9D\x85\xAD\xE0\xA5\x81\xF0\x9D\x85\xA5", { 4, 6 }, 2 },
    /* U+0301 is Mn of class 230: dropped, sorted in the same run. */
    { "a\xF0\x9D\x85\xAD\xCC\x81\xF0\x9D\x85\xA5", { 4, 5 }, 2 },
    /* A control character is cleaned before NFD: no block. */
    { "a\xF0\x9D\x85\xAD\x01\xF0\x9D\x85\xA5", { 4, 5 }, 2 },
  };
  GError *error = NULL;
  CnclipTokenizer *tok = load_vocab_text (vocab, -1, &error);
  g_assert_no_error (error);

  for (gsize i = 0; i < G_N_ELEMENTS (table); i++) {
    gint32 ids[8];
    int n = cnclip_tokenizer_tokenize (tok, table[i].text, -1, ids, 8, &error);
    g_assert_no_error (error);
    g_assert_cmpint (n, ==, table[i].n);
    g_assert_cmpmem (ids, n * sizeof (gint32), table[i].ids, n * sizeof (gint32));
  }
  cnclip_tokenizer_free (tok);
}

/* Test that the 19 golden texts give the input_ids of golden/expected.safetensors. */
static void
test_golden_texts (void)
{
  int ndim = 0;
  gint64 shape[8];
  gint32 *expected = test_golden_ids ("input_ids", &ndim, shape);
  g_assert_cmpint (ndim, ==, 2);
  g_assert_cmpint (shape[0], ==, test_golden_n_texts ());
  g_assert_cmpint (shape[1], ==, CASES_CONTEXT);

  for (int i = 0; i < test_golden_n_texts (); i++) {
    const TestGoldenText *t = test_golden_text (i);
    gint32 row[CASES_CONTEXT];
    int n_tokens = 0;
    GError *error = NULL;
    g_assert_true (cnclip_tokenizer_encode (tokenizer, t->text, -1, CASES_CONTEXT, row,
            &n_tokens, &error));
    g_assert_no_error (error);
    g_assert_cmpmem (row, sizeof row, expected + i * CASES_CONTEXT, sizeof row);
    g_assert_cmpint (MIN (n_tokens + 2, CASES_CONTEXT), ==, t->num_tokens);
  }
  g_free (expected);
}

/* Interesting code points for random valid text: every step of the pipeline. */
static const gunichar fuzz_pool[] = {
  'a', 'B', 'z', '0', '9', ' ', '\t', '\n', '\r', '.', ',', '#', '\'', ':', '[', ']', 0,
  0x01, 0x0B, 0x7F, 0x85, 0xA0, 0xAD, 0xC9, 0xDF, 0x130, 0x1C5, 0x301, 0x307, 0x345, 0x391,
  0x3A3, 0x3C2, 0x3C3, 0x941, 0x1100, 0x180E, 0x1E9E, 0x200B, 0x200D, 0x2028, 0x2029, 0x3000,
  0x3001, 0x3042, 0x304C, 0x30AB, 0x4E00, 0x732B, 0x9FFF, 0xAC00, 0xD7A3, 0xF900, 0xFAD9,
  0xFF21, 0xFF0C, 0xFFFD, 0xFEFF, 0x10EFD, 0x13439, 0x1D165, 0x1D16D, 0x1F600, 0x20000,
  0x2A6DF, 0x2F800, 0xE000, 0x10FFFF,
};

static void
check_random_text (GRand *rand, const char *text, gsize len, gint32 *ids)
{
  GError *error = NULL;
  int n = cnclip_tokenizer_tokenize (tokenizer, text, (gssize) len, ids, MAX_IDS, &error);
  /* GLib's validator refuses NUL bytes; validate the pieces between them. */
  gboolean valid = TRUE;
  for (gsize start = 0, end; start <= len && valid; start = end + 1) {
    const char *nul = memchr (text + start, '\0', len - start);
    end = nul ? (gsize) (nul - text) : len;
    valid = g_utf8_validate_len (text + start, end - start, NULL);
  }

  if (n < 0) {
    test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_UTF8);
    g_assert_false (valid);
    return;
  }
  /* Well-formed UTF-8 is exactly what GLib accepts too. */
  g_assert_true (valid);
  g_assert_cmpint (n, <=, 4 * (int) len);
  for (int k = 0; k < MIN (n, MAX_IDS); k++) {
    g_assert_cmpint (ids[k], >=, 0);
    g_assert_cmpint (ids[k], <, 21128);
  }
  int ctx = 2 + (int) g_rand_int_range (rand, 0, 60);
  gint32 row[64];
  int n_tokens = -1;
  g_assert_true (cnclip_tokenizer_encode (tokenizer, text, (gssize) len, ctx, row, &n_tokens,
          NULL));
  g_assert_cmpint (n_tokens, ==, n);
  int kept = MIN (n, ctx - 2);
  g_assert_cmpmem (row + 1, kept * sizeof (gint32), ids, kept * sizeof (gint32));
  g_assert_cmpint (row[kept + 1], ==, CNCLIP_TOKEN_SEP);
}

/* Test that 20,000 random byte strings and 20,000 random valid texts never crash and either
 * tokenize consistently or fail with CNCLIP_ERROR_UTF8 exactly when not well-formed. */
static void
test_fuzz (void)
{
  GRand *rand = g_rand_new_with_seed (20240617);
  gint32 *ids = g_new (gint32, MAX_IDS);
  char *text = g_malloc (2048);

  for (int iter = 0; iter < 20000; iter++) {
    gsize len = (gsize) g_rand_int_range (rand, 0, iter % 10 == 0 ? 600 : 40);
    /* Mostly high bytes, so that multi-byte sequences are often almost right. */
    for (gsize k = 0; k < len; k++)
      text[k] = (char) (g_rand_boolean (rand) ? g_rand_int_range (rand, 0x80, 0x100)
          : g_rand_int_range (rand, 0, 0x100));
    check_random_text (rand, text, len, ids);
  }
  for (int iter = 0; iter < 20000; iter++) {
    gsize len = 0;
    int n_chars = g_rand_int_range (rand, 0, iter % 10 == 0 ? 400 : 30);
    for (int k = 0; k < n_chars; k++) {
      gunichar c = g_rand_int_range (rand, 0, 4) == 0
          ? (gunichar) g_rand_int_range (rand, 0, 0x30000)
          : fuzz_pool[g_rand_int_range (rand, 0, G_N_ELEMENTS (fuzz_pool))];
      if (c >= 0xD800 && c < 0xE000)
        c = 0x3A3;
      len += g_unichar_to_utf8 (c, text + len);
    }
    check_random_text (rand, text, len, ids);
  }
  g_free (text);
  g_free (ids);
  g_rand_free (rand);
}

/* Test that a word longer than 200 characters after normalisation is one [UNK], and that the
 * 200-character limit applies to each punctuation-split piece. */
static void
test_long_words (void)
{
  GString *s = g_string_new (NULL);
  gint32 ids[512];

  /* 100,000 'a': one [UNK], no quadratic work. */
  for (int i = 0; i < 100000; i++)
    g_string_append_c (s, 'a');
  g_assert_cmpint (cnclip_tokenizer_tokenize (tokenizer, s->str, -1, ids, 512, NULL), ==, 1);
  g_assert_cmpint (ids[0], ==, CNCLIP_TOKEN_UNK);

  /* 300 "a," pieces: punctuation splits them into 600 tokens. */
  g_string_truncate (s, 0);
  for (int i = 0; i < 300; i++)
    g_string_append (s, "a,");
  g_assert_cmpint (cnclip_tokenizer_tokenize (tokenizer, s->str, -1, ids, 512, NULL), ==, 600);
  g_assert_cmpstr (cnclip_tokenizer_id_to_token (tokenizer, ids[0]), ==, "a");
  g_assert_cmpstr (cnclip_tokenizer_id_to_token (tokenizer, ids[1]), ==, ",");

  /* 200 'é' (2 code points each in NFD, 1 after stripping): not too long. */
  g_string_truncate (s, 0);
  for (int i = 0; i < 200; i++)
    g_string_append (s, "e\xCC\x81");
  /* Python 3.11 with the official code: "ee" (13173), then 99 x "##ee" (8854). */
  g_assert_cmpint (cnclip_tokenizer_tokenize (tokenizer, s->str, -1, ids, 512, NULL), ==, 100);
  g_assert_cmpint (ids[0], ==, 13173);
  for (int i = 1; i < 100; i++)
    g_assert_cmpint (ids[i], ==, 8854);
  g_string_append_c (s, 'e');
  g_assert_cmpint (cnclip_tokenizer_tokenize (tokenizer, s->str, -1, ids, 512, NULL), ==, 1);
  g_assert_cmpint (ids[0], ==, CNCLIP_TOKEN_UNK);
  g_string_free (s, TRUE);
}

typedef struct
{
  int failures;
} ThreadResult;

static gpointer
thread_main (gpointer data)
{
  ThreadResult *result = data;
  gint32 row[CASES_CONTEXT];

  for (int round = 0; round < 10; round++) {
    for (guint i = 0; i < cases->len; i++) {
      const RefCase *c = g_ptr_array_index (cases, i);
      if (!cnclip_tokenizer_encode (tokenizer, c->bytes, (gssize) c->len, CASES_CONTEXT, row,
              NULL, NULL) || memcmp (row, c->input_ids->data, sizeof row) != 0)
        result->failures++;
    }
  }
  return NULL;
}

/* Test that one tokenizer serves several threads at once with the reference results. */
static void
test_threads (void)
{
  GThread *threads[4];
  ThreadResult results[4] = { { 0 } };

  for (int i = 0; i < 4; i++)
    threads[i] = g_thread_new ("tokenize", thread_main, &results[i]);
  for (int i = 0; i < 4; i++) {
    g_thread_join (threads[i]);
    g_assert_cmpint (results[i].failures, ==, 0);
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  GError *error = NULL;
  char *path = test_data_path ("cnclip-tiny/vocab.txt");
  tokenizer = cnclip_tokenizer_load (path, &error);
  g_assert_no_error (error);
  g_free (path);
  load_cases ();

  g_test_add_func ("/tokenizer/vocab-real", test_vocab_real);
  g_test_add_func ("/tokenizer/reference-cases", test_reference_cases);
  g_test_add_func ("/tokenizer/context-lengths", test_context_lengths);
  g_test_add_func ("/tokenizer/context-length-invalid", test_context_length_invalid);
  g_test_add_func ("/tokenizer/max-ids", test_max_ids);
  g_test_add_func ("/tokenizer/explicit-length", test_explicit_length);
  g_test_add_func ("/tokenizer/invalid-utf8", test_invalid_utf8);
  g_test_add_func ("/tokenizer/vocab-missing", test_vocab_missing);
  g_test_add_func ("/tokenizer/vocab-invalid", test_vocab_invalid);
  g_test_add_func ("/tokenizer/vocab-too-large", test_vocab_too_large);
  g_test_add_func ("/tokenizer/vocab-format", test_vocab_format);
  g_test_add_func ("/tokenizer/unicode14", test_unicode14);
  g_test_add_func ("/tokenizer/canonical-order", test_canonical_order);
  g_test_add_func ("/tokenizer/golden-texts", test_golden_texts);
  g_test_add_func ("/tokenizer/long-words", test_long_words);
  g_test_add_func ("/tokenizer/fuzz", test_fuzz);
  g_test_add_func ("/tokenizer/threads", test_threads);

  int status = g_test_run ();
  cnclip_tokenizer_free (tokenizer);
  g_ptr_array_unref (cases);
  return status;
}
