/* test-encode.c: the kernels of ops.c against naive double-precision code,
 * and both towers against the golden tensors of the tiny fixture model
 * (FIXTURES.md sections 4, 5 and 6), once per backend built in. */
#include "config.h"

#include <math.h>
#include <string.h>

#include "test-util.h"
#include "context.h"
#include "ops.h"

/* FIXTURES.md section 6. */
#define TOL_EMBEDS 1e-4
#define TOL_HIDDEN 1e-4
#define TOL_LOGITS 1e-4
#define TOL_PROBS 1e-5
#define MIN_COSINE 0.99999

/* ------------------------------------------------------------------------ */
/* Kernels                                                                  */

static float *
random_floats (GRand *rand, gsize n, double offset, double scale)
{
  float *x = g_new (float, n);
  for (gsize i = 0; i < n; i++)
    x[i] = (float) (offset + scale * g_rand_double_range (rand, -1.0, 1.0));
  return x;
}

typedef struct
{
  int rows;
  int dim;
  double offset;                 /* input mean */
  double scale;                  /* input spread */
  float eps;
} LayerNormCase;

static const LayerNormCase layer_norm_cases[] = {
  { 197, 768, 0.0, 1.0, 1e-5f },
  /* the first LayerNorm of each tower: embeddings of std ~0.03 */
  { 52, 768, 0.01, 0.03, 1e-12f },
  { 3, 128, 0.0, 0.03, 1e-5f },
  /* a large mean over a small spread: one-pass variance fails here */
  { 8, 768, 300.0, 0.05, 1e-12f },
  /* widths that are not a multiple of the vector lanes */
  { 5, 37, -2.0, 0.5, 1e-5f },
  { 2, 1, 1.0, 1.0, 1e-5f },
};

/* Test that LayerNorm matches a double-precision two-pass reference (eps
 * inside the sqrt, biased variance) and that in place equals out of place. */
static void
test_layer_norm (void)
{
  GRand *rand = g_rand_new_with_seed (7);
  for (gsize k = 0; k < G_N_ELEMENTS (layer_norm_cases); k++) {
    const LayerNormCase *c = &layer_norm_cases[k];
    const gsize n = (gsize) c->rows * c->dim;
    float *x = random_floats (rand, n, c->offset, c->scale);
    float *w = random_floats (rand, c->dim, 1.0, 0.15);
    float *b = random_floats (rand, c->dim, 0.0, 0.1);
    float *y = g_new (float, n);
    float *in_place = g_memdup2 (x, n * sizeof (float));

    cnclip_layer_norm (x, c->dim, y, c->dim, c->rows, c->dim, w, b, c->eps);
    cnclip_layer_norm (in_place, c->dim, in_place, c->dim, c->rows, c->dim, w, b, c->eps);
    g_assert_cmpmem (y, n * sizeof (float), in_place, n * sizeof (float));

    double max_err = 0;
    for (int r = 0; r < c->rows; r++) {
      const float *row = x + (gsize) r * c->dim;
      double mean = 0, var = 0;
      for (int i = 0; i < c->dim; i++)
        mean += row[i];
      mean /= c->dim;
      for (int i = 0; i < c->dim; i++)
        var += (row[i] - mean) * (row[i] - mean);
      var /= c->dim;
      for (int i = 0; i < c->dim; i++) {
        double ref = (row[i] - mean) / sqrt (var + c->eps) * w[i] + b[i];
        max_err = MAX (max_err, fabs (ref - y[(gsize) r * c->dim + i]));
      }
    }
    g_test_message ("layer_norm %dx%d offset %g scale %g: max abs err %.3g", c->rows, c->dim,
        c->offset, c->scale, max_err);
    /* Outputs are O(1): within a few float ulps, also when the mean is
     * 6000 times the spread (a single float mean would be off by ~5e-4). */
    g_assert_cmpfloat (max_err, <, 2e-6);
    g_free (x);
    g_free (w);
    g_free (b);
    g_free (y);
    g_free (in_place);
  }
  g_rand_free (rand);
}

