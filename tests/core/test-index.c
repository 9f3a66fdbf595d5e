/* test-index.c: loading record files into an index (the invalid-line
 * policy, truncated tails, dims, f16), sampling-interval inference, scoring
 * against independently computed cosines, and the range-merging rule on a
 * hand-made index with exact expected ranges. */
#include "config.h"

#include <math.h>
#include <string.h>

#include "test-util.h"
#include "index.h"
#include "record.h"

#define SEC(s) ((gint64) ((s) * 1e9))

/* ------------------------------------------------------------------------ */
/* Helpers */

/* One record line with an embedding of @dim floats (@dtype) or none. */
static char *
record_line (const char *source, gint64 timestamp, guint64 frame, const float *embedding,
    int dim, CnclipEmbeddingDtype dtype)
{
  CnclipRecord r;
  cnclip_record_init (&r);
  r.source = source;
  r.frame = frame;
  r.timestamp = timestamp < 0 ? CNCLIP_TIME_NONE : (guint64) timestamp;
  r.pts = r.timestamp;
  r.model_name = "test";
  r.dim = dim;
  r.score_mode = "softmax";
  r.embedding = embedding;
  r.embedding_dtype = embedding ? dtype : CNCLIP_EMBEDDING_NONE;
  GString *out = g_string_new (NULL);
  cnclip_record_format (&r, out);
  return g_string_free (out, FALSE);
}

static char *
write_file (const char *dir, const char *name, const char *contents)
{
  char *path = g_build_filename (dir, name, NULL);
  g_assert_true (g_file_set_contents (path, contents, -1, NULL));
  return path;
}

static CnclipIndex *
load_one (const char *path, GError **error)
{
  const char *paths[] = { path, NULL };
  return cnclip_index_load (paths, error);
}

static const float vec_a[4] = { 1.0f, 2.0f, 3.0f, 4.0f };
static const float vec_b[4] = { -1.0f, 0.5f, 0.0f, 2.0f };

/* @n good lines, then @middle (may be NULL), then @n good lines. */
static char *
good_lines (int n, int first_frame)
{
  GString *s = g_string_new (NULL);
  for (int i = 0; i < n; i++) {
    char *line = record_line ("cam", SEC (first_frame + i), (guint64) (first_frame + i), vec_a, 4,
        CNCLIP_EMBEDDING_F32);
    g_string_append (s, line);
    g_free (line);
  }
  return g_string_free (s, FALSE);
}

/* ------------------------------------------------------------------------ */
/* Loading */

/* Test that a hand-made file loads: records with embeddings held and
 * normalised, records without embedding or time skipped and counted, pts
 * used when timestamp is null, f16 decoded, blank and CRLF lines accepted,
 * sources listed in order of appearance (including embedding-less ones). */
static void
test_load_hand_made (void)
{
  char *dir = test_make_temp_dir ();
  GString *text = g_string_new (NULL);
  char *l1 = record_line ("file:///a.mp4", SEC (0), 0, vec_a, 4, CNCLIP_EMBEDDING_F32);
  char *l2 = record_line ("file:///a.mp4", SEC (1), 1, vec_b, 4, CNCLIP_EMBEDDING_F16);
  char *l3 = record_line ("file:///b.mp4", SEC (0), 0, NULL, 4, CNCLIP_EMBEDDING_NONE);
  char *l4 = record_line ("file:///c.mp4", -1, 9, vec_a, 4, CNCLIP_EMBEDDING_F32);
  g_string_append (text, l1);
  g_string_append (text, "\n   \n");
  /* CRLF line ending, and a record whose timestamp is null but pts is not. */
  l2[strlen (l2) - 1] = '\0';
  g_string_append_printf (text, "%s\r\n", l2);
  g_string_append (text, l3);
  g_string_append (text, l4);
  g_string_append (text, "{\"version\":1,\"source\":\"file:///a.mp4\",\"frame\":5,"
      "\"timestamp\":null,\"pts\":2500000000,\"embedding\":{\"dtype\":\"f32\","
      "\"encoding\":\"base64\",\"data\":\"AACAPwAAIMDNzMw9AAAAAA==\"}}\n");
  char *path = write_file (dir, "index.jsonl", text->str);
  GError *error = NULL;
  CnclipIndex *index = load_one (path, &error);
  g_assert_no_error (error);

  g_assert_cmpint (cnclip_index_get_dim (index), ==, 4);
  g_assert_cmpuint (cnclip_index_get_n_records (index), ==, 3);
  const CnclipIndexStats *st = cnclip_index_get_stats (index);
  g_assert_cmpuint (st->n_lines, ==, 5);
  g_assert_cmpuint (st->n_records, ==, 3);
  g_assert_cmpuint (st->n_no_embedding, ==, 1);
  g_assert_cmpuint (st->n_no_time, ==, 1);
  g_assert_cmpuint (st->n_invalid, ==, 0);
  g_assert_cmpuint (st->n_truncated, ==, 0);
  g_assert_null (cnclip_index_get_first_problem (index));
  g_assert_cmpint (cnclip_index_get_n_sources (index), ==, 3);
  g_assert_cmpstr (cnclip_index_get_source (index, 0), ==, "file:///a.mp4");
  g_assert_cmpstr (cnclip_index_get_source (index, 1), ==, "file:///b.mp4");
  g_assert_cmpstr (cnclip_index_get_source (index, 2), ==, "file:///c.mp4");

  /* Expected rows: the stored values (f16-rounded for the second), unit norm. */
  const float stored[3][4] = {
    { 1.0f, 2.0f, 3.0f, 4.0f },
    { -1.0f, 0.5f, 0.0f, 2.0f },            /* exact in half */
    { 1.0f, -2.5f, 0.1f, 0.0f },
  };
  const gint64 times[3] = { SEC (0), SEC (1), SEC (2.5) };
  const gint64 frames[3] = { 0, 1, 5 };
  for (gsize i = 0; i < 3; i++) {
    double norm = 0;
    for (int j = 0; j < 4; j++)
      norm += (double) stored[i][j] * stored[i][j];
    norm = sqrt (norm);
    const float *row = cnclip_index_get_embedding (index, i);
    for (int j = 0; j < 4; j++)
      g_assert_cmpfloat_with_epsilon (row[j], stored[i][j] / norm, 1e-7);
    int source_id;
    gint64 t, frame;
    cnclip_index_get_record (index, i, &source_id, &t, &frame);
    g_assert_cmpint (source_id, ==, 0);
    g_assert_cmpint (t, ==, times[i]);
    g_assert_cmpint (frame, ==, frames[i]);
  }
  cnclip_index_free (index);
  g_string_free (text, TRUE);
  g_free (l1);
  g_free (l2);
  g_free (l3);
  g_free (l4);
  g_free (path);
  g_free (dir);
}

