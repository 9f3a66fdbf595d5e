/* backend_onednn.c: the fast backend, oneDNN 2.x matmul primitives on
 * weights packed once at load.
 *
 * Layout of the work:
 * - linear_prepare reorders W [N, K] (float32, PyTorch layout) into the
 *   blocked format the matmul implementation asks for (format_tag_any), as
 *   float32 or bf16 by precision, into 2 MiB-aligned memory advised for
 *   transparent huge pages (page faults cost ~15 us per 4 KiB page on the VMs
 *   we measured; huge pages make loading 5x faster and the GEMMs a little
 *   faster). The bias is copied too, so the loader can drop the source pages.
 * - A matmul primitive depends on M (rows), N, K, the post-ops and the OpenMP
 *   thread count it was created under (oneDNN splits the work at creation),
 *   but not on the weights: one primitive serves the twelve identical layers.
 *   Primitives live in a cache per backend keyed by all of these. Creating
 *   one costs 0.5-10 ms (JIT), so never per call: the first call with a new M
 *   pays it once (a warm-up forward at load covers images; texts add one set
 *   per new token count). Runtime-M primitives (DNNL_RUNTIME_DIM_VAL) would
 *   need no cache, but oneDNN 2.6 then falls back to its plain gemm, which
 *   cannot use packed weights (it repacks per call) and measured 10-30 %
 *   slower at M = 197 and 1.4x slower at M = 10. The packed format itself
 *   does not depend on M (checked for M = 1..1000), so one packed copy serves
 *   every M.
 * - oneDNN 2.6's fast kernels need dense rows (row stride = width): with any
 *   other stride and packed weights it silently picks its reference kernel,
 *   ~100x slower. Strided inputs and outputs go through per-thread dense
 *   copies (1/K of the GEMM's work).
 * - Bias, GELU (eltwise_gelu_erf), quick_gelu (eltwise_swish, alpha 1.702)
 *   and the residual add (sum post-op) are fused into the matmul.
 * - bf16: weights are stored as bf16; activations are converted to bf16 just
 *   before each matmul (RNE, as the weight reorder does); accumulation, bias,
 *   post-ops and everything outside the matmuls stay float32.
 * - int8 (experimental, unvalidated on real weights): weights quantised per
 *   output channel (symmetric, scale max|w|/127), activations quantised per
 *   call with one symmetric scale for the whole input (oneDNN 2.6's fast int8
 *   kernels cannot apply a per-row scale: a per-row binary post-op falls back
 *   to the reference kernel). s8 x s8 on VNNI; the dequantisation (one
 *   per-column multiply by s_x * s_w[n]), bias and activation or residual
 *   are post-ops. Trained ViTs have outlier channels that per-tensor
 *   activation scales handle poorly: expect visibly lower accuracy there.
 * - Attention: the fused AVX-512 kernel of attention.c where it runs (head
 *   size 64, every Chinese-CLIP model; 0.68 vs 0.97 ms for one ViT-B/16
 *   layer's attention on one core, no per-shape primitives); otherwise
 *   (or with $CNCLIP_ONEDNN_ATTENTION=primitives) two batched oneDNN matmuls
 *   over the heads reading Q, K and V in place (3-D descriptors with
 *   strides), the scale as an output scale, the key mask as a binary-add
 *   post-op, and oneDNN's softmax in between.
 *
 * Threads. A model (with its backend, packed weights and primitive caches) is
 * shared by any number of threads. Primitives are immutable and oneDNN runs
 * them concurrently when each call brings its own scratchpad
 * (scratchpad_mode_user), so everything mutable is per thread: a stream, the
 * scratchpad and the conversion buffers live in thread-local state
 * (GPrivate, freed at thread exit; buffers only grow, so a warmed-up thread
 * does not allocate). The caches are GHashTables under a mutex held only for
 * the lookup or the insertion, never while a primitive is created. One CPU
 * engine serves the whole process (engines are stateless for CPU), so thread
 * state does not depend on which model a thread runs. Weights and bias
 * memory objects are only read during execution and are shared.
 *
 * OpenBLAS is pinned to one thread when this backend starts: its pthreads
 * and OpenMP's would fight over the cores.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <cblas.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>

#include "attention.h"
#include "backend.h"

#define HUGE_PAGE ((gsize) 2 << 20)

typedef struct
{
  GMutex lock;
  GHashTable *matmuls;           /* MatmulKey -> MatmulEntry */
  GHashTable *attentions;        /* AttentionKey -> AttentionEntry */
  CnclipPrecision precision;
  gboolean fused_attention_off;  /* $CNCLIP_ONEDNN_ATTENTION=primitives (tests) */
  gboolean warned;
} OnednnPriv;

/* One prepared linear layer. */
typedef struct
{
  dnnl_memory_desc_t weights_md; /* the packed format */
  dnnl_memory_t weights;         /* read-only after prepare, shared by threads */
  dnnl_memory_t bias;            /* NULL without bias */
  dnnl_memory_desc_t bias_md;    /* [1, N] float32: bias, int8 scales */
  void *weights_data;
  gsize weights_map_size;
  float *bias_data;
  float *weight_scales;          /* int8: [N] per output channel */
} OnednnLinear;

typedef struct
{
  int m, n, k, ldx, ldy;
  int n_threads;
  guint8 has_bias, act, accumulate;
} MatmulKey;

typedef struct
{
  MatmulKey key;
  dnnl_primitive_t prim;
  dnnl_memory_desc_t src_md, dst_md, scratch_md;
  gsize scratch_size;
  char impl[48];                 /* oneDNN's implementation name */
} MatmulEntry;

typedef struct
{
  int n_tokens, n_heads, head_dim, ld, ld_out;
  int n_threads;
  guint32 scale_bits;
  gboolean masked;
} AttentionKey;

typedef struct
{
  AttentionKey key;
  dnnl_primitive_t scores, softmax, context;
  dnnl_memory_desc_t q_md, k_md, v_md, s_md, s2_md, out_md, mask_md;
  dnnl_memory_desc_t scratch_md[3];
  gsize scratch_size;
} AttentionEntry;

