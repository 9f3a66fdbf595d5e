/* cli-search.c: `cnclip search`, time ranges of indexed video matching a
 * Chinese text or an image.
 *
 * Output contract (stdout, one range per line, best first; other tools parse
 * it, so keep it stable):
 *
 *   text:    SOURCE  HH:MM:SS.mmm-HH:MM:SS.mmm  SCORE      (score %.4f)
 *   --json:  {"source": "...", "start": S, "end": E, "score": C, "timestamp": T}
 *
 * Times are seconds of stream time (JSON: exact decimal of the nanoseconds,
 * trailing zeros dropped); score is the best cosine of the range (%.9g).
 * How hits become ranges is documented at cnclip_index_search(). Index
 * problems that were tolerated (invalid or truncated lines, records without
 * embeddings) are reported as warnings on stderr.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "cli.h"

typedef struct
{
  char *model_dir;
  char *backend;
  char *precision;
  int threads;
  char **index_paths;
  int k;
  double min_cosine;
  gboolean json;
  char *image;
  char *raw;
} SearchOptions;

static void
options_clear (SearchOptions *o)
{
  g_free (o->model_dir);
  g_free (o->backend);
  g_free (o->precision);
  g_strfreev (o->index_paths);
  g_free (o->image);
  g_free (o->raw);
}

static gboolean
parse_raw_size (const char *raw, int *width, int *height, GError **error)
{
  char *end = NULL;
  gint64 w = g_ascii_strtoll (raw, &end, 10), h = 0;
  if (end && (*end == 'x' || *end == 'X')) {
    const char *rest = end + 1;
    h = g_ascii_strtoll (rest, &end, 10);
    if (end == rest)
      h = 0;
  }
  if (end == NULL || *end != '\0' || w < 1 || h < 1 || w > 32768 || h > 32768) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT,
        "--raw needs WIDTHxHEIGHT with sides 1..32768, not '%s'", raw);
    return FALSE;
  }
  *width = (int) w;
  *height = (int) h;
  return TRUE;
}

/* Encodes the query (text or image file) into @query (projection dim floats). */
static float *
encode_query (const SearchOptions *o, const char *text, int *dim, GError **error)
{
  const gboolean image = o->image != NULL;
  int raw_width = 0, raw_height = 0;
  if (o->raw && !parse_raw_size (o->raw, &raw_width, &raw_height, error))
    return NULL;

  CnclipModel *model = cli_load_model (o->model_dir, o->backend, o->precision, image, !image,
      error);
  if (model == NULL)
    return NULL;
  CnclipContextParams params = cnclip_context_default_params ();
  params.n_threads = o->threads;
  CnclipContext *ctx = cnclip_context_new (model, &params, error);
  float *query = NULL;
  if (ctx == NULL)
    goto out;
  *dim = cnclip_model_get_projection_dim (model);
  query = g_new (float, *dim);
  gboolean ok;
  if (image) {
    guint8 *rgb = NULL;
    int width = 0, height = 0;
    ok = cli_load_image (o->image, raw_width, raw_height, &rgb, &width, &height, error);
    if (ok) {
      CnclipImage im = {
        .format = CNCLIP_PIXEL_RGB, .width = width, .height = height,
        .planes = { rgb }, .strides = { width * 3 },
      };
      ok = cnclip_encode_images (ctx, &im, 1, query, error);
      if (!ok)
        g_prefix_error (error, "%s: ", o->image);
    }
    g_free (rgb);
  } else {
    const char *texts[] = { text };
    ok = cnclip_encode_texts (ctx, texts, 1, query, error);
  }
  if (!ok)
    g_clear_pointer (&query, g_free);
out:
  cnclip_context_free (ctx);
  cnclip_model_unref (model);
  return query;
}

