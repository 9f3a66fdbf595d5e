/* pickle.c: placeholder. */
#include "cnclip.h"
