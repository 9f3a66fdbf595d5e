/* context.c: per-thread scratch and the encode entry points (cnclip.h,
 * "Context"). The towers themselves are in vit.c and bert.c. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "context.h"

/* Batch maxima beyond these are caller mistakes rather than plans: a
 * ViT-B/16 image needs about 6 MB of activations. */
#define MAX_IMAGE_BATCH 256
#define MAX_TEXT_BATCH 4096
/* Refused before allocating: an arena this large means absurd maxima. */
#define MAX_ARENA_BYTES ((guint64) 4 << 30)

CnclipContextParams
cnclip_context_default_params (void)
{
  CnclipContextParams params = {
    .n_threads = 0,
    .max_image_batch = 1,
    .max_text_batch = 16,
    .abort_func = NULL,
    .abort_user_data = NULL,
  };
  return params;
}

/* Reserves the arena: the pixel and id buffers of the two encode paths,
 * then one workspace that fits either tower. Everything is touched once
 * here, so the first encode call does not pay for page faults. */
static gboolean
context_alloc (CnclipContext *ctx, GError **error)
{
  const CnclipModel *model = ctx->model;
  const int size = model->config.vision.image_size;
  CnclipArena arena = { NULL, 0 };

  cnclip_arena_floats (&arena, (gsize) ctx->image_batch * 3 * size * size);
  cnclip_arena_take (&arena, (gsize) ctx->text_batch * ctx->context_length * sizeof (gint32));
  const gsize fixed = arena.used;
  gsize work = 0;
  if (ctx->image_batch > 0)
    work = MAX (work, cnclip_vit_workspace_size (model, ctx->image_batch));
  if (ctx->text_batch > 0)
    work = MAX (work, cnclip_bert_workspace_size (model, ctx->text_batch, ctx->text_row_tokens));
  const guint64 total = (guint64) fixed + work;
  if (total > MAX_ARENA_BYTES) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_NOMEM,
        "a context for %d images and %d texts per pass would need %" G_GUINT64_FORMAT
        " MiB of scratch; lower max_image_batch / max_text_batch",
        ctx->image_batch, ctx->text_batch, total >> 20);
    return FALSE;
  }

  void *block = NULL;
  if (posix_memalign (&block, CNCLIP_ARENA_ALIGN, MAX (total, CNCLIP_ARENA_ALIGN)) != 0) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_NOMEM,
        "cannot allocate %" G_GUINT64_FORMAT " MiB of scratch", total >> 20);
    return FALSE;
  }
  memset (block, 0, total);
  ctx->arena = block;
  ctx->arena_size = total;

  arena.base = ctx->arena;
  arena.used = 0;
  ctx->pixels = cnclip_arena_floats (&arena, (gsize) ctx->image_batch * 3 * size * size);
  ctx->ids = cnclip_arena_take (&arena,
      (gsize) ctx->text_batch * ctx->context_length * sizeof (gint32));
  ctx->work = ctx->arena + fixed;
  ctx->work_size = work;
  return TRUE;
}

/**
 * cnclip_context_new:
 * @model: a loaded model; the context takes a reference
 * @params: (nullable): NULL for cnclip_context_default_params()
 *
 * Creates a context and its scratch arena, sized for the towers @model has
 * at @params' batch maxima. Encode calls then do not allocate (except
 * inside preprocessing and tokenisation, see cnclip_encode_images() and
 * cnclip_encode_texts()).
 *
 * Thread-safety: any thread may create contexts on a shared model; each
 * context is then used by one thread at a time.
 *
 * Returns: (transfer full): the context, or NULL with CNCLIP_ERROR_INVALID_ARGUMENT
 * (batch maxima or thread count out of range) or CNCLIP_ERROR_NOMEM.
 */
CnclipContext *
cnclip_context_new (CnclipModel *model, const CnclipContextParams *params, GError **error)
{
  g_return_val_if_fail (model != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  CnclipContextParams p = params ? *params : cnclip_context_default_params ();
  if (p.n_threads < 0 || p.max_image_batch < 1 || p.max_image_batch > MAX_IMAGE_BATCH
      || p.max_text_batch < 1 || p.max_text_batch > MAX_TEXT_BATCH) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT,
        "context parameters out of range: n_threads %d (>= 0), max_image_batch %d (1..%d), "
        "max_text_batch %d (1..%d)", p.n_threads, p.max_image_batch, MAX_IMAGE_BATCH,
        p.max_text_batch, MAX_TEXT_BATCH);
    return NULL;
  }

  CnclipContext *ctx = g_new0 (CnclipContext, 1);
  ctx->model = cnclip_model_ref (model);
  ctx->params = p;
  ctx->n_threads = p.n_threads;
  ctx->image_batch = model->has_vision ? p.max_image_batch : 0;
  ctx->text_batch = model->has_text ? p.max_text_batch : 0;
  ctx->context_length = model->has_text ? cnclip_model_get_context_length (model) : 0;
  ctx->text_row_tokens = MIN (ctx->context_length, model->config.text.max_position_embeddings);
  if (!context_alloc (ctx, error)) {
    cnclip_context_free (ctx);
    return NULL;
  }
  return ctx;
}

