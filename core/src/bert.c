/* bert.c: placeholder. */
#include "cnclip.h"
