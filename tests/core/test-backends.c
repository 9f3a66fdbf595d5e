/* test-backends.c: every GEMM backend and precision it supports against a
 * naive double-precision reference, on the real layer shapes and on small
 * odd ones (see core/src/backend.h for the semantics).
 *
 * Error bounds, per output element, with S = |b| + Σ_k |x_k w_k|:
 * - fp32: 2e-6 S + 1e-6 (float accumulation over K <= 3072 stays far below);
 * - bf16: 5e-3 S + 1e-5. x and w are each rounded to bf16 (relative error
 *   <= 2^-9), so each product is off by at most (2 * 2^-9 + 2^-18) |x w| =
 *   3.9e-3 |x w|; the rest is float accumulation.
 * - int8: Σ_k (|x_k| s_w/2 + |w_k| s_x/2 + s_x s_w/4) + 2e-6 S + 1e-5, the
 *   worst case of rounding x to the grid s_x = max|x| / 127 (one scale for
 *   the input) and w to s_w = max_k |w_nk| / 127 (per output channel).
 * Activations are 1.13-Lipschitz at most (GELU; quick_gelu 1.1), so the bounds
 * are multiplied by 1.2 after one; accumulate adds 1e-6 |y_old|.
 */
#include "config.h"

#include <math.h>
#include <string.h>
#include <omp.h>

#include "test-util.h"
#include "backend.h"

typedef struct
{
  CnclipBackendKind kind;
  CnclipPrecision precision;
  char *name;
  gboolean attention_primitives; /* oneDNN: its primitives, not the fused kernel */
} BackendCase;

typedef struct
{
  int m, n, k;
  gboolean bias;
  CnclipActivation act;
  gboolean accumulate;
  int ldx_pad, ldy_pad;          /* extra floats per row of x and y */
} LinearShape;

/* Real ViT-B/16 and RoBERTa-base shapes (M = 197 tokens, 394 = two images,
 * 10 and 52 text tokens), and small odd ones that exercise every tail. */
static const LinearShape linear_shapes[] = {
  /* m    n     k     bias   act                    acc    ldx ldy */
  { 197, 2304, 768,  TRUE,  CNCLIP_ACT_NONE,       FALSE, 0, 0 },  /* qkv */
  { 197, 768,  768,  TRUE,  CNCLIP_ACT_NONE,       TRUE,  0, 0 },  /* out_proj + residual */
  { 197, 3072, 768,  TRUE,  CNCLIP_ACT_QUICK_GELU, FALSE, 0, 0 },  /* fc1 */
  { 197, 768,  3072, TRUE,  CNCLIP_ACT_NONE,       TRUE,  0, 0 },  /* fc2 + residual */
  { 394, 2304, 768,  TRUE,  CNCLIP_ACT_NONE,       FALSE, 0, 0 },
  { 10,  3072, 768,  TRUE,  CNCLIP_ACT_GELU,       FALSE, 0, 0 },  /* text intermediate */
  { 10,  768,  3072, TRUE,  CNCLIP_ACT_NONE,       TRUE,  0, 0 },
  { 52,  2304, 768,  TRUE,  CNCLIP_ACT_NONE,       FALSE, 0, 0 },
  { 1,   512,  768,  FALSE, CNCLIP_ACT_NONE,       FALSE, 0, 0 },  /* projection */
  { 3,   512,  768,  FALSE, CNCLIP_ACT_NONE,       FALSE, 9216, 0 }, /* [CLS] rows of texts */
  { 196, 768,  768,  FALSE, CNCLIP_ACT_NONE,       FALSE, 0, 0 },  /* patch embedding */
  { 1,   1,    1,    FALSE, CNCLIP_ACT_NONE,       FALSE, 0, 0 },
  { 1,   7,    5,    TRUE,  CNCLIP_ACT_GELU,       FALSE, 3, 2 },
  { 7,   13,   11,   TRUE,  CNCLIP_ACT_QUICK_GELU, FALSE, 1, 5 },
  { 7,   13,   11,   FALSE, CNCLIP_ACT_NONE,       TRUE,  2, 3 },
  { 7,   33,   17,   TRUE,  CNCLIP_ACT_NONE,       TRUE,  0, 0 },
  { 197, 65,   129,  TRUE,  CNCLIP_ACT_GELU,       FALSE, 7, 1 },
  { 197, 129,  65,   FALSE, CNCLIP_ACT_QUICK_GELU, FALSE, 0, 0 },
  { 394, 100,  300,  TRUE,  CNCLIP_ACT_NONE,       TRUE,  4, 4 },
  { 394, 17,   1000, TRUE,  CNCLIP_ACT_GELU,       FALSE, 0, 0 },
};