typedef struct
{
  dnnl_stream_t stream;
  void *scratch;
  gsize scratch_size;
  void *src;                     /* dense, bf16 or s8 copy of the activations */
  gsize src_size;
  float *dst;                    /* dense output when the caller's rows are strided */
  gsize dst_size;
  float *scales;                 /* int8: per-column dequantisation */
  gsize scales_size;
} ThreadState;

/* ------------------------------------------------------------------------ */
/* Process-wide engine and per-thread state                                 */

static dnnl_engine_t engine;
static dnnl_status_t engine_status;

static dnnl_engine_t
get_engine (void)
{
  static gsize once = 0;
  if (g_once_init_enter (&once)) {
    engine_status = dnnl_engine_create (&engine, dnnl_cpu, 0);
    g_once_init_leave (&once, 1);
  }
  return engine_status == dnnl_success ? engine : NULL;
}

static void
thread_state_free (gpointer data)
{
  ThreadState *ts = data;
  if (ts->stream)
    dnnl_stream_destroy (ts->stream);
  free (ts->scratch);
  free (ts->src);
  free (ts->dst);
  free (ts->scales);
  g_free (ts);
}

static GPrivate thread_state_key = G_PRIVATE_INIT (thread_state_free);

/* NULL only when oneDNN cannot create a stream (out of memory). */
static ThreadState *
thread_state (void)
{
  ThreadState *ts = g_private_get (&thread_state_key);
  if (ts == NULL) {
    ts = g_new0 (ThreadState, 1);
    if (dnnl_stream_create (&ts->stream, get_engine (), dnnl_stream_default_flags)
        != dnnl_success) {
      g_free (ts);
      return NULL;
    }
    g_private_set (&thread_state_key, ts);
  }
  return ts;
}

/* Grows *@buf to at least @size bytes (64-byte aligned); contents are not
 * kept. FALSE when out of memory. */
static gboolean
ensure_buffer (void **buf, gsize *cur, gsize size)
{
  if (size <= *cur)
    return TRUE;
  free (*buf);
  *buf = NULL;
  *cur = 0;
  gsize rounded = (size + 4095) & ~(gsize) 4095;
  if (posix_memalign (buf, 64, rounded) != 0) {
    *buf = NULL;
    return FALSE;
  }
  *cur = rounded;
  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* Packed weight memory                                                     */

/* Anonymous memory aligned to 2 MiB and advised for transparent huge pages.
 * @map_size receives the size to pass to huge_free(). */
static void *
huge_alloc (gsize size, gsize *map_size)
{
  gsize total = ((size + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1)) + HUGE_PAGE;
  guint8 *base = mmap (NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED)
    return NULL;
  guint8 *aligned = (guint8 *) (((guintptr) base + HUGE_PAGE - 1) & ~(guintptr) (HUGE_PAGE - 1));
  gsize head = aligned - base;
  if (head > 0)
    munmap (base, head);
  gsize tail = total - head - ((size + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1));
  if (tail > 0)
    munmap (aligned + (total - head - tail), tail);
  *map_size = total - head - tail;
#ifdef MADV_HUGEPAGE
  madvise (aligned, *map_size, MADV_HUGEPAGE);
#endif
  return aligned;
}

static void
huge_free (void *data, gsize map_size)
{
  if (data)
    munmap (data, map_size);
}

/* ------------------------------------------------------------------------ */
/* Keys                                                                     */

static guint
hash_ints (const int *v, int n)
{
  guint h = 2166136261u;
  for (int i = 0; i < n; i++)
    h = (h ^ (guint) v[i]) * 16777619u;
  return h;
}

static guint
matmul_key_hash (gconstpointer p)
{
  const MatmulKey *k = p;
  int v[] = { k->m, k->n, k->k, k->ldx, k->ldy, k->n_threads,
    k->has_bias | (k->act << 1) | (k->accumulate << 4) };
  return hash_ints (v, G_N_ELEMENTS (v));
}

static gboolean
matmul_key_equal (gconstpointer a, gconstpointer b)
{
  const MatmulKey *x = a, *y = b;
  return x->m == y->m && x->n == y->n && x->k == y->k && x->ldx == y->ldx && x->ldy == y->ldy
      && x->n_threads == y->n_threads && x->has_bias == y->has_bias && x->act == y->act
      && x->accumulate == y->accumulate;
}

static guint
attention_key_hash (gconstpointer p)
{
  const AttentionKey *k = p;
  int v[] = { k->n_tokens, k->n_heads, k->head_dim, k->ld, k->ld_out, k->n_threads,
    (int) k->scale_bits, k->masked };
  return hash_ints (v, G_N_ELEMENTS (v));
}

static gboolean
attention_key_equal (gconstpointer a, gconstpointer b)
{
  const AttentionKey *x = a, *y = b;
  return x->n_tokens == y->n_tokens && x->n_heads == y->n_heads && x->head_dim == y->head_dim
      && x->ld == y->ld && x->ld_out == y->ld_out && x->n_threads == y->n_threads
      && x->scale_bits == y->scale_bits && x->masked == y->masked;
}

static void
matmul_entry_free (gpointer data)
{
  MatmulEntry *e = data;
  if (e->prim)
    dnnl_primitive_destroy (e->prim);
  g_free (e);
}

static void
attention_entry_free (gpointer data)
{
  AttentionEntry *e = data;
  if (e->scores)
    dnnl_primitive_destroy (e->scores);
  if (e->softmax)
    dnnl_primitive_destroy (e->softmax);
  if (e->context)
    dnnl_primitive_destroy (e->context);
  g_free (e);
}

/* ------------------------------------------------------------------------ */
/* Matmul primitives                                                        */

static void
set_dnnl_error (GError **error, const char *what, dnnl_status_t status)
{
  g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_BACKEND, "oneDNN: %s failed (status %d)", what,
      (int) status);
}

static dnnl_data_type_t
compute_type (const OnednnPriv *priv)
{
  switch (priv->precision) {
    case CNCLIP_PRECISION_BF16: return dnnl_bf16;
    case CNCLIP_PRECISION_INT8: return dnnl_s8;
    default: return dnnl_f32;
  }
}

