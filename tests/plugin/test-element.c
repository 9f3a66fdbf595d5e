/* test-element.c: clipclassify in sync mode against the golden reference. */
#include "config.h"

#include <glib/gstdio.h>

#include "plugin-test.h"
/* The model cache is internal to the plugin; its unit test compiles it in. */
#include "../../plugin/clipmodelcache.c"
#include "../../plugin/clipframe.c"

#define RGB_CAPS "video/x-raw,format=RGB,width=224,height=224,framerate=10/1"

static const int five_texts[] = { 0, 1, 2, 3, 4, -1 };

/* Reference order of the five texts: indices into five_texts, best first. */
static void
reference_order (const double *scores, int n, int *order)
{
  for (int i = 0; i < n; i++)
    order[i] = i;
  for (int i = 1; i < n; i++)
    for (int j = i; j > 0 && scores[order[j]] > scores[order[j - 1]]; j--) {
      int t = order[j];
      order[j] = order[j - 1];
      order[j - 1] = t;
    }
}

/* Pushes @buf, pulls the output and returns it (the caller unrefs). */
static GstBuffer *
push_pull (GstHarness *h, GstBuffer *buf)
{
  fail_unless_equals_int (gst_harness_push (h, buf), GST_FLOW_OK);
  return gst_harness_pull (h);
}

/* Scores of the golden image in @format (YUV: with @colorimetry), by golden
 * text position. */
static void
scores_for_colorimetry (GstVideoFormat format, const gchar *colorimetry, gboolean cosine,
                        double *scores)
{
  GstElement *e = pt_element ();
  GstBus *bus;
  GstHarness *h;
  GstBuffer *in, *out;
  GstClipClassifyMeta *meta;
  gchar *caps;

  g_object_set (e, "top-k", 0, "score-mode", cosine ? 1 : 0, NULL);
  caps = g_strdup_printf ("video/x-raw,format=%s,width=224,height=224,framerate=10/1%s%s",
                          gst_video_format_to_string (format), colorimetry ? ",colorimetry=" : "",
                          colorimetry ? colorimetry : "");
  h = pt_harness_new (e, five_texts, caps, &bus);
  in = pt_golden_rgb (0, 0);
  if (format != GST_VIDEO_FORMAT_RGB) {
    GstBuffer *conv
        = pt_convert_colorimetry (in, 224, 224, format, colorimetry ? colorimetry : "bt601");
    gst_buffer_unref (in);
    in = conv;
  }
  out = push_pull (h, in);
  meta = gst_buffer_get_clip_classify_meta (out);
  fail_unless (meta != NULL);
  fail_unless_equals_int (meta->n_results, 5);
  for (guint i = 0; i < meta->n_results; i++) {
    int k = pt_text_index (five_texts, meta->results[i].label);
    fail_unless (k >= 0);
    scores[k] = meta->results[i].score;
  }
  gst_buffer_unref (out);
  gst_harness_teardown (h);
  gst_object_unref (bus);
  g_free (caps);
}

static void
scores_for_format (GstVideoFormat format, gboolean cosine, double *scores)
{
  gboolean yuv = format == GST_VIDEO_FORMAT_I420 || format == GST_VIDEO_FORMAT_NV12;
  scores_for_colorimetry (format, yuv ? "bt601" : NULL, cosine, scores);
}

typedef struct
{
  const gchar *name;
  GType type;                 /* G_TYPE_ENUM: any enum */
  const gchar *default_value; /* serialized; NULL = NULL string / empty array */
  gboolean ready_only;        /* changeable only in NULL/READY */
} PropertyCase;

/* The property table (names, types and defaults are a contract),
 * plus backend, precision and weights-file. */
static const PropertyCase property_cases[] = {
  { "model", G_TYPE_STRING, NULL, TRUE },
  { "weights-file", G_TYPE_STRING, NULL, TRUE },
  { "backend", G_TYPE_ENUM, "auto", TRUE },
  { "precision", G_TYPE_ENUM, "fp32", TRUE },
  { "prompts", G_TYPE_NONE, NULL, FALSE }, /* GstValueArray */
  { "prompts-file", G_TYPE_STRING, NULL, FALSE },
  { "prompt-template", G_TYPE_STRING, "{}", FALSE },
  { "negative-prompts", G_TYPE_NONE, NULL, FALSE },
  { "score-mode", G_TYPE_ENUM, "softmax", FALSE },
  { "threshold", G_TYPE_DOUBLE, "0.5", FALSE },
  { "top-k", G_TYPE_UINT, "5", FALSE },
  { "inference-interval", G_TYPE_UINT, "1", FALSE },
  { "sample-interval", G_TYPE_UINT64, "0", FALSE },
  { "mode", G_TYPE_ENUM, "sync", TRUE },
  { "post-messages", G_TYPE_BOOLEAN, "true", FALSE },
  { "attach-embedding", G_TYPE_BOOLEAN, "false", FALSE },
  { "n-threads", G_TYPE_INT, "0", FALSE },
  { "source-id", G_TYPE_STRING, "", FALSE },
  { "stats", G_TYPE_NONE, NULL, FALSE }, /* GstStructure, read-only */
};

