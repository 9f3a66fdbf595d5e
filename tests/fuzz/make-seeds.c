/* make-seeds.c: writes the seed corpora of the fuzz targets.
 *
 * Usage: make-seeds TEST_DATA_DIR OUT_DIR
 * (from the source root: build-fuzz/tests/fuzz/make-seeds tests/data tests/fuzz/corpus)
 *
 * The seeds are committed (tests/fuzz/corpus/NAME/); this program is how
 * they were made and is run again by hand when a format grows. It crafts
 * tiny valid files that reach deep into each parser: safetensors with every
 * dtype, torch.save zips in the layout of FIXTURES.md 9 (HF and official
 * cn_clip names, views, both top-level shapes), raw data.pkl pickles, the
 * fixture configs, a spread of tokenizer cases and index records. Nothing
 * here runs at test time.
 */
#include "config.h"

#include <string.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "torchzip.h"

static const char *out_dir;

static void
write_seed (const char *target, const char *name, const void *data, gsize size)
{
  char *dir = g_build_filename (out_dir, target, NULL);
  g_mkdir_with_parents (dir, 0755);
  char *path = g_build_filename (dir, name, NULL);
  GError *error = NULL;
  if (!g_file_set_contents (path, data, (gssize) size, &error))
    g_error ("%s", error->message);
  g_free (path);
  g_free (dir);
}

static void
put_le (GByteArray *b, guint64 v, int bytes)
{
  for (int i = 0; i < bytes; i++) {
    guint8 c = (guint8) (v >> (8 * i));
    g_byte_array_append (b, &c, 1);
  }
}

static void
append (GByteArray *b, const void *data, gsize size)
{
  g_byte_array_append (b, data, (guint) size);
}

/* ------------------------------------------------------------------------ */
/* safetensors                                                              */

static void
safetensors_seed (const char *name, const char *header, const void *data, gsize size)
{
  GByteArray *b = g_byte_array_new ();
  put_le (b, strlen (header), 8);
  append (b, header, strlen (header));
  if (size)
    append (b, data, size);
  write_seed ("safetensors", name, b->data, b->len);
  g_byte_array_unref (b);
}

static void
make_safetensors (void)
{
  const float f[10] = { 0, 1, -2, 3.5f, 4, 5, 6, 7, 8, 9 };
  safetensors_seed ("two-f32.safetensors",
      "{\"__metadata__\":{\"format\":\"pt\"},"
      "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
      "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[24,40]}}", f, sizeof f);

  /* every dtype, packed one after the other */
  guint8 raw[64];
  for (guint i = 0; i < sizeof raw; i++)
    raw[i] = (guint8) (i * 37 + 11);
  safetensors_seed ("dtypes.safetensors",
      "{\"h\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,8]},"
      "\"bf\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[8,16]},"
      "\"d\":{\"dtype\":\"F64\",\"shape\":[1,2],\"data_offsets\":[16,32]},"
      "\"l\":{\"dtype\":\"I64\",\"shape\":[1,2],\"data_offsets\":[32,48]},"
      "\"i\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[48,56]},"
      "\"c\":{\"dtype\":\"I8\",\"shape\":[2],\"data_offsets\":[56,58]},"
      "\"u\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[58,60]},"
      "\"t\":{\"dtype\":\"BOOL\",\"shape\":[2,2],\"data_offsets\":[60,64]}}", raw, sizeof raw);

  /* a 0-d scalar, an empty tensor, a dtype the library cannot use */
  safetensors_seed ("scalar-empty-unusable.safetensors",
      "{\"logit_scale\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
      "\"empty\":{\"dtype\":\"F32\",\"shape\":[0,4],\"data_offsets\":[4,4]},"
      "\"f8\":{\"dtype\":\"F8_E4M3\",\"shape\":[4],\"data_offsets\":[4,8]}}", f, 8);

  /* the header padded with spaces to 8 bytes, as the Python writer does */
  safetensors_seed ("padded.safetensors",
      "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}       ", f, 4);
  safetensors_seed ("empty-header.safetensors", "{}", NULL, 0);
}

