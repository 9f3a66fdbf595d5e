/* test-score.c: cosine similarity, logits and softmax (FIXTURES.md 4.4). */
#include "config.h"

#include <math.h>
#include <string.h>

#include "test-util.h"

/* Test that cnclip_score on the golden embeddings reproduces the reference
 * logits_per_image (within 1e-4) and probs (within 1e-5) for all 10 x 19 pairs. */
static void
test_score_golden (void)
{
  int ndim;
  gint64 shape[8];
  float *image = test_golden_tensor ("image_embeds", &ndim, shape);
  g_assert_cmpint (ndim, ==, 2);
  const int n_images = (int) shape[0], dim = (int) shape[1];
  float *text = test_golden_tensor ("text_embeds", &ndim, shape);
  g_assert_cmpint (ndim, ==, 2);
  const int n_texts = (int) shape[0];
  g_assert_cmpint (shape[1], ==, dim);
  g_assert_cmpint (n_images, ==, 10);
  g_assert_cmpint (n_texts, ==, 19);
  float *scale = test_golden_tensor ("logit_scale_exp", NULL, NULL);
  float *expect_logits = test_golden_tensor ("logits_per_image", &ndim, shape);
  g_assert_cmpint (shape[0], ==, n_images);
  g_assert_cmpint (shape[1], ==, n_texts);
  float *expect_probs = test_golden_tensor ("probs", NULL, NULL);
  g_assert_cmpfloat_with_epsilon (scale[0], 17.960562f, 1e-5);

  const gsize n = (gsize) n_images * n_texts;
  float *cosines = g_new (float, n), *logits = g_new (float, n), *probs = g_new (float, n);
  cnclip_score (image, n_images, text, n_texts, dim, scale[0], cosines, logits, probs);

  const double logit_err = test_max_abs_diff (logits, expect_logits, n);
  const double prob_err = test_max_abs_diff (probs, expect_probs, n);
  if (g_test_verbose ())
    g_printerr ("  max |logits - ref| %.3g, max |probs - ref| %.3g\n", logit_err, prob_err);
  g_assert_cmpfloat (logit_err, <=, 1e-4);
  g_assert_cmpfloat (prob_err, <=, 1e-5);
  for (gsize i = 0; i < n; i++) {
    g_assert_cmpfloat_with_epsilon (cosines[i] * scale[0], logits[i], 1e-5);
    g_assert_cmpfloat (fabsf (cosines[i]), <=, 1.0f);
  }

  /* each output alone gives the same values (NULL outputs are skipped) */
  float *only = g_new (float, n);
  cnclip_score (image, n_images, text, n_texts, dim, scale[0], NULL, NULL, only);
  g_assert_cmpmem (only, n * sizeof (float), probs, n * sizeof (float));
  cnclip_score (image, n_images, text, n_texts, dim, scale[0], NULL, only, NULL);
  g_assert_cmpmem (only, n * sizeof (float), logits, n * sizeof (float));
  cnclip_score (image, n_images, text, n_texts, dim, scale[0], only, NULL, NULL);
  g_assert_cmpmem (only, n * sizeof (float), cosines, n * sizeof (float));
  cnclip_score (image, n_images, text, n_texts, dim, scale[0], NULL, NULL, NULL);

  /* embeddings need not be normalised: normalising first changes nothing */
  cnclip_l2_normalize (image, n_images, dim);
  cnclip_l2_normalize (text, n_texts, dim);
  cnclip_score (image, n_images, text, n_texts, dim, scale[0], NULL, only, NULL);
  g_assert_cmpfloat (test_max_abs_diff (only, expect_logits, n), <=, 1e-4);

  g_free (only);
  g_free (cosines);
  g_free (logits);
  g_free (probs);
  g_free (expect_probs);
  g_free (expect_logits);
  g_free (scale);
  g_free (text);
  g_free (image);
}

/* Test that scores of hand-made vectors are exact cosines, that scaling an
 * embedding changes nothing, and that a zero embedding scores 0 (no NaN). */
