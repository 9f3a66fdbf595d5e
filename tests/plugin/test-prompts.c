/* test-prompts.c: prompts, prompts-file, template, negative prompts, changes
 * while playing. */
#include "config.h"

#include <glib/gstdio.h>

#include "plugin-test.h"
/* The parser is internal to the plugin; its unit tests compile it in. */
#include "../../plugin/clipprompts.c"

#define RGB_CAPS "video/x-raw,format=RGB,width=224,height=224,framerate=10/1"

typedef struct
{
  const gchar *contents;
  gssize length;            /* -1: strlen */
  const gchar *expected[6]; /* NULL-terminated; expected[0] "!": error */
} ParseCase;

static const ParseCase parse_cases[] = {
  { "", -1, { NULL } },
  { "一只猫", -1, { "一只猫", NULL } },
  { "一只猫\n城市夜景\n", -1, { "一只猫", "城市夜景", NULL } },
  { "\xef\xbb\xbf一只猫\r\n\r\n  城市夜景  \r\n", -1, { "一只猫", "城市夜景", NULL } },
  { "# 注释\n一只猫\n   # indented comment\n\n\t\n下雨的街道",
    -1,
    { "一只猫", "下雨的街道", NULL } },
  { "a # not a comment\n#\n", -1, { "a # not a comment", NULL } },
  { "ok\n\xff\xfe bad\n", -1, { "!", NULL } },
  { "ok\nnul\0inside\n", 15, { "!", NULL } },
};

/* Test that prompts files parse as specified: BOM, CRLF, blanks, comments, UTF-8. */
GST_START_TEST (test_parse)
{
  for (guint c = 0; c < G_N_ELEMENTS (parse_cases); c++) {
    const ParseCase *pc = &parse_cases[c];
    gsize len = pc->length < 0 ? strlen (pc->contents) : (gsize)pc->length;
    GError *error = NULL;
    gchar **got = clip_prompts_parse (pc->contents, len, &error);

    if (g_strcmp0 (pc->expected[0], "!") == 0) {
      fail_unless (got == NULL, "case %u should fail", c);
      fail_unless (g_error_matches (error, CNCLIP_ERROR, CNCLIP_ERROR_UTF8), "case %u", c);
      fail_unless (strstr (error->message, "line 2") != NULL, "%s", error->message);
      g_clear_error (&error);
      continue;
    }
    g_assert_no_error (error);
    fail_unless_equals_int (g_strv_length (got), g_strv_length ((gchar **)pc->expected));
    for (guint i = 0; got[i]; i++)
      fail_unless_equals_string (got[i], pc->expected[i]);
    g_strfreev (got);
  }
}

GST_END_TEST;

