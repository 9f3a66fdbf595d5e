/* cli-bench.c: `cnclip bench`, timing the encoders as users run them.
 *
 *   cnclip bench -m MODEL_DIR [--threads N] [--precision fp32|bf16|int8]
 *       [--backend onednn|openblas] [--iterations N] [--json]
 *
 * Loads the model, warms up, then times (wall clock, one context):
 * - image: cnclip_encode_images on one synthetic 224x224 RGB frame (so the
 *   preprocessing is only the normalisation), batch 1;
 * - text10 / text52: cnclip_encode_token_ids on one row of 10 and of 52 real
 *   tokens (no tokenizer in the loop);
 * - preprocess_1080p: cnclip_model_preprocess of a 1920x1080 RGB frame
 *   (conversion + Pillow bicubic resize + normalisation), reported apart.
 * Each is run --iterations times; the median and the minimum are reported.
 * The machines are shared and noisy: compare runs made side by side.
 *
 * --json prints exactly one line, the contract other scripts parse:
 *   {"threads":N,"precision":"fp32","backend":"onednn","image_ms":M,
 *    "image_ms_min":M,"text10_ms":M,"text52_ms":M,"peak_rss_mb":M, ...}
 * followed by extra keys (minimums, load and preprocessing times).
 * peak_rss_mb is the process's peak resident set (VmHWM) at the end.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli.h"

#define DEFAULT_ITERATIONS 20
#define WARMUP_ITERATIONS 2

typedef gboolean (*BenchFunc) (gpointer data, GError **error);

typedef struct
{
  double median_ms;
  double min_ms;
} BenchTimes;

static int
compare_doubles (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

/* Runs @func @warmup + @iterations times; times only the last @iterations. */
static gboolean
bench_run (BenchFunc func, gpointer data, int warmup, int iterations, BenchTimes *times,
    GError **error)
{
  double *ms = g_new (double, iterations);
  for (int i = 0; i < warmup; i++) {
    if (!func (data, error)) {
      g_free (ms);
      return FALSE;
    }
  }
  for (int i = 0; i < iterations; i++) {
    gint64 start = g_get_monotonic_time ();
    if (!func (data, error)) {
      g_free (ms);
      return FALSE;
    }
    ms[i] = (g_get_monotonic_time () - start) / 1000.0;
  }
  qsort (ms, iterations, sizeof (double), compare_doubles);
  times->min_ms = ms[0];
  times->median_ms = iterations % 2 ? ms[iterations / 2]
      : 0.5 * (ms[iterations / 2 - 1] + ms[iterations / 2]);
  g_free (ms);
  return TRUE;
}

typedef struct
{
  CnclipContext *ctx;
  CnclipModel *model;
  CnclipImage image;
  gint32 *ids;
  int row_length;
  float *embeds;
  float *pixels;
} BenchData;

static gboolean
bench_image (gpointer data, GError **error)
{
  BenchData *d = data;
  return cnclip_encode_images (d->ctx, &d->image, 1, d->embeds, error);
}

static gboolean
bench_text (gpointer data, GError **error)
{
  BenchData *d = data;
  return cnclip_encode_token_ids (d->ctx, d->ids, 1, d->row_length, d->embeds, error);
}

static gboolean
bench_preprocess (gpointer data, GError **error)
{
  BenchData *d = data;
  return cnclip_model_preprocess (d->model, &d->image, d->pixels, error);
}

/* A frame with edges, gradients and noise, so nothing is trivially zero. */
static guint8 *
synthetic_rgb (int width, int height)
{
  guint8 *rgb = g_malloc ((gsize) width * height * 3);
  GRand *rand = g_rand_new_with_seed (1234);
  for (int y = 0; y < height; y++)
    for (int x = 0; x < width; x++) {
      guint8 *p = rgb + ((gsize) y * width + x) * 3;
      p[0] = (guint8) (x * 255 / MAX (width - 1, 1));
      p[1] = (guint8) (((x / 16 + y / 16) & 1) ? 200 : 40);
      p[2] = (guint8) g_rand_int_range (rand, 0, 256);
    }
  g_rand_free (rand);
  return rgb;
}

