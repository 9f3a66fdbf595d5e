/* test-safetensors.c: the safetensors parser and the weights table
 * (weights.c, safetensors.c) on the fixture and on crafted broken files. */
#include "config.h"

#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "test-util.h"
#include "weights.h"

static char *tmp_dir;

/* Writes @len bytes as @name in the temp dir; returns the path (g_free). */
static char *
write_raw (const char *name, const void *bytes, gsize len)
{
  char *path = g_build_filename (tmp_dir, name, NULL);
  GError *error = NULL;
  g_file_set_contents (path, bytes, (gssize) len, &error);
  g_assert_no_error (error);
  return path;
}

/* A safetensors file: header length, @header, then @data. */
static char *
write_st (const char *name, const char *header, const void *data, gsize data_len)
{
  gsize hlen = strlen (header);
  guint8 *bytes = g_malloc0 (8 + hlen + data_len + 1);
  guint64 le = GUINT64_TO_LE ((guint64) hlen);
  memcpy (bytes, &le, 8);
  memcpy (bytes + 8, header, hlen);
  if (data_len)
    memcpy (bytes + 8 + hlen, data, data_len);
  char *path = write_raw (name, bytes, 8 + hlen + data_len);
  g_free (bytes);
  return path;
}

static float
golden_json_number (const char *key)
{
  char *path = test_data_path ("cnclip-tiny/golden/golden.json");
  JsonParser *parser = json_parser_new ();
  GError *error = NULL;
  json_parser_load_from_file (parser, path, &error);
  g_assert_no_error (error);
  double v = json_object_get_double_member (json_node_get_object (json_parser_get_root (parser)),
      key);
  g_object_unref (parser);
  g_free (path);
  return (float) v;
}

/* Test that the fixture's model.safetensors parses with every tensor, dtype,
 * shape and the logit_scale value of golden.json. */
static void
test_fixture (void)
{
  GError *error = NULL;
  char *path = test_data_path ("cnclip-tiny/model.safetensors");
  CnclipWeightFile *file = cnclip_safetensors_open (path, &error);
  g_assert_no_error (error);
  g_assert_nonnull (file);

  g_assert_cmpuint (cnclip_weight_file_get_n_tensors (file), ==, 81);
  int n_f32 = 0, n_i64 = 0;
  for (guint i = 0; i < 81; i++) {
    const CnclipTensorInfo *t = cnclip_weight_file_get_tensor (file, i);
    g_assert_true (t->contiguous);
    g_assert_true (cnclip_weight_file_lookup (file, t->name) == t);
    n_f32 += t->dtype == CNCLIP_DTYPE_F32;
    n_i64 += t->dtype == CNCLIP_DTYPE_I64;
  }
  g_assert_cmpint (n_f32, ==, 79);
  g_assert_cmpint (n_i64, ==, 2);

  static const struct
  {
    const char *name;
    int ndim;
    gint64 shape[4];
  } expected[] = {
    { "logit_scale", 0, { 0 } },
    { "visual_projection.weight", 2, { 64, 128 } },
    { "text_projection.weight", 2, { 64, 128 } },
    { "vision_model.embeddings.patch_embedding.weight", 4, { 128, 3, 16, 16 } },
    { "vision_model.embeddings.class_embedding", 1, { 128 } },
    { "vision_model.embeddings.position_embedding.weight", 2, { 197, 128 } },
    { "vision_model.embeddings.position_ids", 2, { 1, 197 } },
    { "vision_model.encoder.layers.1.mlp.fc1.weight", 2, { 512, 128 } },
    { "vision_model.encoder.layers.0.mlp.fc2.weight", 2, { 128, 512 } },
    { "text_model.embeddings.word_embeddings.weight", 2, { 21128, 128 } },
    { "text_model.embeddings.position_ids", 2, { 1, 512 } },
    { "text_model.encoder.layer.1.intermediate.dense.bias", 1, { 512 } },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (expected); i++) {
    const CnclipTensorInfo *t = cnclip_weight_file_lookup (file, expected[i].name);
    g_assert_nonnull (t);
    g_assert_cmpint (t->ndim, ==, expected[i].ndim);
    gint64 n = 1;
    for (int k = 0; k < t->ndim; k++) {
      g_assert_cmpint (t->shape[k], ==, expected[i].shape[k]);
      n *= expected[i].shape[k];
    }
    g_assert_cmpint (t->n_elements, ==, n);
  }

  const CnclipTensorInfo *ls = cnclip_weight_file_lookup (file, "logit_scale");
  g_assert_cmpint (ls->dtype, ==, CNCLIP_DTYPE_F32);
  g_assert_cmpfloat (cnclip_tensor_get_float (ls, 0), ==, golden_json_number ("logit_scale"));
  g_assert_cmpfloat_with_epsilon (expf (cnclip_tensor_get_float (ls, 0)),
      golden_json_number ("logit_scale_exp"), 1e-5);

  /* position_ids are 0..n-1 */
  const CnclipTensorInfo *pid = cnclip_weight_file_lookup (file, "vision_model.embeddings.position_ids");
  g_assert_cmpint (pid->dtype, ==, CNCLIP_DTYPE_I64);
  g_assert_cmpfloat (cnclip_tensor_get_float (pid, 196), ==, 196.0f);

  cnclip_weight_file_free (file);
  g_free (path);
}

