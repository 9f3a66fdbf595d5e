/* backend.c: choosing and creating a GEMM backend (see backend.h). */
#include "config.h"

#include <string.h>
#include <omp.h>

#include "backend.h"

static const CnclipBackendOps *
ops_for_kind (CnclipBackendKind kind)
{
  switch (kind) {
    case CNCLIP_BACKEND_ONEDNN:
      return cnclip_backend_onednn_ops ();
    case CNCLIP_BACKEND_OPENBLAS:
      return cnclip_backend_openblas_ops ();
    default:
      return NULL;
  }
}

gboolean
cnclip_backend_available (CnclipBackendKind kind)
{
  if (kind == CNCLIP_BACKEND_AUTO)
    return TRUE;
  return ops_for_kind (kind) != NULL;
}

const char *
cnclip_backend_kind_to_string (CnclipBackendKind kind)
{
  switch (kind) {
    case CNCLIP_BACKEND_ONEDNN: return "onednn";
    case CNCLIP_BACKEND_OPENBLAS: return "openblas";
    default: return "auto";
  }
}

gboolean
cnclip_backend_kind_from_string (const char *str, CnclipBackendKind *kind)
{
  g_return_val_if_fail (kind != NULL, FALSE);
  if (str == NULL || g_ascii_strcasecmp (str, "auto") == 0 || *str == '\0')
    *kind = CNCLIP_BACKEND_AUTO;
  else if (g_ascii_strcasecmp (str, "onednn") == 0 || g_ascii_strcasecmp (str, "dnnl") == 0)
    *kind = CNCLIP_BACKEND_ONEDNN;
  else if (g_ascii_strcasecmp (str, "openblas") == 0 || g_ascii_strcasecmp (str, "blas") == 0)
    *kind = CNCLIP_BACKEND_OPENBLAS;
  else
    return FALSE;
  return TRUE;
}

const char *
cnclip_precision_to_string (CnclipPrecision precision)
{
  switch (precision) {
    case CNCLIP_PRECISION_BF16: return "bf16";
    case CNCLIP_PRECISION_INT8: return "int8";
    default: return "fp32";
  }
}

gboolean
cnclip_precision_from_string (const char *str, CnclipPrecision *precision)
{
  g_return_val_if_fail (precision != NULL, FALSE);
  if (str == NULL || *str == '\0' || g_ascii_strcasecmp (str, "fp32") == 0
      || g_ascii_strcasecmp (str, "f32") == 0)
    *precision = CNCLIP_PRECISION_FP32;
  else if (g_ascii_strcasecmp (str, "bf16") == 0)
    *precision = CNCLIP_PRECISION_BF16;
  else if (g_ascii_strcasecmp (str, "int8") == 0)
    *precision = CNCLIP_PRECISION_INT8;
  else
    return FALSE;
  return TRUE;
}

/* AUTO: the environment wins (so users can switch without rebuilding), then
 * the fastest backend compiled in. */
static CnclipBackendKind
resolve_kind (CnclipBackendKind kind, GError **error)
{
  if (kind != CNCLIP_BACKEND_AUTO)
    return kind;
  const char *env = g_getenv ("CNCLIP_BACKEND");
  if (env && *env) {
    CnclipBackendKind from_env;
    if (!cnclip_backend_kind_from_string (env, &from_env)) {
      g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_BACKEND,
          "CNCLIP_BACKEND='%s' is not a backend (auto, onednn, openblas)", env);
      return CNCLIP_BACKEND_AUTO;
    }
    if (from_env != CNCLIP_BACKEND_AUTO)
      return from_env;
  }
  return cnclip_backend_onednn_ops () ? CNCLIP_BACKEND_ONEDNN : CNCLIP_BACKEND_OPENBLAS;
}

CnclipBackend *
cnclip_backend_new (CnclipBackendKind kind, CnclipPrecision precision, GError **error)
{
  GError *local = NULL;
  CnclipBackendKind resolved = resolve_kind (kind, &local);
  if (local) {
    g_propagate_error (error, local);
    return NULL;
  }
  const CnclipBackendOps *ops = ops_for_kind (resolved);
  if (ops == NULL) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_BACKEND,
        "backend '%s' is not built in (oneDNN needs libdnnl-dev at build time)",
        cnclip_backend_kind_to_string (resolved));
    return NULL;
  }
  CnclipBackend *backend = g_new0 (CnclipBackend, 1);
  backend->ops = ops;
  backend->precision = precision;
  if (ops->init && !ops->init (backend, precision, error)) {
    g_free (backend);
    return NULL;
  }
  return backend;
}

void
cnclip_backend_free (CnclipBackend *backend)
{
  if (backend == NULL)
    return;
  if (backend->ops->finalize)
    backend->ops->finalize (backend);
  g_free (backend);
}

gsize
cnclip_attention_scratch_floats (int n_tokens, int n_heads)
{
  /* One score matrix per head, so heads can run in parallel. */
  return (gsize) n_tokens * n_tokens * n_heads;
}

void
cnclip_backend_set_threads (CnclipBackend *backend, int n_threads)
{
  if (n_threads <= 0)
    n_threads = omp_get_num_procs ();
  omp_set_num_threads (n_threads);
}
