#include "cnclip.h"
#include "model.h"
#include "weights.h"
#include "backend.h"
/* Placeholder: replaced by the real implementation. */
#define NI(ret) G_STMT_START { g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_UNSUPPORTED, "%s: not implemented yet", G_STRFUNC); return ret; } G_STMT_END

gboolean cnclip_config_load (const char *d, CnclipConfig *c, GError **error) { NI (FALSE); }
gboolean cnclip_config_parse (const char *a, gssize al, const char *b, gssize bl, const char *c, gssize cl, CnclipConfig *cfg, GError **error) { NI (FALSE); }
