/* gstclipclassifymeta.c: see gstclipclassifymeta.h. */
#include "gstclipclassifymeta.h"

#include <string.h>

static void
clear_results (GstClipClassifyMeta *meta)
{
  for (guint i = 0; i < meta->n_results; i++)
    g_free (meta->results[i].label);
  g_clear_pointer (&meta->results, g_free);
  g_clear_pointer (&meta->embedding, g_free);
  meta->n_results = 0;
  meta->embedding_dim = 0;
  meta->top_index = -1;
}

static void
set_contents (GstClipClassifyMeta *meta, GstClockTime source_pts, guint64 source_frame,
              guint prompts_generation, const GstClipClassifyResult *results, guint n_results,
              const gfloat *embedding, guint embedding_dim)
{
  meta->source_pts = source_pts;
  meta->source_frame = source_frame;
  meta->prompts_generation = prompts_generation;
  meta->n_results = n_results;
  meta->results = n_results ? g_new0 (GstClipClassifyResult, n_results) : NULL;
  for (guint i = 0; i < n_results; i++) {
    meta->results[i] = results[i];
    meta->results[i].label = g_strdup (results[i].label ? results[i].label : "");
  }
  meta->top_index = n_results ? (gint)results[0].label_index : -1;
  if (embedding != NULL && embedding_dim > 0) {
    meta->embedding = g_memdup2 (embedding, sizeof (gfloat) * embedding_dim);
    meta->embedding_dim = embedding_dim;
  }
}

static gboolean
meta_init (GstMeta *meta, gpointer params, GstBuffer *buffer)
{
  GstClipClassifyMeta *m = (GstClipClassifyMeta *)meta;

  m->source_pts = GST_CLOCK_TIME_NONE;
  m->source_frame = 0;
  m->prompts_generation = 0;
  m->n_results = 0;
  m->results = NULL;
  m->top_index = -1;
  m->embedding_dim = 0;
  m->embedding = NULL;
  return TRUE;
}

static void
meta_free (GstMeta *meta, GstBuffer *buffer)
{
  clear_results ((GstClipClassifyMeta *)meta);
}

/* The results describe what the picture shows, not where: every transform
 * (copy, scale, convert) keeps them unchanged. */
static gboolean
meta_transform (GstBuffer *dest, GstMeta *meta, GstBuffer *buffer, GQuark type, gpointer data)
{
  GstClipClassifyMeta *src = (GstClipClassifyMeta *)meta;
  GstClipClassifyMeta *dst;

  /* A buffer may carry one result set: a later copy replaces an earlier one. */
  dst = gst_buffer_get_clip_classify_meta (dest);
  if (dst != NULL)
    clear_results (dst);
  else
    dst = (GstClipClassifyMeta *)gst_buffer_add_meta (dest, GST_CLIP_CLASSIFY_META_INFO, NULL);
  if (dst == NULL)
    return FALSE;
  set_contents (dst, src->source_pts, src->source_frame, src->prompts_generation, src->results,
                src->n_results, src->embedding, src->embedding_dim);
  return TRUE;
}

GType
gst_clip_classify_meta_api_get_type (void)
{
  static GType type = 0;
  /* No tags: see the header. */
  static const gchar *tags[] = { NULL };

  if (g_once_init_enter (&type)) {
    GType t = gst_meta_api_type_register ("GstClipClassifyMetaAPI", tags);
    g_once_init_leave (&type, t);
  }
  return type;
}

const GstMetaInfo *
gst_clip_classify_meta_get_info (void)
{
  static const GstMetaInfo *info = NULL;

  if (g_once_init_enter ((gpointer *)&info)) {
    const GstMetaInfo *i
        = gst_meta_register (GST_CLIP_CLASSIFY_META_API_TYPE, "GstClipClassifyMeta",
                             sizeof (GstClipClassifyMeta), meta_init, meta_free, meta_transform);
    g_once_init_leave ((gpointer *)&info, (gpointer)i);
  }
  return info;
}

GstClipClassifyMeta *
gst_buffer_add_clip_classify_meta (GstBuffer *buffer, GstClockTime source_pts, guint64 source_frame,
                                   guint prompts_generation, const GstClipClassifyResult *results,
                                   guint n_results, const gfloat *embedding, guint embedding_dim)
{
  GstClipClassifyMeta *meta;

  g_return_val_if_fail (GST_IS_BUFFER (buffer), NULL);
  g_return_val_if_fail (gst_buffer_is_writable (buffer), NULL);
  g_return_val_if_fail (results != NULL || n_results == 0, NULL);

  meta = (GstClipClassifyMeta *)gst_buffer_add_meta (buffer, GST_CLIP_CLASSIFY_META_INFO, NULL);
  if (meta == NULL)
    return NULL;
  set_contents (meta, source_pts, source_frame, prompts_generation, results, n_results, embedding,
                embedding_dim);
  return meta;
}

GstClockTime
gst_clip_classify_meta_get_source_pts (const GstClipClassifyMeta *meta)
{
  g_return_val_if_fail (meta != NULL, GST_CLOCK_TIME_NONE);
  return meta->source_pts;
}