/* Test that F16, BF16 and F64 tensors convert exactly, including zeros,
 * subnormals, the largest finite values, infinities and NaN. */
static void
test_float_conversion (void)
{
  static const struct
  {
    guint16 bits;
    float value;
  } f16[] = {
    { 0x0000, 0.0f }, { 0x8000, -0.0f }, { 0x3c00, 1.0f }, { 0xc000, -2.0f },
    { 0x3555, 0.333251953125f }, { 0x7bff, 65504.0f }, { 0x0001, 5.9604644775390625e-8f },
    { 0x03ff, 6.09755516052246094e-5f }, { 0x0400, 6.103515625e-5f }, { 0x8001, -5.9604644775390625e-8f },
    { 0x7c00, INFINITY }, { 0xfc00, -INFINITY }, { 0x4248, 3.140625f },
  }, bf16[] = {
    { 0x0000, 0.0f }, { 0x3f80, 1.0f }, { 0xc000, -2.0f }, { 0x4049, 3.140625f },
    { 0x7f7f, 3.38953139e38f }, { 0x0001, 9.18354962e-41f }, { 0x7f80, INFINITY },
    { 0xff80, -INFINITY }, { 0x3eab, 0.333984375f },
  };
  const gsize n16 = G_N_ELEMENTS (f16), nb = G_N_ELEMENTS (bf16);
  /* One extra NaN element at the end of each. */
  guint16 data16[32], datab[32];
  for (gsize i = 0; i < n16; i++)
    data16[i] = f16[i].bits;
  data16[n16] = 0x7e00;
  for (gsize i = 0; i < nb; i++)
    datab[i] = bf16[i].bits;
  datab[nb] = 0x7fc0;
  double data64[3] = { 1.0 / 3.0, -1e300, 1e-50 };

  guint8 data[256] = { 0 };
  gsize off16 = 0, offb = (n16 + 1) * 2, off64 = 64;
  memcpy (data + off16, data16, (n16 + 1) * 2);
  memcpy (data + offb, datab, (nb + 1) * 2);
  memcpy (data + off64, data64, sizeof (data64));
  char *header = g_strdup_printf ("{\"h\":{\"dtype\":\"F16\",\"shape\":[%zu],\"data_offsets\":[%zu,%zu]},"
      "\"b\":{\"dtype\":\"BF16\",\"shape\":[%zu],\"data_offsets\":[%zu,%zu]},"
      "\"d\":{\"dtype\":\"F64\",\"shape\":[3],\"data_offsets\":[%zu,%zu]}}",
      n16 + 1, off16, off16 + (n16 + 1) * 2, nb + 1, offb, offb + (nb + 1) * 2, off64, off64 + 24);
  char *path = write_st ("floats.safetensors", header, data, off64 + 24);
  GError *error = NULL;
  CnclipWeightFile *file = cnclip_safetensors_open (path, &error);
  g_assert_no_error (error);

  float out[32];
  const CnclipTensorInfo *h = cnclip_weight_file_lookup (file, "h");
  g_assert_true (cnclip_tensor_to_f32 (h, out, &error));
  for (gsize i = 0; i < n16; i++) {
    g_assert_true (memcmp (&out[i], &f16[i].value, 4) == 0);
    g_assert_true (memcmp (&out[i], &(float) { cnclip_tensor_get_float (h, i) }, 4) == 0);
  }
  g_assert_true (isnan (out[n16]));

  const CnclipTensorInfo *b = cnclip_weight_file_lookup (file, "b");
  g_assert_true (cnclip_tensor_to_f32 (b, out, &error));
  for (gsize i = 0; i < nb; i++)
    g_assert_true (memcmp (&out[i], &bf16[i].value, 4) == 0);
  g_assert_true (isnan (out[nb]));

  const CnclipTensorInfo *d = cnclip_weight_file_lookup (file, "d");
  g_assert_true (cnclip_tensor_to_f32 (d, out, &error));
  g_assert_cmpfloat (out[0], ==, (float) (1.0 / 3.0));
  g_assert_true (isinf (out[1]) && out[1] < 0);
  g_assert_cmpfloat (out[2], ==, 0.0f);

  cnclip_weight_file_free (file);
  g_free (header);
  g_free (path);
}

