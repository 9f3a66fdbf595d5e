/* index.h: building an index in memory, for the loader, tests and the
 * search benchmark (which needs a million records without a 3 GB file). */
#ifndef CNCLIP_INDEX_H
#define CNCLIP_INDEX_H

#include <glib.h>
#include "cnclip.h"

G_BEGIN_DECLS

/* Largest embedding dim an index accepts. */
#define CNCLIP_INDEX_MAX_DIM 65536
/* Sampling interval of a source with fewer than two distinct timestamps. */
#define CNCLIP_INDEX_DEFAULT_INTERVAL (G_GINT64_CONSTANT (1000000000))

/* An empty index of embeddings of @dim floats (0: set by the first add). */
CnclipIndex *cnclip_index_new (int dim);

/* Room for @n more records without reallocating. Errors: CNCLIP_ERROR_NOMEM,
 * CNCLIP_ERROR_TOO_LARGE. */
gboolean cnclip_index_reserve (CnclipIndex *index, gsize n, GError **error);

/* The id of @source (@length bytes, or -1), interned on first use. */
int cnclip_index_intern_source (CnclipIndex *index, const char *source, gssize length);

/* Appends a record and returns its row (dim floats) for the caller to fill
 * and then pass to cnclip_index_normalize_row(), or NULL on error
 * (CNCLIP_ERROR_NOMEM, CNCLIP_ERROR_TOO_LARGE). @frame may be -1. */
float *cnclip_index_add_row (CnclipIndex *index, int source_id, gint64 timestamp, gint64 frame,
    GError **error);
/* Forgets the last row added (its values were unusable). */
void cnclip_index_drop_last_row (CnclipIndex *index);
/* Copies @embedding in as a normalised row. */
gboolean cnclip_index_add (CnclipIndex *index, int source_id, gint64 timestamp, gint64 frame,
    const float *embedding, GError **error);

/* L2-normalises @row (dim floats; zero stays zero). FALSE when a value is
 * not finite. */
gboolean cnclip_index_normalize_row (float *row, int dim);

/* Computes the per-source sampling intervals; call once after adding and
 * before searching. */
void cnclip_index_finish (CnclipIndex *index);

G_END_DECLS

#endif