guint
gst_clip_classify_meta_get_n_results (const GstClipClassifyMeta *meta)
{
  g_return_val_if_fail (meta != NULL, 0);
  return meta->n_results;
}

#define RESULT_OR(meta, index, field, fallback)                                                    \
  G_STMT_START                                                                                     \
  {                                                                                                \
    g_return_val_if_fail ((meta) != NULL, (fallback));                                             \
    g_return_val_if_fail ((index) < (meta)->n_results, (fallback));                                \
    return (meta)->results[(index)].field;                                                         \
  }                                                                                                \
  G_STMT_END

const gchar *
gst_clip_classify_meta_get_label (const GstClipClassifyMeta *meta, guint index)
{
  RESULT_OR (meta, index, label, NULL);
}

guint
gst_clip_classify_meta_get_label_index (const GstClipClassifyMeta *meta, guint index)
{
  RESULT_OR (meta, index, label_index, 0);
}

gfloat
gst_clip_classify_meta_get_score (const GstClipClassifyMeta *meta, guint index)
{
  RESULT_OR (meta, index, score, 0.0f);
}

gfloat
gst_clip_classify_meta_get_cosine (const GstClipClassifyMeta *meta, guint index)
{
  RESULT_OR (meta, index, cosine, 0.0f);
}

gboolean
gst_clip_classify_meta_get_matched (const GstClipClassifyMeta *meta, guint index)
{
  RESULT_OR (meta, index, matched, FALSE);
}

const gchar *
gst_clip_classify_meta_get_top_label (const GstClipClassifyMeta *meta)
{
  g_return_val_if_fail (meta != NULL, NULL);
  return meta->n_results ? meta->results[0].label : NULL;
}

const gfloat *
gst_clip_classify_meta_get_embedding (const GstClipClassifyMeta *meta, guint *dim)
{
  g_return_val_if_fail (meta != NULL, NULL);
  if (dim)
    *dim = meta->embedding_dim;
  return meta->embedding;
}

static void
append_value (GValue *array, GType type, gconstpointer v)
{
  GValue item = G_VALUE_INIT;

  g_value_init (&item, type);
  switch (type) {
    case G_TYPE_STRING:
      g_value_set_string (&item, v);
      break;
    case G_TYPE_UINT:
      g_value_set_uint (&item, *(const guint *)v);
      break;
    case G_TYPE_DOUBLE:
      g_value_set_double (&item, *(const gdouble *)v);
      break;
    case G_TYPE_FLOAT:
      g_value_set_float (&item, *(const gfloat *)v);
      break;
    default:
      g_assert_not_reached ();
  }
  gst_value_array_append_and_take_value (array, &item);
}

GstStructure *
gst_clip_classify_meta_to_structure (const GstClipClassifyMeta *meta)
{
  GValue labels = G_VALUE_INIT, indices = G_VALUE_INIT, scores = G_VALUE_INIT;
  GValue cosines = G_VALUE_INIT, matched = G_VALUE_INIT;
  GstStructure *s;

  g_return_val_if_fail (meta != NULL, NULL);

  gst_value_array_init (&labels, meta->n_results);
  gst_value_array_init (&indices, meta->n_results);
  gst_value_array_init (&scores, meta->n_results);
  gst_value_array_init (&cosines, meta->n_results);
  gst_value_array_init (&matched, meta->n_results);
  for (guint i = 0; i < meta->n_results; i++) {
    const GstClipClassifyResult *r = &meta->results[i];
    gdouble score = r->score, cosine = r->cosine;

    append_value (&labels, G_TYPE_STRING, r->label);
    append_value (&indices, G_TYPE_UINT, &r->label_index);
    append_value (&scores, G_TYPE_DOUBLE, &score);
    append_value (&cosines, G_TYPE_DOUBLE, &cosine);
    if (r->matched)
      append_value (&matched, G_TYPE_STRING, r->label);
  }

  s = gst_structure_new ("clipclassify-meta", "source-pts", G_TYPE_UINT64, meta->source_pts,
                         "source-frame", G_TYPE_UINT64, meta->source_frame, "prompts-generation",
                         G_TYPE_UINT, meta->prompts_generation, "top-index", G_TYPE_INT,
                         meta->top_index, "top-label", G_TYPE_STRING,
                         meta->n_results ? meta->results[0].label : "", NULL);
  gst_structure_take_value (s, "labels", &labels);
  gst_structure_take_value (s, "label-indices", &indices);
  gst_structure_take_value (s, "scores", &scores);
  gst_structure_take_value (s, "cosines", &cosines);
  gst_structure_take_value (s, "matched", &matched);

  if (meta->embedding != NULL) {
    GValue emb = G_VALUE_INIT;

    gst_value_array_init (&emb, meta->embedding_dim);
    for (guint i = 0; i < meta->embedding_dim; i++)
      append_value (&emb, G_TYPE_FLOAT, &meta->embedding[i]);
    gst_structure_take_value (s, "embedding", &emb);
  }
  return s;
}
