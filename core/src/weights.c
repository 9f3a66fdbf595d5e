#include "cnclip.h"
#include "model.h"
#include "weights.h"
#include "backend.h"
/* Placeholder: replaced by the real implementation. */
#define NI(ret) G_STMT_START { g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_UNSUPPORTED, "%s: not implemented yet", G_STRFUNC); return ret; } G_STMT_END

gsize cnclip_dtype_size (CnclipDType d) { return 0; }
const char *cnclip_dtype_to_string (CnclipDType d) { return "?"; }
CnclipWeightFile *cnclip_weight_file_map (const char *p, GError **error) { NI (NULL); }
void cnclip_weight_file_free (CnclipWeightFile *f) { }
const char *cnclip_weight_file_get_path (const CnclipWeightFile *f) { return NULL; }
const guint8 *cnclip_weight_file_get_data (const CnclipWeightFile *f) { return NULL; }
gsize cnclip_weight_file_get_size (const CnclipWeightFile *f) { return 0; }
gboolean cnclip_weight_file_add_tensor (CnclipWeightFile *f, const CnclipTensorInfo *i, GError **error) { NI (FALSE); }
const CnclipTensorInfo *cnclip_weight_file_lookup (const CnclipWeightFile *f, const char *n) { return NULL; }
guint cnclip_weight_file_get_n_tensors (const CnclipWeightFile *f) { return 0; }
const CnclipTensorInfo *cnclip_weight_file_get_tensor (const CnclipWeightFile *f, guint i) { return NULL; }
void cnclip_weight_file_release (CnclipWeightFile *f, const void *d, gsize s) { }
float cnclip_tensor_get_float (const CnclipTensorInfo *i, gint64 x) { return 0; }
gboolean cnclip_tensor_to_f32 (const CnclipTensorInfo *i, float *o, GError **error) { NI (FALSE); }