/* Test that the properties are exactly the documented ones: types, defaults, descriptions. */
GST_START_TEST (test_properties)
{
  GstElement *e = pt_element ();
  GObjectClass *klass = G_OBJECT_GET_CLASS (e);
  guint n_all, n_own = 0;
  GParamSpec **all = g_object_class_list_properties (klass, &n_all);

  for (guint i = 0; i < n_all; i++)
    if (all[i]->owner_type == G_OBJECT_TYPE (e))
      n_own++;
  fail_unless_equals_int (n_own, G_N_ELEMENTS (property_cases));
  g_free (all);

  for (guint i = 0; i < G_N_ELEMENTS (property_cases); i++) {
    const PropertyCase *pc = &property_cases[i];
    GParamSpec *ps = g_object_class_find_property (klass, pc->name);
    GValue v = G_VALUE_INIT;

    fail_unless (ps != NULL, "no property %s", pc->name);
    fail_unless (strlen (g_param_spec_get_blurb (ps)) > 20, "%s: no real description", pc->name);
    fail_unless_equals_int (!!(ps->flags & GST_PARAM_MUTABLE_READY), pc->ready_only);
    g_value_init (&v, ps->value_type);
    g_object_get_property (G_OBJECT (e), pc->name, &v);
    if (g_str_equal (pc->name, "stats")) {
      fail_unless (ps->value_type == GST_TYPE_STRUCTURE);
      fail_unless (!(ps->flags & G_PARAM_WRITABLE));
    } else if (pc->type == G_TYPE_NONE) {
      fail_unless (ps->value_type == GST_TYPE_ARRAY);
      fail_unless_equals_int (gst_value_array_get_size (&v), 0);
    } else if (pc->type == G_TYPE_ENUM) {
      fail_unless (G_TYPE_IS_ENUM (ps->value_type));
      GEnumValue *ev = g_enum_get_value (g_type_class_peek (ps->value_type), g_value_get_enum (&v));
      fail_unless_equals_string (ev->value_nick, pc->default_value);
    } else if (pc->type == G_TYPE_STRING) {
      fail_unless (ps->value_type == G_TYPE_STRING);
      fail_unless_equals_string (g_value_get_string (&v), pc->default_value);
    } else {
      gchar *str;
      fail_unless (ps->value_type == pc->type, "%s: type %s", pc->name,
                   g_type_name (ps->value_type));
      str = gst_value_serialize (&v);
      fail_unless_equals_string (str, pc->default_value);
      g_free (str);
    }
    g_value_unset (&v);
  }
  gst_object_unref (e);
}

GST_END_TEST;

