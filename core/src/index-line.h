/* index-line.h: parsing one record line of an index file.
 *
 * A small strict JSON reader made for the record format: it checks the whole
 * line's grammar but keeps only what an index needs (source, times, frame,
 * model dim, the embedding's dtype and base64 text), pointing into the line
 * instead of building a tree. A million records load without allocating per
 * line. Untrusted input: every read is bounds-checked and nesting is limited.
 */
#ifndef CNCLIP_INDEX_LINE_H
#define CNCLIP_INDEX_LINE_H

#include <glib.h>
#include "cnclip.h"

G_BEGIN_DECLS

typedef struct
{
  const char *source;            /* UTF-8, NUL-free; points into the line or scratch */
  gsize source_len;
  gint64 frame;                  /* -1 when null or absent */
  gint64 timestamp;              /* ns; -1 when null or absent */
  gint64 pts;                    /* ns; -1 when null or absent */
  int model_dim;                 /* -1 when absent */
  CnclipEmbeddingDtype dtype;    /* NONE when "embedding" is null, absent or dtype "none" */
  const char *data;              /* base64 text (escapes resolved), when dtype != NONE */
  gsize data_len;
} CnclipIndexLine;

typedef struct
{
  GString *source;               /* unescaped source when it had escapes */
  GString *data;                 /* unescaped base64 when it had escapes */
  GString *key;                  /* unescaped keys */
} CnclipIndexLineScratch;

void cnclip_index_line_scratch_init (CnclipIndexLineScratch *scratch);
void cnclip_index_line_scratch_clear (CnclipIndexLineScratch *scratch);

/* Parses the record in @line (@length bytes, no newline). Returns FALSE with
 * a static English @reason when the line is not a valid version-1 record. */
gboolean cnclip_index_line_parse (const char *line, gsize length, CnclipIndexLine *out,
    CnclipIndexLineScratch *scratch, const char **reason);

/* Strict base64 (standard alphabet, padded, length a multiple of 4) into
 * @out, which holds cnclip_base64_decoded_length() bytes. FALSE on any
 * other character or misplaced padding. */
gssize cnclip_base64_decoded_length (const char *text, gsize length);
gboolean cnclip_base64_decode (const char *text, gsize length, guint8 *out);

G_END_DECLS

#endif
