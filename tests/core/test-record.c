/* test-record.c: the JSON Lines record (byte-exact formatting, escaping,
 * f32/f16 embeddings, null values), half-float rounding, the schema in
 * docs/record.schema.json, and the appending writer (whole records, errors
 * naming the file, short writes undone). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "test-util.h"
#include "record.h"

/* 2025-01-02T03:04:05.678Z */
#define WALLCLOCK G_GINT64_CONSTANT (1735787045678000)

static const float embedding4[4] = { 1.0f, -2.5f, 0.1f, 0.0f };

static const CnclipRecordLabel labels[2] = {
  { "猫", 0, 0.25f, 0.3125f, FALSE },
  { "a\"b\\c\nd\te\x01" "f\x7f", 7, 0.75f, -0.5f, TRUE },
};

/* A record with every member set. */
static CnclipRecord
full_record (CnclipEmbeddingDtype dtype)
{
  CnclipRecord r;
  cnclip_record_init (&r);
  r.source = "file:///videos/街道 1.mp4";
  r.frame = 42;
  r.timestamp = G_GUINT64_CONSTANT (1400000000);
  r.pts = G_GUINT64_CONSTANT (1433333333);
  r.running_time = 0;
  r.wallclock = WALLCLOCK;
  r.width = 1920;
  r.height = 1080;
  r.model_name = "chinese-clip-vit-base-patch16";
  r.dim = 4;
  r.score_mode = "softmax";
  r.labels = labels;
  r.n_labels = 2;
  r.top = 1;
  r.embedding_dtype = dtype;
  r.embedding = embedding4;
  return r;
}

static char *
format (const CnclipRecord *r)
{
  GString *out = g_string_new (NULL);
  cnclip_record_format (r, out);
  return g_string_free (out, FALSE);
}

#define EXPECTED_HEAD \
  "{\"version\":1,\"source\":\"file:///videos/街道 1.mp4\",\"frame\":42," \
  "\"timestamp\":1400000000,\"pts\":1433333333,\"running_time\":0," \
  "\"wallclock\":\"2025-01-02T03:04:05.678Z\",\"resolution\":{\"width\":1920,\"height\":1080}," \
  "\"model\":{\"name\":\"chinese-clip-vit-base-patch16\",\"dim\":4,\"score_mode\":\"softmax\"}," \
  "\"classification\":[{\"label\":\"猫\",\"label_id\":0,\"score\":0.25,\"cosine\":0.3125," \
  "\"matched\":false},{\"label\":\"a\\\"b\\\\c\\nd\\te\\u0001f\\u007f\",\"label_id\":7," \
  "\"score\":0.75,\"cosine\":-0.5,\"matched\":true}]," \
  "\"top\":{\"label\":\"a\\\"b\\\\c\\nd\\te\\u0001f\\u007f\",\"label_id\":7,\"score\":0.75},"

/* Test that a full record with an f32 embedding is formatted byte for byte
 * as the contract says (key order, escaping, Chinese kept, base64 of LE f32). */
static void
test_format_f32 (void)
{
  CnclipRecord r = full_record (CNCLIP_EMBEDDING_F32);
  char *line = format (&r);
  g_assert_cmpstr (line, ==, EXPECTED_HEAD
      "\"embedding\":{\"dtype\":\"f32\",\"encoding\":\"base64\","
      "\"data\":\"AACAPwAAIMDNzMw9AAAAAA==\"}}\n");
  g_free (line);
}

/* Test that an f16 embedding is IEEE half, rounded to nearest even, LE. */
static void
test_format_f16 (void)
{
  CnclipRecord r = full_record (CNCLIP_EMBEDDING_F16);
  char *line = format (&r);
  /* 1.0 -> 3c00, -2.5 -> c100, 0.1 -> 2e66, 0 -> 0000 */
  g_assert_cmpstr (line, ==, EXPECTED_HEAD
      "\"embedding\":{\"dtype\":\"f16\",\"encoding\":\"base64\",\"data\":\"ADwAwWYuAAA=\"}}\n");
  g_free (line);
}

/* Test that unknown times, wallclock, top and embedding are null and no
 * key is omitted. */