/* Test that the golden RGB frame and five golden texts give the reference scores and cosines. */
GST_START_TEST (test_golden_softmax)
{
  double probs[5], cosines[5];
  int order[5];
  int n = pt_reference (five_texts, probs, cosines);
  GstElement *e = pt_element ();
  GstBus *bus;
  GstHarness *h;
  GstBuffer *out;
  GstClipClassifyMeta *meta;
  GList *msgs;
  const GstStructure *s;
  guint64 u;
  GstClockTime pts = 3 * GST_SECOND;

  fail_unless_equals_int (n, 5);
  reference_order (probs, n, order);
  g_object_set (e, "top-k", 0, "threshold", 0.0, "source-id", "cam-7", NULL);
  h = pt_harness_new (e, five_texts, RGB_CAPS, &bus);
  out = push_pull (h, pt_golden_rgb (0, pts));

  meta = gst_buffer_get_clip_classify_meta (out);
  fail_unless (meta != NULL);
  fail_unless_equals_uint64 (meta->source_pts, pts);
  fail_unless_equals_uint64 (meta->source_frame, 0);
  fail_unless_equals_int (meta->n_results, 5);
  fail_unless_equals_int (meta->top_index, order[0]);
  for (int i = 0; i < 5; i++) {
    const GstClipClassifyResult *r = &meta->results[i];
    int k = order[i];
    fail_unless_equals_string (r->label, test_golden_text (five_texts[k])->text);
    fail_unless_equals_int (r->label_index, k);
    fail_unless (fabs (r->score - probs[k]) <= 1e-5, "label %d: prob %.8f, reference %.8f", k,
                 r->score, probs[k]);
    fail_unless (fabs (r->cosine - cosines[k]) <= 1e-5, "label %d: cosine %.8f, reference %.8f", k,
                 r->cosine, cosines[k]);
    fail_unless (r->matched);
  }
  fail_unless (gst_clip_classify_meta_get_embedding (meta, NULL) == NULL);
  gst_buffer_unref (out);

  msgs = pt_pop_messages (bus, "clipclassify");
  fail_unless_equals_int (g_list_length (msgs), 1);
  s = gst_message_get_structure (msgs->data);
  fail_unless (GST_MESSAGE_SRC (msgs->data) == GST_OBJECT (h->element));
  fail_unless (gst_structure_get_uint64 (s, "timestamp", &u) && u == pts);
  fail_unless (gst_structure_get_uint64 (s, "stream-time", &u) && u == pts);
  fail_unless (gst_structure_get_uint64 (s, "running-time", &u) && u == pts);
  fail_unless (gst_structure_get_uint64 (s, "duration", &u) && u == PT_FRAME_DURATION);
  fail_unless (gst_structure_get_uint64 (s, "frame-number", &u) && u == 0);
  fail_unless (gst_structure_get_uint64 (s, "source-pts", &u) && u == pts);
  fail_unless (gst_structure_get_uint64 (s, "inference-time", &u) && u > 0);
  fail_unless_equals_string (gst_structure_get_string (s, "source-id"), "cam-7");
  fail_unless_equals_int (pt_array_size (s, "labels"), 5);
  fail_unless_equals_int (pt_array_size (s, "matched"), 5);
  for (int i = 0; i < 5; i++) {
    int k = order[i];
    fail_unless_equals_string (pt_array_string (s, "labels", i),
                               test_golden_text (five_texts[k])->text);
    fail_unless (fabs (pt_array_double (s, "scores", i) - probs[k]) <= 1e-5);
    fail_unless (fabs (pt_array_double (s, "cosines", i) - cosines[k]) <= 1e-5);
  }
  fail_unless_equals_string (gst_structure_get_string (s, "top-label"),
                             test_golden_text (five_texts[order[0]])->text);
  gdouble top;
  fail_unless (gst_structure_get_double (s, "top-score", &top));
  fail_unless (fabs (top - probs[order[0]]) <= 1e-5);
  g_list_free_full (msgs, (GDestroyNotify)gst_message_unref);

  gst_harness_teardown (h);
  gst_object_unref (bus);
}

GST_END_TEST;

/* Test that score-mode=cosine reports the reference cosines as scores. */
GST_START_TEST (test_golden_cosine)
{
  double probs[5], cosines[5], scores[5];

  pt_reference (five_texts, probs, cosines);
  scores_for_format (GST_VIDEO_FORMAT_RGB, TRUE, scores);
  for (int k = 0; k < 5; k++)
    fail_unless (fabs (scores[k] - cosines[k]) <= 1e-5, "label %d: %.8f vs %.8f", k, scores[k],
                 cosines[k]);
}

GST_END_TEST;

/* Test that top-k truncates to the best k and threshold decides matched. */
GST_START_TEST (test_top_k_threshold)
{
  double probs[5], cosines[5];
  int order[5];
  GstElement *e = pt_element ();
  GstBus *bus;
  GstHarness *h;
  GstBuffer *out;
  GstClipClassifyMeta *meta;
  GList *msgs;
  const GstStructure *s;
  double threshold;

  pt_reference (five_texts, probs, cosines);
  reference_order (probs, 5, order);
  /* Between the second and the third best: exactly two match. */
  threshold = (probs[order[1]] + probs[order[2]]) / 2;
  fail_unless (probs[order[1]] - probs[order[2]] > 1e-4,
               "reference probabilities too close to split");
  g_object_set (e, "top-k", 3, "threshold", threshold, NULL);
  h = pt_harness_new (e, five_texts, RGB_CAPS, &bus);
  out = push_pull (h, pt_golden_rgb (0, 0));
  meta = gst_buffer_get_clip_classify_meta (out);
  fail_unless (meta != NULL);
  fail_unless_equals_int (gst_clip_classify_meta_get_n_results (meta), 3);
  for (guint i = 0; i < 3; i++) {
    fail_unless_equals_int (gst_clip_classify_meta_get_label_index (meta, i), order[i]);
    fail_unless_equals_int (gst_clip_classify_meta_get_matched (meta, i), i < 2);
  }
  fail_unless_equals_string (gst_clip_classify_meta_get_top_label (meta),
                             test_golden_text (order[0])->text);
  gst_buffer_unref (out);

  msgs = pt_pop_messages (bus, "clipclassify");
  fail_unless_equals_int (g_list_length (msgs), 1);
  s = gst_message_get_structure (msgs->data);
  fail_unless_equals_int (pt_array_size (s, "labels"), 3);
  fail_unless_equals_int (pt_array_size (s, "scores"), 3);
  fail_unless_equals_int (pt_array_size (s, "cosines"), 3);
  fail_unless_equals_int (pt_array_size (s, "matched"), 2);
  fail_unless_equals_string (pt_array_string (s, "matched", 0), test_golden_text (order[0])->text);
  fail_unless_equals_string (pt_array_string (s, "matched", 1), test_golden_text (order[1])->text);
  g_list_free_full (msgs, (GDestroyNotify)gst_message_unref);

  gst_harness_teardown (h);
  gst_object_unref (bus);
}

