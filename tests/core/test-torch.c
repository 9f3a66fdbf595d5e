/* test-torch.c: PyTorch zip checkpoints (torchzip.c): the fixture files against
 * their expected parse results (torch_file_layout.json), bit-exact values
 * against model.safetensors, the golden outputs through cnclip_model_load,
 * and hostile or broken checkpoints crafted here with a small zip writer
 * and pickle assembler (no Python at test time).
 */
#include "config.h"

#include <math.h>
#include <string.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "test-util.h"
#include "weights.h"
#include "pickle.h"
#include "torchzip.h"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

/* Bitwise CRC-32, independent of the library's table-driven one. */
static guint32
ref_crc32 (const guint8 *p, gsize n)
{
  guint32 c = 0xffffffffu;
  for (gsize i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++)
      c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
  }
  return ~c;
}

static void
put16 (guint8 *p, guint v)
{
  p[0] = v & 0xff;
  p[1] = (v >> 8) & 0xff;
}

static void
put32 (guint8 *p, guint32 v)
{
  for (int i = 0; i < 4; i++)
    p[i] = (v >> (8 * i)) & 0xff;
}

static void
put64 (guint8 *p, guint64 v)
{
  for (int i = 0; i < 8; i++)
    p[i] = (v >> (8 * i)) & 0xff;
}

static guint32
get32 (const guint8 *p)
{
  return (guint32) p[0] | ((guint32) p[1] << 8) | ((guint32) p[2] << 16) | ((guint32) p[3] << 24);
}

static void
app16 (GByteArray *b, guint v)
{
  guint8 x[2];
  put16 (x, v);
  g_byte_array_append (b, x, 2);
}

static void
app32 (GByteArray *b, guint32 v)
{
  guint8 x[4];
  put32 (x, v);
  g_byte_array_append (b, x, 4);
}

static void
app64 (GByteArray *b, guint64 v)
{
  guint8 x[8];
  put64 (x, v);
  g_byte_array_append (b, x, 8);
}

/* ------------------------------------------------------------------------ */
/* A small zip writer, torch.save style by default                          */

typedef struct
{
  const char *name;
  const guint8 *data;
  gsize len;
  guint16 method;                /* written as is; data is never compressed */
} ZEntry;

typedef struct
{
  guint align;                   /* data alignment via an 'FB' extra field; 0 = none */
  guint skew;                    /* extra padding after aligning (misaligns on purpose) */
  gboolean no_zip64;             /* omit the zip64 record and locator */
  gboolean zip64_extra;          /* central sizes/offsets as 0xffffffff + zip64 extra */
  gboolean saturate_eocd;        /* classic EOCD fields 0xffff / 0xffffffff */
  const char *comment;
} ZOpts;

typedef struct
{
  gsize header_offset[64];
  gsize data_offset[64];
  gsize central_offset[64];
  gsize cd_offset;
  gsize cd_size;
  gsize zip64_offset;
  gsize eocd_offset;
} ZLayout;

static guint8 *
make_zip (const ZEntry *entries, guint n, const ZOpts *opts, gsize *len, ZLayout *layout)
{
  static const ZOpts defaults = { .align = 64 };
  ZLayout dummy;
  if (opts == NULL)
    opts = &defaults;
  if (layout == NULL)
    layout = &dummy;
  g_assert_cmpuint (n, <=, 64);
  GByteArray *b = g_byte_array_new ();
  for (guint i = 0; i < n; i++) {
    const ZEntry *e = &entries[i];
    gsize name_len = strlen (e->name);
    layout->header_offset[i] = b->len;
    guint pad = 0;
    if (opts->align) {
      gsize start = b->len + 30 + name_len + 4;
      pad = (opts->align - start % opts->align) % opts->align + opts->skew;
    }
    app32 (b, 0x04034b50);
    app16 (b, 20);
    app16 (b, 0x0800);
    app16 (b, e->method);
    app16 (b, 0);
    app16 (b, 0);
    app32 (b, ref_crc32 (e->data, e->len));
    app32 (b, e->len);
    app32 (b, e->len);
    app16 (b, name_len);
    app16 (b, opts->align ? 4 + pad : 0);
    g_byte_array_append (b, (const guint8 *) e->name, name_len);
    if (opts->align) {
      app16 (b, 0x4246);
      app16 (b, pad);
      for (guint k = 0; k < pad; k++)
        g_byte_array_append (b, (const guint8 *) "Z", 1);
    }
    layout->data_offset[i] = b->len;
    if (e->len)
      g_byte_array_append (b, e->data, e->len);
  }
  layout->cd_offset = b->len;
  for (guint i = 0; i < n; i++) {
    const ZEntry *e = &entries[i];
    gsize name_len = strlen (e->name);
    layout->central_offset[i] = b->len;
    app32 (b, 0x02014b50);
    app16 (b, 0x031e);
    app16 (b, 20);
    app16 (b, 0x0800);
    app16 (b, e->method);
    app16 (b, 0);
    app16 (b, 0);
    app32 (b, ref_crc32 (e->data, e->len));
    app32 (b, opts->zip64_extra ? 0xffffffffu : e->len);
    app32 (b, opts->zip64_extra ? 0xffffffffu : e->len);
    app16 (b, name_len);
    app16 (b, opts->zip64_extra ? 4 + 24 + 8 : 0);
    app16 (b, 0);
    app16 (b, 0);
    app16 (b, 0);
    app32 (b, 0);
    app32 (b, opts->zip64_extra ? 0xffffffffu : layout->header_offset[i]);
    g_byte_array_append (b, (const guint8 *) e->name, name_len);
    if (opts->zip64_extra) {
      /* An unrelated field first, which the reader must skip. */
      app16 (b, 0x5455);
      app16 (b, 4);
      app32 (b, 0);
      app16 (b, 1);
      app16 (b, 24);
      app64 (b, e->len);
      app64 (b, e->len);
      app64 (b, layout->header_offset[i]);
    }
  }
  layout->cd_size = b->len - layout->cd_offset;
  layout->zip64_offset = 0;
  if (!opts->no_zip64) {
    layout->zip64_offset = b->len;
    app32 (b, 0x06064b50);
    app64 (b, 44);
    app16 (b, 0x1e);
    app16 (b, 0x2d);
    app32 (b, 0);
    app32 (b, 0);
    app64 (b, n);
    app64 (b, n);
    app64 (b, layout->cd_size);
    app64 (b, layout->cd_offset);
    app32 (b, 0x07064b50);
    app32 (b, 0);
    app64 (b, layout->zip64_offset);
    app32 (b, 1);
  }
  layout->eocd_offset = b->len;
  gsize comment_len = opts->comment ? strlen (opts->comment) : 0;
  app32 (b, 0x06054b50);
  app16 (b, 0);
  app16 (b, 0);
  app16 (b, opts->saturate_eocd ? 0xffff : n);
  app16 (b, opts->saturate_eocd ? 0xffff : n);
  app32 (b, opts->saturate_eocd ? 0xffffffffu : layout->cd_size);
  app32 (b, opts->saturate_eocd ? 0xffffffffu : layout->cd_offset);
  app16 (b, comment_len);
  if (comment_len)
    g_byte_array_append (b, (const guint8 *) opts->comment, comment_len);
  *len = b->len;
  return g_byte_array_free (b, FALSE);
}

/* ------------------------------------------------------------------------ */
/* A pickle assembler for state dicts                                        */

typedef struct
{
  const char *name;
  const char *storage;           /* "FloatStorage", ... */
  const char *key;
  gint64 numel;
  gint64 offset;
  int ndim;
  gint64 size[9];                /* 9 so that a test can exceed the limit of 8 */
  gint64 stride[9];
} TSpec;

static void
pb_op (GByteArray *p, guint8 op)
{
  g_byte_array_append (p, &op, 1);
}

static void
pb_str (GByteArray *p, const char *s)
{
  pb_op (p, 'X');
  app32 (p, strlen (s));
  g_byte_array_append (p, (const guint8 *) s, strlen (s));
}

static void
pb_int (GByteArray *p, gint64 v)
{
  if (v >= 0 && v < 256) {
    pb_op (p, 'K');
    pb_op (p, v);
  } else if (v >= 0 && v < 65536) {
    pb_op (p, 'M');
    app16 (p, v);
  } else if (v >= G_MININT32 && v <= G_MAXINT32) {
    pb_op (p, 'J');
    app32 (p, (guint32) v);
  } else {
    pb_op (p, 0x8a);
    pb_op (p, 8);
    app64 (p, (guint64) v);
  }
}

static void
pb_global (GByteArray *p, const char *module, const char *name)
{
  pb_op (p, 'c');
  g_byte_array_append (p, (const guint8 *) module, strlen (module));
  pb_op (p, '\n');
  g_byte_array_append (p, (const guint8 *) name, strlen (name));
  pb_op (p, '\n');
}

static void
pb_int_tuple (GByteArray *p, const gint64 *v, int n)
{
  pb_op (p, '(');
  for (int i = 0; i < n; i++)
    pb_int (p, v[i]);
  pb_op (p, 't');
}

static void
pb_tensor (GByteArray *p, const TSpec *t)
{
  pb_global (p, "torch._utils", "_rebuild_tensor_v2");
  pb_op (p, '(');
  pb_op (p, '(');
  pb_str (p, "storage");
  pb_global (p, "torch", t->storage);
  pb_str (p, t->key);
  pb_str (p, "cpu");
  pb_int (p, t->numel);
  pb_op (p, 't');
  pb_op (p, 'Q');
  pb_int (p, t->offset);
  pb_int_tuple (p, t->size, t->ndim);
  pb_int_tuple (p, t->stride, t->ndim);
  pb_op (p, 0x89);
  pb_global (p, "collections", "OrderedDict");
  pb_op (p, ')');
  pb_op (p, 'R');
  pb_op (p, 't');
  pb_op (p, 'R');
}

/* {name: tensor, ...} as transformers' save_pretrained writes it. */
static GByteArray *
pb_state_dict (const TSpec *specs, guint n)
{
  GByteArray *p = g_byte_array_new ();
  pb_op (p, 0x80);
  pb_op (p, 2);
  pb_op (p, '}');
  pb_op (p, '(');
  for (guint i = 0; i < n; i++) {
    pb_str (p, specs[i].name);
    pb_tensor (p, &specs[i]);
  }
  pb_op (p, 'u');
  pb_op (p, '.');
  return p;
}

/* The standard small checkpoint: "a" [2,3] F32 in storage 0 (values 0..5),
 * "b" [4] F32 in storage 1 (values 10..13). */
static const TSpec small_specs[] = {
  { "a", "FloatStorage", "0", 6, 0, 2, { 2, 3 }, { 3, 1 } },
  { "b", "FloatStorage", "1", 4, 0, 1, { 4 }, { 1 } },
};
static const float small_a[6] = { 0, 1, 2, 3, 4, 5 };
static const float small_b[4] = { 10, 11, 12, 13 };

/* Zips @pkl as ckpt/data.pkl with the two small storages and ckpt/version. */
static guint8 *
small_zip_with_pickle (const guint8 *pkl, gsize pkl_len, const ZOpts *opts, gsize *len,
    ZLayout *layout)
{
  const ZEntry entries[] = {
    { "ckpt/data.pkl", pkl, pkl_len, 0 },
    { "ckpt/data/0", (const guint8 *) small_a, sizeof (small_a), 0 },
    { "ckpt/data/1", (const guint8 *) small_b, sizeof (small_b), 0 },
    { "ckpt/version", (const guint8 *) "3\n", 2, 0 },
  };
  return make_zip (entries, G_N_ELEMENTS (entries), opts, len, layout);
}

static guint8 *
small_zip (const TSpec *specs, guint n, const ZOpts *opts, gsize *len, ZLayout *layout)
{
  GByteArray *p = pb_state_dict (specs, n);
  guint8 *zip = small_zip_with_pickle (p->data, p->len, opts, len, layout);
  g_byte_array_unref (p);
  return zip;
}