/* Creates the matmul for @key. With @weights_md NULL the weights format is
 * left to oneDNN (format_tag_any) and written to @chosen_weights_md. */
static MatmulEntry *
matmul_create (OnednnPriv *priv, const MatmulKey *key, const dnnl_memory_desc_t *weights_md,
    dnnl_memory_desc_t *chosen_weights_md, GError **error)
{
  dnnl_memory_desc_t src, wei, bias, dst;
  dnnl_dims_t src_dims = { key->m, key->k };
  const gboolean int8 = priv->precision == CNCLIP_PRECISION_INT8;
  dnnl_dims_t src_strides = { key->ldx, 1 };   /* always dense today, see linear_forward */
  dnnl_dims_t wei_dims = { key->k, key->n };
  dnnl_dims_t bias_dims = { 1, key->n };
  dnnl_dims_t dst_dims = { key->m, key->n };
  dnnl_dims_t dst_strides = { key->ldy, 1 };
  dnnl_primitive_attr_t attr = NULL;
  dnnl_post_ops_t post_ops = NULL;
  dnnl_primitive_desc_t pd = NULL;
  dnnl_matmul_desc_t desc;
  dnnl_status_t st;
  MatmulEntry *entry = NULL;
  const char *what = "matmul descriptor";

  st = dnnl_memory_desc_init_by_strides (&src, 2, src_dims, compute_type (priv), src_strides);
  if (st == dnnl_success) {
    if (weights_md)
      wei = *weights_md;
    else
      st = dnnl_memory_desc_init_by_tag (&wei, 2, wei_dims, compute_type (priv),
          dnnl_format_tag_any);
  }
  if (st == dnnl_success)
    st = dnnl_memory_desc_init_by_tag (&bias, 2, bias_dims, dnnl_f32, dnnl_ab);
  if (st == dnnl_success)
    st = dnnl_memory_desc_init_by_strides (&dst, 2, dst_dims, dnnl_f32, dst_strides);
  /* int8 adds the bias after dequantising, as a post-op. */
  if (st == dnnl_success)
    st = dnnl_matmul_desc_init (&desc, &src, &wei, key->has_bias && !int8 ? &bias : NULL, &dst);
  if (st != dnnl_success)
    goto fail;

  what = "matmul attributes";
  if ((st = dnnl_primitive_attr_create (&attr)) != dnnl_success
      || (st = dnnl_primitive_attr_set_scratchpad_mode (attr, dnnl_scratchpad_mode_user))
      != dnnl_success || (st = dnnl_post_ops_create (&post_ops)) != dnnl_success)
    goto fail;
  if (int8) {
    /* [0]: times s_x * s_w[n]; [1]: plus bias (see the arguments in
     * onednn_linear_forward). */
    if ((st = dnnl_post_ops_append_binary (post_ops, dnnl_binary_mul, &bias)) != dnnl_success
        || (key->has_bias
            && (st = dnnl_post_ops_append_binary (post_ops, dnnl_binary_add, &bias))
            != dnnl_success))
      goto fail;
  }
  if (key->accumulate)
    st = dnnl_post_ops_append_sum (post_ops, 1.0f);
  else if (key->act == CNCLIP_ACT_GELU)
    st = dnnl_post_ops_append_eltwise (post_ops, 1.0f, dnnl_eltwise_gelu_erf, 0.0f, 0.0f);
  else if (key->act == CNCLIP_ACT_QUICK_GELU)
    st = dnnl_post_ops_append_eltwise (post_ops, 1.0f, dnnl_eltwise_swish, 1.702f, 0.0f);
  if (st != dnnl_success || (st = dnnl_primitive_attr_set_post_ops (attr, post_ops)) != dnnl_success)
    goto fail;

  what = "matmul primitive descriptor";
  if ((st = dnnl_primitive_desc_create (&pd, &desc, attr, get_engine (), NULL)) != dnnl_success)
    goto fail;
  entry = g_new0 (MatmulEntry, 1);
  entry->key = *key;
  entry->src_md = src;
  entry->dst_md = dst;
  entry->scratch_md = *dnnl_primitive_desc_query_md (pd, dnnl_query_scratchpad_md, 0);
  entry->scratch_size = dnnl_memory_desc_get_size (&entry->scratch_md);
  if (chosen_weights_md)
    *chosen_weights_md = *dnnl_primitive_desc_query_md (pd, dnnl_query_weights_md, 0);
  what = "matmul primitive";
  if ((st = dnnl_primitive_create (&entry->prim, pd)) != dnnl_success)
    goto fail;
  const char *impl = NULL;
  dnnl_primitive_desc_query (pd, dnnl_query_impl_info_str, 0, &impl);
  g_strlcpy (entry->impl, impl ? impl : "?", sizeof entry->impl);
  if (g_getenv ("CNCLIP_DEBUG_ONEDNN"))
    g_debug ("onednn matmul m=%d n=%d k=%d ldx=%d ldy=%d bias=%d act=%d acc=%d threads=%d: %s",
      key->m, key->n, key->k, key->ldx, key->ldy, key->has_bias, key->act, key->accumulate,
      key->n_threads, entry->impl);
  dnnl_primitive_desc_destroy (pd);
  dnnl_post_ops_destroy (post_ops);
  dnnl_primitive_attr_destroy (attr);
  return entry;

fail:
  set_dnnl_error (error, what, st);
  if (entry)
    matmul_entry_free (entry);
  if (pd)
    dnnl_primitive_desc_destroy (pd);
  if (post_ops)
    dnnl_post_ops_destroy (post_ops);
  if (attr)
    dnnl_primitive_attr_destroy (attr);
  return NULL;
}

/* The cached primitive for @key, created (outside the lock) when missing. */
static MatmulEntry *
matmul_lookup (OnednnPriv *priv, const MatmulKey *key, const dnnl_memory_desc_t *weights_md,
    GError **error)
{
  g_mutex_lock (&priv->lock);
  MatmulEntry *entry = g_hash_table_lookup (priv->matmuls, key);
  g_mutex_unlock (&priv->lock);
  if (entry)
    return entry;

  MatmulEntry *created = matmul_create (priv, key, weights_md, NULL, error);
  if (created == NULL)
    return NULL;
  g_mutex_lock (&priv->lock);
  entry = g_hash_table_lookup (priv->matmuls, key);
  if (entry == NULL) {
    g_hash_table_insert (priv->matmuls, &created->key, created);
    entry = created;
    created = NULL;
  }
  g_mutex_unlock (&priv->lock);
  if (created)
    matmul_entry_free (created);
  return entry;
}

