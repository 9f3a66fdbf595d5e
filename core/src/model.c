/* model.c: loading a model directory (config, vocabulary, weights), binding
 * every tensor to struct _CnclipModel, preparing the linear layers with the
 * backend; the model getters, pixel normalisation and saving as safetensors.
 *
 * Memory: contiguous, 4-byte-aligned float32 tensors are used in place from
 * the read-only mapping, so the real 753 MB model costs its file pages and
 * little else. Only what must change is copied into owned float32 buffers:
 * F16 / BF16 / F64 or strided tensors (whose source pages are dropped after
 * conversion), and q/k/v, which are fused into one [3W, W] matrix per layer.
 * Float32 q/k/v are copied with pread(), so their pages never enter the
 * mapping at all; a checkpoint whose q/k/v already lie back to back
 * (pytorch_model.bin stores them as views of the former in_proj_weight) is
 * fused in place at no cost. When the backend packs weights into its own
 * format (releases_source), the sources are released after packing: mapped
 * pages are dropped, owned buffers freed. Measured on the base-size model:
 * 175 MB resident after loading (the fused q/k/v), ~0.4 s with a warm cache.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "model.h"

CnclipModelParams
cnclip_model_default_params (void)
{
  CnclipModelParams p = {
    .weights_file = NULL,
    .backend = CNCLIP_BACKEND_AUTO,
    .precision = CNCLIP_PRECISION_FP32,
    .load_vision = TRUE,
    .load_text = TRUE,
    .context_length = 0,
  };
  return p;
}

/* ------------------------------------------------------------------------ */
/* Tensor names and shapes                                                  */

static void
add_spec (GArray *specs, CnclipTensorRole role, int ndim, gint64 d0, gint64 d1, gint64 d2,
    gint64 d3, const char *format, ...) G_GNUC_PRINTF (8, 9);

static void
add_spec (GArray *specs, CnclipTensorRole role, int ndim, gint64 d0, gint64 d1, gint64 d2,
    gint64 d3, const char *format, ...)
{
  CnclipTensorSpec spec = { .role = role, .ndim = ndim, .shape = { d0, d1, d2, d3 } };
  va_list args;
  va_start (args, format);
  g_vsnprintf (spec.name, sizeof (spec.name), format, args);
  va_end (args);
  g_array_append_val (specs, spec);
}

static void
add_linear_specs (GArray *specs, gint64 n_out, gint64 n_in, const char *prefix, int layer,
    const char *name)
{
  add_spec (specs, CNCLIP_TENSOR_WEIGHT, 2, n_out, n_in, 0, 0, "%s.%d.%s.weight", prefix, layer,
      name);
  add_spec (specs, CNCLIP_TENSOR_BIAS, 1, n_out, 0, 0, 0, "%s.%d.%s.bias", prefix, layer, name);
}

static void
add_norm_specs (GArray *specs, gint64 width, const char *prefix, int layer, const char *name)
{
  if (layer >= 0) {
    add_spec (specs, CNCLIP_TENSOR_NORM_WEIGHT, 1, width, 0, 0, 0, "%s.%d.%s.weight", prefix,
        layer, name);
    add_spec (specs, CNCLIP_TENSOR_NORM_BIAS, 1, width, 0, 0, 0, "%s.%d.%s.bias", prefix, layer,
        name);
  } else {
    add_spec (specs, CNCLIP_TENSOR_NORM_WEIGHT, 1, width, 0, 0, 0, "%s.%s.weight", prefix, name);
    add_spec (specs, CNCLIP_TENSOR_NORM_BIAS, 1, width, 0, 0, 0, "%s.%s.bias", prefix, name);
  }
}