/* Parses @data (@len bytes) and asserts the error. */
static void
check_parse_error (const char *what, const guint8 *data, gsize len, CnclipError code,
    const char *message_part)
{
  GError *error = NULL;
  CnclipTorchCheckpoint *ckpt = cnclip_torch_checkpoint_parse (data, len, &error);
  if (ckpt != NULL || error == NULL || error->code != (int) code
      || (message_part && strstr (error->message, message_part) == NULL))
    g_printerr ("case '%s': %s\n", what, error ? error->message : "(no error)");
  g_assert_null (ckpt);
  g_assert_error (error, CNCLIP_ERROR, (int) code);
  if (message_part)
    g_assert_nonnull (strstr (error->message, message_part));
  if (g_test_verbose ())
    g_printerr ("  %s: %s\n", what, error->message);
  g_clear_error (&error);
}

/* The same on a copy in an exactly sized buffer, so that memory checkers see
 * any read past @len. */
static void
expect_parse_error (const char *what, const guint8 *data, gsize len, CnclipError code,
    const char *message_part)
{
  guint8 *copy = len ? g_memdup2 (data, len) : NULL;
  check_parse_error (what, copy ? copy : (const guint8 *) "", len, code, message_part);
  g_free (copy);
}

static CnclipTorchCheckpoint *
expect_parse_ok (const char *what, const guint8 *data, gsize len)
{
  GError *error = NULL;
  CnclipTorchCheckpoint *ckpt = cnclip_torch_checkpoint_parse (data, len, &error);
  if (error)
    g_printerr ("case '%s': %s\n", what, error->message);
  g_assert_no_error (error);
  g_assert_nonnull (ckpt);
  return ckpt;
}

/* Element @index (row-major logical order) of a strided tensor: its bytes. */
static const guint8 *
element_ptr (const guint8 *data, CnclipDType dtype, int ndim, const gint64 *shape,
    const gint64 *strides, gint64 index)
{
  gint64 off = 0;
  for (int k = ndim - 1; k >= 0; k--) {
    off += (index % shape[k]) * strides[k];
    index /= shape[k];
  }
  return data + off * (gint64) cnclip_dtype_size (dtype);
}

static char *
write_temp (const char *name, const guint8 *data, gsize len)
{
  char *dir = test_make_temp_dir ();
  char *path = g_build_filename (dir, name, NULL);
  GError *error = NULL;
  g_file_set_contents (path, (const char *) data, len, &error);
  g_assert_no_error (error);
  g_free (dir);
  return path;
}

/* ------------------------------------------------------------------------ */
/* The fixture files against torch_file_layout.json                         */

typedef struct
{
  const char *dir;
  const char *file;
} Fixture;

static const Fixture fixture_bin = { TEST_TINY_BIN_MODEL, "pytorch_model.bin" };
static const Fixture fixture_official = { TEST_TINY_OFFICIAL_MODEL, "model.pt" };

static JsonParser *
load_layout (const Fixture *f)
{
  char *rel = g_build_filename (f->dir, "torch_file_layout.json", NULL);
  char *path = test_data_path (rel);
  JsonParser *parser = json_parser_new ();
  GError *error = NULL;
  json_parser_load_from_file (parser, path, &error);
  g_assert_no_error (error);
  g_free (rel);
  g_free (path);
  return parser;
}

static guint8 *
load_fixture (const Fixture *f, gsize *len)
{
  char *rel = g_build_filename (f->dir, f->file, NULL);
  char *path = test_data_path (rel);
  guint8 *data = test_read_file (path, len);
  g_free (rel);
  g_free (path);
  return data;
}

static guint32
hex32 (const char *s)
{
  return (guint32) g_ascii_strtoull (s, NULL, 16);
}

/* Test that the zip structure of a fixture (end records, every entry's name, offsets, data
 * offset, size, CRC, method and flags) is exactly the one listed in torch_file_layout.json,
 * and that the CRC-32 of every entry's data matches. */
static void
test_fixture_zip (gconstpointer user_data)
{
  const Fixture *f = user_data;
  JsonParser *parser = load_layout (f);
  JsonObject *root = json_node_get_object (json_parser_get_root (parser));
  gsize len;
  guint8 *data = load_fixture (f, &len);

  g_assert_cmpuint (len, ==, json_object_get_int_member (root, "file_size"));
  char *sha = g_compute_checksum_for_data (G_CHECKSUM_SHA256, data, len);
  g_assert_cmpstr (sha, ==, json_object_get_string_member (root, "sha256"));
  g_free (sha);

  GError *error = NULL;
  CnclipZip *zip = cnclip_zip_parse (data, len, &error);
  g_assert_no_error (error);
  JsonObject *z = json_object_get_object_member (root, "zip");
  g_assert_cmpuint (zip->eocd_offset, ==, json_object_get_int_member (z, "eocd_offset"));
  g_assert_cmpint (zip->zip64, ==, json_object_get_boolean_member (z, "zip64"));
  g_assert_cmpuint (zip->zip64_eocd_offset, ==, json_object_get_int_member (z,
          "zip64_eocd_offset"));
  g_assert_cmpuint (zip->cd_offset, ==, json_object_get_int_member (z, "cd_offset"));
  g_assert_cmpuint (zip->cd_size, ==, json_object_get_int_member (z, "cd_size"));
  g_assert_cmpuint (zip->n_entries, ==, json_object_get_int_member (z, "entries"));

  JsonArray *entries = json_object_get_array_member (root, "zip_entries");
  g_assert_cmpuint (json_array_get_length (entries), ==, zip->n_entries);
  for (guint i = 0; i < zip->n_entries; i++) {
    JsonObject *je = json_array_get_object_element (entries, i);
    const CnclipZipEntry *e = &zip->entries[i];
    g_assert_cmpstr (e->name, ==, json_object_get_string_member (je, "name"));
    g_assert_true (cnclip_zip_lookup (zip, e->name) == e);
    g_assert_cmpuint (e->header_offset, ==, json_object_get_int_member (je, "header_offset"));
    g_assert_cmpuint (e->data_offset, ==, json_object_get_int_member (je, "data_offset"));
    g_assert_cmpuint (e->data_offset % 64, ==, json_object_get_int_member (je,
            "data_offset_mod_64"));
    g_assert_cmpuint (e->size, ==, json_object_get_int_member (je, "size"));
    g_assert_cmpuint (e->compressed_size, ==, e->size);
    g_assert_cmpuint (e->method, ==, json_object_get_int_member (je, "method"));
    g_assert_cmphex (e->flags, ==, hex32 (json_object_get_string_member (je, "flags")));
    guint32 crc = hex32 (json_object_get_string_member (je, "crc32"));
    g_assert_cmphex (e->crc32, ==, crc);
    g_assert_cmphex (cnclip_crc32 (0, data + e->data_offset, e->size), ==, crc);
  }
  g_assert_null (cnclip_zip_lookup (zip, "no/such/entry"));
  cnclip_zip_free (zip);
  g_free (data);
  g_object_unref (parser);
}

/* Test that the pickle of a fixture executes exactly the opcode counts and names exactly the
 * globals of torch_file_layout.json, and that its top level is as described. */
static void
test_fixture_pickle (gconstpointer user_data)
{
  const Fixture *f = user_data;
  JsonParser *parser = load_layout (f);
  JsonObject *root = json_node_get_object (json_parser_get_root (parser));
  gsize len;
  guint8 *data = load_fixture (f, &len);
  GError *error = NULL;
  CnclipTorchCheckpoint *ckpt = cnclip_torch_checkpoint_parse (data, len, &error);
  g_assert_no_error (error);

  g_assert_cmpstr (ckpt->prefix, ==, json_object_get_string_member (root, "archive_prefix"));

  JsonObject *ops = json_object_get_object_member (root, "pickle_opcodes");
  GList *names = json_object_get_members (ops);
  guint listed = 0;
  for (guint op = 0; op < 256; op++) {
    const char *name = cnclip_pickle_opcode_name (op);
    guint count = cnclip_pickle_get_opcode_count (ckpt->pickle, op);
    if (name != NULL && json_object_has_member (ops, name)) {
      g_assert_cmpuint (count, ==, json_object_get_int_member (ops, name));
      listed++;
    } else {
      g_assert_cmpuint (count, ==, 0);
    }
  }
  g_assert_cmpuint (listed, ==, g_list_length (names));      /* every listed name is known */
  g_list_free (names);

  JsonArray *globals = json_object_get_array_member (root, "pickle_globals");
  guint32 mask = cnclip_pickle_get_globals (ckpt->pickle), expected_mask = 0;
  for (guint i = 0; i < json_array_get_length (globals); i++) {
    const char *g = json_array_get_string_element (globals, i);
    int found = -1;
    for (int k = 0; k < CNCLIP_PICKLE_N_GLOBALS; k++)
      if (g_strcmp0 (cnclip_pickle_global_name (k), g) == 0)
        found = k;
    g_assert_cmpint (found, >=, 0);
    expected_mask |= 1u << found;
  }
  g_assert_cmphex (mask, ==, expected_mask);

  JsonObject *top = json_object_get_object_member (root, "top_level");
  g_assert_cmpstr (json_object_get_string_member (top, "type"), ==, "dict");
  const CnclipPickleValue *pr = cnclip_pickle_get_root (ckpt->pickle);
  g_assert_cmpint (pr->kind, ==, CNCLIP_PICKLE_DICT);
  g_assert_false (pr->v.dict.ordered);
  if (json_object_has_member (top, "keys")) {
    /* cn_clip training checkpoint. */
    JsonArray *keys = json_object_get_array_member (top, "keys");
    g_assert_cmpuint (pr->v.dict.n_pairs, ==, json_array_get_length (keys));
    for (guint i = 0; i < pr->v.dict.n_pairs; i++)
      g_assert_cmpstr (pr->v.dict.items[2 * i]->v.str.str, ==,
          json_array_get_string_element (keys, i));
    g_assert_true (ckpt->has_state_dict);
    g_assert_cmpint (cnclip_pickle_dict_lookup (pr, "epoch")->v.integer, ==,
        json_object_get_int_member (top, "epoch"));
    g_assert_cmpint (cnclip_pickle_dict_lookup (pr, "step")->v.integer, ==,
        json_object_get_int_member (top, "step"));
    g_assert_cmpstr (cnclip_pickle_dict_lookup (pr, "name")->v.str.str, ==,
        json_object_get_string_member (top, "name"));
    const CnclipPickleValue *sd = cnclip_pickle_dict_lookup (pr, "state_dict");
    g_assert_cmpstr (json_object_get_string_member (top, "state_dict_type"), ==, "OrderedDict");
    g_assert_true (sd->v.dict.ordered);
    g_assert_true (ckpt->state_dict_ordered);
    g_assert_true (json_object_get_boolean_member (top, "state_dict_has__metadata"));
    g_assert_nonnull (sd->v.dict.state);
    const CnclipPickleValue *meta = cnclip_pickle_dict_lookup (sd->v.dict.state, "_metadata");
    g_assert_nonnull (meta);
    g_assert_true (meta->kind == CNCLIP_PICKLE_DICT && meta->v.dict.ordered);
    /* One {'version': 1} per module, the root module "" first. */
    g_assert_cmpuint (meta->v.dict.n_pairs, >, 10);
    g_assert_cmpstr (meta->v.dict.items[0]->v.str.str, ==, "");
    g_assert_cmpint (cnclip_pickle_dict_lookup (meta->v.dict.items[1], "version")->v.integer, ==,
        1);
  } else {
    g_assert_false (ckpt->has_state_dict);
    g_assert_false (ckpt->state_dict_ordered);
  }
  cnclip_torch_checkpoint_free (ckpt);
  g_free (data);
  g_object_unref (parser);
}

static CnclipDType
dtype_from_torch (const char *s)
{
  if (g_str_equal (s, "float32"))
    return CNCLIP_DTYPE_F32;
  if (g_str_equal (s, "int64"))
    return CNCLIP_DTYPE_I64;
  g_assert_not_reached ();
}

static void
assert_int_array (JsonArray *a, const gint64 *v, int n)
{
  g_assert_cmpuint (json_array_get_length (a), ==, n);
  for (int i = 0; i < n; i++)
    g_assert_cmpint (v[i], ==, json_array_get_int_element (a, i));
}

