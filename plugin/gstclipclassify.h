/* gstclipclassify.h: the clipclassify element (see gstclipclassify.c). */
#ifndef GST_CLIP_CLASSIFY_H
#define GST_CLIP_CLASSIFY_H

#include <gst/gst.h>
#include <gst/base/gstbasetransform.h>
#include <gst/video/video.h>

#include "cnclip.h"
#include "clipprompts.h"
#include "clipresult.h"
#include "clipworker.h"

G_BEGIN_DECLS

#define GST_TYPE_CLIP_CLASSIFY (gst_clip_classify_get_type ())
G_DECLARE_FINAL_TYPE (GstClipClassify, gst_clip_classify, GST, CLIP_CLASSIFY, GstBaseTransform)

typedef enum
{
  GST_CLIP_CLASSIFY_SCORE_SOFTMAX = CLIP_SCORE_SOFTMAX,
  GST_CLIP_CLASSIFY_SCORE_COSINE = CLIP_SCORE_COSINE,
} GstClipClassifyScoreMode;

typedef enum
{
  GST_CLIP_CLASSIFY_MODE_SYNC,
  GST_CLIP_CLASSIFY_MODE_ASYNC,
} GstClipClassifyMode;

/* Same values as CnclipBackendKind / CnclipPrecision. */
typedef enum
{
  GST_CLIP_CLASSIFY_BACKEND_AUTO = CNCLIP_BACKEND_AUTO,
  GST_CLIP_CLASSIFY_BACKEND_ONEDNN = CNCLIP_BACKEND_ONEDNN,
  GST_CLIP_CLASSIFY_BACKEND_OPENBLAS = CNCLIP_BACKEND_OPENBLAS,
} GstClipClassifyBackend;

typedef enum
{
  GST_CLIP_CLASSIFY_PRECISION_FP32 = CNCLIP_PRECISION_FP32,
  GST_CLIP_CLASSIFY_PRECISION_BF16 = CNCLIP_PRECISION_BF16,
  GST_CLIP_CLASSIFY_PRECISION_INT8 = CNCLIP_PRECISION_INT8,
} GstClipClassifyPrecision;

struct _GstClipClassify
{
  GstBaseTransform parent;

  /* Properties, under the object lock. */
  gchar *model_dir;
  gchar *weights_file;
  GstClipClassifyBackend backend;
  GstClipClassifyPrecision precision;
  gchar **prompts;
  gchar *prompts_file;
  gchar *prompt_template;
  gchar **negative_prompts;
  GstClipClassifyScoreMode score_mode;
  gdouble threshold;
  guint top_k;
  guint inference_interval;
  guint64 sample_interval;
  GstClipClassifyMode mode;
  gboolean post_messages;
  gboolean attach_embedding;
  gint n_threads;
  gchar *source_id;

  /* Statistics since start(), under the object lock. */
  guint64 n_frames;
  guint64 n_inferred;
  guint64 n_skipped;
  guint64 n_dropped;
  guint64 n_preprocessed;
  guint64 inference_time_total;
  guint64 preprocess_time_total;

  /* Between start() and stop(); pointers change under the object lock. */
  gboolean started;
  CnclipModel *model;
  CnclipContext *ctx; /* image context: streaming thread (sync) or worker (async) */
  ClipPromptEncoder *prompt_encoder;
  ClipPromptSet *prompt_set; /* current set, swapped by pointer */
  guint prompt_generation;   /* last generation requested */
  guint prompt_changes;      /* bumped by every prompt property change */
  ClipWorker *worker;        /* async mode only */
  gint abort;                /* atomic: abort the inference in progress */
  int image_size;
  int dim;
  float logit_scale;

  /* Async results, under the object lock. */
  ClipResult *latest;
  guint64 result_seq;
  gboolean async_failed; /* the worker posted an error */

  /* Inference thread only (streaming thread in sync mode, worker in async). */
  float *pixels; /* sync mode's preprocessing output */
  float *embed;
  gint applied_n_threads;

  /* Streaming thread only. */
  GstVideoInfo info;
  gboolean have_info;
  guint64 frame_number;          /* frames seen since start() */
  guint until_next;              /* frames to the next one on the inference-interval grid */
  GstClockTime last_sample_time; /* stream time of the last inferred frame */
  guint64 handled_seq;
  ClipResult *attached; /* what buffers carry: the newest result handled */
};

GST_ELEMENT_REGISTER_DECLARE (clipclassify);

G_END_DECLS

#endif /* GST_CLIP_CLASSIFY_H */
