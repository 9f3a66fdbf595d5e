/* index.c: record files loaded as one normalised embedding matrix, scored
 * with one BLAS call, hits merged into time ranges (policy in cnclip.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE    /* mremap */
#endif
#include "config.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cnclip.h"
#include "index.h"
#include "index-line.h"
#include "record.h"

/* Files are read in chunks of this size; a longer line grows the buffer
 * up to MAX_LINE, beyond which the line is skipped as invalid (a record of
 * the largest dim, 65536 f32 values, is about 350 KB). */
#define READ_CHUNK (1 << 20)
#define MAX_LINE (16 << 20)

struct _CnclipIndex
{
  int dim;
  gsize n;
  gsize capacity;
  float *matrix;                 /* [matrix_rows, dim], rows normalised */
  gsize matrix_rows;             /* rows mapped (>= capacity) */
  guint32 *source_ids;           /* [capacity] */
  gint64 *times;                 /* [capacity] ns */
  gint64 *frames;                /* [capacity] -1 when null */
  GPtrArray *sources;            /* char *, by id */
  GHashTable *source_lookup;     /* source -> id + 1 (keys owned by sources) */
  gint64 *intervals;             /* [n_sources] ns, after finish */
  CnclipIndexStats stats;
  char *first_problem;
};

/* The matrix lives in its own mapping on Linux: growing it with mremap
 * moves page tables instead of copying gigabytes (malloc's realloc copies
 * whenever its dynamic mmap threshold put the block on the heap), and large
 * ones get transparent huge pages where the kernel leaves that to madvise:
 * far fewer page faults while loading, fewer TLB misses while scanning. */
static gsize
page_round (gsize bytes)
{
  const gsize page = 4096;
  return (bytes + page - 1) / page * page;
}

static float *
matrix_resize (float *old, gsize old_bytes, gsize new_bytes)
{
#if defined(__linux__) && defined(MREMAP_MAYMOVE)
  void *p = old ? mremap (old, page_round (old_bytes), page_round (new_bytes), MREMAP_MAYMOVE)
      : mmap (NULL, page_round (new_bytes), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
          -1, 0);
  if (p == MAP_FAILED)
    return NULL;
#ifdef MADV_HUGEPAGE
  if (new_bytes >= (gsize) 16 << 20)
    madvise (p, page_round (new_bytes), MADV_HUGEPAGE);
#endif
  return p;
#else
  return g_try_realloc (old, new_bytes);
#endif
}

static void
matrix_free (float *matrix, gsize bytes)
{
  if (matrix == NULL)
    return;
#if defined(__linux__) && defined(MREMAP_MAYMOVE)
  munmap (matrix, page_round (bytes));
#else
  g_free (matrix);
#endif
}

static gsize
matrix_bytes (const CnclipIndex *index, gsize rows)
{
  return rows * (gsize) index->dim * sizeof (float);
}

CnclipIndex *
cnclip_index_new (int dim)
{
  g_return_val_if_fail (dim >= 0 && dim <= CNCLIP_INDEX_MAX_DIM, NULL);
  CnclipIndex *index = g_new0 (CnclipIndex, 1);
  index->dim = dim;
  index->sources = g_ptr_array_new_with_free_func (g_free);
  index->source_lookup = g_hash_table_new (g_str_hash, g_str_equal);
  return index;
}

void
cnclip_index_free (CnclipIndex *index)
{
  if (index == NULL)
    return;
  matrix_free (index->matrix, matrix_bytes (index, index->matrix_rows));
  g_free (index->source_ids);
  g_free (index->times);
  g_free (index->frames);
  g_hash_table_destroy (index->source_lookup);
  g_ptr_array_free (index->sources, TRUE);
  g_free (index->intervals);
  g_free (index->first_problem);
  g_free (index);
}

static gboolean
grow (void **array, gsize count, gsize size)
{
  void *p = g_try_realloc (*array, count * size);
  if (p == NULL)
    return FALSE;
  *array = p;
  return TRUE;
}

