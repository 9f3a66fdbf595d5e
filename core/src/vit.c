/* vit.c: the vision tower, a pre-LayerNorm ViT (FIXTURES.md 4.1).
 *
 * The images of a batch are stacked into one [batch * T, W] activation
 * matrix, so every linear layer is one GEMM with M = batch * T; only the
 * attention runs per image. GEMMs and attention go through the backend
 * seam; everything else is in ops.c.
 */
#include "config.h"

#include <string.h>

#include "context.h"
#include "ops.h"

typedef struct
{
  float *patches;                /* [grid², C·p·p]: im2col of one image */
  float *hidden;                 /* [B·T, W]: the residual stream */
  float *norm;                   /* [B·T, W]: LayerNorm output */
  float *qkv;                    /* [B·T, 3W] */
  float *attn;                   /* [B·T, W] */
  float *mlp;                    /* [B·T, I] */
  float *scores;                 /* attention scratch of one image */
  float *pooled;                 /* [B, W] */
} VitWork;

static void
vit_carve (const CnclipModel *model, int batch, CnclipArena *arena, VitWork *w)
{
  const CnclipVisionConfig *c = &model->config.vision;
  const gsize tokens = (gsize) batch * cnclip_model_vision_tokens (model);
  const gsize grid = c->image_size / c->patch_size;
  w->patches = cnclip_arena_floats (arena,
      grid * grid * c->num_channels * c->patch_size * c->patch_size);
  w->hidden = cnclip_arena_floats (arena, tokens * c->hidden_size);
  w->norm = cnclip_arena_floats (arena, tokens * c->hidden_size);
  w->qkv = cnclip_arena_floats (arena, tokens * 3 * c->hidden_size);
  w->attn = cnclip_arena_floats (arena, tokens * c->hidden_size);
  w->mlp = cnclip_arena_floats (arena, tokens * c->intermediate_size);
  w->scores = cnclip_arena_floats (arena,
      cnclip_attention_scratch_floats (cnclip_model_vision_tokens (model), c->num_heads));
  w->pooled = cnclip_arena_floats (arena, (gsize) batch * c->hidden_size);
}

gsize
cnclip_vit_workspace_size (const CnclipModel *model, int batch)
{
  CnclipArena arena = { NULL, 0 };
  VitWork w;
  vit_carve (model, batch, &arena, &w);
  return arena.used;
}

static void
capture_hidden (CnclipContext *ctx, const float *hidden, int first, int stage, gsize layer_floats)
{
  if (ctx->capture && ctx->capture->vision_hidden && first == 0)
    memcpy (ctx->capture->vision_hidden + stage * layer_floats, hidden,
        layer_floats * sizeof (float));
}

/* Patch embedding, class token and position embeddings, then
 * pre_layrnorm: the input of the first layer. */
static void
vit_embed (CnclipContext *ctx, VitWork *w, const float *pixels, int n)
{
  const CnclipModel *model = ctx->model;
  CnclipBackend *be = model->backend;
  const CnclipVisionConfig *c = &model->config.vision;
  const int width = c->hidden_size;
  const int tokens = cnclip_model_vision_tokens (model);
  const int patch_dim = c->num_channels * c->patch_size * c->patch_size;
  const gsize image_floats = (gsize) c->num_channels * c->image_size * c->image_size;

  for (int b = 0; b < n; b++) {
    float *h = w->hidden + (gsize) b * tokens * width;
    cnclip_patchify (pixels + b * image_floats, c->num_channels, c->image_size, c->patch_size,
        w->patches, patch_dim);
    be->ops->linear_forward (be, &model->patch_embed, w->patches, patch_dim,
        tokens - 1, h + width, width, FALSE);
    memcpy (h, model->class_embedding, sizeof (float) * width);
    cnclip_add_rows (h, tokens, width, width, model->vision_pos_embed, width);
  }
  cnclip_layer_norm (w->hidden, width, w->hidden, width, n * tokens, width, model->pre_ln.weight,
      model->pre_ln.bias, c->layer_norm_eps);
}