static void
test_format_nulls (void)
{
  CnclipRecord r;
  cnclip_record_init (&r);
  r.source = "cam0";
  r.frame = 7;
  char *line = format (&r);
  g_assert_cmpstr (line, ==,
      "{\"version\":1,\"source\":\"cam0\",\"frame\":7,\"timestamp\":null,\"pts\":null,"
      "\"running_time\":null,\"wallclock\":null,\"resolution\":{\"width\":0,\"height\":0},"
      "\"model\":{\"name\":\"\",\"dim\":0,\"score_mode\":\"\"},\"classification\":[],"
      "\"top\":null,\"embedding\":null}\n");
  g_free (line);

  /* An embedding pointer without a dtype, or a dtype without a pointer, is
   * no embedding; an out-of-range top is null. */
  r.embedding = embedding4;
  r.dim = 4;
  r.labels = labels;
  r.n_labels = 1;
  r.top = 1;
  line = format (&r);
  g_assert_nonnull (strstr (line, "\"top\":null,\"embedding\":null}\n"));
  g_free (line);
  r.embedding = NULL;
  r.embedding_dtype = CNCLIP_EMBEDDING_F32;
  line = format (&r);
  g_assert_nonnull (strstr (line, "\"embedding\":null}\n"));
  g_free (line);
}

/* Test that invalid UTF-8 becomes U+FFFD, NaN/Inf scores become null, the
 * extra members hook is appended on the same line, and the maximum times
 * and a pre-1970 wallclock are handled. */
static void
test_format_edge_values (void)
{
  CnclipRecordLabel l = { "bad\xff" "byte", 1, NAN, INFINITY, TRUE };
  CnclipRecord r;
  cnclip_record_init (&r);
  r.source = "\xc3(";
  r.labels = &l;
  r.n_labels = 1;
  r.top = 0;
  r.timestamp = G_MAXUINT64 - 1;
  r.wallclock = 0;
  r.extra_members = "\"events\":[\n{\"a\":1}\r\n]";
  char *line = format (&r);
  g_assert_cmpstr (line, ==,
      "{\"version\":1,\"source\":\"\xef\xbf\xbd(\",\"frame\":0,"
      "\"timestamp\":18446744073709551614,\"pts\":null,\"running_time\":null,"
      "\"wallclock\":\"1970-01-01T00:00:00.000Z\",\"resolution\":{\"width\":0,\"height\":0},"
      "\"model\":{\"name\":\"\",\"dim\":0,\"score_mode\":\"\"},"
      "\"classification\":[{\"label\":\"bad\xef\xbf\xbd" "byte\",\"label_id\":1,\"score\":null,"
      "\"cosine\":null,\"matched\":true}],\"top\":{\"label\":\"bad\xef\xbf\xbd" "byte\","
      "\"label_id\":1,\"score\":null},\"embedding\":null,\"events\":[ {\"a\":1}  ]}\n");
  g_free (line);
}

/* Test that float32 values round-trip through the record's text. */
static void
test_format_float_round_trip (void)
{
  const float values[] = { 0.1f, 1.0f / 3.0f, 1e-30f, 3.4028235e38f, -7.006492e-45f, 0.0f };
  for (gsize i = 0; i < G_N_ELEMENTS (values); i++) {
    CnclipRecordLabel l = { "x", 0, values[i], values[i], TRUE };
    CnclipRecord r;
    cnclip_record_init (&r);
    r.labels = &l;
    r.n_labels = 1;
    char *line = format (&r);
    const char *p = strstr (line, "\"score\":");
    g_assert_nonnull (p);
    float back = (float) g_ascii_strtod (p + 8, NULL);
    g_assert_cmpmem (&back, 4, &values[i], 4);
    g_free (line);
  }
}

/* Test that float -> half rounds as IEEE says on a table of exact cases
 * (ties to even, subnormals, overflow, NaN). */