GArray *
cnclip_model_tensor_specs (const CnclipConfig *config, gboolean vision, gboolean text)
{
  g_return_val_if_fail (config != NULL, NULL);
  GArray *specs = g_array_new (FALSE, TRUE, sizeof (CnclipTensorSpec));
  const CnclipTextConfig *t = &config->text;
  const CnclipVisionConfig *v = &config->vision;
  const gint64 P = config->projection_dim;

  add_spec (specs, CNCLIP_TENSOR_LOGIT_SCALE, 0, 0, 0, 0, 0, "logit_scale");
  if (text) {
    const gint64 H = t->hidden_size, I = t->intermediate_size;
    const char *L = "text_model.encoder.layer";
    add_spec (specs, CNCLIP_TENSOR_EMBEDDING, 2, t->vocab_size, H, 0, 0,
        "text_model.embeddings.word_embeddings.weight");
    add_spec (specs, CNCLIP_TENSOR_EMBEDDING, 2, t->max_position_embeddings, H, 0, 0,
        "text_model.embeddings.position_embeddings.weight");
    add_spec (specs, CNCLIP_TENSOR_EMBEDDING, 2, t->type_vocab_size, H, 0, 0,
        "text_model.embeddings.token_type_embeddings.weight");
    add_norm_specs (specs, H, "text_model.embeddings", -1, "LayerNorm");
    for (int i = 0; i < t->num_layers; i++) {
      add_linear_specs (specs, H, H, L, i, "attention.self.query");
      add_linear_specs (specs, H, H, L, i, "attention.self.key");
      add_linear_specs (specs, H, H, L, i, "attention.self.value");
      add_linear_specs (specs, H, H, L, i, "attention.output.dense");
      add_norm_specs (specs, H, L, i, "attention.output.LayerNorm");
      add_linear_specs (specs, I, H, L, i, "intermediate.dense");
      add_linear_specs (specs, H, I, L, i, "output.dense");
      add_norm_specs (specs, H, L, i, "output.LayerNorm");
    }
  }
  if (vision) {
    const gint64 W = v->hidden_size, I = v->intermediate_size, p = v->patch_size;
    const gint64 side = v->image_size / v->patch_size;
    const char *L = "vision_model.encoder.layers";
    add_spec (specs, CNCLIP_TENSOR_EMBEDDING, 1, W, 0, 0, 0,
        "vision_model.embeddings.class_embedding");
    add_spec (specs, CNCLIP_TENSOR_WEIGHT, 4, W, v->num_channels, p, p,
        "vision_model.embeddings.patch_embedding.weight");
    add_spec (specs, CNCLIP_TENSOR_EMBEDDING, 2, side * side + 1, W, 0, 0,
        "vision_model.embeddings.position_embedding.weight");
    add_norm_specs (specs, W, "vision_model", -1, "pre_layrnorm");
    for (int i = 0; i < v->num_layers; i++) {
      add_linear_specs (specs, W, W, L, i, "self_attn.k_proj");
      add_linear_specs (specs, W, W, L, i, "self_attn.v_proj");
      add_linear_specs (specs, W, W, L, i, "self_attn.q_proj");
      add_linear_specs (specs, W, W, L, i, "self_attn.out_proj");
      add_norm_specs (specs, W, L, i, "layer_norm1");
      add_linear_specs (specs, I, W, L, i, "mlp.fc1");
      add_linear_specs (specs, W, I, L, i, "mlp.fc2");
      add_norm_specs (specs, W, L, i, "layer_norm2");
    }
    add_norm_specs (specs, W, "vision_model", -1, "post_layernorm");
    add_spec (specs, CNCLIP_TENSOR_WEIGHT, 2, P, W, 0, 0, "visual_projection.weight");
  }
  if (text)
    add_spec (specs, CNCLIP_TENSOR_WEIGHT, 2, P, t->hidden_size, 0, 0, "text_projection.weight");
  return specs;
}

/* ------------------------------------------------------------------------ */
/* Owned buffers                                                            */

#define HUGE_PAGE (2 * 1024 * 1024)

/* 64-byte aligned (one AVX-512 vector), freed with free(). Buffers of a
 * huge page or more are 2 MB aligned and asked to use huge pages: filling
 * them costs one fault per 2 MB instead of per 4 KB (a third of the load
 * time of the real model otherwise), and GEMMs reading them miss the TLB
 * less. */
static float *
owned_alloc (CnclipModel *model, gint64 n_floats, const char *what, GError **error)
{
  void *p = NULL;
  gsize bytes = (gsize) n_floats * sizeof (float);
  if (n_floats <= 0 || (guint64) n_floats > G_MAXSIZE / sizeof (float)
      || posix_memalign (&p, bytes >= HUGE_PAGE ? HUGE_PAGE : 64, bytes) != 0) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_NOMEM,
        "cannot allocate %" G_GINT64_FORMAT " floats for %s", n_floats, what);
    return NULL;
  }
#ifdef MADV_HUGEPAGE
  if (bytes >= HUGE_PAGE)
    madvise (p, bytes & ~(gsize) (HUGE_PAGE - 1), MADV_HUGEPAGE);
#endif
  g_ptr_array_add (model->owned, p);
  return p;
}

static gboolean
is_owned (const CnclipModel *model, const void *p)
{
  for (guint i = 0; i < model->owned->len; i++) {
    if (g_ptr_array_index (model->owned, i) == p)
      return TRUE;
  }
  return FALSE;
}

/* ------------------------------------------------------------------------ */
/* Binding                                                                  */

static void
append_shape (GString *s, int ndim, const gint64 *shape)
{
  g_string_append_c (s, '[');
  for (int k = 0; k < ndim; k++)
    g_string_append_printf (s, k ? ", %" G_GINT64_FORMAT : "%" G_GINT64_FORMAT, shape[k]);
  g_string_append_c (s, ']');
}

/* Looks @name up and checks dtype and shape. */
static const CnclipTensorInfo *
find_tensor (CnclipModel *model, const char *name, int ndim, const gint64 *shape,
    GError **error)
{
  const char *file = model->weights_path;
  const CnclipTensorInfo *info = cnclip_weight_file_lookup (model->weights, name);
  if (info == NULL) {
    const char *dtype = cnclip_weight_file_lookup_unusable (model->weights, name);
    if (dtype) {
      g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_DTYPE,
          "%s: tensor %s has dtype %s, which is not supported (F32, F16, BF16, F64)", file, name,
          dtype);
    } else {
      g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_MISSING_TENSOR,
          "%s: tensor %s is missing", file, name);
    }
    return NULL;
  }
  if (!cnclip_dtype_is_float (info->dtype)) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_DTYPE,
        "%s: tensor %s has dtype %s, expected a float type (F32, F16, BF16, F64)", file, name,
        cnclip_dtype_to_string (info->dtype));
    return NULL;
  }
  gboolean same = info->ndim == ndim;
  for (int k = 0; same && k < ndim; k++)
    same = info->shape[k] == shape[k];
  if (!same) {
    GString *msg = g_string_new (NULL);
    g_string_append_printf (msg, "%s: tensor %s has shape ", file, name);
    append_shape (msg, info->ndim, info->shape);
    g_string_append (msg, ", expected ");
    append_shape (msg, ndim, shape);
    g_set_error_literal (error, CNCLIP_ERROR, CNCLIP_ERROR_SHAPE, msg->str);
    g_string_free (msg, TRUE);
    return NULL;
  }
  return info;
}

