/* attention.c: fused multi-head attention (see attention.h).
 *
 * Per head and per block of 8 query rows: scores against all keys (K
 * transposed once per head so the score rows vectorise over keys), scale and
 * mask, softmax, then the product with V, all while the block's scores sit
 * in L1. oneDNN 2.6 does the same work as two batched matmuls and a softmax
 * (three passes over a 1.8 MB score tensor per ViT layer, and its batched
 * matmuls fall back to a plain gemm at half the peak); this kernel is about
 * twice as fast for ViT-B/16 and has no per-shape primitives to create.
 *
 * Numerics: float32 throughout; exp() is a degree-7 polynomial after
 * Cody-Waite range reduction (relative error ~1e-7, 1-2 ulp), the softmax
 * normalisation is applied to the output rows.
 */
#include "config.h"

#include <math.h>
#include <string.h>
#include <omp.h>

#include "attention.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_AVX512_KERNEL 1
#endif

#define HEAD_DIM 64              /* the one head size the kernel is written for */
#define ROWS 8                   /* query rows per block */

static gsize
padded_tokens (int n_tokens)
{
  return ((gsize) n_tokens + 15) & ~(gsize) 15;
}

/* Kᵀ [HEAD_DIM][tp], scores [ROWS][tp], key bias [tp]; 64-byte multiples. */
static gsize
per_thread_floats (int n_tokens)
{
  const gsize tp = padded_tokens (n_tokens);
  return HEAD_DIM * tp + ROWS * tp + tp;
}

gsize
cnclip_attention_fused_work_floats (int n_tokens, int head_dim, int n_threads)
{
  return per_thread_floats (n_tokens) * MAX (n_threads, 1);
}

gboolean
cnclip_attention_fused_supported (int head_dim)
{
#ifdef HAVE_AVX512_KERNEL
  return head_dim == HEAD_DIM && __builtin_cpu_supports ("avx512f");
#else
  return FALSE;
#endif
}

#ifdef HAVE_AVX512_KERNEL

#define AVX512 __attribute__((target ("avx512f")))
#define INLINE_AVX512 __attribute__((target ("avx512f"), always_inline)) static inline

