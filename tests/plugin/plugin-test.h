/* plugin-test.h: helpers shared by the clipclassify element tests (header-only,
 * each test executable includes it once). */
#ifndef CNCLIP_PLUGIN_TEST_H
#define CNCLIP_PLUGIN_TEST_H

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>

#include "test-util.h"
#include "gstclipclassifymeta.h"

#define PT_FRAME_DURATION (100 * GST_MSECOND) /* 10 frames per second */
#define PT_MESSAGE_TIMEOUT (60 * GST_SECOND)

static inline gchar *
pt_model_dir (void)
{
  return test_data_path (TEST_TINY_MODEL);
}

/* Sets a GstValueArray-of-strings property from a NULL-terminated list. */
static inline void
pt_set_strv (gpointer object, const gchar *property, const gchar *const *strv)
{
  GValue array = G_VALUE_INIT;

  gst_value_array_init (&array, 0);
  for (; strv && *strv; strv++) {
    GValue v = G_VALUE_INIT;
    g_value_init (&v, G_TYPE_STRING);
    g_value_set_string (&v, *strv);
    gst_value_array_append_and_take_value (&array, &v);
  }
  g_object_set_property (G_OBJECT (object), property, &array);
  g_value_unset (&array);
}

/* The golden texts @indices (-1 terminated) as a NULL-terminated list
 * (g_free the array only: the strings belong to test-util). */
static inline const gchar **
pt_golden_texts (const int *indices)
{
  int n = 0;
  while (indices[n] >= 0)
    n++;
  const gchar **texts = g_new0 (const gchar *, n + 1);
  for (int i = 0; i < n; i++)
    texts[i] = test_golden_text (indices[i])->text;
  return texts;
}

/* A clipclassify on the tiny model with @prompts (golden text indices, -1
 * terminated, may be NULL), a bus of its own, in a harness with @caps. */
static inline GstHarness *
pt_harness_new (GstElement *element, const int *prompts, const gchar *caps, GstBus **bus)
{
  gchar *model = pt_model_dir ();
  GstHarness *h;

  if (prompts) {
    const gchar **texts = pt_golden_texts (prompts);
    pt_set_strv (element, "prompts", texts);
    g_free (texts);
  }
  g_object_set (element, "model", model, NULL);
  g_free (model);
  *bus = gst_bus_new ();
  gst_element_set_bus (element, *bus);
  h = gst_harness_new_with_element (element, "sink", "src");
  gst_harness_set_src_caps_str (h, caps);
  gst_object_unref (element);
  return h;
}

static inline GstElement *
pt_element (void)
{
  GstElement *e = gst_element_factory_make ("clipclassify", NULL);
  fail_unless (e != NULL, "clipclassify not found: is GST_PLUGIN_PATH set?");
  return e;
}

/* The golden image @index as a packed RGB buffer (its .rgb file). */
static inline GstBuffer *
pt_golden_rgb (int index, GstClockTime pts)
{
  const TestGoldenImage *im = test_golden_image (index);
  gchar *rel = g_build_filename (TEST_TINY_MODEL, "golden", im->rgb, NULL);
  gchar *path = test_data_path (rel);
  gsize length;
  guint8 *data = test_read_file (path, &length);
  GstBuffer *buf;

  fail_unless_equals_uint64 (length, (guint64)im->width * im->height * 3);
  /* GStreamer pads RGB rows to 4 bytes; 224 * 3 needs no padding. */
  fail_unless ((im->width * 3) % 4 == 0);
  buf = gst_buffer_new_wrapped (data, length);
  GST_BUFFER_PTS (buf) = pts;
  GST_BUFFER_DURATION (buf) = PT_FRAME_DURATION;
  g_free (rel);
  g_free (path);
  return buf;
}

/* Converts the RGB buffer @rgb (@width x @height) to @format with
 * @colorimetry (e.g. "bt601", "bt709", "1:4:0:0" for BT.601 full range), as a
 * camera would deliver it. */
static inline GstBuffer *
pt_convert_colorimetry (GstBuffer *rgb, int width, int height, GstVideoFormat format,
                        const gchar *colorimetry)
{
  GstVideoInfo in, out;
  GstVideoFrame fin, fout;
  GstVideoConverter *conv;
  GstBuffer *buf;

  gst_video_info_set_format (&in, GST_VIDEO_FORMAT_RGB, width, height);
  gst_video_info_set_format (&out, format, width, height);
  fail_unless (gst_video_colorimetry_from_string (&out.colorimetry, colorimetry));
  buf = gst_buffer_new_allocate (NULL, GST_VIDEO_INFO_SIZE (&out), NULL);
  fail_unless (gst_video_frame_map (&fin, &in, rgb, GST_MAP_READ));
  fail_unless (gst_video_frame_map (&fout, &out, buf, GST_MAP_WRITE));
  conv = gst_video_converter_new (
      &in, &out,
      gst_structure_new ("options", GST_VIDEO_CONVERTER_OPT_DITHER_METHOD,
                         GST_TYPE_VIDEO_DITHER_METHOD, GST_VIDEO_DITHER_NONE, NULL));
  gst_video_converter_frame (conv, &fin, &fout);
  gst_video_converter_free (conv);
  gst_video_frame_unmap (&fin);
  gst_video_frame_unmap (&fout);
  GST_BUFFER_PTS (buf) = GST_BUFFER_PTS (rgb);
  GST_BUFFER_DURATION (buf) = GST_BUFFER_DURATION (rgb);
  return buf;
}

