/* cli-embed.c: `cnclip embed-text`, `cnclip embed-image` and `cnclip classify`.
 *
 * Output contract (JSON Lines on stdout, one line per input, in input order;
 * other tools parse it, so keep it stable):
 *
 *   embed-text:  {"text": "...", "embedding": [P floats]}
 *   embed-image: {"file": "...", "embedding": [P floats]}
 *   classify:    {"file": "...", "labels": [...], "probs": [...], "cosines": [...],
 *                 "logits": [...]}          (arrays in prompt order)
 *
 * Floats are printed with %.9g (they round-trip float32). Embeddings are the
 * projected, unnormalised model outputs unless --normalize is given. Each
 * command loads only the towers it needs.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Options every command shares. */
typedef struct
{
  char *model_dir;
  char *backend;
  char *precision;
  int threads;
  gboolean normalize;
  char *raw;
  int raw_width;
  int raw_height;
  char **rest;                   /* positional arguments */
} CommonOptions;

/* Positional arguments through G_OPTION_REMAINING, which also drops the
 * "--" that lets a text or file name start with '-'. FILENAME types here
 * and below: GOption would convert STRING ones from the locale's charset
 * and refuse Chinese in the C locale; the encoder checks UTF-8 itself. */
#define COMMON_ENTRIES(o) \
  { G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &(o).rest, NULL, NULL }, \
  { "model", 'm', 0, G_OPTION_ARG_FILENAME, &(o).model_dir, "Model directory (required)", "DIR" }, \
  { "backend", 0, 0, G_OPTION_ARG_STRING, &(o).backend, "GEMM backend: auto, onednn, openblas", "B" }, \
  { "precision", 0, 0, G_OPTION_ARG_STRING, &(o).precision, "fp32 (default), bf16, int8", "P" }, \
  { "threads", 0, 0, G_OPTION_ARG_INT, &(o).threads, "Threads (0 = all cores)", "N" }

#define RAW_ENTRY(o) \
  { "raw", 0, 0, G_OPTION_ARG_STRING, &(o).raw, \
    "Read files as packed 8-bit RGB of this size instead of decoding them", "WIDTHxHEIGHT" }

static void
common_clear (CommonOptions *o)
{
  g_free (o->model_dir);
  g_free (o->backend);
  g_free (o->precision);
  g_free (o->raw);
  g_strfreev (o->rest);
}

static int
n_positional (const CommonOptions *o)
{
  return o->rest ? (int) g_strv_length (o->rest) : 0;
}

/* Largest side --raw accepts; larger files are not images we would resize. */
#define MAX_RAW_SIDE 32768

static gboolean
parse_raw (CommonOptions *o, GError **error)
{
  if (o->raw == NULL)
    return TRUE;
  char *end = NULL;
  gint64 w = g_ascii_strtoll (o->raw, &end, 10);
  gint64 h = 0;
  if (end && (*end == 'x' || *end == 'X')) {
    const char *rest = end + 1;
    h = g_ascii_strtoll (rest, &end, 10);
    if (end == rest)
      h = 0;
  }
  if (end == NULL || *end != '\0' || w < 1 || h < 1 || w > MAX_RAW_SIDE || h > MAX_RAW_SIDE) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT,
        "--raw needs WIDTHxHEIGHT with sides 1..%d, not '%s'", MAX_RAW_SIDE, o->raw);
    return FALSE;
  }
  o->raw_width = (int) w;
  o->raw_height = (int) h;
  return TRUE;
}

static gboolean
check_threads (const CommonOptions *o, GError **error)
{
  if (o->threads < 0) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT,
        "--threads must be 0 (all cores) or more, not %d", o->threads);
    return FALSE;
  }
  return TRUE;
}

static CnclipContext *
new_context (CnclipModel *model, const CommonOptions *o, GError **error)
{
  CnclipContextParams params = cnclip_context_default_params ();
  params.n_threads = o->threads;
  return cnclip_context_new (model, &params, error);
}

/* Writes @line and a newline to stdout, flushed so a consumer sees each
 * result as soon as it exists. */
static gboolean
emit_line (GString *line, GError **error)
{
  g_string_append_c (line, '\n');
  if (fwrite (line->str, 1, line->len, stdout) != line->len || fflush (stdout) != 0) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO, "cannot write to standard output");
    return FALSE;
  }
  return TRUE;
}

static void
append_embedding_line (GString *line, const char *key, const char *value, const float *embedding,
    int dim)
{
  g_string_truncate (line, 0);
  g_string_append (line, "{\"");
  g_string_append (line, key);
  g_string_append (line, "\": ");
  cli_json_append_string (line, value);
  g_string_append (line, ", \"embedding\": ");
  cli_json_append_floats (line, embedding, dim);
  g_string_append_c (line, '}');
}

/* ------------------------------------------------------------------------ */