/* ------------------------------------------------------------------------ */
/* pickles (protocol 2, as torch.save writes them)                          */

enum
{
  OP_MARK = '(', OP_STOP = '.', OP_BINFLOAT = 'G', OP_BININT = 'J', OP_BININT1 = 'K',
  OP_BININT2 = 'M', OP_NONE = 'N', OP_BINPERSID = 'Q', OP_REDUCE = 'R', OP_BINUNICODE = 'X',
  OP_APPEND = 'a', OP_BUILD = 'b', OP_GLOBAL = 'c', OP_APPENDS = 'e', OP_BINGET = 'h',
  OP_LONG_BINGET = 'j', OP_BINPUT = 'q', OP_LONG_BINPUT = 'r', OP_SETITEM = 's', OP_TUPLE = 't',
  OP_SETITEMS = 'u', OP_EMPTY_DICT = '}', OP_EMPTY_LIST = ']', OP_EMPTY_TUPLE = ')',
  OP_PROTO = 0x80, OP_TUPLE1 = 0x85, OP_TUPLE2 = 0x86, OP_TUPLE3 = 0x87, OP_NEWTRUE = 0x88,
  OP_NEWFALSE = 0x89, OP_LONG1 = 0x8a,
};

static void
op (GByteArray *p, guint8 code)
{
  g_byte_array_append (p, &code, 1);
}

static void
p_str (GByteArray *p, const char *s)
{
  op (p, OP_BINUNICODE);
  put_le (p, strlen (s), 4);
  append (p, s, strlen (s));
}

static void
p_int (GByteArray *p, gint64 v)
{
  if (v >= 0 && v < 256) {
    op (p, OP_BININT1);
    put_le (p, (guint64) v, 1);
  } else if (v >= 0 && v < 65536) {
    op (p, OP_BININT2);
    put_le (p, (guint64) v, 2);
  } else if (v >= G_MININT32 && v <= G_MAXINT32) {
    op (p, OP_BININT);
    put_le (p, (guint64) v, 4);
  } else {
    op (p, OP_LONG1);
    put_le (p, 8, 1);
    put_le (p, (guint64) v, 8);
  }
}

static void
p_global (GByteArray *p, const char *module, const char *name)
{
  op (p, OP_GLOBAL);
  append (p, module, strlen (module));
  op (p, '\n');
  append (p, name, strlen (name));
  op (p, '\n');
}

static void
p_ints (GByteArray *p, const gint64 *v, int n)
{
  static const guint8 small[] = { OP_EMPTY_TUPLE, OP_TUPLE1, OP_TUPLE2, OP_TUPLE3 };
  if (n > 3)
    op (p, OP_MARK);
  for (int i = 0; i < n; i++)
    p_int (p, v[i]);
  op (p, n > 3 ? OP_TUPLE : small[n]);
}

typedef struct
{
  const char *name;
  const char *storage;           /* "FloatStorage", "LongStorage", ... */
  const char *key;
  gint64 numel;                  /* of the whole storage */
  gint64 offset;
  int ndim;
  gint64 shape[4];
  gint64 stride[4];
  gboolean parameter;            /* wrapped in _rebuild_parameter */
} Tensor;

/* _rebuild_tensor_v2 (storage, offset, size, stride, False, OrderedDict ()) */
static void
p_tensor (GByteArray *p, const Tensor *t, const char *location)
{
  if (t->parameter)
    p_global (p, "torch._utils", "_rebuild_parameter");
  p_global (p, "torch._utils", "_rebuild_tensor_v2");
  op (p, OP_MARK);
  op (p, OP_MARK);
  p_str (p, "storage");
  p_global (p, "torch", t->storage);
  p_str (p, t->key);
  p_str (p, location);
  p_int (p, t->numel);
  op (p, OP_TUPLE);
  op (p, OP_BINPERSID);
  p_int (p, t->offset);
  p_ints (p, t->shape, t->ndim);
  p_ints (p, t->stride, t->ndim);
  op (p, OP_NEWFALSE);
  p_global (p, "collections", "OrderedDict");
  op (p, OP_EMPTY_TUPLE);
  op (p, OP_REDUCE);
  op (p, OP_TUPLE);
  op (p, OP_REDUCE);
  if (t->parameter) {
    /* _rebuild_parameter (tensor, requires_grad, OrderedDict ()) */
    op (p, OP_NEWTRUE);
    p_global (p, "collections", "OrderedDict");
    op (p, OP_EMPTY_TUPLE);
    op (p, OP_REDUCE);
    op (p, OP_TUPLE3);
    op (p, OP_REDUCE);
  }
}

