/* ops.h: the non-GEMM kernels of both towers (LayerNorm, activations,
 * softmax, embedding gathers, patch extraction). Math kernels return void:
 * shapes and indices were checked by the caller (at load, or when a batch
 * is accepted). All are thread-safe (no state) and allocate nothing. */
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

/* Adds the matrix @rows (row stride @ld_rows) to @x, row by row:
 * x[r][c] += rows[r][c]. Used for position embeddings. */
void cnclip_add_rows (float *x, int n_rows, int n_cols, int ld, const float *rows, int ld_rows);

/* Softmax of each row of @n_cols values, in place. */
void cnclip_softmax_rows (float *x, int n_rows, int n_cols, int ld);

/* LayerNorm over the last dimension of each of @n_rows rows of @dim floats:
 * y = (x - mean) / sqrt (var + eps) * weight + bias, with the biased variance
 * (divided by @dim) and eps inside the square root, as PyTorch. Mean and
 * variance are computed in two passes (the inputs of the first LayerNorm of
 * each tower have a variance near 1e-3 around a non-zero mean, where the
 * one-pass E[x²] - E[x]² formula loses digits). @x and @y may be the same
 * buffer (in place) but must not otherwise overlap. */
void cnclip_layer_norm (const float *x, int ldx, float *y, int ldy, int n_rows, int dim,
    const float *weight, const float *bias, float eps);

/* out[i] = table[ids[i]] for @n ids, rows of @dim floats (out row stride
 * @ld_out). Every id must already be known to lie in the table. */
void cnclip_gather_rows (const float *table, int dim, const gint32 *ids, int n, float *out,
    int ld_out);

/* im2col for a convolution whose stride equals its kernel (ViT patches):
 * @pixels planar [channels, size, size]; patch (r, c) of the g x g grid
 * (g = size / patch) becomes row r * g + c of @out, holding its
 * channels * patch * patch values in [ch][ky][kx] order, which is the
 * order of a PyTorch conv weight [W, ch, ky, kx] flattened, so one linear
 * with that weight computes the convolution. @out rows have stride @ld_out. */
void cnclip_patchify (const float *pixels, int channels, int size, int patch, float *out,
    int ld_out);

G_END_DECLS

#endif /* CNCLIP_OPS_H */