static const float sentinel = -12345.0f;

/* Deterministic uniform values in [-scale, scale). */
static void
fill_random (GRand *rand, float *v, gsize n, double scale)
{
  for (gsize i = 0; i < n; i++)
    v[i] = (float) g_rand_double_range (rand, -scale, scale);
}

static double
ref_activation (double x, CnclipActivation act)
{
  switch (act) {
    case CNCLIP_ACT_GELU:
      return 0.5 * x * (1.0 + erf (x / sqrt (2.0)));
    case CNCLIP_ACT_QUICK_GELU:
      return x / (1.0 + exp (-1.702 * x));
    default:
      return x;
  }
}

static double
tolerance_scale (CnclipPrecision precision)
{
  return precision == CNCLIP_PRECISION_BF16 ? 5e-3 : 2e-6;
}

static double
tolerance_floor (CnclipPrecision precision)
{
  return precision == CNCLIP_PRECISION_BF16 ? 1e-5 : 1e-6;
}

/* Rows checked against the reference: all of small matrices, a spread of
 * rows (first, last, every 13th) of large ones to keep the test quick. */
static gboolean
row_checked (int r, int m, int n, int k)
{
  if ((gint64) m * n * k <= 20000000)
    return TRUE;
  return r == 0 || r == m - 1 || r % 13 == 0;
}

typedef struct
{
  const LinearShape *s;
  float *x, *w, *b, *y_old;
  int ldx, ldy;
} LinearData;

static LinearData
linear_data_new (const LinearShape *s, guint32 seed)
{
  GRand *rand = g_rand_new_with_seed (seed);
  LinearData d = { .s = s };
  d.ldx = s->k + s->ldx_pad;
  d.ldy = s->n + s->ldy_pad;
  d.x = g_new (float, (gsize) s->m * d.ldx);
  d.w = g_new (float, (gsize) s->n * s->k);
  d.b = s->bias ? g_new (float, s->n) : NULL;
  d.y_old = g_new (float, (gsize) s->m * d.ldy);
  fill_random (rand, d.x, (gsize) s->m * d.ldx, 1.0);
  /* Weights like a trained layer's: pre-activations of order 1. */
  fill_random (rand, d.w, (gsize) s->n * s->k, 1.7 / sqrt (s->k));
  if (d.b)
    fill_random (rand, d.b, s->n, 0.5);
  fill_random (rand, d.y_old, (gsize) s->m * d.ldy, 2.0);
  for (int r = 0; r < s->m; r++)
    for (int c = s->n; c < d.ldy; c++)
      d.y_old[(gsize) r * d.ldy + c] = sentinel;
  g_rand_free (rand);
  return d;
}

static void
linear_data_free (LinearData *d)
{
  g_free (d->x);
  g_free (d->w);
  g_free (d->b);
  g_free (d->y_old);
}

/* Largest |x| over rows [@r0, @r0 + @n) of the logical [m, K] input. */
static double
input_abs_max (const LinearData *d, int r0, int n)
{
  double amax = 0.0;
  for (int r = r0; r < r0 + n; r++)
    for (int i = 0; i < d->s->k; i++)
      amax = MAX (amax, fabs (d->x[(gsize) r * d->ldx + i]));
  return amax;
}

/* Checks rows [@r0, @r0 + @n) of the product, computed alone by the backend
 * into @y (row stride d->ldy), against the reference; returns the largest
 * error as a fraction of the allowed bound. */