/* Test that every tensor record of a fixture (name, dtype, shape, stride, storage key, type,
 * element count, location, offset, contiguity) matches torch_file_layout.json in order, and
 * that its data pointer is storage start + offset inside the mapping. */
static void
test_fixture_tensors (gconstpointer user_data)
{
  const Fixture *f = user_data;
  JsonParser *parser = load_layout (f);
  JsonObject *root = json_node_get_object (json_parser_get_root (parser));
  gsize len;
  guint8 *data = load_fixture (f, &len);
  GError *error = NULL;
  CnclipTorchCheckpoint *ckpt = cnclip_torch_checkpoint_parse (data, len, &error);
  g_assert_no_error (error);

  JsonArray *tensors = json_object_get_array_member (root, "tensors");
  g_assert_cmpuint (ckpt->n_tensors, ==, json_array_get_length (tensors));
  for (guint i = 0; i < ckpt->n_tensors; i++) {
    JsonObject *jt = json_array_get_object_element (tensors, i);
    const CnclipTorchTensor *t = &ckpt->tensors[i];
    g_assert_cmpstr (t->name, ==, json_object_get_string_member (jt, "name"));
    g_assert_cmpint (t->dtype, ==, dtype_from_torch (json_object_get_string_member (jt,
                "dtype")));
    assert_int_array (json_object_get_array_member (jt, "shape"), t->shape, t->ndim);
    assert_int_array (json_object_get_array_member (jt, "stride"), t->strides, t->ndim);
    g_assert_cmpint (t->storage_offset, ==, json_object_get_int_member (jt, "storage_offset"));
    g_assert_cmpstr (t->storage_key, ==, json_object_get_string_member (jt, "storage_key"));
    g_assert_cmpstr (cnclip_pickle_global_name (t->storage_type), ==,
        json_object_get_string_member (jt, "storage_type"));
    g_assert_cmpint (t->storage_numel, ==, json_object_get_int_member (jt, "storage_numel"));
    g_assert_cmpstr (t->location, ==, json_object_get_string_member (jt, "location"));
    g_assert_cmpint (t->contiguous, ==, json_object_get_boolean_member (jt, "contiguous"));
    gint64 n = 1;
    for (int k = 0; k < t->ndim; k++)
      n *= t->shape[k];
    g_assert_cmpint (t->n_elements, ==, n);
    char *entry = g_strdup_printf ("%s/data/%s", ckpt->prefix, t->storage_key);
    g_assert_cmpstr (t->entry->name, ==, entry);
    g_free (entry);
    g_assert_cmpuint (t->entry->size, ==, t->storage_numel * cnclip_dtype_size (t->dtype));
    g_assert_true (t->data == data + t->entry->data_offset
        + t->storage_offset * cnclip_dtype_size (t->dtype));
  }
  cnclip_torch_checkpoint_free (ckpt);
  g_free (data);
  g_object_unref (parser);
}

/* ------------------------------------------------------------------------ */
/* Values: bit for bit against model.safetensors                            */

static CnclipWeightFile *
open_reference (void)
{
  char *path = test_data_path (TEST_TINY_MODEL "/model.safetensors");
  GError *error = NULL;
  CnclipWeightFile *ref = cnclip_safetensors_open (path, &error);
  g_assert_no_error (error);
  g_free (path);
  return ref;
}

static CnclipWeightFile *
open_fixture (const Fixture *f)
{
  char *rel = g_build_filename (f->dir, f->file, NULL);
  char *path = test_data_path (rel);
  GError *error = NULL;
  CnclipWeightFile *file = cnclip_torch_open (path, &error);
  g_assert_no_error (error);
  g_assert_nonnull (file);
  g_free (rel);
  g_free (path);
  return file;
}

/* Test that cnclip_torch_open gives every tensor of model.safetensors under its Hugging Face
 * name with the same dtype, shape and bits (following strides), and nothing else; the
 * official checkpoint lacks only the two position_ids buffers. */
static void
test_fixture_values (gconstpointer user_data)
{
  const Fixture *f = user_data;
  gboolean official = f == &fixture_official;
  CnclipWeightFile *ref = open_reference ();
  CnclipWeightFile *file = open_fixture (f);
  guint n_ref = cnclip_weight_file_get_n_tensors (ref), matched = 0;
  g_assert_cmpuint (n_ref, ==, 81);

  for (guint i = 0; i < n_ref; i++) {
    const CnclipTensorInfo *r = cnclip_weight_file_get_tensor (ref, i);
    const CnclipTensorInfo *t = cnclip_weight_file_lookup (file, r->name);
    if (official && g_str_has_suffix (r->name, ".position_ids")) {
      g_assert_null (t);
      continue;
    }
    if (t == NULL)
      g_printerr ("missing %s\n", r->name);
    g_assert_nonnull (t);
    matched++;
    g_assert_cmpint (t->dtype, ==, r->dtype);
    g_assert_cmpint (t->ndim, ==, r->ndim);
    for (int k = 0; k < r->ndim; k++)
      g_assert_cmpint (t->shape[k], ==, r->shape[k]);
    g_assert_cmpint (t->n_elements, ==, r->n_elements);
    gsize es = cnclip_dtype_size (r->dtype);
    for (gint64 e = 0; e < r->n_elements; e++) {
      const guint8 *a = element_ptr (t->data, t->dtype, t->ndim, t->shape, t->strides, e);
      if (memcmp (a, r->data + e * es, es) != 0)
        g_error ("%s: element %" G_GINT64_FORMAT " differs", r->name, e);
    }
  }
  g_assert_cmpuint (cnclip_weight_file_get_n_tensors (file), ==, matched);
  g_assert_cmpuint (matched, ==, official ? 79 : 81);

  /* The binder's conversion path sees the same values through the transposed view. */
  const CnclipTensorInfo *tp = cnclip_weight_file_lookup (file, "text_projection.weight");
  const CnclipTensorInfo *rp = cnclip_weight_file_lookup (ref, "text_projection.weight");
  g_assert_false (tp->contiguous);
  g_assert_cmpint (tp->strides[0], ==, 1);
  g_assert_cmpint (tp->strides[1], ==, 64);
  float *conv = g_new (float, tp->n_elements);
  GError *error = NULL;
  g_assert_true (cnclip_tensor_to_f32 (tp, conv, &error));
  g_assert_no_error (error);
  g_assert_cmpint (memcmp (conv, rp->data, tp->n_elements * 4), ==, 0);
  g_free (conv);

  cnclip_weight_file_free (file);
  cnclip_weight_file_free (ref);
}

/* Test that q/k/v of each vision layer are views of one in_proj storage at offsets 0, W*W,
 * 2*W*W (biases 0, W, 2W) in both files, and the projections are [P, W] with strides (1, P). */
static void
test_fixture_views (gconstpointer user_data)
{
  const Fixture *f = user_data;
  CnclipWeightFile *file = open_fixture (f);
  const gint64 W = 128, P = 64;
  for (int layer = 0; layer < 2; layer++) {
    const CnclipTensorInfo *w[3], *b[3];
    static const char qkv[3] = { 'q', 'k', 'v' };
    for (int j = 0; j < 3; j++) {
      char *name = g_strdup_printf ("vision_model.encoder.layers.%d.self_attn.%c_proj.weight",
          layer, qkv[j]);
      w[j] = cnclip_weight_file_lookup (file, name);
      g_free (name);
      name = g_strdup_printf ("vision_model.encoder.layers.%d.self_attn.%c_proj.bias", layer,
          qkv[j]);
      b[j] = cnclip_weight_file_lookup (file, name);
      g_free (name);
      g_assert_nonnull (w[j]);
      g_assert_nonnull (b[j]);
      g_assert_true (w[j]->contiguous && b[j]->contiguous);
      g_assert_cmpint (w[j]->shape[0], ==, W);
      g_assert_cmpint (w[j]->shape[1], ==, W);
      g_assert_cmpint (w[j]->strides[0], ==, W);
      g_assert_cmpint (b[j]->shape[0], ==, W);
    }
    for (int j = 1; j < 3; j++) {
      g_assert_true (w[j]->data == w[0]->data + j * W * W * 4);
      g_assert_true (b[j]->data == b[0]->data + j * W * 4);
    }
  }
  static const char *const proj[] = { "visual_projection.weight", "text_projection.weight" };
  for (int i = 0; i < 2; i++) {
    const CnclipTensorInfo *t = cnclip_weight_file_lookup (file, proj[i]);
    g_assert_cmpint (t->ndim, ==, 2);
    g_assert_cmpint (t->shape[0], ==, P);
    g_assert_cmpint (t->shape[1], ==, 128);
    g_assert_cmpint (t->strides[0], ==, 1);
    g_assert_cmpint (t->strides[1], ==, P);
    g_assert_false (t->contiguous);
  }
  cnclip_weight_file_free (file);
}

/* Test that cnclip_torch_checkpoint_verify_crc accepts both fixtures and names the entry
 * whose storage was altered. */
static void
test_fixture_crc (void)
{
  gsize len;
  guint8 *data = load_fixture (&fixture_bin, &len);
  GError *error = NULL;
  CnclipTorchCheckpoint *ckpt = cnclip_torch_checkpoint_parse (data, len, &error);
  g_assert_no_error (error);
  g_assert_true (cnclip_torch_checkpoint_verify_crc (ckpt, data, &error));
  g_assert_no_error (error);
  /* One flipped bit in the word embeddings (storage 2). */
  const CnclipTorchTensor *t = &ckpt->tensors[2];
  g_assert_cmpstr (t->storage_key, ==, "2");
  ((guint8 *) t->data)[12345] ^= 0x10;
  g_assert_false (cnclip_torch_checkpoint_verify_crc (ckpt, data, &error));
  g_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT);
  g_assert_nonnull (strstr (error->message, "pytorch_model/data/2"));
  g_clear_error (&error);
  cnclip_torch_checkpoint_free (ckpt);
  g_free (data);

  data = load_fixture (&fixture_official, &len);
  ckpt = cnclip_torch_checkpoint_parse (data, len, &error);
  g_assert_no_error (error);
  g_assert_true (cnclip_torch_checkpoint_verify_crc (ckpt, data, &error));
  cnclip_torch_checkpoint_free (ckpt);
  g_free (data);
}

/* ------------------------------------------------------------------------ */
/* Golden outputs through cnclip_model_load                                 */

/* softmax over texts of scale * cosine, per image (FIXTURES.md 4.4). */
static float *
golden_probs (const float *image, int n_images, const float *text, int n_texts, int dim,
    float scale)
{
  float *probs = g_new (float, n_images * n_texts);
  double *logits = g_new (double, n_texts);
  for (int i = 0; i < n_images; i++) {
    double mx = -G_MAXDOUBLE, sum = 0;
    for (int t = 0; t < n_texts; t++) {
      double c = test_cosine (image + (gsize) i * dim, text + (gsize) t * dim, dim);
      logits[t] = scale * c;
      mx = MAX (mx, logits[t]);
    }
    for (int t = 0; t < n_texts; t++)
      sum += exp (logits[t] - mx);
    for (int t = 0; t < n_texts; t++)
      probs[i * n_texts + t] = exp (logits[t] - mx) / sum;
  }
  g_free (logits);
  return probs;
}

/* Test that cnclip_model_load on the .bin and the official .pt directories gives the golden
 * image and text embeddings (1e-4) and probabilities (1e-5) of cnclip-tiny. */
