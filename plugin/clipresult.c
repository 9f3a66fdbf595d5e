/* clipresult.c: see clipresult.h. */
#include "clipresult.h"

#include <math.h>

typedef struct
{
  const float *scores;
} SortData;

/* Best first; NaN last; equal scores keep prompt order. */
static gint
compare_scores (gconstpointer a, gconstpointer b, gpointer user_data)
{
  const SortData *d = user_data;
  guint ia = *(const guint *)a, ib = *(const guint *)b;
  float sa = d->scores[ia], sb = d->scores[ib];

  if (isnan (sa) != isnan (sb))
    return isnan (sa) ? 1 : -1;
  if (sa > sb)
    return -1;
  if (sa < sb)
    return 1;
  return ia < ib ? -1 : (ia > ib);
}

static void
result_clear (ClipResult *r)
{
  clip_prompt_set_unref (r->prompts);
  g_free (r->results);
  g_free (r->scores);
  g_free (r->cosines);
  g_free (r->embedding);
  g_free (r->embedding_norm);
}

ClipResult *
clip_result_new (const float *image_embed, int dim, float logit_scale, ClipPromptSet *prompts,
                 const ClipScoreParams *params, const ClipSource *source, guint64 inference_time)
{
  ClipResult *r;
  guint n_total, n_labels;
  float *image;

  g_return_val_if_fail (image_embed != NULL && dim > 0, NULL);
  g_return_val_if_fail (prompts != NULL && params != NULL && source != NULL, NULL);

  r = g_atomic_rc_box_new0 (ClipResult);
  r->source = *source;
  r->prompts = clip_prompt_set_ref (prompts);
  r->params = *params;
  r->inference_time = inference_time;
  r->wallclock = g_get_real_time ();
  r->dim = dim;
  r->embedding = g_memdup2 (image_embed, sizeof (float) * dim);

  image = g_memdup2 (image_embed, sizeof (float) * dim);
  cnclip_l2_normalize (image, 1, dim);

  n_labels = prompts->n_labels;
  n_total = n_labels + prompts->n_negatives;
  if (n_labels > 0 && prompts->embeds != NULL && prompts->dim == dim) {
    float *cosines = g_new (float, n_total);
    float *probs = g_new (float, n_total);
    const float *scores;
    guint *order = g_new (guint, n_labels);
    SortData sd;

    cnclip_score (image, 1, prompts->embeds, n_total, dim, logit_scale, cosines, NULL, probs);
    scores = params->mode == CLIP_SCORE_COSINE ? cosines : probs;
    for (guint i = 0; i < n_labels; i++)
      order[i] = i;
    sd.scores = scores;
    g_qsort_with_data (order, n_labels, sizeof (guint), compare_scores, &sd);

    r->n_results = params->top_k ? MIN (params->top_k, n_labels) : n_labels;
    r->results = g_new0 (GstClipClassifyResult, r->n_results);
    for (guint i = 0; i < r->n_results; i++) {
      guint k = order[i];
      r->results[i].label = prompts->labels[k];
      r->results[i].label_index = k;
      r->results[i].score = scores[k];
      r->results[i].cosine = cosines[k];
      r->results[i].matched = scores[k] >= params->threshold;
    }
    /* Negatives are never reported: keep the labels' part only. */
    r->scores = g_memdup2 (scores, sizeof (float) * n_labels);
    r->cosines = g_memdup2 (cosines, sizeof (float) * n_labels);
    g_free (order);
    g_free (cosines);
    g_free (probs);
  }

  if (params->keep_embedding)
    r->embedding_norm = image;
  else
    g_free (image);
  return r;
}

ClipResult *
clip_result_ref (ClipResult *result)
{
  return g_atomic_rc_box_acquire (result);
}

void
clip_result_unref (ClipResult *result)
{
  if (result != NULL)
    g_atomic_rc_box_release_full (result, (GDestroyNotify)result_clear);
}

GstClipClassifyMeta *
clip_result_attach (const ClipResult *r, GstBuffer *buffer)
{
  GstClipClassifyMeta *old;

  while ((old = gst_buffer_get_clip_classify_meta (buffer)) != NULL)
    gst_buffer_remove_meta (buffer, (GstMeta *)old);
  return gst_buffer_add_clip_classify_meta (buffer, r->source.pts, r->source.frame_number,
                                            r->prompts->generation, r->results, r->n_results,
                                            r->embedding_norm, r->embedding_norm ? r->dim : 0);
}

void
clip_timing_init (ClipTiming *t, const GstSegment *segment, GstClockTime pts, GstClockTime duration)
{
  t->timestamp = pts;
  t->duration = duration;
  t->stream_time = t->running_time = GST_CLOCK_TIME_NONE;
  if (GST_CLOCK_TIME_IS_VALID (pts) && segment->format == GST_FORMAT_TIME) {
    t->stream_time = gst_segment_to_stream_time (segment, GST_FORMAT_TIME, pts);
    t->running_time = gst_segment_to_running_time (segment, GST_FORMAT_TIME, pts);
  }
}

static void
array_append_string (GValue *array, const gchar *s)
{
  GValue v = G_VALUE_INIT;

  g_value_init (&v, G_TYPE_STRING);
  g_value_set_string (&v, s);
  gst_value_array_append_and_take_value (array, &v);
}

static void
array_append_double (GValue *array, gdouble d)
{
  GValue v = G_VALUE_INIT;

  g_value_init (&v, G_TYPE_DOUBLE);
  g_value_set_double (&v, d);
  gst_value_array_append_and_take_value (array, &v);
}

GstStructure *
clip_result_to_structure (const ClipResult *r, const ClipTiming *t, const gchar *source_id)
{
  GValue labels = G_VALUE_INIT, scores = G_VALUE_INIT, cosines = G_VALUE_INIT;
  GValue matched = G_VALUE_INIT;
  GstStructure *s;

  gst_value_array_init (&labels, r->n_results);
  gst_value_array_init (&scores, r->n_results);
  gst_value_array_init (&cosines, r->n_results);
  gst_value_array_init (&matched, r->n_results);
  for (guint i = 0; i < r->n_results; i++) {
    array_append_string (&labels, r->results[i].label);
    array_append_double (&scores, r->results[i].score);
    array_append_double (&cosines, r->results[i].cosine);
    if (r->results[i].matched)
      array_append_string (&matched, r->results[i].label);
  }

  s = gst_structure_new ("clipclassify", "timestamp", G_TYPE_UINT64, t->timestamp, "stream-time",
                         G_TYPE_UINT64, t->stream_time, "running-time", G_TYPE_UINT64,
                         t->running_time, "duration", G_TYPE_UINT64, t->duration, "frame-number",
                         G_TYPE_UINT64, r->source.frame_number, "source-pts", G_TYPE_UINT64,
                         r->source.pts, NULL);
  gst_structure_take_value (s, "labels", &labels);
  gst_structure_take_value (s, "scores", &scores);
  gst_structure_take_value (s, "cosines", &cosines);
  gst_structure_set (s, "top-label", G_TYPE_STRING, r->n_results ? r->results[0].label : "",
                     "top-score", G_TYPE_DOUBLE, r->n_results ? (gdouble)r->results[0].score : 0.0,
                     NULL);
  gst_structure_take_value (s, "matched", &matched);
  gst_structure_set (s, "inference-time", G_TYPE_UINT64, r->inference_time, "source-id",
                     G_TYPE_STRING, source_id ? source_id : "", NULL);
  return s;
}
