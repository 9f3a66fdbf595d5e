/* clipprompts.c: see clipprompts.h. */
#include "clipprompts.h"

#include <string.h>

gchar **
clip_prompts_parse (const gchar *contents, gsize length, GError **error)
{
  GPtrArray *out = g_ptr_array_new_with_free_func (g_free);
  const gchar *p = contents, *end = contents + length;
  guint line = 0;

  g_return_val_if_fail (contents != NULL || length == 0, NULL);

  if (length >= 3 && memcmp (p, "\xef\xbb\xbf", 3) == 0)
    p += 3;
  while (p < end) {
    const gchar *nl = memchr (p, '\n', end - p);
    const gchar *line_end = nl ? nl : end;
    const gchar *bad;
    gchar *prompt;

    line++;
    /* NUL bytes count as invalid too: they would silently cut the prompt. */
    if (!g_utf8_validate_len (p, line_end - p, &bad)) {
      g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_UTF8,
                   "line %u: invalid UTF-8 at byte %" G_GSIZE_FORMAT " of the line", line,
                   (gsize)(bad - p));
      g_ptr_array_unref (out);
      return NULL;
    }
    prompt = g_strstrip (g_strndup (p, line_end - p));
    if (prompt[0] == '\0' || prompt[0] == '#') {
      g_free (prompt);
    } else if (out->len >= CLIP_PROMPTS_MAX_COUNT) {
      g_free (prompt);
      g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_TOO_LARGE, "more than %u prompts",
                   CLIP_PROMPTS_MAX_COUNT);
      g_ptr_array_unref (out);
      return NULL;
    } else {
      g_ptr_array_add (out, prompt);
    }
    p = nl ? nl + 1 : end;
  }
  g_ptr_array_add (out, NULL);
  return (gchar **)g_ptr_array_free (out, FALSE);
}

gchar **
clip_prompts_read_file (const gchar *path, GError **error)
{
  GMappedFile *file;
  GError *local = NULL;
  gchar **prompts;
  gsize length;

  file = g_mapped_file_new (path, FALSE, error);
  if (file == NULL)
    return NULL;
  length = g_mapped_file_get_length (file);
  if (length > CLIP_PROMPTS_MAX_FILE_SIZE) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_TOO_LARGE,
                 "%s: %" G_GSIZE_FORMAT " bytes, more than the %u a prompts file may have", path,
                 length, CLIP_PROMPTS_MAX_FILE_SIZE);
    g_mapped_file_unref (file);
    return NULL;
  }
  prompts = clip_prompts_parse (g_mapped_file_get_contents (file), length, &local);
  g_mapped_file_unref (file);
  if (prompts == NULL) {
    g_propagate_prefixed_error (error, local, "%s: ", path);
    return NULL;
  }
  return prompts;
}

gchar *
clip_prompts_apply_template (const gchar *tmpl, const gchar *prompt)
{
  GString *out = g_string_new (NULL);
  const gchar *p = tmpl, *hole;

  while ((hole = strstr (p, "{}")) != NULL) {
    g_string_append_len (out, p, hole - p);
    g_string_append (out, prompt);
    p = hole + 2;
  }
  g_string_append (out, p);
  return g_string_free (out, FALSE);
}

ClipPromptSpec *
clip_prompt_spec_new (const gchar *const *prompts, const gchar *prompts_file,
                      const gchar *template_, const gchar *const *negatives)
{
  ClipPromptSpec *spec = g_new0 (ClipPromptSpec, 1);

  spec->prompts = g_strdupv ((gchar **)prompts);
  spec->prompts_file = g_strdup (prompts_file);
  spec->template_ = g_strdup (template_ ? template_ : "{}");
  spec->negatives = g_strdupv ((gchar **)negatives);
  return spec;
}

void
clip_prompt_spec_free (ClipPromptSpec *spec)
{
  if (spec == NULL)
    return;
  g_strfreev (spec->prompts);
  g_free (spec->prompts_file);
  g_free (spec->template_);
  g_strfreev (spec->negatives);
  g_free (spec);
}

static void
prompt_set_clear (ClipPromptSet *set)
{
  g_strfreev (set->labels);
  g_strfreev (set->negatives);
  g_strfreev (set->truncated);
  g_free (set->template_);
  g_free (set->embeds);
}

ClipPromptSet *
clip_prompt_set_ref (ClipPromptSet *set)
{
  return g_atomic_rc_box_acquire (set);
}

void
clip_prompt_set_unref (ClipPromptSet *set)
{
  if (set != NULL)
    g_atomic_rc_box_release_full (set, (GDestroyNotify)prompt_set_clear);
}

/* Appends the non-blank entries of @src (trimmed) to @dst. */
static void
append_prompts (GPtrArray *dst, const gchar *const *src)
{
  for (; src && *src; src++) {
    gchar *p = g_strstrip (g_strdup (*src));
    if (p[0] != '\0')
      g_ptr_array_add (dst, p);
    else
      g_free (p);
  }
}