static gboolean
usable_in_place (const CnclipTensorInfo *info)
{
  return info->dtype == CNCLIP_DTYPE_F32 && info->contiguous
      && ((guintptr) info->data % sizeof (float)) == 0;
}

static void
release_source (CnclipModel *model, const CnclipTensorInfo *info)
{
  gint64 span = 0;
  if (cnclip_tensor_span (info, NULL, &span) && span > 0)
    cnclip_weight_file_release (model->weights, info->data, (gsize) span);
}

/* Float32 data of @info: in place when possible, else converted once. */
static const float *
tensor_floats (CnclipModel *model, const CnclipTensorInfo *info, GError **error)
{
  if (usable_in_place (info))
    return (const float *) info->data;
  float *out = owned_alloc (model, MAX (info->n_elements, 1), info->name, error);
  if (out == NULL || !cnclip_tensor_to_f32 (info, out, error))
    return NULL;
  /* The converted copy replaces the source for good. */
  release_source (model, info);
  return out;
}

static const float *
bind (CnclipModel *model, const char *name, int ndim, gint64 d0, gint64 d1, GError **error)
{
  const gint64 shape[2] = { d0, d1 };
  const CnclipTensorInfo *info = find_tensor (model, name, ndim, shape, error);
  return info ? tensor_floats (model, info, error) : NULL;
}

static gboolean
bind_norm (CnclipModel *model, CnclipNorm *norm, const char *prefix, gint64 width,
    GError **error)
{
  char *w = g_strconcat (prefix, ".weight", NULL), *b = g_strconcat (prefix, ".bias", NULL);
  norm->weight = bind (model, w, 1, width, 0, error);
  norm->bias = norm->weight ? bind (model, b, 1, width, 0, error) : NULL;
  g_free (w);
  g_free (b);
  return norm->bias != NULL;
}

static gboolean
bind_linear (CnclipModel *model, CnclipLinear *linear, const char *prefix, gint64 n_out,
    gint64 n_in, gboolean has_bias, CnclipActivation act, GError **error)
{
  char *w = g_strconcat (prefix, ".weight", NULL), *b = g_strconcat (prefix, ".bias", NULL);
  linear->n_out = (int) n_out;
  linear->n_in = (int) n_in;
  linear->act = act;
  linear->weight = bind (model, w, 2, n_out, n_in, error);
  if (linear->weight && has_bias)
    linear->bias = bind (model, b, 1, n_out, 0, error);
  g_free (w);
  g_free (b);
  return linear->weight != NULL && (!has_bias || linear->bias != NULL);
}

/* Three tensors in place back to back (views of one in_proj storage)? */
static gboolean
adjacent (const CnclipTensorInfo *const *t)
{
  for (int i = 0; i < 3; i++) {
    if (!usable_in_place (t[i]))
      return FALSE;
  }
  const gsize bytes = (gsize) t[0]->n_elements * sizeof (float);
  return t[1]->data == t[0]->data + bytes && t[2]->data == t[1]->data + bytes;
}

static const float *
fuse3 (CnclipModel *model, const CnclipTensorInfo *const *t, const char *what, GError **error)
{
  if (adjacent (t))
    return (const float *) t[0]->data;
  const gint64 n = t[0]->n_elements;
  float *out = owned_alloc (model, 3 * n, what, error);
  if (out == NULL)
    return NULL;
  for (int i = 0; i < 3; i++) {
    if (t[i]->dtype == CNCLIP_DTYPE_F32 && t[i]->contiguous) {
      cnclip_weight_file_read (model->weights, t[i]->data, (gsize) n * sizeof (float), out + i * n);
      continue;
    }
    if (!cnclip_tensor_to_f32 (t[i], out + i * n, error))
      return NULL;
    release_source (model, t[i]);
  }
  return out;
}

/* q, k, v (in this order) of one layer -> one [3W, W] linear. */
static gboolean
bind_qkv (CnclipModel *model, CnclipLinear *linear, const char *prefix,
    const char *const names[3], gint64 width, GError **error)
{
  const CnclipTensorInfo *w[3], *b[3];
  const gint64 wshape[2] = { width, width }, bshape[1] = { width };
  for (int i = 0; i < 3; i++) {
    char *wn = g_strdup_printf ("%s.%s.weight", prefix, names[i]);
    char *bn = g_strdup_printf ("%s.%s.bias", prefix, names[i]);
    w[i] = find_tensor (model, wn, 2, wshape, error);
    b[i] = w[i] ? find_tensor (model, bn, 1, bshape, error) : NULL;
    g_free (wn);
    g_free (bn);
    if (b[i] == NULL)
      return FALSE;
  }
  linear->n_out = (int) (3 * width);
  linear->n_in = (int) width;
  linear->act = CNCLIP_ACT_NONE;
  linear->weight = fuse3 (model, w, prefix, error);
  linear->bias = linear->weight ? fuse3 (model, b, prefix, error) : NULL;
  return linear->bias != NULL;
}