/* Test that LayerNorm honours row strides and leaves the gaps alone. */
static void
test_layer_norm_strides (void)
{
  const int dim = 4, ld = 6;
  float x[2 * 6] = { 1, 2, 3, 4, 99, 99, -1, 0, 1, 2, 99, 99 };
  float y[2 * 6];
  const float w[4] = { 1, 1, 1, 1 }, b[4] = { 0, 0, 0, 0 };
  for (int i = 0; i < 12; i++)
    y[i] = -7;
  cnclip_layer_norm (x, ld, y, ld, 2, dim, w, b, 0.0f);
  /* both rows are a, a+1, a+2, a+3: var 1.25 */
  const float expect[4] = { -1.5f / sqrtf (1.25f), -0.5f / sqrtf (1.25f), 0.5f / sqrtf (1.25f),
    1.5f / sqrtf (1.25f) };
  for (int r = 0; r < 2; r++) {
    for (int i = 0; i < dim; i++)
      g_assert_cmpfloat_with_epsilon (y[r * ld + i], expect[i], 1e-6);
    g_assert_cmpfloat (y[r * ld + 4], ==, -7);
    g_assert_cmpfloat (y[r * ld + 5], ==, -7);
  }
}

/* Test that the activations match their double-precision definitions:
 * erf GELU and x * sigmoid(1.702 x). */
static void
test_activations (void)
{
  const int n = 2001;
  float *g = g_new (float, n), *q = g_new (float, n);
  for (int i = 0; i < n; i++)
    g[i] = q[i] = -10.0f + 20.0f * i / (n - 1);
  cnclip_apply_activation (g, 1, n, n, CNCLIP_ACT_GELU);
  cnclip_apply_activation (q, 1, n, n, CNCLIP_ACT_QUICK_GELU);
  double err_g = 0, err_q = 0;
  for (int i = 0; i < n; i++) {
    double x = (double) (-10.0f + 20.0f * i / (n - 1));
    err_g = MAX (err_g, fabs (0.5 * x * (1.0 + erf (x / sqrt (2.0))) - g[i]));
    err_q = MAX (err_q, fabs (x / (1.0 + exp (-1.702 * x)) - q[i]));
  }
  g_test_message ("gelu max abs err %.3g, quick_gelu %.3g", err_g, err_q);
  g_assert_cmpfloat (err_g, <, 5e-6);
  g_assert_cmpfloat (err_q, <, 5e-6);
  /* a tanh-approximated GELU would be off by ~1e-3 around |x| = 2 */
  float x = 2.0f;
  cnclip_apply_activation (&x, 1, 1, 1, CNCLIP_ACT_GELU);
  g_assert_cmpfloat_with_epsilon (x, 1.9544997f, 1e-6);
  x = 1.0f;
  cnclip_apply_activation (&x, 1, 1, 1, CNCLIP_ACT_NONE);
  g_assert_cmpfloat (x, ==, 1.0f);
  g_free (g);
  g_free (q);
}

/* Test that softmax rows sum to one and match a double reference, also
 * for large and equal scores. */
static void
test_softmax_rows (void)
{
  float x[3 * 4] = { 1, 2, 3, 4, 1000, 1001, 1002, 1003, -5, -5, -5, -5 };
  cnclip_softmax_rows (x, 3, 4, 4);
  const double e[4] = { exp (-3.0), exp (-2.0), exp (-1.0), 1.0 };
  const double s = e[0] + e[1] + e[2] + e[3];
  for (int r = 0; r < 2; r++)
    for (int c = 0; c < 4; c++)
      g_assert_cmpfloat_with_epsilon (x[r * 4 + c], e[c] / s, 1e-7);
  for (int c = 0; c < 4; c++)
    g_assert_cmpfloat_with_epsilon (x[8 + c], 0.25, 1e-7);
}

