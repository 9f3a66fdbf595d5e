/* attention.h: a fused multi-head attention kernel (scores, mask, softmax
 * and the value product per block of query rows, kept in L1/L2), for
 * backends whose library does it in three passes over memory.
 *
 * Semantics are those of CnclipBackendOps.attention (backend.h); the
 * CnclipAttentionArgs scratch is not used, the kernel needs its own work
 * buffer instead (smaller: it never holds a whole score matrix).
 */
#ifndef CNCLIP_ATTENTION_H
#define CNCLIP_ATTENTION_H

#include "backend.h"

G_BEGIN_DECLS

/* TRUE when the kernel runs @head_dim on this CPU (AVX-512F, head_dim 64:
 * every Chinese-CLIP size). Callers fall back to their own path otherwise. */
gboolean cnclip_attention_fused_supported (int head_dim);

/* Floats of @work cnclip_attention_fused() needs for @n_tokens tokens when
 * it runs on up to @n_threads OpenMP threads. */
gsize cnclip_attention_fused_work_floats (int n_tokens, int head_dim, int n_threads);

/* Runs attention for all heads of @args, splitting heads over the OpenMP
 * threads (omp_get_max_threads() of the caller, at most @n_threads given to
 * cnclip_attention_fused_work_floats()). @work must be 64-byte aligned.
 * Thread-safe: reads @args' inputs, writes only @args->out and @work. */
void cnclip_attention_fused (const CnclipAttentionArgs *args, float *work, int n_threads);

G_END_DECLS

#endif /* CNCLIP_ATTENTION_H */
