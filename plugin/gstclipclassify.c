/* GStreamer Chinese-CLIP frame classifier
 * SPDX-License-Identifier: MIT
 */
/**
 * SECTION:element-clipclassify
 * @title: clipclassify
 *
 * Scores sampled video frames against Chinese prompts with a Chinese-CLIP model
 * (OFA-Sys/chinese-clip-vit-*), attaches the results to the buffers as a
 * #GstClipClassifyMeta and posts them as element messages. The video passes
 * through unchanged (in place, mapped read-only); QoS never drops frames.
 *
 * Only sampled frames (#GstClipClassify:inference-interval,
 * #GstClipClassify:sample-interval) are converted to RGB and resized, straight
 * to the model's input size; I420 and NV12 with the matrix and range of their
 * colorimetry. Every buffer carries the newest result; its `source_pts` names
 * the frame the result was computed from.
 *
 * In `mode=sync` the streaming thread runs the model, so each sampled frame
 * carries its own result. In `mode=async` (live sources) a worker thread runs
 * it: the streaming thread never waits, sampled frames that arrive while the
 * worker is busy are dropped from inference (counted in `stats`), and EOS waits
 * for the frame in flight.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 -m videotestsrc num-buffers=30 ! \
 *     clipclassify model=chinese-clip-vit-base-patch16 \
 *       prompts='<"一只猫","一辆红色的汽车","城市夜景">' inference-interval=10 ! \
 *     fakesink
 * ]|
 *
 * ## Messages
 *
 * One element message named `clipclassify` per inference (unless
 * #GstClipClassify:post-messages is %FALSE), posted from the streaming thread
 * when the first buffer carrying the result passes (sync: the inferred frame
 * itself; async: the next frame, or at EOS):
 *
 * * `timestamp` (#G_TYPE_UINT64, #GstClockTime): PTS of that buffer.
 * * `stream-time` (#G_TYPE_UINT64, #GstClockTime): its stream time.
 * * `running-time` (#G_TYPE_UINT64, #GstClockTime): its running time.
 * * `duration` (#G_TYPE_UINT64, #GstClockTime): its duration.
 * * `frame-number` (#G_TYPE_UINT64): number of the inferred frame since the
 *   element started (0 = first frame).
 * * `source-pts` (#G_TYPE_UINT64, #GstClockTime): PTS of the inferred frame.
 * * `labels` (#GstValueArray of #G_TYPE_STRING): the prompts as written (before
 *   the template), best first, at most #GstClipClassify:top-k.
 * * `scores` (#GstValueArray of #G_TYPE_DOUBLE): their scores, same order
 *   (softmax probability or cosine, see #GstClipClassify:score-mode).
 * * `cosines` (#GstValueArray of #G_TYPE_DOUBLE): their cosine similarities.
 * * `top-label` (#G_TYPE_STRING): the best label ("" when there are no prompts).
 * * `top-score` (#G_TYPE_DOUBLE): its score (0 when there are no prompts).
 * * `matched` (#GstValueArray of #G_TYPE_STRING): the reported labels whose
 *   score is >= #GstClipClassify:threshold, best first.
 * * `inference-time` (#G_TYPE_UINT64): nanoseconds spent in the image tower.
 * * `source-id` (#G_TYPE_STRING): #GstClipClassify:source-id.
 *
 * One element message named `clipclassify-prompts` whenever a prompt set comes
 * into use (at start and after each change while playing):
 *
 * * `generation` (#G_TYPE_UINT): increases with every change.
 * * `labels` (#GstValueArray of #G_TYPE_STRING): the prompts, in label-index order.
 * * `negative-prompts` (#GstValueArray of #G_TYPE_STRING).
 * * `prompt-template` (#G_TYPE_STRING).
 * * `truncated` (#GstValueArray of #G_TYPE_STRING): prompts cut to the context length.
 * * `encode-time` (#G_TYPE_UINT64): nanoseconds spent in the text tower.
 *
 * Errors: a missing or broken model fails the READY to PAUSED change with a
 * #GST_RESOURCE_ERROR carrying the loader's message (file, tensor, reason).
 * An inference failure is a #GST_STREAM_ERROR_FAILED. A prompt change that
 * cannot be used (unreadable prompts-file, bad template) posts a WARNING and
 * the previous prompts stay; so does a prompt longer than the model's context
 * length, which is truncated and still used.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <string.h>

#include "gstclipclassify.h"
#include "clipframe.h"
#include "clipmodelcache.h"

GST_DEBUG_CATEGORY_STATIC (gst_clip_classify_debug);
#define GST_CAT_DEFAULT gst_clip_classify_debug

#define ALLOWED_CAPS GST_VIDEO_CAPS_MAKE (CLIP_FRAME_FORMATS)

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE (
    "sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS (ALLOWED_CAPS));
static GstStaticPadTemplate src_template
    = GST_STATIC_PAD_TEMPLATE ("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS (ALLOWED_CAPS));

#define DEFAULT_MODEL NULL
#define DEFAULT_WEIGHTS_FILE NULL
#define DEFAULT_BACKEND GST_CLIP_CLASSIFY_BACKEND_AUTO
#define DEFAULT_PRECISION GST_CLIP_CLASSIFY_PRECISION_FP32
#define DEFAULT_PROMPTS_FILE NULL
#define DEFAULT_PROMPT_TEMPLATE "{}"
#define DEFAULT_SCORE_MODE GST_CLIP_CLASSIFY_SCORE_SOFTMAX
#define DEFAULT_THRESHOLD 0.5
#define DEFAULT_TOP_K 5
#define DEFAULT_INFERENCE_INTERVAL 1
#define DEFAULT_SAMPLE_INTERVAL 0
#define DEFAULT_MODE GST_CLIP_CLASSIFY_MODE_SYNC
#define DEFAULT_POST_MESSAGES TRUE
#define DEFAULT_ATTACH_EMBEDDING FALSE
#define DEFAULT_N_THREADS 0
#define DEFAULT_SOURCE_ID ""

enum
{
  PROP_0,
  PROP_MODEL,
  PROP_WEIGHTS_FILE,
  PROP_BACKEND,
  PROP_PRECISION,
  PROP_PROMPTS,
  PROP_PROMPTS_FILE,
  PROP_PROMPT_TEMPLATE,
  PROP_NEGATIVE_PROMPTS,
  PROP_SCORE_MODE,
  PROP_THRESHOLD,
  PROP_TOP_K,
  PROP_INFERENCE_INTERVAL,
  PROP_SAMPLE_INTERVAL,
  PROP_MODE,
  PROP_POST_MESSAGES,
  PROP_ATTACH_EMBEDDING,
  PROP_N_THREADS,
  PROP_SOURCE_ID,
  PROP_STATS,
};

#define GST_TYPE_CLIP_CLASSIFY_SCORE_MODE (gst_clip_classify_score_mode_get_type ())
static GType
gst_clip_classify_score_mode_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    { GST_CLIP_CLASSIFY_SCORE_SOFTMAX,
      "Softmax over the prompts and negative prompts of logit scale x cosine", "softmax" },
    { GST_CLIP_CLASSIFY_SCORE_COSINE, "Cosine similarity", "cosine" },
    { 0, NULL, NULL },
  };
  if (g_once_init_enter (&type))
    g_once_init_leave (&type, g_enum_register_static ("GstClipClassifyScoreMode", values));
  return type;
}

#define GST_TYPE_CLIP_CLASSIFY_MODE (gst_clip_classify_mode_get_type ())
static GType
gst_clip_classify_mode_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    { GST_CLIP_CLASSIFY_MODE_SYNC, "Infer in the streaming thread: results on the very frame",
      "sync" },
    { GST_CLIP_CLASSIFY_MODE_ASYNC,
      "Infer in a worker thread: never delay the stream, drop frames while busy", "async" },
    { 0, NULL, NULL },
  };
  if (g_once_init_enter (&type))
    g_once_init_leave (&type, g_enum_register_static ("GstClipClassifyMode", values));
  return type;
}

#define GST_TYPE_CLIP_CLASSIFY_BACKEND (gst_clip_classify_backend_get_type ())
static GType
gst_clip_classify_backend_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    { GST_CLIP_CLASSIFY_BACKEND_AUTO, "$CNCLIP_BACKEND, else oneDNN when built in, else OpenBLAS",
      "auto" },
    { GST_CLIP_CLASSIFY_BACKEND_ONEDNN, "oneDNN", "onednn" },
    { GST_CLIP_CLASSIFY_BACKEND_OPENBLAS, "OpenBLAS", "openblas" },
    { 0, NULL, NULL },
  };
  if (g_once_init_enter (&type))
    g_once_init_leave (&type, g_enum_register_static ("GstClipClassifyBackend", values));
  return type;
}

#define GST_TYPE_CLIP_CLASSIFY_PRECISION (gst_clip_classify_precision_get_type ())
static GType
gst_clip_classify_precision_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    { GST_CLIP_CLASSIFY_PRECISION_FP32, "float32 (reference accuracy)", "fp32" },
    { GST_CLIP_CLASSIFY_PRECISION_BF16, "bfloat16 weights (faster, opt-in)", "bf16" },
    { GST_CLIP_CLASSIFY_PRECISION_INT8, "int8 weights (experimental)", "int8" },
    { 0, NULL, NULL },
  };
  if (g_once_init_enter (&type))
    g_once_init_leave (&type, g_enum_register_static ("GstClipClassifyPrecision", values));
  return type;
}

/* A preprocessed frame handed to the async worker. It owns its pixels and
 * holds no reference on the video buffer, which therefore stays writable for
 * downstream elements. */