/* Test that the gather, row-add and bias kernels address what they should. */
static void
test_gather_add (void)
{
  const float table[4 * 3] = { 0, 1, 2, 10, 11, 12, 20, 21, 22, 30, 31, 32 };
  const gint32 ids[3] = { 3, 0, 3 };
  float out[3 * 4];
  for (int i = 0; i < 12; i++)
    out[i] = -1;
  cnclip_gather_rows (table, 3, ids, 3, out, 4);
  const float expect[12] = { 30, 31, 32, -1, 0, 1, 2, -1, 30, 31, 32, -1 };
  g_assert_cmpmem (out, sizeof out, expect, sizeof expect);

  const float rows[2 * 3] = { 100, 200, 300, 400, 500, 600 };
  cnclip_add_rows (out, 2, 3, 4, rows, 3);
  const float bias[3] = { 1, 2, 3 };
  cnclip_add_bias (out, 3, 3, 4, bias);
  const float expect2[12] = { 131, 233, 335, -1, 401, 503, 605, -1, 31, 33, 35, -1 };
  g_assert_cmpmem (out, sizeof out, expect2, sizeof expect2);
}

/* Test that patchify + one linear equals the strided convolution of
 * FIXTURES.md 4.1: p[o][r][c] = Σ weight[o][ch][ky][kx] · pixel[ch][p·r+ky][p·c+kx]. */
static void
test_patchify_conv (void)
{
  const int ch = 3, size = 48, patch = 16, grid = 3, out_ch = 5;
  const int k = ch * patch * patch;
  GRand *rand = g_rand_new_with_seed (11);
  float *pixels = random_floats (rand, (gsize) ch * size * size, 0, 2);
  float *weight = random_floats (rand, (gsize) out_ch * k, 0, 0.05);
  float *patches = g_new (float, (gsize) grid * grid * k);
  cnclip_patchify (pixels, ch, size, patch, patches, k);

  double max_err = 0;
  for (int o = 0; o < out_ch; o++)
    for (int r = 0; r < grid; r++)
      for (int c = 0; c < grid; c++) {
        double conv = 0, lin = 0;
        for (int z = 0; z < ch; z++)
          for (int ky = 0; ky < patch; ky++)
            for (int kx = 0; kx < patch; kx++)
              conv += (double) weight[((o * ch + z) * patch + ky) * patch + kx]
                  * pixels[(z * size + patch * r + ky) * size + patch * c + kx];
        for (int i = 0; i < k; i++)
          lin += (double) weight[o * k + i] * patches[(gsize) (r * grid + c) * k + i];
        max_err = MAX (max_err, fabs (conv - lin));
      }
  g_assert_cmpfloat (max_err, <, 1e-9);
  /* spot check the layout: row 4 = patch (1, 1), value [ch 2][ky 3][kx 5] */
  g_assert_cmpfloat (patches[4 * k + 2 * 256 + 3 * 16 + 5], ==,
      pixels[(2 * size + 16 + 3) * size + 16 + 5]);
  g_free (pixels);
  g_free (weight);
  g_free (patches);
  g_rand_free (rand);
}

/* ------------------------------------------------------------------------ */
/* Golden tensors, per backend                                              */

typedef struct
{
  CnclipBackendKind kind;
  CnclipModel *model;            /* loaded once per process */
} BackendFixture;

static BackendFixture backends[] = {
  { CNCLIP_BACKEND_OPENBLAS, NULL },
  { CNCLIP_BACKEND_ONEDNN, NULL },
};

/* The model for @b, or NULL after g_test_skip when the backend is not
 * built in (or still a placeholder without ops). */
static CnclipModel *
backend_model (BackendFixture *b)
{
  if (!cnclip_backend_available (b->kind)) {
    char *msg = g_strdup_printf ("backend %s is not available in this build",
        cnclip_backend_kind_to_string (b->kind));
    g_test_skip (msg);
    g_free (msg);
    return NULL;
  }
  if (b->model == NULL) {
    GError *error = NULL;
    CnclipModelParams params = cnclip_model_default_params ();
    params.backend = b->kind;
    char *dir = test_data_path (TEST_TINY_MODEL);
    b->model = cnclip_model_load (dir, &params, &error);
    g_assert_no_error (error);
    g_assert_nonnull (b->model);
    g_assert_cmpint (cnclip_model_get_backend (b->model), ==, b->kind);
    g_free (dir);
  }
  return b->model;
}

static CnclipContext *
new_context (CnclipModel *model, int image_batch, int text_batch)
{
  GError *error = NULL;
  CnclipContextParams params = cnclip_context_default_params ();
  params.max_image_batch = image_batch;
  params.max_text_batch = text_batch;
  CnclipContext *ctx = cnclip_context_new (model, &params, &error);
  g_assert_no_error (error);
  g_assert_nonnull (ctx);
  return ctx;
}