gboolean
cnclip_index_reserve (CnclipIndex *index, gsize n, GError **error)
{
  g_return_val_if_fail (index != NULL, FALSE);
  g_return_val_if_fail (index->dim > 0, FALSE);

  /* BLAS takes the row count as an int. */
  if (n > (gsize) G_MAXINT - index->n) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_TOO_LARGE,
        "an index holds at most %d records", G_MAXINT);
    return FALSE;
  }
  const gsize want = index->n + n;
  if (want <= index->capacity)
    return TRUE;
  const gsize dim = (gsize) index->dim;
  float *matrix = NULL;
  if (want <= G_MAXSIZE / 2 / sizeof (float) / dim)
    matrix = matrix_resize (index->matrix, matrix_bytes (index, index->matrix_rows),
        matrix_bytes (index, want));
  if (matrix != NULL) {
    index->matrix = matrix;
    index->matrix_rows = want;
  }
  if (matrix == NULL ||
      !grow ((void **) &index->source_ids, want, sizeof (guint32)) ||
      !grow ((void **) &index->times, want, sizeof (gint64)) ||
      !grow ((void **) &index->frames, want, sizeof (gint64))) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_NOMEM,
        "cannot allocate an index of %" G_GSIZE_FORMAT " records of %d floats", want, index->dim);
    return FALSE;
  }
  index->capacity = want;
  return TRUE;
}

int
cnclip_index_intern_source (CnclipIndex *index, const char *source, gssize length)
{
  g_return_val_if_fail (index != NULL && source != NULL, -1);
  char *key = length < 0 ? g_strdup (source) : g_strndup (source, (gsize) length);
  gpointer id = g_hash_table_lookup (index->source_lookup, key);
  if (id != NULL) {
    g_free (key);
    return GPOINTER_TO_INT (id) - 1;
  }
  g_ptr_array_add (index->sources, key);
  int new_id = (int) index->sources->len - 1;
  g_hash_table_insert (index->source_lookup, key, GINT_TO_POINTER (new_id + 1));
  return new_id;
}

float *
cnclip_index_add_row (CnclipIndex *index, int source_id, gint64 timestamp, gint64 frame,
    GError **error)
{
  g_return_val_if_fail (index != NULL && index->dim > 0, NULL);
  g_return_val_if_fail (source_id >= 0 && (guint) source_id < index->sources->len, NULL);

  if (index->n == index->capacity) {
    /* Geometric growth; large blocks are moved by mremap, not copied. */
    gsize more = MAX (index->capacity / 2, 1024);
    if (more > (gsize) G_MAXINT - index->n)
      more = (gsize) G_MAXINT - index->n;
    if (!cnclip_index_reserve (index, more ? more : 1, error))
      return NULL;
  }
  const gsize i = index->n++;
  index->source_ids[i] = (guint32) source_id;
  index->times[i] = timestamp;
  index->frames[i] = frame;
  return index->matrix + i * (gsize) index->dim;
}

void
cnclip_index_drop_last_row (CnclipIndex *index)
{
  g_return_if_fail (index != NULL && index->n > 0);
  index->n--;
}

gboolean
cnclip_index_normalize_row (float *row, int dim)
{
  double sum = 0.0;
  for (int i = 0; i < dim; i++) {
    if (!isfinite (row[i]))
      return FALSE;
    sum += (double) row[i] * row[i];
  }
  if (sum > 0.0) {
    const double scale = 1.0 / sqrt (sum);
    for (int i = 0; i < dim; i++)
      row[i] = (float) (row[i] * scale);
  }
  return TRUE;
}

gboolean
cnclip_index_add (CnclipIndex *index, int source_id, gint64 timestamp, gint64 frame,
    const float *embedding, GError **error)
{
  g_return_val_if_fail (embedding != NULL, FALSE);
  float *row = cnclip_index_add_row (index, source_id, timestamp, frame, error);
  if (row == NULL)
    return FALSE;
  memcpy (row, embedding, sizeof (float) * (gsize) index->dim);
  if (!cnclip_index_normalize_row (row, index->dim)) {
    cnclip_index_drop_last_row (index);
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT,
        "embedding has a value that is not finite");
    return FALSE;
  }
  return TRUE;
}