/* {name: tensor, ...} as a plain dict or an OrderedDict */
static void
p_state_dict (GByteArray *p, const Tensor *t, guint n, gboolean ordered, const char *location)
{
  if (ordered) {
    p_global (p, "collections", "OrderedDict");
    op (p, OP_BINPUT);
    put_le (p, 0, 1);
    op (p, OP_EMPTY_TUPLE);
    op (p, OP_REDUCE);
  } else {
    op (p, OP_EMPTY_DICT);
  }
  op (p, OP_BINPUT);
  put_le (p, 1, 1);
  op (p, OP_MARK);
  for (guint i = 0; i < n; i++) {
    p_str (p, t[i].name);
    p_tensor (p, &t[i], location);
  }
  op (p, OP_SETITEMS);
}

/* ------------------------------------------------------------------------ */
/* zip, in the torch.save layout (FIXTURES.md 9.1)                          */

typedef struct
{
  char *name;
  GBytes *data;
  guint32 crc;
} ZipEntry;

static guint8 *
zip_build (const ZipEntry *e, guint n, gboolean torch_style, gsize *size)
{
  GByteArray *b = g_byte_array_new ();
  guint64 *offsets = g_new (guint64, n);
  for (guint i = 0; i < n; i++) {
    gsize len;
    const guint8 *data = g_bytes_get_data (e[i].data, &len);
    gsize name_len = strlen (e[i].name);
    offsets[i] = b->len;
    /* torch.save aligns data to 64 bytes with an 'FB' extra field of 'Z's (the
     * loader needs aligned storages); the plain variant keeps that but has
     * sizes and CRC in the local header, no data descriptors and no zip64. */
    gsize start = b->len + 30 + name_len + 4;
    gsize pad = (64 - start % 64) % 64;
    put_le (b, 0x04034b50, 4);
    put_le (b, torch_style ? 0 : 20, 2);
    put_le (b, torch_style ? 0x0808 : 0, 2);
    put_le (b, 0, 2);            /* stored */
    put_le (b, 0, 4);            /* time, date */
    put_le (b, torch_style ? 0 : e[i].crc, 4);
    put_le (b, torch_style ? 0 : len, 4);
    put_le (b, torch_style ? 0 : len, 4);
    put_le (b, name_len, 2);
    put_le (b, 4 + pad, 2);
    append (b, e[i].name, name_len);
    put_le (b, 0x4246, 2);
    put_le (b, pad, 2);
    for (gsize k = 0; k < pad; k++)
      op (b, 'Z');
    append (b, data, len);
    if (torch_style) {
      put_le (b, 0x08074b50, 4);
      put_le (b, e[i].crc, 4);
      put_le (b, len, 4);
      put_le (b, len, 4);
    }
  }
  guint64 cd_offset = b->len;
  for (guint i = 0; i < n; i++) {
    gsize len = g_bytes_get_size (e[i].data);
    put_le (b, 0x02014b50, 4);
    put_le (b, torch_style ? 0 : 20, 2);
    put_le (b, torch_style ? 0 : 20, 2);
    put_le (b, torch_style ? 0x0808 : 0, 2);
    put_le (b, 0, 2);
    put_le (b, 0, 4);
    put_le (b, e[i].crc, 4);
    put_le (b, len, 4);
    put_le (b, len, 4);
    put_le (b, strlen (e[i].name), 2);
    put_le (b, 0, 2);            /* extra */
    put_le (b, 0, 2);            /* comment */
    put_le (b, 0, 2);            /* disk */
    put_le (b, 0, 2);            /* internal attributes */
    put_le (b, 0, 4);            /* external attributes */
    put_le (b, offsets[i], 4);
    append (b, e[i].name, strlen (e[i].name));
  }
  guint64 cd_size = b->len - cd_offset;
  if (torch_style) {
    guint64 z64 = b->len;
    put_le (b, 0x06064b50, 4);
    put_le (b, 44, 8);
    put_le (b, 45, 2);
    put_le (b, 45, 2);
    put_le (b, 0, 4);
    put_le (b, 0, 4);
    put_le (b, n, 8);
    put_le (b, n, 8);
    put_le (b, cd_size, 8);
    put_le (b, cd_offset, 8);
    put_le (b, 0x07064b50, 4);
    put_le (b, 0, 4);
    put_le (b, z64, 8);
    put_le (b, 1, 4);
  }
  put_le (b, 0x06054b50, 4);
  put_le (b, 0, 2);
  put_le (b, 0, 2);
  put_le (b, n, 2);
  put_le (b, n, 2);
  put_le (b, cd_size, 4);
  put_le (b, cd_offset, 4);
  put_le (b, 0, 2);
  g_free (offsets);
  *size = b->len;
  return g_byte_array_free (b, FALSE);
}