static void
test_model_golden (gconstpointer user_data)
{
  const Fixture *f = user_data;
  char *dir = test_data_path (f->dir);
  GError *error = NULL;
  CnclipModelParams mp = cnclip_model_default_params ();
  CnclipModel *model = cnclip_model_load (dir, &mp, &error);
  g_assert_no_error (error);
  g_assert_nonnull (model);
  g_assert_true (g_str_has_suffix (cnclip_model_get_weights_path (model), f->file));
  CnclipContextParams cp = cnclip_context_default_params ();
  CnclipContext *ctx = cnclip_context_new (model, &cp, &error);
  g_assert_no_error (error);

  int nd;
  gint64 shape[8];
  float *pixels = test_golden_tensor ("pixel_values", &nd, shape);
  int n_images = shape[0];
  gint32 *ids = test_golden_ids ("input_ids", &nd, shape);
  int n_texts = shape[0], row = shape[1];
  float *want_image = test_golden_tensor ("image_embeds", NULL, NULL);
  float *want_text = test_golden_tensor ("text_embeds", NULL, NULL);
  float *want_probs = test_golden_tensor ("probs", NULL, NULL);
  int dim = cnclip_model_get_projection_dim (model);
  g_assert_cmpint (dim, ==, 64);

  float *image = g_new (float, n_images * dim), *text = g_new (float, n_texts * dim);
  g_assert_true (cnclip_encode_pixels (ctx, pixels, n_images, image, &error));
  g_assert_no_error (error);
  g_assert_true (cnclip_encode_token_ids (ctx, ids, n_texts, row, text, &error));
  g_assert_no_error (error);
  double di = test_max_abs_diff (image, want_image, (gsize) n_images * dim);
  double dt = test_max_abs_diff (text, want_text, (gsize) n_texts * dim);
  /* The logit scale comes from the checkpoint too; probabilities are computed here (in
   * double) so that this test depends on the weights only, not on score.c. */
  float *want_scale = test_golden_tensor ("logit_scale_exp", NULL, NULL);
  float scale = cnclip_model_get_logit_scale (model);
  g_assert_cmpfloat (fabs (scale - want_scale[0]), <=, 1e-5 * want_scale[0]);
  float *probs = golden_probs (image, n_images, text, n_texts, dim, scale);
  double dp = test_max_abs_diff (probs, want_probs, (gsize) n_images * n_texts);
  if (g_test_verbose ())
    g_printerr ("  %s: image %.2e text %.2e probs %.2e\n", f->file, di, dt, dp);
  g_assert_cmpfloat (di, <=, 1e-4);
  g_assert_cmpfloat (dt, <=, 1e-4);
  g_assert_cmpfloat (dp, <=, 1e-5);

  g_free (probs);
  g_free (want_scale);
  g_free (image);
  g_free (text);
  g_free (pixels);
  g_free (ids);
  g_free (want_image);
  g_free (want_text);
  g_free (want_probs);
  cnclip_context_free (ctx);
  cnclip_model_unref (model);
  g_free (dir);
}

/* ------------------------------------------------------------------------ */
/* Crafted files that must load                                              */

static void
assert_small_values (const CnclipTorchCheckpoint *ckpt)
{
  g_assert_cmpuint (ckpt->n_tensors, ==, 2);
  g_assert_cmpstr (ckpt->tensors[0].name, ==, "a");
  g_assert_cmpstr (ckpt->tensors[1].name, ==, "b");
  g_assert_cmpint (memcmp (ckpt->tensors[0].data, small_a, sizeof (small_a)), ==, 0);
  g_assert_cmpint (memcmp (ckpt->tensors[1].data, small_b, sizeof (small_b)), ==, 0);
}

/* Test that zip variants a careful writer may produce load: zip64 extra fields in the central
 * directory with saturated classic fields, no zip64 record at all, an archive comment, and
 * no alignment padding in local headers. */
static void
test_craft_zip_variants (void)
{
  static const struct
  {
    const char *name;
    ZOpts opts;
  } cases[] = {
    { "torch.save style", { .align = 64 } },
    { "zip64 extra fields", { .align = 64, .zip64_extra = TRUE } },
    { "saturated classic end record", { .align = 64, .saturate_eocd = TRUE } },
    { "no zip64 records", { .align = 64, .no_zip64 = TRUE } },
    { "archive comment", { .align = 64, .comment = "written by a test PK\x05\x06" } },
    { "4-byte alignment", { .align = 4 } },
    { "8-byte alignment and skew", { .align = 8, .skew = 8 } },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    gsize len;
    ZLayout layout;
    guint8 *zip = small_zip (small_specs, 2, &cases[i].opts, &len, &layout);
    CnclipTorchCheckpoint *ckpt = expect_parse_ok (cases[i].name, zip, len);
    assert_small_values (ckpt);
    g_assert_cmpstr (ckpt->prefix, ==, "ckpt");
    g_assert_cmpuint (ckpt->zip->cd_offset, ==, layout.cd_offset);
    g_assert_cmpuint (ckpt->zip->eocd_offset, ==, layout.eocd_offset);
    g_assert_cmpint (ckpt->zip->zip64, ==, !cases[i].opts.no_zip64);
    for (guint e = 0; e < 4; e++) {
      g_assert_cmpuint (ckpt->zip->entries[e].header_offset, ==, layout.header_offset[e]);
      g_assert_cmpuint (ckpt->zip->entries[e].data_offset, ==, layout.data_offset[e]);
    }
    cnclip_torch_checkpoint_free (ckpt);
    g_free (zip);
  }
}

/* Test that every storage class maps to its dtype and the values read back exactly, and that
 * _rebuild_parameter, an OrderedDict top level and a cn_clip style {'state_dict': ...} with
 * extra keys (numbers, strings, floats, lists, None) load. */
static void
test_craft_dtypes_and_containers (void)
{
  static const struct
  {
    const char *storage;
    CnclipDType dtype;
    gsize elsize;
  } kinds[] = {
    { "FloatStorage", CNCLIP_DTYPE_F32, 4 }, { "DoubleStorage", CNCLIP_DTYPE_F64, 8 },
    { "HalfStorage", CNCLIP_DTYPE_F16, 2 }, { "BFloat16Storage", CNCLIP_DTYPE_BF16, 2 },
    { "LongStorage", CNCLIP_DTYPE_I64, 8 }, { "IntStorage", CNCLIP_DTYPE_I32, 4 },
    { "CharStorage", CNCLIP_DTYPE_I8, 1 }, { "ByteStorage", CNCLIP_DTYPE_U8, 1 },
    { "BoolStorage", CNCLIP_DTYPE_BOOL, 1 },
  };
  /* 1.5 in each float format; 3 in each integer one. */
  static const guint8 f32[] = { 0, 0, 0xc0, 0x3f }, f64[] = { 0, 0, 0, 0, 0, 0, 0xf8, 0x3f };
  static const guint8 f16[] = { 0x00, 0x3e }, bf16[] = { 0xc0, 0x3f };
  static const guint8 i64[] = { 3, 0, 0, 0, 0, 0, 0, 0 }, i32[] = { 3, 0, 0, 0 }, i8[] = { 3 };
  static const guint8 *const values[] = { f32, f64, f16, bf16, i64, i32, i8, i8, i8 };

  for (gsize i = 0; i < G_N_ELEMENTS (kinds); i++) {
    TSpec spec = { "x", kinds[i].storage, "0", 1, 0, 0 };
    GByteArray *p = pb_state_dict (&spec, 1);
    const ZEntry entries[] = {
      { "m/data.pkl", p->data, p->len, 0 },
      { "m/data/0", values[i], kinds[i].elsize, 0 },
    };
    gsize len;
    guint8 *zip = make_zip (entries, 2, NULL, &len, NULL);
    CnclipTorchCheckpoint *ckpt = expect_parse_ok (kinds[i].storage, zip, len);
    g_assert_cmpint (ckpt->tensors[0].dtype, ==, kinds[i].dtype);
    g_assert_cmpint (ckpt->tensors[0].ndim, ==, 0);
    g_assert_cmpint (memcmp (ckpt->tensors[0].data, values[i], kinds[i].elsize), ==, 0);
    GArray *infos = cnclip_torch_checkpoint_to_hf (ckpt, NULL);
    const CnclipTensorInfo *info = &g_array_index (infos, CnclipTensorInfo, 0);
    if (i < 4)
      g_assert_cmpfloat (cnclip_tensor_get_float (info, 0), ==, 1.5f);
    g_array_free (infos, TRUE);
    cnclip_torch_checkpoint_free (ckpt);
    g_free (zip);
    g_byte_array_unref (p);
  }

  /* OrderedDict top level with a _rebuild_parameter wrapper (older transformers). */
  GByteArray *p = g_byte_array_new ();
  pb_op (p, 0x80);
  pb_op (p, 2);
  pb_global (p, "collections", "OrderedDict");
  pb_op (p, ')');
  pb_op (p, 'R');
  pb_op (p, '(');
  pb_str (p, "a");
  pb_global (p, "torch._utils", "_rebuild_parameter");
  pb_op (p, '(');
  pb_tensor (p, &small_specs[0]);
  pb_op (p, 0x88);
  pb_global (p, "collections", "OrderedDict");
  pb_op (p, ')');
  pb_op (p, 'R');
  pb_op (p, 't');
  pb_op (p, 'R');
  pb_str (p, "b");
  pb_tensor (p, &small_specs[1]);
  pb_op (p, 'u');
  pb_op (p, '.');
  gsize len;
  guint8 *zip = small_zip_with_pickle (p->data, p->len, NULL, &len, NULL);
  CnclipTorchCheckpoint *ckpt = expect_parse_ok ("OrderedDict + _rebuild_parameter", zip, len);
  assert_small_values (ckpt);
  g_assert_true (ckpt->state_dict_ordered);
  g_assert_false (ckpt->has_state_dict);
  cnclip_torch_checkpoint_free (ckpt);
  g_free (zip);
  g_byte_array_unref (p);

  /* {'epoch': 3, 'optimizer': {'lr': 0.5, 'betas': [0.9, None, True]}, 'name': 'x',
   *  'state_dict': {...}} */
  p = g_byte_array_new ();
  pb_op (p, 0x80);
  pb_op (p, 2);
  pb_op (p, '}');
  pb_op (p, '(');
  pb_str (p, "epoch");
  pb_int (p, 3);
  pb_str (p, "optimizer");
  pb_op (p, '}');
  pb_op (p, '(');
  pb_str (p, "lr");
  pb_op (p, 'G');
  app64 (p, GUINT64_FROM_BE (0x3fe0000000000000ull));
  pb_str (p, "betas");
  pb_op (p, ']');
  pb_op (p, '(');
  pb_int (p, -5);
  pb_op (p, 'N');
  pb_op (p, 0x88);
  pb_op (p, 'e');
  pb_op (p, 'u');
  pb_str (p, "name");
  pb_str (p, "x");
  pb_str (p, "state_dict");
  pb_op (p, '}');
  pb_op (p, '(');
  pb_str (p, "a");
  pb_tensor (p, &small_specs[0]);
  pb_str (p, "b");
  pb_tensor (p, &small_specs[1]);
  pb_op (p, 'u');
  pb_op (p, 'u');
  pb_op (p, '.');
  zip = small_zip_with_pickle (p->data, p->len, NULL, &len, NULL);
  ckpt = expect_parse_ok ("training checkpoint", zip, len);
  assert_small_values (ckpt);
  g_assert_true (ckpt->has_state_dict);
  g_assert_false (ckpt->state_dict_ordered);
  cnclip_torch_checkpoint_free (ckpt);
  g_free (zip);
  g_byte_array_unref (p);
}

/* Test that storages aligned to their element size but not to 64 bytes load, while a
 * storage that is not element-aligned is refused as unsupported (no unaligned views). */
static void
test_craft_alignment (void)
{
  gsize len;
  ZLayout layout;
  const ZOpts skew4 = { .align = 64, .skew = 4 }, skew2 = { .align = 64, .skew = 2 };
  guint8 *zip = small_zip (small_specs, 2, &skew4, &len, &layout);
  g_assert_cmpuint (layout.data_offset[1] % 64, ==, 4);
  CnclipTorchCheckpoint *ckpt = expect_parse_ok ("4-byte aligned", zip, len);
  assert_small_values (ckpt);
  cnclip_torch_checkpoint_free (ckpt);
  g_free (zip);

  zip = small_zip (small_specs, 2, &skew2, &len, &layout);
  g_assert_cmpuint (layout.data_offset[1] % 64, ==, 2);
  expect_parse_error ("2-byte aligned floats", zip, len, CNCLIP_ERROR_UNSUPPORTED, "not aligned");
  g_free (zip);

  const TSpec longs = { "l", "LongStorage", "0", 3, 0, 1, { 3 }, { 1 } };
  zip = small_zip (&longs, 1, &skew4, &len, &layout);
  expect_parse_error ("4-byte aligned int64", zip, len, CNCLIP_ERROR_UNSUPPORTED,
      "not aligned to its 8-byte elements");
  g_free (zip);
}

