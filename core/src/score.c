/* score.c: the "Scores" functions of cnclip.h (FIXTURES.md 4.4).
 *
 * Norms and dot products are accumulated in double: the embeddings are not
 * normalised, and the rounding of a 512-term float sum (about 1e-6
 * relative) times a logit scale of up to 100 (trained CLIP models) would
 * use up the whole 1e-4 logit tolerance. */
#include "config.h"

#include <math.h>

#include "cnclip.h"

static double
squared_norm (const float *v, int dim)
{
  double s = 0.0;
  for (int i = 0; i < dim; i++)
    s += (double) v[i] * v[i];
  return s;
}

void
cnclip_l2_normalize (float *vectors, int n, int dim)
{
  g_return_if_fail (vectors != NULL || n <= 0 || dim <= 0);

  for (int r = 0; r < n; r++) {
    float *v = vectors + (gsize) r * dim;
    const double norm = sqrt (squared_norm (v, dim));
    if (norm == 0.0 || !isfinite (norm))
      continue;                 /* zero rows stay zero; inf/NaN are left as they are */
    const double inv = 1.0 / norm;
    for (int i = 0; i < dim; i++)
      v[i] = (float) (v[i] * inv);
  }
}

void
cnclip_softmax (float *values, int n)
{
  g_return_if_fail (values != NULL || n <= 0);
  if (n <= 0)
    return;

  float max = values[0];
  for (int i = 1; i < n; i++)
    if (values[i] > max)
      max = values[i];

  if (isinf (max)) {
    /* all -inf: no preference, uniform; some +inf: they share everything */
    int count = 0;
    for (int i = 0; i < n; i++)
      count += values[i] == max;
    for (int i = 0; i < n; i++)
      values[i] = values[i] == max ? 1.0f / count : 0.0f;
    return;
  }

  double sum = 0.0;
  for (int i = 0; i < n; i++) {
    values[i] = expf (values[i] - max);    /* <= 1: cannot overflow */
    sum += values[i];
  }
  /* sum >= 1 (the maximum contributes exp (0)), unless a value was NaN */
  const float inv = (float) (1.0 / sum);
  for (int i = 0; i < n; i++)
    values[i] *= inv;
}

void
cnclip_score (const float *image_embeds, int n_images, const float *text_embeds, int n_texts,
    int dim, float logit_scale, float *cosines, float *logits, float *probs)
{
  g_return_if_fail (n_images <= 0 || n_texts <= 0 || (image_embeds != NULL
          && text_embeds != NULL));
  if (n_images <= 0 || n_texts <= 0)
    return;

  for (int n = 0; n < n_images; n++) {
    const float *ie = image_embeds + (gsize) n * dim;
    const double image_norm = sqrt (squared_norm (ie, dim));
    const gsize row = (gsize) n * n_texts;
    for (int m = 0; m < n_texts; m++) {
      const float *te = text_embeds + (gsize) m * dim;
      /* the text norm is recomputed per image rather than stored, so that
       * scoring needs no allocation; it costs one more multiply-add per term */
      double dot = 0.0, text_sq = 0.0;
      for (int i = 0; i < dim; i++) {
        dot += (double) ie[i] * te[i];
        text_sq += (double) te[i] * te[i];
      }
      const double denom = image_norm * sqrt (text_sq);
      const double cosine = denom > 0.0 ? dot / denom : 0.0;   /* a zero vector matches nothing */
      if (cosines != NULL)
        cosines[row + m] = (float) cosine;
      if (logits != NULL)
        logits[row + m] = (float) (logit_scale * cosine);
      if (probs != NULL)
        probs[row + m] = (float) (logit_scale * cosine);
    }
    if (probs != NULL)
      cnclip_softmax (probs + row, n_texts);
  }
}