static gsize
dtype_bytes (const char *storage)
{
  if (strcmp (storage, "DoubleStorage") == 0 || strcmp (storage, "LongStorage") == 0)
    return 8;
  if (strcmp (storage, "HalfStorage") == 0 || strcmp (storage, "BFloat16Storage") == 0)
    return 2;
  if (strcmp (storage, "CharStorage") == 0 || strcmp (storage, "ByteStorage") == 0
      || strcmp (storage, "BoolStorage") == 0)
    return 1;
  return 4;
}

/* A checkpoint: @pickle as P/data.pkl (CRC stored as 0 unless @real_crc),
 * one P/data/K per distinct storage key of @t, P/version; also writes the
 * pickle alone as a raw seed when @raw_pickle. */
static void
torch_seed (const char *name, const char *prefix, GByteArray *pickle, const Tensor *t,
    guint n, gboolean real_crc, gboolean torch_style, gboolean raw_pickle)
{
  GArray *entries = g_array_new (FALSE, TRUE, sizeof (ZipEntry));
  ZipEntry e;
  e.name = g_strconcat (prefix, "/data.pkl", NULL);
  e.data = g_bytes_new (pickle->data, pickle->len);
  e.crc = real_crc ? cnclip_crc32 (0, pickle->data, pickle->len) : 0;
  g_array_append_val (entries, e);
  GHashTable *keys = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; i < n; i++) {
    if (!g_hash_table_add (keys, (gpointer) t[i].key))
      continue;
    gsize len = (gsize) t[i].numel * dtype_bytes (t[i].storage);
    guint8 *data = g_malloc (len ? len : 1);
    for (gsize k = 0; k < len; k++)
      data[k] = (guint8) (k * 29 + i * 7 + 1);
    /* keep the float storages finite: small values in every 4th byte */
    if (dtype_bytes (t[i].storage) == 4)
      for (gsize k = 3; k < len; k += 4)
        data[k] = 0x3f;
    e.name = g_strconcat (prefix, "/data/", t[i].key, NULL);
    e.data = g_bytes_new_take (data, len);
    e.crc = cnclip_crc32 (0, data, len);
    g_array_append_val (entries, e);
  }
  g_hash_table_unref (keys);
  e.name = g_strconcat (prefix, "/version", NULL);
  e.data = g_bytes_new_static ("3\n", 2);
  e.crc = cnclip_crc32 (0, "3\n", 2);
  g_array_append_val (entries, e);

  gsize size;
  guint8 *zip = zip_build ((ZipEntry *) entries->data, entries->len, torch_style, &size);
  char *zip_name = g_strconcat (name, ".zip", NULL);
  write_seed ("torch", zip_name, zip, size);
  if (raw_pickle) {
    char *pkl_name = g_strconcat (name, ".pkl", NULL);
    write_seed ("torch", pkl_name, pickle->data, pickle->len);
    g_free (pkl_name);
  }
  g_free (zip_name);
  g_free (zip);
  for (guint i = 0; i < entries->len; i++) {
    g_free (g_array_index (entries, ZipEntry, i).name);
    g_bytes_unref (g_array_index (entries, ZipEntry, i).data);
  }
  g_array_unref (entries);
}

