/* record.c: one JSON Lines record per inference, and a writer that appends
 * whole records. The format is documented in cnclip.h and
 * docs/record.schema.json; the key order is part of the contract, so the
 * line is printed by hand rather than through a JSON tree. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cnclip.h"
#include "record.h"

const char *
cnclip_embedding_dtype_to_string (CnclipEmbeddingDtype dtype)
{
  switch (dtype) {
    case CNCLIP_EMBEDDING_F32: return "f32";
    case CNCLIP_EMBEDDING_F16: return "f16";
    case CNCLIP_EMBEDDING_NONE:
    default: return "none";
  }
}

gboolean
cnclip_embedding_dtype_from_string (const char *str, CnclipEmbeddingDtype *dtype)
{
  g_return_val_if_fail (dtype != NULL, FALSE);
  static const CnclipEmbeddingDtype all[] = {
    CNCLIP_EMBEDDING_NONE, CNCLIP_EMBEDDING_F32, CNCLIP_EMBEDDING_F16,
  };
  for (gsize i = 0; str != NULL && i < G_N_ELEMENTS (all); i++) {
    if (strcmp (str, cnclip_embedding_dtype_to_string (all[i])) == 0) {
      *dtype = all[i];
      return TRUE;
    }
  }
  return FALSE;
}

void
cnclip_record_init (CnclipRecord *record)
{
  g_return_if_fail (record != NULL);
  memset (record, 0, sizeof (*record));
  record->timestamp = CNCLIP_TIME_NONE;
  record->pts = CNCLIP_TIME_NONE;
  record->running_time = CNCLIP_TIME_NONE;
  record->wallclock = -1;
  record->top = -1;
  record->embedding_dtype = CNCLIP_EMBEDDING_NONE;
}

/* ------------------------------------------------------------------------ */
/* Half floats */

guint16
cnclip_float_to_half (float value)
{
  guint32 x;
  memcpy (&x, &value, 4);
  const guint16 sign = (guint16) ((x >> 16) & 0x8000);
  const guint32 abs = x & 0x7fffffff;

  if (abs >= 0x7f800000) /* inf, or NaN kept quiet with its top payload bits */
    return sign | 0x7c00 | (abs > 0x7f800000 ? 0x200 | ((abs >> 13) & 0x3ff) : 0);
  /* 65520 is halfway between 65504 (odd mantissa) and 65536: ties to inf. */
  if (abs >= 0x477ff000)
    return sign | 0x7c00;
  if (abs >= 0x38800000) {
    /* Normal half: rebias the exponent, round the 13 dropped bits to even. */
    guint32 rounded = abs + 0xfff + ((abs >> 13) & 1);
    return sign | (guint16) ((rounded - 0x38000000) >> 13);
  }
  /* Subnormal half: m * 2^-24 with m = round-half-even (value * 2^24). */
  const int exponent = (int) (abs >> 23);
  const int shift = 126 - exponent;       /* > 13 here */
  if (shift > 24)
    return sign;                          /* below 2^-25: rounds to zero */
  const guint32 mantissa = (abs & 0x7fffff) | 0x800000;
  guint32 m = mantissa >> shift;
  const guint32 rest = mantissa & ((1u << shift) - 1);
  const guint32 half = 1u << (shift - 1);
  if (rest > half || (rest == half && (m & 1)))
    m++;
  return sign | (guint16) m;             /* m == 0x400 is the smallest normal */
}