static int
compare_gint64 (const void *a, const void *b)
{
  gint64 x = *(const gint64 *) a, y = *(const gint64 *) b;
  return x < y ? -1 : x > y;
}

/* Lower median of the positive gaps between the sorted @times. */
static gint64
median_gap (gint64 *times, gsize n)
{
  gboolean sorted = TRUE;
  for (gsize i = 1; i < n && sorted; i++)
    sorted = times[i - 1] <= times[i];
  if (!sorted)
    qsort (times, n, sizeof (gint64), compare_gint64);
  gsize n_gaps = 0;
  for (gsize i = 1; i < n; i++) {
    if (times[i] > times[i - 1])
      times[n_gaps++] = times[i] - times[i - 1];    /* in place: n_gaps < i */
  }
  if (n_gaps == 0)
    return CNCLIP_INDEX_DEFAULT_INTERVAL;
  qsort (times, n_gaps, sizeof (gint64), compare_gint64);
  return times[(n_gaps - 1) / 2];
}

void
cnclip_index_finish (CnclipIndex *index)
{
  g_return_if_fail (index != NULL);
  const gsize n_sources = index->sources->len;
  g_free (index->intervals);
  index->intervals = g_new (gint64, MAX (n_sources, 1));

  /* Group the times by source (counting sort), then one median per group. */
  gsize *offsets = g_new0 (gsize, n_sources + 1);
  for (gsize i = 0; i < index->n; i++)
    offsets[index->source_ids[i] + 1]++;
  for (gsize s = 0; s < n_sources; s++)
    offsets[s + 1] += offsets[s];
  gint64 *grouped = g_new (gint64, MAX (index->n, 1));
  gsize *fill = g_memdup2 (offsets, sizeof (gsize) * (n_sources + 1));
  for (gsize i = 0; i < index->n; i++)
    grouped[fill[index->source_ids[i]]++] = index->times[i];
  for (gsize s = 0; s < n_sources; s++)
    index->intervals[s] = median_gap (grouped + offsets[s], offsets[s + 1] - offsets[s]);
  g_free (fill);
  g_free (grouped);
  g_free (offsets);

  /* Give back the growth slack. */
  if (index->capacity > index->n && index->n > 0) {
    gsize n = index->n;
    float *matrix = matrix_resize (index->matrix, matrix_bytes (index, index->matrix_rows),
        matrix_bytes (index, n));
    if (matrix == NULL)
      return;    /* keeping the slack is harmless */
    index->matrix = matrix;
    index->matrix_rows = n;
    grow ((void **) &index->source_ids, n, sizeof (guint32));
    grow ((void **) &index->times, n, sizeof (gint64));
    grow ((void **) &index->frames, n, sizeof (gint64));
    index->capacity = n;
  }
}

/* ------------------------------------------------------------------------ */
/* Loading */

typedef struct
{
  CnclipIndex *index;
  const char *path;
  CnclipIndexLineScratch scratch;
  GByteArray *bytes;             /* decoded base64 */
  float *row;                    /* the decoded row, CNCLIP_INDEX_MAX_DIM floats */
  gsize file_valid;
  gsize file_invalid;
  char *file_first_problem;
  gboolean sources_only;         /* list sources, decode nothing */
} Loader;

static void
note_problem (Loader *l, gsize line_no, const char *reason)
{
  if (l->file_first_problem == NULL)
    l->file_first_problem = g_strdup_printf ("%s:%" G_GSIZE_FORMAT ": %s", l->path, line_no,
        reason);
}

/* Decodes the embedding of @rec into a new row. Returns FALSE with @reason
 * for a bad embedding (the line is then invalid), or with @error set for a
 * fatal problem (mixed dims, memory). */
