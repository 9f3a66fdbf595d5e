#include "cnclip.h"
#include "model.h"
#include "weights.h"
#include "backend.h"
/* Placeholder: replaced by the real implementation. */
#define NI(ret) G_STMT_START { g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_UNSUPPORTED, "%s: not implemented yet", G_STRFUNC); return ret; } G_STMT_END

CnclipModelParams cnclip_model_default_params (void) { CnclipModelParams p = { NULL, CNCLIP_BACKEND_AUTO, CNCLIP_PRECISION_FP32, TRUE, TRUE, 0 }; return p; }
CnclipModel *cnclip_model_load (const char *d, const CnclipModelParams *p, GError **error) { NI (NULL); }
CnclipModel *cnclip_model_ref (CnclipModel *m) { return m; }
void cnclip_model_unref (CnclipModel *m) { }
const char *cnclip_model_get_name (const CnclipModel *m) { return NULL; }
const char *cnclip_model_get_path (const CnclipModel *m) { return NULL; }
const char *cnclip_model_get_weights_path (const CnclipModel *m) { return NULL; }
int cnclip_model_get_projection_dim (const CnclipModel *m) { return 0; }
int cnclip_model_get_image_size (const CnclipModel *m) { return 0; }
int cnclip_model_get_context_length (const CnclipModel *m) { return 0; }
float cnclip_model_get_logit_scale (const CnclipModel *m) { return 0; }
CnclipBackendKind cnclip_model_get_backend (const CnclipModel *m) { return 0; }
CnclipPrecision cnclip_model_get_precision (const CnclipModel *m) { return 0; }
gboolean cnclip_model_has_vision (const CnclipModel *m) { return FALSE; }
gboolean cnclip_model_has_text (const CnclipModel *m) { return FALSE; }
const CnclipTokenizer *cnclip_model_get_tokenizer (const CnclipModel *m) { return NULL; }
gboolean cnclip_model_save_safetensors (const CnclipModel *m, const char *p, GError **error) { NI (FALSE); }
void cnclip_model_normalize_pixels (const CnclipModel *m, const guint8 *rgb, float *pv) { }
gboolean cnclip_model_preprocess (const CnclipModel *m, const CnclipImage *i, float *pv, GError **error) { NI (FALSE); }
int cnclip_model_vision_tokens (const CnclipModel *m) { return 0; }