static void
make_torch (void)
{
  /* pytorch_model.bin: a plain dict, q/k/v views of one storage, a
   * transposed projection, int64 position_ids */
  const int W = 4, P = 2;
  const Tensor hf[] = {
    { "logit_scale", "FloatStorage", "0", 1, 0, 0 },
    { "vision_model.encoder.layers.0.self_attn.k_proj.weight", "FloatStorage", "1",
      3 * W * W, W * W, 2, { W, W }, { W, 1 } },
    { "vision_model.encoder.layers.0.self_attn.v_proj.weight", "FloatStorage", "1",
      3 * W * W, 2 * W * W, 2, { W, W }, { W, 1 } },
    { "vision_model.encoder.layers.0.self_attn.q_proj.weight", "FloatStorage", "1",
      3 * W * W, 0, 2, { W, W }, { W, 1 } },
    { "visual_projection.weight", "FloatStorage", "2", W * P, 0, 2, { P, W }, { 1, P } },
    { "text_model.embeddings.position_ids", "LongStorage", "3", 5, 0, 2, { 1, 5 }, { 5, 1 } },
  };
  GByteArray *p = g_byte_array_new ();
  op (p, OP_PROTO);
  op (p, 2);
  p_state_dict (p, hf, G_N_ELEMENTS (hf), FALSE, "cpu");
  op (p, OP_STOP);
  torch_seed ("hf-bin", "pytorch_model", p, hf, G_N_ELEMENTS (hf), TRUE, TRUE, TRUE);
  torch_seed ("hf-bin-crc0", "archive", p, hf, G_N_ELEMENTS (hf), FALSE, TRUE, FALSE);
  torch_seed ("hf-bin-plainzip", "archive", p, hf, G_N_ELEMENTS (hf), FALSE, FALSE, FALSE);
  g_byte_array_set_size (p, 0);

  /* model.pt: {'epoch': 30, 'state_dict': OrderedDict (module.* cn_clip
   * names) with a BUILD state, 'name': 'tiny'} */
  const Tensor official[] = {
    { "module.logit_scale", "FloatStorage", "0", 1, 0, 0 },
    { "module.text_projection", "FloatStorage", "1", W * P, 0, 2, { W, P }, { P, 1 } },
    { "module.visual.proj", "FloatStorage", "2", W * P, 0, 2, { W, P }, { P, 1 } },
    { "module.visual.transformer.resblocks.0.attn.in_proj_weight", "FloatStorage", "3",
      3 * W * W, 0, 2, { 3 * W, W }, { W, 1 } },
    { "module.visual.transformer.resblocks.0.attn.in_proj_bias", "FloatStorage", "4",
      3 * W, 0, 1, { 3 * W }, { 1 } },
    { "module.visual.conv1.weight", "FloatStorage", "5", W * 3 * 2 * 2, 0, 4,
      { W, 3, 2, 2 }, { 12, 4, 2, 1 } },
    { "module.bert.pooler.dense.bias", "FloatStorage", "6", W, 0, 1, { W }, { 1 } },
  };
  op (p, OP_PROTO);
  op (p, 2);
  op (p, OP_EMPTY_DICT);
  op (p, OP_BINPUT);
  put_le (p, 10, 1);
  op (p, OP_MARK);
  p_str (p, "epoch");
  p_int (p, 30);
  p_str (p, "step");
  p_int (p, 71250);
  p_str (p, "name");
  p_str (p, "cnclip-tiny");
  p_str (p, "state_dict");
  p_state_dict (p, official, G_N_ELEMENTS (official), TRUE, "cuda:0");
  /* OrderedDict state: {'_metadata': OrderedDict ([('visual', {'version': 1})])} */
  op (p, OP_EMPTY_DICT);
  p_str (p, "_metadata");
  op (p, OP_BINGET);
  put_le (p, 0, 1);              /* the memoised OrderedDict global */
  op (p, OP_EMPTY_TUPLE);
  op (p, OP_REDUCE);
  op (p, OP_LONG_BINPUT);
  put_le (p, 300, 4);
  p_str (p, "visual");
  op (p, OP_EMPTY_DICT);
  p_str (p, "version");
  p_int (p, 1);
  op (p, OP_SETITEM);
  op (p, OP_SETITEM);
  op (p, OP_SETITEM);
  op (p, OP_BUILD);
  op (p, OP_SETITEMS);
  op (p, OP_STOP);
  torch_seed ("official-pt", "epoch_latest", p, official, G_N_ELEMENTS (official), FALSE, TRUE,
      TRUE);
  g_byte_array_set_size (p, 0);

  /* the rarer opcodes and storages other torch.save files use */
  const Tensor rare[] = {
    { "h", "HalfStorage", "0", 6, 0, 2, { 2, 3 }, { 3, 1 }, TRUE },
    { "bf", "BFloat16Storage", "1", 4, 1, 1, { 3 }, { 1 } },
    { "d", "DoubleStorage", "2", 2, 0, 1, { 2 }, { 1 } },
    { "i", "IntStorage", "3", 2, 0, 1, { 2 }, { 1 } },
    { "c", "CharStorage", "4", 4, 0, 1, { 4 }, { 1 } },
    { "u", "ByteStorage", "5", 4, 0, 1, { 4 }, { 1 } },
    { "b", "BoolStorage", "6", 4, 0, 1, { 4 }, { 1 } },
    { "big", "FloatStorage", "7", 3, 0, 1, { 0 }, { 1 } },
  };
  op (p, OP_PROTO);
  op (p, 2);
  op (p, OP_EMPTY_DICT);
  op (p, OP_MARK);
  p_str (p, "extra");
  op (p, OP_EMPTY_LIST);
  op (p, OP_BINPUT);
  put_le (p, 0, 1);
  op (p, OP_MARK);
  op (p, OP_NONE);
  op (p, OP_NEWTRUE);
  op (p, OP_BINFLOAT);
  append (p, "\x3f\xf8\x00\x00\x00\x00\x00\x00", 8);   /* 1.5, big-endian */
  p_int (p, G_GINT64_CONSTANT (1) << 40);
  p_int (p, -7);
  op (p, OP_APPENDS);
  op (p, OP_LONG_BINGET);
  put_le (p, 0, 4);
  op (p, OP_APPEND);
  p_str (p, "state_dict");
  p_state_dict (p, rare, G_N_ELEMENTS (rare), FALSE, "cpu");
  op (p, OP_SETITEMS);
  op (p, OP_STOP);
  torch_seed ("rare", "archive", p, rare, G_N_ELEMENTS (rare), FALSE, TRUE, TRUE);
  g_byte_array_unref (p);
}