GST_END_TEST;

/* Test that negative prompts take part in the softmax but are never reported. */
GST_START_TEST (test_negative_prompts)
{
  static const int positives[] = { 0, 1, 2, -1 };
  static const int negatives[] = { 3, 4, -1 };
  double probs[5], cosines[5];
  GstElement *e = pt_element ();
  GstBus *bus;
  GstHarness *h;
  GstBuffer *out;
  GstClipClassifyMeta *meta;
  const gchar **neg = pt_golden_texts (negatives);
  GList *msgs;

  /* five_texts = positives followed by negatives, so the reference softmax
   * over all five applies to the first three. */
  pt_reference (five_texts, probs, cosines);
  pt_set_strv (e, "negative-prompts", neg);
  g_free (neg);
  g_object_set (e, "top-k", 0, "threshold", 0.0, NULL);
  h = pt_harness_new (e, positives, RGB_CAPS, &bus);
  out = push_pull (h, pt_golden_rgb (0, 0));
  meta = gst_buffer_get_clip_classify_meta (out);
  fail_unless (meta != NULL);
  fail_unless_equals_int (meta->n_results, 3);
  double sum = 0;
  for (guint i = 0; i < 3; i++) {
    int k = meta->results[i].label_index;
    fail_unless (k < 3);
    fail_unless_equals_string (meta->results[i].label, test_golden_text (k)->text);
    fail_unless (fabs (meta->results[i].score - probs[k]) <= 1e-5);
    sum += meta->results[i].score;
  }
  /* The negatives took their share of the probability mass. */
  fail_unless (fabs (sum - (1.0 - probs[3] - probs[4])) <= 1e-5);
  gst_buffer_unref (out);

  msgs = pt_pop_messages (bus, "clipclassify");
  fail_unless_equals_int (g_list_length (msgs), 1);
  const GstStructure *s = gst_message_get_structure (msgs->data);
  fail_unless_equals_int (pt_array_size (s, "labels"), 3);
  for (guint i = 0; i < 3; i++) {
    fail_unless (pt_text_index (negatives, pt_array_string (s, "labels", i)) < 0);
  }
  for (guint i = 0; i < pt_array_size (s, "matched"); i++)
    fail_unless (pt_text_index (negatives, pt_array_string (s, "matched", i)) < 0);
  g_list_free_full (msgs, (GDestroyNotify)gst_message_unref);
  gst_harness_teardown (h);
  gst_object_unref (bus);
}

GST_END_TEST;

/* Test that I420 and NV12 frames of the golden picture, in each colorimetry, score close to RGB. */
GST_START_TEST (test_yuv_close_to_rgb)
{
  static const GstVideoFormat formats[] = {
    GST_VIDEO_FORMAT_I420,
    GST_VIDEO_FORMAT_NV12,
  };
  /* BT.601 and BT.709, limited and full range */
  static const gchar *colorimetries[] = { "bt601", "bt709", "1:4:0:0", "1:3:5:1" };
  /* RGB -> 4:2:0 (GstVideoConverter) -> RGB (the core) loses the gradient's
   * chroma detail. Measured with the tiny model, over the four colorimetries
   * and both formats (which hold the same samples): softmax scores differ by
   * up to 0.0098 and cosines by up to 0.0037 (BT.709 full range); the softmax
   * amplifies cosine differences by the logit scale (18). Reading the data
   * with the wrong matrix or range gives 0.020 (BT.709 as BT.601) and 0.0055
   * (full range as limited), so the bounds sit just above the measurement;
   * test_yuv_matrix checks the mapping itself. */
  const double prob_bound = 0.012, cosine_bound = 0.0045;
  double rgb[5], rgb_cos[5], yuv[5];

  scores_for_format (GST_VIDEO_FORMAT_RGB, FALSE, rgb);
  scores_for_format (GST_VIDEO_FORMAT_RGB, TRUE, rgb_cos);
  for (guint f = 0; f < G_N_ELEMENTS (formats); f++) {
    for (guint c = 0; c < G_N_ELEMENTS (colorimetries); c++) {
      const gchar *name = gst_video_format_to_string (formats[f]);
      double worst = 0, worst_cos = 0;

      scores_for_colorimetry (formats[f], colorimetries[c], FALSE, yuv);
      for (int k = 0; k < 5; k++)
        worst = MAX (worst, fabs (yuv[k] - rgb[k]));
      scores_for_colorimetry (formats[f], colorimetries[c], TRUE, yuv);
      for (int k = 0; k < 5; k++)
        worst_cos = MAX (worst_cos, fabs (yuv[k] - rgb_cos[k]));
      if (g_getenv ("PT_VERBOSE"))
        g_printerr ("%s %s: max |score - rgb| softmax %.3g, cosine %.3g\n", name, colorimetries[c],
                    worst, worst_cos);
      fail_unless (worst > 0, "%s: identical to RGB, was it converted?", name);
      fail_unless (worst <= prob_bound, "%s %s: softmax differs by %g", name, colorimetries[c],
                   worst);
      fail_unless (worst_cos <= cosine_bound, "%s %s: cosine differs by %g", name, colorimetries[c],
                   worst_cos);
    }
  }
}

