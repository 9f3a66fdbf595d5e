/* test-meta.c: GstClipClassifyMeta, its copies and its structure form. */
#include "config.h"

#include <gst/app/gstappsrc.h>
#include <gst/app/gstappsink.h>

#include "plugin-test.h"

static const GstClipClassifyResult sample_results[] = {
  { (gchar *)"一只猫", 2, 0.75f, 0.3125f, TRUE },
  { (gchar *)"城市夜景", 0, 0.25f, 0.125f, FALSE },
};

static const gfloat sample_embedding[4] = { 0.5f, -0.5f, 0.5f, -0.5f };

static GstBuffer *
buffer_with_meta (gboolean embedding)
{
  GstBuffer *buf = gst_buffer_new_allocate (NULL, 224 * 224 * 3, NULL);

  gst_buffer_memset (buf, 0, 0x42, 224 * 224 * 3);
  GST_BUFFER_PTS (buf) = 7 * GST_SECOND;
  GST_BUFFER_DURATION (buf) = PT_FRAME_DURATION;
  fail_unless (gst_buffer_add_clip_classify_meta (buf, 6 * GST_SECOND, 60, 3, sample_results, 2,
                                                  embedding ? sample_embedding : NULL,
                                                  embedding ? 4 : 0)
               != NULL);
  return buf;
}

/* Asserts @meta holds exactly the sample contents (own copies of them). */
static void
check_sample (const GstClipClassifyMeta *meta, gboolean embedding)
{
  fail_unless (meta != NULL);
  fail_unless_equals_uint64 (gst_clip_classify_meta_get_source_pts (meta), 6 * GST_SECOND);
  fail_unless_equals_uint64 (meta->source_frame, 60);
  fail_unless_equals_int (meta->prompts_generation, 3);
  fail_unless_equals_int (gst_clip_classify_meta_get_n_results (meta), 2);
  fail_unless_equals_int (meta->top_index, 2);
  fail_unless_equals_string (gst_clip_classify_meta_get_top_label (meta), "一只猫");
  for (guint i = 0; i < 2; i++) {
    fail_unless_equals_string (gst_clip_classify_meta_get_label (meta, i), sample_results[i].label);
    fail_unless (meta->results[i].label != sample_results[i].label);
    fail_unless_equals_int (gst_clip_classify_meta_get_label_index (meta, i),
                            sample_results[i].label_index);
    fail_unless_equals_float (gst_clip_classify_meta_get_score (meta, i), sample_results[i].score);
    fail_unless_equals_float (gst_clip_classify_meta_get_cosine (meta, i),
                              sample_results[i].cosine);
    fail_unless_equals_int (gst_clip_classify_meta_get_matched (meta, i),
                            sample_results[i].matched);
  }
  guint dim = 99;
  const gfloat *e = gst_clip_classify_meta_get_embedding (meta, &dim);
  if (embedding) {
    fail_unless_equals_int (dim, 4);
    fail_unless (e != sample_embedding);
    fail_unless (memcmp (e, sample_embedding, sizeof sample_embedding) == 0);
  } else {
    fail_unless (e == NULL);
    fail_unless_equals_int (dim, 0);
  }
}

/* Test that the meta API carries no tags, so transforms keep it. */
GST_START_TEST (test_meta_api)
{
  fail_unless (gst_meta_api_type_get_tags (GST_CLIP_CLASSIFY_META_API_TYPE) == NULL);
  fail_unless_equals_string (g_type_name (GST_CLIP_CLASSIFY_META_API_TYPE),
                             "GstClipClassifyMetaAPI");
  fail_unless (GST_CLIP_CLASSIFY_META_INFO->api == GST_CLIP_CLASSIFY_META_API_TYPE);
  fail_unless_equals_uint64 (GST_CLIP_CLASSIFY_META_INFO->size, sizeof (GstClipClassifyMeta));
}

GST_END_TEST;