/* ------------------------------------------------------------------------ */
/* config, tokenizer, index                                                 */

static char *
read_data (const char *data_dir, const char *relative, gsize *len)
{
  char *path = g_build_filename (data_dir, relative, NULL);
  char *text;
  GError *error = NULL;
  if (!g_file_get_contents (path, &text, len, &error))
    g_error ("%s", error->message);
  g_free (path);
  return text;
}

static void
make_config (const char *data_dir)
{
  gsize clen, plen, tlen;
  char *c = read_data (data_dir, "cnclip-tiny/config.json", &clen);
  char *pp = read_data (data_dir, "cnclip-tiny/preprocessor_config.json", &plen);
  char *t = read_data (data_dir, "cnclip-tiny/tokenizer_config.json", &tlen);
  write_seed ("config", "tiny-config-only.json", c, clen);
  GByteArray *b = g_byte_array_new ();
  append (b, c, clen);
  append (b, "\0\0", 2);
  append (b, pp, plen);
  append (b, "\0\0", 2);
  append (b, t, tlen);
  write_seed ("config", "tiny-all-three.bin", b->data, b->len);
  g_byte_array_unref (b);
  g_free (c);
  g_free (pp);
  g_free (t);

  const char *empty = "{}";
  write_seed ("config", "defaults.json", empty, strlen (empty));
  static const char dicts[] = "{\"projection_dim\":8,\"text_config\":null,"
      "\"text_config_dict\":{\"hidden_size\":8,\"num_attention_heads\":2,"
      "\"intermediate_size\":16,\"num_hidden_layers\":1,\"vocab_size\":200,"
      "\"max_position_embeddings\":16,\"hidden_act\":\"gelu\",\"layer_norm_eps\":1e-12},"
      "\"vision_config\":{\"hidden_size\":8,\"num_attention_heads\":1,\"patch_size\":4,"
      "\"image_size\":8,\"intermediate_size\":32,\"num_hidden_layers\":1},"
      "\"vision_config_dict\":{\"hidden_act\":\"quick_gelu\"}}"
      "\0\0{\"image_mean\":[0.5,0.5,0.5],\"image_std\":[0.25,0.25,0.25],"
      "\"size\":{\"height\":8,\"width\":8}}\0\0{\"model_max_length\":1e30}";
  write_seed ("config", "small-dicts.bin", dicts, sizeof dicts - 1);
}