/* ------------------------------------------------------------------------ */
/* bf16 conversion of activations                                           */

static inline guint16
float_to_bf16 (float f)
{
  guint32 u;
  memcpy (&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u)
    return (guint16) ((u >> 16) | 0x40);       /* quiet NaN */
  u += 0x7fffu + ((u >> 16) & 1u);
  return (guint16) (u >> 16);
}

/* Round-to-nearest-even, like the weight reorder. A plain loop the compiler
 * vectorises, cloned for AVX-512 (the OpenMP region is outside the clone:
 * outlined OpenMP bodies would not inherit the clone's target). */
__attribute__((target_clones ("avx512f", "default")))
static void
convert_row_bf16 (const float *in, guint16 *out, int k)
{
  for (int c = 0; c < k; c++)
    out[c] = float_to_bf16 (in[c]);
}

static void
convert_rows_bf16 (const float *x, int ldx, int m, int k, guint16 *out)
{
#pragma omp parallel for if ((gsize) m * k >= 65536) schedule(static)
  for (int r = 0; r < m; r++)
    convert_row_bf16 (x + (gsize) r * ldx, out + (gsize) r * k, k);
}

__attribute__((target_clones ("avx512f", "default")))
static float
row_abs_max (const float *in, int k)
{
  float m = 0.0f;
  for (int c = 0; c < k; c++)
    m = MAX (m, fabsf (in[c]));
  return m;
}

__attribute__((target_clones ("avx512f", "default")))
static void
quantize_row (const float *in, gint8 *out, int k, float inv_scale)
{
  for (int c = 0; c < k; c++) {
    float q = rintf (in[c] * inv_scale);
    out[c] = (gint8) CLAMP (q, -127.0f, 127.0f);
  }
}

/* Symmetric int8 with one scale for the whole input; returns the scale. */
static float
quantize_rows (const float *x, int ldx, int m, int k, gint8 *out)
{
  float amax = 0.0f;
  const gboolean parallel = (gsize) m * k >= 65536;
#pragma omp parallel for if (parallel) reduction(max:amax) schedule(static)
  for (int r = 0; r < m; r++)
    amax = MAX (amax, row_abs_max (x + (gsize) r * ldx, k));
  const float scale = amax > 0.0f ? amax / 127.0f : 1.0f;
  const float inv = 1.0f / scale;
#pragma omp parallel for if (parallel) schedule(static)
  for (int r = 0; r < m; r++)
    quantize_row (x + (gsize) r * ldx, out + (gsize) r * k, k, inv);
  return scale;
}

/* ------------------------------------------------------------------------ */
/* Ops                                                                      */

static void
fill_nan (float *y, int m, int n, int ldy)
{
  for (int r = 0; r < m; r++)
    for (int c = 0; c < n; c++)
      y[(gsize) r * ldy + c] = NAN;
}

static void
report_failure (CnclipBackend *backend, const char *what, GError *error)
{
  OnednnPriv *priv = backend->priv;
  /* The seam's compute calls cannot fail (shapes were checked at load), so
   * a failure here is out of memory; the output is poisoned with NaN and
   * the first occurrence logged. */
  if (!g_atomic_int_compare_and_exchange (&priv->warned, FALSE, TRUE)) {
    g_clear_error (&error);
    return;
  }
  g_warning ("oneDNN %s: %s", what, error ? error->message : "out of memory");
  g_clear_error (&error);
}

static void
copy_rows (const float *src, int ld_src, int m, int n, float *dst, int ld_dst)
{
  for (int r = 0; r < m; r++)
    memcpy (dst + (gsize) r * ld_dst, src + (gsize) r * ld_src, sizeof (float) * n);
}

/* Text-sized row counts are rounded up to a multiple of 8, so that seven
 * primitives per layer shape serve every text of up to 56 tokens (a new
 * count otherwise costs a few ms of JIT on its first call). Small M is
 * bound by reading the weights, so the padding rows cost next to nothing.
 * Image-sized counts (197 per image) run exactly. */
static int
padded_rows (int m)
{
  return m < 64 ? (m + 7) & ~7 : m;
}

