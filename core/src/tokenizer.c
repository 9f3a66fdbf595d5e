#include "cnclip.h"
#include "model.h"
#include "weights.h"
#include "backend.h"
/* Placeholder: replaced by the real implementation. */
#define NI(ret) G_STMT_START { g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_UNSUPPORTED, "%s: not implemented yet", G_STRFUNC); return ret; } G_STMT_END

CnclipTokenizer *cnclip_tokenizer_load (const char *p, GError **error) { NI (NULL); }
void cnclip_tokenizer_free (CnclipTokenizer *t) { }
int cnclip_tokenizer_get_vocab_size (const CnclipTokenizer *t) { return 0; }
const char *cnclip_tokenizer_id_to_token (const CnclipTokenizer *t, int id) { return NULL; }
int cnclip_tokenizer_tokenize (const CnclipTokenizer *t, const char *s, gssize l, gint32 *ids, int m, GError **error) { NI (-1); }
gboolean cnclip_tokenizer_encode (const CnclipTokenizer *t, const char *s, gssize l, int c, gint32 *ids, int *n, GError **error) { NI (FALSE); }
