/* ops.c: placeholder. */
#include "cnclip.h"
