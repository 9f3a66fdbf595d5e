/* error.c: the error domain of libcnclip. */
#include "cnclip.h"

G_DEFINE_QUARK (cnclip-error-quark, cnclip_error)