static gboolean
add_embedding (Loader *l, const CnclipIndexLine *rec, int source_id, gint64 time,
    gsize line_no, const char **reason, GError **error)
{
  CnclipIndex *index = l->index;
  const gsize size = rec->dtype == CNCLIP_EMBEDDING_F16 ? 2 : 4;
  gssize n_bytes = cnclip_base64_decoded_length (rec->data, rec->data_len);

  if (n_bytes < 0) {
    *reason = "embedding data is not base64 (length not a multiple of 4)";
    return FALSE;
  }
  if (n_bytes == 0 || (gsize) n_bytes % size != 0) {
    *reason = "embedding data is not a whole number of values of its dtype";
    return FALSE;
  }
  const gsize dim = (gsize) n_bytes / size;
  if (dim > CNCLIP_INDEX_MAX_DIM) {
    *reason = "embedding has more than 65536 values";
    return FALSE;
  }
  if (rec->model_dim >= 0 && (gsize) rec->model_dim != dim) {
    *reason = "embedding length does not match model.dim";
    return FALSE;
  }
  g_byte_array_set_size (l->bytes, (guint) n_bytes);
  const guint8 *b = l->bytes->data;
  if (!cnclip_base64_decode (rec->data, rec->data_len, l->bytes->data)) {
    *reason = "embedding data is not base64";
    return FALSE;
  }
  float *row = l->row;
  for (gsize i = 0; i < dim; i++) {
    if (size == 2) {
      row[i] = cnclip_half_to_float ((guint16) (b[2 * i] | (b[2 * i + 1] << 8)));
    } else {
      guint32 v = (guint32) b[4 * i] | ((guint32) b[4 * i + 1] << 8) |
          ((guint32) b[4 * i + 2] << 16) | ((guint32) b[4 * i + 3] << 24);
      memcpy (&row[i], &v, 4);
    }
  }
  if (!cnclip_index_normalize_row (row, (int) dim)) {
    *reason = "embedding has a value that is not finite";
    return FALSE;
  }

  /* Only a valid embedding sets the index's dim. */
  if (index->dim == 0) {
    index->dim = (int) dim;
  } else if ((gsize) index->dim != dim) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT,
        "%s:%" G_GSIZE_FORMAT ": embedding has %" G_GSIZE_FORMAT " values, earlier records %d "
        "(records of two models in one index?)", l->path, line_no, dim, index->dim);
    return FALSE;
  }
  float *dst = cnclip_index_add_row (index, source_id, time, rec->frame, error);
  if (dst == NULL)
    return FALSE;
  memcpy (dst, row, sizeof (float) * dim);
  return TRUE;
}

/* A half record continued by a later writer's whole one: the last
 * `{"version":` of the line starts the record worth keeping. */
static const char *
find_glued_record (const char *line, gsize length)
{
  static const char marker[] = "{\"version\":";
  const gsize m = sizeof (marker) - 1;
  for (gsize i = length >= m ? length - m + 1 : 0; i-- > 1;) {
    if (memcmp (line + i, marker, m) == 0)
      return line + i;
  }
  return NULL;
}

static gboolean
load_line (Loader *l, const char *line, gsize length, gboolean terminated, gsize line_no,
    GError **error)
{
  CnclipIndex *index = l->index;
  CnclipIndexLine rec;
  const char *reason = NULL;

  index->stats.n_lines++;
  if (!cnclip_index_line_parse (line, length, &rec, &l->scratch, &reason)) {
    /* A writer killed mid-record leaves an unterminated last line. */
    if (!terminated && line[0] == '{') {
      index->stats.n_truncated++;
      return TRUE;
    }
    const char *glued = find_glued_record (line, length);
    const char *glued_reason = NULL;
    index->stats.n_invalid++;
    l->file_invalid++;
    if (glued == NULL || !cnclip_index_line_parse (glued, length - (gsize) (glued - line), &rec,
            &l->scratch, &glued_reason)) {
      note_problem (l, line_no, reason);
      return TRUE;
    }
    note_problem (l, line_no, "a cut record followed by a whole one (kept the whole one)");
  }

  l->file_valid++;
  int source_id = cnclip_index_intern_source (index, rec.source, (gssize) rec.source_len);
  if (l->sources_only)
    return TRUE;
  const gint64 time = rec.timestamp >= 0 ? rec.timestamp : rec.pts;
  if (time < 0) {
    index->stats.n_no_time++;
    return TRUE;
  }
  if (rec.dtype == CNCLIP_EMBEDDING_NONE) {
    index->stats.n_no_embedding++;
    return TRUE;
  }
  GError *local = NULL;
  if (!add_embedding (l, &rec, source_id, time, line_no, &reason, &local)) {
    if (local != NULL) {
      g_propagate_error (error, local);
      return FALSE;
    }
    l->file_valid--;
    l->file_invalid++;
    index->stats.n_invalid++;
    note_problem (l, line_no, reason);
  }
  return TRUE;
}