/* Test that compressed entries are refused with the re-save hint when they are needed
 * (data.pkl, a storage), while an unrelated compressed entry does not matter. */
static void
test_craft_compressed (void)
{
  GByteArray *p = pb_state_dict (small_specs, 2);
  for (int which = 0; which < 3; which++) {
    ZEntry entries[] = {
      { "ckpt/data.pkl", p->data, p->len, 0 },
      { "ckpt/data/0", (const guint8 *) small_a, sizeof (small_a), 0 },
      { "ckpt/data/1", (const guint8 *) small_b, sizeof (small_b), 0 },
      { "ckpt/extra.txt", (const guint8 *) "hello", 5, 0 },
    };
    entries[which == 2 ? 3 : which].method = 8;
    gsize len;
    guint8 *zip = make_zip (entries, 4, NULL, &len, NULL);
    if (which == 2) {
      CnclipTorchCheckpoint *ckpt = expect_parse_ok ("unused deflated entry", zip, len);
      assert_small_values (ckpt);
      g_assert_cmpuint (ckpt->zip->entries[3].method, ==, 8);
      cnclip_torch_checkpoint_free (ckpt);
    } else {
      char *msg = g_strdup_printf ("entry %s is compressed (method 8); re-save with torch.save "
          "or convert to safetensors", entries[which].name);
      expect_parse_error (entries[which].name, zip, len, CNCLIP_ERROR_UNSUPPORTED, msg);
      g_free (msg);
    }
    g_free (zip);
  }
  g_byte_array_unref (p);
}

/* Test that a pickle calling os.system("touch FILE") is refused as unsafe and that FILE does
 * not exist afterwards: nothing was executed. Also through cnclip_torch_open on a real file. */
static void
test_craft_os_system (void)
{
  char *dir = test_make_temp_dir ();
  char *victim = g_build_filename (dir, "pwned", NULL);
  char *cmd = g_strdup_printf ("touch %s", victim);
  static const char *const targets[][2] = {
    { "os", "system" }, { "posix", "system" }, { "builtins", "eval" }, { "subprocess", "call" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (targets); i++) {
    /* {'a': os.system('touch FILE')} */
    GByteArray *p = g_byte_array_new ();
    pb_op (p, 0x80);
    pb_op (p, 2);
    pb_op (p, '}');
    pb_str (p, "a");
    pb_global (p, targets[i][0], targets[i][1]);
    pb_str (p, cmd);
    pb_op (p, 0x85);
    pb_op (p, 'R');
    pb_op (p, 's');
    pb_op (p, '.');
    gsize len;
    guint8 *zip = small_zip_with_pickle (p->data, p->len, NULL, &len, NULL);
    char *expected = g_strdup_printf ("forbidden global '%s.%s'", targets[i][0], targets[i][1]);
    expect_parse_error (expected, zip, len, CNCLIP_ERROR_UNSAFE, expected);

    char *path = g_build_filename (dir, "evil.pt", NULL);
    g_assert_true (g_file_set_contents (path, (const char *) zip, len, NULL));
    GError *error = NULL;
    CnclipWeightFile *file = cnclip_torch_open (path, &error);
    g_assert_null (file);
    g_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_UNSAFE);
    g_assert_nonnull (strstr (error->message, path));       /* names the file */
    g_assert_nonnull (strstr (error->message, expected));
    g_clear_error (&error);
    g_free (path);
    g_free (expected);
    g_assert_false (g_file_test (victim, G_FILE_TEST_EXISTS));
    g_free (zip);
    g_byte_array_unref (p);
  }
  g_free (cmd);
  g_free (victim);
  g_free (dir);
}

#define B(s) (const guint8 *) (s), sizeof (s) - 1

typedef struct
{
  const char *name;
  const guint8 *pickle;          /* data.pkl bytes */
  gsize pickle_len;
  CnclipError code;
  const char *message_part;
} PickleCase;

/* Hostile data.pkl contents inside an otherwise valid checkpoint. */
static const PickleCase pickle_cases[] = {
  { "STACK_GLOBAL", B ("\x80\x02X\x02\0\0\0osX\x06\0\0\0system\x93."), CNCLIP_ERROR_UNSAFE,
    "STACK_GLOBAL" },
  { "INST", B ("\x80\x02(ios\nsystem\n."), CNCLIP_ERROR_UNSAFE, "INST" },
  { "OBJ", B ("\x80\x02(ccollections\nOrderedDict\no."), CNCLIP_ERROR_UNSAFE, "OBJ" },
  { "NEWOBJ", B ("\x80\x02" "ccollections\nOrderedDict\n)\x81."), CNCLIP_ERROR_UNSAFE, "NEWOBJ" },
  { "REDUCE on a storage class", B ("\x80\x02" "ctorch\nFloatStorage\n)R."), CNCLIP_ERROR_UNSAFE,
    "torch.FloatStorage" },
  { "BUILD on a plain dict", B ("\x80\x02}}b."), CNCLIP_ERROR_UNSAFE, "BUILD" },
  { "memo index out of range", B ("\x80\x02}h\x07."), CNCLIP_ERROR_FORMAT, "memo index 7" },
  { "LONG_BINGET out of range", B ("\x80\x02}j\x10\x27\0\0."), CNCLIP_ERROR_FORMAT,
    "memo index 10000" },
  { "BINUNICODE length beyond the data", B ("\x80\x02}X\xff\0\0\0abc"), CNCLIP_ERROR_FORMAT,
    "truncated" },
  { "invalid UTF-8 tensor name", B ("\x80\x02}X\x02\0\0\0\xff\xfeN."), CNCLIP_ERROR_FORMAT,
    "UTF-8" },
  { "protocol 4", B ("\x80\x04\x95\x05\0\0\0\0\0\0\0}."), CNCLIP_ERROR_UNSUPPORTED,
    "protocol 4" },
  { "top level is a list", B ("\x80\x02]."), CNCLIP_ERROR_FORMAT,
    "is a list, not a state dict" },
  { "value is not a tensor", B ("\x80\x02}X\x05\0\0\0epochK\x1es."), CNCLIP_ERROR_FORMAT,
    "'epoch' is an int, not a tensor" },
  { "key is not a string", B ("\x80\x02}K\x01K\x02s."), CNCLIP_ERROR_FORMAT,
    "key 0 is an int" },
  { "state_dict is a list", B ("\x80\x02}X\x0a\0\0\0state_dict]s."), CNCLIP_ERROR_FORMAT,
    "'state_dict' is a list" },
  { "no STOP", B ("\x80\x02}"), CNCLIP_ERROR_FORMAT, "no STOP" },
};

/* Test that hostile pickles inside a well-formed zip fail with the exact code, and that the
 * message names data.pkl. */
static void
test_craft_pickles (void)
{
  for (gsize i = 0; i < G_N_ELEMENTS (pickle_cases); i++) {
    const PickleCase *c = &pickle_cases[i];
    gsize len;
    guint8 *zip = small_zip_with_pickle (c->pickle, c->pickle_len, NULL, &len, NULL);
    expect_parse_error (c->name, zip, len, c->code, c->message_part);
    g_free (zip);
  }

  /* 100,000 MARKs and 100,000 nested lists. */
  for (int kind = 0; kind < 2; kind++) {
    gsize n = 100000;
    guint8 *pkl = g_malloc (n + 3);
    pkl[0] = 0x80;
    pkl[1] = 2;
    memset (pkl + 2, kind ? ']' : '(', n);
    pkl[n + 2] = '.';
    gsize len;
    guint8 *zip = small_zip_with_pickle (pkl, n + 3, NULL, &len, NULL);
    expect_parse_error (kind ? "100,000 nested lists" : "100,000 MARKs", zip, len,
        CNCLIP_ERROR_TOO_LARGE, "ckpt/data.pkl: pickle offset");
    g_free (zip);
    g_free (pkl);
  }
}

/* Test that a state dict of more than 100,000 entries is refused before anything is allocated
 * for it (the entries share one memoised key and tensor, so the pickle stays small). */
static void
test_craft_too_many_tensors (void)
{
  GByteArray *p = g_byte_array_new ();
  pb_op (p, 0x80);
  pb_op (p, 2);
  pb_op (p, '}');
  pb_str (p, "a");
  pb_op (p, 'q');
  pb_op (p, 1);
  pb_tensor (p, &small_specs[0]);
  pb_op (p, 'q');
  pb_op (p, 2);
  pb_op (p, 's');
  for (int batch = 0; batch < 21; batch++) {
    pb_op (p, '(');
    for (int k = 0; k < 4762; k++) {
      static const guint8 pair[] = { 'h', 1, 'h', 2 };
      g_byte_array_append (p, pair, 4);
    }
    pb_op (p, 'u');
  }
  pb_op (p, '.');
  gsize len;
  guint8 *zip = small_zip_with_pickle (p->data, p->len, NULL, &len, NULL);
  expect_parse_error ("100,003 entries", zip, len, CNCLIP_ERROR_TOO_LARGE,
      "100003 tensors (limit 100000)");
  g_free (zip);
  g_byte_array_unref (p);
}

/* Test that tensor records inconsistent with their storages fail: a missing storage entry
 * (key 99), a storage entry shorter than its declared size, views reaching past the storage,
 * duplicate names, and storages of the wrong size. */
