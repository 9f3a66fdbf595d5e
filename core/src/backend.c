#include "cnclip.h"
#include "model.h"
#include "weights.h"
#include "backend.h"
/* Placeholder: replaced by the real implementation. */
#define NI(ret) G_STMT_START { g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_UNSUPPORTED, "%s: not implemented yet", G_STRFUNC); return ret; } G_STMT_END

CnclipBackend *cnclip_backend_new (CnclipBackendKind k, CnclipPrecision p, GError **error) { NI (NULL); }
void cnclip_backend_free (CnclipBackend *b) { }
gsize cnclip_attention_scratch_floats (int n, int h) { return 0; }
void cnclip_backend_set_threads (CnclipBackend *b, int n) { }