static gboolean
bind_vision (CnclipModel *model, GError **error)
{
  const CnclipVisionConfig *c = &model->config.vision;
  const gint64 W = c->hidden_size, p = c->patch_size;
  const gint64 tokens = cnclip_model_vision_tokens (model);

  /* The conv with stride = kernel is a linear map of each flattened
   * [C, p, p] patch: the weight [W, C, p, p] is already [W, C*p*p]. */
  const gint64 conv_shape[4] = { W, c->num_channels, p, p };
  const CnclipTensorInfo *conv = find_tensor (model,
      "vision_model.embeddings.patch_embedding.weight", 4, conv_shape, error);
  if (conv == NULL)
    return FALSE;
  model->patch_embed.n_out = (int) W;
  model->patch_embed.n_in = (int) (c->num_channels * p * p);
  model->patch_embed.bias = NULL;
  model->patch_embed.act = CNCLIP_ACT_NONE;
  model->patch_embed.weight = tensor_floats (model, conv, error);
  if (model->patch_embed.weight == NULL)
    return FALSE;

  model->class_embedding = bind (model, "vision_model.embeddings.class_embedding", 1, W, 0, error);
  if (model->class_embedding == NULL)
    return FALSE;
  model->vision_pos_embed = bind (model, "vision_model.embeddings.position_embedding.weight", 2,
      tokens, W, error);
  if (model->vision_pos_embed == NULL
      || !bind_norm (model, &model->pre_ln, "vision_model.pre_layrnorm", W, error))
    return FALSE;

  static const char *const qkv[3] = { "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj" };
  model->vision_layers = g_new0 (CnclipVisionLayer, c->num_layers);
  for (int i = 0; i < c->num_layers; i++) {
    CnclipVisionLayer *l = &model->vision_layers[i];
    char *pre = g_strdup_printf ("vision_model.encoder.layers.%d", i);
    char *n1 = g_strconcat (pre, ".layer_norm1", NULL);
    char *n2 = g_strconcat (pre, ".layer_norm2", NULL);
    char *o = g_strconcat (pre, ".self_attn.out_proj", NULL);
    char *f1 = g_strconcat (pre, ".mlp.fc1", NULL), *f2 = g_strconcat (pre, ".mlp.fc2", NULL);
    gboolean ok = bind_norm (model, &l->ln1, n1, W, error)
        && bind_qkv (model, &l->qkv, pre, qkv, W, error)
        && bind_linear (model, &l->out_proj, o, W, W, TRUE, CNCLIP_ACT_NONE, error)
        && bind_norm (model, &l->ln2, n2, W, error)
        && bind_linear (model, &l->fc1, f1, c->intermediate_size, W, TRUE, c->act, error)
        && bind_linear (model, &l->fc2, f2, W, c->intermediate_size, TRUE, CNCLIP_ACT_NONE, error);
    g_free (pre);
    g_free (n1);
    g_free (n2);
    g_free (o);
    g_free (f1);
    g_free (f2);
    if (!ok)
      return FALSE;
  }
  return bind_norm (model, &model->post_ln, "vision_model.post_layernorm", W, error)
      && bind_linear (model, &model->visual_projection, "visual_projection",
          model->config.projection_dim, W, FALSE, CNCLIP_ACT_NONE, error);
}

static gboolean
bind_text (CnclipModel *model, GError **error)
{
  const CnclipTextConfig *c = &model->config.text;
  const gint64 H = c->hidden_size;

  model->word_embeddings = bind (model, "text_model.embeddings.word_embeddings.weight", 2,
      c->vocab_size, H, error);
  if (model->word_embeddings == NULL)
    return FALSE;
  model->text_pos_embed = bind (model, "text_model.embeddings.position_embeddings.weight", 2,
      c->max_position_embeddings, H, error);
  if (model->text_pos_embed == NULL)
    return FALSE;
  model->token_type_embed = bind (model, "text_model.embeddings.token_type_embeddings.weight", 2,
      c->type_vocab_size, H, error);
  if (model->token_type_embed == NULL
      || !bind_norm (model, &model->embed_ln, "text_model.embeddings.LayerNorm", H, error))
    return FALSE;

  static const char *const qkv[3] = { "query", "key", "value" };
  model->text_layers = g_new0 (CnclipTextLayer, c->num_layers);
  for (int i = 0; i < c->num_layers; i++) {
    CnclipTextLayer *l = &model->text_layers[i];
    char *pre = g_strdup_printf ("text_model.encoder.layer.%d", i);
    char *self = g_strconcat (pre, ".attention.self", NULL);
    char *ao = g_strconcat (pre, ".attention.output.dense", NULL);
    char *aln = g_strconcat (pre, ".attention.output.LayerNorm", NULL);
    char *in = g_strconcat (pre, ".intermediate.dense", NULL);
    char *out = g_strconcat (pre, ".output.dense", NULL);
    char *oln = g_strconcat (pre, ".output.LayerNorm", NULL);
    gboolean ok = bind_qkv (model, &l->qkv, self, qkv, H, error)
        && bind_linear (model, &l->attn_out, ao, H, H, TRUE, CNCLIP_ACT_NONE, error)
        && bind_norm (model, &l->attn_ln, aln, H, error)
        && bind_linear (model, &l->intermediate, in, c->intermediate_size, H, TRUE, c->act, error)
        && bind_linear (model, &l->output, out, H, c->intermediate_size, TRUE, CNCLIP_ACT_NONE,
            error)
        && bind_norm (model, &l->out_ln, oln, H, error);
    g_free (pre);
    g_free (self);
    g_free (ao);
    g_free (aln);
    g_free (in);
    g_free (out);
    g_free (oln);
    if (!ok)
      return FALSE;
  }
  return bind_linear (model, &model->text_projection, "text_projection",
      model->config.projection_dim, H, FALSE, CNCLIP_ACT_NONE, error);
}

