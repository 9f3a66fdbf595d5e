/* record.h: helpers the record writer shares with the index reader. */
#ifndef CNCLIP_RECORD_H
#define CNCLIP_RECORD_H

#include <glib.h>

G_BEGIN_DECLS

/* IEEE 754 binary16 conversions: round-to-nearest-even, subnormals,
 * infinities and NaN kept. */
guint16 cnclip_float_to_half (float value);
float cnclip_half_to_float (guint16 half);

G_END_DECLS

#endif
