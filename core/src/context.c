#include "cnclip.h"
#include "model.h"
#include "weights.h"
#include "backend.h"
/* Placeholder: replaced by the real implementation. */
#define NI(ret) G_STMT_START { g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_UNSUPPORTED, "%s: not implemented yet", G_STRFUNC); return ret; } G_STMT_END

CnclipContextParams cnclip_context_default_params (void) { CnclipContextParams p = { 0, 1, 16, NULL, NULL }; return p; }
CnclipContext *cnclip_context_new (CnclipModel *m, const CnclipContextParams *p, GError **error) { NI (NULL); }
void cnclip_context_free (CnclipContext *c) { }
CnclipModel *cnclip_context_get_model (CnclipContext *c) { return NULL; }
void cnclip_context_set_n_threads (CnclipContext *c, int n) { }
gboolean cnclip_encode_images (CnclipContext *c, const CnclipImage *i, int n, float *e, GError **error) { NI (FALSE); }
gboolean cnclip_encode_pixels (CnclipContext *c, const float *p, int n, float *e, GError **error) { NI (FALSE); }
gboolean cnclip_encode_texts (CnclipContext *c, const char *const *t, int n, float *e, GError **error) { NI (FALSE); }
gboolean cnclip_encode_token_ids (CnclipContext *c, const gint32 *ids, int n, int r, float *e, GError **error) { NI (FALSE); }