static gboolean
bind_logit_scale (CnclipModel *model, GError **error)
{
  const CnclipTensorInfo *info = cnclip_weight_file_lookup (model->weights, "logit_scale");
  const gint64 one = 1;
  /* Accept [] (transformers) and [1] (some converters). */
  if (info == NULL || info->ndim != 1)
    info = find_tensor (model, "logit_scale", 0, NULL, error);
  else
    info = find_tensor (model, "logit_scale", 1, &one, error);
  if (info == NULL)
    return FALSE;
  model->logit_scale = cnclip_tensor_get_float (info, 0);
  model->logit_scale_exp = expf (model->logit_scale);
  if (!isfinite (model->logit_scale_exp)) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT,
        "%s: logit_scale %g gives a non-finite exp()", model->weights_path,
        (double) model->logit_scale);
    return FALSE;
  }
  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* Backend preparation                                                      */

/* Every linear layer of the model, in a fixed order. */
static GPtrArray *
collect_linears (CnclipModel *model)
{
  GPtrArray *all = g_ptr_array_new ();
  if (model->has_vision) {
    g_ptr_array_add (all, &model->patch_embed);
    for (int i = 0; model->vision_layers && i < model->config.vision.num_layers; i++) {
      CnclipVisionLayer *l = &model->vision_layers[i];
      g_ptr_array_add (all, &l->qkv);
      g_ptr_array_add (all, &l->out_proj);
      g_ptr_array_add (all, &l->fc1);
      g_ptr_array_add (all, &l->fc2);
    }
    g_ptr_array_add (all, &model->visual_projection);
  }
  if (model->has_text) {
    for (int i = 0; model->text_layers && i < model->config.text.num_layers; i++) {
      CnclipTextLayer *l = &model->text_layers[i];
      g_ptr_array_add (all, &l->qkv);
      g_ptr_array_add (all, &l->attn_out);
      g_ptr_array_add (all, &l->intermediate);
      g_ptr_array_add (all, &l->output);
    }
    g_ptr_array_add (all, &model->text_projection);
  }
  return all;
}

static gboolean
prepare_linears (CnclipModel *model, GError **error)
{
  const CnclipBackendOps *ops = model->backend->ops;
  GPtrArray *all = collect_linears (model);
  gboolean ok = TRUE;
  for (guint i = 0; i < all->len && ok; i++) {
    CnclipLinear *linear = g_ptr_array_index (all, i);
    ok = ops->linear_prepare (model->backend, linear, error);
    if (!ok || !ops->releases_source || linear->weight == NULL)
      continue;
    /* The backend keeps its own copy. A weight may be shared by no other
     * linear, so its source can go: owned buffers are freed (and the
     * pointer cleared, so a stray use fails loudly), mapped pages dropped. */
    if (is_owned (model, linear->weight)) {
      g_ptr_array_remove_fast (model->owned, (gpointer) linear->weight);
    } else {
      cnclip_weight_file_release (model->weights, linear->weight,
          (gsize) linear->n_out * linear->n_in * sizeof (float));
    }
    linear->weight = NULL;
  }
  g_ptr_array_unref (all);
  return ok;
}

/* ------------------------------------------------------------------------ */
/* Loading                                                                  */

static void
model_free (CnclipModel *model)
{
  if (model->backend) {
    GPtrArray *all = collect_linears (model);
    for (guint i = 0; i < all->len; i++) {
      CnclipLinear *linear = g_ptr_array_index (all, i);
      if (linear->packed)
        model->backend->ops->linear_free (model->backend, linear);
    }
    g_ptr_array_unref (all);
    cnclip_backend_free (model->backend);
  }
  g_free (model->vision_layers);
  g_free (model->text_layers);
  if (model->owned)
    g_ptr_array_unref (model->owned);
  cnclip_weight_file_free (model->weights);
  cnclip_tokenizer_free (model->tokenizer);
  g_free (model->path);
  g_free (model->name);
  g_free (model->weights_path);
  g_free (model);
}

static int
compare_names (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

/* The weights file to load: @explicit (absolute or relative to @dir), else
 * model.safetensors, pytorch_model.bin, or the only *.pt in @dir. */
static char *
find_weights (const char *dir, const char *explicit, GError **error)
{
  if (explicit && *explicit)
    return g_path_is_absolute (explicit) ? g_strdup (explicit)
        : g_build_filename (dir, explicit, NULL);

  static const char *const names[] = { "model.safetensors", "pytorch_model.bin" };
  for (gsize i = 0; i < G_N_ELEMENTS (names); i++) {
    char *path = g_build_filename (dir, names[i], NULL);
    if (g_file_test (path, G_FILE_TEST_EXISTS))
      return path;
    g_free (path);
  }

  GDir *d = g_dir_open (dir, 0, NULL);
  GPtrArray *pts = g_ptr_array_new_with_free_func (g_free);
  const char *name;
  while (d && (name = g_dir_read_name (d))) {
    char *path = g_build_filename (dir, name, NULL);
    if (g_str_has_suffix (name, ".pt") && g_file_test (path, G_FILE_TEST_IS_REGULAR))
      g_ptr_array_add (pts, g_strdup (name));
    g_free (path);
  }
  if (d)
    g_dir_close (d);

  char *found = NULL;
  if (pts->len == 1) {
    found = g_build_filename (dir, g_ptr_array_index (pts, 0), NULL);
  } else if (pts->len > 1) {
    g_ptr_array_sort (pts, compare_names);
    g_ptr_array_add (pts, NULL);
    char *list = g_strjoinv (", ", (char **) pts->pdata);
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO,
        "%s: several checkpoints (%s): name one with weights_file", dir, list);
    g_free (list);
  } else {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO,
        "%s: no weights file (looked for model.safetensors, pytorch_model.bin, *.pt)", dir);
  }
  g_ptr_array_unref (pts);
  return found;
}

