/* gstclipclassifymeta.h: the classification results clipclassify attaches to video buffers.
 *
 * Library: gstclipclassifymeta-1.0 (pkg-config gstclipclassifymeta-1.0), header
 * <gst/clipclassify/gstclipclassifymeta.h>. The clipclassify element links the same
 * library, so an application that links it sees the very meta type the element adds.
 *
 * Reading the meta in a pad probe or an appsink callback:
 *
 *   #include <gst/clipclassify/gstclipclassifymeta.h>
 *
 *   static GstPadProbeReturn
 *   on_buffer (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
 *   {
 *     GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);
 *     GstClipClassifyMeta *meta = gst_buffer_get_clip_classify_meta (buf);
 *     if (meta == NULL)
 *       return GST_PAD_PROBE_OK;       // nothing inferred yet
 *     // results are sorted best first; source_pts names the inferred frame,
 *     // which may be an earlier frame (inference-interval, async mode)
 *     for (guint i = 0; i < gst_clip_classify_meta_get_n_results (meta); i++)
 *       g_print ("%s %.3f%s\n", gst_clip_classify_meta_get_label (meta, i),
 *           gst_clip_classify_meta_get_score (meta, i),
 *           gst_clip_classify_meta_get_matched (meta, i) ? " (matched)" : "");
 *     return GST_PAD_PROBE_OK;
 *   }
 *
 * From languages without C struct access (Python through GObject introspection of
 * GStreamer core), call gst_clip_classify_meta_to_structure() through a tiny C
 * helper, or read the `clipclassify` bus message, which carries the same values.
 *
 * The meta API has no tags: it describes the picture's content, not its geometry
 * or memory, so it survives gst_buffer_copy(), gst_buffer_make_writable(),
 * in-place transforms and converters (videoconvert, videoscale), which copy
 * untagged metas.
 *
 * Thread-safety: a meta belongs to its buffer; read it while you hold the buffer.
 * All strings and arrays are owned by the meta and freed with the buffer.
 */
#ifndef GST_CLIP_CLASSIFY_META_H
#define GST_CLIP_CLASSIFY_META_H

#include <gst/gst.h>

G_BEGIN_DECLS

#ifndef GST_CLIP_CLASSIFY_META_API
#define GST_CLIP_CLASSIFY_META_API extern
#endif

/**
 * GstClipClassifyResult:
 * @label: the prompt as the user wrote it (before the template), owned by the meta
 * @label_index: position of the prompt in the element's prompt list
 *   (`prompts` first, then the lines of `prompts-file`)
 * @score: softmax probability or cosine, as the element's `score-mode` said
 * @cosine: cosine similarity of the image and prompt embeddings
 * @matched: @score >= the element's `threshold`
 */
typedef struct
{
  gchar *label;
  guint label_index;
  gfloat score;
  gfloat cosine;
  gboolean matched;
} GstClipClassifyResult;

/**
 * GstClipClassifyMeta:
 * @meta: parent
 * @source_pts: PTS of the frame the results were computed from
 * @source_frame: number of that frame (0 = first frame since the element started)
 * @prompts_generation: generation of the prompt set used (see `clipclassify-prompts`)
 * @n_results: number of @results (at most the element's `top-k`)
 * @results: results, best score first
 * @top_index: @label_index of the best result, -1 when there are no results
 * @embedding_dim: size of @embedding, 0 when absent
 * @embedding: the L2-normalised image embedding (`attach-embedding=true`), or NULL
 */
typedef struct
{
  GstMeta meta;

  GstClockTime source_pts;
  guint64 source_frame;
  guint prompts_generation;
  guint n_results;
  GstClipClassifyResult *results;
  gint top_index;
  guint embedding_dim;
  gfloat *embedding;
} GstClipClassifyMeta;

GST_CLIP_CLASSIFY_META_API
GType gst_clip_classify_meta_api_get_type (void);
#define GST_CLIP_CLASSIFY_META_API_TYPE (gst_clip_classify_meta_api_get_type ())

GST_CLIP_CLASSIFY_META_API
const GstMetaInfo *gst_clip_classify_meta_get_info (void);
#define GST_CLIP_CLASSIFY_META_INFO (gst_clip_classify_meta_get_info ())

/* Returns the meta of @buffer or NULL (transfer none). */
#define gst_buffer_get_clip_classify_meta(b)                                                       \
  ((GstClipClassifyMeta *)gst_buffer_get_meta ((b), GST_CLIP_CLASSIFY_META_API_TYPE))

/* Adds a meta to the writable @buffer. @results (@n_results entries, may be NULL
 * when 0) and @embedding (@embedding_dim floats, may be NULL) are copied, labels
 * included; top_index is taken from @results[0]. Returns the meta (transfer none,
 * owned by @buffer), or NULL when the buffer is not writable. */
GST_CLIP_CLASSIFY_META_API
GstClipClassifyMeta *
gst_buffer_add_clip_classify_meta (GstBuffer *buffer, GstClockTime source_pts, guint64 source_frame,
                                   guint prompts_generation, const GstClipClassifyResult *results,
                                   guint n_results, const gfloat *embedding, guint embedding_dim);

/* Accessors. @index must be < n_results (else 0 / NULL / FALSE and a critical). */
GST_CLIP_CLASSIFY_META_API
GstClockTime gst_clip_classify_meta_get_source_pts (const GstClipClassifyMeta *meta);
GST_CLIP_CLASSIFY_META_API
guint gst_clip_classify_meta_get_n_results (const GstClipClassifyMeta *meta);
GST_CLIP_CLASSIFY_META_API
const gchar *gst_clip_classify_meta_get_label (const GstClipClassifyMeta *meta, guint index);
GST_CLIP_CLASSIFY_META_API
guint gst_clip_classify_meta_get_label_index (const GstClipClassifyMeta *meta, guint index);
GST_CLIP_CLASSIFY_META_API
gfloat gst_clip_classify_meta_get_score (const GstClipClassifyMeta *meta, guint index);
GST_CLIP_CLASSIFY_META_API
gfloat gst_clip_classify_meta_get_cosine (const GstClipClassifyMeta *meta, guint index);
GST_CLIP_CLASSIFY_META_API
gboolean gst_clip_classify_meta_get_matched (const GstClipClassifyMeta *meta, guint index);
/* The best label (owned by the meta) or NULL when there are no results. */
GST_CLIP_CLASSIFY_META_API
const gchar *gst_clip_classify_meta_get_top_label (const GstClipClassifyMeta *meta);
/* The embedding (owned by the meta) or NULL; @dim (may be NULL) receives its size. */
GST_CLIP_CLASSIFY_META_API
const gfloat *gst_clip_classify_meta_get_embedding (const GstClipClassifyMeta *meta, guint *dim);

/* The meta as a new GstStructure named "clipclassify-meta" (transfer full), for
 * bindings and logging. Fields:
 *   source-pts (GstClockTime), source-frame (guint64), prompts-generation (guint),
 *   labels (GstValueArray of gchararray), label-indices (GstValueArray of guint),
 *   scores, cosines (GstValueArray of gdouble), matched (GstValueArray of the
 *   matched labels' gchararray), top-index (gint), top-label (gchararray, "" when
 *   no results), and, only when present, embedding (GstValueArray of gfloat). */
GST_CLIP_CLASSIFY_META_API
GstStructure *gst_clip_classify_meta_to_structure (const GstClipClassifyMeta *meta);

G_END_DECLS

#endif /* GST_CLIP_CLASSIFY_META_H */