static void
onednn_linear_forward (CnclipBackend *backend, const CnclipLinear *linear, const float *x,
    int ldx, int m, float *y, int ldy, gboolean accumulate)
{
  g_return_if_fail (!(accumulate && linear->act != CNCLIP_ACT_NONE));
  g_return_if_fail (linear->packed != NULL);
  if (m <= 0)
    return;
  OnednnPriv *priv = backend->priv;
  const OnednnLinear *lin = linear->packed;
  const int n = linear->n_out, k = linear->n_in;
  const gboolean int8 = priv->precision == CNCLIP_PRECISION_INT8;
  GError *error = NULL;
  /* The fast kernels of oneDNN 2.6 want dense rows: with other strides
   * (and packed weights) it picks its reference kernel, 100x slower. Inputs
   * are therefore made dense (bf16 and int8 convert anyway), and so are
   * outputs with a row stride (copied back after; 1/K of the GEMM's work),
   * as are inputs and outputs whose rows are padded (padded_rows()). */
  const int rows = padded_rows (m);
  MatmulKey key = {
    .m = rows, .n = n, .k = k, .ldx = k, .ldy = n, .n_threads = omp_get_max_threads (),
    .has_bias = lin->bias != NULL, .act = accumulate ? CNCLIP_ACT_NONE : linear->act,
    .accumulate = accumulate != FALSE,
  };
  ThreadState *ts = thread_state ();
  MatmulEntry *entry = ts ? matmul_lookup (priv, &key, &lin->weights_md, &error) : NULL;
  const gboolean direct_x = priv->precision == CNCLIP_PRECISION_FP32 && ldx == k && rows == m;
  const gboolean direct_y = ldy == n && rows == m;
  const gsize elem = int8 ? 1 : priv->precision == CNCLIP_PRECISION_BF16 ? sizeof (guint16)
      : sizeof (float);
  if (entry == NULL || !ensure_buffer (&ts->scratch, &ts->scratch_size, entry->scratch_size)
      || (!direct_x && !ensure_buffer (&ts->src, &ts->src_size, (gsize) rows * k * elem))
      || (!direct_y && !ensure_buffer ((void **) &ts->dst, &ts->dst_size,
              (gsize) rows * n * sizeof (float)))
      || (int8 && !ensure_buffer ((void **) &ts->scales, &ts->scales_size,
              sizeof (float) * n))) {
    report_failure (backend, "matmul", error);
    fill_nan (y, m, n, ldy);
    return;
  }

  const void *src = x;
  if (int8) {
    float sx = quantize_rows (x, ldx, m, k, ts->src);
    for (int c = 0; c < n; c++)
      ts->scales[c] = sx * lin->weight_scales[c];
    src = ts->src;
  } else if (priv->precision == CNCLIP_PRECISION_BF16) {
    convert_rows_bf16 (x, ldx, m, k, ts->src);
    src = ts->src;
  } else if (!direct_x) {
    copy_rows (x, ldx, m, k, ts->src, k);
    src = ts->src;
  }
  if (rows > m)                  /* padding rows: zeros, never NaN or denormals */
    memset ((guint8 *) ts->src + (gsize) m * k * elem, 0, (gsize) (rows - m) * k * elem);
  float *dst = y;
  if (!direct_y) {
    dst = ts->dst;
    if (accumulate) {
      copy_rows (y, ldy, m, n, dst, n);
      memset (dst + (gsize) m * n, 0, sizeof (float) * (rows - m) * n);
    }
  }

  dnnl_memory_t src_mem = NULL, dst_mem = NULL, scratch_mem = NULL, scales_mem = NULL;
  dnnl_status_t st = dnnl_memory_create (&src_mem, &entry->src_md, get_engine (), (void *) src);
  if (st == dnnl_success)
    st = dnnl_memory_create (&dst_mem, &entry->dst_md, get_engine (), dst);
  if (st == dnnl_success)
    st = dnnl_memory_create (&scratch_mem, &entry->scratch_md, get_engine (), ts->scratch);
  if (st == dnnl_success && int8)
    st = dnnl_memory_create (&scales_mem, &lin->bias_md, get_engine (), ts->scales);
  if (st == dnnl_success) {
    dnnl_exec_arg_t args[6] = {
      { DNNL_ARG_SRC, src_mem }, { DNNL_ARG_WEIGHTS, lin->weights },
      { DNNL_ARG_DST, dst_mem }, { DNNL_ARG_SCRATCHPAD, scratch_mem },
    };
    int n_args = 4;
    if (int8) {
      args[n_args++] = (dnnl_exec_arg_t) {
        DNNL_ARG_ATTR_MULTIPLE_POST_OP (0) | DNNL_ARG_SRC_1, scales_mem };
      if (lin->bias)
        args[n_args++] = (dnnl_exec_arg_t) {
          DNNL_ARG_ATTR_MULTIPLE_POST_OP (1) | DNNL_ARG_SRC_1, lin->bias };
    } else if (lin->bias) {
      args[n_args++] = (dnnl_exec_arg_t) { DNNL_ARG_BIAS, lin->bias };
    }
    st = dnnl_primitive_execute (entry->prim, ts->stream, n_args, args);
  }
  if (st == dnnl_success && dst != y)
    copy_rows (dst, n, m, n, y, ldy);
  if (st != dnnl_success) {
    set_dnnl_error (&error, "matmul execution", st);
    report_failure (backend, "matmul", error);
    fill_nan (y, m, n, ldy);
  }
  if (scratch_mem)
    dnnl_memory_destroy (scratch_mem);
  if (scales_mem)
    dnnl_memory_destroy (scales_mem);
  if (dst_mem)
    dnnl_memory_destroy (dst_mem);
  if (src_mem)
    dnnl_memory_destroy (src_mem);
}

/* Symmetric per-output-channel int8: row n of W scaled by max|W[n]| / 127.
 * Returns the [N, K] values (g_free) and sets *@scales (g_free). */
static gint8 *
quantize_weights (const float *w, int n, int k, float **scales)
{
  gint8 *q = g_try_malloc ((gsize) n * k);
  *scales = g_try_new (float, n);
  if (q == NULL || *scales == NULL) {
    g_free (q);
    g_clear_pointer (scales, g_free);
    return NULL;
  }
  for (int r = 0; r < n; r++) {
    float amax = row_abs_max (w + (gsize) r * k, k);
    (*scales)[r] = amax > 0.0f ? amax / 127.0f : 1.0f;
    quantize_row (w + (gsize) r * k, q + (gsize) r * k, k, 1.0f / (*scales)[r]);
  }
  return q;
}