static void
make_tokenizer (const char *data_dir)
{
  gsize len;
  char *text = read_data (data_dir, "tokenizer/cases.json", &len);
  JsonParser *parser = json_parser_new ();
  GError *error = NULL;
  if (!json_parser_load_from_data (parser, text, (gssize) len, &error))
    g_error ("%s", error->message);
  JsonArray *cases = json_object_get_array_member (
      json_node_get_object (json_parser_get_root (parser)), "cases");
  /* the first two cases of every category, three of "random" */
  GHashTable *taken = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; i < json_array_get_length (cases); i++) {
    JsonObject *c = json_array_get_object_element (cases, i);
    const char *category = json_object_get_string_member (c, "category");
    guint n = GPOINTER_TO_UINT (g_hash_table_lookup (taken, category));
    if (n >= (strcmp (category, "random") == 0 ? 3u : 2u))
      continue;
    g_hash_table_insert (taken, (gpointer) category, GUINT_TO_POINTER (n + 1));
    /* utf8_hex holds the exact bytes (the text may carry control characters) */
    const char *hex = json_object_get_string_member (c, "utf8_hex");
    gsize n_bytes = strlen (hex) / 2;
    guint8 *bytes = g_malloc (n_bytes + 1);
    for (gsize k = 0; k < n_bytes; k++)
      bytes[k] = (guint8) (g_ascii_xdigit_value (hex[2 * k]) * 16
          + g_ascii_xdigit_value (hex[2 * k + 1]));
    char *name = g_strdup_printf ("case-%03u-%s.txt", i, category);
    write_seed ("tokenizer", name, bytes, n_bytes);
    g_free (name);
    g_free (bytes);
  }
  /* refused (invalid UTF-8), and a NUL inside valid text */
  write_seed ("tokenizer", "bad-utf8.txt", "ab\xc3(\xe4\xb8", 6);
  write_seed ("tokenizer", "nul.txt", "\xe7\x8c\xab\0cat", 7);
  g_hash_table_unref (taken);
  g_object_unref (parser);
  g_free (text);
}

