/* vit.c: placeholder. */
#include "cnclip.h"
