#include "cnclip.h"
#include "model.h"
#include "weights.h"
#include "backend.h"
/* Placeholder: replaced by the real implementation. */
#define NI(ret) G_STMT_START { g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_UNSUPPORTED, "%s: not implemented yet", G_STRFUNC); return ret; } G_STMT_END

void cnclip_l2_normalize (float *v, int n, int d) { }
void cnclip_score (const float *ie, int ni, const float *te, int nt, int d, float s, float *c, float *l, float *p) { }
void cnclip_softmax (float *v, int n) { }
