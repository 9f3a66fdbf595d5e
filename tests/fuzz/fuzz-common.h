/* fuzz-common.h: helpers shared by the fuzz targets (tests/fuzz/fuzz-*.c).
 *
 * Each target defines LLVMFuzzerTestOneInput() (and optionally
 * LLVMFuzzerInitialize()). It is linked either with libFuzzer (clang,
 * -Dfuzzing=true) or with replay-main.c, which feeds it files, so the same
 * checks run in every build.
 *
 * Besides "no crash, no leak" the targets check invariants that sanitizers
 * cannot see (FUZZ_CHECK): a failure sets exactly one CNCLIP_ERROR with a
 * message, a success sets none, and every tensor a parser accepts lies inside
 * the bytes it was given. A broken invariant aborts, which libFuzzer reports
 * as a crash with the input saved.
 */
#ifndef CNCLIP_FUZZ_COMMON_H
#define CNCLIP_FUZZ_COMMON_H

/* memfd_create, memmem; targets include this before any system header. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <glib.h>

#include "cnclip.h"
#include "weights.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);
int LLVMFuzzerInitialize (int *argc, char ***argv);

#define FUZZ_CHECK(cond) \
  do { \
    if (G_UNLIKELY (!(cond))) { \
      fprintf (stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      abort (); \
    } \
  } while (0)

/* A critical is a broken precondition: crash, so libFuzzer keeps the input. */
__attribute__ ((constructor)) static void
fuzz_fatal_criticals (void)
{
  g_log_set_always_fatal (G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
}

/* Checks the GError contract of a call that returned @ok, then clears
 * *@error. Codes must be CNCLIP_ERROR values; @allowed (a list ended by -1,
 * or NULL for any) restricts them further. */
static inline void
fuzz_check_error (gboolean ok, GError **error_ptr, const int *allowed)
{
  GError *error = *error_ptr;
  if (ok) {
    if (error != NULL)
      fprintf (stderr, "success with an error set: %s\n", error->message);
    FUZZ_CHECK (error == NULL);
    return;
  }
  FUZZ_CHECK (error != NULL);
  FUZZ_CHECK (error->domain == CNCLIP_ERROR);
  FUZZ_CHECK (error->code >= 0 && error->code <= CNCLIP_ERROR_NOMEM);
  FUZZ_CHECK (error->message != NULL && error->message[0] != '\0');
  FUZZ_CHECK (g_utf8_validate (error->message, -1, NULL));
  if (allowed != NULL) {
    gboolean found = FALSE;
    for (const int *c = allowed; *c != -1 && !found; c++)
      found = error->code == *c;
    if (!found)
      fprintf (stderr, "unexpected error code %d: %s\n", error->code, error->message);
    FUZZ_CHECK (found);
  }
  g_clear_error (error_ptr);
}

/* The loaders take paths; the input goes into one memfd (a regular file in
 * memory, no disk I/O), rewritten for every input, and is reached through
 * /proc/self/fd. Returns that path (static). */
static inline const char *
fuzz_file_set (const uint8_t *data, size_t size)
{
  static int fd = -1;
  static char path[64];

  if (fd < 0) {
    fd = memfd_create ("cnclip-fuzz", MFD_CLOEXEC);
    if (fd < 0) {
      fprintf (stderr, "memfd_create: %s\n", g_strerror (errno));
      abort ();
    }
    g_snprintf (path, sizeof path, "/proc/self/fd/%d", fd);
  }
  FUZZ_CHECK (ftruncate (fd, 0) == 0);
  size_t done = 0;
  while (done < size) {
    ssize_t n = pwrite (fd, data + done, size - done, (off_t) done);
    if (n < 0 && errno == EINTR)
      continue;
    FUZZ_CHECK (n > 0);
    done += (size_t) n;
  }
  return path;
}

/* Checks that every tensor of @file lies inside @base[0, @size), as
 * weights.h promises, and reads each one (float tensors up to a size limit
 * are converted), so a wrong bound shows up as a sanitizer report even when
 * it stays inside the mapping's last page. */
static inline void
fuzz_check_tensors (const CnclipWeightFile *file, const guint8 *base, gsize size)
{
  guint n = cnclip_weight_file_get_n_tensors (file);
  for (guint i = 0; i < n; i++) {
    const CnclipTensorInfo *info = cnclip_weight_file_get_tensor (file, i);
    FUZZ_CHECK (info != NULL && info->name != NULL);
    FUZZ_CHECK (cnclip_weight_file_lookup (file, info->name) == info);
    FUZZ_CHECK (cnclip_dtype_size (info->dtype) > 0);
    gint64 n_elements, span;
    FUZZ_CHECK (cnclip_tensor_span (info, &n_elements, &span));
    FUZZ_CHECK (n_elements == info->n_elements);
    if (n_elements == 0)
      continue;
    FUZZ_CHECK (span > 0);
    FUZZ_CHECK (info->data >= base);
    FUZZ_CHECK ((guint64) (info->data - base) <= size);
    FUZZ_CHECK ((guint64) span <= size - (gsize) (info->data - base));
    if (cnclip_dtype_is_float (info->dtype) && n_elements <= (1 << 20)) {
      float *out = g_new (float, n_elements);
      GError *error = NULL;
      gboolean ok = cnclip_tensor_to_f32 (info, out, &error);
      fuzz_check_error (ok, &error, NULL);
      FUZZ_CHECK (ok);
      float last = cnclip_tensor_get_float (info, n_elements - 1);
      FUZZ_CHECK (memcmp (&last, &out[n_elements - 1], sizeof last) == 0
          || (last != last && out[n_elements - 1] != out[n_elements - 1]));
      g_free (out);
    }
  }
}

#endif /* CNCLIP_FUZZ_COMMON_H */