/* Same with BT.601 limited range. */
static inline GstBuffer *
pt_convert (GstBuffer *rgb, int width, int height, GstVideoFormat format)
{
  return pt_convert_colorimetry (rgb, width, height, format, "bt601");
}

/* Reference scores of golden image 0 against golden texts @texts (-1
 * terminated): softmax over their logits (logits_per_image row 0) and cosines
 * (logits / logit_scale_exp), in double. */
static inline int
pt_reference (const int *texts, double *probs, double *cosines)
{
  int ndim;
  gint64 shape[8];
  float *logits = test_golden_tensor ("logits_per_image", &ndim, shape);
  float *scale = test_golden_tensor ("logit_scale_exp", NULL, NULL);
  double max = -INFINITY, sum = 0;
  int n = 0;

  fail_unless_equals_int (ndim, 2);
  for (n = 0; texts[n] >= 0; n++) {
    double l = logits[texts[n]]; /* row 0 */
    cosines[n] = l / scale[0];
    max = MAX (max, l);
  }
  for (int i = 0; i < n; i++) {
    probs[i] = exp (logits[texts[i]] - max);
    sum += probs[i];
  }
  for (int i = 0; i < n; i++)
    probs[i] /= sum;
  g_free (logits);
  g_free (scale);
  return n;
}

/* Pops every `clipclassify`-family element message named @name from @bus
 * (transfer full list of GstMessage). */
static inline GList *
pt_pop_messages (GstBus *bus, const gchar *name)
{
  GList *out = NULL;
  GstMessage *m;

  while ((m = gst_bus_pop_filtered (bus, GST_MESSAGE_ELEMENT)) != NULL) {
    if (gst_structure_has_name (gst_message_get_structure (m), name))
      out = g_list_append (out, m);
    else
      gst_message_unref (m);
  }
  return out;
}

/* Waits (up to PT_MESSAGE_TIMEOUT) for an element message named @name whose
 * uint field "generation" is >= @generation (0: any). */
static inline GstMessage *
pt_wait_message (GstBus *bus, const gchar *name, guint generation)
{
  gint64 deadline = g_get_monotonic_time () + PT_MESSAGE_TIMEOUT / 1000;

  for (;;) {
    gint64 left = deadline - g_get_monotonic_time ();
    GstMessage *m;
    guint g = 0;

    if (left <= 0)
      return NULL;
    m = gst_bus_timed_pop_filtered (bus, left * 1000, GST_MESSAGE_ELEMENT | GST_MESSAGE_ERROR);
    if (m == NULL)
      return NULL;
    if (GST_MESSAGE_TYPE (m) == GST_MESSAGE_ERROR)
      return m;
    const GstStructure *s = gst_message_get_structure (m);
    if (gst_structure_has_name (s, name)
        && (generation == 0 || (gst_structure_get_uint (s, "generation", &g) && g >= generation)))
      return m;
    gst_message_unref (m);
  }
}

static inline guint
pt_array_size (const GstStructure *s, const gchar *field)
{
  const GValue *v = gst_structure_get_value (s, field);
  fail_unless (v != NULL && GST_VALUE_HOLDS_ARRAY (v), "no array %s", field);
  return gst_value_array_get_size (v);
}

static inline const GValue *
pt_array_value (const GstStructure *s, const gchar *field, guint i)
{
  const GValue *v = gst_structure_get_value (s, field);
  fail_unless (v != NULL && GST_VALUE_HOLDS_ARRAY (v), "no array %s", field);
  fail_unless (i < gst_value_array_get_size (v));
  return gst_value_array_get_value (v, i);
}

static inline const gchar *
pt_array_string (const GstStructure *s, const gchar *field, guint i)
{
  const GValue *v = pt_array_value (s, field, i);
  fail_unless (G_VALUE_HOLDS_STRING (v));
  return g_value_get_string (v);
}

static inline gdouble
pt_array_double (const GstStructure *s, const gchar *field, guint i)
{
  const GValue *v = pt_array_value (s, field, i);
  fail_unless (G_VALUE_HOLDS_DOUBLE (v));
  return g_value_get_double (v);
}