static double
check_rows (const LinearData *d, int r0, int n, const float *y, CnclipPrecision precision)
{
  const LinearShape *s = d->s;
  const double sx = input_abs_max (d, r0, n) / 127.0;
  double worst = 0.0;
  for (int r = 0; r < n; r++) {
    /* Padding columns of y are never written. */
    for (int c = s->n; c < d->ldy; c++)
      g_assert_cmpfloat (y[(gsize) r * d->ldy + c], ==, sentinel);
    if (!row_checked (r0 + r, s->m, s->n, s->k))
      continue;
    const float *xr = d->x + (gsize) (r0 + r) * d->ldx;
    for (int c = 0; c < s->n; c++) {
      const float *wr = d->w + (gsize) c * s->k;
      double acc = d->b ? d->b[c] : 0.0, mag = d->b ? fabs (d->b[c]) : 0.0;
      double sw = 0.0, sum_x = 0.0, sum_w = 0.0;
      for (int i = 0; i < s->k; i++) {
        acc += (double) xr[i] * wr[i];
        mag += fabs ((double) xr[i] * wr[i]);
        sw = MAX (sw, fabs (wr[i]));
        sum_x += fabs (xr[i]);
        sum_w += fabs (wr[i]);
      }
      sw /= 127.0;
      double tol;
      if (precision == CNCLIP_PRECISION_INT8)
        tol = sum_x * sw / 2 + sum_w * sx / 2 + s->k * sx * sw / 4 + 2e-6 * mag + 1e-5;
      else
        tol = tolerance_scale (precision) * mag + tolerance_floor (precision);
      double expected;
      if (s->accumulate) {
        double old = d->y_old[(gsize) (r0 + r) * d->ldy + c];
        expected = old + acc;
        tol += 1e-6 * fabs (old);
      } else {
        expected = ref_activation (acc, s->act);
        if (s->act != CNCLIP_ACT_NONE)
          tol *= 1.2;
      }
      double got = y[(gsize) r * d->ldy + c];
      double err = fabs (got - expected);
      if (!(err <= tol))
        g_error ("m=%d n=%d k=%d act=%d acc=%d: y[%d][%d] = %.9g, expected %.9g (err %.3g > %.3g)",
            s->m, s->n, s->k, s->act, s->accumulate, r0 + r, c, got, expected, err, tol);
      worst = MAX (worst, err / tol);
    }
  }
  return worst;
}

static double
check_linear (const LinearData *d, const float *y, CnclipPrecision precision)
{
  return check_rows (d, 0, d->s->m, y, precision);
}

static CnclipBackend *
backend_new (const BackendCase *bc)
{
  GError *error = NULL;
  if (bc->attention_primitives)
    g_setenv ("CNCLIP_ONEDNN_ATTENTION", "primitives", TRUE);
  CnclipBackend *backend = cnclip_backend_new (bc->kind, bc->precision, &error);
  g_unsetenv ("CNCLIP_ONEDNN_ATTENTION");
  g_assert_no_error (error);
  g_assert_nonnull (backend);
  g_assert_cmpint (backend->ops->kind, ==, bc->kind);
  return backend;
}

/* Prepares @linear from a private copy of the weights that is overwritten
 * right after prepare when the backend says it no longer needs them, so a
 * backend that keeps reading the source would fail the comparison. */
static void
prepare_linear (CnclipBackend *backend, CnclipLinear *linear, const LinearData *d)
{
  const LinearShape *s = d->s;
  float *w_copy = g_memdup2 (d->w, sizeof (float) * s->n * s->k);
  float *b_copy = d->b ? g_memdup2 (d->b, sizeof (float) * s->n) : NULL;
  *linear = (CnclipLinear) {
    .n_out = s->n, .n_in = s->k, .weight = w_copy, .bias = b_copy, .act = s->act,
  };
  GError *error = NULL;
  g_assert_true (backend->ops->linear_prepare (backend, linear, &error));
  g_assert_no_error (error);
  if (backend->ops->releases_source) {
    g_assert_nonnull (linear->packed);
    memset (w_copy, 0xff, sizeof (float) * s->n * s->k);        /* NaN */
    if (b_copy)
      memset (b_copy, 0xff, sizeof (float) * s->n);
    g_free (w_copy);
    g_free (b_copy);
    linear->weight = NULL;
    linear->bias = NULL;
  }
}

static void
free_linear (CnclipBackend *backend, CnclipLinear *linear)
{
  backend->ops->linear_free (backend, linear);
  g_assert_null (linear->packed);
  g_free ((float *) linear->weight);
  g_free ((float *) linear->bias);
}

/* Test that linear_forward matches the double-precision reference for every
 * shape, with and without bias, each activation, accumulate, padded strides. */