/* Max abs error of @n rows of @dim against @expect, cosine >= MIN_COSINE
 * per row; returns the error after asserting it is within @tol. */
static double
check_rows (const char *what, CnclipBackendKind kind, const float *got, const float *expect,
    int n, int dim, double tol)
{
  double err = test_max_abs_diff (got, expect, (gsize) n * dim);
  double min_cos = 1.0;
  for (int i = 0; i < n; i++)
    min_cos = MIN (min_cos, test_cosine (got + (gsize) i * dim, expect + (gsize) i * dim, dim));
  g_test_message ("%s %s: max abs err %.3g, min cosine %.9f", cnclip_backend_kind_to_string (kind),
      what, err, min_cos);
  g_assert_cmpfloat (err, <=, tol);
  g_assert_cmpfloat (min_cos, >=, MIN_COSINE);
  return err;
}

static double
check_tensor (const char *what, CnclipBackendKind kind, const float *got, const float *expect,
    gsize n, double tol)
{
  double err = test_max_abs_diff (got, expect, n);
  g_test_message ("%s %s: max abs err %.3g", cnclip_backend_kind_to_string (kind), what, err);
  g_assert_cmpfloat (err, <=, tol);
  return err;
}

/* Test that cnclip_encode_pixels on the golden pixel_values gives
 * image_embeds, vision_pooled and vision_hidden_states within 1e-4. */
static void
test_golden_pixels (gconstpointer data)
{
  BackendFixture *b = (BackendFixture *) data;
  CnclipModel *model = backend_model (b);
  if (model == NULL)
    return;
  gint64 shape[8];
  int ndim;
  float *pixels = test_golden_tensor ("pixel_values", &ndim, shape);
  float *expect = test_golden_tensor ("image_embeds", NULL, NULL);
  float *expect_pooled = test_golden_tensor ("vision_pooled", NULL, NULL);
  float *expect_hidden = test_golden_tensor ("vision_hidden_states", &ndim, shape);
  const int n = test_golden_n_images ();
  const int dim = cnclip_model_get_projection_dim (model);
  const int width = model->config.vision.hidden_size;
  const int layers = model->config.vision.num_layers;
  const int tokens = cnclip_model_vision_tokens (model);
  g_assert_cmpint (ndim, ==, 4);
  g_assert_cmpint (shape[0], ==, layers + 1);
  g_assert_cmpint (shape[2], ==, tokens);
  g_assert_cmpint (shape[3], ==, width);

  CnclipContext *ctx = new_context (model, 1, 16);
  CnclipCapture capture = {
    .vision_pooled = g_new (float, (gsize) n * width),
    .vision_hidden = g_new (float, (gsize) (layers + 1) * tokens * width),
  };
  cnclip_context_set_capture (ctx, &capture);
  float *embeds = g_new (float, (gsize) n * dim);
  GError *error = NULL;
  g_assert_true (cnclip_encode_pixels (ctx, pixels, n, embeds, &error));
  g_assert_no_error (error);

  check_rows ("image_embeds", b->kind, embeds, expect, n, dim, TOL_EMBEDS);
  check_rows ("vision_pooled", b->kind, capture.vision_pooled, expect_pooled, n, width,
      TOL_HIDDEN);
  check_tensor ("vision_hidden_states", b->kind, capture.vision_hidden, expect_hidden,
      (gsize) (layers + 1) * tokens * width, TOL_HIDDEN);

  cnclip_context_free (ctx);
  g_free (capture.vision_pooled);
  g_free (capture.vision_hidden);
  g_free (embeds);
  g_free (pixels);
  g_free (expect);
  g_free (expect_pooled);
  g_free (expect_hidden);
}

/* Test that the full path, golden .rgb files through cnclip_encode_images
 * (resize and normalisation included), gives image_embeds within 1e-4. */
