/* test-async.c: clipclassify mode=async (worker thread, one-slot mailbox),
 * and aborting a forward pass on flush and stop in both modes. */
#include "config.h"

#include "plugin-test.h"

#define RGB_CAPS "video/x-raw,format=RGB,width=224,height=224,framerate=10/1"

static const int three_texts[] = { 0, 1, 2, -1 };

/* Slow model: 896x896 input (3137 tokens), 8 vision layers. One forward pass
 * lasts long enough to interrupt it; the abort is polled between layers. */
#define SLOW_IMAGE_SIZE 896
#define SLOW_LAYERS 8

static gchar *slow_model;

static const gchar *
get_slow_model (void)
{
  if (slow_model == NULL)
    slow_model = pt_make_slow_model (SLOW_IMAGE_SIZE, SLOW_LAYERS);
  return slow_model;
}

static GstHarness *
async_harness (const gchar *model, gboolean async, GstBus **bus)
{
  GstElement *e = pt_element ();
  GstHarness *h;

  g_object_set (e, "mode", async ? 1 : 0, NULL);
  h = pt_harness_new (e, three_texts, RGB_CAPS, bus);
  if (model) {
    /* pt_harness_new started it with the tiny model: restart with @model. */
    gst_element_set_state (h->element, GST_STATE_NULL);
    g_object_set (h->element, "model", model, NULL);
    gst_harness_play (h);
  }
  return h;
}

/* Polls the stats until @field reaches @value (or a minute passes). */
static gboolean
wait_stat (GstElement *e, const gchar *field, guint64 value)
{
  gint64 deadline = g_get_monotonic_time () + 60 * G_USEC_PER_SEC;

  while (pt_stat (e, field) < value) {
    if (g_get_monotonic_time () > deadline)
      return FALSE;
    g_usleep (2000);
  }
  return TRUE;
}

/* Pulls events until EOS. */
static void
pull_until_eos (GstHarness *h)
{
  GstEvent *ev;

  while ((ev = gst_harness_pull_event (h)) != NULL) {
    gboolean eos = GST_EVENT_TYPE (ev) == GST_EVENT_EOS;
    gst_event_unref (ev);
    if (eos)
      return;
  }
  fail ("no EOS");
}

/* Test that async drops frames while busy and tags buffers with the newest result's source-pts. */
GST_START_TEST (test_async_drops)
{
  GstBus *bus;
  GstHarness *h = async_harness (NULL, TRUE, &bus);
  GArray *out_pts = g_array_new (FALSE, FALSE, sizeof (GstClockTime));
  GArray *src_pts = g_array_new (FALSE, FALSE, sizeof (GstClockTime));
  GHashTable *inferred = g_hash_table_new (g_int64_hash, g_int64_equal);
  guint64 frames = 0, n_inferred, n_dropped, n_skipped;
  GList *msgs, *l;
  GstClockTime last = 0;

  /* Pushing is microseconds, a forward pass milliseconds: drops come fast. */
  while (frames < 2000 && (frames < 20 || pt_stat (h->element, "dropped") == 0)) {
    GstBuffer *out;
    GstClipClassifyMeta *meta;
    GstClockTime pts = frames * PT_FRAME_DURATION, none = GST_CLOCK_TIME_NONE;

    fail_unless_equals_int (gst_harness_push (h, pt_golden_rgb (0, pts)), GST_FLOW_OK);
    out = gst_harness_pull (h);
    meta = gst_buffer_get_clip_classify_meta (out);
    if (frames == 0)
      fail_unless (meta == NULL, "the first buffer cannot have a result yet");
    g_array_append_val (out_pts, pts);
    GstClockTime src = meta ? meta->source_pts : none;
    g_array_append_val (src_pts, src);
    gst_buffer_unref (out);
    frames++;
  }
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
  pull_until_eos (h);

  n_inferred = pt_stat (h->element, "inferred");
  n_dropped = pt_stat (h->element, "dropped");
  n_skipped = pt_stat (h->element, "skipped");
  fail_unless_equals_uint64 (pt_stat (h->element, "frames"), frames);
  fail_unless (n_dropped > 0);
  fail_unless (n_inferred > 0);
  fail_unless_equals_uint64 (n_skipped, 0);
  /* Nothing in flight after EOS: every sampled frame was inferred or dropped. */
  fail_unless_equals_uint64 (n_inferred + n_dropped, frames);

  msgs = pt_pop_messages (bus, "clipclassify");
  fail_unless_equals_int (g_list_length (msgs), n_inferred);
  for (l = msgs; l; l = l->next) {
    const GstStructure *s = gst_message_get_structure (l->data);
    guint64 frame, spts, ts;
    fail_unless (gst_structure_get_uint64 (s, "frame-number", &frame));
    fail_unless (gst_structure_get_uint64 (s, "source-pts", &spts));
    fail_unless (gst_structure_get_uint64 (s, "timestamp", &ts));
    fail_unless_equals_uint64 (spts, frame * PT_FRAME_DURATION);
    /* posted with the first buffer carrying it, after its own frame */
    fail_unless (ts >= spts);
    fail_unless_equals_int (pt_array_size (s, "labels"), 3);
    g_hash_table_add (inferred, g_memdup2 (&spts, sizeof spts));
  }
  fail_unless_equals_int (g_hash_table_size (inferred), n_inferred);

  for (guint i = 0; i < out_pts->len; i++) {
    GstClockTime o = g_array_index (out_pts, GstClockTime, i);
    GstClockTime s = g_array_index (src_pts, GstClockTime, i);
    if (!GST_CLOCK_TIME_IS_VALID (s))
      continue;
    fail_unless (g_hash_table_contains (inferred, &s),
                 "buffer %u carries a result of a frame that was never inferred", i);
    fail_unless (s < o, "a result from the future");
    fail_unless (s >= last, "results went backwards");
    last = s;
  }

  g_list_free_full (msgs, (GDestroyNotify)gst_message_unref);
  g_hash_table_foreach (inferred, (GHFunc)g_free, NULL);
  g_hash_table_unref (inferred);
  g_array_unref (out_pts);
  g_array_unref (src_pts);
  gst_harness_teardown (h);
  gst_object_unref (bus);
}