/* e^x for x <= 88; inputs below -120 (masked keys, -inf) give exactly 0. */
INLINE_AVX512 __m512
exp_ps (__m512 x)
{
  x = _mm512_max_ps (x, _mm512_set1_ps (-120.0f));
  x = _mm512_min_ps (x, _mm512_set1_ps (88.0f));
  __m512 n = _mm512_roundscale_ps (_mm512_mul_ps (x, _mm512_set1_ps (1.44269504088896341f)),
      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  /* ln 2 split so that n * hi is exact for |n| < 2^15. */
  __m512 r = _mm512_fnmadd_ps (n, _mm512_set1_ps (0.693359375f), x);
  r = _mm512_fnmadd_ps (n, _mm512_set1_ps (-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps (1.0f / 5040.0f);
  p = _mm512_fmadd_ps (p, r, _mm512_set1_ps (1.0f / 720.0f));
  p = _mm512_fmadd_ps (p, r, _mm512_set1_ps (1.0f / 120.0f));
  p = _mm512_fmadd_ps (p, r, _mm512_set1_ps (1.0f / 24.0f));
  p = _mm512_fmadd_ps (p, r, _mm512_set1_ps (1.0f / 6.0f));
  p = _mm512_fmadd_ps (p, r, _mm512_set1_ps (0.5f));
  p = _mm512_fmadd_ps (p, r, _mm512_set1_ps (1.0f));
  p = _mm512_fmadd_ps (p, r, _mm512_set1_ps (1.0f));
  return _mm512_scalef_ps (p, n);
}

/* scores[r][j0 .. j0 + 16 nc) = scale · q_r · k_j + bias_j for @nr rows.
 * @nr and @nc are constants at every call site, so the accumulators stay in
 * registers. */
INLINE_AVX512 void
scores_tile (const float *q, int ld, const float *kt, gsize tp, const float *bias, float scale,
    float *s, gsize j0, const int nr, const int nc)
{
  __m512 acc[ROWS][2];
  for (int r = 0; r < nr; r++)
    for (int c = 0; c < nc; c++)
      acc[r][c] = _mm512_setzero_ps ();
  for (int d = 0; d < HEAD_DIM; d++) {
    __m512 k[2];
    for (int c = 0; c < nc; c++)
      k[c] = _mm512_load_ps (kt + d * tp + j0 + 16 * c);
    for (int r = 0; r < nr; r++) {
      __m512 qb = _mm512_set1_ps (q[(gsize) r * ld + d]);
      for (int c = 0; c < nc; c++)
        acc[r][c] = _mm512_fmadd_ps (qb, k[c], acc[r][c]);
    }
  }
  const __m512 vscale = _mm512_set1_ps (scale);
  for (int c = 0; c < nc; c++) {
    __m512 b = _mm512_load_ps (bias + j0 + 16 * c);
    for (int r = 0; r < nr; r++)
      _mm512_store_ps (s + r * tp + j0 + 16 * c, _mm512_fmadd_ps (acc[r][c], vscale, b));
  }
}

INLINE_AVX512 void
scores_rows (const float *q, int ld, const float *kt, gsize tp, const float *bias, float scale,
    float *s, const int nr)
{
  gsize j0 = 0;
  for (; j0 + 32 <= tp; j0 += 32)
    scores_tile (q, ld, kt, tp, bias, scale, s, j0, nr, 2);
  if (j0 < tp)
    scores_tile (q, ld, kt, tp, bias, scale, s, j0, nr, 1);
}

/* Unnormalised softmax of each row in place; @inv receives 1 / row sum. */
AVX512 static void
softmax_rows (float *s, gsize tp, int nr, float *inv)
{
  for (int r = 0; r < nr; r++) {
    float *row = s + r * tp;
    __m512 m = _mm512_set1_ps (-INFINITY);
    for (gsize j = 0; j < tp; j += 16)
      m = _mm512_max_ps (m, _mm512_load_ps (row + j));
    const __m512 max = _mm512_set1_ps (_mm512_reduce_max_ps (m));
    __m512 sum = _mm512_setzero_ps ();
    for (gsize j = 0; j < tp; j += 16) {
      __m512 e = exp_ps (_mm512_sub_ps (_mm512_load_ps (row + j), max));
      _mm512_store_ps (row + j, e);
      sum = _mm512_add_ps (sum, e);
    }
    inv[r] = 1.0f / _mm512_reduce_add_ps (sum);
  }
}

/* out[r] = inv[r] · Σ_j p[r][j] v_j for @nr (constant) rows. */
INLINE_AVX512 void
context_rows (const float *p, gsize tp, int n_tokens, const float *v, int ld, const float *inv,
    float *out, int ld_out, const int nr)
{
  __m512 acc[4][4];
  for (int r = 0; r < nr; r++)
    for (int c = 0; c < 4; c++)
      acc[r][c] = _mm512_setzero_ps ();
  for (int j = 0; j < n_tokens; j++) {
    const float *vr = v + (gsize) j * ld;
    __m512 vv[4];
    for (int c = 0; c < 4; c++)
      vv[c] = _mm512_loadu_ps (vr + 16 * c);
    for (int r = 0; r < nr; r++) {
      __m512 pb = _mm512_set1_ps (p[r * tp + j]);
      for (int c = 0; c < 4; c++)
        acc[r][c] = _mm512_fmadd_ps (pb, vv[c], acc[r][c]);
    }
  }
  for (int r = 0; r < nr; r++) {
    __m512 s = _mm512_set1_ps (inv[r]);
    for (int c = 0; c < 4; c++)
      _mm512_storeu_ps (out + (gsize) r * ld_out + 16 * c, _mm512_mul_ps (acc[r][c], s));
  }
}

AVX512 static void
block_avx512 (const CnclipAttentionArgs *a, const float *q, const float *kt, gsize tp,
    const float *bias, float *s, const float *v, float *out, int nr)
{
  float inv[ROWS];
  switch (nr) {
    case 8: scores_rows (q, a->ld, kt, tp, bias, a->scale, s, 8); break;
    case 7: scores_rows (q, a->ld, kt, tp, bias, a->scale, s, 7); break;
    case 6: scores_rows (q, a->ld, kt, tp, bias, a->scale, s, 6); break;
    case 5: scores_rows (q, a->ld, kt, tp, bias, a->scale, s, 5); break;
    case 4: scores_rows (q, a->ld, kt, tp, bias, a->scale, s, 4); break;
    case 3: scores_rows (q, a->ld, kt, tp, bias, a->scale, s, 3); break;
    case 2: scores_rows (q, a->ld, kt, tp, bias, a->scale, s, 2); break;
    default: scores_rows (q, a->ld, kt, tp, bias, a->scale, s, 1); break;
  }
  softmax_rows (s, tp, nr, inv);
  for (int r0 = 0; r0 < nr; r0 += 4) {
    const float *p = s + r0 * tp;
    float *o = out + (gsize) r0 * a->ld_out;
    switch (MIN (4, nr - r0)) {
      case 4: context_rows (p, tp, a->n_tokens, v, a->ld, inv + r0, o, a->ld_out, 4); break;
      case 3: context_rows (p, tp, a->n_tokens, v, a->ld, inv + r0, o, a->ld_out, 3); break;
      case 2: context_rows (p, tp, a->n_tokens, v, a->ld, inv + r0, o, a->ld_out, 2); break;
      default: context_rows (p, tp, a->n_tokens, v, a->ld, inv + r0, o, a->ld_out, 1); break;
    }
  }
}

/* dst[c][r] = src[r][c] for a 16x16 tile; rows >= @n_rows read as zeros. */
INLINE_AVX512 void
transpose_16x16 (const float *src, int ld_src, int n_rows, float *dst, gsize ld_dst)
{
  __m512 r[16], t[16];
  for (int i = 0; i < 16; i++)
    r[i] = i < n_rows ? _mm512_loadu_ps (src + (gsize) i * ld_src) : _mm512_setzero_ps ();
  /* Pairs of rows interleaved within 128-bit lanes... */
  for (int i = 0; i < 8; i++) {
    t[2 * i] = _mm512_unpacklo_ps (r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps (r[2 * i], r[2 * i + 1]);
  }
  /* ...then quads: lane L of r[4i + c] is column 4L + c of rows 4i..4i+3... */
  for (int i = 0; i < 4; i++) {
    __m512d a = _mm512_castps_pd (t[4 * i]), b = _mm512_castps_pd (t[4 * i + 1]);
    __m512d c = _mm512_castps_pd (t[4 * i + 2]), d = _mm512_castps_pd (t[4 * i + 3]);
    r[4 * i] = _mm512_castpd_ps (_mm512_unpacklo_pd (a, c));
    r[4 * i + 1] = _mm512_castpd_ps (_mm512_unpackhi_pd (a, c));
    r[4 * i + 2] = _mm512_castpd_ps (_mm512_unpacklo_pd (b, d));
    r[4 * i + 3] = _mm512_castpd_ps (_mm512_unpackhi_pd (b, d));
  }
  /* ...and the lanes gathered across the four quads. */
  for (int c = 0; c < 4; c++) {
    __m512 x0 = _mm512_shuffle_f32x4 (r[c], r[4 + c], 0x88);
    __m512 x1 = _mm512_shuffle_f32x4 (r[c], r[4 + c], 0xdd);
    __m512 y0 = _mm512_shuffle_f32x4 (r[8 + c], r[12 + c], 0x88);
    __m512 y1 = _mm512_shuffle_f32x4 (r[8 + c], r[12 + c], 0xdd);
    _mm512_store_ps (dst + (gsize) c * ld_dst, _mm512_shuffle_f32x4 (x0, y0, 0x88));
    _mm512_store_ps (dst + (gsize) (4 + c) * ld_dst, _mm512_shuffle_f32x4 (x1, y1, 0x88));
    _mm512_store_ps (dst + (gsize) (8 + c) * ld_dst, _mm512_shuffle_f32x4 (x0, y0, 0xdd));
    _mm512_store_ps (dst + (gsize) (12 + c) * ld_dst, _mm512_shuffle_f32x4 (x1, y1, 0xdd));
  }
}

AVX512 static void
head_avx512 (const CnclipAttentionArgs *a, int h, float *work)
{
  const int t = a->n_tokens;
  const gsize tp = padded_tokens (t);
  float *kt = work;
  float *s = kt + HEAD_DIM * tp;
  float *bias = s + ROWS * tp;
  const float *q = a->q + h * HEAD_DIM;
  const float *k = a->k + h * HEAD_DIM;
  const float *v = a->v + h * HEAD_DIM;
  float *out = a->out + h * HEAD_DIM;

  /* Kᵀ, zero-padded to tp keys; padded keys get a -inf bias (weight 0). */
  for (gsize j0 = 0; j0 < tp; j0 += 16)
    for (int d0 = 0; d0 < HEAD_DIM; d0 += 16)
      transpose_16x16 (k + j0 * a->ld + d0, a->ld, MIN (16, t - (int) j0), kt + d0 * tp + j0, tp);
  for (int j = 0; j < t; j++)
    bias[j] = a->key_mask_add ? a->key_mask_add[j] : 0.0f;
  for (gsize j = t; j < tp; j++)
    bias[j] = -INFINITY;

  for (int i0 = 0; i0 < t; i0 += ROWS)
    block_avx512 (a, q + (gsize) i0 * a->ld, kt, tp, bias, s, v,
        out + (gsize) i0 * a->ld_out, MIN (ROWS, t - i0));
}

#endif /* HAVE_AVX512_KERNEL */

void
cnclip_attention_fused (const CnclipAttentionArgs *a, float *work, int n_threads)
{
#ifdef HAVE_AVX512_KERNEL
  g_return_if_fail (a->head_dim == HEAD_DIM);
  const gsize per_thread = per_thread_floats (a->n_tokens);
  /* Short texts: a parallel region costs more than the work. */
  const int threads = (gsize) a->n_tokens * a->n_tokens * a->n_heads < 8192 ? 1
      : MAX (1, MIN (n_threads, a->n_heads));
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
  for (int h = 0; h < a->n_heads; h++)
    head_avx512 (a, h, work + per_thread * omp_get_thread_num ());
#else
  g_return_if_reached ();
#endif
}