static void
test_golden_images (gconstpointer data)
{
  BackendFixture *b = (BackendFixture *) data;
  CnclipModel *model = backend_model (b);
  if (model == NULL)
    return;
  const int n = test_golden_n_images ();
  const int dim = cnclip_model_get_projection_dim (model);
  CnclipImage *images = g_new0 (CnclipImage, n);
  guint8 **rgb = g_new0 (guint8 *, n);
  for (int i = 0; i < n; i++) {
    const TestGoldenImage *im = test_golden_image (i);
    char *rel = g_build_filename (TEST_TINY_MODEL, "golden", im->rgb, NULL);
    char *path = test_data_path (rel);
    gsize len;
    rgb[i] = test_read_file (path, &len);
    g_assert_cmpuint (len, ==, (gsize) im->width * im->height * 3);
    images[i] = (CnclipImage) {
      .format = CNCLIP_PIXEL_RGB, .width = im->width, .height = im->height,
      .planes = { rgb[i] }, .strides = { im->width * 3 },
    };
    g_free (rel);
    g_free (path);
  }
  float *expect = test_golden_tensor ("image_embeds", NULL, NULL);
  float *embeds = g_new (float, (gsize) n * dim);
  CnclipContext *ctx = new_context (model, 3, 16);
  GError *error = NULL;
  g_assert_true (cnclip_encode_images (ctx, images, n, embeds, &error));
  g_assert_no_error (error);
  check_rows ("image_embeds from .rgb", b->kind, embeds, expect, n, dim, TOL_EMBEDS);

  cnclip_context_free (ctx);
  for (int i = 0; i < n; i++)
    g_free (rgb[i]);
  g_free (rgb);
  g_free (images);
  g_free (embeds);
  g_free (expect);
}

/* Runs the text tower on the golden texts (strings or token rows),
 * capturing text_pooled and the hidden states of text @hidden_index. */
static float *
encode_golden_texts (CnclipModel *model, gboolean from_ids, CnclipCapture *capture)
{
  const int n = test_golden_n_texts ();
  const int dim = cnclip_model_get_projection_dim (model);
  float *embeds = g_new (float, (gsize) n * dim);
  CnclipContext *ctx = new_context (model, 1, 16);
  cnclip_context_set_capture (ctx, capture);
  GError *error = NULL;
  if (from_ids) {
    gint64 shape[8];
    int ndim;
    gint32 *ids = test_golden_ids ("input_ids", &ndim, shape);
    g_assert_cmpint (shape[0], ==, n);
    g_assert_true (cnclip_encode_token_ids (ctx, ids, n, (int) shape[1], embeds, &error));
    g_free (ids);
  } else {
    const char **texts = g_new (const char *, n);
    for (int i = 0; i < n; i++)
      texts[i] = test_golden_text (i)->text;
    g_assert_true (cnclip_encode_texts (ctx, texts, n, embeds, &error));
    g_free (texts);
  }
  g_assert_no_error (error);
  cnclip_context_free (ctx);
  return embeds;
}

static void
check_golden_texts (BackendFixture *b, gboolean from_ids)
{
  CnclipModel *model = backend_model (b);
  if (model == NULL)
    return;
  const int n = test_golden_n_texts ();
  const int dim = cnclip_model_get_projection_dim (model);
  const int width = model->config.text.hidden_size;
  const int layers = model->config.text.num_layers;
  gint64 shape[8];
  int ndim;
  float *expect = test_golden_tensor ("text_embeds", NULL, NULL);
  float *expect_pooled = test_golden_tensor ("text_pooled", NULL, NULL);
  float *expect_hidden = test_golden_tensor ("text_hidden_states", &ndim, shape);
  g_assert_cmpint (ndim, ==, 4);
  g_assert_cmpint (shape[0], ==, layers + 1);
  const int golden_texts = (int) shape[1], row = (int) shape[2];
  g_assert_cmpint (shape[3], ==, width);
  const char *what = from_ids ? "text_embeds from input_ids" : "text_embeds from texts";

  /* The hidden states of the golden texts 0 and 1, one run each. */
  double hidden_err = 0;
  for (int t = 0; t < golden_texts; t++) {
    CnclipCapture capture = {
      .text_pooled = g_new (float, (gsize) n * width),
      .text_hidden = g_new (float, (gsize) (layers + 1) * row * width),
      .text_index = t,
    };
    float *embeds = encode_golden_texts (model, from_ids, &capture);
    const int tokens = test_golden_text (t)->num_tokens;
    g_assert_cmpint (capture.text_hidden_tokens, ==, tokens);
    for (int l = 0; l <= layers; l++) {
      const float *e = expect_hidden + ((gsize) (l * golden_texts + t) * row) * width;
      const float *g = capture.text_hidden + (gsize) l * tokens * width;
      hidden_err = MAX (hidden_err, test_max_abs_diff (g, e, (gsize) tokens * width));
    }
    if (t == 0) {
      check_rows (what, b->kind, embeds, expect, n, dim, TOL_EMBEDS);
      check_rows ("text_pooled", b->kind, capture.text_pooled, expect_pooled, n, width,
          TOL_HIDDEN);
    }
    g_free (embeds);
    g_free (capture.text_pooled);
    g_free (capture.text_hidden);
  }
  g_test_message ("%s text_hidden_states (rows < num_tokens): max abs err %.3g",
      cnclip_backend_kind_to_string (b->kind), hidden_err);
  g_assert_cmpfloat (hidden_err, <=, TOL_HIDDEN);
  g_free (expect);
  g_free (expect_pooled);
  g_free (expect_hidden);
}

