/* test-util.c: see test-util.h. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "test-util.h"
#include "weights.h"

char *
test_data_path (const char *relative)
{
  const char *dir = g_getenv ("CNCLIP_TEST_DATA");
  if (dir == NULL || *dir == '\0')
    return g_build_filename (CNCLIP_SOURCE_DIR, "tests", "data", relative, NULL);
  return g_build_filename (dir, relative, NULL);
}

static CnclipWeightFile *golden_file;

static const CnclipTensorInfo *
golden_lookup (const char *name)
{
  if (golden_file == NULL) {
    GError *error = NULL;
    char *path = test_data_path ("cnclip-tiny/golden/expected.safetensors");
    golden_file = cnclip_safetensors_open (path, &error);
    g_assert_no_error (error);
    g_assert_nonnull (golden_file);
    g_free (path);
  }
  const CnclipTensorInfo *info = cnclip_weight_file_lookup (golden_file, name);
  if (info == NULL)
    g_error ("golden tensor %s missing", name);
  return info;
}

static void
copy_shape (const CnclipTensorInfo *info, int *ndim, gint64 *shape)
{
  if (ndim)
    *ndim = info->ndim;
  if (shape)
    memcpy (shape, info->shape, sizeof (gint64) * info->ndim);
}

float *
test_golden_tensor (const char *name, int *ndim, gint64 *shape)
{
  const CnclipTensorInfo *info = golden_lookup (name);
  float *out = g_new (float, info->n_elements ? info->n_elements : 1);
  if (info->dtype == CNCLIP_DTYPE_I64) {
    const gint64 *src = (const gint64 *) info->data;
    for (gint64 i = 0; i < info->n_elements; i++)
      out[i] = (float) src[i];
  } else {
    for (gint64 i = 0; i < info->n_elements; i++)
      out[i] = cnclip_tensor_get_float (info, i);
  }
  copy_shape (info, ndim, shape);
  return out;
}

gint32 *
test_golden_ids (const char *name, int *ndim, gint64 *shape)
{
  const CnclipTensorInfo *info = golden_lookup (name);
  g_assert_cmpint (info->dtype, ==, CNCLIP_DTYPE_I64);
  gint32 *out = g_new (gint32, info->n_elements);
  gint64 v;
  for (gint64 i = 0; i < info->n_elements; i++) {
    memcpy (&v, info->data + i * 8, 8);
    out[i] = (gint32) v;
  }
  copy_shape (info, ndim, shape);
  return out;
}

double
test_max_abs_diff (const float *a, const float *b, gsize n)
{
  double m = 0;
  for (gsize i = 0; i < n; i++) {
    double d = fabs ((double) a[i] - (double) b[i]);
    if (isnan (d))
      return INFINITY;
    if (d > m)
      m = d;
  }
  return m;
}

double
test_cosine (const float *a, const float *b, gsize n)
{
  double ab = 0, aa = 0, bb = 0;
  for (gsize i = 0; i < n; i++) {
    ab += (double) a[i] * b[i];
    aa += (double) a[i] * a[i];
    bb += (double) b[i] * b[i];
  }
  return ab / (sqrt (aa) * sqrt (bb));
}

static GPtrArray *golden_images;
static GPtrArray *golden_texts;

static void
load_golden_json (void)
{
  if (golden_images)
    return;
  GError *error = NULL;
  char *path = test_data_path ("cnclip-tiny/golden/golden.json");
  JsonParser *parser = json_parser_new ();
  json_parser_load_from_file (parser, path, &error);
  g_assert_no_error (error);
  JsonObject *root = json_node_get_object (json_parser_get_root (parser));
  golden_images = g_ptr_array_new ();
  golden_texts = g_ptr_array_new ();
  JsonArray *images = json_object_get_array_member (root, "images");
  for (guint i = 0; i < json_array_get_length (images); i++) {
    JsonObject *o = json_array_get_object_element (images, i);
    TestGoldenImage *im = g_new0 (TestGoldenImage, 1);
    im->name = g_strdup (json_object_get_string_member (o, "name"));
    im->png = g_strdup (json_object_get_string_member (o, "png"));
    im->rgb = g_strdup (json_object_get_string_member (o, "rgb"));
    im->resized_rgb = g_strdup (json_object_get_string_member (o, "resized_rgb"));
    im->width = json_object_get_int_member (o, "width");
    im->height = json_object_get_int_member (o, "height");
    g_ptr_array_add (golden_images, im);
  }
  JsonArray *texts = json_object_get_array_member (root, "texts");
  for (guint i = 0; i < json_array_get_length (texts); i++) {
    JsonObject *o = json_array_get_object_element (texts, i);
    TestGoldenText *t = g_new0 (TestGoldenText, 1);
    /* utf8_hex is authoritative: JSON parsers may mangle odd code points. */
    const char *hex = json_object_get_string_member (o, "utf8_hex");
    gsize n = strlen (hex) / 2;
    t->text = g_malloc (n + 1);
    for (gsize k = 0; k < n; k++)
      t->text[k] = (char) ((g_ascii_xdigit_value (hex[2 * k]) << 4) | g_ascii_xdigit_value (hex[2 * k + 1]));
    t->text[n] = '\0';
    t->num_tokens = json_object_get_int_member (o, "num_tokens");
    g_ptr_array_add (golden_texts, t);
  }
  g_object_unref (parser);
  g_free (path);
}