static gboolean
onednn_linear_prepare (CnclipBackend *backend, CnclipLinear *linear, GError **error)
{
  g_return_val_if_fail (linear->weight != NULL, FALSE);
  g_return_val_if_fail (linear->n_out > 0 && linear->n_in > 0, FALSE);
  OnednnPriv *priv = backend->priv;
  const int n = linear->n_out, k = linear->n_in;
  OnednnLinear *lin = g_new0 (OnednnLinear, 1);
  dnnl_memory_desc_t user_md;
  dnnl_memory_t user_mem = NULL;
  dnnl_primitive_desc_t reorder_pd = NULL;
  dnnl_primitive_t reorder = NULL;
  gint8 *quantized = NULL;
  dnnl_status_t st;
  dnnl_dims_t bias_dims = { 1, n };

  if ((st = dnnl_memory_desc_init_by_tag (&lin->bias_md, 2, bias_dims, dnnl_f32, dnnl_ab))
      != dnnl_success) {
    set_dnnl_error (error, "bias descriptor", st);
    goto fail;
  }

  /* The packed format does not depend on M (checked for 1..1000 rows); it
   * is chosen by the primitive for one image's rows, which we keep, so the
   * first image forward is ready too. */
  MatmulKey key = {
    .m = 197, .n = n, .k = k, .ldx = k, .ldy = n, .n_threads = omp_get_max_threads (),
    .has_bias = linear->bias != NULL, .act = linear->act, .accumulate = FALSE,
  };
  MatmulEntry *entry = matmul_create (priv, &key, NULL, &lin->weights_md, error);
  if (entry == NULL)
    goto fail;
  g_mutex_lock (&priv->lock);
  if (g_hash_table_lookup (priv->matmuls, &entry->key) == NULL) {
    g_hash_table_insert (priv->matmuls, &entry->key, entry);
    entry = NULL;
  }
  g_mutex_unlock (&priv->lock);
  if (entry)
    matmul_entry_free (entry);

  gsize size = dnnl_memory_desc_get_size (&lin->weights_md);
  lin->weights_data = huge_alloc (size, &lin->weights_map_size);
  if (lin->weights_data == NULL) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_NOMEM,
        "cannot allocate %" G_GSIZE_FORMAT " bytes for packed weights", size);
    goto fail;
  }
  dnnl_dims_t dims = { k, n };
  const void *user_data = linear->weight;
  if (priv->precision == CNCLIP_PRECISION_INT8) {
    quantized = quantize_weights (linear->weight, n, k, &lin->weight_scales);
    if (quantized == NULL) {
      g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_NOMEM, "cannot quantise the weights");
      goto fail;
    }
    user_data = quantized;
  }
  /* W [N, K] row-major is the [K, N] matrix the matmul wants, transposed:
   * tag ba. The reorder transposes, blocks and rounds to bf16 (int8: adds
   * the compensation the s8 x s8 kernels need). */
  if ((st = dnnl_memory_desc_init_by_tag (&user_md, 2, dims,
              quantized ? dnnl_s8 : dnnl_f32, dnnl_ba)) != dnnl_success
      || (st = dnnl_memory_create (&user_mem, &user_md, get_engine (),
              (void *) user_data)) != dnnl_success
      || (st = dnnl_memory_create (&lin->weights, &lin->weights_md, get_engine (),
              lin->weights_data)) != dnnl_success
      || (st = dnnl_reorder_primitive_desc_create (&reorder_pd, &user_md, get_engine (),
              &lin->weights_md, get_engine (), NULL)) != dnnl_success
      || (st = dnnl_primitive_create (&reorder, reorder_pd)) != dnnl_success) {
    set_dnnl_error (error, "weight reorder", st);
    goto fail;
  }
  ThreadState *ts = thread_state ();
  dnnl_exec_arg_t args[2] = { { DNNL_ARG_FROM, user_mem }, { DNNL_ARG_TO, lin->weights } };
  if (ts == NULL || (st = dnnl_primitive_execute (reorder, ts->stream, 2, args)) != dnnl_success
      || (st = dnnl_stream_wait (ts->stream)) != dnnl_success) {
    set_dnnl_error (error, "weight reorder execution", st);
    goto fail;
  }

  if (linear->bias) {
    if (posix_memalign ((void **) &lin->bias_data, 64, sizeof (float) * n) != 0) {
      lin->bias_data = NULL;
      g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_NOMEM, "cannot allocate a bias copy");
      goto fail;
    }
    memcpy (lin->bias_data, linear->bias, sizeof (float) * n);
    if ((st = dnnl_memory_create (&lin->bias, &lin->bias_md, get_engine (), lin->bias_data))
        != dnnl_success) {
      set_dnnl_error (error, "bias memory", st);
      goto fail;
    }
  }

  dnnl_primitive_destroy (reorder);
  dnnl_primitive_desc_destroy (reorder_pd);
  dnnl_memory_destroy (user_mem);
  g_free (quantized);
  linear->packed = lin;
  return TRUE;

fail:
  g_free (quantized);
  if (reorder)
    dnnl_primitive_destroy (reorder);
  if (reorder_pd)
    dnnl_primitive_desc_destroy (reorder_pd);
  if (user_mem)
    dnnl_memory_destroy (user_mem);
  linear->packed = lin;
  backend->ops->linear_free (backend, linear);
  return FALSE;
}

static void
onednn_linear_free (CnclipBackend *backend, CnclipLinear *linear)
{
  OnednnLinear *lin = linear->packed;
  if (lin == NULL)
    return;
  if (lin->weights)
    dnnl_memory_destroy (lin->weights);
  if (lin->bias)
    dnnl_memory_destroy (lin->bias);
  huge_free (lin->weights_data, lin->weights_map_size);
  free (lin->bias_data);
  g_free (lin->weight_scales);
  g_free (lin);
  linear->packed = NULL;
}

/* ------------------------------------------------------------------------ */
/* Attention                                                                */

