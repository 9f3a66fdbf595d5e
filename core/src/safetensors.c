#include "cnclip.h"
#include "model.h"
#include "weights.h"
#include "backend.h"
/* Placeholder: replaced by the real implementation. */
#define NI(ret) G_STMT_START { g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_UNSUPPORTED, "%s: not implemented yet", G_STRFUNC); return ret; } G_STMT_END

CnclipWeightFile *cnclip_safetensors_open (const char *p, GError **error) { NI (NULL); }
