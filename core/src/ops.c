/* ops.c: non-GEMM kernels (see ops.h). */
#include "config.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "ops.h"

/* These kernels run on the calling thread. They take about a tenth of a
 * forward pass; OpenMP regions here made the OpenBLAS backend three times
 * slower on two cores, because the OpenMP workers spin while OpenBLAS's own
 * pthreads need the cores for the next GEMM. */

/* Independent partial sums, so the compiler can vectorise the reductions
 * without -ffast-math (it may not reassociate one float accumulator). */
#define LANES 16

void
cnclip_apply_activation (float *x, int n_rows, int n_cols, int ld, CnclipActivation act)
{
  if (act == CNCLIP_ACT_NONE)
    return;
  for (int r = 0; r < n_rows; r++) {
    float *row = x + (gsize) r * ld;
    if (act == CNCLIP_ACT_GELU) {
      for (int c = 0; c < n_cols; c++)
        row[c] = cnclip_gelu (row[c]);
    } else {
      for (int c = 0; c < n_cols; c++)
        row[c] = cnclip_quick_gelu (row[c]);
    }
  }
}

void
cnclip_add_bias (float *x, int n_rows, int n_cols, int ld, const float *bias)
{
  if (bias == NULL)
    return;
  for (int r = 0; r < n_rows; r++) {
    float *row = x + (gsize) r * ld;
    for (int c = 0; c < n_cols; c++)
      row[c] += bias[c];
  }
}

void
cnclip_add_rows (float *x, int n_rows, int n_cols, int ld, const float *rows, int ld_rows)
{
  for (int r = 0; r < n_rows; r++) {
    float *dst = x + (gsize) r * ld;
    const float *src = rows + (gsize) r * ld_rows;
    for (int c = 0; c < n_cols; c++)
      dst[c] += src[c];
  }
}

void
cnclip_softmax_rows (float *x, int n_rows, int n_cols, int ld)
{
  for (int r = 0; r < n_rows; r++) {
    float *row = x + (gsize) r * ld;
    float max = -FLT_MAX;
    for (int c = 0; c < n_cols; c++)
      if (row[c] > max)
        max = row[c];
    float sum = 0.0f;
    for (int c = 0; c < n_cols; c++) {
      row[c] = expf (row[c] - max);
      sum += row[c];
    }
    float inv = 1.0f / sum;
    for (int c = 0; c < n_cols; c++)
      row[c] *= inv;
  }
}

static double
sum_lanes (const float *x, int n, float offset)
{
  float acc[LANES] = { 0 };
  int i = 0;
  for (; i + LANES <= n; i += LANES)
    for (int j = 0; j < LANES; j++)
      acc[j] += x[i + j] - offset;
  double sum = 0.0;
  for (int j = 0; j < LANES; j++)
    sum += acc[j];
  for (; i < n; i++)
    sum += x[i] - offset;
  return sum;
}

static double
sum_squares_lanes (const float *x, int n, float mean_hi, float mean_lo)
{
  float acc[LANES] = { 0 };
  int i = 0;
  for (; i + LANES <= n; i += LANES)
    for (int j = 0; j < LANES; j++) {
      float d = (x[i + j] - mean_hi) - mean_lo;
      acc[j] += d * d;
    }
  double sum = 0.0;
  for (int j = 0; j < LANES; j++)
    sum += acc[j];
  for (; i < n; i++) {
    float d = (x[i] - mean_hi) - mean_lo;
    sum += (double) d * d;
  }
  return sum;
}

void
cnclip_layer_norm (const float *x, int ldx, float *y, int ldy, int n_rows, int dim,
    const float *weight, const float *bias, float eps)
{
  for (int r = 0; r < n_rows; r++) {
    const float *in = x + (gsize) r * ldx;
    float *out = y + (gsize) r * ldy;
    /* The mean is kept as a float pair hi + lo: pass one finds hi, pass two
     * sums the deviations from it (exact differences when hi is close) for
     * lo. A single float mean would be off by up to half an ulp of |mean|,
     * which is large next to the spread when |mean| >> spread. */
    float mean_hi = (float) (sum_lanes (in, dim, 0.0f) / dim);
    float mean_lo = (float) (sum_lanes (in, dim, mean_hi) / dim);
    double var = sum_squares_lanes (in, dim, mean_hi, mean_lo) / dim;
    float inv = (float) (1.0 / sqrt (var + (double) eps));
    for (int c = 0; c < dim; c++)
      out[c] = ((in[c] - mean_hi) - mean_lo) * inv * weight[c] + bias[c];
  }
}

void
cnclip_gather_rows (const float *table, int dim, const gint32 *ids, int n, float *out,
    int ld_out)
{
  for (int i = 0; i < n; i++)
    memcpy (out + (gsize) i * ld_out, table + (gsize) ids[i] * dim, sizeof (float) * dim);
}

void
cnclip_patchify (const float *pixels, int channels, int size, int patch, float *out, int ld_out)
{
  const int grid = size / patch;
  const gsize plane = (gsize) size * size;
  for (int r = 0; r < grid; r++) {
    for (int c = 0; c < grid; c++) {
      float *dst = out + (gsize) (r * grid + c) * ld_out;
      for (int ch = 0; ch < channels; ch++) {
        const float *src = pixels + ch * plane + (gsize) r * patch * size + (gsize) c * patch;
        for (int ky = 0; ky < patch; ky++) {
          memcpy (dst, src + (gsize) ky * size, sizeof (float) * patch);
          dst += patch;
        }
      }
    }
  }
}