typedef struct
{
  float *pixels;
  ClipSource source;
} ClipJob;

static void
clip_job_free (gpointer data)
{
  ClipJob *job = data;
  g_free (job->pixels);
  g_free (job);
}

#define gst_clip_classify_parent_class parent_class
G_DEFINE_TYPE_WITH_CODE (GstClipClassify, gst_clip_classify, GST_TYPE_BASE_TRANSFORM,
                         GST_DEBUG_CATEGORY_INIT (gst_clip_classify_debug, "clipclassify", 0,
                                                  "Chinese-CLIP frame classifier"));
GST_ELEMENT_REGISTER_DEFINE (clipclassify, "clipclassify", GST_RANK_NONE, GST_TYPE_CLIP_CLASSIFY);

static void gst_clip_classify_finalize (GObject *object);
static void gst_clip_classify_set_property (GObject *object, guint prop_id, const GValue *value,
                                            GParamSpec *pspec);
static void gst_clip_classify_get_property (GObject *object, guint prop_id, GValue *value,
                                            GParamSpec *pspec);
static GstStateChangeReturn gst_clip_classify_change_state (GstElement *element,
                                                            GstStateChange transition);
static gboolean gst_clip_classify_start (GstBaseTransform *trans);
static gboolean gst_clip_classify_stop (GstBaseTransform *trans);
static gboolean gst_clip_classify_set_caps (GstBaseTransform *trans, GstCaps *incaps,
                                            GstCaps *outcaps);
static gboolean gst_clip_classify_sink_event (GstBaseTransform *trans, GstEvent *event);
static GstFlowReturn gst_clip_classify_transform_ip (GstBaseTransform *trans, GstBuffer *buf);