static void
vit_layer (CnclipContext *ctx, VitWork *w, const CnclipVisionLayer *layer, int n)
{
  const CnclipModel *model = ctx->model;
  CnclipBackend *be = model->backend;
  const CnclipVisionConfig *c = &model->config.vision;
  const int width = c->hidden_size;
  const int tokens = cnclip_model_vision_tokens (model);
  const int rows = n * tokens;
  const int head_dim = width / c->num_heads;

  cnclip_layer_norm (w->hidden, width, w->norm, width, rows, width, layer->ln1.weight,
      layer->ln1.bias, c->layer_norm_eps);
  be->ops->linear_forward (be, &layer->qkv, w->norm, width, rows, w->qkv, 3 * width, FALSE);
  for (int b = 0; b < n; b++) {
    const float *qkv = w->qkv + (gsize) b * tokens * 3 * width;
    CnclipAttentionArgs args = {
      .q = qkv,
      .k = qkv + width,
      .v = qkv + 2 * width,
      .ld = 3 * width,
      .n_tokens = tokens,
      .n_heads = c->num_heads,
      .head_dim = head_dim,
      .scale = 1.0f / sqrtf ((float) head_dim),
      .key_mask_add = NULL,
      .out = w->attn + (gsize) b * tokens * width,
      .ld_out = width,
      .scratch = w->scores,
    };
    be->ops->attention (be, &args);
  }
  be->ops->linear_forward (be, &layer->out_proj, w->attn, width, rows, w->hidden, width, TRUE);

  cnclip_layer_norm (w->hidden, width, w->norm, width, rows, width, layer->ln2.weight,
      layer->ln2.bias, c->layer_norm_eps);
  be->ops->linear_forward (be, &layer->fc1, w->norm, width, rows, w->mlp, c->intermediate_size,
      FALSE);
  be->ops->linear_forward (be, &layer->fc2, w->mlp, c->intermediate_size, rows, w->hidden, width,
      TRUE);
}

gboolean
cnclip_vit_forward (CnclipContext *ctx, const float *pixels, int n, int first, float *embeds,
    GError **error)
{
  const CnclipModel *model = ctx->model;
  CnclipBackend *be = model->backend;
  const CnclipVisionConfig *c = &model->config.vision;
  const int width = c->hidden_size;
  const int tokens = cnclip_model_vision_tokens (model);
  const gsize image_hidden = (gsize) tokens * width;
  CnclipArena arena = { ctx->work, 0 };
  VitWork w;

  g_return_val_if_fail (n > 0 && n <= ctx->image_batch, FALSE);
  vit_carve (model, n, &arena, &w);
  if (arena.used > ctx->work_size) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT,
        "vision workspace of %" G_GSIZE_FORMAT " bytes exceeds the context's %" G_GSIZE_FORMAT,
        arena.used, ctx->work_size);
    return FALSE;
  }

  if (!cnclip_context_check_abort (ctx, error))
    return FALSE;
  vit_embed (ctx, &w, pixels, n);
  capture_hidden (ctx, w.hidden, first, 0, image_hidden);

  for (int l = 0; l < c->num_layers; l++) {
    if (!cnclip_context_check_abort (ctx, error))
      return FALSE;
    vit_layer (ctx, &w, &model->vision_layers[l], n);
    capture_hidden (ctx, w.hidden, first, l + 1, image_hidden);
  }

  /* Only the class token is pooled: post_layernorm of the other rows would
   * be thrown away. */
  cnclip_layer_norm (w.hidden, tokens * width, w.pooled, width, n, width, model->post_ln.weight,
      model->post_ln.bias, c->layer_norm_eps);
  if (ctx->capture && ctx->capture->vision_pooled)
    memcpy (ctx->capture->vision_pooled + (gsize) first * width, w.pooled,
        sizeof (float) * n * width);
  be->ops->linear_forward (be, &model->visual_projection, w.pooled, width, n, embeds,
      model->config.projection_dim, FALSE);
  return TRUE;
}