/* Seconds as the exact decimal of @ns, without trailing zeros. */
static void
append_seconds (GString *out, gint64 ns)
{
  if (ns < 0) {
    g_string_append_c (out, '-');
    ns = -ns;
  }
  gsize start = out->len;
  g_string_append_printf (out, "%" G_GINT64_FORMAT ".%09d", ns / 1000000000,
      (int) (ns % 1000000000));
  gsize end = out->len;
  while (out->str[end - 1] == '0')
    end--;
  if (out->str[end - 1] == '.')
    end--;
  g_string_truncate (out, MAX (end, start + 1));
}

static void
append_clock (GString *out, gint64 ns)
{
  gint64 ms = (ns + 500000) / 1000000;
  g_string_append_printf (out, "%02" G_GINT64_FORMAT ":%02d:%02d.%03d", ms / 3600000,
      (int) (ms / 60000 % 60), (int) (ms / 1000 % 60), (int) (ms % 1000));
}

static void
append_range (GString *line, const CnclipSearchRange *r, gboolean json)
{
  char buf[G_ASCII_DTOSTR_BUF_SIZE];
  if (json) {
    g_string_append (line, "{\"source\": ");
    cli_json_append_string (line, r->source);
    g_string_append (line, ", \"start\": ");
    append_seconds (line, r->start);
    g_string_append (line, ", \"end\": ");
    append_seconds (line, r->end);
    g_string_append_printf (line, ", \"score\": %s, \"timestamp\": ",
        g_ascii_formatd (buf, sizeof (buf), "%.9g", r->score));
    append_seconds (line, r->timestamp);
    g_string_append (line, "}\n");
  } else {
    g_string_append (line, r->source);
    g_string_append (line, "  ");
    append_clock (line, r->start);
    g_string_append_c (line, '-');
    append_clock (line, r->end);
    g_string_append_printf (line, "  %s\n", g_ascii_formatd (buf, sizeof (buf), "%.4f", r->score));
  }
}

static void
warn_about_index (const char *cmd, const CnclipIndex *index)
{
  const CnclipIndexStats *st = cnclip_index_get_stats (index);
  if (st->n_invalid > 0)
    fprintf (stderr, "cnclip %s: warning: skipped %" G_GSIZE_FORMAT " invalid line%s (first: %s)\n",
        cmd, st->n_invalid, st->n_invalid == 1 ? "" : "s", cnclip_index_get_first_problem (index));
  if (st->n_truncated > 0)
    fprintf (stderr, "cnclip %s: warning: ignored %" G_GSIZE_FORMAT " cut record%s at the end of "
        "a file (interrupted writer)\n", cmd, st->n_truncated, st->n_truncated == 1 ? "" : "s");
  if (st->n_no_embedding > 0 && st->n_records > 0)
    fprintf (stderr, "cnclip %s: warning: %" G_GSIZE_FORMAT " record%s without an embedding "
        "cannot be searched\n", cmd, st->n_no_embedding, st->n_no_embedding == 1 ? "" : "s");
  if (st->n_no_time > 0)
    fprintf (stderr, "cnclip %s: warning: %" G_GSIZE_FORMAT " record%s without a timestamp "
        "skipped\n", cmd, st->n_no_time, st->n_no_time == 1 ? "" : "s");
}