/* One record line as the element writes it (cnclip.h "Index records"). */
static char *
record (const char *source, gint64 frame, gint64 ts, const float *emb, int dim,
    gboolean f16)
{
  char *data;
  if (emb == NULL)
    data = g_strdup ("null");
  else if (f16) {
    guint16 *h = g_new (guint16, dim);
    for (int i = 0; i < dim; i++) {
      /* values here are 0, +-0.5, +-1: exact in half precision */
      float v = emb[i];
      h[i] = GUINT16_TO_LE (v == 0 ? 0 : (guint16) ((v < 0 ? 0x8000 : 0)
              | (ABS (v) == 1.0f ? 0x3c00 : 0x3800)));
    }
    char *b64 = g_base64_encode ((const guchar *) h, dim * 2);
    data = g_strdup_printf ("{\"dtype\":\"f16\",\"encoding\":\"base64\",\"data\":\"%s\"}", b64);
    g_free (b64);
    g_free (h);
  } else {
    char *b64 = g_base64_encode ((const guchar *) emb, dim * 4);
    data = g_strdup_printf ("{\"dtype\":\"f32\",\"encoding\":\"base64\",\"data\":\"%s\"}", b64);
    g_free (b64);
  }
  char *line = g_strdup_printf ("{\"version\":1,\"source\":\"%s\",\"frame\":%" G_GINT64_FORMAT
      ",\"timestamp\":%" G_GINT64_FORMAT ",\"pts\":%" G_GINT64_FORMAT ",\"running_time\":%"
      G_GINT64_FORMAT ",\"wallclock\":\"2025-01-02T03:04:05.678Z\","
      "\"resolution\":{\"width\":64,\"height\":48},"
      "\"model\":{\"name\":\"cnclip-tiny\",\"dim\":%d,\"score_mode\":\"softmax\"},"
      "\"classification\":[{\"label\":\"\\u732b\",\"label_id\":0,\"score\":0.9,"
      "\"cosine\":0.31,\"matched\":true}],\"top\":{\"label\":\"\\u732b\",\"label_id\":0,"
      "\"score\":0.9},\"embedding\":%s}\n", source, frame, ts, ts, ts, dim, data);
  g_free (data);
  return line;
}

static void
make_index (void)
{
  const float e[3][4] = { { 1, 0, 0, 0 }, { 0.5f, 0.5f, -0.5f, 0.5f }, { 0, -1, 0, 0 } };
  GString *s = g_string_new (NULL);
  for (int i = 0; i < 6; i++) {
    char *line = record ("file:///v.mp4", i, i * G_GINT64_CONSTANT (500000000), e[i % 3], 4,
        FALSE);
    g_string_append (s, line);
    g_free (line);
  }
  write_seed ("index", "f32-one-source.jsonl", s->str, s->len);
  g_string_truncate (s, 0);

  char *a = record ("rtsp://cam/1", 0, 0, e[0], 4, TRUE);
  char *b = record ("file:///a \\\"quoted\\\" \\u00e9.mkv", 3, 40000000, e[1], 4, TRUE);
  char *c = record ("rtsp://cam/1", 1, 1000000000, NULL, 4, FALSE);
  char *d = record ("rtsp://cam/1", 2, 2000000000, e[2], 4, TRUE);
  g_string_append_printf (s, "%s\n%s%s%s", a, b, c, d);
  write_seed ("index", "f16-two-sources-null.jsonl", s->str, s->len);
  g_string_truncate (s, 0);

  /* a writer killed mid-record, then restarted on the same line; and a
   * last line cut short */
  g_string_append (s, a);
  g_string_append_len (s, b, 120);
  g_string_append (s, d);
  g_string_append_len (s, a, 90);
  write_seed ("index", "interrupted.jsonl", s->str, s->len);
  g_string_truncate (s, 0);

  const char *minimal = "{\"version\":1,\"source\":\"s\",\"timestamp\":5,"
      "\"embedding\":{\"dtype\":\"f32\",\"encoding\":\"base64\",\"data\":\"AACAPwAAAAA=\"}}\n"
      "{\"version\":1,\"source\":\"s\",\"pts\":null,\"frame\":null,\"timestamp\":null}\n";
  write_seed ("index", "minimal.jsonl", minimal, strlen (minimal));
  g_free (a);
  g_free (b);
  g_free (c);
  g_free (d);
  g_string_free (s, TRUE);
}

int
main (int argc, char **argv)
{
  if (argc != 3) {
    g_printerr ("usage: %s TEST_DATA_DIR OUT_DIR\n", argv[0]);
    return 2;
  }
  out_dir = argv[2];
  make_safetensors ();
  make_torch ();
  make_config (argv[1]);
  make_tokenizer (argv[1]);
  make_index ();
  return 0;
}