/* Test that strided (transposed) and offset tensors convert in logical
 * row-major order, both element-wise and as a whole. */
static void
test_strided_conversion (void)
{
  /* storage [3, 4] row-major; the tensor is its transpose [4, 3], stride (1, 4) */
  float storage[16];
  for (int i = 0; i < 16; i++)
    storage[i] = (float) (i * 10 + 1);
  CnclipTensorInfo t = {
    .name = "t", .dtype = CNCLIP_DTYPE_F32, .ndim = 2, .shape = { 4, 3 }, .strides = { 1, 4 },
    .data = (const guint8 *) storage, .n_elements = 12, .contiguous = FALSE,
  };
  float out[12];
  GError *error = NULL;
  g_assert_true (cnclip_tensor_to_f32 (&t, out, &error));
  for (int r = 0; r < 4; r++) {
    for (int c = 0; c < 3; c++) {
      g_assert_cmpfloat (out[r * 3 + c], ==, storage[c * 4 + r]);
      g_assert_cmpfloat (cnclip_tensor_get_float (&t, r * 3 + c), ==, storage[c * 4 + r]);
    }
  }
  /* A 3-d view with a non-unit innermost stride. */
  CnclipTensorInfo u = {
    .name = "u", .dtype = CNCLIP_DTYPE_F32, .ndim = 3, .shape = { 2, 2, 2 }, .strides = { 6, 3, 2 },
    .data = (const guint8 *) (storage + 1), .n_elements = 8, .contiguous = FALSE,
  };
  g_assert_true (cnclip_tensor_to_f32 (&u, out, &error));
  static const int idx[8] = { 1, 3, 4, 6, 7, 9, 10, 12 };
  for (int i = 0; i < 8; i++)
    g_assert_cmpfloat (out[i], ==, storage[idx[i]]);
  /* Non-float dtypes are refused. */
  CnclipTensorInfo v = t;
  v.dtype = CNCLIP_DTYPE_I32;
  g_assert_false (cnclip_tensor_to_f32 (&v, out, &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_DTYPE);
}

typedef struct
{
  const char *what;
  const char *header;            /* NULL: raw bytes */
  int data_len;                  /* bytes of data after the header */
  int code;
} BrokenCase;

/* Every case is a 2-element F32 tensor "a" (8 bytes) unless it says so. */
static const BrokenCase broken_cases[] = {
  { "header not JSON", "this is not json", 8, CNCLIP_ERROR_FORMAT },
  { "header JSON not an object", "[1, 2, 3]", 8, CNCLIP_ERROR_FORMAT },
  { "header is a string", "\"a\"", 8, CNCLIP_ERROR_FORMAT },
  { "empty header", "", 8, CNCLIP_ERROR_FORMAT },
  { "trailing garbage", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} x", 8, CNCLIP_ERROR_FORMAT },
  { "entry not an object", "{\"a\":[1,2]}", 8, CNCLIP_ERROR_FORMAT },
  { "no dtype", "{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, CNCLIP_ERROR_FORMAT },
  { "dtype not a string", "{\"a\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, CNCLIP_ERROR_FORMAT },
  { "no shape", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, CNCLIP_ERROR_FORMAT },
  { "shape not an array", "{\"a\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", 8, CNCLIP_ERROR_FORMAT },
  { "no data_offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, CNCLIP_ERROR_FORMAT },
  { "negative shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, CNCLIP_ERROR_FORMAT },
  { "non-integer shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8, CNCLIP_ERROR_FORMAT },
  { "fractional shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8, CNCLIP_ERROR_FORMAT },
  { "string shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8, CNCLIP_ERROR_FORMAT },
  { "boolean shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[true],\"data_offsets\":[0,8]}}", 8, CNCLIP_ERROR_FORMAT },
  { "shape product overflow", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4],\"data_offsets\":[0,8]}}", 8, CNCLIP_ERROR_FORMAT },
  { "byte size overflow", "{\"a\":{\"dtype\":\"F32\",\"shape\":[536870912,4294967296],\"data_offsets\":[0,8]}}", 8, CNCLIP_ERROR_FORMAT },
  /* json-glib would wrap 2^64 + 2 around to 2 */
  { "shape beyond 64 bits", "{\"a\":{\"dtype\":\"F32\",\"shape\":[18446744073709551618],\"data_offsets\":[0,8]}}", 8, CNCLIP_ERROR_FORMAT },
  { "hex shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0x2],\"data_offsets\":[0,8]}}", 8, CNCLIP_ERROR_FORMAT },
  { "nine dimensions", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", 8, CNCLIP_ERROR_FORMAT },
  { "offsets beyond data", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 8, CNCLIP_ERROR_FORMAT },
  { "end before begin", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8, CNCLIP_ERROR_FORMAT },
  { "negative offset", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", 8, CNCLIP_ERROR_FORMAT },
  { "three offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]}}", 8, CNCLIP_ERROR_FORMAT },
  { "size not shape*dtype", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, CNCLIP_ERROR_FORMAT },
  { "size not shape*dtype (F16)", "{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, CNCLIP_ERROR_FORMAT },
  { "known unusable dtype, wrong size", "{\"a\":{\"dtype\":\"U16\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, CNCLIP_ERROR_FORMAT },
  { "duplicate names", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, CNCLIP_ERROR_FORMAT },
  { "duplicate key in an entry", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"shape\":[1],\"data_offsets\":[0,8]}}", 8, CNCLIP_ERROR_FORMAT },
  { "truncated data section", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, CNCLIP_ERROR_FORMAT },
  { "NUL byte in header", NULL, 0, CNCLIP_ERROR_FORMAT },
  { "deep nesting", NULL, 1, CNCLIP_ERROR_FORMAT },
};

/* Test that each kind of broken header or data section is refused with
 * CNCLIP_ERROR_FORMAT and a message naming the file. */
static void
test_broken (gconstpointer data)
{
  const BrokenCase *c = data;
  char *path;
  if (c->header) {
    guint8 zeros[64] = { 0 };
    path = write_st ("broken.safetensors", c->header, zeros, c->data_len);
  } else if (c->data_len == 0) {
    static const char header[] = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,0]}\0}";
    char buf[sizeof (header) + 16] = { 0 };
    guint64 le = GUINT64_TO_LE (sizeof (header) - 1);
    memcpy (buf, &le, 8);
    memcpy (buf + 8, header, sizeof (header) - 1);
    path = write_raw ("broken.safetensors", buf, 8 + sizeof (header) - 1 + 8);
  } else {
    GString *h = g_string_new ("{\"a\":");
    for (int i = 0; i < 100000; i++)
      g_string_append_c (h, '[');
    for (int i = 0; i < 100000; i++)
      g_string_append_c (h, ']');
    g_string_append_c (h, '}');
    path = write_st ("broken.safetensors", h->str, NULL, 0);
    g_string_free (h, TRUE);
  }
  GError *error = NULL;
  CnclipWeightFile *file = cnclip_safetensors_open (path, &error);
  g_assert_null (file);
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, "broken.safetensors"));
  test_assert_error (error, CNCLIP_ERROR, c->code);
  g_free (path);
}

/* Test that the length prefix is checked: shorter than 8 bytes, longer than
 * the file, 2^63, and a file long enough for a header beyond the 8 MB limit. */
static void
test_header_length (void)
{
  GError *error = NULL;
  char *path = write_raw ("short.safetensors", "abc", 3);
  g_assert_null (cnclip_safetensors_open (path, &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT);
  g_free (path);

  guint8 buf[64] = { 0 };
  static const guint64 lengths[] = { 57, 1000, G_GUINT64_CONSTANT (1) << 63, G_MAXUINT64 };
  for (gsize i = 0; i < G_N_ELEMENTS (lengths); i++) {
    guint64 le = GUINT64_TO_LE (lengths[i]);
    memcpy (buf, &le, 8);
    memcpy (buf + 8, "{}", 2);
    path = write_raw ("long.safetensors", buf, sizeof (buf));
    g_assert_null (cnclip_safetensors_open (path, &error));
    test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT);
    g_free (path);
  }

  /* A sparse file: the header would be 8 MB + 1 (the limit) of NULs. */
  path = g_build_filename (tmp_dir, "huge.safetensors", NULL);
  guint64 huge = 8 * 1000 * 1000 + 1;
  guint64 le = GUINT64_TO_LE (huge);
  memcpy (buf, &le, 8);
  memcpy (buf + 8, "{}", 2);
  FILE *f = fopen (path, "wb");
  g_assert_nonnull (f);
  g_assert_cmpint (fwrite (buf, 1, 10, f), ==, 10);
  fclose (f);
  g_assert_cmpint (truncate (path, (off_t) (8 + huge)), ==, 0);
  g_assert_null (cnclip_safetensors_open (path, &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_TOO_LARGE);
  g_unlink (path);
  g_free (path);
}

/* Test that an empty file, a directory and a missing file are I/O errors. */
static void
test_io_errors (void)
{
  GError *error = NULL;
  char *path = write_raw ("empty.safetensors", "", 0);
  g_assert_null (cnclip_safetensors_open (path, &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO);
  g_free (path);

  g_assert_null (cnclip_safetensors_open (tmp_dir, &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO);

  path = g_build_filename (tmp_dir, "does-not-exist.safetensors", NULL);
  g_assert_null (cnclip_safetensors_open (path, &error));
  g_assert_nonnull (strstr (error->message, "does-not-exist.safetensors"));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO);
  g_free (path);
}

/* Test that header key order, metadata and zero-size tensors do not matter:
 * two files with the keys in opposite orders give the same table. */
static void
test_order_and_metadata (void)
{
  float data[6] = { 1, 2, 3, 4, 5, 6 };
  const char *h1 = "{\"__metadata__\":{\"format\":\"pt\",\"x\":\"y\"},"
      "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]},"
      "\"b\":{\"data_offsets\":[0,16],\"shape\":[2,2],\"dtype\":\"F32\"},"
      "\"e\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[24,24]}}";
  const char *h2 = "{\"e\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[24,24]},"
      "\"b\":{\"shape\":[2,2],\"dtype\":\"F32\",\"data_offsets\":[0,16]},"
      "\"a\":{\"data_offsets\":[16,24],\"dtype\":\"F32\",\"shape\":[2]},"
      "\"__metadata__\":{\"format\":\"pt\"}}";
  const char *headers[2] = { h1, h2 };
  for (int i = 0; i < 2; i++) {
    char *path = write_st ("order.safetensors", headers[i], data, sizeof (data));
    GError *error = NULL;
    CnclipWeightFile *file = cnclip_safetensors_open (path, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (cnclip_weight_file_get_n_tensors (file), ==, 3);
    g_assert_null (cnclip_weight_file_lookup (file, "__metadata__"));
    const CnclipTensorInfo *a = cnclip_weight_file_lookup (file, "a");
    const CnclipTensorInfo *b = cnclip_weight_file_lookup (file, "b");
    const CnclipTensorInfo *e = cnclip_weight_file_lookup (file, "e");
    g_assert_cmpfloat (cnclip_tensor_get_float (a, 0), ==, 5.0f);
    g_assert_cmpfloat (cnclip_tensor_get_float (a, 1), ==, 6.0f);
    g_assert_cmpfloat (cnclip_tensor_get_float (b, 3), ==, 4.0f);
    g_assert_cmpint (b->strides[0], ==, 2);
    g_assert_cmpint (e->n_elements, ==, 0);
    /* insertion order follows the header */
    g_assert_cmpstr (cnclip_weight_file_get_tensor (file, 0)->name, ==, i == 0 ? "a" : "e");
    cnclip_weight_file_free (file);
    g_free (path);
  }
}

/* Test that a dtype we cannot compute with leaves the file loadable and the
 * tensor recorded as unusable (not in the table). */
static void
test_unusable_dtype (void)
{
  guint8 data[16] = { 0 };
  const char *header = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
      "\"q\":{\"dtype\":\"F8_E4M3\",\"shape\":[4],\"data_offsets\":[8,12]},"
      "\"z\":{\"dtype\":\"Q4_WEIRD\",\"shape\":[7],\"data_offsets\":[12,16]}}";
  char *path = write_st ("unusable.safetensors", header, data, sizeof (data));
  GError *error = NULL;
  CnclipWeightFile *file = cnclip_safetensors_open (path, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (cnclip_weight_file_get_n_tensors (file), ==, 1);
  g_assert_null (cnclip_weight_file_lookup (file, "q"));
  g_assert_cmpstr (cnclip_weight_file_lookup_unusable (file, "q"), ==, "F8_E4M3");
  g_assert_cmpstr (cnclip_weight_file_lookup_unusable (file, "z"), ==, "Q4_WEIRD");
  g_assert_null (cnclip_weight_file_lookup_unusable (file, "a"));
  /* An unusable name still counts for duplicates. */
  g_assert_false (cnclip_weight_file_add_unusable (file, "a", "U16", &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT);
  cnclip_weight_file_free (file);
  g_free (path);
}

/* Test that add_tensor re-checks bounds (end of mapping, before it, stride
 * overflow, negative strides), element counts and duplicates. */
static void
test_add_tensor_bounds (void)
{
  guint8 data[64];
  for (int i = 0; i < 64; i++)
    data[i] = (guint8) i;
  char *path = write_raw ("blob.bin", data, sizeof (data));
  GError *error = NULL;
  CnclipWeightFile *file = cnclip_weight_file_map (path, &error);
  g_assert_no_error (error);
  const guint8 *base = cnclip_weight_file_get_data (file);
  g_assert_cmpuint (cnclip_weight_file_get_size (file), ==, 64);

  CnclipTensorInfo ok = {
    .name = "ok", .dtype = CNCLIP_DTYPE_F32, .ndim = 2, .shape = { 4, 4 }, .strides = { 4, 1 },
    .data = base, .n_elements = 16,
  };
  g_assert_true (cnclip_weight_file_add_tensor (file, &ok, &error));
  g_assert_no_error (error);
  g_assert_true (cnclip_weight_file_lookup (file, "ok")->contiguous);
  /* same name again */
  g_assert_false (cnclip_weight_file_add_tensor (file, &ok, &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT);

  CnclipTensorInfo t = ok;
  t.name = "last-byte-out";
  t.data = base + 1;             /* the last element ends at byte 65 */
  g_assert_false (cnclip_weight_file_add_tensor (file, &t, &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT);

  t = ok;
  t.name = "before";
  t.data = base - 4;
  g_assert_false (cnclip_weight_file_add_tensor (file, &t, &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT);

  t = ok;
  t.name = "stride-overflow";
  t.strides[0] = G_MAXINT64 / 2;
  g_assert_false (cnclip_weight_file_add_tensor (file, &t, &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT);

  t = ok;
  t.name = "negative-stride";
  t.strides[0] = -4;
  g_assert_false (cnclip_weight_file_add_tensor (file, &t, &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT);

  t = ok;
  t.name = "wrong-count";
  t.n_elements = 15;
  g_assert_false (cnclip_weight_file_add_tensor (file, &t, &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT);

  /* A transposed view that fits exactly: highest element at byte 60..63. */
  t = ok;
  t.name = "transposed";
  t.strides[0] = 1;
  t.strides[1] = 4;
  g_assert_true (cnclip_weight_file_add_tensor (file, &t, &error));
  g_assert_false (cnclip_weight_file_lookup (file, "transposed")->contiguous);

  /* An empty tensor may sit at the very end. */
  t = ok;
  t.name = "empty";
  t.shape[0] = 0;
  t.n_elements = 0;
  t.data = base + 64;
  g_assert_true (cnclip_weight_file_add_tensor (file, &t, &error));
  g_assert_no_error (error);

  g_assert_cmpuint (cnclip_weight_file_get_n_tensors (file), ==, 3);
  cnclip_weight_file_free (file);
  g_free (path);
}

/* Test that releasing the pages of a tensor loses nothing: the data read
 * afterwards, in place or with cnclip_weight_file_read, is unchanged. */
static void
test_release (void)
{
  const gsize n = 256 * 1024;
  float *values = g_new (float, n);
  for (gsize i = 0; i < n; i++)
    values[i] = (float) i * 0.5f;
  char *header = g_strdup_printf ("{\"w\":{\"dtype\":\"F32\",\"shape\":[%zu],\"data_offsets\":[0,%zu]}}      ",
      n, n * 4);
  char *path = write_st ("release.safetensors", header, values, n * 4);
  GError *error = NULL;
  CnclipWeightFile *file = cnclip_safetensors_open (path, &error);
  g_assert_no_error (error);
  const CnclipTensorInfo *w = cnclip_weight_file_lookup (file, "w");
  g_assert_true (memcmp (w->data, values, n * 4) == 0);
  cnclip_weight_file_release (file, w->data, n * 4);
  /* out-of-range requests are ignored */
  cnclip_weight_file_release (file, values, n * 4);
  cnclip_weight_file_release (file, w->data, n * 1000);
  g_assert_true (memcmp (w->data, values, n * 4) == 0);
  /* reading (pread) gives the same bytes, from any offset */
  float *copy = g_new0 (float, n);
  cnclip_weight_file_read (file, w->data + 12, (n - 3) * 4, copy);
  g_assert_true (memcmp (copy, values + 3, (n - 3) * 4) == 0);
  g_free (copy);
  cnclip_weight_file_free (file);
  g_free (header);
  g_free (path);
  g_free (values);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  tmp_dir = test_make_temp_dir ();

  g_test_add_func ("/safetensors/fixture", test_fixture);
  g_test_add_func ("/safetensors/float-conversion", test_float_conversion);
  g_test_add_func ("/safetensors/strided-conversion", test_strided_conversion);
  g_test_add_func ("/safetensors/header-length", test_header_length);
  g_test_add_func ("/safetensors/io-errors", test_io_errors);
  g_test_add_func ("/safetensors/order-and-metadata", test_order_and_metadata);
  g_test_add_func ("/safetensors/unusable-dtype", test_unusable_dtype);
  g_test_add_func ("/safetensors/add-tensor-bounds", test_add_tensor_bounds);
  g_test_add_func ("/safetensors/release", test_release);
  for (gsize i = 0; i < G_N_ELEMENTS (broken_cases); i++) {
    char *name = g_strdup_printf ("/safetensors/broken/%s", broken_cases[i].what);
    for (char *p = name; *p; p++) {
      if (*p == ' ' || *p == '*' || *p == '(' || *p == ')' || *p == ',')
        *p = '-';
    }
    g_test_add_data_func (name, &broken_cases[i], test_broken);
    g_free (name);
  }
  return g_test_run ();
}