static gchar **
steal_strv (GPtrArray *array)
{
  g_ptr_array_add (array, NULL);
  return (gchar **)g_ptr_array_free (array, FALSE);
}

ClipPromptSet *
clip_prompt_set_build (CnclipContext *ctx, const ClipPromptSpec *spec, guint generation,
                       GError **error)
{
  CnclipModel *model;
  const CnclipTokenizer *tokenizer;
  GPtrArray *labels = NULL, *negatives = NULL, *truncated = NULL;
  ClipPromptSet *set = NULL;
  gint32 *ids = NULL;
  float *embeds = NULL;
  const gchar *tmpl;
  int ctx_len, dim;
  guint n;
  gint64 t0;

  g_return_val_if_fail (ctx != NULL, NULL);
  g_return_val_if_fail (spec != NULL, NULL);

  tmpl = spec->template_ ? spec->template_ : "{}";
  if (strstr (tmpl, "{}") == NULL) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT,
                 "prompt-template \"%s\" has no {} where the prompt goes", tmpl);
    return NULL;
  }

  labels = g_ptr_array_new_with_free_func (g_free);
  negatives = g_ptr_array_new_with_free_func (g_free);
  truncated = g_ptr_array_new_with_free_func (g_free);
  append_prompts (labels, (const gchar *const *)spec->prompts);
  if (spec->prompts_file && spec->prompts_file[0]) {
    gchar **from_file = clip_prompts_read_file (spec->prompts_file, error);
    if (from_file == NULL)
      goto out;
    append_prompts (labels, (const gchar *const *)from_file);
    g_strfreev (from_file);
  }
  append_prompts (negatives, (const gchar *const *)spec->negatives);
  n = labels->len + negatives->len;
  if (n > CLIP_PROMPTS_MAX_COUNT) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_TOO_LARGE,
                 "%u prompts, more than the %u allowed", n, CLIP_PROMPTS_MAX_COUNT);
    goto out;
  }

  model = cnclip_context_get_model (ctx);
  tokenizer = cnclip_model_get_tokenizer (model);
  ctx_len = cnclip_model_get_context_length (model);
  dim = cnclip_model_get_projection_dim (model);
  if (tokenizer == NULL || ctx_len < 2 || dim <= 0) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_UNSUPPORTED,
                 "the model has no text tower to encode prompts with");
    goto out;
  }

  t0 = g_get_monotonic_time ();
  if (n > 0) {
    /* Tokenize here rather than in cnclip_encode_texts() to learn which
     * prompts the context length cuts, which the user should hear about. */
    ids = g_new (gint32, (gsize)n * ctx_len);
    for (guint i = 0; i < n; i++) {
      const gchar *prompt = i < labels->len ? labels->pdata[i] : negatives->pdata[i - labels->len];
      gchar *text = clip_prompts_apply_template (tmpl, prompt);
      int n_tokens = 0;
      GError *local = NULL;

      if (!cnclip_tokenizer_encode (tokenizer, text, -1, ctx_len, ids + (gsize)i * ctx_len,
                                    &n_tokens, &local)) {
        g_propagate_prefixed_error (error, local, "prompt \"%s\": ", prompt);
        g_free (text);
        goto out;
      }
      if (n_tokens > ctx_len - 2)
        g_ptr_array_add (truncated, g_strdup (prompt));
      g_free (text);
    }
    embeds = g_new (float, (gsize)n *dim);
    if (!cnclip_encode_token_ids (ctx, ids, n, ctx_len, embeds, error))
      goto out;
    cnclip_l2_normalize (embeds, n, dim);
  }

  set = g_atomic_rc_box_new0 (ClipPromptSet);
  set->generation = generation;
  set->n_labels = labels->len;
  set->labels = steal_strv (labels);
  set->n_negatives = negatives->len;
  set->negatives = steal_strv (negatives);
  set->truncated = steal_strv (truncated);
  labels = negatives = truncated = NULL;
  set->template_ = g_strdup (tmpl);
  set->dim = dim;
  set->embeds = g_steal_pointer (&embeds);
  set->encode_time = (guint64)(g_get_monotonic_time () - t0) * 1000;

out:
  if (labels)
    g_ptr_array_unref (labels);
  if (negatives)
    g_ptr_array_unref (negatives);
  if (truncated)
    g_ptr_array_unref (truncated);
  g_free (ids);
  g_free (embeds);
  return set;
}

struct _ClipPromptEncoder
{
  CnclipContext *ctx;
  GMutex ctx_lock; /* held while ctx encodes */

  GMutex lock; /* protects the fields below */
  GCond cond;
  ClipPromptSpec *pending;
  guint pending_generation;
  gboolean running;
  gboolean quit;
  GThread *thread;