/**
 * cnclip_context_free:
 * @ctx: (nullable): a context
 *
 * Frees the context and drops its model reference. Not concurrently with
 * an encode call on @ctx.
 */
void
cnclip_context_free (CnclipContext *ctx)
{
  if (ctx == NULL)
    return;
  free (ctx->arena);
  cnclip_model_unref (ctx->model);
  g_free (ctx);
}

/**
 * cnclip_context_get_model:
 *
 * Returns: (transfer none): the model, valid as long as @ctx.
 */
CnclipModel *
cnclip_context_get_model (CnclipContext *ctx)
{
  g_return_val_if_fail (ctx != NULL, NULL);
  return ctx->model;
}

/**
 * cnclip_context_set_n_threads:
 * @n_threads: threads of the next encode calls, 0 = all cores
 *
 * Applies from the next encode call on (the backend is told before each
 * forward pass, in the thread that runs it). Same threading rule as the
 * encode calls.
 */
void
cnclip_context_set_n_threads (CnclipContext *ctx, int n_threads)
{
  g_return_if_fail (ctx != NULL);
  g_return_if_fail (n_threads >= 0);
  ctx->n_threads = n_threads;
}

void
cnclip_context_set_capture (CnclipContext *ctx, CnclipCapture *capture)
{
  g_return_if_fail (ctx != NULL);
  ctx->capture = capture;
}

gboolean
cnclip_context_check_abort (CnclipContext *ctx, GError **error)
{
  if (ctx->params.abort_func && ctx->params.abort_func (ctx->params.abort_user_data)) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_ABORTED, "encoding aborted by the caller");
    return FALSE;
  }
  return TRUE;
}

static gboolean
require_tower (CnclipContext *ctx, gboolean vision, GError **error)
{
  if (vision ? ctx->image_batch > 0 : ctx->text_batch > 0)
    return TRUE;
  g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_UNSUPPORTED,
      "model %s was loaded without its %s tower", cnclip_model_get_name (ctx->model),
      vision ? "vision" : "text");
  return FALSE;
}

static void
begin_pass (CnclipContext *ctx)
{
  cnclip_backend_set_threads (ctx->model->backend, ctx->n_threads);
}

/**
 * cnclip_encode_pixels:
 *
 * Runs the vision tower on @n preprocessed images, max_image_batch per
 * forward pass. @n == 0 does nothing and succeeds. The output is undefined
 * when the call fails.
 */
gboolean
cnclip_encode_pixels (CnclipContext *ctx, const float *pixel_values, int n, float *embeds,
    GError **error)
{
  g_return_val_if_fail (ctx != NULL, FALSE);
  g_return_val_if_fail (n >= 0, FALSE);
  g_return_val_if_fail (n == 0 || (pixel_values != NULL && embeds != NULL), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (n == 0)
    return TRUE;
  if (!require_tower (ctx, TRUE, error))
    return FALSE;
  const CnclipConfig *config = &ctx->model->config;
  const gsize image_floats = (gsize) config->vision.num_channels * config->vision.image_size
      * config->vision.image_size;
  begin_pass (ctx);
  for (int first = 0; first < n; first += ctx->image_batch) {
    const int count = MIN (ctx->image_batch, n - first);
    if (!cnclip_vit_forward (ctx, pixel_values + first * image_floats, count, first,
            embeds + (gsize) first * config->projection_dim, error))
      return FALSE;
  }
  return TRUE;
}

/**
 * cnclip_encode_images:
 *
 * Preprocesses each image (cnclip_model_preprocess()) into the context's
 * pixel buffer and runs the vision tower. Preprocessing may allocate a
 * temporary RGB buffer for frames that are not packed RGB of the model's
 * image size. @n == 0 does nothing and succeeds. Errors name the image
 * index.
 */
gboolean
cnclip_encode_images (CnclipContext *ctx, const CnclipImage *images, int n, float *embeds,
    GError **error)
{
  g_return_val_if_fail (ctx != NULL, FALSE);
  g_return_val_if_fail (n >= 0, FALSE);
  g_return_val_if_fail (n == 0 || (images != NULL && embeds != NULL), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (n == 0)
    return TRUE;
  if (!require_tower (ctx, TRUE, error))
    return FALSE;
  const CnclipConfig *config = &ctx->model->config;
  if (config->vision.num_channels != 3) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_UNSUPPORTED,
        "images need a model with 3 input channels, this one has %d; use "
        "cnclip_encode_pixels", config->vision.num_channels);
    return FALSE;
  }
  const gsize image_floats = (gsize) 3 * config->vision.image_size * config->vision.image_size;
  begin_pass (ctx);
  for (int first = 0; first < n; first += ctx->image_batch) {
    const int count = MIN (ctx->image_batch, n - first);
    for (int i = 0; i < count; i++) {
      if (!cnclip_model_preprocess (ctx->model, &images[first + i],
              ctx->pixels + i * image_floats, error)) {
        g_prefix_error (error, "image %d: ", first + i);
        return FALSE;
      }
    }
    if (!cnclip_vit_forward (ctx, ctx->pixels, count, first,
            embeds + (gsize) first * config->projection_dim, error))
      return FALSE;
  }
  return TRUE;
}