int
cnclip_cmd_embed_text (int argc, char **argv)
{
  const char *cmd = argv[0];
  CommonOptions o = { 0 };
  GOptionEntry entries[] = {
    COMMON_ENTRIES (o),
    { "normalize", 0, 0, G_OPTION_ARG_NONE, &o.normalize, "L2-normalise the embeddings", NULL },
    { NULL }
  };
  GError *error = NULL;
  CnclipModel *model = NULL;
  CnclipContext *ctx = NULL;
  char **texts = NULL;
  float *embeds = NULL;
  int status = 1;

  if (!cli_parse (cmd, "[TEXT...]",
          "Prints one JSON line per text: {\"text\": ..., \"embedding\": [...]}.\n"
          "Without TEXT arguments, reads JSON Lines of strings from standard input.",
          entries, &argc, &argv))
    goto out;
  if (!check_threads (&o, &error))
    goto fail;

  if (n_positional (&o) > 0) {
    texts = g_strdupv (o.rest);
  } else if ((texts = cli_read_jsonl_strings (stdin, &error)) == NULL) {
    goto fail;
  }
  const int n = (int) g_strv_length (texts);

  model = cli_load_model (o.model_dir, o.backend, o.precision, FALSE, TRUE, &error);
  if (model == NULL || (ctx = new_context (model, &o, &error)) == NULL)
    goto fail;
  const int dim = cnclip_model_get_projection_dim (model);
  embeds = g_new (float, (gsize) MAX (n, 1) * dim);
  if (!cnclip_encode_texts (ctx, (const char *const *) texts, n, embeds, &error))
    goto fail;
  if (o.normalize)
    cnclip_l2_normalize (embeds, n, dim);

  GString *line = g_string_new (NULL);
  gboolean ok = TRUE;
  for (int i = 0; i < n && ok; i++) {
    append_embedding_line (line, "text", texts[i], embeds + (gsize) i * dim, dim);
    ok = emit_line (line, &error);
  }
  g_string_free (line, TRUE);
  if (!ok)
    goto fail;
  status = 0;
  goto out;

fail:
  status = cli_fail (cmd, error);
out:
  g_free (embeds);
  cnclip_context_free (ctx);
  if (model)
    cnclip_model_unref (model);
  g_strfreev (texts);
  common_clear (&o);
  return status;
}

/* Decodes @path (or reads it raw) and encodes it into @embed. */
static gboolean
encode_file (CnclipContext *ctx, const CommonOptions *o, const char *path, float *embed,
    GError **error)
{
  guint8 *rgb = NULL;
  int width = 0, height = 0;
  if (!cli_load_image (path, o->raw_width, o->raw_height, &rgb, &width, &height, error))
    return FALSE;
  CnclipImage image = {
    .format = CNCLIP_PIXEL_RGB,
    .width = width,
    .height = height,
    .planes = { rgb },
    .strides = { width * 3 },
  };
  gboolean ok = cnclip_encode_images (ctx, &image, 1, embed, error);
  if (!ok)
    g_prefix_error (error, "%s: ", path);
  g_free (rgb);
  return ok;
}

int
cnclip_cmd_embed_image (int argc, char **argv)
{
  const char *cmd = argv[0];
  CommonOptions o = { 0 };
  GOptionEntry entries[] = {
    COMMON_ENTRIES (o),
    RAW_ENTRY (o),
    { "normalize", 0, 0, G_OPTION_ARG_NONE, &o.normalize, "L2-normalise the embeddings", NULL },
    { NULL }
  };
  GError *error = NULL;
  CnclipModel *model = NULL;
  CnclipContext *ctx = NULL;
  float *embed = NULL;
  GString *line = g_string_new (NULL);
  int status = 1;

  if (!cli_parse (cmd, "FILE...",
          "Prints one JSON line per image file: {\"file\": ..., \"embedding\": [...]}.\n"
          "Files are decoded with GStreamer (PNG, JPEG, ...), or read as packed RGB with --raw.",
          entries, &argc, &argv))
    goto out;
  if (!check_threads (&o, &error) || !parse_raw (&o, &error))
    goto fail;
  if (n_positional (&o) == 0) {
    g_set_error (&error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT, "no image FILE given");
    goto fail;
  }

  model = cli_load_model (o.model_dir, o.backend, o.precision, TRUE, FALSE, &error);
  if (model == NULL || (ctx = new_context (model, &o, &error)) == NULL)
    goto fail;
  const int dim = cnclip_model_get_projection_dim (model);
  embed = g_new (float, dim);
  /* One file at a time: results stream out and only one decoded image is
   * in memory, whatever the number of files. */
  for (int i = 0; o.rest[i]; i++) {
    if (!encode_file (ctx, &o, o.rest[i], embed, &error))
      goto fail;
    if (o.normalize)
      cnclip_l2_normalize (embed, 1, dim);
    append_embedding_line (line, "file", o.rest[i], embed, dim);
    if (!emit_line (line, &error))
      goto fail;
  }
  status = 0;
  goto out;

fail:
  status = cli_fail (cmd, error);
out:
  g_string_free (line, TRUE);
  g_free (embed);
  cnclip_context_free (ctx);
  if (model)
    cnclip_model_unref (model);
  common_clear (&o);
  return status;
}