static void
test_half_table (void)
{
  static const struct
  {
    float value;
    guint16 half;
  } cases[] = {
    { 1.0f, 0x3c00 },
    { -2.5f, 0xc100 },
    { 0.1f, 0x2e66 },
    { 65504.0f, 0x7bff },
    { 65519.996f, 0x7bff },       /* just under the tie */
    { 65520.0f, 0x7c00 },         /* tie to even: infinity */
    { 1e10f, 0x7c00 },
    { -INFINITY, 0xfc00 },
    { 1.00048828125f, 0x3c00 },   /* 1 + 2^-11: tie, even down */
    { 1.00146484375f, 0x3c02 },   /* 1 + 3 * 2^-11: tie, even up */
    { 6.103515625e-05f, 0x0400 }, /* 2^-14, smallest normal */
    { 6.1e-05f, 0x03ff },         /* largest subnormal after rounding */
    { 5.9604644775390625e-08f, 0x0001 },  /* 2^-24 */
    { 8.940696716308594e-08f, 0x0002 },   /* 3 * 2^-25: tie, even up */
    { 2.98023223876953125e-08f, 0x0000 }, /* 2^-25: tie, even down */
    { 2.9802326e-08f, 0x0001 },   /* just above 2^-25 */
    { 1e-40f, 0x0000 },           /* float subnormal */
    { -0.0f, 0x8000 },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_test_message ("case %" G_GSIZE_FORMAT ": %g", i, cases[i].value);
    g_assert_cmphex (cnclip_float_to_half (cases[i].value), ==, cases[i].half);
  }
  g_assert_cmphex (cnclip_float_to_half (NAN) & 0x7e00, ==, 0x7e00);
  g_assert_true (isnan (cnclip_half_to_float (0x7e00)));
}

/* Test that every half value converts to float and back unchanged, and
 * that half_to_float gives the exact value of the bits. */
static void
test_half_round_trip (void)
{
  for (guint32 h = 0; h < 0x10000; h++) {
    if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0)
      continue;    /* NaN payloads are not required to survive */
    float f = cnclip_half_to_float ((guint16) h);
    const int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double expected = e == 0 ? ldexp (m, -24) : e == 31 ? INFINITY : ldexp (1024 + m, e - 25);
    if (h & 0x8000)
      expected = -expected;
    g_assert_cmpfloat ((double) f, ==, expected);
    g_assert_cmphex (cnclip_float_to_half (f), ==, h);
  }
}

/* Test that float -> half equals the compiler's _Float16 conversion (an
 * independent round-to-nearest-even) on a million random bit patterns. */
static void
test_half_random (void)
{
#ifdef __FLT16_MAX__
  GRand *rand = g_rand_new_with_seed (7);
  for (int i = 0; i < 1000000; i++) {
    guint32 bits = g_rand_int (rand);
    /* Bias half of them into the half range, where the rounding is. */
    if (i & 1)
      bits = (bits & 0x807fffff) | ((guint32) g_rand_int_range (rand, 100, 145) << 23);
    float f;
    memcpy (&f, &bits, 4);
    if (isnan (f))
      continue;
    _Float16 ref = (_Float16) f;
    guint16 expected;
    memcpy (&expected, &ref, 2);
    if (cnclip_float_to_half (f) != expected)
      g_error ("bits %08x: got %04x, _Float16 %04x", bits, cnclip_float_to_half (f), expected);
  }
  g_rand_free (rand);
#else
  g_test_skip ("the compiler has no _Float16");
#endif
}

/* ------------------------------------------------------------------------ */
/* A subset validator of JSON Schema (type, enum, required, properties,
 * items, minimum, pattern): what docs/record.schema.json uses. Keywords apply
 * only to instances of their kind, as in JSON Schema. */

static const char *
node_type (JsonNode *node)
{
  switch (JSON_NODE_TYPE (node)) {
    case JSON_NODE_OBJECT: return "object";
    case JSON_NODE_ARRAY: return "array";
    case JSON_NODE_NULL: return "null";
    default: break;
  }
  GType t = json_node_get_value_type (node);
  if (t == G_TYPE_STRING)
    return "string";
  if (t == G_TYPE_BOOLEAN)
    return "boolean";
  if (t == G_TYPE_INT64)
    return "integer";
  return "number";
}

static gboolean
type_matches (JsonNode *node, const char *type)
{
  const char *actual = node_type (node);
  return strcmp (actual, type) == 0 || (strcmp (type, "number") == 0 && strcmp (actual,
          "integer") == 0);
}