int
cnclip_cmd_search (int argc, char **argv)
{
  const char *cmd = argv[0];
  SearchOptions o = { .k = 10, .min_cosine = -G_MAXDOUBLE };
  GOptionEntry entries[] = {
    { "model", 'm', 0, G_OPTION_ARG_FILENAME, &o.model_dir, "Model directory (required)", "DIR" },
    { "index", 'i', 0, G_OPTION_ARG_FILENAME_ARRAY, &o.index_paths,
      "Index file (JSON Lines records with embeddings; repeat for several)", "INDEX.jsonl" },
    { "top", 'k', 0, G_OPTION_ARG_INT, &o.k, "Number of time ranges (default 10)", "K" },
    { "min-cosine", 0, 0, G_OPTION_ARG_DOUBLE, &o.min_cosine,
      "Only records with at least this cosine are hits", "C" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &o.json, "One JSON object per range per line", NULL },
    { "image", 0, 0, G_OPTION_ARG_FILENAME, &o.image, "Search by this image instead of a text",
      "FILE" },
    { "raw", 0, 0, G_OPTION_ARG_STRING, &o.raw,
      "Read the --image file as packed 8-bit RGB of this size", "WIDTHxHEIGHT" },
    { "backend", 0, 0, G_OPTION_ARG_STRING, &o.backend, "GEMM backend: auto, onednn, openblas",
      "B" },
    { "precision", 0, 0, G_OPTION_ARG_STRING, &o.precision, "fp32 (default), bf16, int8", "P" },
    { "threads", 0, 0, G_OPTION_ARG_INT, &o.threads, "Threads (0 = all cores)", "N" },
    { NULL }
  };
  GError *error = NULL;
  CnclipIndex *index = NULL;
  CnclipSearchRange *ranges = NULL;
  float *query = NULL;
  int status = 1;

  if (!cli_parse (cmd, "(QUERY | --image FILE)",
          "Finds the time ranges of indexed videos that match a Chinese description\n"
          "(or an image), best first: SOURCE  START-END  SCORE, or JSON with --json.",
          entries, &argc, &argv))
    goto out;

  if (o.index_paths == NULL || o.index_paths[0] == NULL) {
    status = cli_failf (cmd, "no index given (-i INDEX.jsonl)");
    goto out;
  }
  if (o.image != NULL ? argc != 1 : argc != 2) {
    status = cli_failf (cmd, "%s", o.image ? "give a QUERY text or --image FILE, not both"
        : argc < 2 ? "no QUERY given (a text, or --image FILE)"
        : "give one QUERY (quote a text with spaces)");
    goto out;
  }
  if (o.k < 1) {
    status = cli_failf (cmd, "-k must be at least 1, not %d", o.k);
    goto out;
  }
  if (isnan (o.min_cosine)) {
    status = cli_failf (cmd, "--min-cosine must be a number");
    goto out;
  }
  if (o.threads < 0) {
    status = cli_failf (cmd, "--threads must be 0 (all cores) or more, not %d", o.threads);
    goto out;
  }
  if (o.raw != NULL && o.image == NULL) {
    status = cli_failf (cmd, "--raw applies to --image only");
    goto out;
  }

  /* The index first: a wrong file fails before the model is loaded. */
  index = cnclip_index_load ((const char *const *) o.index_paths, &error);
  if (index == NULL)
    goto fail;
  if (cnclip_index_get_n_records (index) == 0) {
    const CnclipIndexStats *st = cnclip_index_get_stats (index);
    status = cli_failf (cmd, "the index has no records with embeddings (%" G_GSIZE_FORMAT
        " without; index with embeddings, e.g. json-embeddings=f32)", st->n_no_embedding);
    goto out;
  }

  int dim = 0;
  query = encode_query (&o, o.image ? NULL : argv[1], &dim, &error);
  if (query == NULL)
    goto fail;

  CnclipSearchParams params = cnclip_search_default_params ();
  /* There cannot be more ranges than records. */
  params.k = (int) MIN ((gsize) o.k, cnclip_index_get_n_records (index));
  params.min_cosine = (float) CLAMP (o.min_cosine, -G_MAXFLOAT, G_MAXFLOAT);
  ranges = g_new (CnclipSearchRange, params.k);
  int n = cnclip_index_search (index, query, dim, &params, ranges, &error);
  if (n < 0)
    goto fail;
  /* Only now: a failing command prints one line, its error. */
  warn_about_index (cmd, index);

  GString *out = g_string_new (NULL);
  for (int i = 0; i < n; i++)
    append_range (out, &ranges[i], o.json);
  gboolean written = fwrite (out->str, 1, out->len, stdout) == out->len && fflush (stdout) == 0;
  g_string_free (out, TRUE);
  if (!written) {
    status = cli_failf (cmd, "cannot write to standard output");
    goto out;
  }
  status = 0;
  goto out;

fail:
  status = cli_fail (cmd, error);
out:
  g_free (ranges);
  g_free (query);
  cnclip_index_free (index);
  options_clear (&o);
  return status;
}