GST_END_TEST;

typedef struct
{
  const gchar *colorimetry;
  CnclipYuvMatrix matrix;
} MatrixCase;

static const MatrixCase matrix_cases[] = {
  { "bt601", CNCLIP_YUV_BT601 },
  { "bt709", CNCLIP_YUV_BT709 },
  { "1:4:0:0", CNCLIP_YUV_BT601_FULL }, /* JPEG */
  { "1:3:5:1", CNCLIP_YUV_BT709_FULL },
  { "2:6:13:7", CNCLIP_YUV_BT709 }, /* BT.2020 limited: nearest the core has */
  { "2:5:6:6", CNCLIP_YUV_BT709 },  /* SMPTE 240M */
  { "2:2:0:0", CNCLIP_YUV_BT601 },  /* FCC */
  { "2:0:0:0", CNCLIP_YUV_BT601 },  /* unknown matrix */
};

/* Test that GStreamer colorimetries map to the core's YUV matrices. */
GST_START_TEST (test_yuv_matrix)
{
  for (guint i = 0; i < G_N_ELEMENTS (matrix_cases); i++) {
    GstVideoColorimetry c;
    fail_unless (gst_video_colorimetry_from_string (&c, matrix_cases[i].colorimetry));
    fail_unless_equals_int (clip_frame_yuv_matrix (&c), matrix_cases[i].matrix);
  }
}

GST_END_TEST;

/* Test that the packed RGB variants give exactly the RGB scores and GRAY8 runs. */
GST_START_TEST (test_packed_formats)
{
  static const GstVideoFormat same[] = {
    GST_VIDEO_FORMAT_BGR,  GST_VIDEO_FORMAT_RGBA, GST_VIDEO_FORMAT_BGRA, GST_VIDEO_FORMAT_RGBx,
    GST_VIDEO_FORMAT_BGRx, GST_VIDEO_FORMAT_xRGB, GST_VIDEO_FORMAT_xBGR,
  };
  double rgb[5], other[5], sum = 0;

  scores_for_format (GST_VIDEO_FORMAT_RGB, FALSE, rgb);
  for (guint f = 0; f < G_N_ELEMENTS (same); f++) {
    scores_for_format (same[f], FALSE, other);
    for (int k = 0; k < 5; k++)
      fail_unless (fabs (other[k] - rgb[k]) <= 1e-6, "%s label %d: %g vs %g",
                   gst_video_format_to_string (same[f]), k, other[k], rgb[k]);
  }
  scores_for_format (GST_VIDEO_FORMAT_GRAY8, FALSE, other);
  for (int k = 0; k < 5; k++)
    sum += other[k];
  fail_unless (fabs (sum - 1.0) <= 1e-5);
}

GST_END_TEST;

/* Test that video bytes pass unchanged and the memory is shared, not copied. */
GST_START_TEST (test_video_unchanged)
{
  GstElement *e = pt_element ();
  GstBus *bus;
  GstHarness *h;
  GstBuffer *in, *out;
  GstMemory *in_mem;
  GstMapInfo a, b;

  h = pt_harness_new (e, five_texts, RGB_CAPS, &bus);
  for (int i = 0; i < 2; i++) {
    in = pt_golden_rgb (0, i * PT_FRAME_DURATION);
    in_mem = gst_buffer_peek_memory (in, 0);
    /* Keeping a reference makes the buffer read-only for the element: it must
     * add its meta to a new buffer that shares the memory. */
    gst_buffer_ref (in);
    out = push_pull (h, in);
    fail_unless (out != in);
    fail_unless (gst_buffer_get_clip_classify_meta (out) != NULL);
    fail_unless (gst_buffer_get_clip_classify_meta (in) == NULL);
    fail_unless_equals_int (gst_buffer_n_memory (out), 1);
    fail_unless (gst_buffer_peek_memory (out, 0) == in_mem);
    fail_unless (gst_buffer_map (in, &a, GST_MAP_READ));
    fail_unless (gst_buffer_map (out, &b, GST_MAP_READ));
    fail_unless_equals_uint64 (a.size, b.size);
    fail_unless (memcmp (a.data, b.data, a.size) == 0);
    gst_buffer_unmap (in, &a);
    gst_buffer_unmap (out, &b);
    gst_buffer_unref (in);
    gst_buffer_unref (out);
  }
  gst_harness_teardown (h);
  gst_object_unref (bus);
}