static void
test_linear_shapes (gconstpointer data)
{
  const BackendCase *bc = data;
  CnclipBackend *backend = backend_new (bc);
  double worst = 0.0;
  for (guint i = 0; i < G_N_ELEMENTS (linear_shapes); i++) {
    const LinearShape *s = &linear_shapes[i];
    LinearData d = linear_data_new (s, 1000 + i);
    CnclipLinear linear;
    prepare_linear (backend, &linear, &d);
    float *y = g_memdup2 (d.y_old, sizeof (float) * s->m * d.ldy);
    backend->ops->linear_forward (backend, &linear, d.x, d.ldx, s->m, y, d.ldy, s->accumulate);
    double w = check_linear (&d, y, bc->precision);
    if (g_test_verbose ())
      g_printerr ("  %s m=%d n=%d k=%d: worst error %.3f of the bound\n", bc->name, s->m, s->n,
          s->k, w);
    worst = MAX (worst, w);
    free_linear (backend, &linear);
    g_free (y);
    linear_data_free (&d);
  }
  /* A reduced precision that never approaches its bound is not applied. */
  if (bc->precision != CNCLIP_PRECISION_FP32)
    g_assert_cmpfloat (worst, >, 0.01);
  cnclip_backend_free (backend);
}

/* Test that one prepared linear gives the same results whatever the row
 * count and OpenMP thread count of the call (primitives are per M and per
 * thread count; the packed weights are shared). */
static void
test_linear_rows_and_threads (gconstpointer data)
{
  const BackendCase *bc = data;
  CnclipBackend *backend = backend_new (bc);
  const LinearShape big = { 394, 768, 768, TRUE, CNCLIP_ACT_GELU, FALSE, 0, 0 };
  LinearData d = linear_data_new (&big, 77);
  CnclipLinear linear;
  prepare_linear (backend, &linear, &d);
  float *y_all = g_new (float, (gsize) big.m * big.n);
  float *y_part = g_new (float, (gsize) big.m * big.n);
  int saved = omp_get_max_threads ();
  backend->ops->linear_forward (backend, &linear, d.x, d.ldx, big.m, y_all, big.n, FALSE);
  check_linear (&d, y_all, bc->precision);
  static const int rows[] = { 1, 2, 7, 10, 16, 52, 197, 393 };
  for (int threads = 1; threads <= 2; threads++) {
    omp_set_num_threads (threads);
    for (guint i = 0; i < G_N_ELEMENTS (rows); i++) {
      /* Rows [off, off + rows) computed alone equal the same rows of the full product. */
      int off = big.m - rows[i];
      backend->ops->linear_forward (backend, &linear, d.x + (gsize) off * d.ldx, d.ldx, rows[i],
          y_part, big.n, FALSE);
      /* int8 quantises each call's input with its own scale, so compare
       * every precision with the reference rather than with y_all. */
      check_rows (&d, off, rows[i], y_part, bc->precision);
      if (bc->precision == CNCLIP_PRECISION_INT8)
        continue;
      for (int r = 0; r < rows[i]; r++)
        for (int c = 0; c < big.n; c++) {
          float a = y_all[(gsize) (off + r) * big.n + c], b = y_part[(gsize) r * big.n + c];
          /* The same kernels reduce K in the same order. */
          g_assert_cmpfloat_with_epsilon (a, b, 1e-5 * (1.0 + fabs (a)));
        }
    }
  }
  omp_set_num_threads (saved);
  free_linear (backend, &linear);
  g_free (y_all);
  g_free (y_part);
  linear_data_free (&d);
  cnclip_backend_free (backend);
}

/* ------------------------------------------------------------------------ */
/* Attention                                                                */

typedef struct
{
  int n_tokens, n_heads, head_dim;
  int ld_pad, ld_out_pad;
  gboolean masked;
} AttentionShape;

static const AttentionShape attention_shapes[] = {
  /* tokens heads dim  ld+ out+ mask */
  { 197, 12, 64, 0, 0, FALSE },   /* ViT-B/16 */
  { 10,  12, 64, 0, 0, TRUE },    /* a short text */
  { 52,  12, 64, 0, 0, TRUE },
  { 197, 2,  64, 5, 3, FALSE },   /* the tiny fixture, odd strides */
  { 13,  2,  64, 1, 7, TRUE },
  { 1,   3,  16, 0, 0, TRUE },
  { 7,   5,  8,  3, 1, FALSE },
};

typedef struct
{
  const AttentionShape *s;
  float *qkv, *mask, *out, *scratch;
  int width, ld, ld_out;
} AttentionData;