/* Trims blanks and hands one line to load_line(). */
static gboolean
load_span (Loader *l, const char *p, const char *end, gboolean terminated, gsize line_no,
    GError **error)
{
  while (end > p && (end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
    end--;
  while (p < end && (*p == ' ' || *p == '\t'))
    p++;
  if (p == end)
    return TRUE;
  return load_line (l, p, (gsize) (end - p), terminated, line_no, error);
}

/* Reads @fd in chunks (no mapping: page faults cost more than the copy,
 * and pipes work the same) and loads each line. A line longer than
 * MAX_LINE is invalid and skipped without being buffered. */
static gboolean
load_fd (Loader *l, int fd, GError **error)
{
  gsize capacity = READ_CHUNK, length = 0, line_no = 0;
  char *buf = g_malloc (capacity);
  gboolean skipping = FALSE, ok = TRUE;

  for (;;) {
    if (length == capacity) {
      if (capacity < MAX_LINE) {
        capacity *= 2;
        buf = g_realloc (buf, capacity);
      } else {
        /* Drop the overlong line's start; its end is found later. */
        if (!skipping) {
          line_no++;
          l->index->stats.n_lines++;
          l->index->stats.n_invalid++;
          l->file_invalid++;
          note_problem (l, line_no, "line longer than 16 MiB");
        }
        skipping = TRUE;
        length = 0;
      }
    }
    ssize_t n = read (fd, buf + length, capacity - length);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO, "cannot read index '%s': %s", l->path,
          g_strerror (errno));
      ok = FALSE;
      break;
    }
    if (n == 0) {
      if (length > 0 && !skipping)
        ok = load_span (l, buf, buf + length, FALSE, ++line_no, error);
      break;
    }
    const char *p = buf, *end = buf + length + n, *scan = buf + length;
    const char *nl;
    while (ok && (nl = memchr (scan, '\n', (gsize) (end - scan))) != NULL) {
      if (skipping)
        skipping = FALSE;
      else
        ok = load_span (l, p, nl, TRUE, ++line_no, error);
      p = scan = nl + 1;
    }
    if (!ok)
      break;
    length = (gsize) (end - p);
    memmove (buf, p, length);
  }
  g_free (buf);
  return ok;
}

static gboolean
load_file (CnclipIndex *index, const char *path, gboolean sources_only, GError **error)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat (fd, &st) != 0 || S_ISDIR (st.st_mode)) {
    int err = fd < 0 ? errno : S_ISDIR (st.st_mode) ? EISDIR : errno;
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO, "cannot read index '%s': %s", path,
        g_strerror (err));
    if (fd >= 0)
      close (fd);
    return FALSE;
  }
#ifdef POSIX_FADV_SEQUENTIAL
  posix_fadvise (fd, 0, 0, POSIX_FADV_SEQUENTIAL);
#endif

  Loader l = { index, path };
  l.sources_only = sources_only;
  cnclip_index_line_scratch_init (&l.scratch);
  l.bytes = g_byte_array_new ();
  l.row = g_new (float, CNCLIP_INDEX_MAX_DIM);
  gboolean ok = load_fd (&l, fd, error);
  close (fd);

  if (ok && l.file_valid == 0 && l.file_invalid > 0) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT,
        "%s is not a cnclip record file: no valid record (%s)", path, l.file_first_problem);
    ok = FALSE;
  }
  if (ok && index->first_problem == NULL && l.file_first_problem != NULL)
    index->first_problem = g_steal_pointer (&l.file_first_problem);

  g_free (l.file_first_problem);
  g_byte_array_unref (l.bytes);
  g_free (l.row);
  cnclip_index_line_scratch_clear (&l.scratch);
  return ok;
}