static gboolean
validate (JsonObject *schema, JsonNode *node, const char *where, GString *why)
{
  if (json_object_has_member (schema, "type")) {
    JsonNode *type = json_object_get_member (schema, "type");
    gboolean ok = FALSE;
    if (JSON_NODE_HOLDS_ARRAY (type)) {
      JsonArray *types = json_node_get_array (type);
      for (guint i = 0; i < json_array_get_length (types); i++)
        ok |= type_matches (node, json_array_get_string_element (types, i));
    } else {
      ok = type_matches (node, json_node_get_string (type));
    }
    if (!ok) {
      g_string_append_printf (why, "%s: type %s not allowed", where, node_type (node));
      return FALSE;
    }
  }
  if (json_object_has_member (schema, "enum")) {
    JsonArray *values = json_object_get_array_member (schema, "enum");
    gboolean ok = FALSE;
    for (guint i = 0; i < json_array_get_length (values); i++)
      ok |= json_node_equal (json_array_get_element (values, i), node);
    if (!ok) {
      g_string_append_printf (why, "%s: not one of the enum", where);
      return FALSE;
    }
  }
  const char *type = node_type (node);
  if (json_object_has_member (schema, "minimum") && (!strcmp (type, "integer") ||
          !strcmp (type, "number"))) {
    if (json_node_get_double (node) < json_object_get_double_member (schema, "minimum")) {
      g_string_append_printf (why, "%s: below the minimum", where);
      return FALSE;
    }
  }
  if (json_object_has_member (schema, "pattern") && !strcmp (type, "string")) {
    if (!g_regex_match_simple (json_object_get_string_member (schema, "pattern"),
            json_node_get_string (node), 0, 0)) {
      g_string_append_printf (why, "%s: does not match the pattern", where);
      return FALSE;
    }
  }
  if (!strcmp (type, "object")) {
    JsonObject *obj = json_node_get_object (node);
    if (json_object_has_member (schema, "required")) {
      JsonArray *req = json_object_get_array_member (schema, "required");
      for (guint i = 0; i < json_array_get_length (req); i++) {
        const char *key = json_array_get_string_element (req, i);
        if (!json_object_has_member (obj, key)) {
          g_string_append_printf (why, "%s: required member %s missing", where, key);
          return FALSE;
        }
      }
    }
    if (json_object_has_member (schema, "properties")) {
      JsonObject *props = json_object_get_object_member (schema, "properties");
      GList *keys = json_object_get_members (props);
      gboolean ok = TRUE;
      for (GList *k = keys; k && ok; k = k->next) {
        if (json_object_has_member (obj, k->data)) {
          char *sub = g_strdup_printf ("%s.%s", where, (char *) k->data);
          ok = validate (json_object_get_object_member (props, k->data),
              json_object_get_member (obj, k->data), sub, why);
          g_free (sub);
        }
      }
      g_list_free (keys);
      if (!ok)
        return FALSE;
    }
  }
  if (!strcmp (type, "array") && json_object_has_member (schema, "items")) {
    JsonArray *items = json_node_get_array (node);
    for (guint i = 0; i < json_array_get_length (items); i++) {
      char *sub = g_strdup_printf ("%s[%u]", where, i);
      gboolean ok = validate (json_object_get_object_member (schema, "items"),
          json_array_get_element (items, i), sub, why);
      g_free (sub);
      if (!ok)
        return FALSE;
    }
  }
  return TRUE;
}

static JsonParser *
load_schema (void)
{
  const char *src = g_getenv ("CNCLIP_SOURCE_DIR");
  char *path = g_build_filename (src && *src ? src : CNCLIP_SOURCE_DIR, "docs",
      "record.schema.json", NULL);
  JsonParser *parser = json_parser_new ();
  GError *error = NULL;
  json_parser_load_from_file (parser, path, &error);
  g_assert_no_error (error);
  g_free (path);
  return parser;
}

/* Validates @line; returns the reason on failure (g_free) or NULL. */
static char *
validate_line (JsonObject *schema, const char *line)
{
  JsonParser *parser = json_parser_new ();
  GError *error = NULL;
  if (!json_parser_load_from_data (parser, line, -1, &error)) {
    char *msg = g_strdup (error->message);
    g_error_free (error);
    g_object_unref (parser);
    return msg;
  }
  GString *why = g_string_new (NULL);
  gboolean ok = validate (schema, json_parser_get_root (parser), "record", why);
  g_object_unref (parser);
  return g_string_free (why, ok);
}

/* Test that records of every shape the writer makes validate against
 * docs/record.schema.json, and that the schema's keys are exactly the
 * record's keys in the record's order. */