static AttentionEntry *
attention_create (const AttentionKey *key, float scale, GError **error)
{
  const dnnl_dim_t t = key->n_tokens, h = key->n_heads, d = key->head_dim;
  dnnl_dims_t q_dims = { h, t, d }, q_strides = { d, key->ld, 1 };
  dnnl_dims_t k_dims = { h, d, t }, k_strides = { d, 1, key->ld };   /* Kᵀ in place */
  dnnl_dims_t s_dims = { h, t, t }, s_strides = { t * t, t, 1 };
  dnnl_dims_t s2_dims = { h * t, t };
  dnnl_dims_t out_dims = { h, t, d }, out_strides = { d, key->ld_out, 1 };
  dnnl_dims_t mask_dims = { 1, 1, t };
  AttentionEntry *e = g_new0 (AttentionEntry, 1);
  dnnl_primitive_attr_t attr_scores = NULL, attr_other = NULL;
  dnnl_post_ops_t post_ops = NULL;
  dnnl_primitive_desc_t pd[3] = { NULL, NULL, NULL };
  dnnl_matmul_desc_t scores_desc, context_desc;
  dnnl_softmax_desc_t softmax_desc;
  dnnl_status_t st;

  e->key = *key;
  if ((st = dnnl_memory_desc_init_by_strides (&e->q_md, 3, q_dims, dnnl_f32, q_strides))
      || (st = dnnl_memory_desc_init_by_strides (&e->k_md, 3, k_dims, dnnl_f32, k_strides))
      || (st = dnnl_memory_desc_init_by_strides (&e->v_md, 3, q_dims, dnnl_f32, q_strides))
      || (st = dnnl_memory_desc_init_by_strides (&e->s_md, 3, s_dims, dnnl_f32, s_strides))
      || (st = dnnl_memory_desc_init_by_tag (&e->s2_md, 2, s2_dims, dnnl_f32, dnnl_ab))
      || (st = dnnl_memory_desc_init_by_strides (&e->out_md, 3, out_dims, dnnl_f32,
              out_strides))
      || (st = dnnl_memory_desc_init_by_tag (&e->mask_md, 3, mask_dims, dnnl_f32, dnnl_abc))
      || (st = dnnl_matmul_desc_init (&scores_desc, &e->q_md, &e->k_md, NULL, &e->s_md))
      || (st = dnnl_matmul_desc_init (&context_desc, &e->s_md, &e->v_md, NULL, &e->out_md))
      || (st = dnnl_softmax_forward_desc_init (&softmax_desc, dnnl_forward_inference, &e->s2_md,
              1)))
    goto fail;
  if ((st = dnnl_primitive_attr_create (&attr_scores))
      || (st = dnnl_primitive_attr_set_scratchpad_mode (attr_scores, dnnl_scratchpad_mode_user))
      || (st = dnnl_primitive_attr_set_output_scales (attr_scores, 1, 0, &scale))
      || (st = dnnl_primitive_attr_create (&attr_other))
      || (st = dnnl_primitive_attr_set_scratchpad_mode (attr_other, dnnl_scratchpad_mode_user)))
    goto fail;
  if (key->masked) {
    if ((st = dnnl_post_ops_create (&post_ops))
        || (st = dnnl_post_ops_append_binary (post_ops, dnnl_binary_add, &e->mask_md))
        || (st = dnnl_primitive_attr_set_post_ops (attr_scores, post_ops)))
      goto fail;
  }
  if ((st = dnnl_primitive_desc_create (&pd[0], &scores_desc, attr_scores, get_engine (), NULL))
      || (st = dnnl_primitive_desc_create (&pd[1], &softmax_desc, attr_other, get_engine (),
              NULL))
      || (st = dnnl_primitive_desc_create (&pd[2], &context_desc, attr_other, get_engine (),
              NULL))
      || (st = dnnl_primitive_create (&e->scores, pd[0]))
      || (st = dnnl_primitive_create (&e->softmax, pd[1]))
      || (st = dnnl_primitive_create (&e->context, pd[2])))
    goto fail;
  for (int i = 0; i < 3; i++) {
    e->scratch_md[i] = *dnnl_primitive_desc_query_md (pd[i], dnnl_query_scratchpad_md, 0);
    e->scratch_size = MAX (e->scratch_size, dnnl_memory_desc_get_size (&e->scratch_md[i]));
    dnnl_primitive_desc_destroy (pd[i]);
  }
  if (post_ops)
    dnnl_post_ops_destroy (post_ops);
  dnnl_primitive_attr_destroy (attr_scores);
  dnnl_primitive_attr_destroy (attr_other);
  return e;

fail:
  set_dnnl_error (error, "attention primitives", st);
  for (int i = 0; i < 3; i++)
    if (pd[i])
      dnnl_primitive_desc_destroy (pd[i]);
  if (post_ops)
    dnnl_post_ops_destroy (post_ops);
  if (attr_scores)
    dnnl_primitive_attr_destroy (attr_scores);
  if (attr_other)
    dnnl_primitive_attr_destroy (attr_other);
  attention_entry_free (e);
  return NULL;
}

static AttentionEntry *
attention_lookup (OnednnPriv *priv, const AttentionKey *key, float scale, GError **error)
{
  g_mutex_lock (&priv->lock);
  AttentionEntry *entry = g_hash_table_lookup (priv->attentions, key);
  g_mutex_unlock (&priv->lock);
  if (entry)
    return entry;
  AttentionEntry *created = attention_create (key, scale, error);
  if (created == NULL)
    return NULL;
  g_mutex_lock (&priv->lock);
  entry = g_hash_table_lookup (priv->attentions, key);
  if (entry == NULL) {
    g_hash_table_insert (priv->attentions, &created->key, created);
    entry = created;
    created = NULL;
  }
  g_mutex_unlock (&priv->lock);
  if (created)
    attention_entry_free (created);
  return entry;
}