/* Test that cnclip_encode_texts on the 19 golden texts (tokenizer
 * included) gives text_embeds, text_pooled and text_hidden_states within 1e-4. */
static void
test_golden_texts (gconstpointer data)
{
  check_golden_texts ((BackendFixture *) data, FALSE);
}

/* Test that cnclip_encode_token_ids on the golden input_ids rows gives
 * the same tensors within 1e-4. */
static void
test_golden_token_ids (gconstpointer data)
{
  check_golden_texts ((BackendFixture *) data, TRUE);
}

/* Test that logits_per_image (1e-4) and probs (1e-5) follow from our
 * embeddings through cnclip_score with the model's logit scale. */
static void
test_golden_scores (gconstpointer data)
{
  BackendFixture *b = (BackendFixture *) data;
  CnclipModel *model = backend_model (b);
  if (model == NULL)
    return;
  const int ni = test_golden_n_images (), nt = test_golden_n_texts ();
  const int dim = cnclip_model_get_projection_dim (model);
  float *pixels = test_golden_tensor ("pixel_values", NULL, NULL);
  float *image_embeds = g_new (float, (gsize) ni * dim);
  CnclipContext *ctx = new_context (model, 2, 16);
  GError *error = NULL;
  g_assert_true (cnclip_encode_pixels (ctx, pixels, ni, image_embeds, &error));
  g_assert_no_error (error);
  cnclip_context_free (ctx);
  float *text_embeds = encode_golden_texts (model, TRUE, NULL);

  float *logits = g_new (float, (gsize) ni * nt), *probs = g_new (float, (gsize) ni * nt);
  cnclip_score (image_embeds, ni, text_embeds, nt, dim, cnclip_model_get_logit_scale (model),
      NULL, logits, probs);
  float *expect_logits = test_golden_tensor ("logits_per_image", NULL, NULL);
  float *expect_probs = test_golden_tensor ("probs", NULL, NULL);
  check_tensor ("logits_per_image", b->kind, logits, expect_logits, (gsize) ni * nt, TOL_LOGITS);
  check_tensor ("probs", b->kind, probs, expect_probs, (gsize) ni * nt, TOL_PROBS);

  g_free (pixels);
  g_free (image_embeds);
  g_free (text_embeds);
  g_free (logits);
  g_free (probs);
  g_free (expect_logits);
  g_free (expect_probs);
}

/* Largest |value|, at least 1: the scale for comparing two float runs. */
static double
max_magnitude (const float *x, gsize n)
{
  double m = 1.0;
  for (gsize i = 0; i < n; i++)
    m = MAX (m, fabs (x[i]));
  return m;
}

/* Test that batching does not change results: 10 images with
 * max_image_batch 4 (chunks 4, 4, 2) equal one image per call, and 19
 * texts with max_text_batch 5 equal one text per call, within 1e-6 of the
 * largest value. Not bitwise: BLAS libraries pick their kernels and
 * blockings by the row count, which moves float rounding by a few ulps. */
