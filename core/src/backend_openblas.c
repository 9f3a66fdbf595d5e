/* backend_openblas.c: the portable backend, cblas_sgemm on the weights as
 * loaded (no packing). Also the cross-check for faster backends. */
#include "config.h"

#include <cblas.h>

#include "backend.h"
#include "ops.h"

static void
openblas_linear_forward (CnclipBackend *backend, const CnclipLinear *linear, const float *x,
    int ldx, int m, float *y, int ldy, gboolean accumulate)
{
  g_return_if_fail (!(accumulate && linear->act != CNCLIP_ACT_NONE));
  cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, m, linear->n_out, linear->n_in, 1.0f, x,
      ldx, linear->weight, linear->n_in, accumulate ? 1.0f : 0.0f, y, ldy);
  cnclip_add_bias (y, m, linear->n_out, ldy, linear->bias);
  cnclip_apply_activation (y, m, linear->n_out, ldy, linear->act);
}

static void
openblas_attention (CnclipBackend *backend, const CnclipAttentionArgs *a)
{
  const int t = a->n_tokens;
  for (int h = 0; h < a->n_heads; h++) {
    const int col = h * a->head_dim;
    float *scores = a->scratch + (gsize) h * t * t;
    cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, t, t, a->head_dim, a->scale,
        a->q + col, a->ld, a->k + col, a->ld, 0.0f, scores, t);
    if (a->key_mask_add) {
      for (int i = 0; i < t; i++)
        for (int j = 0; j < t; j++)
          scores[(gsize) i * t + j] += a->key_mask_add[j];
    }
    cnclip_softmax_rows (scores, t, t, t);
    cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, t, a->head_dim, t, 1.0f, scores, t,
        a->v + col, a->ld, 0.0f, a->out + col, a->ld_out);
  }
}

static gboolean
openblas_init (CnclipBackend *backend, CnclipPrecision precision, GError **error)
{
  if (precision != CNCLIP_PRECISION_FP32) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_BACKEND,
        "the OpenBLAS backend runs fp32 only; %s needs the oneDNN backend",
        cnclip_precision_to_string (precision));
    return FALSE;
  }
  return TRUE;
}

static gboolean
openblas_linear_prepare (CnclipBackend *backend, CnclipLinear *linear, GError **error)
{
  return TRUE;
}

static void
openblas_linear_free (CnclipBackend *backend, CnclipLinear *linear)
{
}

static const CnclipBackendOps openblas_ops = {
  .name = "openblas",
  .kind = CNCLIP_BACKEND_OPENBLAS,
  .init = openblas_init,
  .linear_prepare = openblas_linear_prepare,
  .linear_free = openblas_linear_free,
  .linear_forward = openblas_linear_forward,
  .attention = openblas_attention,
  .releases_source = FALSE,
};

const CnclipBackendOps *
cnclip_backend_openblas_ops (void)
{
  return &openblas_ops;
}