static inline guint64
pt_stat (GstElement *element, const gchar *field)
{
  GstStructure *stats = NULL;
  guint64 v = 0;

  g_object_get (element, "stats", &stats, NULL);
  fail_unless (stats != NULL);
  fail_unless (gst_structure_get_uint64 (stats, field, &v), "no stat %s", field);
  gst_structure_free (stats);
  return v;
}

/* Index of @label among golden texts @texts (-1 terminated), or -1. */
static inline int
pt_text_index (const int *texts, const gchar *label)
{
  for (int i = 0; texts[i] >= 0; i++)
    if (g_strcmp0 (test_golden_text (texts[i])->text, label) == 0)
      return i;
  return -1;
}

/* ------------------------------------------------------------------------ */
/* A slow model: the tiny model with a larger input and more vision layers,  */
/* so that one forward pass lasts long enough to stop or flush in its middle. */

#include <json-glib/json-glib.h>

static inline void
pt_edit_json (const gchar *path, const gchar *member, const gchar *key, gint64 value)
{
  JsonParser *parser = json_parser_new ();
  JsonGenerator *gen;
  JsonObject *root, *obj;

  fail_unless (json_parser_load_from_file (parser, path, NULL));
  root = json_node_get_object (json_parser_get_root (parser));
  obj = member ? json_object_get_object_member (root, member) : root;
  json_object_set_int_member (obj, key, value);
  gen = json_generator_new ();
  json_generator_set_root (gen, json_parser_get_root (parser));
  fail_unless (json_generator_to_file (gen, path, NULL));
  g_object_unref (gen);
  g_object_unref (parser);
}

typedef struct
{
  gchar *name;
  const gchar *dtype;
  gint64 shape[4];
  int ndim;
  GBytes *data;
} PtTensor;

static inline void
pt_tensor_free (gpointer p)
{
  PtTensor *t = p;
  g_free (t->name);
  g_bytes_unref (t->data);
  g_free (t);
}

/* Writes @tensors as a safetensors file. */
static inline void
pt_write_safetensors (const gchar *path, GPtrArray *tensors)
{
  JsonBuilder *b = json_builder_new ();
  JsonGenerator *gen = json_generator_new ();
  GString *header;
  gsize offset = 0;
  FILE *f;
  guint64 n;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "__metadata__");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "format");
  json_builder_add_string_value (b, "pt");
  json_builder_end_object (b);
  for (guint i = 0; i < tensors->len; i++) {
    PtTensor *t = tensors->pdata[i];
    gsize size = g_bytes_get_size (t->data);
    json_builder_set_member_name (b, t->name);
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "dtype");
    json_builder_add_string_value (b, t->dtype);
    json_builder_set_member_name (b, "shape");
    json_builder_begin_array (b);
    for (int d = 0; d < t->ndim; d++)
      json_builder_add_int_value (b, t->shape[d]);
    json_builder_end_array (b);
    json_builder_set_member_name (b, "data_offsets");
    json_builder_begin_array (b);
    json_builder_add_int_value (b, offset);
    json_builder_add_int_value (b, offset + size);
    json_builder_end_array (b);
    json_builder_end_object (b);
    offset += size;
  }
  json_builder_end_object (b);
  json_generator_set_root (gen, json_builder_get_root (b));
  header = g_string_new (json_generator_to_data (gen, NULL));
  while ((8 + header->len) % 8)
    g_string_append_c (header, ' ');
  f = fopen (path, "wb");
  fail_unless (f != NULL);
  n = GUINT64_TO_LE (header->len);
  fwrite (&n, 8, 1, f);
  fwrite (header->str, 1, header->len, f);
  for (guint i = 0; i < tensors->len; i++) {
    PtTensor *t = tensors->pdata[i];
    fwrite (g_bytes_get_data (t->data, NULL), 1, g_bytes_get_size (t->data), f);
  }
  fail_unless (fclose (f) == 0);
  g_string_free (header, TRUE);
  json_node_unref (json_builder_get_root (b));
  g_object_unref (b);
  g_object_unref (gen);
}

static inline PtTensor *
pt_tensor_new (const gchar *name, const gchar *dtype, int ndim, const gint64 *shape, GBytes *data)
{
  PtTensor *t = g_new0 (PtTensor, 1);
  t->name = g_strdup (name);
  t->dtype = dtype;
  t->ndim = ndim;
  memcpy (t->shape, shape, sizeof (gint64) * ndim);
  t->data = data;
  return t;
}

/* A copy of the tiny model whose image tower takes @image_size pixels and has
 * @layers layers (copies of the two real ones). Removed at exit. */
