#include "cnclip.h"
#include "model.h"
#include "weights.h"
#include "backend.h"
/* Placeholder: replaced by the real implementation. */
#define NI(ret) G_STMT_START { g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_UNSUPPORTED, "%s: not implemented yet", G_STRFUNC); return ret; } G_STMT_END

int cnclip_pixel_format_bytes_per_pixel (CnclipPixelFormat f) { return 0; }
gboolean cnclip_image_to_rgb (const CnclipImage *i, guint8 *rgb, GError **error) { NI (FALSE); }
gboolean cnclip_image_resize_rgb (const guint8 *in, int iw, int ih, int is, guint8 *out, int ow, int oh, GError **error) { NI (FALSE); }