static AttentionData
attention_data_new (const AttentionShape *s, guint32 seed)
{
  GRand *rand = g_rand_new_with_seed (seed);
  AttentionData d = { .s = s };
  d.width = s->n_heads * s->head_dim;
  d.ld = 3 * d.width + s->ld_pad;
  d.ld_out = d.width + s->ld_out_pad;
  d.qkv = g_new (float, (gsize) s->n_tokens * d.ld);
  /* Scores of order a few units, as in trained models. */
  fill_random (rand, d.qkv, (gsize) s->n_tokens * d.ld, 1.5);
  if (s->masked) {
    d.mask = g_new (float, s->n_tokens);
    for (int j = 0; j < s->n_tokens; j++)
      d.mask[j] = (j % 4 == 3 && j > 0) ? -10000.0f : (float) g_rand_double_range (rand, -1, 1);
  }
  d.out = g_new (float, (gsize) s->n_tokens * d.ld_out);
  for (gsize i = 0; i < (gsize) s->n_tokens * d.ld_out; i++)
    d.out[i] = sentinel;
  d.scratch = g_new (float, cnclip_attention_scratch_floats (s->n_tokens, s->n_heads));
  g_rand_free (rand);
  return d;
}

static void
attention_data_free (AttentionData *d)
{
  g_free (d->qkv);
  g_free (d->mask);
  g_free (d->out);
  g_free (d->scratch);
}

static CnclipAttentionArgs
attention_args (const AttentionData *d)
{
  const AttentionShape *s = d->s;
  return (CnclipAttentionArgs) {
    .q = d->qkv, .k = d->qkv + d->width, .v = d->qkv + 2 * d->width, .ld = d->ld,
    .n_tokens = s->n_tokens, .n_heads = s->n_heads, .head_dim = s->head_dim,
    .scale = 1.0f / sqrtf ((float) s->head_dim), .key_mask_add = d->mask,
    .out = d->out, .ld_out = d->ld_out, .scratch = d->scratch,
  };
}

static void
check_attention (const AttentionData *d, const float *out)
{
  const AttentionShape *s = d->s;
  const int t = s->n_tokens, hd = s->head_dim;
  const double scale = 1.0 / sqrt ((double) hd);
  double *p = g_new (double, t);
  for (int h = 0; h < s->n_heads; h++) {
    for (int i = 0; i < t; i++) {
      const float *q = d->qkv + (gsize) i * d->ld + h * hd;
      double max = -INFINITY, sum = 0.0;
      for (int j = 0; j < t; j++) {
        const float *k = d->qkv + (gsize) j * d->ld + d->width + h * hd;
        double acc = 0.0;
        for (int c = 0; c < hd; c++)
          acc += (double) q[c] * k[c];
        p[j] = acc * scale + (d->mask ? d->mask[j] : 0.0);
        max = MAX (max, p[j]);
      }
      for (int j = 0; j < t; j++)
        sum += (p[j] = exp (p[j] - max));
      for (int c = 0; c < hd; c++) {
        double acc = 0.0;
        for (int j = 0; j < t; j++)
          acc += p[j] / sum * d->qkv[(gsize) j * d->ld + 2 * d->width + h * hd + c];
        double got = out[(gsize) i * d->ld_out + h * hd + c];
        /* Outputs are averages of values in [-1.5, 1.5]. */
        if (!(fabs (got - acc) <= 2e-5))
          g_error ("attention t=%d heads=%d: out[%d][%d] = %.9g, expected %.9g", t,
              s->n_heads, i, h * hd + c, got, acc);
      }
    }
    for (int i = 0; i < t; i++)
      for (int c = d->width; c < d->ld_out; c++)
        g_assert_cmpfloat (out[(gsize) i * d->ld_out + c], ==, sentinel);
  }
  g_free (p);
}

/* Test that attention matches the naive reference, with and without a key
 * mask, with Q/K/V read in place from a wider row and a padded output. */
static void
test_attention (gconstpointer data)
{
  const BackendCase *bc = data;
  CnclipBackend *backend = backend_new (bc);
  for (guint i = 0; i < G_N_ELEMENTS (attention_shapes); i++) {
    AttentionData d = attention_data_new (&attention_shapes[i], 500 + i);
    CnclipAttentionArgs args = attention_args (&d);
    backend->ops->attention (backend, &args);
    check_attention (&d, d.out);
    attention_data_free (&d);
  }
  cnclip_backend_free (backend);
}