/* Opens by content, not by name: zip (PK\3\4) is a PyTorch checkpoint. */
static CnclipWeightFile *
open_weights (const char *path, GError **error)
{
  guint8 magic[4] = { 0 };
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t got = read (fd, magic, sizeof (magic));
    (void) got;
    close (fd);
  }
  if (memcmp (magic, "PK\3\4", 4) == 0)
    return cnclip_torch_open (path, error);
  return cnclip_safetensors_open (path, error);
}

CnclipModel *
cnclip_model_load (const char *model_dir, const CnclipModelParams *params, GError **error)
{
  g_return_val_if_fail (model_dir != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  CnclipModelParams p = params ? *params : cnclip_model_default_params ();
  if (!p.load_vision && !p.load_text) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT,
        "%s: nothing to load (load_vision and load_text are both FALSE)", model_dir);
    return NULL;
  }
  if (!g_file_test (model_dir, G_FILE_TEST_IS_DIR)) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO, "%s: no such model directory",
        model_dir);
    return NULL;
  }

  CnclipModel *model = g_new0 (CnclipModel, 1);
  model->ref_count = 1;
  model->path = g_canonicalize_filename (model_dir, NULL);
  model->name = g_path_get_basename (model->path);
  model->owned = g_ptr_array_new_with_free_func (free);
  model->has_vision = p.load_vision;
  model->has_text = p.load_text;

  if (!cnclip_config_load (model_dir, &model->config, error))
    goto fail;
  if (p.context_length != 0) {
    if (p.context_length < 2 || p.context_length > model->config.text.max_position_embeddings) {
      g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT,
          "context length %d is outside [2, %d] (max_position_embeddings)", p.context_length,
          model->config.text.max_position_embeddings);
      goto fail;
    }
    model->config.context_length = p.context_length;
  }

  /* Fail fast on a backend/precision that cannot work, before reading GBs. */
  model->backend = cnclip_backend_new (p.backend, p.precision, error);
  if (model->backend == NULL)
    goto fail;

  if (p.load_text) {
    char *vocab = g_build_filename (model_dir, "vocab.txt", NULL);
    if (!g_file_test (vocab, G_FILE_TEST_EXISTS)) {
      g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_VOCAB,
          "%s: missing (the text tower needs the vocabulary)", vocab);
      g_free (vocab);
      goto fail;
    }
    model->tokenizer = cnclip_tokenizer_load (vocab, error);
    if (model->tokenizer
        && cnclip_tokenizer_get_vocab_size (model->tokenizer) > model->config.text.vocab_size) {
      /* Ids beyond the embedding table would read outside it. */
      g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_VOCAB,
          "%s: %d entries, but config.json text_config.vocab_size is %d", vocab,
          cnclip_tokenizer_get_vocab_size (model->tokenizer), model->config.text.vocab_size);
      g_clear_pointer (&model->tokenizer, cnclip_tokenizer_free);
    }
    g_free (vocab);
    if (model->tokenizer == NULL)
      goto fail;
  }

  model->weights_path = find_weights (model_dir, p.weights_file, error);
  if (model->weights_path == NULL)
    goto fail;
  model->weights = open_weights (model->weights_path, error);
  if (model->weights == NULL)
    goto fail;

  if (!bind_logit_scale (model, error)
      || (p.load_vision && !bind_vision (model, error))
      || (p.load_text && !bind_text (model, error))
      || !prepare_linears (model, error))
    goto fail;

  p.weights_file = model->weights_path;
  p.backend = model->backend->ops->kind;
  p.context_length = model->config.context_length;
  model->params = p;
  return model;

fail:
  model_free (model);
  return NULL;
}

CnclipModel *
cnclip_model_ref (CnclipModel *model)
{
  g_return_val_if_fail (model != NULL, NULL);
  g_atomic_int_inc (&model->ref_count);
  return model;
}

void
cnclip_model_unref (CnclipModel *model)
{
  if (model == NULL)
    return;
  if (g_atomic_int_dec_and_test (&model->ref_count))
    model_free (model);
}

/* ------------------------------------------------------------------------ */
/* Getters                                                                  */

const char *
cnclip_model_get_name (const CnclipModel *model)
{
  g_return_val_if_fail (model != NULL, NULL);
  return model->name;
}

const char *
cnclip_model_get_path (const CnclipModel *model)
{
  g_return_val_if_fail (model != NULL, NULL);
  return model->path;
}

const char *
cnclip_model_get_weights_path (const CnclipModel *model)
{
  g_return_val_if_fail (model != NULL, NULL);
  return model->weights_path;
}

int
cnclip_model_get_projection_dim (const CnclipModel *model)
{
  g_return_val_if_fail (model != NULL, 0);
  return model->config.projection_dim;
}