/* Test that an unterminated, cut last line (an interrupted writer) is
 * tolerated and counted, not reported as invalid; and that a whole last
 * record without a final newline is kept. */
static void
test_load_truncated_tail (void)
{
  char *dir = test_make_temp_dir ();
  char *good = good_lines (3, 0);
  char *cut = g_strndup (good, strlen (good) - 40);     /* third record cut */
  char *path = write_file (dir, "cut.jsonl", cut);
  GError *error = NULL;
  CnclipIndex *index = load_one (path, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (cnclip_index_get_n_records (index), ==, 2);
  g_assert_cmpuint (cnclip_index_get_stats (index)->n_truncated, ==, 1);
  g_assert_cmpuint (cnclip_index_get_stats (index)->n_invalid, ==, 0);
  g_assert_null (cnclip_index_get_first_problem (index));
  cnclip_index_free (index);
  g_free (path);

  char *whole = g_strndup (good, strlen (good) - 1);    /* only the final \n missing */
  path = write_file (dir, "no-final-newline.jsonl", whole);
  index = load_one (path, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (cnclip_index_get_n_records (index), ==, 3);
  g_assert_cmpuint (cnclip_index_get_stats (index)->n_truncated, ==, 0);
  cnclip_index_free (index);

  g_free (whole);
  g_free (path);
  g_free (cut);
  g_free (good);
  g_free (dir);
}

/* Test that each kind of invalid line in the middle of a file is skipped and
 * counted, with the first problem named as FILE:LINE: reason, and the
 * records around it kept. */
static void
test_load_invalid_lines (void)
{
  static const struct
  {
    const char *line;
    const char *reason;
  } cases[] = {
    { "not json at all", "expected an object" },
    { "[1,2,3]", "expected an object" },
    { "{\"version\":1,\"source\":\"x\",\"timestamp\":1,\"embedding\":{\"dtype\":\"f32\","
      "\"encoding\":\"base64\",\"data\":\"AACAPwAAIMDNzMw9AAAAA!==\"}}",
      "embedding data is not base64" },
    { "{\"version\":1,\"source\":\"x\",\"timestamp\":1,\"embedding\":{\"dtype\":\"f32\","
      "\"encoding\":\"base64\",\"data\":\"AACAPwAAIMDNzMw9AAAAAA=\"}}",
      "embedding data is not base64 (length not a multiple of 4)" },
    { "{\"version\":1,\"source\":\"x\",\"timestamp\":1,\"embedding\":{\"dtype\":\"f32\","
      "\"encoding\":\"base64\",\"data\":\"AACAPwA=\"}}",
      "embedding data is not a whole number of values of its dtype" },
    { "{\"version\":1,\"source\":\"x\",\"timestamp\":1,\"model\":{\"dim\":5},"
      "\"embedding\":{\"dtype\":\"f32\",\"encoding\":\"base64\","
      "\"data\":\"AACAPwAAIMDNzMw9AAAAAA==\"}}",
      "embedding length does not match model.dim" },
    { "{\"version\":1,\"source\":\"x\",\"timestamp\":1,\"embedding\":{\"dtype\":\"f32\","
      "\"encoding\":\"base64\",\"data\":\"AADAfwAAIMDNzMw9AAAAAA==\"}}",
      "embedding has a value that is not finite" },
    { "{\"version\":1,\"source\":\"x\",\"timestamp\":1,\"embedding\":{\"dtype\":\"f64\","
      "\"encoding\":\"base64\",\"data\":\"AAAA\"}}", "unknown embedding dtype" },
    { "{\"version\":1,\"source\":\"x\",\"timestamp\":1,\"embedding\":{\"dtype\":\"f32\","
      "\"encoding\":\"hex\",\"data\":\"AAAA\"}}", "unknown embedding encoding" },
    { "{\"version\":1,\"source\":\"x\",\"timestamp\":1,\"embedding\":{\"dtype\":\"f32\","
      "\"encoding\":\"base64\"}}", "embedding lacks encoding \"base64\" or data" },
    { "{\"version\":2,\"source\":\"x\"}", "unsupported record version" },
    { "{\"source\":\"x\"}", "no \"version\": not a record" },
    { "{\"version\":1,\"frame\":1}", "no \"source\"" },
    { "{\"version\":1,\"source\":3}", "source is not a string" },
    { "{\"version\":1,\"source\":\"x\",\"timestamp\":-5}", "timestamp is not a count of ns" },
    { "{\"version\":1,\"source\":\"x\",\"timestamp\":1.5}", "timestamp is not a count of ns" },
    { "{\"version\":1,\"source\":\"x\",\"timestamp\":99999999999999999999}",
      "timestamp is not a count of ns" },
    { "{\"version\":1,\"source\":\"x\"} x", "text after the record" },
    { "{\"version\":1,\"source\":\"x\",}", "expected a string" },
    { "{\"version\":1 \"source\":\"x\"}", "expected ',' or '}'" },
    { "{\"version\":1,\"source\":\"a\\x\"}", "bad escape in a string" },
    { "{\"version\":1,\"source\":\"a\\ud800\"}", "lone high surrogate in a string" },
    { "{\"version\":1,\"source\":\"a\\u0000\"}", "NUL in a string" },
    { "{\"version\":1,\"source\":\"a\xff\"}", "source is not UTF-8" },
    { "{\"version\":1,\"source\":\"a\tb\"}", "control character in a string" },
    { "{\"version\":1,\"source\":\"x\",\"events\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]"
      "]]]]]]]]]]]]]]]]]]]]]]]]]]]}", "nesting too deep" },
    { "{\"version\":1,\"source\":\"x\",\"top\":tru}", "bad JSON value" },
    { "{\"version\":1,\"source\":\"x\",\"score\":01}", "expected ',' or '}'" },
    { "{\"version\":1,\"source\":\"x\",\"score\":-}", "bad number" },
  };
  char *dir = test_make_temp_dir ();
  char *head = good_lines (1, 0), *tail = good_lines (1, 1);
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    char *printable = g_strescape (cases[i].line, NULL);
    g_test_message ("case %" G_GSIZE_FORMAT ": %s", i, printable);
    g_free (printable);
    char *text = g_strdup_printf ("%s%s\n%s", head, cases[i].line, tail);
    char *path = write_file (dir, "bad.jsonl", text);
    GError *error = NULL;
    CnclipIndex *index = load_one (path, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (cnclip_index_get_n_records (index), ==, 2);
    g_assert_cmpuint (cnclip_index_get_stats (index)->n_invalid, ==, 1);
    char *problem = g_strdup_printf ("%s:2: %s", path, cases[i].reason);
    g_assert_cmpstr (cnclip_index_get_first_problem (index), ==, problem);
    g_free (problem);
    cnclip_index_free (index);
    g_free (path);
    g_free (text);
  }
  g_free (head);
  g_free (tail);
  g_free (dir);
}

/* Test that escapes in keys and the source are resolved ("\u0063" = 'c',
 * surrogate pairs), unknown members of any shape are skipped, and
 * "embedding" with dtype "none" counts as no embedding. */
static void
test_load_json_details (void)
{
  char *dir = test_make_temp_dir ();
  const char *text =
      "{\"version\":1,\"sour\\u0063e\":\"a\\\"\\u00e9\\ud83d\\ude00\\n\",\"timestamp\":7,"
      " \"extra\" : {\"x\":[1,2.5e-3,true,false,null,{\"y\":\"\\/\"}]},\"embedding\":"
      "{\"dtype\":\"f32\",\"encoding\":\"base64\",\"data\":\"AACAPwAAIMDNzMw9AAAAAA\\u003d\\u003d\"}}\n"
      "{\"version\":1,\"source\":\"plain\",\"timestamp\":8,\"embedding\":{\"dtype\":\"none\"}}\n";
  char *path = write_file (dir, "details.jsonl", text);
  GError *error = NULL;
  CnclipIndex *index = load_one (path, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (cnclip_index_get_n_records (index), ==, 1);
  g_assert_cmpuint (cnclip_index_get_stats (index)->n_no_embedding, ==, 1);
  g_assert_cmpint (cnclip_index_get_n_sources (index), ==, 2);
  g_assert_cmpstr (cnclip_index_get_source (index, 0), ==, "a\"\xc3\xa9\xf0\x9f\x98\x80\n");
  g_assert_cmpstr (cnclip_index_get_source (index, 1), ==, "plain");
  gint64 t;
  cnclip_index_get_record (index, 0, NULL, &t, NULL);
  g_assert_cmpint (t, ==, 7);
  cnclip_index_free (index);
  g_free (path);
  g_free (dir);
}

/* Test that a half record continued by a whole one on the same line (a
 * killed writer, then a new one appending) keeps the whole record and
 * counts the half as invalid. */
static void
test_load_glued_record (void)
{
  char *dir = test_make_temp_dir ();
  char *whole = good_lines (1, 4);
  char *text = g_strdup_printf ("{\"version\":1,\"source\":\"cam\",\"frame\":3,\"embe%s", whole);
  char *path = write_file (dir, "glued.jsonl", text);
  GError *error = NULL;
  CnclipIndex *index = load_one (path, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (cnclip_index_get_n_records (index), ==, 1);
  g_assert_cmpuint (cnclip_index_get_stats (index)->n_invalid, ==, 1);
  gint64 frame;
  cnclip_index_get_record (index, 0, NULL, NULL, &frame);
  g_assert_cmpint (frame, ==, 4);
  char *problem = g_strdup_printf ("%s:1: a cut record followed by a whole one (kept the whole "
      "one)", path);
  g_assert_cmpstr (cnclip_index_get_first_problem (index), ==, problem);
  g_free (problem);
  cnclip_index_free (index);
  g_free (path);
  g_free (text);
  g_free (whole);
  g_free (dir);
}

/* Test that records of two dims are CNCLIP_ERROR_FORMAT naming the line,
 * within a file and across files; and that an invalid line does not set
 * the dim. */
static void
test_load_mixed_dims (void)
{
  char *dir = test_make_temp_dir ();
  char *l4 = record_line ("cam", SEC (0), 0, vec_a, 4, CNCLIP_EMBEDDING_F32);
  char *l3 = record_line ("cam", SEC (1), 1, vec_a, 3, CNCLIP_EMBEDDING_F32);
  char *text = g_strdup_printf ("%s%s%s", l4, l4, l3);
  char *path = write_file (dir, "mixed.jsonl", text);
  GError *error = NULL;
  g_assert_null (load_one (path, &error));
  g_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT);
  char *where = g_strdup_printf ("%s:3:", path);
  g_assert_true (g_str_has_prefix (error->message, where));
  g_assert_nonnull (strstr (error->message, "3 values, earlier records 4"));
  g_clear_error (&error);
  g_free (where);

  char *p4 = write_file (dir, "four.jsonl", l4);
  char *p3 = write_file (dir, "three.jsonl", l3);
  const char *both[] = { p4, p3, NULL };
  g_assert_null (cnclip_index_load (both, &error));
  g_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT);
  where = g_strdup_printf ("%s:1:", p3);
  g_assert_true (g_str_has_prefix (error->message, where));
  g_clear_error (&error);
  g_free (where);

  /* A corrupt 3-value line before 4-value records is invalid, not the dim. */
  char *bad3 = g_strdup (l3);
  char *data = strstr (bad3, "\"data\":\"") + 8;
  data[0] = '!';
  g_free (text);
  text = g_strdup_printf ("%s%s", bad3, l4);
  g_free (path);
  path = write_file (dir, "bad-first.jsonl", text);
  CnclipIndex *index = load_one (path, &error);
  g_assert_no_error (error);
  g_assert_cmpint (cnclip_index_get_dim (index), ==, 4);
  g_assert_cmpuint (cnclip_index_get_stats (index)->n_invalid, ==, 1);
  cnclip_index_free (index);

  g_free (bad3);
  g_free (p4);
  g_free (p3);
  g_free (path);
  g_free (text);
  g_free (l3);
  g_free (l4);
  g_free (dir);
}

/* Test that a file without a single valid record is CNCLIP_ERROR_FORMAT,
 * missing files and directories are CNCLIP_ERROR_IO, and an empty file is
 * an empty index. */
static void
test_load_file_errors (void)
{
  char *dir = test_make_temp_dir ();
  char *garbage = write_file (dir, "video.mp4", "");
  g_assert_true (g_file_set_contents (garbage, "ftyp\x00\x02\nmoov\n", 12, NULL));
  GError *error = NULL;
  g_assert_null (load_one (garbage, &error));
  g_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT);
  g_assert_nonnull (strstr (error->message, garbage));
  g_clear_error (&error);

  char *missing = g_build_filename (dir, "missing.jsonl", NULL);
  g_assert_null (load_one (missing, &error));
  g_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO);
  g_assert_nonnull (strstr (error->message, missing));
  g_clear_error (&error);
  g_assert_null (load_one (dir, &error));
  g_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO);
  g_clear_error (&error);

  char *empty = write_file (dir, "empty.jsonl", "");
  CnclipIndex *index = load_one (empty, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (cnclip_index_get_n_records (index), ==, 0);
  g_assert_cmpint (cnclip_index_get_dim (index), ==, 0);
  CnclipSearchParams params = cnclip_search_default_params ();
  CnclipSearchRange range;
  g_assert_cmpint (cnclip_index_search (index, vec_a, 4, &params, &range, &error), ==, 0);
  g_assert_no_error (error);
  cnclip_index_free (index);

  g_free (empty);
  g_free (missing);
  g_free (garbage);
  g_free (dir);
}

