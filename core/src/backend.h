/* backend.h: the GEMM seam. Encoders (vit.c, bert.c) only call these; a
 * backend owns how weights are packed and how matrix products run.
 *
 * Conventions: activations are row-major float32 [M, K]; a linear layer
 * computes y[M, N] = act(x · Wᵀ + b) (+ y when accumulate is set), with W
 * stored PyTorch-style [N, K]. Linear layers are prepared once at load
 * (weights packed by the backend) and are read-only afterwards, so one model
 * serves many threads.
 */
#ifndef CNCLIP_BACKEND_H
#define CNCLIP_BACKEND_H

#include "cnclip.h"

G_BEGIN_DECLS

typedef enum
{
  CNCLIP_ACT_NONE,
  CNCLIP_ACT_GELU,               /* exact erf GELU (BERT) */
  CNCLIP_ACT_QUICK_GELU,         /* x * sigmoid(1.702 x) (CLIP ViT) */
} CnclipActivation;

typedef struct _CnclipBackend CnclipBackend;

typedef struct
{
  int n_out;                     /* N */
  int n_in;                      /* K */
  const float *weight;           /* [N, K] row-major, float32; may be released after prepare */
  const float *bias;             /* [N] or NULL */
  CnclipActivation act;          /* fused post-op */
  gpointer packed;               /* backend private, set by prepare */
} CnclipLinear;

/* Attention over one sequence, all heads:
 * q/k/v rows of @ld floats (the fused QKV output: q at column 0, k at W,
 * v at 2W), @n_tokens rows; head h uses columns [h*head_dim, (h+1)*head_dim).
 * out[n_tokens, n_heads*head_dim] = concat_h softmax(q_h k_hᵀ * scale + mask) v_h.
 * @key_mask_add: NULL or @n_tokens additive values per key position.
 * @scratch: at least cnclip_attention_scratch_floats() floats. */
typedef struct
{
  const float *q, *k, *v;
  int ld;
  int n_tokens;
  int n_heads;
  int head_dim;
  float scale;
  const float *key_mask_add;
  float *out;
  int ld_out;
  float *scratch;
} CnclipAttentionArgs;

typedef struct
{
  const char *name;
  CnclipBackendKind kind;
  /* Called once per model with the precision; may set up engines/streams. */
  gboolean (*init) (CnclipBackend *backend, CnclipPrecision precision, GError **error);
  void (*finalize) (CnclipBackend *backend);
  /* Packs @linear->weight; the caller may release the source afterwards when
   * (*releases_source) says so. */
  gboolean (*linear_prepare) (CnclipBackend *backend, CnclipLinear *linear, GError **error);
  void (*linear_free) (CnclipBackend *backend, CnclipLinear *linear);
  /* y = act(x · Wᵀ + b), or y += x · Wᵀ + b when @accumulate (then act must
   * be NONE: residual adds never follow an activation); x [m, K] with row stride
   * @ldx, y [m, N] with row stride @ldy. */
  void (*linear_forward) (CnclipBackend *backend, const CnclipLinear *linear, const float *x,
      int ldx, int m, float *y, int ldy, gboolean accumulate);
  void (*attention) (CnclipBackend *backend, const CnclipAttentionArgs *args);
  gboolean releases_source;      /* TRUE when prepare copies the weights into its own format */
} CnclipBackendOps;

struct _CnclipBackend
{
  const CnclipBackendOps *ops;
  CnclipPrecision precision;
  gpointer priv;
};

/* Backends compiled in. cnclip_backend_onednn_ops() returns NULL when oneDNN
 * was not found at build time. */
const CnclipBackendOps *cnclip_backend_openblas_ops (void);
const CnclipBackendOps *cnclip_backend_onednn_ops (void);

/* Resolves AUTO ($CNCLIP_BACKEND, then oneDNN, then OpenBLAS) and creates a
 * backend. Errors: CNCLIP_ERROR_BACKEND (asked-for backend not built in,
 * precision unsupported by the backend). */
CnclipBackend *cnclip_backend_new (CnclipBackendKind kind, CnclipPrecision precision,
    GError **error);
void cnclip_backend_free (CnclipBackend *backend);

/* Floats of scratch one attention call needs. */
gsize cnclip_attention_scratch_floats (int n_tokens, int n_heads);

/* Sets the thread count for the calling thread's next forward passes
 * (OpenMP; OpenBLAS is pinned to one thread when oneDNN runs). */
void cnclip_backend_set_threads (CnclipBackend *backend, int n_threads);

G_END_DECLS

#endif /* CNCLIP_BACKEND_H */