float
cnclip_half_to_float (guint16 h)
{
  const guint32 sign = (guint32) (h & 0x8000) << 16;
  const guint32 exponent = (h >> 10) & 0x1f;
  guint32 mantissa = h & 0x3ff;
  guint32 x;

  if (exponent == 0x1f) {
    x = sign | 0x7f800000 | (mantissa << 13);
  } else if (exponent != 0) {
    x = sign | ((exponent + 112) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    x = sign;
  } else {
    /* Subnormal half: normalise into a float exponent. */
    int e = 113;
    while ((mantissa & 0x400) == 0) {
      mantissa <<= 1;
      e--;
    }
    x = sign | ((guint32) e << 23) | ((mantissa & 0x3ff) << 13);
  }
  float value;
  memcpy (&value, &x, 4);
  return value;
}

/* ------------------------------------------------------------------------ */
/* Formatting */

static void
append_escaped (GString *out, const char *str, gssize length)
{
  g_string_append_c (out, '"');
  for (const unsigned char *p = (const unsigned char *) str,
      *end = (const unsigned char *) str + length; p < end; p++) {
    switch (*p) {
      case '"': g_string_append (out, "\\\""); break;
      case '\\': g_string_append (out, "\\\\"); break;
      case '\n': g_string_append (out, "\\n"); break;
      case '\r': g_string_append (out, "\\r"); break;
      case '\t': g_string_append (out, "\\t"); break;
      case '\b': g_string_append (out, "\\b"); break;
      case '\f': g_string_append (out, "\\f"); break;
      default:
        if (*p < 0x20 || *p == 0x7f)
          g_string_append_printf (out, "\\u%04x", *p);
        else
          g_string_append_c (out, (char) *p);
    }
  }
  g_string_append_c (out, '"');
}

void
cnclip_json_append_string (GString *out, const char *str)
{
  g_return_if_fail (out != NULL);
  if (str == NULL) {
    g_string_append (out, "null");
    return;
  }
  const char *end = NULL;
  if (g_utf8_validate (str, -1, &end)) {
    append_escaped (out, str, end - str);
    return;
  }
  /* A label from a prompt file or a source id from a URI may carry stray
   * bytes; JSON must be UTF-8, so they become U+FFFD. */
  char *valid = g_utf8_make_valid (str, -1);
  append_escaped (out, valid, strlen (valid));
  g_free (valid);
}

static void
append_record_string (GString *out, const char *str)
{
  cnclip_json_append_string (out, str ? str : "");
}

static void
append_time (GString *out, guint64 ns)
{
  if (ns == CNCLIP_TIME_NONE)
    g_string_append (out, "null");
  else
    g_string_append_printf (out, "%" G_GUINT64_FORMAT, ns);
}

/* %.9g round-trips float32; g_ascii_formatd ignores the locale. */
static void
append_float (GString *out, float value)
{
  if (!isfinite (value)) {
    g_string_append (out, "null");
    return;
  }
  char buf[G_ASCII_DTOSTR_BUF_SIZE];
  g_string_append (out, g_ascii_formatd (buf, sizeof (buf), "%.9g", (double) value));
}

static void
append_wallclock (GString *out, gint64 us)
{
  struct tm tm;
  time_t seconds = (time_t) (us / G_USEC_PER_SEC);
  if (us < 0 || gmtime_r (&seconds, &tm) == NULL) {
    g_string_append (out, "null");
    return;
  }
  g_string_append_printf (out, "\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\"", tm.tm_year + 1900,
      tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
      (int) (us % G_USEC_PER_SEC / 1000));
}

/* Base64 of @n little-endian values without an intermediate copy of the
 * whole vector: 3 bytes in, 4 characters out. */
static void
append_base64 (GString *out, const guint8 *bytes, gsize n)
{
  static const char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  gsize i = 0;
  char *dst;
  gsize start = out->len;
  g_string_set_size (out, start + (n + 2) / 3 * 4);
  dst = out->str + start;
  for (; i + 3 <= n; i += 3) {
    guint32 v = ((guint32) bytes[i] << 16) | ((guint32) bytes[i + 1] << 8) | bytes[i + 2];
    *dst++ = alphabet[v >> 18];
    *dst++ = alphabet[(v >> 12) & 63];
    *dst++ = alphabet[(v >> 6) & 63];
    *dst++ = alphabet[v & 63];
  }
  if (i < n) {
    guint32 v = (guint32) bytes[i] << 16;
    if (i + 1 < n)
      v |= (guint32) bytes[i + 1] << 8;
    *dst++ = alphabet[v >> 18];
    *dst++ = alphabet[(v >> 12) & 63];
    *dst++ = i + 1 < n ? alphabet[(v >> 6) & 63] : '=';
    *dst++ = '=';
  }
}

static void
append_embedding (GString *out, const CnclipRecord *r)
{
  if (r->embedding_dtype == CNCLIP_EMBEDDING_NONE || r->embedding == NULL || r->dim <= 0) {
    g_string_append (out, "null");
    return;
  }
  const gboolean half = r->embedding_dtype == CNCLIP_EMBEDDING_F16;
  const gsize size = half ? 2 : 4;
  guint8 stack[4096];
  const gsize n_bytes = (gsize) r->dim * size;
  guint8 *bytes = n_bytes <= sizeof (stack) ? stack : g_malloc (n_bytes);
  for (int i = 0; i < r->dim; i++) {
    guint32 v;
    if (half) {
      v = cnclip_float_to_half (r->embedding[i]);
    } else {
      memcpy (&v, &r->embedding[i], 4);
    }
    /* Little-endian whatever the host. */
    for (gsize b = 0; b < size; b++)
      bytes[(gsize) i * size + b] = (guint8) (v >> (8 * b));
  }
  g_string_append_printf (out, "{\"dtype\":\"%s\",\"encoding\":\"base64\",\"data\":\"",
      cnclip_embedding_dtype_to_string (r->embedding_dtype));
  append_base64 (out, bytes, n_bytes);
  g_string_append (out, "\"}");
  if (bytes != stack)
    g_free (bytes);
}

void
cnclip_record_format (const CnclipRecord *r, GString *out)
{
  g_return_if_fail (r != NULL);
  g_return_if_fail (out != NULL);

  g_string_append_printf (out, "{\"version\":%d,\"source\":", CNCLIP_RECORD_VERSION);
  append_record_string (out, r->source);
  g_string_append_printf (out, ",\"frame\":%" G_GUINT64_FORMAT ",\"timestamp\":", r->frame);
  append_time (out, r->timestamp);
  g_string_append (out, ",\"pts\":");
  append_time (out, r->pts);
  g_string_append (out, ",\"running_time\":");
  append_time (out, r->running_time);
  g_string_append (out, ",\"wallclock\":");
  append_wallclock (out, r->wallclock);
  g_string_append_printf (out, ",\"resolution\":{\"width\":%d,\"height\":%d}", r->width,
      r->height);
  g_string_append (out, ",\"model\":{\"name\":");
  append_record_string (out, r->model_name);
  g_string_append_printf (out, ",\"dim\":%d,\"score_mode\":", r->dim);
  append_record_string (out, r->score_mode);
  g_string_append (out, "},\"classification\":[");
  for (int i = 0; r->labels != NULL && i < r->n_labels; i++) {
    const CnclipRecordLabel *l = &r->labels[i];
    g_string_append (out, i ? ",{\"label\":" : "{\"label\":");
    append_record_string (out, l->label);
    g_string_append_printf (out, ",\"label_id\":%d,\"score\":", l->label_id);
    append_float (out, l->score);
    g_string_append (out, ",\"cosine\":");
    append_float (out, l->cosine);
    g_string_append (out, l->matched ? ",\"matched\":true}" : ",\"matched\":false}");
  }
  g_string_append (out, "],\"top\":");
  if (r->labels != NULL && r->top >= 0 && r->top < r->n_labels) {
    const CnclipRecordLabel *l = &r->labels[r->top];
    g_string_append (out, "{\"label\":");
    append_record_string (out, l->label);
    g_string_append_printf (out, ",\"label_id\":%d,\"score\":", l->label_id);
    append_float (out, l->score);
    g_string_append_c (out, '}');
  } else {
    g_string_append (out, "null");
  }
  g_string_append (out, ",\"embedding\":");
  append_embedding (out, r);
  if (r->extra_members != NULL && r->extra_members[0] != '\0') {
    g_string_append_c (out, ',');
    /* Raw CR/LF can only be whitespace in valid JSON: spaces keep one line. */
    for (const char *p = r->extra_members; *p; p++)
      g_string_append_c (out, (*p == '\n' || *p == '\r') ? ' ' : *p);
  }
  g_string_append (out, "}\n");
}

/* ------------------------------------------------------------------------ */
/* Writer */

struct _CnclipRecordWriter
{
  GMutex lock;
  char *location;
  int fd;
  gboolean own_fd;               /* FALSE for standard output */
  int sync_interval_ms;
  gint64 last_sync;              /* monotonic µs */
  gboolean dirty;                /* written since the last sync */
  int failed_errno;              /* 0 until a write or sync failed */
  GString *line;
};

static void
set_io_error (GError **error, const char *location, const char *what, int err)
{
  g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO, "%s '%s': %s", what,
      strcmp (location, "-") == 0 ? "standard output" : location, g_strerror (err));
}

