/* context.h: the encoding context (internal): its scratch arena, the entry
 * points of the two towers, and capture hooks for tests.
 *
 * A context owns one arena, allocated by cnclip_context_new() and sized for
 * the larger of the two towers at the batch maxima; the towers carve their
 * buffers out of it at the start of each forward pass, so encode calls do
 * not allocate. The two towers share the workspace: a context runs one
 * forward pass at a time.
 */
#ifndef CNCLIP_CONTEXT_H
#define CNCLIP_CONTEXT_H

#include "cnclip.h"
#include "model.h"

G_BEGIN_DECLS

/* Buffers are 64-byte aligned (one cache line, one AVX-512 vector). */
#define CNCLIP_ARENA_ALIGN 64

/* A bump allocator over a fixed block. With @base NULL it only measures:
 * the same carving code then computes the size to allocate, so the layout
 * and its size cannot disagree. */
typedef struct
{
  guint8 *base;
  gsize used;
} CnclipArena;

static inline gpointer
cnclip_arena_take (CnclipArena *arena, gsize bytes)
{
  gpointer p = arena->base ? arena->base + arena->used : NULL;
  arena->used += (bytes + CNCLIP_ARENA_ALIGN - 1) & ~(gsize) (CNCLIP_ARENA_ALIGN - 1);
  return p;
}

static inline float *
cnclip_arena_floats (CnclipArena *arena, gsize n)
{
  return (float *) cnclip_arena_take (arena, n * sizeof (float));
}

/* Test-only: where a forward pass copies its intermediate tensors. Every
 * pointer may be NULL (not captured). Indices count from the first item of
 * the encode call, across chunks. */
typedef struct
{
  float *vision_pooled;          /* [n, W]: post_layernorm(class token) of each image */
  float *vision_hidden;          /* [Lv+1, T, W] of image 0 of the call:
                                  * [0] pre_layrnorm output, [l] output of layer l */
  float *text_pooled;            /* [n, H]: last hidden state of [CLS] of each text */
  float *text_hidden;            /* [Lt+1, n_tokens, H] of text @text_index:
                                  * [0] embeddings after LayerNorm, [l] layer l */
  int text_index;
  int text_hidden_tokens;        /* out: rows per layer written to text_hidden */
} CnclipCapture;

struct _CnclipContext
{
  CnclipModel *model;
  CnclipContextParams params;
  int n_threads;

  int image_batch;               /* images per forward pass (0: no vision tower) */
  int text_batch;                /* texts per forward pass (0: no text tower) */
  int text_row_tokens;           /* most tokens one text row may have */
  int context_length;            /* tokenizer row length */

  guint8 *arena;                 /* the single allocation */
  gsize arena_size;
  float *pixels;                 /* [image_batch, 3, S, S] for cnclip_encode_images */
  gint32 *ids;                   /* [text_batch, context_length] for cnclip_encode_texts */
  guint8 *work;                  /* shared by the towers */
  gsize work_size;

  CnclipCapture *capture;
};

/* Bytes of workspace each tower needs for @batch items (carves a measuring
 * arena exactly as the forward pass does). */
gsize cnclip_vit_workspace_size (const CnclipModel *model, int batch);
gsize cnclip_bert_workspace_size (const CnclipModel *model, int batch, int row_tokens);

/* Polls the abort callback. Returns FALSE with CNCLIP_ERROR_ABORTED set
 * when it asks to stop. */
gboolean cnclip_context_check_abort (CnclipContext *ctx, GError **error);

/* One forward pass of @n <= ctx->image_batch images: @pixels NCHW, writes
 * @n * P floats to @embeds. @first is the index of the first image within
 * the encode call (for the capture hooks). Errors: CNCLIP_ERROR_ABORTED. */
gboolean cnclip_vit_forward (CnclipContext *ctx, const float *pixels, int n, int first,
    float *embeds, GError **error);

/* One forward pass of @n <= ctx->text_batch token rows of @row_length ids.
 * Only the prefix up to the last non-padding id of each row is computed;
 * rows were validated by the caller (ids inside the vocabulary, 1 to
 * ctx->text_row_tokens tokens). Errors: CNCLIP_ERROR_ABORTED. */
gboolean cnclip_bert_forward (CnclipContext *ctx, const gint32 *ids, int n, int row_length,
    int first, float *embeds, GError **error);

/* Test-only: makes later encode calls copy intermediates into @capture
 * (NULL stops). The caller keeps @capture alive and sized. */
void cnclip_context_set_capture (CnclipContext *ctx, CnclipCapture *capture);

G_END_DECLS

#endif /* CNCLIP_CONTEXT_H */