/* One input row: [CLS], @n_tokens - 2 ordinary ids, [SEP], padding. */
static void
token_row (gint32 *row, int row_length, int n_tokens, int vocab_size)
{
  memset (row, 0, sizeof (gint32) * row_length);
  row[0] = CNCLIP_TOKEN_CLS;
  for (int i = 1; i < n_tokens - 1; i++)
    row[i] = 1000 + (i * 37) % MAX (vocab_size - 1000, 1);
  row[n_tokens - 1] = CNCLIP_TOKEN_SEP;
}

/* Peak resident set in MiB: VmHWM, else ru_maxrss. */
static double
peak_rss_mb (void)
{
  char *status = NULL;
  double mb = -1.0;
  if (g_file_get_contents ("/proc/self/status", &status, NULL, NULL)) {
    const char *line = strstr (status, "VmHWM:");
    if (line)
      mb = g_ascii_strtod (line + 6, NULL) / 1024.0;
    g_free (status);
  }
  if (mb < 0) {
    struct rusage usage;
    if (getrusage (RUSAGE_SELF, &usage) == 0)
      mb = usage.ru_maxrss / 1024.0;
  }
  return mb;
}

int
cnclip_cmd_bench (int argc, char **argv)
{
  const char *cmd = argv[0];
  char *model_dir = NULL, *backend = NULL, *precision = NULL;
  int threads = 0, iterations = DEFAULT_ITERATIONS;
  gboolean json = FALSE;
  GOptionEntry entries[] = {
    { "model", 'm', 0, G_OPTION_ARG_FILENAME, &model_dir, "Model directory", "DIR" },
    { "threads", 't', 0, G_OPTION_ARG_INT, &threads, "Threads (0 = all cores)", "N" },
    { "precision", 'p', 0, G_OPTION_ARG_STRING, &precision, "fp32 (default), bf16 or int8",
      "P" },
    { "backend", 'b', 0, G_OPTION_ARG_STRING, &backend, "auto (default), onednn or openblas",
      "B" },
    { "iterations", 'n', 0, G_OPTION_ARG_INT, &iterations,
      "Timed runs of each encoder (default 20)", "N" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print one JSON line", NULL },
    { NULL }
  };
  int status = 1;
  GError *error = NULL;
  CnclipModel *model = NULL;
  CnclipContext *ctx = NULL;
  BenchData d = { 0 };
  guint8 *rgb224 = NULL, *rgb1080 = NULL;

  if (!cli_parse (cmd, NULL, "Times image and text encoding after a warm-up.", entries, &argc,
          &argv))
    return 2;
  if (argc > 1) {
    status = cli_failf (cmd, "unexpected argument '%s'", argv[1]);
    goto out;
  }
  if (iterations < 1 || iterations > 100000 || threads < 0 || threads > 4096) {
    status = cli_failf (cmd, "--iterations must be 1..100000 and --threads 0..4096");
    goto out;
  }

  gint64 start = g_get_monotonic_time ();
  model = cli_load_model (model_dir, backend, precision, TRUE, TRUE, &error);
  if (model == NULL) {
    status = cli_fail (cmd, error);
    goto out;
  }
  double load_ms = (g_get_monotonic_time () - start) / 1000.0;
  CnclipContextParams params = cnclip_context_default_params ();
  params.n_threads = threads;
  ctx = cnclip_context_new (model, &params, &error);
  if (ctx == NULL) {
    status = cli_fail (cmd, error);
    goto out;
  }

  const int size = cnclip_model_get_image_size (model);
  rgb224 = synthetic_rgb (size, size);
  rgb1080 = synthetic_rgb (1920, 1080);
  d.ctx = ctx;
  d.model = model;
  d.row_length = cnclip_model_get_context_length (model);
  d.ids = g_new (gint32, d.row_length);
  d.embeds = g_new (float, cnclip_model_get_projection_dim (model));
  d.pixels = g_new (float, (gsize) 3 * size * size);
  const int vocab = cnclip_tokenizer_get_vocab_size (cnclip_model_get_tokenizer (model));

  BenchTimes image, text10, text52, pre;
  d.image = (CnclipImage) { .format = CNCLIP_PIXEL_RGB, .width = size, .height = size,
    .planes = { rgb224 }, .strides = { size * 3 } };
  if (!bench_run (bench_image, &d, WARMUP_ITERATIONS, iterations, &image, &error))
    goto fail;
  const int lengths[2] = { 10, 52 };
  BenchTimes *text_times[2] = { &text10, &text52 };
  for (int i = 0; i < 2; i++) {
    int n = MIN (lengths[i], d.row_length);
    token_row (d.ids, d.row_length, n, vocab);
    if (!bench_run (bench_text, &d, WARMUP_ITERATIONS, iterations, text_times[i], &error))
      goto fail;
  }
  d.image = (CnclipImage) { .format = CNCLIP_PIXEL_RGB, .width = 1920, .height = 1080,
    .planes = { rgb1080 }, .strides = { 1920 * 3 } };
  if (!bench_run (bench_preprocess, &d, 1, MIN (iterations, 10), &pre, &error))
    goto fail;

  const char *backend_name = cnclip_backend_kind_to_string (cnclip_model_get_backend (model));
  const char *precision_name = cnclip_precision_to_string (cnclip_model_get_precision (model));
  int n_threads = threads > 0 ? threads : (int) g_get_num_processors ();
  double rss = peak_rss_mb ();
  if (json) {
    GString *out = g_string_new (NULL);
    g_string_append_printf (out, "{\"threads\":%d,\"precision\":", n_threads);
    cli_json_append_string (out, precision_name);
    g_string_append (out, ",\"backend\":");
    cli_json_append_string (out, backend_name);
    g_string_append_printf (out, ",\"image_ms\":%.3f,\"image_ms_min\":%.3f,\"text10_ms\":%.3f,"
        "\"text52_ms\":%.3f,\"peak_rss_mb\":%.1f,\"text10_ms_min\":%.3f,\"text52_ms_min\":%.3f,"
        "\"preprocess_1080p_ms\":%.3f,\"load_ms\":%.1f,\"iterations\":%d}",
        image.median_ms, image.min_ms, text10.median_ms, text52.median_ms, rss, text10.min_ms,
        text52.min_ms, pre.median_ms, load_ms, iterations);
    printf ("%s\n", out->str);
    g_string_free (out, TRUE);
  } else {
    printf ("model      %s\n", cnclip_model_get_path (model));
    printf ("backend    %s, %s, %d thread%s, %d iterations after %d warm-up\n", backend_name,
        precision_name, n_threads, n_threads == 1 ? "" : "s", iterations, WARMUP_ITERATIONS);
    printf ("load       %10.1f ms\n", load_ms);
    printf ("%-28s %10s %10s\n", "", "median ms", "min ms");
    printf ("%-28s %10.2f %10.2f\n", "image (224x224, batch 1)", image.median_ms, image.min_ms);
    printf ("%-28s %10.2f %10.2f\n", "text, 10 tokens", text10.median_ms, text10.min_ms);
    printf ("%-28s %10.2f %10.2f\n", "text, 52 tokens", text52.median_ms, text52.min_ms);
    printf ("%-28s %10.2f %10.2f\n", "preprocess 1920x1080 frame", pre.median_ms, pre.min_ms);
    printf ("peak RSS   %10.1f MiB\n", rss);
  }
  status = 0;
  goto out;

fail:
  status = cli_fail (cmd, error);
out:
  if (ctx)
    cnclip_context_free (ctx);
  if (model)
    cnclip_model_unref (model);
  g_free (rgb224);
  g_free (rgb1080);
  g_free (d.ids);
  g_free (d.embeds);
  g_free (d.pixels);
  g_free (model_dir);
  g_free (backend);
  g_free (precision);
  return status;
}