CnclipIndex *
cnclip_index_load (const char *const *paths, GError **error)
{
  g_return_val_if_fail (paths != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  CnclipIndex *index = cnclip_index_new (0);
  for (gsize i = 0; paths[i] != NULL; i++) {
    if (!load_file (index, paths[i], FALSE, error)) {
      cnclip_index_free (index);
      return NULL;
    }
  }
  index->stats.n_records = index->n;
  cnclip_index_finish (index);
  return index;
}

char **
cnclip_index_list_sources (const char *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  CnclipIndex *index = cnclip_index_new (0);
  char **sources = NULL;
  if (load_file (index, path, TRUE, error)) {
    const guint n = index->sources->len;
    sources = g_new (char *, n + 1);
    for (guint i = 0; i < n; i++)
      sources[i] = g_steal_pointer (&g_ptr_array_index (index->sources, i));
    sources[n] = NULL;
    g_hash_table_remove_all (index->source_lookup);
  }
  cnclip_index_free (index);
  return sources;
}

/* ------------------------------------------------------------------------ */
/* Accessors */

int
cnclip_index_get_dim (const CnclipIndex *index)
{
  g_return_val_if_fail (index != NULL, 0);
  return index->dim;
}

gsize
cnclip_index_get_n_records (const CnclipIndex *index)
{
  g_return_val_if_fail (index != NULL, 0);
  return index->n;
}

const CnclipIndexStats *
cnclip_index_get_stats (const CnclipIndex *index)
{
  g_return_val_if_fail (index != NULL, NULL);
  return &index->stats;
}

const char *
cnclip_index_get_first_problem (const CnclipIndex *index)
{
  g_return_val_if_fail (index != NULL, NULL);
  return index->first_problem;
}

int
cnclip_index_get_n_sources (const CnclipIndex *index)
{
  g_return_val_if_fail (index != NULL, 0);
  return (int) index->sources->len;
}

const char *
cnclip_index_get_source (const CnclipIndex *index, int source_id)
{
  g_return_val_if_fail (index != NULL, NULL);
  g_return_val_if_fail (source_id >= 0 && (guint) source_id < index->sources->len, NULL);
  return g_ptr_array_index (index->sources, source_id);
}

gint64
cnclip_index_get_source_interval (const CnclipIndex *index, int source_id)
{
  g_return_val_if_fail (index != NULL && index->intervals != NULL, 0);
  g_return_val_if_fail (source_id >= 0 && (guint) source_id < index->sources->len, 0);
  return index->intervals[source_id];
}

const float *
cnclip_index_get_embedding (const CnclipIndex *index, gsize i)
{
  g_return_val_if_fail (index != NULL && i < index->n, NULL);
  return index->matrix + i * (gsize) index->dim;
}

void
cnclip_index_get_record (const CnclipIndex *index, gsize i, int *source_id, gint64 *timestamp,
    gint64 *frame)
{
  g_return_if_fail (index != NULL && i < index->n);
  if (source_id)
    *source_id = (int) index->source_ids[i];
  if (timestamp)
    *timestamp = index->times[i];
  if (frame)
    *frame = index->frames[i];
}

/* ------------------------------------------------------------------------ */
/* Scoring */

gboolean
cnclip_index_score (const CnclipIndex *index, const float *query, int dim, float *cosines,
    GError **error)
{
  g_return_val_if_fail (index != NULL && query != NULL && cosines != NULL, FALSE);

  if (index->n == 0)
    return TRUE;
  if (dim != index->dim) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT,
        "the query has %d values, the index's embeddings %d (another model?)", dim, index->dim);
    return FALSE;
  }
  float *q = g_try_new (float, dim);
  if (q == NULL) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_NOMEM, "out of memory");
    return FALSE;
  }
  memcpy (q, query, sizeof (float) * (gsize) dim);
  if (!cnclip_index_normalize_row (q, dim)) {
    g_free (q);
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT,
        "the query has a value that is not finite");
    return FALSE;
  }
  /* Rows are unit vectors: cosines = matrix . q, one pass over memory. */
  cblas_sgemv (CblasRowMajor, CblasNoTrans, (int) index->n, dim, 1.0f, index->matrix, dim, q, 1,
      0.0f, cosines, 1);
  g_free (q);
  return TRUE;
}