GST_END_TEST;

typedef struct
{
  guint inference_interval;
  guint64 sample_interval;
  int expected[11]; /* inferred frame numbers, -1 terminated */
} IntervalCase;

/* 10 frames at 100 ms */
static const IntervalCase interval_cases[] = {
  { 1, 0, { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, -1 } },
  { 3, 0, { 0, 3, 6, 9, -1 } },
  { 10, 0, { 0, -1 } },
  { 1, 350 * GST_MSECOND, { 0, 4, 8, -1 } },
  { 1, 300 * GST_MSECOND, { 0, 3, 6, 9, -1 } },
  { 2, 250 * GST_MSECOND, { 0, 4, 8, -1 } },
  { 4, 100 * GST_MSECOND, { 0, 4, 8, -1 } },
  { 3, 2 * GST_SECOND, { 0, -1 } },
};

/* Test that inference-interval and sample-interval infer exactly the expected frames. */
GST_START_TEST (test_intervals)
{
  for (guint c = 0; c < G_N_ELEMENTS (interval_cases); c++) {
    const IntervalCase *tc = &interval_cases[c];
    GstElement *e = pt_element ();
    GstBus *bus;
    GstHarness *h;
    GList *msgs, *l;
    int n_expected = 0, i = 0;
    GstClockTime latest = GST_CLOCK_TIME_NONE;

    while (tc->expected[n_expected] >= 0)
      n_expected++;
    g_object_set (e, "inference-interval", tc->inference_interval, "sample-interval",
                  tc->sample_interval, NULL);
    h = pt_harness_new (e, five_texts, RGB_CAPS, &bus);
    for (int f = 0; f < 10; f++) {
      GstBuffer *out = push_pull (h, pt_golden_rgb (0, f * PT_FRAME_DURATION));
      GstClipClassifyMeta *meta = gst_buffer_get_clip_classify_meta (out);
      int k;
      for (k = 0; k < n_expected && tc->expected[k] != f; k++)
        ;
      if (k < n_expected)
        latest = f * PT_FRAME_DURATION;
      /* Every frame carries the newest result, named by its source. */
      fail_unless (meta != NULL);
      fail_unless_equals_uint64 (meta->source_pts, latest);
      gst_buffer_unref (out);
    }
    msgs = pt_pop_messages (bus, "clipclassify");
    fail_unless_equals_int (g_list_length (msgs), n_expected);
    for (l = msgs; l; l = l->next, i++) {
      guint64 frame, spts;
      const GstStructure *s = gst_message_get_structure (l->data);
      fail_unless (gst_structure_get_uint64 (s, "frame-number", &frame));
      fail_unless (gst_structure_get_uint64 (s, "source-pts", &spts));
      fail_unless_equals_uint64 (frame, tc->expected[i]);
      fail_unless_equals_uint64 (spts, tc->expected[i] * PT_FRAME_DURATION);
    }
    fail_unless_equals_uint64 (pt_stat (h->element, "frames"), 10);
    fail_unless_equals_uint64 (pt_stat (h->element, "inferred"), n_expected);
    fail_unless_equals_uint64 (pt_stat (h->element, "skipped"), 10 - n_expected);
    fail_unless_equals_uint64 (pt_stat (h->element, "dropped"), 0);
    g_list_free_full (msgs, (GDestroyNotify)gst_message_unref);
    gst_harness_teardown (h);
    gst_object_unref (bus);
  }
}

GST_END_TEST;

/* Test that attach-embedding stores the normalised reference image embedding. */
GST_START_TEST (test_embedding)
{
  GstElement *e = pt_element ();
  GstBus *bus;
  GstHarness *h;
  GstBuffer *out;
  GstClipClassifyMeta *meta;
  const gfloat *emb;
  guint dim;
  gint64 shape[8];
  int ndim;
  float *ref = test_golden_tensor ("image_embeds", &ndim, shape);

  cnclip_l2_normalize (ref, 1, shape[1]);
  g_object_set (e, "attach-embedding", TRUE, NULL);
  h = pt_harness_new (e, five_texts, RGB_CAPS, &bus);
  out = push_pull (h, pt_golden_rgb (0, 0));
  meta = gst_buffer_get_clip_classify_meta (out);
  fail_unless (meta != NULL);
  emb = gst_clip_classify_meta_get_embedding (meta, &dim);
  fail_unless (emb != NULL);
  fail_unless_equals_int (dim, shape[1]);
  fail_unless (test_max_abs_diff (emb, ref, dim) <= 1e-5);
  gst_buffer_unref (out);
  g_free (ref);
  gst_harness_teardown (h);
  gst_object_unref (bus);
}