static void
test_schema_accepts_writer_output (void)
{
  JsonParser *schema_parser = load_schema ();
  JsonObject *schema = json_node_get_object (json_parser_get_root (schema_parser));
  CnclipRecord records[4];
  records[0] = full_record (CNCLIP_EMBEDDING_F32);
  records[1] = full_record (CNCLIP_EMBEDDING_F16);
  records[2] = full_record (CNCLIP_EMBEDDING_NONE);
  cnclip_record_init (&records[3]);
  records[3].source = "cam";
  for (gsize i = 0; i < G_N_ELEMENTS (records); i++) {
    char *line = format (&records[i]);
    char *why = validate_line (schema, line);
    if (why)
      g_error ("record %" G_GSIZE_FORMAT " does not validate: %s\n%s", i, why, line);
    g_free (line);
  }

  /* The schema lists the record's keys in the record's order. */
  char *line = format (&records[0]);
  JsonArray *req = json_object_get_array_member (schema, "required");
  const char *p = line;
  for (guint i = 0; i < json_array_get_length (req); i++) {
    char *key = g_strdup_printf ("\"%s\":", json_array_get_string_element (req, i));
    const char *at = strstr (p, key);
    g_assert_nonnull (at);
    p = at + 1;
    g_free (key);
  }
  g_free (line);
  g_object_unref (schema_parser);
}

/* Test that the subset validator rejects records that break the schema
 * (so the test above can fail). */