GST_END_TEST;

/* Test that EOS in async mode waits for the frame in flight and posts its result first. */
GST_START_TEST (test_async_eos_waits)
{
  GstBus *bus;
  GstHarness *h = async_harness (get_slow_model (), TRUE, &bus);
  GstBuffer *out;
  GList *msgs;
  const GstStructure *s;
  guint64 u;
  GstClockTime pts = 5 * GST_SECOND;

  fail_unless_equals_int (gst_harness_push (h, pt_golden_rgb (0, pts)), GST_FLOW_OK);
  out = gst_harness_pull (h);
  fail_unless (gst_buffer_get_clip_classify_meta (out) == NULL);
  gst_buffer_unref (out);
  /* The forward pass on the slow model takes far longer than this. */
  fail_unless_equals_uint64 (pt_stat (h->element, "inferred"), 0);
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
  pull_until_eos (h);

  /* EOS came out after the result: it is already on the bus. */
  msgs = pt_pop_messages (bus, "clipclassify");
  fail_unless_equals_int (g_list_length (msgs), 1);
  s = gst_message_get_structure (msgs->data);
  fail_unless (gst_structure_get_uint64 (s, "source-pts", &u) && u == pts);
  fail_unless (gst_structure_get_uint64 (s, "timestamp", &u) && u == pts);
  fail_unless (gst_structure_get_uint64 (s, "duration", &u) && u == PT_FRAME_DURATION);
  fail_unless_equals_uint64 (pt_stat (h->element, "inferred"), 1);
  g_list_free_full (msgs, (GDestroyNotify)gst_message_unref);
  gst_harness_teardown (h);
  gst_object_unref (bus);
}

GST_END_TEST;

/* Runs one full forward pass (async) and returns its duration in us. */
static gint64
full_pass_us (GstHarness *h)
{
  guint64 before = pt_stat (h->element, "inferred");
  GstBuffer *out;

  fail_unless_equals_int (gst_harness_push (h, pt_golden_rgb (0, 0)), GST_FLOW_OK);
  out = gst_harness_pull (h);
  gst_buffer_unref (out);
  fail_unless (wait_stat (h->element, "inferred", before + 1));
  return pt_stat (h->element, "mean-inference-time") / 1000;
}

/* Pushes frames from *@pts on until the worker takes one (it may still be
 * finishing the previous pass for a moment after "inferred" counted it). */
static void
submit_one (GstHarness *h, GstClockTime *pts)
{
  for (int tries = 0; tries < 1000; tries++) {
    guint64 dropped = pt_stat (h->element, "dropped");
    fail_unless_equals_int (gst_harness_push (h, pt_golden_rgb (0, *pts)), GST_FLOW_OK);
    gst_buffer_unref (gst_harness_pull (h));
    *pts += PT_FRAME_DURATION;
    if (pt_stat (h->element, "dropped") == dropped)
      return;
    g_usleep (1000);
  }
  fail ("the worker never became idle");
}