CnclipSearchParams
cnclip_search_default_params (void)
{
  CnclipSearchParams params = { .k = 10, .min_cosine = -G_MAXFLOAT };
  return params;
}

/* ------------------------------------------------------------------------ */
/* Hits and ranges */

typedef struct
{
  float score;
  guint32 record;
} Hit;

/* The total order of hits: higher cosine first, then load order. */
static inline gboolean
hit_better (const Hit *a, const Hit *b)
{
  return a->score > b->score || (a->score == b->score && a->record < b->record);
}

static int
compare_hits (const void *pa, const void *pb)
{
  const Hit *a = pa, *b = pb;
  return hit_better (a, b) ? -1 : hit_better (b, a) ? 1 : 0;
}

/* Min-heap on hit_better: the root is the worst hit kept. */
static void
heap_sift_down (Hit *heap, gsize n, gsize i)
{
  for (;;) {
    gsize worst = i, l = 2 * i + 1, r = l + 1;
    if (l < n && hit_better (&heap[worst], &heap[l]))
      worst = l;
    if (r < n && hit_better (&heap[worst], &heap[r]))
      worst = r;
    if (worst == i)
      return;
    Hit t = heap[i];
    heap[i] = heap[worst];
    heap[worst] = t;
    i = worst;
  }
}

static void
heap_sift_up (Hit *heap, gsize i)
{
  while (i > 0) {
    gsize parent = (i - 1) / 2;
    if (!hit_better (&heap[parent], &heap[i]))
      return;
    Hit t = heap[i];
    heap[i] = heap[parent];
    heap[parent] = t;
    i = parent;
  }
}

/* The best @m hits with score >= @min_score, best first, into @out; the
 * count of all such hits into @n_eligible. O(n log m), no full sort. */
static gsize
select_hits (const float *scores, gsize n, float min_score, gsize m, Hit *out,
    gsize *n_eligible)
{
  gsize size = 0, eligible = 0;
  for (gsize i = 0; i < n; i++) {
    if (!(scores[i] >= min_score))
      continue;
    eligible++;
    Hit h = { scores[i], (guint32) i };
    if (size < m) {
      out[size] = h;
      heap_sift_up (out, size++);
    } else if (hit_better (&h, &out[0])) {
      out[0] = h;
      heap_sift_down (out, size, 0);
    }
  }
  qsort (out, size, sizeof (Hit), compare_hits);
  *n_eligible = eligible;
  return size;
}

typedef struct
{
  guint32 source;
  gint64 first;                  /* time of the first and last hit, ns */
  gint64 last;
  Hit best;
  int n_hits;
} Range;

/* The live ranges, sorted by (source, first). Ranges of one source are
 * disjoint and more than two intervals apart, so a hit touches at most the
 * range starting at or before it and the one after it. There are never more
 * than k of them: a flat array with binary search beats a tree. */
typedef struct
{
  Range *ranges;
  int n;
} RangeSet;