static void
test_schema_rejects_bad_records (void)
{
  JsonParser *schema_parser = load_schema ();
  JsonObject *schema = json_node_get_object (json_parser_get_root (schema_parser));
  CnclipRecord r = full_record (CNCLIP_EMBEDDING_F32);
  char *good = format (&r);
  static const struct
  {
    const char *from;
    const char *to;
    const char *why;
  } breaks[] = {
    { "\"version\":1", "\"version\":2", "record.version: not one of the enum" },
    { "\"frame\":42", "\"frame\":\"42\"", "record.frame: type string not allowed" },
    { "\"frame\":42", "\"frame\":-1", "record.frame: below the minimum" },
    { "\"pts\":1433333333,", "", "record: required member pts missing" },
    { "\"dtype\":\"f32\"", "\"dtype\":\"f64\"", "record.embedding.dtype: not one of the enum" },
    { "05.678Z", "05Z", "record.wallclock: does not match the pattern" },
    { "\"matched\":false", "\"matched\":0", "record.classification[0].matched: type integer not allowed" },
    { "\"top\":{\"label\"", "\"top\":{\"name\"", "record.top: required member label missing" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (breaks); i++) {
    const char *at = strstr (good, breaks[i].from);
    g_assert_nonnull (at);
    char *bad = g_strdup_printf ("%.*s%s%s", (int) (at - good), good, breaks[i].to,
        at + strlen (breaks[i].from));
    char *why = validate_line (schema, bad);
    g_assert_cmpstr (why, ==, breaks[i].why);
    g_free (why);
    g_free (bad);
  }
  g_free (good);
  g_object_unref (schema_parser);
}

/* ------------------------------------------------------------------------ */
/* Writer */

static char *
read_text (const char *path)
{
  gsize length;
  char *text = (char *) test_read_file (path, &length);
  return text;
}

/* Test that the writer appends whole records to a file, keeps what was
 * there, that every line parses, and that dtype strings round-trip. */
static void
test_writer_file (void)
{
  char *dir = test_make_temp_dir ();
  char *path = g_build_filename (dir, "index.jsonl", NULL);
  g_assert_true (g_file_set_contents (path, "{\"old\":1}\n", -1, NULL));
  GError *error = NULL;

  CnclipRecordWriter *w = cnclip_record_writer_open (path, CNCLIP_RECORD_SYNC_ALWAYS, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (cnclip_record_writer_get_location (w), ==, path);
  CnclipRecord r = full_record (CNCLIP_EMBEDDING_F32);
  GString *expected = g_string_new ("{\"old\":1}\n");
  for (int i = 0; i < 3; i++) {
    r.frame = (guint64) i;
    r.embedding_dtype = i == 1 ? CNCLIP_EMBEDDING_F16 : CNCLIP_EMBEDDING_F32;
    g_assert_true (cnclip_record_writer_write (w, &r, &error));
    g_assert_no_error (error);
    cnclip_record_format (&r, expected);
  }
  g_assert_true (cnclip_record_writer_write_line (w, "{\"x\":2}", -1, &error));
  g_assert_true (cnclip_record_writer_write_line (w, "{\"y\":3}\nrest", 8, &error));
  g_assert_no_error (error);
  g_string_append (expected, "{\"x\":2}\n{\"y\":3}\n");
  g_assert_true (cnclip_record_writer_close (w, &error));
  g_assert_no_error (error);

  char *text = read_text (path);
  g_assert_cmpstr (text, ==, expected->str);
  char **lines = g_strsplit (text, "\n", -1);
  g_assert_cmpuint (g_strv_length (lines), ==, 7);    /* 6 lines + "" after the last \n */
  JsonParser *parser = json_parser_new ();
  for (int i = 0; i < 6; i++) {
    json_parser_load_from_data (parser, lines[i], -1, &error);
    g_assert_no_error (error);
  }
  g_object_unref (parser);
  g_strfreev (lines);
  g_free (text);
  g_string_free (expected, TRUE);

  CnclipEmbeddingDtype dtype;
  for (CnclipEmbeddingDtype d = CNCLIP_EMBEDDING_NONE; d <= CNCLIP_EMBEDDING_F16; d++) {
    g_assert_true (cnclip_embedding_dtype_from_string (cnclip_embedding_dtype_to_string (d),
            &dtype));
    g_assert_cmpint (dtype, ==, d);
  }
  g_assert_false (cnclip_embedding_dtype_from_string ("f64", &dtype));
  g_assert_false (cnclip_embedding_dtype_from_string (NULL, &dtype));
  g_free (path);
  g_free (dir);
}

/* Test that opening a file whose last line was cut starts the first new
 * record on a line of its own. */
static void
test_writer_after_cut_line (void)
{
  char *dir = test_make_temp_dir ();
  char *path = g_build_filename (dir, "cut.jsonl", NULL);
  g_assert_true (g_file_set_contents (path, "{\"a\":1}\n{\"version\":1,\"sou", -1, NULL));
  GError *error = NULL;
  CnclipRecordWriter *w = cnclip_record_writer_open (path, CNCLIP_RECORD_SYNC_ON_CLOSE, &error);
  g_assert_no_error (error);
  g_assert_true (cnclip_record_writer_write_line (w, "{\"b\":2}", -1, &error));
  g_assert_true (cnclip_record_writer_close (w, &error));
  g_assert_no_error (error);
  char *text = read_text (path);
  g_assert_cmpstr (text, ==, "{\"a\":1}\n{\"version\":1,\"sou\n{\"b\":2}\n");
  g_free (text);
  g_free (path);
  g_free (dir);
}

/* Test that a full disk (/dev/full) fails the write with CNCLIP_ERROR_IO
 * naming the file and the cause, and that the writer stays failed. */
static void
test_writer_full_disk (void)
{
  if (!g_file_test ("/dev/full", G_FILE_TEST_EXISTS)) {
    g_test_skip ("no /dev/full");
    return;
  }
  GError *error = NULL;
  CnclipRecordWriter *w = cnclip_record_writer_open ("/dev/full", 0, &error);
  g_assert_no_error (error);
  CnclipRecord r = full_record (CNCLIP_EMBEDDING_F32);
  g_assert_false (cnclip_record_writer_write (w, &r, &error));
  g_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO);
  g_assert_nonnull (strstr (error->message, "'/dev/full'"));
  g_assert_nonnull (strstr (error->message, g_strerror (ENOSPC)));
  g_clear_error (&error);
  g_assert_false (cnclip_record_writer_write_line (w, "{}", -1, &error));
  g_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO);
  g_assert_nonnull (strstr (error->message, "'/dev/full'"));
  g_clear_error (&error);
  g_assert_true (cnclip_record_writer_close (w, &error));
  g_assert_no_error (error);
}

/* Test that an unopenable location (missing directory, a directory) is
 * CNCLIP_ERROR_IO naming it. */
static void
test_writer_open_errors (void)
{
  char *dir = test_make_temp_dir ();
  char *missing = g_build_filename (dir, "no-such-dir", "index.jsonl", NULL);
  const char *paths[] = { missing, dir };
  for (gsize i = 0; i < G_N_ELEMENTS (paths); i++) {
    GError *error = NULL;
    g_assert_null (cnclip_record_writer_open (paths[i], 0, &error));
    g_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO);
    g_assert_nonnull (strstr (error->message, paths[i]));
    g_clear_error (&error);
  }
  g_assert_false (g_file_test (missing, G_FILE_TEST_EXISTS));
  g_free (missing);
  g_free (dir);
}

/* Test that a write cut short (file size limit reached mid-record) is
 * undone: the file keeps only whole records, and the writer is failed. */