static void
gst_clip_classify_class_init (GstClipClassifyClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);
  const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS;

  gobject_class->set_property = gst_clip_classify_set_property;
  gobject_class->get_property = gst_clip_classify_get_property;
  gobject_class->finalize = gst_clip_classify_finalize;

  g_object_class_install_property (
      gobject_class, PROP_MODEL,
      g_param_spec_string ("model", "Model",
                           "Directory of a Chinese-CLIP model in the Hugging Face layout "
                           "(config.json, weights, vocab.txt); required. Elements with the same "
                           "model, weights-file, backend and precision share one loaded model",
                           DEFAULT_MODEL, rw | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (
      gobject_class, PROP_WEIGHTS_FILE,
      g_param_spec_string ("weights-file", "Weights file",
                           "Weights file to load instead of the one found in the model "
                           "directory (model.safetensors, pytorch_model.bin, a single *.pt); "
                           "NULL = look in the directory",
                           DEFAULT_WEIGHTS_FILE, rw | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (
      gobject_class, PROP_BACKEND,
      g_param_spec_enum ("backend", "Backend", "Matrix-multiplication backend of the model",
                         GST_TYPE_CLIP_CLASSIFY_BACKEND, DEFAULT_BACKEND,
                         rw | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (
      gobject_class, PROP_PRECISION,
      g_param_spec_enum ("precision", "Precision", "Numeric precision of the model's weights",
                         GST_TYPE_CLIP_CLASSIFY_PRECISION, DEFAULT_PRECISION,
                         rw | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (
      gobject_class, PROP_PROMPTS,
      gst_param_spec_array ("prompts", "Prompts",
                            "Prompts to score sampled frames against, e.g. "
                            "prompts='<\"一只猫\",\"一辆红色的汽车\">'; reported by their "
                            "index in this list followed by the lines of prompts-file",
                            g_param_spec_string ("prompt", "Prompt", "One prompt", NULL,
                                                 G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS),
                            rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (
      gobject_class, PROP_PROMPTS_FILE,
      g_param_spec_string ("prompts-file", "Prompts file",
                           "UTF-8 file with one more prompt per line, appended to prompts; "
                           "blank lines and lines starting with # are ignored",
                           DEFAULT_PROMPTS_FILE, rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (
      gobject_class, PROP_PROMPT_TEMPLATE,
      g_param_spec_string ("prompt-template", "Prompt template",
                           "Text each prompt (and negative prompt) is put into before encoding; "
                           "{} stands for the prompt, e.g. \"一张{}的照片\"",
                           DEFAULT_PROMPT_TEMPLATE, rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (
      gobject_class, PROP_NEGATIVE_PROMPTS,
      gst_param_spec_array ("negative-prompts", "Negative prompts",
                            "Background prompts: they take part in the softmax but are never "
                            "reported or matched",
                            g_param_spec_string ("negative-prompt", "Negative prompt",
                                                 "One negative prompt", NULL,
                                                 G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS),
                            rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (
      gobject_class, PROP_SCORE_MODE,
      g_param_spec_enum ("score-mode", "Score mode",
                         "What scores hold: softmax over the prompts and negative prompts "
                         "with the model's logit scale, or the raw cosine similarity",
                         GST_TYPE_CLIP_CLASSIFY_SCORE_MODE, DEFAULT_SCORE_MODE,
                         rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (
      gobject_class, PROP_THRESHOLD,
      g_param_spec_double ("threshold", "Threshold",
                           "A reported prompt matches when its score is >= threshold", -1.0, 1.0,
                           DEFAULT_THRESHOLD, rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (
      gobject_class, PROP_TOP_K,
      g_param_spec_uint ("top-k", "Top k",
                         "Results reported per inference, best first (0 = all prompts)", 0,
                         G_MAXUINT, DEFAULT_TOP_K, rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (
      gobject_class, PROP_INFERENCE_INTERVAL,
      g_param_spec_uint ("inference-interval", "Inference interval",
                         "Infer on every Nth frame (the first frame is always inferred)", 1,
                         G_MAXUINT, DEFAULT_INFERENCE_INTERVAL, rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (
      gobject_class, PROP_SAMPLE_INTERVAL,
      g_param_spec_uint64 ("sample-interval", "Sample interval",
                           "At most one inference per this much stream time, in nanoseconds "
                           "(0 = no limit); applies to the frames inference-interval selects",
                           0, G_MAXUINT64, DEFAULT_SAMPLE_INTERVAL,
                           rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (
      gobject_class, PROP_MODE,
      g_param_spec_enum ("mode", "Mode",
                         "sync: infer in the streaming thread, results on the very frame; "
                         "async: infer in a worker thread, the stream never waits and frames "
                         "that arrive while it is busy are not inferred (live sources)",
                         GST_TYPE_CLIP_CLASSIFY_MODE, DEFAULT_MODE, rw | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (
      gobject_class, PROP_POST_MESSAGES,
      g_param_spec_boolean ("post-messages", "Post messages",
                            "Post a clipclassify element message per inference",
                            DEFAULT_POST_MESSAGES, rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (
      gobject_class, PROP_ATTACH_EMBEDDING,
      g_param_spec_boolean ("attach-embedding", "Attach embedding",
                            "Also store the L2-normalised image embedding in the meta",
                            DEFAULT_ATTACH_EMBEDDING, rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (
      gobject_class, PROP_N_THREADS,
      g_param_spec_int ("n-threads", "Threads", "Threads for inference (0 = all cores)", 0, 1024,
                        DEFAULT_N_THREADS, rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (
      gobject_class, PROP_SOURCE_ID,
      g_param_spec_string ("source-id", "Source id",
                           "Identifier copied into every message and record, e.g. a camera name",
                           DEFAULT_SOURCE_ID, rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (
      gobject_class, PROP_STATS,
      g_param_spec_boxed ("stats", "Statistics",
                          "Counters since the element started: frames, inferred, skipped (not "
                          "sampled or no prompts), dropped (async: sampled while busy) "
                          "(guint64), mean-inference-time, mean-preprocess-time (guint64 ns), "
                          "prompts-generation (guint)",
                          GST_TYPE_STRUCTURE, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (
      element_class, "Chinese-CLIP classifier", "Filter/Analyzer/Video",
      "Scores video frames against Chinese prompts with a Chinese-CLIP model, "
      "as buffer metadata and bus messages",
      "gst-cnclip developers");
  element_class->change_state = GST_DEBUG_FUNCPTR (gst_clip_classify_change_state);

  trans_class->start = GST_DEBUG_FUNCPTR (gst_clip_classify_start);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_clip_classify_stop);
  trans_class->set_caps = GST_DEBUG_FUNCPTR (gst_clip_classify_set_caps);
  trans_class->sink_event = GST_DEBUG_FUNCPTR (gst_clip_classify_sink_event);
  trans_class->transform_ip = GST_DEBUG_FUNCPTR (gst_clip_classify_transform_ip);
  trans_class->passthrough_on_same_caps = FALSE;
  trans_class->transform_ip_on_passthrough = FALSE;

  gst_type_mark_as_plugin_api (GST_TYPE_CLIP_CLASSIFY_SCORE_MODE, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_CLIP_CLASSIFY_MODE, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_CLIP_CLASSIFY_BACKEND, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_CLIP_CLASSIFY_PRECISION, 0);
}

static void
gst_clip_classify_init (GstClipClassify *self)
{
  GstBaseTransform *trans = GST_BASE_TRANSFORM (self);

  self->model_dir = g_strdup (DEFAULT_MODEL);
  self->weights_file = g_strdup (DEFAULT_WEIGHTS_FILE);
  self->backend = DEFAULT_BACKEND;
  self->precision = DEFAULT_PRECISION;
  self->prompts = g_new0 (gchar *, 1);
  self->prompts_file = g_strdup (DEFAULT_PROMPTS_FILE);
  self->prompt_template = g_strdup (DEFAULT_PROMPT_TEMPLATE);
  self->negative_prompts = g_new0 (gchar *, 1);
  self->score_mode = DEFAULT_SCORE_MODE;
  self->threshold = DEFAULT_THRESHOLD;
  self->top_k = DEFAULT_TOP_K;
  self->inference_interval = DEFAULT_INFERENCE_INTERVAL;
  self->sample_interval = DEFAULT_SAMPLE_INTERVAL;
  self->mode = DEFAULT_MODE;
  self->post_messages = DEFAULT_POST_MESSAGES;
  self->attach_embedding = DEFAULT_ATTACH_EMBEDDING;
  self->n_threads = DEFAULT_N_THREADS;
  self->source_id = g_strdup (DEFAULT_SOURCE_ID);
  self->last_sample_time = GST_CLOCK_TIME_NONE;

  /* In place, never passthrough (the meta needs a writable buffer, which
   * basetransform makes by sharing the memory, not copying it), and QoS off:
   * an analyser must not make upstream drop frames. */
  gst_base_transform_set_in_place (trans, TRUE);
  gst_base_transform_set_passthrough (trans, FALSE);
  gst_base_transform_set_qos_enabled (trans, FALSE);
}

static void
gst_clip_classify_finalize (GObject *object)
{
  GstClipClassify *self = GST_CLIP_CLASSIFY (object);

  g_free (self->model_dir);
  g_free (self->weights_file);
  g_strfreev (self->prompts);
  g_free (self->prompts_file);
  g_free (self->prompt_template);
  g_strfreev (self->negative_prompts);
  g_free (self->source_id);

  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static gchar **
strv_from_value_array (const GValue *value)
{
  guint n = gst_value_array_get_size (value), k = 0;
  gchar **strv = g_new0 (gchar *, n + 1);

  for (guint i = 0; i < n; i++) {
    const GValue *v = gst_value_array_get_value (value, i);
    if (G_VALUE_HOLDS_STRING (v) && g_value_get_string (v) != NULL)
      strv[k++] = g_value_dup_string (v);
  }
  return strv;
}

static void
strv_to_value_array (gchar **strv, GValue *value)
{
  for (; strv && *strv; strv++) {
    GValue v = G_VALUE_INIT;
    g_value_init (&v, G_TYPE_STRING);
    g_value_set_string (&v, *strv);
    gst_value_array_append_and_take_value (value, &v);
  }
}

/* called with the object lock */
static ClipPromptSpec *
gst_clip_classify_prompt_spec (GstClipClassify *self)
{
  return clip_prompt_spec_new ((const gchar *const *)self->prompts, self->prompts_file,
                               self->prompt_template, (const gchar *const *)self->negative_prompts);
}

/* called with the object lock: a prompt property changed. While started, the
 * new set is encoded on the prompt encoder's thread; set_property returns at
 * once and the swap is announced with a clipclassify-prompts message. */
static void
gst_clip_classify_prompts_changed (GstClipClassify *self)
{
  self->prompt_changes++;
  if (self->prompt_encoder != NULL)
    clip_prompt_encoder_request (self->prompt_encoder, gst_clip_classify_prompt_spec (self),
                                 ++self->prompt_generation);
}

/* called with the object lock */
static gboolean
gst_clip_classify_check_mutable (GstClipClassify *self, const gchar *name)
{
  if (self->started) {
    g_warning (
        "clipclassify: changing the \"%s\" property is only allowed in the NULL and READY states",
        name);
    return FALSE;
  }
  return TRUE;
}

static void
gst_clip_classify_set_property (GObject *object, guint prop_id, const GValue *value,
                                GParamSpec *pspec)
{
  GstClipClassify *self = GST_CLIP_CLASSIFY (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODEL:
      if (gst_clip_classify_check_mutable (self, pspec->name)) {
        g_free (self->model_dir);
        self->model_dir = g_value_dup_string (value);
      }
      break;
    case PROP_WEIGHTS_FILE:
      if (gst_clip_classify_check_mutable (self, pspec->name)) {
        g_free (self->weights_file);
        self->weights_file = g_value_dup_string (value);
      }
      break;
    case PROP_BACKEND:
      if (gst_clip_classify_check_mutable (self, pspec->name))
        self->backend = g_value_get_enum (value);
      break;
    case PROP_PRECISION:
      if (gst_clip_classify_check_mutable (self, pspec->name))
        self->precision = g_value_get_enum (value);
      break;
    case PROP_MODE:
      if (gst_clip_classify_check_mutable (self, pspec->name))
        self->mode = g_value_get_enum (value);
      break;
    case PROP_PROMPTS:
      g_strfreev (self->prompts);
      self->prompts = strv_from_value_array (value);
      gst_clip_classify_prompts_changed (self);
      break;
    case PROP_PROMPTS_FILE:
      g_free (self->prompts_file);
      self->prompts_file = g_value_dup_string (value);
      gst_clip_classify_prompts_changed (self);
      break;
    case PROP_PROMPT_TEMPLATE:
      g_free (self->prompt_template);
      self->prompt_template = g_value_dup_string (value);
      if (self->prompt_template == NULL)
        self->prompt_template = g_strdup (DEFAULT_PROMPT_TEMPLATE);
      gst_clip_classify_prompts_changed (self);
      break;
    case PROP_NEGATIVE_PROMPTS:
      g_strfreev (self->negative_prompts);
      self->negative_prompts = strv_from_value_array (value);
      gst_clip_classify_prompts_changed (self);
      break;
    case PROP_SCORE_MODE:
      self->score_mode = g_value_get_enum (value);
      break;
    case PROP_THRESHOLD:
      self->threshold = g_value_get_double (value);
      break;
    case PROP_TOP_K:
      self->top_k = g_value_get_uint (value);
      break;
    case PROP_INFERENCE_INTERVAL:
      self->inference_interval = g_value_get_uint (value);
      break;
    case PROP_SAMPLE_INTERVAL:
      self->sample_interval = g_value_get_uint64 (value);
      break;
    case PROP_POST_MESSAGES:
      self->post_messages = g_value_get_boolean (value);
      break;
    case PROP_ATTACH_EMBEDDING:
      self->attach_embedding = g_value_get_boolean (value);
      break;
    case PROP_N_THREADS:
      self->n_threads = g_value_get_int (value);
      break;
    case PROP_SOURCE_ID:
      g_free (self->source_id);
      self->source_id = g_value_dup_string (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

/* called with the object lock */
static GstStructure *
gst_clip_classify_stats (GstClipClassify *self)
{
  return gst_structure_new (
      "clipclassify-stats", "frames", G_TYPE_UINT64, self->n_frames, "inferred", G_TYPE_UINT64,
      self->n_inferred, "skipped", G_TYPE_UINT64, self->n_skipped, "dropped", G_TYPE_UINT64,
      self->n_dropped, "mean-inference-time", G_TYPE_UINT64,
      self->n_inferred ? self->inference_time_total / self->n_inferred : 0, "mean-preprocess-time",
      G_TYPE_UINT64, self->n_preprocessed ? self->preprocess_time_total / self->n_preprocessed : 0,
      "prompts-generation", G_TYPE_UINT, self->prompt_set ? self->prompt_set->generation : 0, NULL);
}

static void
gst_clip_classify_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  GstClipClassify *self = GST_CLIP_CLASSIFY (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODEL:
      g_value_set_string (value, self->model_dir);
      break;
    case PROP_WEIGHTS_FILE:
      g_value_set_string (value, self->weights_file);
      break;
    case PROP_BACKEND:
      g_value_set_enum (value, self->backend);
      break;
    case PROP_PRECISION:
      g_value_set_enum (value, self->precision);
      break;
    case PROP_PROMPTS:
      strv_to_value_array (self->prompts, value);
      break;
    case PROP_PROMPTS_FILE:
      g_value_set_string (value, self->prompts_file);
      break;
    case PROP_PROMPT_TEMPLATE:
      g_value_set_string (value, self->prompt_template);
      break;
    case PROP_NEGATIVE_PROMPTS:
      strv_to_value_array (self->negative_prompts, value);
      break;
    case PROP_SCORE_MODE:
      g_value_set_enum (value, self->score_mode);
      break;
    case PROP_THRESHOLD:
      g_value_set_double (value, self->threshold);
      break;
    case PROP_TOP_K:
      g_value_set_uint (value, self->top_k);
      break;
    case PROP_INFERENCE_INTERVAL:
      g_value_set_uint (value, self->inference_interval);
      break;
    case PROP_SAMPLE_INTERVAL:
      g_value_set_uint64 (value, self->sample_interval);
      break;
    case PROP_MODE:
      g_value_set_enum (value, self->mode);
      break;
    case PROP_POST_MESSAGES:
      g_value_set_boolean (value, self->post_messages);
      break;
    case PROP_ATTACH_EMBEDDING:
      g_value_set_boolean (value, self->attach_embedding);
      break;
    case PROP_N_THREADS:
      g_value_set_int (value, self->n_threads);
      break;
    case PROP_SOURCE_ID:
      g_value_set_string (value, self->source_id);
      break;
    case PROP_STATS:
      g_value_take_boxed (value, gst_clip_classify_stats (self));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

/* ------------------------------------------------------------------------ */
/* Prompt sets                                                              */

static void
array_take_strv (GstStructure *s, const gchar *field, gchar **strv)
{
  GValue array = G_VALUE_INIT;

  gst_value_array_init (&array, 0);
  strv_to_value_array (strv, &array);
  gst_structure_take_value (s, field, &array);
}

/* Announces @set and warns about truncated prompts; lock not held. */
static void
gst_clip_classify_post_prompts (GstClipClassify *self, ClipPromptSet *set)
{
  GstStructure *s;

  for (gchar **t = set->truncated; t && *t; t++)
    GST_ELEMENT_WARNING (self, RESOURCE, SETTINGS,
                         ("Prompt \"%s\" is longer than the model's context length and was "
                          "truncated",
                          *t),
                         (NULL));

  s = gst_structure_new ("clipclassify-prompts", "generation", G_TYPE_UINT, set->generation, NULL);
  array_take_strv (s, "labels", set->labels);
  array_take_strv (s, "negative-prompts", set->negatives);
  gst_structure_set (s, "prompt-template", G_TYPE_STRING, set->template_, NULL);
  array_take_strv (s, "truncated", set->truncated);
  gst_structure_set (s, "encode-time", G_TYPE_UINT64, set->encode_time, NULL);
  gst_element_post_message (GST_ELEMENT (self), gst_message_new_element (GST_OBJECT (self), s));
}

/* Prompt encoder thread: a requested set is ready or failed. */
static void
gst_clip_classify_prompts_ready (ClipPromptSet *set, const GError *error, guint generation,
                                 gpointer user_data)
{
  GstClipClassify *self = user_data;
  ClipPromptSet *old = NULL;
  gboolean current;

  GST_OBJECT_LOCK (self);
  /* A newer request supersedes this one; the encoder already skips most of
   * those, this also covers one that raced with stop(). */
  current = self->started && generation == self->prompt_generation;
  if (current && set != NULL) {
    old = self->prompt_set;
    self->prompt_set = clip_prompt_set_ref (set);
  }
  GST_OBJECT_UNLOCK (self);

  if (!current)
    return;
  if (set == NULL) {
    GST_ELEMENT_WARNING (self, RESOURCE, SETTINGS,
                         ("Could not use the new prompts, keeping the previous ones: %s",
                          error ? error->message : "unknown error"),
                         (NULL));
    return;
  }
  clip_prompt_set_unref (old);
  GST_INFO_OBJECT (self, "prompt set %u in use: %u labels, %u negatives", set->generation,
                   set->n_labels, set->n_negatives);
  gst_clip_classify_post_prompts (self, set);
}

/* ------------------------------------------------------------------------ */
/* start / stop                                                             */

static gboolean
gst_clip_classify_should_abort (gpointer user_data)
{
  GstClipClassify *self = user_data;
  return g_atomic_int_get (&self->abort) != 0;
}

static void gst_clip_classify_run_job (gpointer data, gpointer user_data);

static gboolean
gst_clip_classify_start (GstBaseTransform *trans)
{
  GstClipClassify *self = GST_CLIP_CLASSIFY (trans);
  CnclipModelParams mp = cnclip_model_default_params ();
  CnclipContextParams cp = cnclip_context_default_params ();
  gchar *model_dir, *weights_file;
  ClipPromptSpec *spec;
  ClipPromptEncoder *encoder = NULL;
  ClipPromptSet *set = NULL;
  CnclipContext *ctx = NULL;
  CnclipModel *model;
  GError *error = NULL;
  GstClipClassifyMode mode;
  gboolean attach_embedding;
  guint changes, generation;
  gint n_threads;

  GST_OBJECT_LOCK (self);
  model_dir = g_strdup (self->model_dir);
  weights_file = g_strdup (self->weights_file);
  mp.backend = (CnclipBackendKind)self->backend;
  mp.precision = (CnclipPrecision)self->precision;
  n_threads = self->n_threads;
  mode = self->mode;
  attach_embedding = self->attach_embedding;
  spec = gst_clip_classify_prompt_spec (self);
  changes = self->prompt_changes;
  generation = ++self->prompt_generation;
  GST_OBJECT_UNLOCK (self);

  if (model_dir == NULL || model_dir[0] == '\0') {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
                       ("No model directory set (the \"model\" property)"), (NULL));
    goto fail;
  }

  mp.weights_file = weights_file && weights_file[0] ? weights_file : NULL;
  model = clip_model_cache_acquire (model_dir, &mp, &error);
  if (model == NULL) {
    if (g_error_matches (error, CNCLIP_ERROR, CNCLIP_ERROR_IO))
      GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ,
                         ("Could not load the model: %s", error->message),
                         ("model directory %s", model_dir));
    else
      GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("Could not load the model: %s", error->message),
                         ("model directory %s", model_dir));
    goto fail;
  }
  self->model = model;
  if (!cnclip_model_has_vision (model) || !cnclip_model_has_text (model)) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
                       ("The model in %s lacks the image or the text tower", model_dir), (NULL));
    goto fail;
  }

  cp.n_threads = n_threads;
  cp.abort_func = gst_clip_classify_should_abort;
  cp.abort_user_data = self;
  g_atomic_int_set (&self->abort, 0);
  ctx = cnclip_context_new (model, &cp, &error);
  if (ctx != NULL)
    encoder
        = clip_prompt_encoder_new (model, n_threads, gst_clip_classify_prompts_ready, self, &error);
  if (encoder == NULL) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
                       ("Could not create an inference context: %s", error->message), (NULL));
    goto fail;
  }

  /* The first set is encoded right here, so that the first frame is scored
   * and a bad prompts-file fails the state change instead of a later frame. */
  set = clip_prompt_encoder_build (encoder, spec, generation, &error);
  if (set == NULL) {
    if (error->domain == G_FILE_ERROR)
      GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ,
                         ("Could not read the prompts: %s", error->message), (NULL));
    else
      GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
                         ("Could not use the prompts: %s", error->message), (NULL));
    goto fail;
  }
  if (set->n_labels == 0 && !attach_embedding)
    GST_ELEMENT_WARNING (self, RESOURCE, SETTINGS,
                         ("No prompts set: frames pass through unclassified"),
                         ("set prompts or prompts-file"));

  self->image_size = cnclip_model_get_image_size (model);
  self->dim = cnclip_model_get_projection_dim (model);
  self->logit_scale = cnclip_model_get_logit_scale (model);
  self->pixels = g_new (float, (gsize)3 * self->image_size * self->image_size);
  self->embed = g_new (float, self->dim);
  self->applied_n_threads = n_threads;
  self->frame_number = 0;
  self->until_next = 0;
  self->last_sample_time = GST_CLOCK_TIME_NONE;
  self->handled_seq = 0;

  GST_OBJECT_LOCK (self);
  self->ctx = ctx;
  self->prompt_encoder = encoder;
  self->prompt_set = clip_prompt_set_ref (set);
  self->worker
      = mode == GST_CLIP_CLASSIFY_MODE_ASYNC
            ? clip_worker_new ("clipclassify", gst_clip_classify_run_job, clip_job_free, self)
            : NULL;
  self->n_frames = self->n_inferred = self->n_skipped = self->n_dropped = 0;
  self->n_preprocessed = 0;
  self->inference_time_total = self->preprocess_time_total = 0;
  self->result_seq = 0;
  self->started = TRUE;
  GST_OBJECT_UNLOCK (self);

  GST_INFO_OBJECT (self, "model %s loaded (%s), %u prompts, mode %s", model_dir,
                   cnclip_model_get_weights_path (model), set->n_labels,
                   mode == GST_CLIP_CLASSIFY_MODE_ASYNC ? "async" : "sync");
  gst_clip_classify_post_prompts (self, set);

  /* A prompt property set while we were loading missed the encoder; asked
   * for after the announcement above so that announcements stay in order. */
  GST_OBJECT_LOCK (self);
  if (changes != self->prompt_changes && self->prompt_encoder != NULL)
    clip_prompt_encoder_request (self->prompt_encoder, gst_clip_classify_prompt_spec (self),
                                 ++self->prompt_generation);
  GST_OBJECT_UNLOCK (self);
  clip_prompt_set_unref (set);
  clip_prompt_spec_free (spec);
  g_free (model_dir);
  g_free (weights_file);
  return TRUE;

fail:
  clip_prompt_encoder_free (encoder);
  if (ctx)
    cnclip_context_free (ctx);
  clip_model_cache_release (self->model);
  self->model = NULL;
  g_clear_error (&error);
  clip_prompt_spec_free (spec);
  g_free (model_dir);
  g_free (weights_file);
  return FALSE;
}

/* Idempotent: also called after a failed start(). */
static gboolean
gst_clip_classify_stop (GstBaseTransform *trans)
{
  GstClipClassify *self = GST_CLIP_CLASSIFY (trans);
  ClipPromptEncoder *encoder;
  ClipWorker *worker;
  ClipPromptSet *set;
  ClipResult *latest;
  CnclipContext *ctx;

  g_atomic_int_set (&self->abort, 1);

  GST_OBJECT_LOCK (self);
  self->started = FALSE;
  encoder = g_steal_pointer (&self->prompt_encoder);
  worker = g_steal_pointer (&self->worker);
  GST_OBJECT_UNLOCK (self);

  /* Joined unlocked: their threads take the object lock. */
  clip_worker_free (worker);
  clip_prompt_encoder_free (encoder);

  GST_OBJECT_LOCK (self);
  ctx = g_steal_pointer (&self->ctx);
  set = g_steal_pointer (&self->prompt_set);
  latest = g_steal_pointer (&self->latest);
  self->async_failed = FALSE;
  GST_OBJECT_UNLOCK (self);

  if (ctx)
    cnclip_context_free (ctx);
  clip_prompt_set_unref (set);
  clip_result_unref (latest);
  g_clear_pointer (&self->attached, clip_result_unref);
  g_clear_pointer (&self->pixels, g_free);
  g_clear_pointer (&self->embed, g_free);
  clip_model_cache_release (self->model);
  self->model = NULL;
  self->have_info = FALSE;
  return TRUE;
}

static GstStateChangeReturn
gst_clip_classify_change_state (GstElement *element, GstStateChange transition)
{
  GstClipClassify *self = GST_CLIP_CLASSIFY (element);

  /* Pad deactivation waits for the streaming thread: make a sync-mode
   * inference in progress return at its next layer instead of finishing. */
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY)
    g_atomic_int_set (&self->abort, 1);

  return GST_ELEMENT_CLASS (parent_class)->change_state (element, transition);
}

static gboolean
gst_clip_classify_set_caps (GstBaseTransform *trans, GstCaps *incaps, GstCaps *outcaps)
{
  GstClipClassify *self = GST_CLIP_CLASSIFY (trans);
  CnclipPixelFormat format;
  GstVideoInfo info;

  if (!gst_video_info_from_caps (&info, incaps)
      || !clip_frame_pixel_format (GST_VIDEO_INFO_FORMAT (&info), &format)) {
    GST_WARNING_OBJECT (self, "unusable caps %" GST_PTR_FORMAT, incaps);
    return FALSE;
  }
  /* The next sampled frame is mapped with the new layout; nothing else
   * depends on the input size, since frames are resized to the model's. */
  GST_DEBUG_OBJECT (self, "caps %" GST_PTR_FORMAT, incaps);
  self->info = info;
  self->have_info = TRUE;
  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* Inference                                                                */

/* Converts and resizes the sampled @buf straight into the model's input. */
static gboolean
gst_clip_classify_preprocess (GstClipClassify *self, GstBuffer *buf, float *pixels, GError **error)
{
  GstVideoFrame frame;
  CnclipImage image;
  gboolean ok;
  gint64 t0;

  if (!self->have_info) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT, "buffer before caps");
    return FALSE;
  }
  if (!gst_video_frame_map (&frame, &self->info, buf, GST_MAP_READ)) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT,
                 "could not map a %ux%u frame (buffer of %" G_GSIZE_FORMAT " bytes)",
                 GST_VIDEO_INFO_WIDTH (&self->info), GST_VIDEO_INFO_HEIGHT (&self->info),
                 gst_buffer_get_size (buf));
    return FALSE;
  }
  t0 = g_get_monotonic_time ();
  if (clip_frame_to_image (&frame, &image)) {
    ok = cnclip_model_preprocess (self->model, &image, pixels, error);
  } else {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT, "unsupported frame layout");
    ok = FALSE;
  }
  gst_video_frame_unmap (&frame);

  GST_OBJECT_LOCK (self);
  self->n_preprocessed++;
  self->preprocess_time_total += (guint64)(g_get_monotonic_time () - t0) * 1000;
  GST_OBJECT_UNLOCK (self);
  return ok;
}

/* Runs the image tower on @pixels and scores the embedding against the
 * current prompt set. Inference thread (streaming thread in sync mode, worker
 * in async mode); no lock is held while the model runs. */
static ClipResult *
gst_clip_classify_infer (GstClipClassify *self, const float *pixels, const ClipSource *source,
                         GError **error)
{
  ClipScoreParams params;
  ClipPromptSet *set;
  ClipResult *result;
  guint64 elapsed;
  gint n_threads;
  gint64 t0;

  GST_OBJECT_LOCK (self);
  n_threads = self->n_threads;
  GST_OBJECT_UNLOCK (self);
  if (n_threads != self->applied_n_threads) {
    cnclip_context_set_n_threads (self->ctx, n_threads);
    self->applied_n_threads = n_threads;
  }

  t0 = g_get_monotonic_time ();
  if (!cnclip_encode_pixels (self->ctx, pixels, 1, self->embed, error))
    return NULL;
  elapsed = (guint64)(g_get_monotonic_time () - t0) * 1000;

  /* The parameters and prompts in force now, when the result is made. */
  GST_OBJECT_LOCK (self);
  params.mode = (ClipScoreMode)self->score_mode;
  params.threshold = self->threshold;
  params.top_k = self->top_k;
  params.keep_embedding = self->attach_embedding;
  set = clip_prompt_set_ref (self->prompt_set);
  self->n_inferred++;
  self->inference_time_total += elapsed;
  GST_OBJECT_UNLOCK (self);

  result
      = clip_result_new (self->embed, self->dim, self->logit_scale, set, &params, source, elapsed);
  clip_prompt_set_unref (set);
  GST_LOG_OBJECT (self, "frame %" G_GUINT64_FORMAT " inferred in %" GST_TIME_FORMAT ", top %s",
                  source->frame_number, GST_TIME_ARGS (elapsed),
                  result->n_results ? result->results[0].label : "-");
  return result;
}

/* Worker thread (async mode). */
static void
gst_clip_classify_run_job (gpointer data, gpointer user_data)
{
  GstClipClassify *self = user_data;
  ClipJob *job = data;
  ClipResult *result, *old = NULL;
  GError *error = NULL;

  result = gst_clip_classify_infer (self, job->pixels, &job->source, &error);

  GST_OBJECT_LOCK (self);
  if (result != NULL) {
    old = self->latest;
    self->latest = result;
    self->result_seq++;
  } else if (!g_error_matches (error, CNCLIP_ERROR, CNCLIP_ERROR_ABORTED)) {
    /* The streaming thread returns GST_FLOW_ERROR at its next buffer. */
    self->async_failed = TRUE;
  } else {
    g_clear_error (&error);
  }
  GST_OBJECT_UNLOCK (self);

  /* Posted at once: a live source may not send another buffer soon. */
  if (error != NULL)
    GST_ELEMENT_ERROR (self, STREAM, FAILED,
                       ("Inference failed on frame %" G_GUINT64_FORMAT ": %s",
                        job->source.frame_number, error->message),
                       (NULL));
  clip_result_unref (old);
  g_clear_error (&error);
}

/* The one place every result passes through, once, in the streaming thread,
 * with the timing of the buffer that first carries it (or of its own frame at
 * EOS). Records (json-location) and alerts hook in here. */
static void
gst_clip_classify_handle_result (GstClipClassify *self, ClipResult *result,
                                 const ClipTiming *timing)
{
  gboolean post;
  gchar *source_id;

  g_clear_pointer (&self->attached, clip_result_unref);
  self->attached = clip_result_ref (result);

  GST_OBJECT_LOCK (self);
  post = self->post_messages;
  source_id = g_strdup (self->source_id);
  GST_OBJECT_UNLOCK (self);

  if (post) {
    GstStructure *s = clip_result_to_structure (result, timing, source_id);
    gst_element_post_message (GST_ELEMENT (self), gst_message_new_element (GST_OBJECT (self), s));
  }
  g_free (source_id);
}

/* Streaming thread, at EOS after the last result was handled. */
static void
gst_clip_classify_on_eos (GstClipClassify *self)
{
  GST_DEBUG_OBJECT (self, "EOS");
}

/* Streaming thread, at FLUSH_STOP: results before a seek no longer apply. */
static void
gst_clip_classify_on_flush (GstClipClassify *self)
{
  GST_OBJECT_LOCK (self);
  g_clear_pointer (&self->latest, clip_result_unref);
  self->async_failed = FALSE;
  self->handled_seq = self->result_seq;
  GST_OBJECT_UNLOCK (self);
  g_clear_pointer (&self->attached, clip_result_unref);
  self->until_next = 0;
  self->last_sample_time = GST_CLOCK_TIME_NONE;
}

/* Streaming thread (async mode): handles a result the worker finished since
 * the last buffer. Returns FALSE when the worker failed (it posted the error). */
static gboolean
gst_clip_classify_collect (GstClipClassify *self, GstClockTime pts, GstClockTime duration,
                           gboolean own_timing)
{
  ClipResult *result = NULL;
  gboolean failed;
  ClipTiming timing;

  GST_OBJECT_LOCK (self);
  failed = self->async_failed;
  if (self->result_seq != self->handled_seq && self->latest != NULL) {
    result = clip_result_ref (self->latest);
    self->handled_seq = self->result_seq;
  }
  GST_OBJECT_UNLOCK (self);

  if (failed) {
    clip_result_unref (result);
    return FALSE;
  }
  if (result != NULL) {
    if (own_timing) {
      pts = result->source.pts;
      duration = result->source.duration;
    }
    clip_timing_init (&timing, &GST_BASE_TRANSFORM (self)->segment, pts, duration);
    gst_clip_classify_handle_result (self, result, &timing);
    clip_result_unref (result);
  }
  return TRUE;
}

static gboolean
gst_clip_classify_sink_event (GstBaseTransform *trans, GstEvent *event)
{
  GstClipClassify *self = GST_CLIP_CLASSIFY (trans);
  ClipWorker *worker;

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_FLUSH_START:
      /* Not serialized: may arrive while the streaming thread or the worker
       * is inside the model. */
      g_atomic_int_set (&self->abort, 1);
      break;
    case GST_EVENT_FLUSH_STOP:
      GST_OBJECT_LOCK (self);
      worker = self->worker;
      GST_OBJECT_UNLOCK (self);
      if (worker)
        clip_worker_wait_idle (worker);
      g_atomic_int_set (&self->abort, 0);
      gst_clip_classify_on_flush (self);
      break;
    case GST_EVENT_EOS:
      GST_OBJECT_LOCK (self);
      worker = self->worker;
      GST_OBJECT_UNLOCK (self);
      if (worker) {
        /* The frame in flight belongs to the stream: finish it, post its
         * result with its own timing, then let EOS through. */
        clip_worker_wait_idle (worker);
        gst_clip_classify_collect (self, GST_CLOCK_TIME_NONE, GST_CLOCK_TIME_NONE, TRUE);
      }
      gst_clip_classify_on_eos (self);
      break;
    default:
      break;
  }
  return GST_BASE_TRANSFORM_CLASS (parent_class)->sink_event (trans, event);
}

/* Streaming thread: is @buf sampled? Frames on the inference-interval grid
 * (every Nth, from the first) that are also at least sample-interval of
 * stream time after the last inferred frame. */
static gboolean
gst_clip_classify_is_sampled (GstClipClassify *self, GstBuffer *buf, guint interval,
                              guint64 sample_interval, GstClockTime *stream_time)
{
  const GstSegment *segment = &GST_BASE_TRANSFORM (self)->segment;
  GstClockTime pts = GST_BUFFER_PTS (buf);
  gboolean on_grid;

  if (self->until_next >= interval)
    self->until_next = interval - 1;
  on_grid = self->until_next == 0;
  self->until_next = on_grid ? interval - 1 : self->until_next - 1;

  *stream_time = GST_CLOCK_TIME_NONE;
  if (GST_CLOCK_TIME_IS_VALID (pts) && segment->format == GST_FORMAT_TIME)
    *stream_time = gst_segment_to_stream_time (segment, GST_FORMAT_TIME, pts);
  if (!on_grid)
    return FALSE;
  if (sample_interval == 0 || !GST_CLOCK_TIME_IS_VALID (*stream_time)
      || !GST_CLOCK_TIME_IS_VALID (self->last_sample_time))
    return TRUE;
  /* A backwards jump (non-flushing seek, loop) starts over. */
  return *stream_time < self->last_sample_time
         || *stream_time - self->last_sample_time >= sample_interval;
}

static GstFlowReturn
gst_clip_classify_transform_ip (GstBaseTransform *trans, GstBuffer *buf)
{
  GstClipClassify *self = GST_CLIP_CLASSIFY (trans);
  GstClockTime pts = GST_BUFFER_PTS (buf), duration = GST_BUFFER_DURATION (buf);
  GstClockTime stream_time;
  guint64 frame_number = self->frame_number++;
  const ClipSource source = {
    .pts = pts,
    .duration = duration,
    .frame_number = frame_number,
    .width = GST_VIDEO_INFO_WIDTH (&self->info),
    .height = GST_VIDEO_INFO_HEIGHT (&self->info),
  };
  guint interval;
  guint64 sample_interval;
  gboolean have_prompts, sampled;
  ClipWorker *worker;
  GError *error = NULL;

  GST_OBJECT_LOCK (self);
  interval = self->inference_interval;
  sample_interval = self->sample_interval;
  have_prompts = (self->prompt_set && self->prompt_set->n_labels > 0) || self->attach_embedding;
  worker = self->worker;
  self->n_frames++;
  GST_OBJECT_UNLOCK (self);

  if (worker && !gst_clip_classify_collect (self, pts, duration, FALSE))
    return GST_FLOW_ERROR;

  sampled = gst_clip_classify_is_sampled (self, buf, interval, sample_interval, &stream_time)
            && have_prompts;

  if (!sampled) {
    GST_OBJECT_LOCK (self);
    self->n_skipped++;
    GST_OBJECT_UNLOCK (self);
  } else if (worker) {
    if (clip_worker_is_busy (worker)) {
      GST_OBJECT_LOCK (self);
      self->n_dropped++;
      GST_OBJECT_UNLOCK (self);
      GST_LOG_OBJECT (self, "frame %" G_GUINT64_FORMAT " dropped: worker busy", frame_number);
    } else {
      ClipJob *job = g_new0 (ClipJob, 1);

      job->pixels = g_new (float, (gsize)3 * self->image_size * self->image_size);
      job->source = source;
      if (!gst_clip_classify_preprocess (self, buf, job->pixels, &error)) {
        clip_job_free (job);
        goto preprocess_failed;
      }
      /* Only this thread submits, so an idle worker takes the job. */
      clip_worker_submit (worker, job);
      self->last_sample_time = stream_time;
    }
  } else {
    ClipResult *result;
    ClipTiming timing;

    if (!gst_clip_classify_preprocess (self, buf, self->pixels, &error))
      goto preprocess_failed;
    result = gst_clip_classify_infer (self, self->pixels, &source, &error);
    if (result == NULL)
      goto infer_failed;
    self->last_sample_time = stream_time;
    clip_timing_init (&timing, &trans->segment, pts, duration);
    gst_clip_classify_handle_result (self, result, &timing);
    clip_result_unref (result);
  }

  if (self->attached != NULL)
    clip_result_attach (self->attached, buf);
  return GST_FLOW_OK;

preprocess_failed:
  GST_ELEMENT_ERROR (
      self, STREAM, FAILED,
      ("Could not convert frame %" G_GUINT64_FORMAT ": %s", frame_number, error->message), (NULL));
  g_error_free (error);
  return GST_FLOW_ERROR;

infer_failed:
  if (g_error_matches (error, CNCLIP_ERROR, CNCLIP_ERROR_ABORTED)) {
    GST_DEBUG_OBJECT (self, "inference aborted (flush or stop)");
    g_error_free (error);
    return GST_FLOW_FLUSHING;
  }
  GST_ELEMENT_ERROR (
      self, STREAM, FAILED,
      ("Inference failed on frame %" G_GUINT64_FORMAT ": %s", frame_number, error->message),
      (NULL));
  g_error_free (error);
  return GST_FLOW_ERROR;
}