/* Test that a flush aborts the forward pass in flight instead of waiting it out. */
GST_START_TEST (test_async_flush_aborts)
{
  GstBus *bus;
  GstHarness *h = async_harness (get_slow_model (), TRUE, &bus);
  gint64 full, t0, elapsed;
  GstBuffer *out;

  GstClockTime pts = PT_FRAME_DURATION;
  guint64 dropped;

  full = full_pass_us (h);
  /* one frame goes to the worker, the next finds it busy */
  submit_one (h, &pts);
  dropped = pt_stat (h->element, "dropped");
  fail_unless_equals_int (gst_harness_push (h, pt_golden_rgb (0, pts)), GST_FLOW_OK);
  gst_buffer_unref (gst_harness_pull (h));
  fail_unless_equals_uint64 (pt_stat (h->element, "dropped"), dropped + 1);
  g_usleep (full / 10);

  t0 = g_get_monotonic_time ();
  fail_unless (gst_harness_push_event (h, gst_event_new_flush_start ()));
  /* FLUSH_STOP waits for the worker to be idle. */
  fail_unless (gst_harness_push_event (h, gst_event_new_flush_stop (TRUE)));
  elapsed = g_get_monotonic_time () - t0;
  if (g_getenv ("PT_VERBOSE"))
    g_printerr ("full pass %" G_GINT64_FORMAT " us, flush %" G_GINT64_FORMAT " us\n", full,
                elapsed);
  fail_unless (elapsed < full / 2,
               "flush took %" G_GINT64_FORMAT " us, a full "
               "pass %" G_GINT64_FORMAT " us",
               elapsed, full);
  /* The aborted pass produced nothing. */
  fail_unless_equals_uint64 (pt_stat (h->element, "inferred"), 1);

  /* After the flush the stream goes on: a new segment, a new result. */
  {
    GstSegment segment;
    gst_segment_init (&segment, GST_FORMAT_TIME);
    fail_unless (gst_harness_push_event (h, gst_event_new_segment (&segment)));
  }
  fail_unless_equals_int (gst_harness_push (h, pt_golden_rgb (0, 10 * PT_FRAME_DURATION)),
                          GST_FLOW_OK);
  out = gst_harness_pull (h);
  /* results from before the flush are gone */
  fail_unless (gst_buffer_get_clip_classify_meta (out) == NULL);
  gst_buffer_unref (out);
  fail_unless (wait_stat (h->element, "inferred", 2));
  gst_harness_teardown (h);
  gst_object_unref (bus);
}

GST_END_TEST;

/* Test that going to NULL during an async forward pass does not wait it out. */
GST_START_TEST (test_async_stop_aborts)
{
  GstBus *bus;
  GstHarness *h = async_harness (get_slow_model (), TRUE, &bus);
  gint64 full, t0, elapsed;

  GstClockTime pts = PT_FRAME_DURATION;

  full = full_pass_us (h);
  submit_one (h, &pts);
  g_usleep (full / 10);
  t0 = g_get_monotonic_time ();
  fail_unless_equals_int (gst_element_set_state (h->element, GST_STATE_NULL),
                          GST_STATE_CHANGE_SUCCESS);
  elapsed = g_get_monotonic_time () - t0;
  fail_unless (elapsed < full / 2,
               "stop took %" G_GINT64_FORMAT " us, a full "
               "pass %" G_GINT64_FORMAT " us",
               elapsed, full);
  fail_unless_equals_uint64 (pt_stat (h->element, "inferred"), 1);
  gst_harness_teardown (h);
  gst_object_unref (bus);
}

GST_END_TEST;

typedef struct
{
  GstHarness *h;
  GstFlowReturn ret;
} PushData;

static gpointer
push_thread (gpointer data)
{
  PushData *d = data;
  d->ret = gst_harness_push (d->h, pt_golden_rgb (0, PT_FRAME_DURATION));
  return NULL;
}

/* Test that going to NULL during a sync forward pass does not wait it out. */
GST_START_TEST (test_sync_stop_aborts)
{
  GstBus *bus;
  GstHarness *h = async_harness (get_slow_model (), FALSE, &bus);
  gint64 t0, full, elapsed;
  PushData d = { h, GST_FLOW_OK };
  GThread *thread;

  t0 = g_get_monotonic_time ();
  fail_unless_equals_int (gst_harness_push (h, pt_golden_rgb (0, 0)), GST_FLOW_OK);
  full = g_get_monotonic_time () - t0;
  gst_buffer_unref (gst_harness_pull (h));

  thread = g_thread_new ("push", push_thread, &d);
  /* "frames" counts the buffer as soon as it enters the element. */
  fail_unless (wait_stat (h->element, "frames", 2));
  g_usleep (full / 10);
  t0 = g_get_monotonic_time ();
  fail_unless_equals_int (gst_element_set_state (h->element, GST_STATE_NULL),
                          GST_STATE_CHANGE_SUCCESS);
  elapsed = g_get_monotonic_time () - t0;
  g_thread_join (thread);
  fail_unless_equals_int (d.ret, GST_FLOW_FLUSHING);
  fail_unless (elapsed < full / 2,
               "stop took %" G_GINT64_FORMAT " us, a full "
               "pass %" G_GINT64_FORMAT " us",
               elapsed, full);
  fail_unless_equals_uint64 (pt_stat (h->element, "inferred"), 1);
  gst_harness_teardown (h);
  gst_object_unref (bus);
}

GST_END_TEST;

static Suite *
async_suite (void)
{
  Suite *s = suite_create ("clipclassify-async");
  TCase *tc = tcase_create ("async");

  tcase_set_timeout (tc, 600);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_async_drops);
  tcase_add_test (tc, test_async_eos_waits);
  tcase_add_test (tc, test_async_flush_aborts);
  tcase_add_test (tc, test_async_stop_aborts);
  tcase_add_test (tc, test_sync_stop_aborts);
  return s;
}

GST_CHECK_MAIN (async);