static inline gchar *
pt_make_slow_model (int image_size, int layers)
{
  gchar *tiny = pt_model_dir ();
  gchar *dir = test_make_temp_dir ();
  gchar *path, *src_path;
  gsize length;
  guint8 *file;
  guint64 header_len;
  JsonParser *parser = json_parser_new ();
  JsonObject *root;
  GList *names, *l;
  GPtrArray *tensors = g_ptr_array_new_with_free_func (pt_tensor_free);
  const int side = image_size / 16, tokens = side * side + 1;
  const guint8 *data;

  test_copy_dir (tiny, dir);
  path = g_build_filename (dir, "config.json", NULL);
  pt_edit_json (path, "vision_config", "image_size", image_size);
  pt_edit_json (path, "vision_config", "num_hidden_layers", layers);
  g_free (path);
  path = g_build_filename (dir, "preprocessor_config.json", NULL);
  {
    JsonParser *pp = json_parser_new ();
    JsonGenerator *gen = json_generator_new ();
    fail_unless (json_parser_load_from_file (pp, path, NULL));
    JsonObject *size
        = json_object_get_object_member (json_node_get_object (json_parser_get_root (pp)), "size");
    json_object_set_int_member (size, "height", image_size);
    json_object_set_int_member (size, "width", image_size);
    json_generator_set_root (gen, json_parser_get_root (pp));
    fail_unless (json_generator_to_file (gen, path, NULL));
    g_object_unref (gen);
    g_object_unref (pp);
  }
  g_free (path);

  src_path = g_build_filename (tiny, "model.safetensors", NULL);
  file = test_read_file (src_path, &length);
  memcpy (&header_len, file, 8);
  header_len = GUINT64_FROM_LE (header_len);
  fail_unless (json_parser_load_from_data (parser, (const gchar *)file + 8, header_len, NULL));
  root = json_node_get_object (json_parser_get_root (parser));
  data = file + 8 + header_len;
  names = json_object_get_members (root);
  names = g_list_sort (names, (GCompareFunc)g_strcmp0);
  for (l = names; l; l = l->next) {
    const gchar *name = l->data;
    JsonObject *info;
    JsonArray *shape, *offsets;
    gint64 b, e;
    int layer;

    if (g_str_equal (name, "__metadata__"))
      continue;
    info = json_object_get_object_member (root, name);
    shape = json_object_get_array_member (info, "shape");
    offsets = json_object_get_array_member (info, "data_offsets");
    b = json_array_get_int_element (offsets, 0);
    e = json_array_get_int_element (offsets, 1);

    gint64 dims[4] = { 0, 0, 0, 0 };
    int ndim = MIN (json_array_get_length (shape), 4);
    const gchar *dtype = g_intern_string (json_object_get_string_member (info, "dtype"));
    for (int d = 0; d < ndim; d++)
      dims[d] = json_array_get_int_element (shape, d);

    if (g_str_equal (name, "vision_model.embeddings.position_ids")) {
      gint64 *ids = g_new (gint64, tokens);
      for (int i = 0; i < tokens; i++)
        ids[i] = GINT64_TO_LE (i);
      dims[1] = tokens;
      g_ptr_array_add (tensors, pt_tensor_new (name, "I64", 2, dims,
                                               g_bytes_new_take (ids, sizeof (gint64) * tokens)));
    } else if (g_str_equal (name, "vision_model.embeddings.position_embedding.weight")) {
      gint64 width = dims[1];
      float *pos = g_new (float, tokens *width);
      const float *orig = (const float *)(data + b);
      /* Patch positions repeat the original 196: plausible, and cheap. */
      for (int t = 0; t < tokens; t++)
        memcpy (pos + t * width, orig + (t == 0 ? 0 : 1 + (t - 1) % 196) * width,
                sizeof (float) * width);
      dims[0] = tokens;
      g_ptr_array_add (tensors,
                       pt_tensor_new (name, "F32", 2, dims,
                                      g_bytes_new_take (pos, sizeof (float) * tokens * width)));
    } else if (sscanf (name, "vision_model.encoder.layers.%d.", &layer) == 1) {
      const gchar *rest = strchr (name + strlen ("vision_model.encoder.layers."), '.');
      for (int copy = layer; copy < layers; copy += 2) {
        gchar *n = g_strdup_printf ("vision_model.encoder.layers.%d%s", copy, rest);
        g_ptr_array_add (tensors,
                         pt_tensor_new (n, dtype, ndim, dims, g_bytes_new (data + b, e - b)));
        g_free (n);
      }
    } else {
      g_ptr_array_add (tensors,
                       pt_tensor_new (name, dtype, ndim, dims, g_bytes_new (data + b, e - b)));
    }
  }
  g_list_free (names);
  g_object_unref (parser);
  g_free (file);
  g_free (src_path);

  path = g_build_filename (dir, "model.safetensors", NULL);
  pt_write_safetensors (path, tensors);
  g_free (path);
  g_ptr_array_unref (tensors);
  g_free (tiny);
  return dir;
}

#endif