int
cnclip_model_get_image_size (const CnclipModel *model)
{
  g_return_val_if_fail (model != NULL, 0);
  return model->config.vision.image_size;
}

int
cnclip_model_get_context_length (const CnclipModel *model)
{
  g_return_val_if_fail (model != NULL, 0);
  return model->config.context_length;
}

float
cnclip_model_get_logit_scale (const CnclipModel *model)
{
  g_return_val_if_fail (model != NULL, 0.0f);
  return model->logit_scale_exp;
}

CnclipBackendKind
cnclip_model_get_backend (const CnclipModel *model)
{
  g_return_val_if_fail (model != NULL, CNCLIP_BACKEND_AUTO);
  return model->params.backend;
}

CnclipPrecision
cnclip_model_get_precision (const CnclipModel *model)
{
  g_return_val_if_fail (model != NULL, CNCLIP_PRECISION_FP32);
  return model->params.precision;
}

gboolean
cnclip_model_has_vision (const CnclipModel *model)
{
  g_return_val_if_fail (model != NULL, FALSE);
  return model->has_vision;
}

gboolean
cnclip_model_has_text (const CnclipModel *model)
{
  g_return_val_if_fail (model != NULL, FALSE);
  return model->has_text;
}

const CnclipTokenizer *
cnclip_model_get_tokenizer (const CnclipModel *model)
{
  g_return_val_if_fail (model != NULL, NULL);
  return model->tokenizer;
}

int
cnclip_model_vision_tokens (const CnclipModel *model)
{
  g_return_val_if_fail (model != NULL, 0);
  const int side = model->config.vision.image_size / model->config.vision.patch_size;
  return side * side + 1;
}

/* ------------------------------------------------------------------------ */
/* Pixels                                                                   */

void
cnclip_model_normalize_pixels (const CnclipModel *model, const guint8 *rgb, float *pixel_values)
{
  g_return_if_fail (model != NULL && rgb != NULL && pixel_values != NULL);
  const gsize plane = (gsize) model->config.vision.image_size * model->config.vision.image_size;
  /* FIXTURES.md 2 step 3 in float32, in this order; a table per channel
   * holds exactly those values (no reciprocal, so results are bit-exact). */
  float table[3][256];
  for (int c = 0; c < 3; c++) {
    const float mean = model->config.image_mean[c], std = model->config.image_std[c];
    for (int u = 0; u < 256; u++) {
      float x = (float) u / 255.0f;
      x = x - mean;
      table[c][u] = x / std;
    }
  }
  float *r = pixel_values, *g = r + plane, *b = g + plane;
  for (gsize i = 0; i < plane; i++) {
    r[i] = table[0][rgb[3 * i]];
    g[i] = table[1][rgb[3 * i + 1]];
    b[i] = table[2][rgb[3 * i + 2]];
  }
}

gboolean
cnclip_model_preprocess (const CnclipModel *model, const CnclipImage *image,
    float *pixel_values, GError **error)
{
  g_return_val_if_fail (model != NULL, FALSE);
  g_return_val_if_fail (image != NULL, FALSE);
  g_return_val_if_fail (pixel_values != NULL, FALSE);

  const int size = model->config.vision.image_size;
  const int w = image->width, h = image->height;
  if (w <= 0 || h <= 0 || image->planes[0] == NULL) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT,
        "image of %dx%d pixels (or without data)", w, h);
    return FALSE;
  }
  const gsize rgb_stride = (gsize) w * 3;
  const gboolean packed_rgb = image->format == CNCLIP_PIXEL_RGB && image->strides[0] > 0
      && (gsize) image->strides[0] >= rgb_stride;

  if (packed_rgb && w == size && h == size && (gsize) image->strides[0] == rgb_stride) {
    cnclip_model_normalize_pixels (model, image->planes[0], pixel_values);
    return TRUE;
  }

  guint8 *resized = g_try_malloc ((gsize) size * size * 3);
  guint8 *rgb = NULL;
  gboolean ok = FALSE;
  if (resized == NULL)
    goto nomem;
  const guint8 *src = image->planes[0];
  int src_stride = image->strides[0];
  if (!packed_rgb) {
    /* Converted to packed RGB first (PIL convert("RGB") before resize). */
    if (rgb_stride > G_MAXINT) {
      g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT, "image too wide (%d)", w);
      goto out;
    }
    if ((rgb = g_try_malloc (rgb_stride * (gsize) h)) == NULL)
      goto nomem;
    if (!cnclip_image_to_rgb (image, rgb, error))
      goto out;
    src = rgb;
    src_stride = (int) rgb_stride;
  }
  if (!cnclip_image_resize_rgb (src, w, h, src_stride, resized, size, size, error))
    goto out;
  cnclip_model_normalize_pixels (model, resized, pixel_values);
  ok = TRUE;
  goto out;

nomem:
  g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_NOMEM,
      "cannot allocate an RGB buffer for a %dx%d image", w, h);
out:
  g_free (rgb);
  g_free (resized);
  return ok;
}

/* ------------------------------------------------------------------------ */
/* Saving                                                                   */

static gboolean
write_all (int fd, const void *data, gsize size, const char *path, GError **error)
{
  const guint8 *p = data;
  while (size > 0) {
    ssize_t n = write (fd, p, MIN (size, (gsize) 1 << 30));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      int e = n < 0 ? errno : ENOSPC;
      g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO, "%s: write failed: %s", path,
          g_strerror (e));
      return FALSE;
    }
    p += n;
    size -= (gsize) n;
  }
  return TRUE;
}

