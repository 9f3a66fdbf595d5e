/* test-pipelines.c: clipclassify in whole pipelines built with gst_parse_launch. */
#include "config.h"

#include "plugin-test.h"

#define PROMPTS "prompts=<\"一只猫\",\"城市夜景\",\"下雨的街道\">"

static const gchar *labels[] = { "一只猫", "城市夜景", "下雨的街道", NULL };

/* Builds the pipeline @fmt (printf-style), @MODEL@ replaced by the tiny model dir. */
static GstElement *
launch (const gchar *fmt, ...)
{
  va_list ap;
  gchar *model = pt_model_dir (), *desc, *tmp, **parts;
  GError *error = NULL;
  GstElement *pipeline;

  va_start (ap, fmt);
  tmp = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  parts = g_strsplit (tmp, "@MODEL@", -1);
  desc = g_strjoinv (model, parts);
  g_strfreev (parts);
  pipeline = gst_parse_launch (desc, &error);
  g_assert_no_error (error);
  fail_unless (pipeline != NULL);
  g_free (model);
  g_free (desc);
  g_free (tmp);
  return pipeline;
}

/* Plays @pipeline to EOS (failing on ERROR) and returns its `clipclassify`
 * messages (transfer full). */
static GList *
run_to_eos (GstElement *pipeline)
{
  GstBus *bus = gst_element_get_bus (pipeline);
  GList *msgs = NULL;
  gboolean eos = FALSE;

  fail_if (gst_element_set_state (pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE);
  while (!eos) {
    GstMessage *m = gst_bus_timed_pop_filtered (
        bus, 300 * GST_SECOND, GST_MESSAGE_EOS | GST_MESSAGE_ERROR | GST_MESSAGE_ELEMENT);
    fail_unless (m != NULL, "timeout waiting for EOS");
    switch (GST_MESSAGE_TYPE (m)) {
      case GST_MESSAGE_ERROR: {
        GError *err = NULL;
        gchar *dbg = NULL;
        gst_message_parse_error (m, &err, &dbg);
        fail ("ERROR from %s: %s (%s)", GST_OBJECT_NAME (GST_MESSAGE_SRC (m)), err->message, dbg);
        break;
      }
      case GST_MESSAGE_EOS:
        eos = TRUE;
        gst_message_unref (m);
        break;
      default:
        if (gst_structure_has_name (gst_message_get_structure (m), "clipclassify"))
          msgs = g_list_append (msgs, m);
        else
          gst_message_unref (m);
        break;
    }
  }
  gst_object_unref (bus);
  return msgs;
}

static void
check_labels (GList *msgs)
{
  for (GList *l = msgs; l; l = l->next) {
    const GstStructure *s = gst_message_get_structure (l->data);
    fail_unless_equals_int (pt_array_size (s, "labels"), 3);
    for (guint i = 0; i < 3; i++)
      fail_unless (g_strv_contains (labels, pt_array_string (s, "labels", i)));
    fail_unless (g_strv_contains (labels, gst_structure_get_string (s, "top-label")));
  }
}

static guint64
stat_of (GstElement *pipeline, const gchar *name, const gchar *field)
{
  GstElement *e = gst_bin_get_by_name (GST_BIN (pipeline), name);
  guint64 v = pt_stat (e, field);
  gst_object_unref (e);
  return v;
}

/* Test that videotestsrc ! clipclassify ! fakesink runs to EOS with a message per sampled frame. */
GST_START_TEST (test_videotestsrc)
{
  GstElement *p = launch ("videotestsrc num-buffers=20 ! video/x-raw,"
                          "format=I420,width=320,height=240,framerate=30/1 ! clipclassify "
                          "name=c model=\"@MODEL@\" " PROMPTS " inference-interval=5 "
                          "source-id=test ! fakesink");
  GList *msgs = run_to_eos (p), *l;
  guint i = 0;

  fail_unless_equals_int (g_list_length (msgs), 4);
  check_labels (msgs);
  for (l = msgs; l; l = l->next, i++) {
    guint64 frame;
    fail_unless (
        gst_structure_get_uint64 (gst_message_get_structure (l->data), "frame-number", &frame));
    fail_unless_equals_uint64 (frame, i * 5);
  }
  fail_unless_equals_uint64 (stat_of (p, "c", "frames"), 20);
  gst_element_set_state (p, GST_STATE_NULL);
  g_list_free_full (msgs, (GDestroyNotify)gst_message_unref);
  gst_object_unref (p);
}

GST_END_TEST;

/* Test that a live source with mode=async runs to EOS with one message per inference. */
GST_START_TEST (test_live_async)
{
  GstElement *p = launch ("videotestsrc is-live=true num-buffers=30 ! "
                          "video/x-raw,format=NV12,width=640,height=360,framerate=30/1 ! "
                          "clipclassify name=c model=\"@MODEL@\" " PROMPTS " mode=async ! "
                          "fakesink sync=true");
  GList *msgs = run_to_eos (p);
  guint64 inferred = stat_of (p, "c", "inferred");

  fail_unless (inferred >= 1);
  fail_unless_equals_int (g_list_length (msgs), inferred);
  fail_unless_equals_uint64 (stat_of (p, "c", "frames"), 30);
  fail_unless_equals_uint64 (inferred + stat_of (p, "c", "dropped"), 30);
  check_labels (msgs);
  gst_element_set_state (p, GST_STATE_NULL);
  g_list_free_full (msgs, (GDestroyNotify)gst_message_unref);
  gst_object_unref (p);
}

GST_END_TEST;

/* Test that two clipclassify elements on one model in one pipeline both work. */
GST_START_TEST (test_two_elements)
{
  GstElement *p = launch ("videotestsrc num-buffers=6 ! video/x-raw,"
                          "format=RGB,width=160,height=120 ! tee name=t "
                          "t. ! queue ! clipclassify model=\"@MODEL@\" " PROMPTS " source-id=a ! "
                          "fakesink t. ! queue ! clipclassify model=\"@MODEL@\" " PROMPTS
                          " source-id=b ! fakesink");
  GList *msgs = run_to_eos (p), *l;
  guint a = 0, b = 0;

  for (l = msgs; l; l = l->next) {
    const gchar *id = gst_structure_get_string (gst_message_get_structure (l->data), "source-id");
    a += g_strcmp0 (id, "a") == 0;
    b += g_strcmp0 (id, "b") == 0;
  }
  fail_unless_equals_int (a, 6);
  fail_unless_equals_int (b, 6);
  gst_element_set_state (p, GST_STATE_NULL);
  g_list_free_full (msgs, (GDestroyNotify)gst_message_unref);
  gst_object_unref (p);
}

GST_END_TEST;

typedef struct
{
  const gchar *encoder; /* encoder ! muxer */
  const gchar *file;
} EncodedCase;

static const EncodedCase encoded_cases[] = {
  { "jpegenc ! matroskamux", "clip.mkv" }, /* decodes to I420 */
  { "pngenc ! avimux", "clip.avi" },       /* decodes to RGBA */
};

/* Test that files encoded here, played by uridecodebin, run to EOS with the expected messages. */
GST_START_TEST (test_encoded_files)
{
  gchar *dir = test_make_temp_dir ();

  for (guint c = 0; c < G_N_ELEMENTS (encoded_cases); c++) {
    gchar *path = g_build_filename (dir, encoded_cases[c].file, NULL);
    gchar *uri = gst_filename_to_uri (path, NULL);
    GstElement *p;
    GList *msgs;

    p = launch ("videotestsrc num-buffers=12 pattern=ball ! video/x-raw,"
                "width=320,height=240,framerate=12/1 ! %s ! filesink location=\"%s\"",
                encoded_cases[c].encoder, path);
    msgs = run_to_eos (p);
    fail_unless (msgs == NULL);
    gst_element_set_state (p, GST_STATE_NULL);
    gst_object_unref (p);

    p = launch ("uridecodebin uri=\"%s\" ! clipclassify name=c "
                "model=\"@MODEL@\" " PROMPTS " inference-interval=3 ! fakesink",
                uri);
    msgs = run_to_eos (p);
    fail_unless_equals_int (g_list_length (msgs), 4);
    check_labels (msgs);
    fail_unless_equals_uint64 (stat_of (p, "c", "frames"), 12);
    gst_element_set_state (p, GST_STATE_NULL);
    g_list_free_full (msgs, (GDestroyNotify)gst_message_unref);
    gst_object_unref (p);
    g_free (uri);
    g_free (path);
  }
  g_free (dir);
}

GST_END_TEST;

/* Test that 20 NULL -> PLAYING -> NULL cycles all work (for leaks, run it under valgrind). */
GST_START_TEST (test_state_cycles)
{
  GstElement *p = launch ("videotestsrc num-buffers=3 ! video/x-raw,"
                          "format=NV12,width=64,height=48 ! clipclassify name=c "
                          "model=\"@MODEL@\" " PROMPTS " ! fakesink");
  int cycles = g_getenv ("PT_CYCLES") ? atoi (g_getenv ("PT_CYCLES")) : 20;

  for (int i = 0; i < cycles; i++) {
    GList *msgs = run_to_eos (p);
    fail_unless_equals_int (g_list_length (msgs), 3);
    fail_unless_equals_int (gst_element_set_state (p, GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
    g_list_free_full (msgs, (GDestroyNotify)gst_message_unref);
  }
  gst_object_unref (p);
}

GST_END_TEST;

static Suite *
pipelines_suite (void)
{
  Suite *s = suite_create ("clipclassify-pipelines");
  TCase *tc = tcase_create ("pipelines");

  tcase_set_timeout (tc, 900);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_videotestsrc);
  tcase_add_test (tc, test_live_async);
  tcase_add_test (tc, test_two_elements);
  tcase_add_test (tc, test_encoded_files);
  tcase_add_test (tc, test_state_cycles);
  return s;
}

GST_CHECK_MAIN (pipelines);