/* Checks what bert.c relies on: ids inside the vocabulary and a real token
 * count (up to the last non-padding id) between 1 and the row capacity. */
static gboolean
check_rows (CnclipContext *ctx, const gint32 *ids, int n, int row_length, int first,
    GError **error)
{
  const CnclipTextConfig *c = &ctx->model->config.text;
  for (int i = 0; i < n; i++) {
    const gint32 *row = ids + (gsize) i * row_length;
    int len = row_length;
    while (len > 0 && row[len - 1] == c->pad_token_id)
      len--;
    if (len == 0) {
      g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT,
          "token row %d holds only padding", first + i);
      return FALSE;
    }
    if (len > ctx->text_row_tokens) {
      g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT,
          "token row %d has %d tokens; the model takes at most %d (its context length)",
          first + i, len, ctx->text_row_tokens);
      return FALSE;
    }
    for (int j = 0; j < len; j++) {
      if (row[j] < 0 || row[j] >= c->vocab_size) {
        g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT,
            "token row %d, position %d: id %d outside the vocabulary (0..%d)",
            first + i, j, row[j], c->vocab_size - 1);
        return FALSE;
      }
    }
  }
  return TRUE;
}

/**
 * cnclip_encode_token_ids:
 *
 * All rows are checked before any is encoded: ids must lie in the
 * vocabulary and each row must hold 1 to context-length tokens before its
 * trailing padding (CNCLIP_ERROR_INVALID_ARGUMENT otherwise). Padding ids
 * before the last real token are masked, as the reference's attention mask
 * does. @n == 0 does nothing and succeeds.
 */
gboolean
cnclip_encode_token_ids (CnclipContext *ctx, const gint32 *input_ids, int n, int row_length,
    float *embeds, GError **error)
{
  g_return_val_if_fail (ctx != NULL, FALSE);
  g_return_val_if_fail (n >= 0, FALSE);
  g_return_val_if_fail (n == 0 || (input_ids != NULL && embeds != NULL), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (n == 0)
    return TRUE;
  if (!require_tower (ctx, FALSE, error))
    return FALSE;
  if (row_length < 1) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT,
        "token rows of %d ids", row_length);
    return FALSE;
  }
  if (!check_rows (ctx, input_ids, n, row_length, 0, error))
    return FALSE;
  const int dim = ctx->model->config.projection_dim;
  begin_pass (ctx);
  for (int first = 0; first < n; first += ctx->text_batch) {
    const int count = MIN (ctx->text_batch, n - first);
    if (!cnclip_bert_forward (ctx, input_ids + (gsize) first * row_length, count, row_length,
            first, embeds + (gsize) first * dim, error))
      return FALSE;
  }
  return TRUE;
}

/**
 * cnclip_encode_texts:
 *
 * Tokenises each text with the model's tokenizer and context length
 * (longer texts are truncated, not refused) into the context's id buffer,
 * max_text_batch texts per forward pass. The tokenizer may allocate
 * internally. @n == 0 does nothing and succeeds. Errors name the text
 * index; the output is undefined when the call fails.
 */
gboolean
cnclip_encode_texts (CnclipContext *ctx, const char *const *texts, int n, float *embeds,
    GError **error)
{
  g_return_val_if_fail (ctx != NULL, FALSE);
  g_return_val_if_fail (n >= 0, FALSE);
  g_return_val_if_fail (n == 0 || (texts != NULL && embeds != NULL), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (n == 0)
    return TRUE;
  if (!require_tower (ctx, FALSE, error))
    return FALSE;
  for (int i = 0; i < n; i++)
    g_return_val_if_fail (texts[i] != NULL, FALSE);

  const CnclipTokenizer *tokenizer = cnclip_model_get_tokenizer (ctx->model);
  const int row = ctx->context_length;
  const int dim = ctx->model->config.projection_dim;
  begin_pass (ctx);
  for (int first = 0; first < n; first += ctx->text_batch) {
    const int count = MIN (ctx->text_batch, n - first);
    for (int i = 0; i < count; i++) {
      if (!cnclip_tokenizer_encode (tokenizer, texts[first + i], -1, row,
              ctx->ids + (gsize) i * row, NULL, error)) {
        g_prefix_error (error, "text %d: ", first + i);
        return FALSE;
      }
    }
    if (!check_rows (ctx, ctx->ids, count, row, first, error)
        || !cnclip_bert_forward (ctx, ctx->ids, count, row, first,
            embeds + (gsize) first * dim, error))
      return FALSE;
  }
  return TRUE;
}
