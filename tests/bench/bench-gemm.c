/* bench-gemm.c: GF/s of the GEMM backends on the real layer shapes, through
 * the backend seam (core/src/backend.h), so the numbers are what the
 * encoders get: packed weights, fused bias/activation/residual.
 *
 *   bench-gemm [--backend onednn|openblas] [--precision fp32|bf16|int8]
 *              [--threads N] [--seconds S] [--layers L]
 *
 * Each shape runs over L distinct weight copies in turn (default 12, one
 * tower's worth), so weights come from memory as in a forward pass rather
 * than from cache. Prints one line per shape: best and median ms per call
 * and GF/s. The machines are shared: compare runs made side by side.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>

#include "backend.h"

typedef struct
{
  const char *name;
  int m, n, k;
  CnclipActivation act;
  gboolean accumulate;
} Shape;

static const Shape shapes[] = {
  { "vit qkv", 197, 2304, 768, CNCLIP_ACT_NONE, FALSE },
  { "vit out_proj+res", 197, 768, 768, CNCLIP_ACT_NONE, TRUE },
  { "vit fc1 quick_gelu", 197, 3072, 768, CNCLIP_ACT_QUICK_GELU, FALSE },
  { "vit fc2+res", 197, 768, 3072, CNCLIP_ACT_NONE, TRUE },
  { "text10 qkv", 10, 2304, 768, CNCLIP_ACT_NONE, FALSE },
  { "text10 intermediate gelu", 10, 3072, 768, CNCLIP_ACT_GELU, FALSE },
  { "text10 output+res", 10, 768, 3072, CNCLIP_ACT_NONE, TRUE },
  { "text52 qkv", 52, 2304, 768, CNCLIP_ACT_NONE, FALSE },
  { "text52 intermediate gelu", 52, 3072, 768, CNCLIP_ACT_GELU, FALSE },
};

static int
compare_doubles (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

int
main (int argc, char **argv)
{
  char *backend_name = NULL, *precision_name = NULL;
  int threads = 0, layers = 12;
  double seconds = 1.0;
  GOptionEntry entries[] = {
    { "backend", 'b', 0, G_OPTION_ARG_STRING, &backend_name, "onednn or openblas", "B" },
    { "precision", 'p', 0, G_OPTION_ARG_STRING, &precision_name, "fp32, bf16 or int8", "P" },
    { "threads", 't', 0, G_OPTION_ARG_INT, &threads, "OpenMP threads (0 = all)", "N" },
    { "seconds", 's', 0, G_OPTION_ARG_DOUBLE, &seconds, "Time per shape", "S" },
    { "layers", 'l', 0, G_OPTION_ARG_INT, &layers, "Distinct weight copies", "L" },
    { NULL }
  };
  GError *error = NULL;
  GOptionContext *octx = g_option_context_new (NULL);
  g_option_context_add_main_entries (octx, entries, NULL);
  if (!g_option_context_parse (octx, &argc, &argv, &error)) {
    fprintf (stderr, "bench-gemm: %s\n", error->message);
    return 2;
  }
  g_option_context_free (octx);
  CnclipBackendKind kind;
  CnclipPrecision precision;
  if (!cnclip_backend_kind_from_string (backend_name, &kind)
      || !cnclip_precision_from_string (precision_name, &precision) || layers < 1) {
    fprintf (stderr, "bench-gemm: bad --backend, --precision or --layers\n");
    return 2;
  }
  CnclipBackend *backend = cnclip_backend_new (kind, precision, &error);
  if (backend == NULL) {
    fprintf (stderr, "bench-gemm: %s\n", error->message);
    return 1;
  }
  cnclip_backend_set_threads (backend, threads);
  printf ("# backend %s, %s, %d threads, %d weight copies per shape\n", backend->ops->name,
      cnclip_precision_to_string (precision), omp_get_max_threads (), layers);
  printf ("%-26s %5s %5s %5s %9s %9s %8s %8s\n", "shape", "M", "N", "K", "best ms", "med ms",
      "best GF/s", "med GF/s");

  GRand *rand = g_rand_new_with_seed (7);
  for (guint s = 0; s < G_N_ELEMENTS (shapes); s++) {
    const Shape *sh = &shapes[s];
    CnclipLinear *lin = g_new0 (CnclipLinear, layers);
    float **w = g_new0 (float *, layers);
    float *bias = g_new (float, sh->n);
    for (int i = 0; i < sh->n; i++)
      bias[i] = (float) g_rand_double_range (rand, -0.1, 0.1);
    for (int l = 0; l < layers; l++) {
      w[l] = g_new (float, (gsize) sh->n * sh->k);
      for (gsize i = 0; i < (gsize) sh->n * sh->k; i++)
        w[l][i] = (float) g_rand_double_range (rand, -0.05, 0.05);
      lin[l] = (CnclipLinear) { .n_out = sh->n, .n_in = sh->k, .weight = w[l], .bias = bias,
        .act = sh->act };
      if (!backend->ops->linear_prepare (backend, &lin[l], &error)) {
        fprintf (stderr, "bench-gemm: %s\n", error->message);
        return 1;
      }
      if (backend->ops->releases_source) {
        g_free (w[l]);
        w[l] = NULL;
      }
    }
    float *x = g_new (float, (gsize) sh->m * sh->k);
    float *y = g_new0 (float, (gsize) sh->m * sh->n);
    for (gsize i = 0; i < (gsize) sh->m * sh->k; i++)
      x[i] = (float) g_rand_double_range (rand, -1, 1);

    /* One warm-up round creates the primitives and touches everything. */
    for (int l = 0; l < layers; l++)
      backend->ops->linear_forward (backend, &lin[l], x, sh->k, sh->m, y, sh->n, sh->accumulate);
    GArray *times = g_array_new (FALSE, FALSE, sizeof (double));
    gint64 start = g_get_monotonic_time ();
    while (g_get_monotonic_time () - start < seconds * 1e6 || times->len < 3) {
      gint64 t0 = g_get_monotonic_time ();
      for (int l = 0; l < layers; l++) {
        if (sh->accumulate)     /* keep the residual bounded */
          memset (y, 0, sizeof (float) * sh->m * sh->n);
        backend->ops->linear_forward (backend, &lin[l], x, sh->k, sh->m, y, sh->n,
            sh->accumulate);
      }
      double ms = (g_get_monotonic_time () - t0) / 1000.0 / layers;
      g_array_append_val (times, ms);
    }
    qsort (times->data, times->len, sizeof (double), compare_doubles);
    double best = g_array_index (times, double, 0);
    double med = g_array_index (times, double, times->len / 2);
    double gflop = 2.0 * sh->m * sh->n * sh->k / 1e9;
    printf ("%-26s %5d %5d %5d %9.3f %9.3f %8.0f %8.0f\n", sh->name, sh->m, sh->n, sh->k, best,
        med, gflop / best * 1e3, gflop / med * 1e3);
    fflush (stdout);
    g_array_free (times, TRUE);
    for (int l = 0; l < layers; l++) {
      backend->ops->linear_free (backend, &lin[l]);
      g_free (w[l]);
    }
    g_free (w);
    g_free (lin);
    g_free (bias);
    g_free (x);
    g_free (y);
  }
  /* Attention of one sequence, all heads, as the encoders call it. */
  static const int att_tokens[] = { 197, 10, 52 };
  for (guint a = 0; a < G_N_ELEMENTS (att_tokens); a++) {
    const int t = att_tokens[a], heads = 12, hd = 64, width = heads * hd;
    float *qkv = g_new (float, (gsize) t * 3 * width);
    float *out = g_new (float, (gsize) t * width);
    float *scratch = g_new (float, cnclip_attention_scratch_floats (t, heads));
    float *mask = g_new0 (float, t);
    for (gsize i = 0; i < (gsize) t * 3 * width; i++)
      qkv[i] = (float) g_rand_double_range (rand, -1.5, 1.5);
    CnclipAttentionArgs args = { .q = qkv, .k = qkv + width, .v = qkv + 2 * width,
      .ld = 3 * width, .n_tokens = t, .n_heads = heads, .head_dim = hd, .scale = 0.125f,
      .key_mask_add = t == 197 ? NULL : mask, .out = out, .ld_out = width, .scratch = scratch };
    backend->ops->attention (backend, &args);
    GArray *times = g_array_new (FALSE, FALSE, sizeof (double));
    gint64 start = g_get_monotonic_time ();
    while (g_get_monotonic_time () - start < seconds * 1e6 || times->len < 3) {
      gint64 t0 = g_get_monotonic_time ();
      backend->ops->attention (backend, &args);
      double ms = (g_get_monotonic_time () - t0) / 1000.0;
      g_array_append_val (times, ms);
    }
    qsort (times->data, times->len, sizeof (double), compare_doubles);
    double best = g_array_index (times, double, 0);
    double med = g_array_index (times, double, times->len / 2);
    double gflop = 4.0 * t * t * width / 1e9;
    char name[64];
    g_snprintf (name, sizeof name, "attention %d tokens", t);
    printf ("%-26s %5d %5d %5d %9.3f %9.3f %8.0f %8.0f\n", name, t, t, hd, best, med,
        gflop / best * 1e3, gflop / med * 1e3);
    g_array_free (times, TRUE);
    g_free (qkv);
    g_free (out);
    g_free (scratch);
    g_free (mask);
  }
  g_rand_free (rand);
  cnclip_backend_free (backend);
  g_free (backend_name);
  g_free (precision_name);
  return 0;
}