/* ------------------------------------------------------------------------ */
/* Threads                                                                  */

typedef struct
{
  CnclipBackend *backend;
  const CnclipLinear *linear;
  const LinearData *d;
  const AttentionData *ad;
  float *y;
  float *att_out;
  float *att_scratch;
  int iterations;
  int omp_threads;
} WorkerArgs;

static gpointer
worker (gpointer data)
{
  WorkerArgs *w = data;
  const LinearShape *s = w->d->s;
  omp_set_num_threads (w->omp_threads);
  CnclipAttentionArgs args = attention_args (w->ad);
  args.out = w->att_out;
  args.scratch = w->att_scratch;
  for (int it = 0; it < w->iterations; it++) {
    w->backend->ops->linear_forward (w->backend, w->linear, w->d->x, w->d->ldx, s->m, w->y,
        w->d->ldy, FALSE);
    w->backend->ops->attention (w->backend, &args);
  }
  return NULL;
}

/* Test that two threads running the same prepared linear and attention at
 * once both get the single-threaded result. */
static void
test_concurrent (gconstpointer data)
{
  const BackendCase *bc = data;
  CnclipBackend *backend = backend_new (bc);
  const LinearShape shape = { 197, 768, 768, TRUE, CNCLIP_ACT_QUICK_GELU, FALSE, 0, 0 };
  LinearData d = linear_data_new (&shape, 4242);
  CnclipLinear linear;
  prepare_linear (backend, &linear, &d);
  AttentionData ad = attention_data_new (&attention_shapes[0], 99);
  const gsize n_att = (gsize) ad.s->n_tokens * ad.ld_out;

  /* The single-threaded results each worker must reproduce. */
  WorkerArgs ref = { backend, &linear, &d, &ad, g_new (float, 197 * 768),
    g_new (float, n_att), g_new (float, cnclip_attention_scratch_floats (197, 12)), 1, 1 };
  worker (&ref);
  check_linear (&d, ref.y, bc->precision);
  check_attention (&ad, ref.att_out);

  WorkerArgs w[2];
  GThread *threads[2];
  for (int i = 0; i < 2; i++) {
    w[i] = ref;
    w[i].y = g_new (float, 197 * 768);
    w[i].att_out = g_new (float, n_att);
    w[i].att_scratch = g_new (float, cnclip_attention_scratch_floats (197, 12));
    w[i].iterations = 20;
    threads[i] = g_thread_new ("backend-worker", worker, &w[i]);
  }
  for (int i = 0; i < 2; i++) {
    g_thread_join (threads[i]);
    g_assert_cmpmem (w[i].y, sizeof (float) * 197 * 768, ref.y, sizeof (float) * 197 * 768);
    g_assert_cmpmem (w[i].att_out, sizeof (float) * n_att, ref.att_out, sizeof (float) * n_att);
    g_free (w[i].y);
    g_free (w[i].att_out);
    g_free (w[i].att_scratch);
  }
  g_free (ref.y);
  g_free (ref.att_out);
  g_free (ref.att_scratch);
  attention_data_free (&ad);
  free_linear (backend, &linear);
  linear_data_free (&d);
  cnclip_backend_free (backend);
}

/* ------------------------------------------------------------------------ */
/* Selection                                                                */

/* Test that precisions a backend cannot run are refused with
 * CNCLIP_ERROR_BACKEND instead of silently running fp32. */