static void
test_score_small (void)
{
  const float images[] = {
    3, 4, 0,                    /* |v| = 5 */
    0, 0, 0,                    /* zero */
  };
  const float texts[] = {
    30, 40, 0,                  /* same direction, ten times longer */
    0, 0, 2,                    /* orthogonal */
    -4, 3, 0,                   /* orthogonal */
    -3, -4, 0,                  /* opposite */
  };
  float cos[8], logits[8], probs[8];
  cnclip_score (images, 2, texts, 4, 3, 10.0f, cos, logits, probs);
  const float expect_cos[8] = { 1, 0, 0, -1, 0, 0, 0, 0 };
  for (int i = 0; i < 8; i++) {
    g_assert_cmpfloat_with_epsilon (cos[i], expect_cos[i], 1e-7);
    g_assert_cmpfloat_with_epsilon (logits[i], 10.0f * expect_cos[i], 1e-6);
  }
  /* row 0: softmax of (10, 0, 0, -10) */
  const double z = exp (10.0) + 2.0 + exp (-10.0);
  g_assert_cmpfloat_with_epsilon (probs[0], exp (10.0) / z, 1e-6);
  g_assert_cmpfloat_with_epsilon (probs[1], 1.0 / z, 1e-7);
  g_assert_cmpfloat_with_epsilon (probs[3], exp (-10.0) / z, 1e-9);
  /* row 1 (zero image): uniform */
  for (int m = 0; m < 4; m++)
    g_assert_cmpfloat_with_epsilon (probs[4 + m], 0.25f, 1e-7);

  /* empty inputs do nothing */
  cnclip_score (images, 0, texts, 4, 3, 10.0f, cos, logits, probs);
  cnclip_score (images, 2, texts, 0, 3, 10.0f, cos, logits, probs);
  g_assert_cmpfloat_with_epsilon (cos[0], 1.0f, 1e-7);
}

/* Test that l2_normalize gives unit rows in the same direction and leaves
 * zero rows zero. */
static void
test_l2_normalize (void)
{
  float v[] = {
    3, 4, 0, 0,
    0, 0, 0, 0,
    1e-30f, 0, 0, 1e-30f,       /* tiny: still normalisable (norm computed in double) */
    -2, 2, -2, 2,
  };
  cnclip_l2_normalize (v, 4, 4);
  const float expect[] = {
    0.6f, 0.8f, 0, 0,
    0, 0, 0, 0,
    (float) M_SQRT1_2, 0, 0, (float) M_SQRT1_2,
    -0.5f, 0.5f, -0.5f, 0.5f,
  };
  for (guint i = 0; i < G_N_ELEMENTS (v); i++)
    g_assert_cmpfloat_with_epsilon (v[i], expect[i], 1e-7);
  for (int r = 0; r < 4; r++) {
    float norm = 0;
    for (int i = 0; i < 4; i++)
      norm += v[4 * r + i] * v[4 * r + i];
    g_assert_cmpfloat_with_epsilon (norm, r == 1 ? 0.0f : 1.0f, 1e-6);
  }
  cnclip_l2_normalize (v, 0, 4);  /* nothing to do */
}

/* Test that softmax is exact on small values and neither overflows nor gives
 * NaN on huge ones or infinities. */
static void
test_softmax (void)
{
  float small[] = { 0.0f, logf (3.0f) };
  cnclip_softmax (small, 2);
  g_assert_cmpfloat_with_epsilon (small[0], 0.25f, 1e-7);
  g_assert_cmpfloat_with_epsilon (small[1], 0.75f, 1e-7);

  /* expf (1000) overflows: only max-subtraction makes this work */
  float big[] = { 1000.0f, 1001.0f, 1002.0f, -1e30f };
  cnclip_softmax (big, 4);
  const double z = 1.0 + exp (-1.0) + exp (-2.0);
  g_assert_cmpfloat_with_epsilon (big[0], exp (-2.0) / z, 1e-7);
  g_assert_cmpfloat_with_epsilon (big[1], exp (-1.0) / z, 1e-7);
  g_assert_cmpfloat_with_epsilon (big[2], 1.0 / z, 1e-7);
  g_assert_cmpfloat (big[3], ==, 0.0f);

  float one[] = { -5e37f };
  cnclip_softmax (one, 1);
  g_assert_cmpfloat (one[0], ==, 1.0f);

  float neg_inf[] = { -INFINITY, -INFINITY };
  cnclip_softmax (neg_inf, 2);
  g_assert_cmpfloat (neg_inf[0], ==, 0.5f);
  g_assert_cmpfloat (neg_inf[1], ==, 0.5f);

  float pos_inf[] = { INFINITY, 3.0f, INFINITY };
  cnclip_softmax (pos_inf, 3);
  g_assert_cmpfloat (pos_inf[0], ==, 0.5f);
  g_assert_cmpfloat (pos_inf[1], ==, 0.0f);
  g_assert_cmpfloat (pos_inf[2], ==, 0.5f);

  float sum = 0;
  float many[1000];
  for (int i = 0; i < 1000; i++)
    many[i] = (float) (i % 37) * 3.0f;
  cnclip_softmax (many, 1000);
  for (int i = 0; i < 1000; i++) {
    g_assert_false (isnan (many[i]));
    sum += many[i];
  }
  g_assert_cmpfloat_with_epsilon (sum, 1.0f, 1e-5);

  cnclip_softmax (many, 0);     /* nothing to do */
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/score/golden", test_score_golden);
  g_test_add_func ("/score/small", test_score_small);
  g_test_add_func ("/score/l2-normalize", test_l2_normalize);
  g_test_add_func ("/score/softmax", test_softmax);
  return g_test_run ();
}