GST_END_TEST;

/* Test that caps changes mid-stream (size and format) keep the results coming. */
GST_START_TEST (test_caps_change)
{
  GstElement *e = pt_element ();
  GstBus *bus;
  GstHarness *h;
  GstBuffer *big, *out;
  GList *msgs;

  h = pt_harness_new (e, five_texts, RGB_CAPS, &bus);
  out = push_pull (h, pt_golden_rgb (0, 0));
  gst_buffer_unref (out);

  /* The 640x480 golden image, as NV12 */
  gst_harness_set_src_caps_str (h, "video/x-raw,format=NV12,width=640,"
                                   "height=480,framerate=10/1,colorimetry=bt601");
  big = pt_golden_rgb (1, PT_FRAME_DURATION);
  out = push_pull (h, pt_convert (big, 640, 480, GST_VIDEO_FORMAT_NV12));
  fail_unless_equals_uint64 (gst_buffer_get_clip_classify_meta (out)->source_pts,
                             PT_FRAME_DURATION);
  gst_buffer_unref (out);
  gst_buffer_unref (big);

  gst_harness_set_src_caps_str (h, "video/x-raw,format=GRAY8,width=33,height=47,framerate=10/1");
  GstBuffer *grey = gst_buffer_new_allocate (NULL, 36 * 47, NULL);
  gst_buffer_memset (grey, 0, 0x80, 36 * 47);
  GST_BUFFER_PTS (grey) = 2 * PT_FRAME_DURATION;
  out = push_pull (h, grey);
  fail_unless_equals_uint64 (gst_buffer_get_clip_classify_meta (out)->source_pts,
                             2 * PT_FRAME_DURATION);
  gst_buffer_unref (out);

  msgs = pt_pop_messages (bus, "clipclassify");
  fail_unless_equals_int (g_list_length (msgs), 3);
  g_list_free_full (msgs, (GDestroyNotify)gst_message_unref);
  gst_harness_teardown (h);
  gst_object_unref (bus);
}

GST_END_TEST;

/* Test that a frame the core refuses fails the stream with a STREAM FAILED error. */
GST_START_TEST (test_runtime_error)
{
  GstElement *e = pt_element ();
  GstBus *bus;
  GstHarness *h;
  GstBuffer *buf;
  GstMessage *m;
  GError *err = NULL;

  /* 40000 x 1 grey: a small buffer, but wider than the core's 32768 limit */
  h = pt_harness_new (e, five_texts, "video/x-raw,format=GRAY8,width=40000,height=1,framerate=10/1",
                      &bus);
  buf = gst_buffer_new_allocate (NULL, 40000, NULL);
  gst_buffer_memset (buf, 0, 0x80, 40000);
  GST_BUFFER_PTS (buf) = 0;
  fail_unless_equals_int (gst_harness_push (h, buf), GST_FLOW_ERROR);
  m = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (m != NULL);
  fail_unless (GST_MESSAGE_SRC (m) == GST_OBJECT (h->element));
  gst_message_parse_error (m, &err, NULL);
  fail_unless (g_error_matches (err, GST_STREAM_ERROR, GST_STREAM_ERROR_FAILED));
  fail_unless (strstr (err->message, "frame 0") != NULL, "%s", err->message);
  g_error_free (err);
  gst_message_unref (m);
  gst_harness_teardown (h);
  gst_object_unref (bus);
}

GST_END_TEST;

/* Sets @model on a lone clipclassify, tries PAUSED and returns the ERROR
 * message (which must come from the element). */
static GstMessage *
start_with_model (const gchar *model)
{
  GstElement *e = pt_element ();
  GstBus *bus = gst_bus_new ();
  GstMessage *m;
  const gchar *prompts[] = { "一只猫", NULL };

  gst_element_set_bus (e, bus);
  if (model)
    g_object_set (e, "model", model, NULL);
  pt_set_strv (e, "prompts", prompts);
  fail_unless_equals_int (gst_element_set_state (e, GST_STATE_PAUSED), GST_STATE_CHANGE_FAILURE);
  m = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (m != NULL, "no ERROR message");
  fail_unless (GST_MESSAGE_SRC (m) == GST_OBJECT (e));
  gst_element_set_state (e, GST_STATE_NULL);
  gst_object_unref (e);
  gst_object_unref (bus);
  return m;
}