static char *
safetensors_header (GArray *specs, const CnclipTensorInfo **infos)
{
  GString *h = g_string_new ("{\"__metadata__\":{\"format\":\"pt\"}");
  gint64 offset = 0;
  for (guint i = 0; i < specs->len; i++) {
    const CnclipTensorSpec *spec = &g_array_index (specs, CnclipTensorSpec, i);
    g_string_append_printf (h, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[", spec->name);
    for (int k = 0; k < spec->ndim; k++)
      g_string_append_printf (h, k ? ",%" G_GINT64_FORMAT : "%" G_GINT64_FORMAT, spec->shape[k]);
    gint64 end = offset + infos[i]->n_elements * 4;
    g_string_append_printf (h, "],\"data_offsets\":[%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT "]}",
        offset, end);
    offset = end;
  }
  g_string_append_c (h, '}');
  /* Pad with spaces so the data section starts 8-byte aligned. */
  while ((8 + h->len) % 8 != 0)
    g_string_append_c (h, ' ');
  return g_string_free (h, FALSE);
}

gboolean
cnclip_model_save_safetensors (const CnclipModel *model, const char *path, GError **error)
{
  g_return_val_if_fail (model != NULL, FALSE);
  g_return_val_if_fail (path != NULL, FALSE);

  struct stat st;
  if (stat (path, &st) == 0 && !S_ISREG (st.st_mode)) {
    /* Never replace a device, directory or pipe by renaming over it. */
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO, "%s: exists and is not a regular file",
        path);
    return FALSE;
  }

  GArray *specs = cnclip_model_tensor_specs (&model->config, model->has_vision, model->has_text);
  const CnclipTensorInfo **infos = g_new0 (const CnclipTensorInfo *, specs->len);
  char *header = NULL, *tmp = NULL;
  float *buffer = NULL;
  gsize buffer_len = 0;
  int fd = -1;
  gboolean ok = FALSE;

  /* Source tensors carry HF names (torch checkpoints are mapped on open);
   * the model loaded from them, so they are all there and float. */
  for (guint i = 0; i < specs->len; i++) {
    const char *name = g_array_index (specs, CnclipTensorSpec, i).name;
    infos[i] = cnclip_weight_file_lookup (model->weights, name);
    if (infos[i] == NULL || !cnclip_dtype_is_float (infos[i]->dtype)) {
      g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_MISSING_TENSOR,
          "%s: tensor %s is missing", model->weights_path, name);
      goto out;
    }
  }

  header = safetensors_header (specs, infos);
  tmp = g_strdup_printf ("%s.tmp-XXXXXX", path);
  fd = g_mkstemp_full (tmp, O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) {
    int e = errno;
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO, "%s: cannot create: %s", path,
        g_strerror (e));
    g_clear_pointer (&tmp, g_free);
    goto out;
  }
  guint64 header_len = GUINT64_TO_LE ((guint64) strlen (header));
  if (!write_all (fd, &header_len, 8, path, error)
      || !write_all (fd, header, strlen (header), path, error))
    goto out;
  for (guint i = 0; i < specs->len; i++) {
    const CnclipTensorInfo *info = infos[i];
    gsize bytes = (gsize) info->n_elements * sizeof (float);
    if (info->dtype == CNCLIP_DTYPE_F32 && info->contiguous) {
      /* Through a small buffer with pread: the mapping's pages are not
       * faulted in, so saving the real model stays far below its size. */
      const gsize chunk = 4 << 20;
      if (buffer_len < chunk) {
        g_free (buffer);
        buffer = g_malloc (chunk);
        buffer_len = chunk;
      }
      for (gsize done = 0; done < bytes; done += chunk) {
        gsize n = MIN (chunk, bytes - done);
        cnclip_weight_file_read (model->weights, info->data + done, n, buffer);
        if (!write_all (fd, buffer, n, path, error))
          goto out;
      }
      continue;
    }
    /* Converted (F16, BF16, F64) or strided: one tensor at a time. */
    if (bytes > buffer_len) {
      g_free (buffer);
      buffer = g_try_malloc (bytes);
      buffer_len = buffer ? bytes : 0;
      if (buffer == NULL) {
        g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_NOMEM,
            "cannot allocate %" G_GSIZE_FORMAT " bytes to convert %s", bytes, info->name);
        goto out;
      }
    }
    if (!cnclip_tensor_to_f32 (info, buffer, error) || !write_all (fd, buffer, bytes, path, error))
      goto out;
  }
  if (fsync (fd) != 0 && errno != EINVAL) {
    int e = errno;
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO, "%s: %s", path, g_strerror (e));
    goto out;
  }
  int rc = close (fd);
  fd = -1;
  if (rc != 0) {
    int e = errno;
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO, "%s: %s", path, g_strerror (e));
    goto out;
  }
  if (g_rename (tmp, path) != 0) {
    int e = errno;
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO, "%s: cannot rename into place: %s", path,
        g_strerror (e));
    goto out;
  }
  g_clear_pointer (&tmp, g_free);
  ok = TRUE;

out:
  if (fd >= 0)
    close (fd);
  if (tmp) {
    g_unlink (tmp);
    g_free (tmp);
  }
  g_free (buffer);
  g_free (header);
  g_free (infos);
  g_array_unref (specs);
  return ok;
}
