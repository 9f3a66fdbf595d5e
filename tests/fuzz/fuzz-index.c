/* fuzz-index.c: the JSONL index reader on arbitrary bytes.
 *
 * First every line goes, as an exact-size heap copy (so that a read past the
 * line is seen by ASan), through the record-line parser and the base64
 * decoder (index-line.h). Then the whole input is loaded as an index file
 * with cnclip_index_load() (line splitting, recovery of interrupted writes,
 * dims, sources, intervals), and searched. Checks: refused lines give a
 * reason, accepted lines point inside the line (or the scratch) at valid
 * UTF-8, the loaded rows are finite and normalised, and search results
 * refer to real records and sources. */
#include "config.h"

#include "fuzz-common.h"

#include <math.h>

#include "index-line.h"

static const int allowed[] = {
  CNCLIP_ERROR_FORMAT, CNCLIP_ERROR_TOO_LARGE, CNCLIP_ERROR_NOMEM, -1
};

static gboolean
inside (const char *p, gsize n, const char *base, gsize size)
{
  return p >= base && (gsize) (p - base) <= size && n <= size - (gsize) (p - base);
}

static gboolean
inside_scratch (const char *p, gsize n, const GString *s)
{
  return s != NULL && inside (p, n, s->str, s->len);
}

static void
fuzz_line (const char *line, gsize length, CnclipIndexLineScratch *scratch)
{
  CnclipIndexLine out;
  const char *reason = NULL;
  if (!cnclip_index_line_parse (line, length, &out, scratch, &reason)) {
    FUZZ_CHECK (reason != NULL && reason[0] != '\0');
    return;
  }
  FUZZ_CHECK (out.source != NULL);
  FUZZ_CHECK (inside (out.source, out.source_len, line, length)
      || inside_scratch (out.source, out.source_len, scratch->source));
  FUZZ_CHECK (g_utf8_validate_len (out.source, out.source_len, NULL));
  if (out.dtype == CNCLIP_EMBEDDING_NONE)
    return;
  FUZZ_CHECK (out.data != NULL);
  FUZZ_CHECK (inside (out.data, out.data_len, line, length)
      || inside_scratch (out.data, out.data_len, scratch->data));
  gssize n = cnclip_base64_decoded_length (out.data, out.data_len);
  if (n < 0)
    return;
  guint8 *bytes = g_malloc (n);
  if (cnclip_base64_decode (out.data, out.data_len, bytes) && n > 0) {
    /* the GLib decoder must agree on strict base64 */
    char *text = g_strndup (out.data, out.data_len);
    gsize glib_n;
    guchar *glib = g_base64_decode (text, &glib_n);
    FUZZ_CHECK (glib_n == (gsize) n && memcmp (glib, bytes, n) == 0);
    g_free (glib);
    g_free (text);
  }
  g_free (bytes);
}

static void
fuzz_loaded (const CnclipIndex *index)
{
  gsize n = cnclip_index_get_n_records (index);
  int dim = cnclip_index_get_dim (index);
  int n_sources = cnclip_index_get_n_sources (index);
  const CnclipIndexStats *stats = cnclip_index_get_stats (index);
  FUZZ_CHECK (stats != NULL && stats->n_records == n);
  FUZZ_CHECK (n == 0 || (dim > 0 && dim <= 65536));
  FUZZ_CHECK (n_sources >= 0);
  for (int s = 0; s < n_sources; s++) {
    const char *source = cnclip_index_get_source (index, s);
    FUZZ_CHECK (source != NULL && g_utf8_validate (source, -1, NULL));
    FUZZ_CHECK (cnclip_index_get_source_interval (index, s) > 0);
  }
  for (gsize i = 0; i < n && i < 1000; i++) {
    const float *e = cnclip_index_get_embedding (index, i);
    double norm = 0.0;
    for (int d = 0; d < dim; d++) {
      FUZZ_CHECK (isfinite (e[d]));
      norm += (double) e[d] * e[d];
    }
    FUZZ_CHECK (norm == 0.0 || fabs (sqrt (norm) - 1.0) < 1e-3);
    int source_id;
    gint64 timestamp, frame;
    cnclip_index_get_record (index, i, &source_id, &timestamp, &frame);
    FUZZ_CHECK (source_id >= 0 && source_id < n_sources);
    FUZZ_CHECK (frame >= -1);
  }
  if (n == 0)
    return;

  float *query = g_new (float, dim);
  for (int d = 0; d < dim; d++)
    query[d] = (d % 3) - 1.0f;
  query[0] = 1.0f;
  CnclipSearchParams params = cnclip_search_default_params ();
  params.k = 4;
  CnclipSearchRange ranges[4];
  GError *error = NULL;
  int k = cnclip_index_search (index, query, dim, &params, ranges, &error);
  fuzz_check_error (k >= 0, &error, NULL);
  FUZZ_CHECK (k >= 1 && k <= 4);
  for (int r = 0; r < k; r++) {
    FUZZ_CHECK (ranges[r].source_id >= 0 && ranges[r].source_id < n_sources);
    FUZZ_CHECK (ranges[r].source == cnclip_index_get_source (index, ranges[r].source_id));
    FUZZ_CHECK (ranges[r].best_record < n && ranges[r].n_hits >= 1);
    FUZZ_CHECK (ranges[r].start >= 0 && ranges[r].start <= ranges[r].end);
    FUZZ_CHECK (isfinite (ranges[r].score) && fabsf (ranges[r].score) <= 1.001f);
  }
  g_free (query);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  CnclipIndexLineScratch scratch;
  cnclip_index_line_scratch_init (&scratch);
  for (const char *p = (const char *) data, *end = p + size; p < end;) {
    const char *nl = memchr (p, '\n', (gsize) (end - p));
    gsize length = (gsize) ((nl ? nl : end) - p);
    /* malloc (0) is a real, unreadable block under ASan; g_malloc (0) is NULL. */
    char *line = malloc (length);
    FUZZ_CHECK (line != NULL);
    memcpy (line, p, length);
    fuzz_line (line, length, &scratch);
    free (line);
    p += length + 1;
  }
  cnclip_index_line_scratch_clear (&scratch);

  const char *paths[] = { fuzz_file_set (data, size), NULL };
  GError *error = NULL;
  CnclipIndex *index = cnclip_index_load (paths, &error);
  fuzz_check_error (index != NULL, &error, allowed);
  if (index != NULL) {
    fuzz_loaded (index);
    cnclip_index_free (index);
  }
  return 0;
}
