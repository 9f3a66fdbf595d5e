/* bert.c: the text tower, a post-LayerNorm BERT (RoBERTa-wwm-ext) without
 * the pooler (FIXTURES.md 4.2).
 *
 * Only the real tokens of each row are computed, and the rows of a batch
 * are packed back to back into one [total_tokens, H] matrix: every linear
 * layer is then one GEMM over all texts with no padding rows, and only the
 * attention runs per text. Prompts are short (a [CLS]/[SEP] pair and a
 * handful of characters), so padding every row to 52 would multiply the
 * work several times over, and running rows one by one would give GEMMs
 * of a few rows each, far from the BLAS peak.
 */
#include "config.h"

#include <string.h>

#include "context.h"
#include "ops.h"

/* Added to the scores of padding keys inside a row. Any value below about
 * -100 gives exactly 0 after the softmax in float; this one stays finite
 * in every precision a backend may use. */
#define MASKED_SCORE (-10000.0f)

typedef struct
{
  gint32 *ids;                   /* [tokens]: packed ids */
  int *seg_start;                /* [B]: first packed row of each text */
  int *seg_len;                  /* [B]: its token count */
  float *mask;                   /* [B, row_tokens]: additive key mask */
  gboolean *seg_masked;          /* [B]: the row has padding before its last token */
  float *hidden;                 /* [tokens, H] */
  float *qkv;                    /* [tokens, 3H] */
  float *attn;                   /* [tokens, H] */
  float *mlp;                    /* [tokens, I] */
  float *scores;                 /* attention scratch of one text */
  float *pooled;                 /* [B, H] */
} BertWork;

static void
bert_carve (const CnclipModel *model, int batch, int row_tokens, CnclipArena *arena,
    BertWork *w)
{
  const CnclipTextConfig *c = &model->config.text;
  const gsize tokens = (gsize) batch * row_tokens;
  w->ids = cnclip_arena_take (arena, tokens * sizeof (gint32));
  w->seg_start = cnclip_arena_take (arena, batch * sizeof (int));
  w->seg_len = cnclip_arena_take (arena, batch * sizeof (int));
  w->seg_masked = cnclip_arena_take (arena, batch * sizeof (gboolean));
  w->mask = cnclip_arena_floats (arena, tokens);
  w->hidden = cnclip_arena_floats (arena, tokens * c->hidden_size);
  w->qkv = cnclip_arena_floats (arena, tokens * 3 * c->hidden_size);
  w->attn = cnclip_arena_floats (arena, tokens * c->hidden_size);
  w->mlp = cnclip_arena_floats (arena, tokens * c->intermediate_size);
  w->scores = cnclip_arena_floats (arena, cnclip_attention_scratch_floats (row_tokens,
          c->num_heads));
  w->pooled = cnclip_arena_floats (arena, (gsize) batch * c->hidden_size);
}

gsize
cnclip_bert_workspace_size (const CnclipModel *model, int batch, int row_tokens)
{
  CnclipArena arena = { NULL, 0 };
  BertWork w;
  bert_carve (model, batch, row_tokens, &arena, &w);
  return arena.used;
}

/* Packs the real tokens of each row (up to its last non-padding id). A
 * padding id before that (never written by the tokenizer, but a caller may
 * pass such rows) is masked as the reference's attention_mask would. */
static int
bert_pack (CnclipContext *ctx, BertWork *w, const gint32 *ids, int n, int row_length)
{
  const int pad = ctx->model->config.text.pad_token_id;
  const int row_tokens = ctx->text_row_tokens;
  int total = 0;

  for (int i = 0; i < n; i++) {
    const gint32 *row = ids + (gsize) i * row_length;
    int len = row_length;
    while (len > 0 && row[len - 1] == pad)
      len--;
    w->seg_start[i] = total;
    w->seg_len[i] = len;
    w->seg_masked[i] = FALSE;
    float *mask = w->mask + (gsize) i * row_tokens;
    for (int j = 0; j < len; j++) {
      w->ids[total + j] = row[j];
      mask[j] = row[j] == pad ? MASKED_SCORE : 0.0f;
      if (row[j] == pad)
        w->seg_masked[i] = TRUE;
    }
    total += len;
  }
  return total;
}

static void
capture_hidden (CnclipContext *ctx, const BertWork *w, int first, int n, int stage)
{
  CnclipCapture *cap = ctx->capture;
  if (cap == NULL || cap->text_hidden == NULL || cap->text_index < first
      || cap->text_index >= first + n)
    return;
  const int width = ctx->model->config.text.hidden_size;
  const int i = cap->text_index - first;
  const gsize floats = (gsize) w->seg_len[i] * width;
  memcpy (cap->text_hidden + stage * floats, w->hidden + (gsize) w->seg_start[i] * width,
      floats * sizeof (float));
  cap->text_hidden_tokens = w->seg_len[i];
}