static void
onednn_attention (CnclipBackend *backend, const CnclipAttentionArgs *a)
{
  if (a->n_tokens <= 0 || a->n_heads <= 0)
    return;
  OnednnPriv *priv = backend->priv;
  GError *error = NULL;
  ThreadState *ts = thread_state ();
  if (ts && !priv->fused_attention_off && cnclip_attention_fused_supported (a->head_dim)) {
    const int threads = omp_get_max_threads ();
    gsize bytes = cnclip_attention_fused_work_floats (a->n_tokens, a->head_dim, threads)
        * sizeof (float);
    if (ensure_buffer (&ts->scratch, &ts->scratch_size, bytes)) {
      cnclip_attention_fused (a, ts->scratch, threads);
      return;
    }
  }
  AttentionKey key = {
    .n_tokens = a->n_tokens, .n_heads = a->n_heads, .head_dim = a->head_dim, .ld = a->ld,
    .ld_out = a->ld_out, .n_threads = omp_get_max_threads (), .masked = a->key_mask_add != NULL,
  };
  memcpy (&key.scale_bits, &a->scale, sizeof key.scale_bits);
  AttentionEntry *e = ts ? attention_lookup (priv, &key, a->scale, &error) : NULL;
  if (e == NULL || !ensure_buffer (&ts->scratch, &ts->scratch_size, e->scratch_size)) {
    report_failure (backend, "attention", error);
    for (int i = 0; i < a->n_tokens; i++)
      fill_nan (a->out + (gsize) i * a->ld_out, 1, a->n_heads * a->head_dim, a->ld_out);
    return;
  }

  dnnl_engine_t eng = get_engine ();
  dnnl_memory_t q = NULL, k = NULL, v = NULL, s = NULL, s2 = NULL, out = NULL, mask = NULL;
  dnnl_memory_t scratch[3] = { NULL, NULL, NULL };
  dnnl_status_t st;
  if ((st = dnnl_memory_create (&q, &e->q_md, eng, (void *) a->q))
      || (st = dnnl_memory_create (&k, &e->k_md, eng, (void *) a->k))
      || (st = dnnl_memory_create (&v, &e->v_md, eng, (void *) a->v))
      || (st = dnnl_memory_create (&s, &e->s_md, eng, a->scratch))
      || (st = dnnl_memory_create (&s2, &e->s2_md, eng, a->scratch))
      || (st = dnnl_memory_create (&out, &e->out_md, eng, a->out))
      || (a->key_mask_add
          && (st = dnnl_memory_create (&mask, &e->mask_md, eng, (void *) a->key_mask_add))))
    goto done;
  for (int i = 0; i < 3; i++)
    if ((st = dnnl_memory_create (&scratch[i], &e->scratch_md[i], eng, ts->scratch)))
      goto done;
  dnnl_exec_arg_t scores_args[5] = {
    { DNNL_ARG_SRC, q }, { DNNL_ARG_WEIGHTS, k }, { DNNL_ARG_DST, s },
    { DNNL_ARG_SCRATCHPAD, scratch[0] },
    { DNNL_ARG_ATTR_MULTIPLE_POST_OP (0) | DNNL_ARG_SRC_1, mask },
  };
  dnnl_exec_arg_t softmax_args[3] = {
    { DNNL_ARG_SRC, s2 }, { DNNL_ARG_DST, s2 }, { DNNL_ARG_SCRATCHPAD, scratch[1] },
  };
  dnnl_exec_arg_t context_args[4] = {
    { DNNL_ARG_SRC, s }, { DNNL_ARG_WEIGHTS, v }, { DNNL_ARG_DST, out },
    { DNNL_ARG_SCRATCHPAD, scratch[2] },
  };
  if ((st = dnnl_primitive_execute (e->scores, ts->stream, mask ? 5 : 4, scores_args))
      || (st = dnnl_primitive_execute (e->softmax, ts->stream, 3, softmax_args))
      || (st = dnnl_primitive_execute (e->context, ts->stream, 4, context_args)))
    goto done;

done:
  if (st != dnnl_success) {
    set_dnnl_error (&error, "attention execution", st);
    report_failure (backend, "attention", error);
    for (int i = 0; i < a->n_tokens; i++)
      fill_nan (a->out + (gsize) i * a->ld_out, 1, a->n_heads * a->head_dim, a->ld_out);
  }
  dnnl_memory_t all[] = { q, k, v, s, s2, out, mask, scratch[0], scratch[1], scratch[2] };
  for (guint i = 0; i < G_N_ELEMENTS (all); i++)
    if (all[i])
      dnnl_memory_destroy (all[i]);
}

/* ------------------------------------------------------------------------ */
/* Backend                                                                  */

/* oneDNN falls back to slow reference kernels when the CPU lacks an ISA
 * (bf16 without AVX512-BF16 or AMX would be slower than fp32): refuse. */
static gboolean
check_precision_fast (OnednnPriv *priv, GError **error)
{
  MatmulKey key = { .m = 16, .n = 64, .k = 64, .ldx = 64, .ldy = 64, .n_threads = 1,
    .has_bias = TRUE };
  dnnl_memory_desc_t md;
  MatmulEntry *e = matmul_create (priv, &key, NULL, &md, error);
  if (e == NULL)
    return FALSE;
  gboolean fast = !g_str_has_prefix (e->impl, "ref");
  matmul_entry_free (e);
  if (fast)
    return TRUE;
  g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_BACKEND, "%s needs a CPU with %s (oneDNN has "
      "only its reference kernel here)", cnclip_precision_to_string (priv->precision),
      priv->precision == CNCLIP_PRECISION_BF16 ? "AVX512-BF16 or AMX" : "AVX512 or AVX2-VNNI");
  return FALSE;
}

static gboolean
onednn_init (CnclipBackend *backend, CnclipPrecision precision, GError **error)
{
  if (get_engine () == NULL) {
    set_dnnl_error (error, "CPU engine creation", engine_status);
    return FALSE;
  }
  OnednnPriv *priv = g_new0 (OnednnPriv, 1);
  g_mutex_init (&priv->lock);
  priv->precision = precision;
  priv->fused_attention_off = g_strcmp0 (g_getenv ("CNCLIP_ONEDNN_ATTENTION"), "primitives") == 0;
  priv->matmuls = g_hash_table_new_full (matmul_key_hash, matmul_key_equal, NULL,
      matmul_entry_free);
  priv->attentions = g_hash_table_new_full (attention_key_hash, attention_key_equal, NULL,
      attention_entry_free);
  backend->priv = priv;
  if (precision != CNCLIP_PRECISION_FP32 && !check_precision_fast (priv, error)) {
    backend->ops->finalize (backend);
    return FALSE;
  }
  /* One thread pool per process: OpenBLAS's pthreads would fight OpenMP's
   * for the cores (the encoders' few OpenBLAS calls are small). */
  openblas_set_num_threads (1);
  return TRUE;
}

static void
onednn_finalize (CnclipBackend *backend)
{
  OnednnPriv *priv = backend->priv;
  if (priv == NULL)
    return;
  g_hash_table_destroy (priv->matmuls);
  g_hash_table_destroy (priv->attentions);
  g_mutex_clear (&priv->lock);
  g_free (priv);
  backend->priv = NULL;
}

static const CnclipBackendOps onednn_ops = {
  .name = "onednn",
  .kind = CNCLIP_BACKEND_ONEDNN,
  .init = onednn_init,
  .finalize = onednn_finalize,
  .linear_prepare = onednn_linear_prepare,
  .linear_free = onednn_linear_free,
  .linear_forward = onednn_linear_forward,
  .attention = onednn_attention,
  .releases_source = TRUE,
};

const CnclipBackendOps *
cnclip_backend_onednn_ops (void)
{
  return &onednn_ops;
}