/* Index of the first range whose key is after (@source, @t). */
static int
range_upper_bound (const RangeSet *set, guint32 source, gint64 t)
{
  int lo = 0, hi = set->n;
  while (lo < hi) {
    int mid = (lo + hi) / 2;
    const Range *r = &set->ranges[mid];
    if (r->source < source || (r->source == source && r->first <= t))
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* Adds @hits[from..n_hits) in order until the set holds @k ranges; returns
 * the number of hits consumed. */
static gsize
merge_hits (const CnclipIndex *index, const Hit *hits, gsize from, gsize n_hits, int k,
    RangeSet *set)
{
  gsize h = from;
  for (; h < n_hits && set->n < k; h++) {
    const guint32 rec = hits[h].record;
    const guint32 src = index->source_ids[rec];
    const gint64 t = index->times[rec];
    const gint64 reach = 2 * index->intervals[src];
    const int at = range_upper_bound (set, src, t);
    Range *before = at > 0 && set->ranges[at - 1].source == src &&
        t - set->ranges[at - 1].last <= reach ? &set->ranges[at - 1] : NULL;
    Range *after = at < set->n && set->ranges[at].source == src &&
        set->ranges[at].first - t <= reach ? &set->ranges[at] : NULL;

    if (before == NULL && after == NULL) {
      memmove (&set->ranges[at + 1], &set->ranges[at], sizeof (Range) * (gsize) (set->n - at));
      set->ranges[at] = (Range) { src, t, t, hits[h], 1 };
      set->n++;
      continue;
    }
    /* Hits come best first, so an existing range's best stays best (ties:
     * the earlier record came first). */
    Range *into = before ? before : after;
    into->first = MIN (into->first, t);
    into->last = MAX (into->last, t);
    into->n_hits++;
    if (before && after) {
      into->last = after->last;
      into->n_hits += after->n_hits;
      if (hit_better (&after->best, &into->best))
        into->best = after->best;
      memmove (after, after + 1, sizeof (Range) * (gsize) (set->n - at - 1));
      set->n--;
    }
  }
  return h - from;
}

static int
compare_range_rank (const void *pa, const void *pb)
{
  const Range *a = pa, *b = pb;
  return compare_hits (&a->best, &b->best);
}

int
cnclip_index_search (const CnclipIndex *index, const float *query, int dim,
    const CnclipSearchParams *params, CnclipSearchRange *ranges, GError **error)
{
  g_return_val_if_fail (index != NULL && query != NULL && params != NULL, -1);
  g_return_val_if_fail (ranges != NULL && params->k > 0, -1);
  g_return_val_if_fail (index->intervals != NULL || index->n == 0, -1);

  if (index->n == 0)
    return 0;
  const int k = (int) MIN ((gsize) params->k, index->n);
  float *scores = g_try_new (float, index->n);
  RangeSet set = { g_try_new (Range, k + 1), 0 };
  Hit *hits = NULL;
  int n_ranges = -1;
  if (scores == NULL || set.ranges == NULL) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_NOMEM, "out of memory");
    goto out;
  }
  if (!cnclip_index_score (index, query, dim, scores, error))
    goto out;

  /* Usually the k ranges come from the first few hundred hits. When hits
   * keep merging (a long matching scene), select four times more and go on
   * where the last batch ended: the order of hits is total, so the new
   * batch starts with the old one. */
  gsize m = MIN (MAX ((gsize) k * 8, 256), index->n);
  gsize done = 0;
  for (;;) {
    gsize n_eligible = 0;
    g_free (hits);
    hits = g_try_new (Hit, m);
    if (hits == NULL) {
      g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_NOMEM, "out of memory");
      goto out;
    }
    gsize n_hits = select_hits (scores, index->n, params->min_cosine, m, hits, &n_eligible);
    done += merge_hits (index, hits, done, n_hits, k, &set);
    if (set.n >= k || n_hits >= n_eligible)
      break;
    m = MIN (m * 4, index->n);
  }

  qsort (set.ranges, (gsize) set.n, sizeof (Range), compare_range_rank);
  for (int i = 0; i < set.n; i++) {
    const Range *r = &set.ranges[i];
    const gint64 pad = index->intervals[r->source] / 2;
    ranges[i] = (CnclipSearchRange) {
      .source_id = (int) r->source,
      .source = g_ptr_array_index (index->sources, r->source),
      .start = MAX (r->first - pad, 0),
      .end = r->last + pad,
      .timestamp = index->times[r->best.record],
      .frame = index->frames[r->best.record],
      .best_record = r->best.record,
      .score = r->best.score,
      .n_hits = r->n_hits,
    };
  }
  n_ranges = set.n;

out:
  g_free (hits);
  g_free (set.ranges);
  g_free (scores);
  return n_ranges;
}
