/* ops.c: non-GEMM kernels (see ops.h). */
#include "config.h"

#include <float.h>
#include <math.h>

#include "ops.h"

void
cnclip_apply_activation (float *x, int n_rows, int n_cols, int ld, CnclipActivation act)
{
  if (act == CNCLIP_ACT_NONE)
    return;
#pragma omp parallel for schedule(static) if (n_rows * n_cols > 65536)
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