/* A file ending in a half line (a writer killed mid-line) would glue our
 * first record to it; terminate that line so the record stays whole. */
static gboolean
terminate_partial_line (CnclipRecordWriter *w, GError **error)
{
  struct stat st;
  if (fstat (w->fd, &st) != 0 || !S_ISREG (st.st_mode) || st.st_size == 0)
    return TRUE;
  char last;
  if (pread (w->fd, &last, 1, st.st_size - 1) != 1 || last == '\n')
    return TRUE;    /* write-only file: cannot tell, nothing to do */
  while (write (w->fd, "\n", 1) != 1) {
    if (errno != EINTR) {
      set_io_error (error, w->location, "cannot write to", errno);
      return FALSE;
    }
  }
  return TRUE;
}

CnclipRecordWriter *
cnclip_record_writer_open (const char *location, int sync_interval_ms, GError **error)
{
  g_return_val_if_fail (location != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  int fd;
  gboolean own = TRUE;
  if (strcmp (location, "-") == 0) {
    fd = STDOUT_FILENO;
    own = FALSE;
  } else {
    const int flags = O_APPEND | O_CREAT | O_CLOEXEC;
    /* Read access lets us check the last byte; a write-only file is fine. */
    fd = open (location, O_RDWR | flags, 0666);
    if (fd < 0 && errno == EACCES)
      fd = open (location, O_WRONLY | flags, 0666);
    if (fd < 0) {
      set_io_error (error, location, "cannot open for appending", errno);
      return NULL;
    }
  }

  CnclipRecordWriter *w = g_new0 (CnclipRecordWriter, 1);
  g_mutex_init (&w->lock);
  w->location = g_strdup (location);
  w->fd = fd;
  w->own_fd = own;
  w->sync_interval_ms = sync_interval_ms;
  w->last_sync = g_get_monotonic_time ();
  w->line = g_string_sized_new (4096);
  if (!terminate_partial_line (w, error)) {
    cnclip_record_writer_close (w, NULL);
    return NULL;
  }
  return w;
}

/* fdatasync, where the descriptor supports it. */
static int
sync_fd (int fd)
{
  if (fdatasync (fd) == 0 || errno == EINVAL || errno == EROFS || errno == ENOTSUP)
    return 0;
  return errno;
}

/* Called with the lock held. */
static gboolean
write_locked (CnclipRecordWriter *w, const char *data, gsize length, GError **error)
{
  if (w->failed_errno != 0) {
    set_io_error (error, w->location, "earlier write failed, not writing to", w->failed_errno);
    return FALSE;
  }

  gsize done = 0;
  while (done < length) {
    /* One call for the whole line; the loop only resumes after a signal
     * or a partial write, which are then errors below. */
    ssize_t n = write (w->fd, data + done, length - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      int err = n < 0 ? errno : ENOSPC;
      /* Undo a partial line when it is the end of a regular file we alone
       * extended, so the file holds only whole records. */
      struct stat st;
      off_t end;
      if (done > 0 && fstat (w->fd, &st) == 0 && S_ISREG (st.st_mode) &&
          (end = lseek (w->fd, 0, SEEK_CUR)) >= 0 && end == st.st_size &&
          (gsize) end >= done) {
        if (ftruncate (w->fd, end - (off_t) done) != 0)
          g_debug ("%s: could not remove a partial record: %s", w->location, g_strerror (errno));
      }
      w->failed_errno = err;
      set_io_error (error, w->location, "cannot write a record to", err);
      return FALSE;
    }
    done += (gsize) n;
  }
  w->dirty = TRUE;

  if (w->sync_interval_ms >= 0) {
    gint64 now = g_get_monotonic_time ();
    if (w->sync_interval_ms == 0 || now - w->last_sync >= (gint64) w->sync_interval_ms * 1000) {
      int err = sync_fd (w->fd);
      w->last_sync = now;
      w->dirty = FALSE;
      if (err != 0) {
        w->failed_errno = err;
        set_io_error (error, w->location, "cannot sync", err);
        return FALSE;
      }
    }
  }
  return TRUE;
}

gboolean
cnclip_record_writer_write (CnclipRecordWriter *writer, const CnclipRecord *record,
    GError **error)
{
  g_return_val_if_fail (writer != NULL, FALSE);
  g_return_val_if_fail (record != NULL, FALSE);

  g_mutex_lock (&writer->lock);
  g_string_truncate (writer->line, 0);
  cnclip_record_format (record, writer->line);
  gboolean ok = write_locked (writer, writer->line->str, writer->line->len, error);
  g_mutex_unlock (&writer->lock);
  return ok;
}

gboolean
cnclip_record_writer_write_line (CnclipRecordWriter *writer, const char *line, gssize length,
    GError **error)
{
  g_return_val_if_fail (writer != NULL, FALSE);
  g_return_val_if_fail (line != NULL, FALSE);

  const gsize len = length < 0 ? strlen (line) : (gsize) length;
  g_mutex_lock (&writer->lock);
  gboolean ok;
  if (len > 0 && line[len - 1] == '\n') {
    ok = write_locked (writer, line, len, error);
  } else {
    g_string_truncate (writer->line, 0);
    g_string_append_len (writer->line, line, len);
    g_string_append_c (writer->line, '\n');
    ok = write_locked (writer, writer->line->str, writer->line->len, error);
  }
  g_mutex_unlock (&writer->lock);
  return ok;
}

const char *
cnclip_record_writer_get_location (const CnclipRecordWriter *writer)
{
  g_return_val_if_fail (writer != NULL, NULL);
  return writer->location;
}

gboolean
cnclip_record_writer_close (CnclipRecordWriter *writer, GError **error)
{
  if (writer == NULL)
    return TRUE;

  gboolean ok = TRUE;
  if (writer->dirty && writer->failed_errno == 0) {
    int err = sync_fd (writer->fd);
    if (err != 0) {
      set_io_error (error, writer->location, "cannot sync", err);
      ok = FALSE;
    }
  }
  if (writer->own_fd && close (writer->fd) != 0 && ok && errno != EINTR) {
    set_io_error (error, writer->location, "cannot close", errno);
    ok = FALSE;
  }
  g_string_free (writer->line, TRUE);
  g_mutex_clear (&writer->lock);
  g_free (writer->location);
  g_free (writer);
  return ok;
}
