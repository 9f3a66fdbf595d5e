/* ops.h: the non-GEMM kernels of both towers (LayerNorm, activations,
 * softmax, embedding helpers). Math kernels return void: shapes were checked
 * at load. */
#ifndef CNCLIP_OPS_H
#define CNCLIP_OPS_H

#include <math.h>
#include "backend.h"

G_BEGIN_DECLS

static inline float
cnclip_gelu (float x)
{
  /* exact erf GELU, as BERT's "gelu" */
  return 0.5f * x * (1.0f + erff (x * 0.70710678118654752440f));
}

static inline float
cnclip_quick_gelu (float x)
{
  return x / (1.0f + expf (-1.702f * x));
}

/* Applies @act to @n_cols values of each of @n_rows rows (row stride @ld). */
void cnclip_apply_activation (float *x, int n_rows, int n_cols, int ld, CnclipActivation act);

/* Adds @bias[n_cols] to each row. */
void cnclip_add_bias (float *x, int n_rows, int n_cols, int ld, const float *bias);

/* Softmax of each row of @n_cols values, in place. */
void cnclip_softmax_rows (float *x, int n_rows, int n_cols, int ld);

G_END_DECLS

#endif /* CNCLIP_OPS_H */