/* Test that a missing or broken model fails to reach PAUSED with an ERROR naming the file. */
GST_START_TEST (test_bad_model)
{
  GError *err = NULL;
  gchar *dir = test_make_temp_dir (), *tiny = pt_model_dir ();
  gchar *missing = g_build_filename (dir, "no-such-model", NULL);
  gchar *broken = g_build_filename (dir, "broken", NULL);
  gchar *weights = g_build_filename (broken, "model.safetensors", NULL);
  GstMessage *m;
  gchar *contents;
  gsize length;

  m = start_with_model (missing);
  gst_message_parse_error (m, &err, NULL);
  fail_unless (err->domain == GST_RESOURCE_ERROR);
  fail_unless (strstr (err->message, "no-such-model") != NULL, "%s", err->message);
  g_clear_error (&err);
  gst_message_unref (m);

  /* Weights cut in the middle of the data */
  g_mkdir (broken, 0755);
  test_copy_dir (tiny, broken);
  fail_unless (g_file_get_contents (weights, &contents, &length, NULL));
  fail_unless (g_file_set_contents (weights, contents, length / 2, NULL));
  g_free (contents);
  m = start_with_model (broken);
  gst_message_parse_error (m, &err, NULL);
  fail_unless (err->domain == GST_RESOURCE_ERROR);
  fail_unless (strstr (err->message, "model.safetensors") != NULL, "%s", err->message);
  g_clear_error (&err);
  gst_message_unref (m);

  /* No model at all */
  m = start_with_model (NULL);
  gst_message_parse_error (m, &err, NULL);
  fail_unless (g_error_matches (err, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_SETTINGS));
  g_clear_error (&err);
  gst_message_unref (m);

  g_free (dir);
  g_free (tiny);
  g_free (missing);
  g_free (broken);
  g_free (weights);
}

GST_END_TEST;

static gpointer
acquire_thread (gpointer data)
{
  CnclipModelParams mp = cnclip_model_default_params ();
  return clip_model_cache_acquire (data, &mp, NULL);
}

/* Test that the model cache shares a model per key, loads it once, frees it with the last user. */
GST_START_TEST (test_model_cache)
{
  gchar *dir = pt_model_dir ();
  gchar *slash = g_strconcat (dir, "/", NULL);
  gchar *weights = g_build_filename (dir, "model.safetensors", NULL);
  CnclipModelParams mp = cnclip_model_default_params ();
  CnclipModel *a, *b, *c, *threads[4];
  GThread *t[4];
  GError *error = NULL;

  a = clip_model_cache_acquire (dir, &mp, &error);
  g_assert_no_error (error);
  b = clip_model_cache_acquire (slash, &mp, &error);
  fail_unless (a == b);
  mp.weights_file = weights;
  c = clip_model_cache_acquire (dir, &mp, &error);
  g_assert_no_error (error);
  fail_unless (c != a);
  fail_unless_equals_int (clip_model_cache_size (), 2);
  clip_model_cache_release (a);
  clip_model_cache_release (b);
  clip_model_cache_release (c);
  fail_unless_equals_int (clip_model_cache_size (), 0);

  /* Concurrent first uses wait for the one load. */
  for (int i = 0; i < 4; i++)
    t[i] = g_thread_new ("acquire", acquire_thread, dir);
  for (int i = 0; i < 4; i++)
    threads[i] = g_thread_join (t[i]);
  for (int i = 0; i < 4; i++)
    fail_unless (threads[i] != NULL && threads[i] == threads[0]);
  fail_unless_equals_int (clip_model_cache_size (), 1);
  for (int i = 0; i < 4; i++)
    clip_model_cache_release (threads[i]);
  fail_unless_equals_int (clip_model_cache_size (), 0);

  /* A failed load is not cached. */
  fail_unless (clip_model_cache_acquire ("/nonexistent", &mp, &error) == NULL);
  fail_unless (error != NULL);
  g_clear_error (&error);
  fail_unless_equals_int (clip_model_cache_size (), 0);

  g_free (dir);
  g_free (slash);
  g_free (weights);
}

GST_END_TEST;

static Suite *
element_suite (void)
{
  Suite *s = suite_create ("clipclassify");
  TCase *tc = tcase_create ("element");

  tcase_set_timeout (tc, 600);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_properties);
  tcase_add_test (tc, test_golden_softmax);
  tcase_add_test (tc, test_golden_cosine);
  tcase_add_test (tc, test_top_k_threshold);
  tcase_add_test (tc, test_negative_prompts);
  tcase_add_test (tc, test_yuv_close_to_rgb);
  tcase_add_test (tc, test_yuv_matrix);
  tcase_add_test (tc, test_packed_formats);
  tcase_add_test (tc, test_video_unchanged);
  tcase_add_test (tc, test_intervals);
  tcase_add_test (tc, test_embedding);
  tcase_add_test (tc, test_caps_change);
  tcase_add_test (tc, test_bad_model);
  tcase_add_test (tc, test_runtime_error);
  tcase_add_test (tc, test_model_cache);
  return s;
}

GST_CHECK_MAIN (element);