/* Test that adding copies the inputs and the accessors return them. */
GST_START_TEST (test_meta_add)
{
  GstBuffer *buf = buffer_with_meta (TRUE);
  GstBuffer *empty = gst_buffer_new ();
  GstClipClassifyMeta *meta;

  check_sample (gst_buffer_get_clip_classify_meta (buf), TRUE);

  /* no results: top index -1, no top label */
  meta = gst_buffer_add_clip_classify_meta (empty, 0, 0, 1, NULL, 0, NULL, 0);
  fail_unless (meta != NULL);
  fail_unless_equals_int (meta->top_index, -1);
  fail_unless (gst_clip_classify_meta_get_top_label (meta) == NULL);
  gst_buffer_unref (buf);
  gst_buffer_unref (empty);
}

GST_END_TEST;

/* Test that the meta survives gst_buffer_copy, deep copies and make_writable. */
GST_START_TEST (test_meta_copies)
{
  GstBuffer *buf = buffer_with_meta (TRUE), *copy, *deep, *writable;

  copy = gst_buffer_copy (buf);
  check_sample (gst_buffer_get_clip_classify_meta (copy), TRUE);
  fail_unless (gst_buffer_get_clip_classify_meta (copy) != gst_buffer_get_clip_classify_meta (buf));
  deep = gst_buffer_copy_deep (buf);
  check_sample (gst_buffer_get_clip_classify_meta (deep), TRUE);

  gst_buffer_ref (buf);
  writable = gst_buffer_make_writable (buf); /* takes one ref */
  fail_unless (writable != buf);
  check_sample (gst_buffer_get_clip_classify_meta (writable), TRUE);
  /* the memory is shared, not copied */
  fail_unless (gst_buffer_peek_memory (writable, 0) == gst_buffer_peek_memory (buf, 0));

  gst_buffer_unref (buf);
  /* the copies own their contents */
  check_sample (gst_buffer_get_clip_classify_meta (copy), TRUE);
  gst_buffer_unref (copy);
  gst_buffer_unref (deep);
  gst_buffer_unref (writable);
}

GST_END_TEST;

/* Runs @buf through @description (between an appsrc and an appsink). */
static GstBuffer *
run_through (const gchar *description, GstBuffer *buf, const gchar *caps)
{
  gchar *launch = g_strdup_printf ("appsrc name=src caps=%s format=time ! %s "
                                   "! appsink name=sink sync=false",
                                   caps, description);
  GError *error = NULL;
  GstElement *pipeline = gst_parse_launch (launch, &error);
  GstElement *src, *sink;
  GstSample *sample;
  GstBuffer *out;

  g_assert_no_error (error);
  src = gst_bin_get_by_name (GST_BIN (pipeline), "src");
  sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  fail_unless_equals_int (gst_element_set_state (pipeline, GST_STATE_PLAYING),
                          GST_STATE_CHANGE_ASYNC);
  fail_unless_equals_int (gst_app_src_push_buffer (GST_APP_SRC (src), buf), GST_FLOW_OK);
  gst_app_src_end_of_stream (GST_APP_SRC (src));
  sample = gst_app_sink_pull_sample (GST_APP_SINK (sink));
  fail_unless (sample != NULL);
  out = gst_buffer_ref (gst_sample_get_buffer (sample));
  gst_sample_unref (sample);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (src);
  gst_object_unref (sink);
  gst_object_unref (pipeline);
  g_free (launch);
  return out;
}

/* Test that the meta survives an in-place transform, a converter and a scaler. */
GST_START_TEST (test_meta_transforms)
{
  static const gchar *caps = "video/x-raw,format=RGB,width=224,height=224,framerate=10/1";
  static const gchar *chains[] = {
    "identity",
    "videoconvert ! video/x-raw,format=I420",
    "videoscale ! video/x-raw,width=112,height=112",
    "queue ! videoconvert ! video/x-raw,format=NV12 ! videoscale ! "
    "video/x-raw,width=320,height=240 ! identity",
  };

  for (guint i = 0; i < G_N_ELEMENTS (chains); i++) {
    GstBuffer *out = run_through (chains[i], buffer_with_meta (TRUE), caps);
    check_sample (gst_buffer_get_clip_classify_meta (out), TRUE);
    gst_buffer_unref (out);
  }
}

GST_END_TEST;