/* Test that every {} of the template is replaced, and text around kept. */
GST_START_TEST (test_template)
{
  static const gchar *cases[][3] = {
    { "{}", "猫", "猫" },
    { "一张{}的照片", "狗", "一张狗的照片" },
    { "{}和{}", "猫", "猫和猫" },
    { "{}{}", "", "" },
    { "a photo of {}.", "a cat", "a photo of a cat." },
    { "{{}}", "x", "{x}" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    gchar *got = clip_prompts_apply_template (cases[i][0], cases[i][1]);
    fail_unless_equals_string (got, cases[i][2]);
    g_free (got);
  }
}

GST_END_TEST;

/* Test that a prompts file over the size limit is refused before parsing. */
GST_START_TEST (test_file_limits)
{
  gchar *dir = test_make_temp_dir ();
  gchar *path = g_build_filename (dir, "big.txt", NULL);
  gchar *missing = g_build_filename (dir, "missing.txt", NULL);
  gchar *big = g_strnfill (CLIP_PROMPTS_MAX_FILE_SIZE + 1, 'a');
  GError *error = NULL;

  fail_unless (g_file_set_contents (path, big, -1, NULL));
  fail_unless (clip_prompts_read_file (path, &error) == NULL);
  fail_unless (g_error_matches (error, CNCLIP_ERROR, CNCLIP_ERROR_TOO_LARGE));
  g_clear_error (&error);
  fail_unless (clip_prompts_read_file (missing, &error) == NULL);
  fail_unless (error->domain == G_FILE_ERROR);
  fail_unless (strstr (error->message, "missing.txt") != NULL);
  g_clear_error (&error);
  g_free (big);
  g_free (path);
  g_free (missing);
  g_free (dir);
}

GST_END_TEST;

static gchar *
write_temp (const gchar *name, const gchar *contents)
{
  gchar *dir = test_make_temp_dir ();
  gchar *path = g_build_filename (dir, name, NULL);

  fail_unless (g_file_set_contents (path, contents, -1, NULL));
  g_free (dir);
  return path;
}

/* Labels of the newest `clipclassify` message after pushing one frame. */
static GstStructure *
classify_one (GstHarness *h, GstBus *bus, GstClockTime pts)
{
  GList *msgs;
  GstStructure *s;

  fail_unless_equals_int (gst_harness_push (h, pt_golden_rgb (0, pts)), GST_FLOW_OK);
  gst_buffer_unref (gst_harness_pull (h));
  msgs = pt_pop_messages (bus, "clipclassify");
  fail_unless (msgs != NULL);
  s = gst_structure_copy (gst_message_get_structure (g_list_last (msgs)->data));
  g_list_free_full (msgs, (GDestroyNotify)gst_message_unref);
  return s;
}

static int
compare_strings (const void *a, const void *b)
{
  return g_strcmp0 (*(const gchar *const *)a, *(const gchar *const *)b);
}

/* The result labels of @s, sorted, joined with "|". */
static gchar *
sorted_labels (const GstStructure *s)
{
  guint n = pt_array_size (s, "labels");
  const gchar **v = g_new0 (const gchar *, n + 1);
  gchar *out;

  for (guint i = 0; i < n; i++)
    v[i] = pt_array_string (s, "labels", i);
  qsort (v, n, sizeof (gchar *), compare_strings);
  out = g_strjoinv ("|", (gchar **)v);
  g_free (v);
  return out;
}

/* Test that prompts and prompts-file combine (property first) with blanks and comments ignored. */
GST_START_TEST (test_prompts_file)
{
  gchar *file = write_temp ("prompts.txt", "# 标签\n城市夜景\n\n  下雨的街道 \r\n# end\n");
  GstElement *e = pt_element ();
  GstBus *bus;
  GstHarness *h;
  GstMessage *m;
  GstStructure *s;
  static const int in_property[] = { 0, -1 };

  g_object_set (e, "prompts-file", file, "top-k", 0, NULL);
  h = pt_harness_new (e, in_property, RGB_CAPS, &bus);
  m = pt_wait_message (bus, "clipclassify-prompts", 1);
  fail_unless (m != NULL);
  const GstStructure *ps = gst_message_get_structure (m);
  fail_unless_equals_int (pt_array_size (ps, "labels"), 3);
  fail_unless_equals_string (pt_array_string (ps, "labels", 0), "一只猫");
  fail_unless_equals_string (pt_array_string (ps, "labels", 1), "城市夜景");
  fail_unless_equals_string (pt_array_string (ps, "labels", 2), "下雨的街道");
  gst_message_unref (m);

  s = classify_one (h, bus, 0);
  gchar *labels = sorted_labels (s);
  fail_unless_equals_string (labels, "一只猫|下雨的街道|城市夜景");
  g_free (labels);
  gst_structure_free (s);
  gst_harness_teardown (h);
  gst_object_unref (bus);
  g_free (file);
}

GST_END_TEST;

/* Test that the template is applied before encoding and labels stay as written. */
GST_START_TEST (test_prompt_template)
{
  /* golden text 1 is "一张狗的照片" = template "一张{}的照片" + "狗" */
  double probs[5], cosines[5];
  static const int texts[] = { 1, -1 };
  const gchar *prompts[] = { "狗", NULL };
  GstElement *e = pt_element ();
  GstBus *bus;
  GstHarness *h;
  GstStructure *s;

  pt_reference (texts, probs, cosines);
  pt_set_strv (e, "prompts", prompts);
  g_object_set (e, "prompt-template", "一张{}的照片", NULL);
  h = pt_harness_new (e, NULL, RGB_CAPS, &bus);
  s = classify_one (h, bus, 0);
  fail_unless_equals_string (pt_array_string (s, "labels", 0), "狗");
  fail_unless (fabs (pt_array_double (s, "cosines", 0) - cosines[0]) <= 1e-5, "%g vs %g",
               pt_array_double (s, "cosines", 0), cosines[0]);
  gst_structure_free (s);
  gst_harness_teardown (h);
  gst_object_unref (bus);
}

GST_END_TEST;

/* Test that prompts changed while playing are swapped in, announced, and scored. */
GST_START_TEST (test_swap_while_playing)
{
  static const int before[] = { 0, 1, -1 };
  static const int after[] = { 2, 3, 4, -1 };
  double probs[3], cosines[3];
  GstElement *e = pt_element ();
  GstBus *bus;
  GstHarness *h;
  GstStructure *s;
  GstMessage *m;
  const gchar **texts;
  guint gen;

  g_object_set (e, "top-k", 0, NULL);
  h = pt_harness_new (e, before, RGB_CAPS, &bus);
  s = classify_one (h, bus, 0);
  fail_unless_equals_int (pt_array_size (s, "labels"), 2);
  gst_structure_free (s);

  texts = pt_golden_texts (after);
  pt_set_strv (h->element, "prompts", texts);
  g_free (texts);
  m = pt_wait_message (bus, "clipclassify-prompts", 2);
  fail_unless (m != NULL && GST_MESSAGE_TYPE (m) == GST_MESSAGE_ELEMENT);
  const GstStructure *ps = gst_message_get_structure (m);
  fail_unless (gst_structure_get_uint (ps, "generation", &gen) && gen == 2);
  fail_unless_equals_int (pt_array_size (ps, "labels"), 3);
  for (int i = 0; i < 3; i++)
    fail_unless_equals_string (pt_array_string (ps, "labels", i),
                               test_golden_text (after[i])->text);
  gst_message_unref (m);

  pt_reference (after, probs, cosines);
  s = classify_one (h, bus, PT_FRAME_DURATION);
  fail_unless_equals_int (pt_array_size (s, "labels"), 3);
  for (guint i = 0; i < 3; i++) {
    int k = pt_text_index (after, pt_array_string (s, "labels", i));
    fail_unless (k >= 0);
    fail_unless (fabs (pt_array_double (s, "scores", i) - probs[k]) <= 1e-5);
  }
  gst_structure_free (s);
  fail_unless_equals_uint64 (pt_stat (h->element, "frames"), 2);
  gst_harness_teardown (h);
  gst_object_unref (bus);
}

GST_END_TEST;

/* Waits for a WARNING from the element and returns its text. */
static gchar *
wait_warning (GstBus *bus)
{
  GstMessage *m = gst_bus_timed_pop_filtered (bus, PT_MESSAGE_TIMEOUT, GST_MESSAGE_WARNING);
  GError *err = NULL;
  gchar *text;

  fail_unless (m != NULL, "no WARNING");
  gst_message_parse_warning (m, &err, NULL);
  text = g_strdup (err->message);
  g_error_free (err);
  gst_message_unref (m);
  return text;
}

/* Test that unusable prompt changes while playing warn and keep the old prompts. */
GST_START_TEST (test_bad_change_keeps_old)
{
  static const int before[] = { 0, 1, -1 };
  gchar *bad_utf8 = write_temp ("bad.txt", "一只猫\n\xc3\x28\n");
  gchar *dir = test_make_temp_dir ();
  gchar *missing = g_build_filename (dir, "no-such-prompts.txt", NULL);
  GstElement *e = pt_element ();
  GstBus *bus;
  GstHarness *h;
  GstStructure *s;
  gchar *text, *labels;

  g_object_set (e, "top-k", 0, NULL);
  h = pt_harness_new (e, before, RGB_CAPS, &bus);

  g_object_set (h->element, "prompts-file", missing, NULL);
  text = wait_warning (bus);
  fail_unless (strstr (text, "no-such-prompts.txt") != NULL, "%s", text);
  g_free (text);
  s = classify_one (h, bus, 0);
  labels = sorted_labels (s);
  fail_unless_equals_string (labels, "一只猫|一张狗的照片");
  g_free (labels);
  gst_structure_free (s);

  g_object_set (h->element, "prompts-file", bad_utf8, NULL);
  text = wait_warning (bus);
  fail_unless (strstr (text, "bad.txt") != NULL, "%s", text);
  fail_unless (strstr (text, "line 2") != NULL, "%s", text);
  g_free (text);

  g_object_set (h->element, "prompts-file", NULL, "prompt-template", "no placeholder", NULL);
  text = wait_warning (bus);
  fail_unless (strstr (text, "{}") != NULL, "%s", text);
  g_free (text);

  s = classify_one (h, bus, PT_FRAME_DURATION);
  labels = sorted_labels (s);
  fail_unless_equals_string (labels, "一只猫|一张狗的照片");
  g_free (labels);
  gst_structure_free (s);

  /* and a good change still works afterwards */
  g_object_set (h->element, "prompt-template", "{}", NULL);
  GstMessage *m = pt_wait_message (bus, "clipclassify-prompts", 5);
  fail_unless (m != NULL && GST_MESSAGE_TYPE (m) == GST_MESSAGE_ELEMENT);
  gst_message_unref (m);

  gst_harness_teardown (h);
  gst_object_unref (bus);
  g_free (bad_utf8);
  g_free (missing);
  g_free (dir);
}

GST_END_TEST;

/* Test that a missing prompts-file at start fails the state change naming the file. */
GST_START_TEST (test_bad_file_at_start)
{
  gchar *dir = test_make_temp_dir (), *model = pt_model_dir ();
  gchar *missing = g_build_filename (dir, "absent-prompts.txt", NULL);
  GstElement *e = pt_element ();
  GstBus *bus = gst_bus_new ();
  GstMessage *m;
  GError *err = NULL;

  gst_element_set_bus (e, bus);
  g_object_set (e, "model", model, "prompts-file", missing, NULL);
  fail_unless_equals_int (gst_element_set_state (e, GST_STATE_PAUSED), GST_STATE_CHANGE_FAILURE);
  m = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (m != NULL);
  gst_message_parse_error (m, &err, NULL);
  fail_unless (g_error_matches (err, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_OPEN_READ));
  fail_unless (strstr (err->message, "absent-prompts.txt") != NULL);
  g_error_free (err);
  gst_message_unref (m);
  gst_element_set_state (e, GST_STATE_NULL);
  gst_object_unref (e);
  gst_object_unref (bus);
  g_free (missing);
  g_free (model);
  g_free (dir);
}

GST_END_TEST;

/* Test that a prompt longer than the context length warns, is truncated and still used. */
GST_START_TEST (test_long_prompt)
{
  /* golden text 18 is longer than 52 tokens; its reference is the truncated one */
  static const int texts[] = { 0, 18, -1 };
  double probs[2], cosines[2];
  GstElement *e = pt_element ();
  GstBus *bus;
  GstHarness *h;
  GstStructure *s;
  GstMessage *m;
  gchar *text;

  fail_unless (test_golden_text (18)->num_tokens >= 52);
  pt_reference (texts, probs, cosines);
  g_object_set (e, "top-k", 0, NULL);
  h = pt_harness_new (e, texts, RGB_CAPS, &bus);
  text = wait_warning (bus);
  fail_unless (strstr (text, "truncated") != NULL, "%s", text);
  fail_unless (strstr (text, test_golden_text (18)->text) != NULL);
  g_free (text);
  m = pt_wait_message (bus, "clipclassify-prompts", 1);
  fail_unless (m != NULL);
  fail_unless_equals_int (pt_array_size (gst_message_get_structure (m), "truncated"), 1);
  gst_message_unref (m);

  s = classify_one (h, bus, 0);
  fail_unless_equals_int (pt_array_size (s, "labels"), 2);
  for (guint i = 0; i < 2; i++) {
    int k = pt_text_index (texts, pt_array_string (s, "labels", i));
    fail_unless (k >= 0);
    fail_unless (fabs (pt_array_double (s, "scores", i) - probs[k]) <= 1e-5);
    fail_unless (fabs (pt_array_double (s, "cosines", i) - cosines[k]) <= 1e-5);
  }
  gst_structure_free (s);
  gst_harness_teardown (h);
  gst_object_unref (bus);
}

GST_END_TEST;

/* Test that without prompts frames pass untagged with a warning, and prompts set later apply. */
GST_START_TEST (test_no_prompts)
{
  static const int later[] = { 0, 1, -1 };
  GstElement *e = pt_element ();
  GstBus *bus;
  GstHarness *h;
  GstBuffer *out;
  gchar *text;
  const gchar **texts;
  GstMessage *m;

  h = pt_harness_new (e, NULL, RGB_CAPS, &bus);
  text = wait_warning (bus);
  fail_unless (strstr (text, "No prompts") != NULL, "%s", text);
  g_free (text);
  fail_unless_equals_int (gst_harness_push (h, pt_golden_rgb (0, 0)), GST_FLOW_OK);
  out = gst_harness_pull (h);
  fail_unless (gst_buffer_get_clip_classify_meta (out) == NULL);
  gst_buffer_unref (out);
  fail_unless_equals_uint64 (pt_stat (h->element, "skipped"), 1);

  texts = pt_golden_texts (later);
  pt_set_strv (h->element, "prompts", texts);
  g_free (texts);
  m = pt_wait_message (bus, "clipclassify-prompts", 2);
  fail_unless (m != NULL && GST_MESSAGE_TYPE (m) == GST_MESSAGE_ELEMENT);
  gst_message_unref (m);
  GstStructure *s = classify_one (h, bus, PT_FRAME_DURATION);
  fail_unless_equals_int (pt_array_size (s, "labels"), 2);
  gst_structure_free (s);
  gst_harness_teardown (h);
  gst_object_unref (bus);
}

GST_END_TEST;

static Suite *
prompts_suite (void)
{
  Suite *s = suite_create ("clipclassify-prompts");
  TCase *tc = tcase_create ("prompts");

  tcase_set_timeout (tc, 600);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_parse);
  tcase_add_test (tc, test_template);
  tcase_add_test (tc, test_file_limits);
  tcase_add_test (tc, test_prompts_file);
  tcase_add_test (tc, test_prompt_template);
  tcase_add_test (tc, test_swap_while_playing);
  tcase_add_test (tc, test_bad_change_keeps_old);
  tcase_add_test (tc, test_bad_file_at_start);
  tcase_add_test (tc, test_long_prompt);
  tcase_add_test (tc, test_no_prompts);
  return s;
}

GST_CHECK_MAIN (prompts);