/* word + position (0..len-1 within each text) + token_type[0], then the
 * embedding LayerNorm. */
static void
bert_embed (CnclipContext *ctx, BertWork *w, int n, int total)
{
  const CnclipModel *model = ctx->model;
  const CnclipTextConfig *c = &model->config.text;
  const int width = c->hidden_size;

  cnclip_gather_rows (model->word_embeddings, width, w->ids, total, w->hidden, width);
  for (int i = 0; i < n; i++)
    cnclip_add_rows (w->hidden + (gsize) w->seg_start[i] * width, w->seg_len[i], width, width,
        model->text_pos_embed, width);
  cnclip_add_bias (w->hidden, total, width, width, model->token_type_embed);
  cnclip_layer_norm (w->hidden, width, w->hidden, width, total, width, model->embed_ln.weight,
      model->embed_ln.bias, c->layer_norm_eps);
}

static void
bert_layer (CnclipContext *ctx, BertWork *w, const CnclipTextLayer *layer, int n, int total)
{
  const CnclipModel *model = ctx->model;
  CnclipBackend *be = model->backend;
  const CnclipTextConfig *c = &model->config.text;
  const int width = c->hidden_size;
  const int head_dim = width / c->num_heads;

  be->ops->linear_forward (be, &layer->qkv, w->hidden, width, total, w->qkv, 3 * width, FALSE);
  for (int i = 0; i < n; i++) {
    const float *qkv = w->qkv + (gsize) w->seg_start[i] * 3 * width;
    CnclipAttentionArgs args = {
      .q = qkv,
      .k = qkv + width,
      .v = qkv + 2 * width,
      .ld = 3 * width,
      .n_tokens = w->seg_len[i],
      .n_heads = c->num_heads,
      .head_dim = head_dim,
      .scale = 1.0f / sqrtf ((float) head_dim),
      .key_mask_add = w->seg_masked[i] ? w->mask + (gsize) i * ctx->text_row_tokens : NULL,
      .out = w->attn + (gsize) w->seg_start[i] * width,
      .ld_out = width,
      .scratch = w->scores,
    };
    be->ops->attention (be, &args);
  }
  /* Post-LN: the residual adds into the stream, then it is normalised in
   * place. */
  be->ops->linear_forward (be, &layer->attn_out, w->attn, width, total, w->hidden, width, TRUE);
  cnclip_layer_norm (w->hidden, width, w->hidden, width, total, width, layer->attn_ln.weight,
      layer->attn_ln.bias, c->layer_norm_eps);
  be->ops->linear_forward (be, &layer->intermediate, w->hidden, width, total, w->mlp,
      c->intermediate_size, FALSE);
  be->ops->linear_forward (be, &layer->output, w->mlp, c->intermediate_size, total, w->hidden,
      width, TRUE);
  cnclip_layer_norm (w->hidden, width, w->hidden, width, total, width, layer->out_ln.weight,
      layer->out_ln.bias, c->layer_norm_eps);
}

gboolean
cnclip_bert_forward (CnclipContext *ctx, const gint32 *ids, int n, int row_length, int first,
    float *embeds, GError **error)
{
  const CnclipModel *model = ctx->model;
  CnclipBackend *be = model->backend;
  const CnclipTextConfig *c = &model->config.text;
  const int width = c->hidden_size;
  CnclipArena arena = { ctx->work, 0 };
  BertWork w;

  g_return_val_if_fail (n > 0 && n <= ctx->text_batch, FALSE);
  bert_carve (model, n, ctx->text_row_tokens, &arena, &w);
  if (arena.used > ctx->work_size) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT,
        "text workspace of %" G_GSIZE_FORMAT " bytes exceeds the context's %" G_GSIZE_FORMAT,
        arena.used, ctx->work_size);
    return FALSE;
  }

  if (!cnclip_context_check_abort (ctx, error))
    return FALSE;
  const int total = bert_pack (ctx, &w, ids, n, row_length);
  bert_embed (ctx, &w, n, total);
  capture_hidden (ctx, &w, first, n, 0);

  for (int l = 0; l < c->num_layers; l++) {
    if (!cnclip_context_check_abort (ctx, error))
      return FALSE;
    bert_layer (ctx, &w, &model->text_layers[l], n, total);
    capture_hidden (ctx, &w, first, n, l + 1);
  }

  /* [CLS] pooling: the first row of each text, no pooler. */
  for (int i = 0; i < n; i++)
    memcpy (w.pooled + (gsize) i * width, w.hidden + (gsize) w.seg_start[i] * width,
        sizeof (float) * width);
  if (ctx->capture && ctx->capture->text_pooled)
    memcpy (ctx->capture->text_pooled + (gsize) first * width, w.pooled,
        sizeof (float) * n * width);
  be->ops->linear_forward (be, &model->text_projection, w.pooled, width, n, embeds,
      model->config.projection_dim, FALSE);
  return TRUE;
}