static void
test_craft_tensor_records (void)
{
  static const struct
  {
    const char *name;
    TSpec spec;
    CnclipError code;
    const char *message_part;
  } cases[] = {
    { "missing storage key 99", { "a", "FloatStorage", "99", 6, 0, 2, { 2, 3 }, { 3, 1 } },
      CNCLIP_ERROR_FORMAT, "storage '99' (entry ckpt/data/99) is missing" },
    { "storage shorter than the tensor", { "a", "FloatStorage", "1", 6, 0, 2, { 2, 3 }, { 3, 1 } },
      CNCLIP_ERROR_FORMAT, "has 16 bytes, but 6 elements of F32 need 24" },
    { "storage longer than declared", { "a", "FloatStorage", "0", 4, 0, 1, { 4 }, { 1 } },
      CNCLIP_ERROR_FORMAT, "has 24 bytes, but 4 elements" },
    { "dtype changes the size", { "a", "DoubleStorage", "0", 6, 0, 1, { 6 }, { 1 } },
      CNCLIP_ERROR_FORMAT, "need 48" },
    { "view past the storage (offset)", { "a", "FloatStorage", "0", 6, 1, 2, { 2, 3 }, { 3, 1 } },
      CNCLIP_ERROR_FORMAT, "reaches element 6 of a storage of 6" },
    { "view past the storage (strides)", { "a", "FloatStorage", "0", 6, 0, 2, { 3, 3 }, { 2, 1 } },
      CNCLIP_ERROR_FORMAT, "reaches element 6" },
    { "view with a huge stride", { "a", "FloatStorage", "0", 6, 0, 2, { 2, 3 },
        { G_GINT64_CONSTANT (1) << 61, 1 } }, CNCLIP_ERROR_FORMAT, "reaches element" },
    { "9 dimensions", { "a", "FloatStorage", "0", 6, 0, 9, { 1, 1, 1, 1, 1, 1, 1, 2, 3 },
        { 6, 6, 6, 6, 6, 6, 6, 3, 1 } }, CNCLIP_ERROR_UNSUPPORTED, "9 dimensions" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    const TSpec specs[] = { cases[i].spec, small_specs[1] };
    gsize len;
    guint8 *zip = small_zip (specs, 2, NULL, &len, NULL);
    expect_parse_error (cases[i].name, zip, len, cases[i].code, cases[i].message_part);
    g_free (zip);
  }
  const TSpec dup[] = { small_specs[0], small_specs[0] };
  gsize len;
  guint8 *zip = small_zip (dup, 2, NULL, &len, NULL);
  expect_parse_error ("duplicate tensor", zip, len, CNCLIP_ERROR_FORMAT, "a appears twice");
  g_free (zip);

  /* Two names sharing one storage are fine (tied weights, q/k/v views). */
  const TSpec shared[] = {
    { "x", "FloatStorage", "0", 6, 0, 1, { 3 }, { 1 } },
    { "y", "FloatStorage", "0", 6, 3, 1, { 3 }, { 1 } },
  };
  zip = small_zip (shared, 2, NULL, &len, NULL);
  CnclipTorchCheckpoint *ckpt = expect_parse_ok ("shared storage", zip, len);
  g_assert_true (ckpt->tensors[1].data == ckpt->tensors[0].data + 12);
  g_assert_true (ckpt->tensors[0].entry == ckpt->tensors[1].entry);
  cnclip_torch_checkpoint_free (ckpt);
  g_free (zip);
}

/* Test that archives which are zips but not loadable torch checkpoints are refused: no
 * data.pkl, two data.pkl, a TorchScript archive, big-endian storages, a bad byteorder entry,
 * a data.pkl CRC mismatch; a CRC of 0 (torch's compute_crc32=False) is accepted. */
static void
test_craft_archives (void)
{
  GByteArray *p = pb_state_dict (small_specs, 2);
  const ZEntry a = { "ckpt/data/0", (const guint8 *) small_a, sizeof (small_a), 0 };
  const ZEntry b = { "ckpt/data/1", (const guint8 *) small_b, sizeof (small_b), 0 };
  const ZEntry pkl = { "ckpt/data.pkl", p->data, p->len, 0 };
  static const struct
  {
    const char *name;
    const char *extra;           /* an additional entry, or NULL */
    const char *extra_data;
    gboolean drop_pkl;
    CnclipError code;
    const char *message_part;
  } cases[] = {
    { "no data.pkl", NULL, NULL, TRUE, CNCLIP_ERROR_FORMAT, "without a data.pkl" },
    { "two data.pkl", "other/data.pkl", "\x80\x02}.", FALSE, CNCLIP_ERROR_FORMAT,
      "two pickles" },
    { "TorchScript", "ckpt/constants.pkl", "\x80\x02).", FALSE, CNCLIP_ERROR_UNSUPPORTED,
      "TorchScript" },
    { "big-endian", "ckpt/byteorder", "big", FALSE, CNCLIP_ERROR_UNSUPPORTED, "big-endian" },
    { "bad byteorder", "ckpt/byteorder", "middle", FALSE, CNCLIP_ERROR_FORMAT, "byteorder" },
    { "root data.pkl is not a folder's", "data.pkl", "\x80\x02}.", TRUE, CNCLIP_ERROR_FORMAT,
      "without a data.pkl" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    ZEntry entries[4];
    guint n = 0;
    if (!cases[i].drop_pkl)
      entries[n++] = pkl;
    entries[n++] = a;
    entries[n++] = b;
    if (cases[i].extra)
      entries[n++] = (ZEntry) { cases[i].extra, (const guint8 *) cases[i].extra_data,
          strlen (cases[i].extra_data), 0 };
    gsize len;
    guint8 *zip = make_zip (entries, n, NULL, &len, NULL);
    expect_parse_error (cases[i].name, zip, len, cases[i].code, cases[i].message_part);
    g_free (zip);
  }

  /* byteorder 'little' (torch >= 2) and a deeper folder are fine. */
  ZEntry little[] = {
    { "a/b/data.pkl", p->data, p->len, 0 },
    { "a/b/data/0", (const guint8 *) small_a, sizeof (small_a), 0 },
    { "a/b/data/1", (const guint8 *) small_b, sizeof (small_b), 0 },
    { "a/b/byteorder", (const guint8 *) "little", 6, 0 },
  };
  gsize len;
  guint8 *zip = make_zip (little, 4, NULL, &len, NULL);
  CnclipTorchCheckpoint *ckpt = expect_parse_ok ("byteorder little", zip, len);
  g_assert_cmpstr (ckpt->prefix, ==, "a/b");
  assert_small_values (ckpt);
  cnclip_torch_checkpoint_free (ckpt);
  g_free (zip);

  /* A local extra field running past the end of the file. */
  ZLayout layout;
  zip = small_zip (small_specs, 2, NULL, &len, &layout);
  put16 (zip + layout.header_offset[3] + 28, 0xffff);
  expect_parse_error ("local extra past the end", zip, len, CNCLIP_ERROR_FORMAT,
      "local header runs past the end");
  g_free (zip);

  /* data.pkl CRC: wrong -> corrupt; 0 -> not computed. */
  zip = small_zip (small_specs, 2, NULL, &len, &layout);
  guint8 *crc_field = zip + layout.central_offset[0] + 16;
  put32 (crc_field, get32 (crc_field) ^ 1);
  expect_parse_error ("data.pkl CRC mismatch", zip, len, CNCLIP_ERROR_FORMAT,
      "ckpt/data.pkl: CRC-32 mismatch");
  put32 (crc_field, 0);
  ckpt = expect_parse_ok ("CRC not computed", zip, len);
  assert_small_values (ckpt);
  cnclip_torch_checkpoint_free (ckpt);
  g_free (zip);
  g_byte_array_unref (p);
}

/* Test that a name that is invalid UTF-8 or contains NUL in the central directory and a
 * duplicate entry name are refused. */
static void
test_craft_zip_names (void)
{
  GByteArray *p = pb_state_dict (small_specs, 2);
  static const char *const bad[] = { "ckpt/data/\xff", "ckpt/da\xc3\x28ta" };
  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++) {
    const ZEntry entries[] = {
      { "ckpt/data.pkl", p->data, p->len, 0 },
      { "ckpt/data/0", (const guint8 *) small_a, sizeof (small_a), 0 },
      { "ckpt/data/1", (const guint8 *) small_b, sizeof (small_b), 0 },
      { bad[i], (const guint8 *) "x", 1, 0 },
    };
    gsize len;
    guint8 *zip = make_zip (entries, 4, NULL, &len, NULL);
    expect_parse_error ("invalid UTF-8 entry name", zip, len, CNCLIP_ERROR_FORMAT, "UTF-8");
    g_free (zip);
  }
  /* A NUL inside a name: write "ckpt/dataX0" and patch X in both headers. */
  const ZEntry nul[] = {
    { "ckpt/data.pkl", p->data, p->len, 0 },
    { "ckpt/dataX0", (const guint8 *) small_a, sizeof (small_a), 0 },
  };
  gsize len;
  ZLayout layout;
  guint8 *zip = make_zip (nul, 2, NULL, &len, &layout);
  zip[layout.central_offset[1] + 46 + 9] = 0;
  zip[layout.header_offset[1] + 30 + 9] = 0;
  expect_parse_error ("NUL in entry name", zip, len, CNCLIP_ERROR_FORMAT, "NUL");
  g_free (zip);

  const ZEntry dup[] = {
    { "ckpt/data.pkl", p->data, p->len, 0 },
    { "ckpt/data/0", (const guint8 *) small_a, sizeof (small_a), 0 },
    { "ckpt/data/0", (const guint8 *) small_a, sizeof (small_a), 0 },
  };
  zip = make_zip (dup, 3, NULL, &len, NULL);
  expect_parse_error ("duplicate entry", zip, len, CNCLIP_ERROR_FORMAT, "appears twice");
  g_free (zip);
  g_byte_array_unref (p);
}

/* Test that non-zip inputs are told apart: empty (FORMAT in memory, IO from the file), a
 * legacy torch.save pickle file and an old tar checkpoint (UNSUPPORTED with the re-save
 * hint), random bytes (FORMAT). */
static void
test_craft_not_zip (void)
{
  /* The legacy format starts with the pickled magic number 0x1950a86a20f9469cfc6c. */
  static const guint8 legacy[] = "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.";
  guint8 tar[512] = "model.pt";
  memcpy (tar + 257, "ustar", 5);
  const struct
  {
    const char *name;
    const guint8 *data;
    gsize len;
    CnclipError code;
    CnclipError open_code;
    const char *message_part;
  } cases[] = {
    { "empty", (const guint8 *) "", 0, CNCLIP_ERROR_FORMAT, CNCLIP_ERROR_IO, "empty" },
    { "legacy pickle", legacy, sizeof (legacy) - 1, CNCLIP_ERROR_UNSUPPORTED,
      CNCLIP_ERROR_UNSUPPORTED, "legacy (non-zip) torch.save format" },
    { "legacy tar", tar, sizeof (tar), CNCLIP_ERROR_UNSUPPORTED, CNCLIP_ERROR_UNSUPPORTED,
      "legacy" },
    { "text", (const guint8 *) "hello world", 11, CNCLIP_ERROR_FORMAT, CNCLIP_ERROR_FORMAT,
      "no zip signature" },
    { "3 bytes of a zip", (const guint8 *) "PK\3", 3, CNCLIP_ERROR_FORMAT, CNCLIP_ERROR_FORMAT,
      "no zip signature" },
    { "local header only", (const guint8 *) "PK\3\4\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
      26, CNCLIP_ERROR_FORMAT, CNCLIP_ERROR_FORMAT, "end-of-central-directory" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    expect_parse_error (cases[i].name, cases[i].data, cases[i].len, cases[i].code,
        cases[i].message_part);
    char *path = write_temp ("weights.pt", cases[i].data, cases[i].len);
    GError *error = NULL;
    CnclipWeightFile *file = cnclip_torch_open (path, &error);
    g_assert_null (file);
    g_assert_error (error, CNCLIP_ERROR, (int) cases[i].open_code);
    if (g_test_verbose ())
      g_printerr ("  open %s: %s\n", cases[i].name, error->message);
    g_clear_error (&error);
    g_free (path);
  }
  GError *error = NULL;
  g_assert_null (cnclip_torch_open ("/nonexistent/pytorch_model.bin", &error));
  g_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO);
  g_clear_error (&error);
}

/* ------------------------------------------------------------------------ */
/* The .bin fixture, broken in place                                         */

typedef struct
{
  guint8 *data;
  gsize len;
  gsize eocd;
  gsize z64;
  gsize cd;
  gsize cd_size;
  guint n;
} Bin;

static void
bin_load (Bin *b)
{
  b->data = load_fixture (&fixture_bin, &b->len);
  b->eocd = b->len - 22;
  g_assert_cmphex (get32 (b->data + b->eocd), ==, 0x06054b50);
  b->z64 = b->eocd - 20 - 56;
  g_assert_cmphex (get32 (b->data + b->z64), ==, 0x06064b50);
  b->cd = get32 (b->data + b->eocd + 16);
  b->cd_size = get32 (b->data + b->eocd + 12);
  b->n = b->data[b->eocd + 10] | (b->data[b->eocd + 11] << 8);
}

/* Offset of central entry @i. */
static gsize
bin_central (const Bin *b, guint i)
{
  gsize pos = b->cd;
  for (guint k = 0; k < i; k++)
    pos += 46 + (b->data[pos + 28] | (b->data[pos + 29] << 8));
  return pos;
}

/* Test that the fixture cut at many points (inside the first header, inside data.pkl, inside
 * storages, inside the central directory and the end records) fails with FORMAT. */
static void
test_bin_truncated (void)
{
  Bin b;
  bin_load (&b);
  const gsize cuts[] = { 0, 1, 3, 4, 20, 64, 5000, 10000, b.len / 2, b.cd, b.cd + 1, b.cd + 100,
    b.cd + b.cd_size - 1, b.z64, b.z64 + 30, b.eocd - 1, b.eocd, b.eocd + 10, b.len - 1 };
  for (gsize i = 0; i < G_N_ELEMENTS (cuts); i++) {
    char *name = g_strdup_printf ("cut at %" G_GSIZE_FORMAT, cuts[i]);
    expect_parse_error (name, b.data, cuts[i], CNCLIP_ERROR_FORMAT, NULL);
    g_free (name);
  }
  /* The same file with 30 bytes of junk at the end: the end record is no longer found. */
  guint8 *longer = g_malloc0 (b.len + 30);
  memcpy (longer, b.data, b.len);
  expect_parse_error ("trailing junk", longer, b.len + 30, CNCLIP_ERROR_FORMAT,
      "end-of-central-directory");
  g_free (longer);
  g_free (b.data);
}

typedef enum
{
  P16,
  P32,
  P64,
  COUNTS,                        /* both entry counts of the record (this disk, total) */
} Width;

typedef struct
{
  const char *name;
  int where;                     /* 0 classic EOCD, 1 zip64 EOCD, 2 central entry 5,
                                  * 3 local header of entry 5 */
  gsize field;                   /* byte offset in that record */
  Width width;
  gint64 value;                  /* absolute, or relative to the field when .relative */
  gboolean relative;
  int where2;                    /* a second patch (same value), -1 for none */
  gsize field2;
  Width width2;
  CnclipError code;
  const char *message_part;
} Patch;

#define NO2 -1, 0, P16

static const Patch patches[] = {
  { "central directory offset outside the file", 0, 16, P32, 0x7fffffff, FALSE, 1, 48, P64,
    CNCLIP_ERROR_FORMAT, "outside the file" },
  { "central directory size beyond the end", 0, 12, P32, 0x100000, FALSE, 1, 40, P64,
    CNCLIP_ERROR_FORMAT, "outside the file" },
  { "zip64 offset disagrees with the classic one", 1, 48, P64, 100, FALSE, NO2,
    CNCLIP_ERROR_FORMAT, "disagree" },
  { "entry count +1", 0, 0, COUNTS, 1, TRUE, 1, 0, COUNTS, CNCLIP_ERROR_FORMAT, "disagree" },
  { "entry count -1", 0, 0, COUNTS, -1, TRUE, 1, 0, COUNTS, CNCLIP_ERROR_FORMAT, "after its" },
  { "entry count huge", 0, 0, COUNTS, 0xfffe, FALSE, 1, 0, COUNTS, CNCLIP_ERROR_FORMAT,
    "cannot fit" },
  { "entry count per disk differs", 0, 8, P16, 3, FALSE, NO2, CNCLIP_ERROR_UNSUPPORTED,
    "multi-disk" },
  { "disk number", 0, 4, P16, 1, FALSE, NO2, CNCLIP_ERROR_UNSUPPORTED, "multi-disk" },
  { "zip64 locator points outside", 1, 56 + 8, P64, 0x7fffffffffff, FALSE, NO2,
    CNCLIP_ERROR_FORMAT, "outside the file" },
  { "zip64 record size lies", 1, 4, P64, 1 << 20, FALSE, NO2, CNCLIP_ERROR_FORMAT, "bad size" },
  { "local header offset outside the file", 2, 42, P32, 0x7ffffff0, FALSE, NO2,
    CNCLIP_ERROR_FORMAT, "no local header" },
  { "local header offset at a non-header", 2, 42, P32, 1, TRUE, NO2, CNCLIP_ERROR_FORMAT,
    "no local header" },
  { "local header offset saturated without zip64 extra", 2, 42, P32, 0xffffffff, FALSE, NO2,
    CNCLIP_ERROR_FORMAT, "no zip64 extra field" },
  { "local header names another file", 3, 30 + 13, P16, 'X', FALSE, NO2, CNCLIP_ERROR_FORMAT,
    "names another file" },
  { "entry sizes beyond the file", 2, 20, P32, 0x7fffffff, FALSE, 2, 24, P32,
    CNCLIP_ERROR_FORMAT, "runs outside the file data" },
  { "stored entry with compressed size != size", 2, 20, P32, 1, TRUE, NO2, CNCLIP_ERROR_FORMAT,
    "compressed size" },
  { "storage deflated (method 8)", 2, 10, P16, 8, FALSE, 3, 8, P16, CNCLIP_ERROR_UNSUPPORTED,
    "compressed (method 8)" },
  { "encrypted entry", 2, 8, P16, 0x0809, FALSE, NO2, CNCLIP_ERROR_UNSUPPORTED, "encrypted" },
  { "entry on another disk", 2, 34, P16, 2, FALSE, NO2, CNCLIP_ERROR_UNSUPPORTED,
    "another disk" },
  { "central name length overruns the directory", 2, 28, P16, 0xfff0, FALSE, NO2,
    CNCLIP_ERROR_FORMAT, "overruns" },
  { "central signature broken", 2, 0, P32, 0x02014b51, FALSE, NO2, CNCLIP_ERROR_FORMAT,
    "bad central directory entry signature" },
};

static void
apply_patch (const Bin *b, guint8 *data, int where, gsize field, Width width, gint64 value,
    gboolean relative)
{
  gsize base;
  switch (where) {
    case 0: base = b->eocd; break;
    case 1: base = b->z64; break;
    case 2: base = bin_central (b, 5); break;
    default: base = get32 (b->data + bin_central (b, 5) + 42); break;
  }
  if (width == COUNTS) {
    /* classic: u16 at 8 and 10; zip64: u64 at 24 and 32 */
    for (int k = 0; k < 2; k++)
      apply_patch (b, data, where, where == 0 ? 8 + 2 * k : 24 + 8 * k, where == 0 ? P16 : P64,
          value, relative);
    return;
  }
  guint8 *p = data + base + field;
  guint64 old = width == P16 ? (guint64) (p[0] | (p[1] << 8))
      : width == P32 ? get32 (p) : get32 (p) | ((guint64) get32 (p + 4) << 32);
  guint64 v = relative ? old + value : (guint64) value;
  if (width == P16)
    put16 (p, v);
  else if (width == P32)
    put32 (p, v);
  else
    put64 (p, v);
}

/* Test that lying end records, central directory entries and local headers (offsets and
 * sizes outside the file, wrong counts, compressed or encrypted entries, broken signatures)
 * are refused with the right code. */
static void
test_bin_patched (void)
{
  Bin b;
  bin_load (&b);
  /* Patched in place and restored: only the records at the end of the file
   * and entry 5's headers change. */
  guint8 *copy = g_memdup2 (b.data, b.len);
  gsize c5 = bin_central (&b, 5), l5 = get32 (b.data + c5 + 42);
  for (gsize i = 0; i < G_N_ELEMENTS (patches); i++) {
    const Patch *pt = &patches[i];
    apply_patch (&b, copy, pt->where, pt->field, pt->width, pt->value, pt->relative);
    if (pt->where2 >= 0)
      apply_patch (&b, copy, pt->where2, pt->field2, pt->width2, pt->value, pt->relative);
    check_parse_error (pt->name, copy, b.len, pt->code, pt->message_part);
    memcpy (copy + b.cd, b.data + b.cd, b.len - b.cd);
    memcpy (copy + l5, b.data + l5, 64);
  }
  g_assert_cmpint (memcmp (copy, b.data, b.len), ==, 0);
  g_free (copy);
  g_free (b.data);
}

/* Test that 2,000 random mutations of the fixture's data.pkl (with its CRC fixed up so the
 * unpickler sees them) and 2,000 of its central directory and end records never crash; when a
 * mutant still parses, every tensor lies inside the file and maps to HF names. */
static void
test_bin_mutations (void)
{
  Bin b;
  bin_load (&b);
  gsize pkl_off = 64, pkl_len = 9922;
  gsize crc_field = bin_central (&b, 0) + 16;
  GRand *rand = g_rand_new_with_seed (4242);
  guint parsed[2] = { 0, 0 }, failed[2] = { 0, 0 };
  guint8 *saved = g_malloc (b.len);
  memcpy (saved, b.data, b.len);

  for (int region = 0; region < 2; region++) {
    gsize start = region == 0 ? pkl_off : b.cd;
    gsize span = region == 0 ? pkl_len : b.len - b.cd;
    for (int iter = 0; iter < 2000; iter++) {
      int n_mut = g_rand_int_range (rand, 1, 5);
      gsize touched[5];
      for (int m = 0; m < n_mut; m++) {
        gsize at = start + g_rand_int_range (rand, 0, span);
        touched[m] = at;
        switch (g_rand_int_range (rand, 0, 4)) {
          case 0: b.data[at] ^= 1u << g_rand_int_range (rand, 0, 8); break;
          case 1: b.data[at] = g_rand_int_range (rand, 0, 256); break;
          case 2: b.data[at] = 0xff; break;
          default: b.data[at] = 0; break;
        }
      }
      if (region == 0)
        put32 (b.data + crc_field, ref_crc32 (b.data + pkl_off, pkl_len));
      GError *error = NULL;
      CnclipTorchCheckpoint *ckpt = cnclip_torch_checkpoint_parse (b.data, b.len, &error);
      if (ckpt == NULL) {
        g_assert_nonnull (error);
        g_assert_true (error->domain == CNCLIP_ERROR);
        g_clear_error (&error);
        failed[region]++;
      } else {
        parsed[region]++;
        for (guint t = 0; t < ckpt->n_tensors; t++) {
          const CnclipTorchTensor *tt = &ckpt->tensors[t];
          g_assert_true (tt->data >= b.data && tt->data <= b.data + b.len);
        }
        GArray *infos = cnclip_torch_checkpoint_to_hf (ckpt, &error);
        if (infos)
          g_array_free (infos, TRUE);
        g_clear_error (&error);
        cnclip_torch_checkpoint_free (ckpt);
      }
      if (region == 1) {
        /* Also the unpickler alone on a mutated copy of data.pkl with insertions/cuts. */
        gsize cut = g_rand_int_range (rand, 0, pkl_len + 1);
        CnclipPickle *pk = cnclip_pickle_load (saved + pkl_off, cut, &error);
        g_assert_true (pk != NULL || error != NULL);
        g_clear_error (&error);
        cnclip_pickle_free (pk);
      }
      for (int m = 0; m < n_mut; m++)
        b.data[touched[m]] = saved[touched[m]];
      if (region == 0)
        memcpy (b.data + crc_field, saved + crc_field, 4);
    }
  }
  if (g_test_verbose ())
    g_printerr ("  pickle mutants: %u parsed, %u refused; directory mutants: %u parsed, %u "
        "refused\n", parsed[0], failed[0], parsed[1], failed[1]);
  /* Both outcomes occur, so the loop exercises the parser beyond its first check. */
  g_assert_cmpuint (parsed[0], >, 0);
  g_assert_cmpuint (failed[0], >, 0);
  g_assert_cmpuint (parsed[1], >, 0);
  g_assert_cmpuint (failed[1], >, 0);
  g_assert_cmpint (memcmp (saved, b.data, b.len), ==, 0);
  g_rand_free (rand);
  g_free (saved);
  g_free (b.data);
}

/* ------------------------------------------------------------------------ */
/* Official names                                                            */

/* Test that the cn_clip -> HF mapping of a crafted official state dict strips 'module.', drops
 * the pooler, makes q/k/v views of in_proj rows, transposes the projections and passes unknown
 * keys through; wrong in_proj and projection shapes give CNCLIP_ERROR_SHAPE. */
static void
test_official_mapping (void)
{
  /* Storage 0: 24 floats 0..23. W = 2: in_proj_weight [6, 2], in_proj_bias [6],
   * text_projection [3, 4] (H = 3, P = 4, transposed to [4, 3]). */
  float s0[24];
  for (int i = 0; i < 24; i++)
    s0[i] = i;
  static const TSpec specs[] = {
    { "module.visual.transformer.resblocks.7.attn.in_proj_weight", "FloatStorage", "0", 24, 0,
      2, { 6, 2 }, { 2, 1 } },
    { "module.visual.transformer.resblocks.7.attn.in_proj_bias", "FloatStorage", "0", 24, 12,
      1, { 6 }, { 1 } },
    { "module.text_projection", "FloatStorage", "0", 24, 0, 2, { 3, 4 }, { 4, 1 } },
    { "module.visual.transformer.resblocks.7.mlp.c_fc.bias", "FloatStorage", "0", 24, 0, 1,
      { 4 }, { 1 } },
    { "module.bert.pooler.dense.weight", "FloatStorage", "0", 24, 0, 1, { 4 }, { 1 } },
    { "module.bert.encoder.layer.0.output.dense.bias", "FloatStorage", "0", 24, 0, 1, { 4 },
      { 1 } },
    { "module.visual.ln_post.bias", "FloatStorage", "0", 24, 0, 1, { 4 }, { 1 } },
    { "module.something.new", "FloatStorage", "0", 24, 0, 1, { 4 }, { 1 } },
    { "module.visual.transformer.resblocks.x.attn.in_proj_bias", "FloatStorage", "0", 24, 0, 1,
      { 4 }, { 1 } },
  };
  GByteArray *p = pb_state_dict (specs, G_N_ELEMENTS (specs));
  const ZEntry entries[] = {
    { "e/data.pkl", p->data, p->len, 0 },
    { "e/data/0", (const guint8 *) s0, sizeof (s0), 0 },
  };
  gsize len;
  guint8 *zip = make_zip (entries, 2, NULL, &len, NULL);
  CnclipTorchCheckpoint *ckpt = expect_parse_ok ("official names", zip, len);
  GError *error = NULL;
  GArray *infos = cnclip_torch_checkpoint_to_hf (ckpt, &error);
  g_assert_no_error (error);

  static const struct
  {
    const char *name;
    int ndim;
    gint64 shape[2];
    gint64 strides[2];
    int first;                   /* value of element 0 */
    int second;                  /* value of element 1 */
  } expected[] = {
    { "vision_model.encoder.layers.7.self_attn.q_proj.weight", 2, { 2, 2 }, { 2, 1 }, 0, 1 },
    { "vision_model.encoder.layers.7.self_attn.k_proj.weight", 2, { 2, 2 }, { 2, 1 }, 4, 5 },
    { "vision_model.encoder.layers.7.self_attn.v_proj.weight", 2, { 2, 2 }, { 2, 1 }, 8, 9 },
    { "vision_model.encoder.layers.7.self_attn.q_proj.bias", 1, { 2 }, { 1 }, 12, 13 },
    { "vision_model.encoder.layers.7.self_attn.k_proj.bias", 1, { 2 }, { 1 }, 14, 15 },
    { "vision_model.encoder.layers.7.self_attn.v_proj.bias", 1, { 2 }, { 1 }, 16, 17 },
    { "text_projection.weight", 2, { 4, 3 }, { 1, 4 }, 0, 4 },
    { "vision_model.encoder.layers.7.mlp.fc1.bias", 1, { 4 }, { 1 }, 0, 1 },
    { "text_model.encoder.layer.0.output.dense.bias", 1, { 4 }, { 1 }, 0, 1 },
    { "vision_model.post_layernorm.bias", 1, { 4 }, { 1 }, 0, 1 },
    { "something.new", 1, { 4 }, { 1 }, 0, 1 },
    { "visual.transformer.resblocks.x.attn.in_proj_bias", 1, { 4 }, { 1 }, 0, 1 },
  };
  g_assert_cmpuint (infos->len, ==, G_N_ELEMENTS (expected));
  for (guint i = 0; i < infos->len; i++) {
    const CnclipTensorInfo *t = &g_array_index (infos, CnclipTensorInfo, i);
    g_assert_cmpstr (t->name, ==, expected[i].name);
    g_assert_cmpint (t->ndim, ==, expected[i].ndim);
    gint64 n = 1;
    for (int k = 0; k < t->ndim; k++) {
      g_assert_cmpint (t->shape[k], ==, expected[i].shape[k]);
      g_assert_cmpint (t->strides[k], ==, expected[i].strides[k]);
      n *= t->shape[k];
    }
    g_assert_cmpint (t->n_elements, ==, n);
    g_assert_cmpint (t->contiguous, ==, expected[i].strides[0] != 1 || t->ndim == 1);
    g_assert_cmpfloat (cnclip_tensor_get_float (t, 0), ==, expected[i].first);
    g_assert_cmpfloat (cnclip_tensor_get_float (t, 1), ==, expected[i].second);
  }
  g_array_free (infos, TRUE);
  cnclip_torch_checkpoint_free (ckpt);
  g_free (zip);
  g_byte_array_unref (p);

  static const struct
  {
    TSpec spec;
    const char *message_part;
  } bad[] = {
    { { "visual.transformer.resblocks.0.attn.in_proj_weight", "FloatStorage", "0", 24, 0, 2,
        { 4, 2 }, { 2, 1 } }, "[3W, W]" },
    { { "visual.transformer.resblocks.0.attn.in_proj_weight", "FloatStorage", "0", 24, 0, 2,
        { 6, 4 }, { 4, 1 } }, "[3W, W]" },
    { { "visual.transformer.resblocks.0.attn.in_proj_bias", "FloatStorage", "0", 24, 0, 1,
        { 5 }, { 1 } }, "[3W]" },
    { { "visual.transformer.resblocks.0.attn.in_proj_bias", "FloatStorage", "0", 24, 0, 2,
        { 3, 2 }, { 2, 1 } }, "[3W]" },
    { { "visual.proj", "FloatStorage", "0", 24, 0, 1, { 4 }, { 1 } }, "expected 2" },
    { { "module.text_projection", "FloatStorage", "0", 24, 0, 3, { 2, 3, 4 }, { 12, 4, 1 } },
      "expected 2" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++) {
    GByteArray *bp = pb_state_dict (&bad[i].spec, 1);
    const ZEntry be[] = {
      { "e/data.pkl", bp->data, bp->len, 0 },
      { "e/data/0", (const guint8 *) s0, sizeof (s0), 0 },
    };
    zip = make_zip (be, 2, NULL, &len, NULL);
    ckpt = expect_parse_ok (bad[i].spec.name, zip, len);
    infos = cnclip_torch_checkpoint_to_hf (ckpt, &error);
    g_assert_null (infos);
    g_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_SHAPE);
    g_assert_nonnull (strstr (error->message, bad[i].message_part));
    g_clear_error (&error);
    cnclip_torch_checkpoint_free (ckpt);
    g_free (zip);
    g_byte_array_unref (bp);
  }
}

/* Test that HF-named files pass through unchanged except for a leading 'module.', and that a
 * tensor named 'state_dict' does not make the file look like a training checkpoint. */
static void
test_hf_names_passthrough (void)
{
  static const TSpec specs[] = {
    { "module.text_model.pooler.dense.bias", "FloatStorage", "0", 6, 0, 1, { 6 }, { 1 } },
    { "state_dict", "FloatStorage", "1", 4, 0, 1, { 4 }, { 1 } },
    { "logit_scale", "FloatStorage", "0", 6, 2, 0, { 0 }, { 0 } },
  };
  gsize len;
  guint8 *zip = small_zip (specs, 3, NULL, &len, NULL);
  CnclipTorchCheckpoint *ckpt = expect_parse_ok ("HF names", zip, len);
  g_assert_false (ckpt->has_state_dict);
  GError *error = NULL;
  GArray *infos = cnclip_torch_checkpoint_to_hf (ckpt, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (infos->len, ==, 3);
  g_assert_cmpstr (g_array_index (infos, CnclipTensorInfo, 0).name, ==,
      "text_model.pooler.dense.bias");
  g_assert_cmpstr (g_array_index (infos, CnclipTensorInfo, 1).name, ==, "state_dict");
  g_assert_cmpstr (g_array_index (infos, CnclipTensorInfo, 2).name, ==, "logit_scale");
  g_assert_cmpfloat (cnclip_tensor_get_float (&g_array_index (infos, CnclipTensorInfo, 2), 0),
      ==, 2.0f);
  g_array_free (infos, TRUE);
  cnclip_torch_checkpoint_free (ckpt);
  g_free (zip);
}

/* Test that cnclip_strides_are_contiguous follows torch: size-1 dimensions and empty tensors
 * never break contiguity. */
static void
test_contiguity (void)
{
  static const struct
  {
    int ndim;
    gint64 shape[3];
    gint64 strides[3];
    gboolean contiguous;
  } cases[] = {
    { 0, { 0 }, { 0 }, TRUE },
    { 1, { 5 }, { 1 }, TRUE },
    { 1, { 5 }, { 2 }, FALSE },
    { 1, { 1 }, { 7 }, TRUE },
    { 2, { 1, 512 }, { 512, 1 }, TRUE },
    { 2, { 1, 512 }, { 1, 1 }, TRUE },
    { 2, { 64, 128 }, { 1, 64 }, FALSE },
    { 2, { 64, 1 }, { 1, 64 }, TRUE },
    { 3, { 2, 0, 3 }, { 9, 9, 9 }, TRUE },
    { 3, { 2, 3, 4 }, { 12, 4, 1 }, TRUE },
    { 3, { 2, 3, 4 }, { 13, 4, 1 }, FALSE },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    g_assert_cmpint (cnclip_strides_are_contiguous (cases[i].ndim, cases[i].shape,
            cases[i].strides), ==, cases[i].contiguous);
}

/* Test that the library CRC-32 equals the bitwise reference on awkward lengths and alignments,
 * and that chained calls equal one call. */
static void
test_crc32 (void)
{
  guint8 buf[300];
  for (gsize i = 0; i < sizeof (buf); i++)
    buf[i] = (guint8) (i * 37 + 11);
  g_assert_cmphex (cnclip_crc32 (0, "123456789", 9), ==, 0xcbf43926);
  g_assert_cmphex (cnclip_crc32 (0, NULL, 0), ==, 0);
  for (gsize off = 0; off < 9; off++)
    for (gsize n = 0; n < 40; n++)
      g_assert_cmphex (cnclip_crc32 (0, buf + off, n), ==, ref_crc32 (buf + off, n));
  g_assert_cmphex (cnclip_crc32 (cnclip_crc32 (0, buf, 123), buf + 123, 177), ==,
      ref_crc32 (buf, 300));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/torch/crc32", test_crc32);
  g_test_add_func ("/torch/contiguity", test_contiguity);
  g_test_add_data_func ("/torch/fixture/bin/zip", &fixture_bin, test_fixture_zip);
  g_test_add_data_func ("/torch/fixture/official/zip", &fixture_official, test_fixture_zip);
  g_test_add_data_func ("/torch/fixture/bin/pickle", &fixture_bin, test_fixture_pickle);
  g_test_add_data_func ("/torch/fixture/official/pickle", &fixture_official, test_fixture_pickle);
  g_test_add_data_func ("/torch/fixture/bin/tensors", &fixture_bin, test_fixture_tensors);
  g_test_add_data_func ("/torch/fixture/official/tensors", &fixture_official,
      test_fixture_tensors);
  g_test_add_data_func ("/torch/fixture/bin/values", &fixture_bin, test_fixture_values);
  g_test_add_data_func ("/torch/fixture/official/values", &fixture_official,
      test_fixture_values);
  g_test_add_data_func ("/torch/fixture/bin/views", &fixture_bin, test_fixture_views);
  g_test_add_data_func ("/torch/fixture/official/views", &fixture_official, test_fixture_views);
  g_test_add_func ("/torch/fixture/crc", test_fixture_crc);
  g_test_add_data_func ("/torch/model/bin/golden", &fixture_bin, test_model_golden);
  g_test_add_data_func ("/torch/model/official/golden", &fixture_official, test_model_golden);
  g_test_add_func ("/torch/craft/zip-variants", test_craft_zip_variants);
  g_test_add_func ("/torch/craft/dtypes-and-containers", test_craft_dtypes_and_containers);
  g_test_add_func ("/torch/craft/alignment", test_craft_alignment);
  g_test_add_func ("/torch/craft/compressed", test_craft_compressed);
  g_test_add_func ("/torch/craft/os-system", test_craft_os_system);
  g_test_add_func ("/torch/craft/pickles", test_craft_pickles);
  g_test_add_func ("/torch/craft/tensor-records", test_craft_tensor_records);
  g_test_add_func ("/torch/craft/too-many-tensors", test_craft_too_many_tensors);
  g_test_add_func ("/torch/craft/archives", test_craft_archives);
  g_test_add_func ("/torch/craft/zip-names", test_craft_zip_names);
  g_test_add_func ("/torch/craft/not-zip", test_craft_not_zip);
  g_test_add_func ("/torch/bin/truncated", test_bin_truncated);
  g_test_add_func ("/torch/bin/patched", test_bin_patched);
  g_test_add_func ("/torch/bin/mutations", test_bin_mutations);
  g_test_add_func ("/torch/official/mapping", test_official_mapping);
  g_test_add_func ("/torch/hf-names", test_hf_names_passthrough);
  return g_test_run ();
}