/* Every "{}" of @template replaced by @label. */
static char *
apply_template (const char *template, const char *label)
{
  GString *out = g_string_new (NULL);
  for (const char *p = template; *p; ) {
    if (p[0] == '{' && p[1] == '}') {
      g_string_append (out, label);
      p += 2;
    } else {
      g_string_append_c (out, *p++);
    }
  }
  return g_string_free (out, FALSE);
}

static void
append_array_member (GString *line, const char *key, const float *values, int n)
{
  g_string_append_printf (line, ", \"%s\": ", key);
  cli_json_append_floats (line, values, n);
}

int
cnclip_cmd_classify (int argc, char **argv)
{
  const char *cmd = argv[0];
  CommonOptions o = { 0 };
  char **prompts = NULL;
  char *template = NULL;
  GOptionEntry entries[] = {
    COMMON_ENTRIES (o),
    RAW_ENTRY (o),
    { "prompt", 'p', 0, G_OPTION_ARG_FILENAME_ARRAY, &prompts,
      "A label to score (repeat for each label; at least one)", "PROMPT" },
    { "template", 't', 0, G_OPTION_ARG_FILENAME, &template,
      "Text encoded for each label, \"{}\" standing for the label, e.g. \"一张{}的照片\"",
      "TEMPLATE" },
    { NULL }
  };
  GError *error = NULL;
  CnclipModel *model = NULL;
  CnclipContext *ctx = NULL;
  char **texts = NULL;
  float *text_embeds = NULL, *image_embed = NULL, *scores = NULL;
  GString *line = g_string_new (NULL);
  int status = 1;

  if (!cli_parse (cmd, "FILE...",
          "Scores each image against the prompts (softmax over the prompts) and prints one\n"
          "JSON line per file: {\"file\", \"labels\", \"probs\", \"cosines\", \"logits\"}.",
          entries, &argc, &argv))
    goto out;
  if (!check_threads (&o, &error) || !parse_raw (&o, &error))
    goto fail;
  if (prompts == NULL || prompts[0] == NULL) {
    g_set_error (&error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT,
        "no prompt given (-p PROMPT, once per label)");
    goto fail;
  }
  if (template && strstr (template, "{}") == NULL) {
    g_set_error (&error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT,
        "the template '%s' has no \"{}\" where the label goes", template);
    goto fail;
  }
  if (n_positional (&o) == 0) {
    g_set_error (&error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT, "no image FILE given");
    goto fail;
  }

  const int n_prompts = (int) g_strv_length (prompts);
  texts = g_new0 (char *, n_prompts + 1);
  for (int i = 0; i < n_prompts; i++)
    texts[i] = template ? apply_template (template, prompts[i]) : g_strdup (prompts[i]);

  model = cli_load_model (o.model_dir, o.backend, o.precision, TRUE, TRUE, &error);
  if (model == NULL || (ctx = new_context (model, &o, &error)) == NULL)
    goto fail;
  const int dim = cnclip_model_get_projection_dim (model);
  text_embeds = g_new (float, (gsize) n_prompts * dim);
  image_embed = g_new (float, dim);
  scores = g_new (float, 3 * (gsize) n_prompts);
  float *cosines = scores, *logits = scores + n_prompts, *probs = scores + 2 * n_prompts;
  if (!cnclip_encode_texts (ctx, (const char *const *) texts, n_prompts, text_embeds, &error))
    goto fail;

  for (int i = 0; o.rest[i]; i++) {
    if (!encode_file (ctx, &o, o.rest[i], image_embed, &error))
      goto fail;
    cnclip_score (image_embed, 1, text_embeds, n_prompts, dim,
        cnclip_model_get_logit_scale (model), cosines, logits, probs);
    g_string_assign (line, "{\"file\": ");
    cli_json_append_string (line, o.rest[i]);
    g_string_append (line, ", \"labels\": [");
    for (int k = 0; k < n_prompts; k++) {
      if (k)
        g_string_append_c (line, ',');
      cli_json_append_string (line, prompts[k]);
    }
    g_string_append_c (line, ']');
    append_array_member (line, "probs", probs, n_prompts);
    append_array_member (line, "cosines", cosines, n_prompts);
    append_array_member (line, "logits", logits, n_prompts);
    g_string_append_c (line, '}');
    if (!emit_line (line, &error))
      goto fail;
  }
  status = 0;
  goto out;

fail:
  status = cli_fail (cmd, error);
out:
  g_string_free (line, TRUE);
  g_free (text_embeds);
  g_free (image_embed);
  g_free (scores);
  cnclip_context_free (ctx);
  if (model)
    cnclip_model_unref (model);
  g_strfreev (texts);
  g_strfreev (prompts);
  g_free (template);
  common_clear (&o);
  return status;
}