/* Test that the structure form holds exactly the meta's contents. */
GST_START_TEST (test_meta_to_structure)
{
  GstBuffer *buf = buffer_with_meta (TRUE), *plain = buffer_with_meta (FALSE);
  GstStructure *s = gst_clip_classify_meta_to_structure (gst_buffer_get_clip_classify_meta (buf));
  GstStructure *p = gst_clip_classify_meta_to_structure (gst_buffer_get_clip_classify_meta (plain));
  guint64 u;
  guint g;
  gint top;
  const GValue *v;

  fail_unless (gst_structure_has_name (s, "clipclassify-meta"));
  fail_unless_equals_int (gst_structure_n_fields (s), 11);
  fail_unless (gst_structure_get_uint64 (s, "source-pts", &u) && u == 6 * GST_SECOND);
  fail_unless (gst_structure_get_uint64 (s, "source-frame", &u) && u == 60);
  fail_unless (gst_structure_get_uint (s, "prompts-generation", &g) && g == 3);
  fail_unless (gst_structure_get_int (s, "top-index", &top) && top == 2);
  fail_unless_equals_string (gst_structure_get_string (s, "top-label"), "一只猫");
  fail_unless_equals_int (pt_array_size (s, "labels"), 2);
  fail_unless_equals_string (pt_array_string (s, "labels", 0), "一只猫");
  fail_unless_equals_string (pt_array_string (s, "labels", 1), "城市夜景");
  v = pt_array_value (s, "label-indices", 0);
  fail_unless (G_VALUE_HOLDS_UINT (v) && g_value_get_uint (v) == 2);
  v = pt_array_value (s, "label-indices", 1);
  fail_unless (G_VALUE_HOLDS_UINT (v) && g_value_get_uint (v) == 0);
  /* the sample values are exact in binary */
  fail_unless (pt_array_double (s, "scores", 0) == 0.75);
  fail_unless (pt_array_double (s, "scores", 1) == 0.25);
  fail_unless (pt_array_double (s, "cosines", 0) == 0.3125);
  fail_unless (pt_array_double (s, "cosines", 1) == 0.125);
  fail_unless_equals_int (pt_array_size (s, "matched"), 1);
  fail_unless_equals_string (pt_array_string (s, "matched", 0), "一只猫");
  fail_unless_equals_int (pt_array_size (s, "embedding"), 4);
  for (guint i = 0; i < 4; i++) {
    v = pt_array_value (s, "embedding", i);
    fail_unless (G_VALUE_HOLDS_FLOAT (v));
    fail_unless (g_value_get_float (v) == sample_embedding[i]);
  }

  fail_unless_equals_int (gst_structure_n_fields (p), 10);
  fail_unless (!gst_structure_has_field (p, "embedding"));

  gst_structure_free (s);
  gst_structure_free (p);
  gst_buffer_unref (buf);
  gst_buffer_unref (plain);
}

GST_END_TEST;

/* Test that a copy onto a buffer that already has a result replaces it. */
GST_START_TEST (test_meta_copy_replaces)
{
  GstBuffer *src = buffer_with_meta (FALSE);
  GstBuffer *dst = gst_buffer_new ();
  GstClipClassifyResult other = { (gchar *)"下雨的街道", 4, 0.5f, 0.2f, TRUE };

  gst_buffer_add_clip_classify_meta (dst, 0, 1, 1, &other, 1, NULL, 0);
  fail_unless (gst_buffer_copy_into (dst, src, GST_BUFFER_COPY_META, 0, -1));
  check_sample (gst_buffer_get_clip_classify_meta (dst), FALSE);
  /* exactly one meta of the kind */
  gpointer state = NULL;
  GstMeta *m;
  guint n = 0;
  while ((m = gst_buffer_iterate_meta_filtered (dst, &state, GST_CLIP_CLASSIFY_META_API_TYPE)))
    n++;
  fail_unless_equals_int (n, 1);
  gst_buffer_unref (src);
  gst_buffer_unref (dst);
}

GST_END_TEST;

static Suite *
meta_suite (void)
{
  Suite *s = suite_create ("clipclassify-meta");
  TCase *tc = tcase_create ("meta");

  tcase_set_timeout (tc, 300);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_meta_api);
  tcase_add_test (tc, test_meta_add);
  tcase_add_test (tc, test_meta_copies);
  tcase_add_test (tc, test_meta_transforms);
  tcase_add_test (tc, test_meta_to_structure);
  tcase_add_test (tc, test_meta_copy_replaces);
  return s;
}

GST_CHECK_MAIN (meta);