static void
test_batches (gconstpointer data)
{
  BackendFixture *b = (BackendFixture *) data;
  CnclipModel *model = backend_model (b);
  if (model == NULL)
    return;
  const int ni = test_golden_n_images (), nt = test_golden_n_texts ();
  const int dim = cnclip_model_get_projection_dim (model);
  const gsize image_floats = (gsize) 3 * 224 * 224;
  GError *error = NULL;

  float *pixels = test_golden_tensor ("pixel_values", NULL, NULL);
  float *batched = g_new (float, (gsize) ni * dim), *single = g_new (float, (gsize) ni * dim);
  CnclipContext *big = new_context (model, 4, 5);
  CnclipContext *one = new_context (model, 1, 1);
  g_assert_true (cnclip_encode_pixels (big, pixels, ni, batched, &error));
  g_assert_no_error (error);
  for (int i = 0; i < ni; i++) {
    g_assert_true (cnclip_encode_pixels (one, pixels + i * image_floats, 1,
            single + (gsize) i * dim, &error));
    g_assert_no_error (error);
  }
  double err = test_max_abs_diff (batched, single, (gsize) ni * dim);
  double scale = max_magnitude (single, (gsize) ni * dim);
  g_test_message ("%s images batched vs single: max abs diff %.3g (max |value| %.3g)",
      cnclip_backend_kind_to_string (b->kind), err, scale);
  g_assert_cmpfloat (err, <=, 1e-6 * scale);

  const char **texts = g_new (const char *, nt);
  for (int i = 0; i < nt; i++)
    texts[i] = test_golden_text (i)->text;
  float *tb = g_new (float, (gsize) nt * dim), *ts = g_new (float, (gsize) nt * dim);
  g_assert_true (cnclip_encode_texts (big, texts, nt, tb, &error));
  g_assert_no_error (error);
  for (int i = 0; i < nt; i++) {
    g_assert_true (cnclip_encode_texts (one, texts + i, 1, ts + (gsize) i * dim, &error));
    g_assert_no_error (error);
  }
  err = test_max_abs_diff (tb, ts, (gsize) nt * dim);
  scale = max_magnitude (ts, (gsize) nt * dim);
  g_test_message ("%s texts batched vs single: max abs diff %.3g (max |value| %.3g)",
      cnclip_backend_kind_to_string (b->kind), err, scale);
  g_assert_cmpfloat (err, <=, 1e-6 * scale);

  cnclip_context_free (big);
  cnclip_context_free (one);
  g_free (texts);
  g_free (tb);
  g_free (ts);
  g_free (pixels);
  g_free (batched);
  g_free (single);
}

static void
add_backend_tests (void)
{
  static const struct
  {
    const char *name;
    GTestDataFunc func;
  } golden_tests[] = {
    { "golden-pixels", test_golden_pixels },
    { "golden-images", test_golden_images },
    { "golden-texts", test_golden_texts },
    { "golden-token-ids", test_golden_token_ids },
    { "golden-scores", test_golden_scores },
    { "batches", test_batches },
  };
  for (gsize b = 0; b < G_N_ELEMENTS (backends); b++) {
    for (gsize t = 0; t < G_N_ELEMENTS (golden_tests); t++) {
      char *path = g_strdup_printf ("/encode/%s/%s",
          cnclip_backend_kind_to_string (backends[b].kind), golden_tests[t].name);
      g_test_add_data_func (path, &backends[b], golden_tests[t].func);
      g_free (path);
    }
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/encode/ops/layer-norm", test_layer_norm);
  g_test_add_func ("/encode/ops/layer-norm-strides", test_layer_norm_strides);
  g_test_add_func ("/encode/ops/activations", test_activations);
  g_test_add_func ("/encode/ops/softmax-rows", test_softmax_rows);
  g_test_add_func ("/encode/ops/gather-add", test_gather_add);
  g_test_add_func ("/encode/ops/patchify-conv", test_patchify_conv);
  add_backend_tests ();
  int status = g_test_run ();
  for (gsize b = 0; b < G_N_ELEMENTS (backends); b++)
    g_clear_pointer (&backends[b].model, cnclip_model_unref);
  return status;
}
