/* clipresult.h: one inference's outcome, scored against a prompt set.
 *
 * A ClipResult is immutable and reference counted: the inference thread makes
 * it, the streaming thread attaches it to every following buffer as a
 * GstClipClassifyMeta and turns it into the `clipclassify` message (records and
 * alerts hook in at the same place), possibly after the next result exists.
 * It keeps what those consumers need: the top-k view for meta and messages,
 * every prompt's score in prompt order, the raw embedding, the frame's size
 * and the wall-clock time of the inference.
 */
#ifndef CLIP_RESULT_H
#define CLIP_RESULT_H

#include <gst/gst.h>
#include "clipprompts.h"
#include "gstclipclassifymeta.h"

G_BEGIN_DECLS

typedef enum
{
  CLIP_SCORE_SOFTMAX, /* softmax over labels + negatives of scale * cosine */
  CLIP_SCORE_COSINE,  /* the cosine itself */
} ClipScoreMode;

typedef struct
{
  ClipScoreMode mode;
  gdouble threshold; /* matched = score >= threshold */
  guint top_k;       /* 0 = every label */
  gboolean keep_embedding;
} ClipScoreParams;

/* The frame an inference was computed from. */
typedef struct
{
  GstClockTime pts;
  GstClockTime duration;
  guint64 frame_number; /* since the element started */
  int width;            /* as negotiated, before resizing */
  int height;
} ClipSource;

typedef struct
{
  ClipSource source;
  ClipPromptSet *prompts; /* the set scored against (a reference) */
  ClipScoreParams params; /* the parameters in force */

  /* Top-k view, best first, labels only (never negatives). */
  guint n_results;
  GstClipClassifyResult *results; /* labels point into prompts->labels */

  /* Every label in prompt order (prompts->n_labels entries). */
  float *scores;
  float *cosines;

  guint dim;
  float *embedding;      /* as the image tower gave it (not normalised) */
  float *embedding_norm; /* L2-normalised; NULL unless params.keep_embedding */

  guint64 inference_time; /* ns in the image tower */
  gint64 wallclock;       /* g_get_real_time() when the inference finished (us) */
} ClipResult;

/* Scores @image_embed (@dim floats, not necessarily normalised) against
 * @prompts (which may have no prompts: no results then). Thread-safe. */
ClipResult *clip_result_new (const float *image_embed, int dim, float logit_scale,
                             ClipPromptSet *prompts, const ClipScoreParams *params,
                             const ClipSource *source, guint64 inference_time);
ClipResult *clip_result_ref (ClipResult *result);
void clip_result_unref (ClipResult *result);

/* Adds the result to the writable @buffer as a GstClipClassifyMeta (replacing
 * one that is already there, e.g. from an upstream clipclassify). */
GstClipClassifyMeta *clip_result_attach (const ClipResult *result, GstBuffer *buffer);

/* The timing fields of a message, as the `level` element computes them. */
typedef struct
{
  GstClockTime timestamp;
  GstClockTime stream_time;
  GstClockTime running_time;
  GstClockTime duration;
} ClipTiming;

void clip_timing_init (ClipTiming *timing, const GstSegment *segment, GstClockTime pts,
                       GstClockTime duration);

/* The `clipclassify` element message structure (transfer full). */
GstStructure *clip_result_to_structure (const ClipResult *result, const ClipTiming *timing,
                                        const gchar *source_id);

G_END_DECLS

#endif /* CLIP_RESULT_H */