int
test_golden_n_images (void)
{
  load_golden_json ();
  return golden_images->len;
}

const TestGoldenImage *
test_golden_image (int index)
{
  load_golden_json ();
  return g_ptr_array_index (golden_images, index);
}

int
test_golden_n_texts (void)
{
  load_golden_json ();
  return golden_texts->len;
}

const TestGoldenText *
test_golden_text (int index)
{
  load_golden_json ();
  return g_ptr_array_index (golden_texts, index);
}

guint8 *
test_read_file (const char *path, gsize *length)
{
  char *contents = NULL;
  GError *error = NULL;
  g_file_get_contents (path, &contents, length, &error);
  g_assert_no_error (error);
  return (guint8 *) contents;
}

static GPtrArray *temp_dirs;

static void
remove_recursive (const char *path)
{
  GDir *dir = g_dir_open (path, 0, NULL);
  if (dir) {
    const char *name;
    while ((name = g_dir_read_name (dir))) {
      char *child = g_build_filename (path, name, NULL);
      if (g_file_test (child, G_FILE_TEST_IS_DIR) && !g_file_test (child, G_FILE_TEST_IS_SYMLINK))
        remove_recursive (child);
      else
        g_unlink (child);
      g_free (child);
    }
    g_dir_close (dir);
  }
  g_rmdir (path);
}

static void
remove_temp_dirs (void)
{
  for (guint i = 0; temp_dirs && i < temp_dirs->len; i++)
    remove_recursive (g_ptr_array_index (temp_dirs, i));
}

char *
test_make_temp_dir (void)
{
  GError *error = NULL;
  char *dir = g_dir_make_tmp ("cnclip-test-XXXXXX", &error);
  g_assert_no_error (error);
  if (temp_dirs == NULL) {
    temp_dirs = g_ptr_array_new ();
    atexit (remove_temp_dirs);
  }
  g_ptr_array_add (temp_dirs, g_strdup (dir));
  return dir;
}

void
test_copy_dir (const char *src_dir, const char *dst_dir)
{
  GDir *dir = g_dir_open (src_dir, 0, NULL);
  g_assert_nonnull (dir);
  const char *name;
  while ((name = g_dir_read_name (dir))) {
    char *src = g_build_filename (src_dir, name, NULL);
    if (g_file_test (src, G_FILE_TEST_IS_REGULAR)) {
      gsize len;
      guint8 *data = test_read_file (src, &len);
      char *dst = g_build_filename (dst_dir, name, NULL);
      GError *error = NULL;
      g_file_set_contents (dst, (const char *) data, len, &error);
      g_assert_no_error (error);
      g_free (dst);
      g_free (data);
    }
    g_free (src);
  }
  g_dir_close (dir);
}