static void
test_writer_short_write (void)
{
  char *dir = test_make_temp_dir ();
  char *path = g_build_filename (dir, "short.jsonl", NULL);
  GError *error = NULL;
  CnclipRecord r = full_record (CNCLIP_EMBEDDING_F32);
  GString *one = g_string_new (NULL);
  cnclip_record_format (&r, one);

  CnclipRecordWriter *w = cnclip_record_writer_open (path, CNCLIP_RECORD_SYNC_ON_CLOSE, &error);
  g_assert_no_error (error);
  g_assert_true (cnclip_record_writer_write (w, &r, &error));

  struct rlimit old, limit;
  g_assert_cmpint (getrlimit (RLIMIT_FSIZE, &old), ==, 0);
  limit = old;
  limit.rlim_cur = one->len + 100;    /* room for 100 bytes of the second record */
  void (*old_handler) (int) = signal (SIGXFSZ, SIG_IGN);
  g_assert_cmpint (setrlimit (RLIMIT_FSIZE, &limit), ==, 0);
  gboolean ok = cnclip_record_writer_write (w, &r, &error);
  g_assert_cmpint (setrlimit (RLIMIT_FSIZE, &old), ==, 0);
  signal (SIGXFSZ, old_handler);

  g_assert_false (ok);
  g_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO);
  g_assert_nonnull (strstr (error->message, path));
  g_clear_error (&error);
  /* Room again, but a failed writer writes nothing more. */
  g_assert_false (cnclip_record_writer_write (w, &r, &error));
  g_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO);
  g_clear_error (&error);
  g_assert_true (cnclip_record_writer_close (w, &error));

  char *text = read_text (path);
  g_assert_cmpstr (text, ==, one->str);
  g_free (text);
  g_string_free (one, TRUE);
  g_free (path);
  g_free (dir);
}

/* Test that "-" writes to standard output and leaves it open. */
static void
test_writer_stdout (void)
{
  char *dir = test_make_temp_dir ();
  char *path = g_build_filename (dir, "stdout.jsonl", NULL);
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  g_assert_cmpint (fd, >=, 0);
  fflush (stdout);
  int saved = dup (STDOUT_FILENO);
  g_assert_cmpint (dup2 (fd, STDOUT_FILENO), ==, STDOUT_FILENO);
  close (fd);

  GError *error = NULL;
  CnclipRecordWriter *w = cnclip_record_writer_open ("-", CNCLIP_RECORD_SYNC_ALWAYS, &error);
  g_assert_no_error (error);
  gboolean ok = cnclip_record_writer_write_line (w, "{\"a\":1}", -1, &error);
  gboolean closed = cnclip_record_writer_close (w, &error);
  gboolean still_open = fcntl (STDOUT_FILENO, F_GETFD) != -1;
  dup2 (saved, STDOUT_FILENO);
  close (saved);

  g_assert_no_error (error);
  g_assert_true (ok);
  g_assert_true (closed);
  g_assert_true (still_open);
  char *text = read_text (path);
  g_assert_cmpstr (text, ==, "{\"a\":1}\n");
  g_free (text);
  g_free (path);
  g_free (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/record/format-f32", test_format_f32);
  g_test_add_func ("/record/format-f16", test_format_f16);
  g_test_add_func ("/record/format-nulls", test_format_nulls);
  g_test_add_func ("/record/format-edge-values", test_format_edge_values);
  g_test_add_func ("/record/format-float-round-trip", test_format_float_round_trip);
  g_test_add_func ("/record/half-table", test_half_table);
  g_test_add_func ("/record/half-round-trip", test_half_round_trip);
  g_test_add_func ("/record/half-random", test_half_random);
  g_test_add_func ("/record/schema-accepts-writer-output", test_schema_accepts_writer_output);
  g_test_add_func ("/record/schema-rejects-bad-records", test_schema_rejects_bad_records);
  g_test_add_func ("/record/writer-file", test_writer_file);
  g_test_add_func ("/record/writer-after-cut-line", test_writer_after_cut_line);
  g_test_add_func ("/record/writer-full-disk", test_writer_full_disk);
  g_test_add_func ("/record/writer-open-errors", test_writer_open_errors);
  g_test_add_func ("/record/writer-short-write", test_writer_short_write);
  g_test_add_func ("/record/writer-stdout", test_writer_stdout);
  return g_test_run ();
}