  gint abort; /* atomic */
  ClipPromptEncoderFunc func;
  gpointer user_data;
};

static gboolean
encoder_should_abort (gpointer user_data)
{
  ClipPromptEncoder *enc = user_data;
  return g_atomic_int_get (&enc->abort) != 0;
}

ClipPromptEncoder *
clip_prompt_encoder_new (CnclipModel *model, int n_threads, ClipPromptEncoderFunc func,
                         gpointer user_data, GError **error)
{
  ClipPromptEncoder *enc = g_new0 (ClipPromptEncoder, 1);
  CnclipContextParams cp = cnclip_context_default_params ();

  cp.n_threads = n_threads;
  cp.abort_func = encoder_should_abort;
  cp.abort_user_data = enc;
  enc->ctx = cnclip_context_new (model, &cp, error);
  if (enc->ctx == NULL) {
    g_free (enc);
    return NULL;
  }
  g_mutex_init (&enc->ctx_lock);
  g_mutex_init (&enc->lock);
  g_cond_init (&enc->cond);
  enc->func = func;
  enc->user_data = user_data;
  return enc;
}

ClipPromptSet *
clip_prompt_encoder_build (ClipPromptEncoder *enc, const ClipPromptSpec *spec, guint generation,
                           GError **error)
{
  ClipPromptSet *set;

  g_return_val_if_fail (enc != NULL, NULL);
  g_mutex_lock (&enc->ctx_lock);
  set = clip_prompt_set_build (enc->ctx, spec, generation, error);
  g_mutex_unlock (&enc->ctx_lock);
  return set;
}

static gpointer
encoder_thread (gpointer data)
{
  ClipPromptEncoder *enc = data;

  g_mutex_lock (&enc->lock);
  while (!enc->quit) {
    ClipPromptSpec *spec;
    ClipPromptSet *set;
    GError *error = NULL;
    guint generation;
    gboolean deliver;

    if (enc->pending == NULL) {
      g_cond_wait (&enc->cond, &enc->lock);
      continue;
    }
    spec = g_steal_pointer (&enc->pending);
    generation = enc->pending_generation;
    enc->running = TRUE;
    g_mutex_unlock (&enc->lock);

    set = clip_prompt_encoder_build (enc, spec, generation, &error);
    clip_prompt_spec_free (spec);

    g_mutex_lock (&enc->lock);
    deliver = !enc->quit && enc->pending == NULL;
    g_mutex_unlock (&enc->lock);
    /* Unlocked: the callback posts messages and takes the element's lock. */
    if (deliver)
      enc->func (set, error, generation, enc->user_data);
    clip_prompt_set_unref (set);
    g_clear_error (&error);

    g_mutex_lock (&enc->lock);
    enc->running = FALSE;
    g_cond_broadcast (&enc->cond);
  }
  g_mutex_unlock (&enc->lock);
  return NULL;
}

void
clip_prompt_encoder_request (ClipPromptEncoder *enc, ClipPromptSpec *spec, guint generation)
{
  g_return_if_fail (enc != NULL);
  g_return_if_fail (spec != NULL);

  g_mutex_lock (&enc->lock);
  if (enc->quit) {
    g_mutex_unlock (&enc->lock);
    clip_prompt_spec_free (spec);
    return;
  }
  clip_prompt_spec_free (enc->pending);
  enc->pending = spec;
  enc->pending_generation = generation;
  if (enc->thread == NULL)
    enc->thread = g_thread_new ("clipprompts", encoder_thread, enc);
  g_cond_broadcast (&enc->cond);
  g_mutex_unlock (&enc->lock);
}

void
clip_prompt_encoder_wait_idle (ClipPromptEncoder *enc)
{
  g_return_if_fail (enc != NULL);
  g_mutex_lock (&enc->lock);
  while ((enc->pending != NULL || enc->running) && !enc->quit)
    g_cond_wait (&enc->cond, &enc->lock);
  g_mutex_unlock (&enc->lock);
}

void
clip_prompt_encoder_free (ClipPromptEncoder *enc)
{
  GThread *thread;

  if (enc == NULL)
    return;
  g_atomic_int_set (&enc->abort, 1);
  g_mutex_lock (&enc->lock);
  enc->quit = TRUE;
  g_clear_pointer (&enc->pending, clip_prompt_spec_free);
  thread = g_steal_pointer (&enc->thread);
  g_cond_broadcast (&enc->cond);
  g_mutex_unlock (&enc->lock);
  if (thread)
    g_thread_join (thread);

  cnclip_context_free (enc->ctx);
  g_mutex_clear (&enc->ctx_lock);
  g_mutex_clear (&enc->lock);
  g_cond_clear (&enc->cond);
  g_free (enc);
}