/* Test that the sources of a file are listed in order of first appearance,
 * with those of records without embedding or time, without the embeddings
 * being decoded (a broken embedding still lists its source), and that
 * missing and garbage files are errors. */
static void
test_list_sources (void)
{
  char *dir = test_make_temp_dir ();
  char *l1 = record_line ("file:///b.mp4", SEC (0), 0, NULL, 4, CNCLIP_EMBEDDING_NONE);
  char *l2 = record_line ("file:///a.mp4", SEC (0), 0, vec_a, 4, CNCLIP_EMBEDDING_F32);
  char *l3 = record_line ("cam-3", -1, 0, vec_a, 3, CNCLIP_EMBEDDING_F32);
  char *text = g_strdup_printf ("%s%s%sgarbage\n%s{\"version\":1,\"source\":\"cut", l1, l2, l3,
      l2);
  char *path = write_file (dir, "sources.jsonl", text);
  GError *error = NULL;
  char **sources = cnclip_index_list_sources (path, &error);
  g_assert_no_error (error);
  const char *expected[] = { "file:///b.mp4", "file:///a.mp4", "cam-3", NULL };
  g_assert_cmpstrv (sources, expected);
  g_strfreev (sources);

  char *missing = g_build_filename (dir, "missing.jsonl", NULL);
  g_assert_null (cnclip_index_list_sources (missing, &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO);
  char *garbage = write_file (dir, "garbage.jsonl", "a\nb\n");
  g_assert_null (cnclip_index_list_sources (garbage, &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT);

  g_free (garbage);
  g_free (missing);
  g_free (path);
  g_free (text);
  g_free (l1);
  g_free (l2);
  g_free (l3);
  g_free (dir);
}

/* ------------------------------------------------------------------------ */
/* Sampling interval */

/* Test that a source's sampling interval is the lower median of the
 * positive gaps of its sorted timestamps, and 1 s with fewer than two
 * distinct timestamps. */
static void
test_interval_inference (void)
{
  static const struct
  {
    gint64 times[8];
    int n;
    gint64 interval;
  } cases[] = {
    { { SEC (0), SEC (1), SEC (2), SEC (4), SEC (5) }, 5, SEC (1) },
    { { SEC (0), SEC (1), SEC (3) }, 3, SEC (1) },                   /* lower median */
    { { SEC (5), 0, 0, SEC (10), SEC (20) }, 5, SEC (5) },           /* unsorted, repeated */
    { { 0, 500000000, 1000000000, 1500000000, 4000000000 }, 5, 500000000 },
    { { SEC (3) }, 1, SEC (1) },
    { { SEC (3), SEC (3), SEC (3) }, 3, SEC (1) },
    { { 0, 33366666, 66733333, 100100000 }, 4, 33366667 },
  };
  for (gsize c = 0; c < G_N_ELEMENTS (cases); c++) {
    CnclipIndex *index = cnclip_index_new (2);
    int id = cnclip_index_intern_source (index, "s", -1);
    for (int i = 0; i < cases[c].n; i++)
      g_assert_true (cnclip_index_add (index, id, cases[c].times[i], i, vec_a, NULL));
    cnclip_index_finish (index);
    g_assert_cmpint (cnclip_index_get_source_interval (index, id), ==, cases[c].interval);
    cnclip_index_free (index);
  }
}

/* ------------------------------------------------------------------------ */
/* Scores */

/* Test that the index's cosines and its ranking equal the cosines computed
 * here in double precision from the stored (f32, and f16-rounded) values
 * and a query; every record is its own source so each range is one hit. */
static void
test_score_matches_double_cosines (void)
{
  enum { N = 300, DIM = 32 };
  GRand *rand = g_rand_new_with_seed (2024);
  float *values = g_new (float, N * DIM);
  float query[DIM];
  for (int i = 0; i < N * DIM; i++)
    values[i] = (float) g_rand_double_range (rand, -1, 1);
  for (int j = 0; j < DIM; j++)
    query[j] = (float) g_rand_double_range (rand, -1, 1);
  g_rand_free (rand);

  for (int pass = 0; pass < 2; pass++) {
    const CnclipEmbeddingDtype dtype = pass ? CNCLIP_EMBEDDING_F16 : CNCLIP_EMBEDDING_F32;
    char *dir = test_make_temp_dir ();
    GString *text = g_string_new (NULL);
    double *expected = g_new (double, N);
    for (int i = 0; i < N; i++) {
      char source[32];
      g_snprintf (source, sizeof (source), "video-%03d", i);
      char *line = record_line (source, SEC (i), 0, values + i * DIM, DIM, dtype);
      g_string_append (text, line);
      g_free (line);
      double dot = 0, nv = 0, nq = 0;
      for (int j = 0; j < DIM; j++) {
        double v = values[i * DIM + j];
#ifdef __FLT16_MAX__
        if (pass)
          v = (double) (_Float16) values[i * DIM + j];
#else
        if (pass)
          v = cnclip_half_to_float (cnclip_float_to_half (values[i * DIM + j]));
#endif
        dot += v * query[j];
        nv += v * v;
        nq += (double) query[j] * query[j];
      }
      expected[i] = dot / sqrt (nv * nq);
    }
    char *path = write_file (dir, "random.jsonl", text->str);
    GError *error = NULL;
    CnclipIndex *index = load_one (path, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (cnclip_index_get_n_records (index), ==, N);

    float *cosines = g_new (float, N);
    g_assert_true (cnclip_index_score (index, query, DIM, cosines, &error));
    g_assert_no_error (error);
    for (int i = 0; i < N; i++)
      g_assert_cmpfloat_with_epsilon (cosines[i], expected[i], 1e-6);

    /* The 10 best by the double cosines, by selection here. */
    int order[N];
    for (int i = 0; i < N; i++)
      order[i] = i;
    for (int a = 0; a < 11; a++) {
      for (int b = a + 1; b < N; b++) {
        if (expected[order[b]] > expected[order[a]]) {
          int t = order[a];
          order[a] = order[b];
          order[b] = t;
        }
      }
    }
    for (int a = 0; a < 10; a++)
      g_assert_cmpfloat (expected[order[a]] - expected[order[a + 1]], >, 1e-5);

    CnclipSearchParams params = cnclip_search_default_params ();
    CnclipSearchRange ranges[10];
    g_assert_cmpint (cnclip_index_search (index, query, DIM, &params, ranges, &error), ==, 10);
    g_assert_no_error (error);
    for (int a = 0; a < 10; a++) {
      char source[32];
      g_snprintf (source, sizeof (source), "video-%03d", order[a]);
      g_assert_cmpstr (ranges[a].source, ==, source);
      g_assert_cmpuint (ranges[a].best_record, ==, (gsize) order[a]);
      g_assert_cmpfloat_with_epsilon (ranges[a].score, expected[order[a]], 1e-6);
      g_assert_cmpint (ranges[a].timestamp, ==, SEC (order[a]));
      g_assert_cmpint (ranges[a].n_hits, ==, 1);
      /* One record: interval 1 s by default, so +- 0.5 s. */
      g_assert_cmpint (ranges[a].start, ==, MAX (SEC (order[a]) - SEC (0.5), 0));
      g_assert_cmpint (ranges[a].end, ==, SEC (order[a]) + SEC (0.5));
    }

    /* min-cosine keeps exactly the records at or above it. */
    params.min_cosine = (float) ((expected[order[3]] + expected[order[4]]) / 2);
    g_assert_cmpint (cnclip_index_search (index, query, DIM, &params, ranges, &error), ==, 4);

    g_free (cosines);
    cnclip_index_free (index);
    g_free (path);
    g_free (expected);
    g_string_free (text, TRUE);
    g_free (dir);
  }
  g_free (values);
}

/* Test that a query of the wrong dim or with a NaN is
 * CNCLIP_ERROR_INVALID_ARGUMENT. */
static void
test_score_errors (void)
{
  CnclipIndex *index = cnclip_index_new (4);
  int id = cnclip_index_intern_source (index, "s", -1);
  g_assert_true (cnclip_index_add (index, id, 0, 0, vec_a, NULL));
  cnclip_index_finish (index);
  float cosines[1];
  float bad[4] = { 1, NAN, 0, 0 };
  GError *error = NULL;
  g_assert_false (cnclip_index_score (index, vec_a, 3, cosines, &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT);
  g_assert_false (cnclip_index_score (index, bad, 4, cosines, &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT);
  CnclipSearchParams params = cnclip_search_default_params ();
  CnclipSearchRange range;
  g_assert_cmpint (cnclip_index_search (index, vec_a, 5, &params, &range, &error), ==, -1);
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT);
  /* A non-finite embedding is refused when adding. */
  g_assert_false (cnclip_index_add (index, id, 1, 1, bad, &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT);
  g_assert_cmpuint (cnclip_index_get_n_records (index), ==, 1);
  cnclip_index_free (index);
}

/* ------------------------------------------------------------------------ */
/* Range merging on a hand-made index
 *
 * Query (1, 0, 0, 0); a record of level L has embedding (c, sqrt(1 - c^2),
 * 0, 0), so its cosine is c exactly the same for every record of a level.
 * Levels: L1 0.9 > L2 0.8 > L3 0.7 > L4 0.6 > L0 0 (background).
 *
 *   source a, every 1 s from 0 to 20 s: a@0 L4, a@2 L1, a@4 L2 (2 intervals
 *     after a@2: merges), a@10 L2, a@12 L4 (bridges a@10 and a@14), a@14 L3.
 *   source b, every 1 s from 0 to 10 s, then 20 s, 22 s - 1 ns, 30 s,
 *     32 s + 1 ns (interval 1 s: lower median of the gaps): b@5 L1 (ties
 *     with a@2), b@20 L2, b@22-1ns L3 (just under 2 intervals: merges),
 *     b@30 L2, b@32+1ns L3 (just over: a range of its own).
 *   source c, every 0.5 s from 0 to 5 s: c@1 L3, c@2 L4 (2 intervals:
 *     merges), c@4.5 L1 and c@5 L1 (a tie inside one range: the earlier
 *     record is the best).
 */

static const float levels[] = { 0.0f, 0.9f, 0.8f, 0.7f, 0.6f };

typedef struct
{
  const char *source;
  gint64 t;
  int level;
} HandRecord;

static GArray *
hand_records (void)
{
  GArray *recs = g_array_new (FALSE, FALSE, sizeof (HandRecord));
  static const struct
  {
    double t;
    int level;
  } a_hits[] = { { 0, 4 }, { 2, 1 }, { 4, 2 }, { 10, 2 }, { 12, 4 }, { 14, 3 } };
  for (int s = 0; s <= 20; s++) {
    HandRecord r = { "a", SEC (s), 0 };
    for (gsize h = 0; h < G_N_ELEMENTS (a_hits); h++)
      if (a_hits[h].t == s)
        r.level = a_hits[h].level;
    g_array_append_val (recs, r);
  }
  for (int s = 0; s <= 10; s++) {
    HandRecord r = { "b", SEC (s), s == 5 ? 1 : 0 };
    g_array_append_val (recs, r);
  }
  const HandRecord b_tail[] = {
    { "b", SEC (20), 2 }, { "b", SEC (22) - 1, 3 }, { "b", SEC (30), 2 }, { "b", SEC (32) + 1, 3 },
  };
  g_array_append_vals (recs, b_tail, G_N_ELEMENTS (b_tail));
  for (int i = 0; i <= 10; i++) {
    HandRecord r = { "c", SEC (i * 0.5), 0 };
    r.level = i == 2 ? 3 : i == 4 ? 4 : (i == 9 || i == 10) ? 1 : 0;
    g_array_append_val (recs, r);
  }
  return recs;
}

/* The hand-made index, written as a record file and loaded. */
static CnclipIndex *
hand_index (void)
{
  GArray *recs = hand_records ();
  GString *text = g_string_new (NULL);
  for (guint i = 0; i < recs->len; i++) {
    const HandRecord *r = &g_array_index (recs, HandRecord, i);
    const float c = levels[r->level];
    const float e[4] = { c, sqrtf (1.0f - c * c), 0.0f, 0.0f };
    char *line = record_line (r->source, r->t, i, e, 4, CNCLIP_EMBEDDING_F32);
    g_string_append (text, line);
    g_free (line);
  }
  char *dir = test_make_temp_dir ();
  char *path = write_file (dir, "hand.jsonl", text->str);
  GError *error = NULL;
  CnclipIndex *index = load_one (path, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (cnclip_index_get_n_records (index), ==, recs->len);
  g_free (path);
  g_free (dir);
  g_string_free (text, TRUE);
  g_array_unref (recs);
  return index;
}

typedef struct
{
  const char *source;
  gint64 start;
  gint64 end;
  gint64 timestamp;
  int level;
  int n_hits;
} ExpectedRange;

#define END_OF_RANGES { NULL }

static const ExpectedRange all_but_background[] = {
  { "a", 0, SEC (4.5), SEC (2), 1, 3 },               /* padding clamped at 0 */
  { "b", SEC (4.5), SEC (5.5), SEC (5), 1, 1 },       /* tie with a: loaded later */
  { "c", SEC (4.25), SEC (5.25), SEC (4.5), 1, 2 },   /* tie inside: c@4.5 best */
  { "a", SEC (9.5), SEC (14.5), SEC (10), 2, 3 },     /* bridged by a@12 */
  { "b", SEC (19.5), SEC (22.5) - 1, SEC (20), 2, 2 },/* gap 2 s - 1 ns merges */
  { "b", SEC (29.5), SEC (30.5), SEC (30), 2, 1 },    /* gap 2 s + 1 ns does not */
  { "b", SEC (31.5) + 1, SEC (32.5) + 1, SEC (32) + 1, 3, 1 },
  { "c", SEC (0.75), SEC (2.25), SEC (1), 3, 2 },     /* 0.5 s interval */
  END_OF_RANGES
};

static const ExpectedRange without_l4[] = {
  { "a", SEC (1.5), SEC (4.5), SEC (2), 1, 2 },
  { "b", SEC (4.5), SEC (5.5), SEC (5), 1, 1 },
  { "c", SEC (4.25), SEC (5.25), SEC (4.5), 1, 2 },
  { "a", SEC (9.5), SEC (10.5), SEC (10), 2, 1 },     /* no bridge without a@12 */
  { "b", SEC (19.5), SEC (22.5) - 1, SEC (20), 2, 2 },
  { "b", SEC (29.5), SEC (30.5), SEC (30), 2, 1 },
  { "a", SEC (13.5), SEC (14.5), SEC (14), 3, 1 },    /* L3 ties in load order */
  { "b", SEC (31.5) + 1, SEC (32.5) + 1, SEC (32) + 1, 3, 1 },
  { "c", SEC (0.75), SEC (1.25), SEC (1), 3, 1 },
  END_OF_RANGES
};

static const ExpectedRange first_one[] = {
  { "a", SEC (1.5), SEC (2.5), SEC (2), 1, 1 },       /* stops before a@4 joins */
  END_OF_RANGES
};

static const ExpectedRange first_four[] = {
  { "a", SEC (1.5), SEC (4.5), SEC (2), 1, 2 },
  { "b", SEC (4.5), SEC (5.5), SEC (5), 1, 1 },
  { "c", SEC (4.25), SEC (5.25), SEC (4.5), 1, 2 },
  { "a", SEC (9.5), SEC (10.5), SEC (10), 2, 1 },
  END_OF_RANGES
};

static const ExpectedRange everything[] = {
  { "a", 0, SEC (20.5), SEC (2), 1, 21 },
  { "b", 0, SEC (10.5), SEC (5), 1, 11 },
  { "c", 0, SEC (5.25), SEC (4.5), 1, 11 },
  { "b", SEC (19.5), SEC (22.5) - 1, SEC (20), 2, 2 },
  { "b", SEC (29.5), SEC (30.5), SEC (30), 2, 1 },
  { "b", SEC (31.5) + 1, SEC (32.5) + 1, SEC (32) + 1, 3, 1 },
  END_OF_RANGES
};

static const ExpectedRange nothing[] = { END_OF_RANGES };

/* Test that ranges on the hand-made index follow the merging rule exactly:
 * chains, the two-interval boundary (inclusive, 1 ns either side),
 * bridging, padding by half an interval clamped at 0, per-source intervals,
 * ties, top-k stopping and min-cosine. */
static void
test_ranges_hand_made (void)
{
  static const struct
  {
    const char *name;
    int k;
    float min_cosine;
    const ExpectedRange *expected;
  } cases[] = {
    { "all but background", 20, 0.5f, all_but_background },
    { "without L4", 20, 0.65f, without_l4 },
    { "k = 1", 1, -G_MAXFLOAT, first_one },
    { "k = 4", 4, -G_MAXFLOAT, first_four },
    { "every record a hit", 20, -G_MAXFLOAT, everything },
    { "min-cosine above all", 20, 0.95f, nothing },
  };
  CnclipIndex *index = hand_index ();
  g_assert_cmpint (cnclip_index_get_n_sources (index), ==, 3);
  g_assert_cmpint (cnclip_index_get_source_interval (index, 0), ==, SEC (1));
  g_assert_cmpint (cnclip_index_get_source_interval (index, 1), ==, SEC (1));
  g_assert_cmpint (cnclip_index_get_source_interval (index, 2), ==, SEC (0.5));
  const float query[4] = { 1.0f, 0.0f, 0.0f, 0.0f };

  for (gsize c = 0; c < G_N_ELEMENTS (cases); c++) {
    g_test_message ("case: %s", cases[c].name);
    CnclipSearchParams params = cnclip_search_default_params ();
    params.k = cases[c].k;
    params.min_cosine = cases[c].min_cosine;
    CnclipSearchRange *ranges = g_new0 (CnclipSearchRange, params.k);
    GError *error = NULL;
    int n = cnclip_index_search (index, query, 4, &params, ranges, &error);
    g_assert_no_error (error);
    int n_expected = 0;
    while (cases[c].expected[n_expected].source)
      n_expected++;
    g_assert_cmpint (n, ==, n_expected);
    for (int i = 0; i < n; i++) {
      const ExpectedRange *e = &cases[c].expected[i];
      const CnclipSearchRange *r = &ranges[i];
      g_test_message ("  range %d: %s %" G_GINT64_FORMAT "-%" G_GINT64_FORMAT, i, r->source,
          r->start, r->end);
      g_assert_cmpstr (r->source, ==, e->source);
      g_assert_cmpstr (cnclip_index_get_source (index, r->source_id), ==, e->source);
      g_assert_cmpint (r->start, ==, e->start);
      g_assert_cmpint (r->end, ==, e->end);
      g_assert_cmpint (r->timestamp, ==, e->timestamp);
      g_assert_cmpint (r->n_hits, ==, e->n_hits);
      g_assert_cmpfloat_with_epsilon (r->score, levels[e->level], 1e-6);
      gint64 t;
      int source_id;
      cnclip_index_get_record (index, r->best_record, &source_id, &t, NULL);
      g_assert_cmpint (source_id, ==, r->source_id);
      g_assert_cmpint (t, ==, r->timestamp);
    }
    g_free (ranges);
  }
  cnclip_index_free (index);
}

/* Test that when merging swallows the first candidates (one long matching
 * scene) the search fetches more hits until it has k ranges. */
static void
test_ranges_long_scene (void)
{
  /* 2000 records 1 s apart; the best 1000 are consecutive (one scene),
   * then two lone hits far apart. */
  CnclipIndex *index = cnclip_index_new (2);
  int id = cnclip_index_intern_source (index, "long", -1);
  for (int i = 0; i < 2000; i++) {
    float c = i < 1000 ? 0.9f : (i == 1500 || i == 1800) ? 0.5f : 0.0f;
    if (i < 1000)
      c -= (float) i * 1e-4f;     /* distinct, decreasing along the scene */
    const float e[2] = { c, sqrtf (1.0f - c * c) };
    g_assert_true (cnclip_index_add (index, id, SEC (i), i, e, NULL));
  }
  cnclip_index_finish (index);
  const float query[2] = { 1.0f, 0.0f };
  CnclipSearchParams params = cnclip_search_default_params ();
  params.k = 3;
  CnclipSearchRange ranges[3];
  GError *error = NULL;
  g_assert_cmpint (cnclip_index_search (index, query, 2, &params, ranges, &error), ==, 3);
  g_assert_no_error (error);
  g_assert_cmpint (ranges[0].start, ==, 0);
  g_assert_cmpint (ranges[0].end, ==, SEC (999.5));
  g_assert_cmpint (ranges[0].n_hits, ==, 1000);
  g_assert_cmpint (ranges[1].timestamp, ==, SEC (1500));
  g_assert_cmpint (ranges[2].timestamp, ==, SEC (1800));
  cnclip_index_free (index);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/index/load-hand-made", test_load_hand_made);
  g_test_add_func ("/index/load-truncated-tail", test_load_truncated_tail);
  g_test_add_func ("/index/load-invalid-lines", test_load_invalid_lines);
  g_test_add_func ("/index/load-json-details", test_load_json_details);
  g_test_add_func ("/index/load-glued-record", test_load_glued_record);
  g_test_add_func ("/index/load-mixed-dims", test_load_mixed_dims);
  g_test_add_func ("/index/load-file-errors", test_load_file_errors);
  g_test_add_func ("/index/list-sources", test_list_sources);
  g_test_add_func ("/index/interval-inference", test_interval_inference);
  g_test_add_func ("/index/score-matches-double-cosines", test_score_matches_double_cosines);
  g_test_add_func ("/index/score-errors", test_score_errors);
  g_test_add_func ("/index/ranges-hand-made", test_ranges_hand_made);
  g_test_add_func ("/index/ranges-long-scene", test_ranges_long_scene);
  return g_test_run ();
}