static void
test_unsupported_precisions (void)
{
  GError *error = NULL;
  g_assert_null (cnclip_backend_new (CNCLIP_BACKEND_OPENBLAS, CNCLIP_PRECISION_BF16, &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_BACKEND);
  g_assert_null (cnclip_backend_new (CNCLIP_BACKEND_OPENBLAS, CNCLIP_PRECISION_INT8, &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_BACKEND);
}

/* Test that AUTO picks oneDNN when it is built in, and that
 * $CNCLIP_BACKEND overrides it (and is validated). */
static void
test_auto_selection (void)
{
  GError *error = NULL;
  g_unsetenv ("CNCLIP_BACKEND");
  CnclipBackend *b = cnclip_backend_new (CNCLIP_BACKEND_AUTO, CNCLIP_PRECISION_FP32, &error);
  g_assert_no_error (error);
  g_assert_cmpint (b->ops->kind, ==, CNCLIP_HAVE_ONEDNN ? CNCLIP_BACKEND_ONEDNN
      : CNCLIP_BACKEND_OPENBLAS);
  cnclip_backend_free (b);
  g_setenv ("CNCLIP_BACKEND", "openblas", TRUE);
  b = cnclip_backend_new (CNCLIP_BACKEND_AUTO, CNCLIP_PRECISION_FP32, &error);
  g_assert_no_error (error);
  g_assert_cmpint (b->ops->kind, ==, CNCLIP_BACKEND_OPENBLAS);
  cnclip_backend_free (b);
  g_setenv ("CNCLIP_BACKEND", "cuda", TRUE);
  g_assert_null (cnclip_backend_new (CNCLIP_BACKEND_AUTO, CNCLIP_PRECISION_FP32, &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_BACKEND);
  g_unsetenv ("CNCLIP_BACKEND");
}

static GPtrArray *cases;         /* BackendCase, freed after the run */

static void
backend_case_free (gpointer data)
{
  BackendCase *bc = data;
  g_free (bc->name);
  g_free (bc);
}

static void
add_backend_tests (CnclipBackendKind kind, CnclipPrecision precision)
{
  BackendCase *bc = g_new0 (BackendCase, 1);
  g_ptr_array_add (cases, bc);
  bc->kind = kind;
  bc->precision = precision;
  bc->name = g_strdup_printf ("%s/%s", cnclip_backend_kind_to_string (kind),
      cnclip_precision_to_string (precision));
  char *path = g_strdup_printf ("/backends/%s/linear", bc->name);
  g_test_add_data_func (path, bc, test_linear_shapes);
  g_free (path);
  path = g_strdup_printf ("/backends/%s/rows-and-threads", bc->name);
  g_test_add_data_func (path, bc, test_linear_rows_and_threads);
  g_free (path);
  path = g_strdup_printf ("/backends/%s/attention", bc->name);
  g_test_add_data_func (path, bc, test_attention);
  g_free (path);
  path = g_strdup_printf ("/backends/%s/concurrent", bc->name);
  g_test_add_data_func (path, bc, test_concurrent);
  g_free (path);
  if (kind == CNCLIP_BACKEND_ONEDNN) {
    /* The primitive path is the fallback for CPUs and head sizes the fused
     * kernel does not cover; test it here too. */
    BackendCase *prim = g_memdup2 (bc, sizeof *bc);
    prim->name = g_strdup (bc->name);
    prim->attention_primitives = TRUE;
    g_ptr_array_add (cases, prim);
    path = g_strdup_printf ("/backends/%s/attention-primitives", bc->name);
    g_test_add_data_func (path, prim, test_attention);
    g_free (path);
    path = g_strdup_printf ("/backends/%s/concurrent-primitives", bc->name);
    g_test_add_data_func (path, prim, test_concurrent);
    g_free (path);
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  cases = g_ptr_array_new_with_free_func (backend_case_free);
  g_test_add_func ("/backends/unsupported-precisions", test_unsupported_precisions);
  g_test_add_func ("/backends/auto-selection", test_auto_selection);
  add_backend_tests (CNCLIP_BACKEND_OPENBLAS, CNCLIP_PRECISION_FP32);
  if (cnclip_backend_available (CNCLIP_BACKEND_ONEDNN)) {
    add_backend_tests (CNCLIP_BACKEND_ONEDNN, CNCLIP_PRECISION_FP32);
    /* bf16 and int8 only where the CPU runs them fast; elsewhere init
     * refuses them. */
    static const CnclipPrecision reduced[] = { CNCLIP_PRECISION_BF16, CNCLIP_PRECISION_INT8 };
    for (guint i = 0; i < G_N_ELEMENTS (reduced); i++) {
      GError *error = NULL;
      CnclipBackend *b = cnclip_backend_new (CNCLIP_BACKEND_ONEDNN, reduced[i], &error);
      if (b) {
        cnclip_backend_free (b);
        add_backend_tests (CNCLIP_BACKEND_ONEDNN, reduced[i]);
      } else {
        g_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_BACKEND);
        g_test_message ("oneDNN %s not tested: %s", cnclip_precision_to_string (reduced[i]),
            error->message);
        g_clear_error (&error);
      }
    }
  }
  int status = g_test_run ();
  g_ptr_array_free (cases, TRUE);
  return status;
}
