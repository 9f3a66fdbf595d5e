/* replay-main.c: a main() for the fuzz targets without libFuzzer.
 *
 * Usage: fuzz-replay-NAME PATH...
 * Feeds every file given, and every file of every directory given (sorted,
 * not recursive, dotfiles skipped), once to LLVMFuzzerTestOneInput(). Used
 * by the 'fuzz-replay-*' tests to replay the seed corpus and the inputs that
 * once crashed (tests/fuzz/regressions/NAME) in every build, gcc included,
 * so a fixed crash stays fixed. A directory that does not exist is skipped
 * (regressions/NAME appears with the first regression); no input at all is
 * a failure. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);
int LLVMFuzzerInitialize (int *argc, char ***argv) __attribute__((weak));

static gboolean
replay_file (const char *path)
{
  char *contents;
  gsize length;
  GError *error = NULL;
  if (!g_file_get_contents (path, &contents, &length, &error)) {
    fprintf (stderr, "%s\n", error->message);
    g_error_free (error);
    return FALSE;
  }
  /* An exact-size copy (malloc (0) is a real block), as libFuzzer passes. */
  uint8_t *data = malloc (length);
  if (data == NULL)
    return FALSE;
  memcpy (data, contents, length);
  g_free (contents);
  fprintf (stderr, "replay %s (%" G_GSIZE_FORMAT " bytes)\n", path, length);
  LLVMFuzzerTestOneInput (data, length);
  free (data);
  return TRUE;
}

static int
compare_names (gconstpointer a, gconstpointer b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

int
main (int argc, char **argv)
{
  if (LLVMFuzzerInitialize != NULL)
    LLVMFuzzerInitialize (&argc, &argv);

  guint n_inputs = 0;
  for (int i = 1; i < argc; i++) {
    if (!g_file_test (argv[i], G_FILE_TEST_EXISTS)) {
      fprintf (stderr, "%s: does not exist, skipped\n", argv[i]);
      continue;
    }
    if (!g_file_test (argv[i], G_FILE_TEST_IS_DIR)) {
      if (!replay_file (argv[i]))
        return 1;
      n_inputs++;
      continue;
    }
    GDir *dir = g_dir_open (argv[i], 0, NULL);
    if (dir == NULL)
      return 1;
    GPtrArray *names = g_ptr_array_new_with_free_func (g_free);
    const char *name;
    while ((name = g_dir_read_name (dir)) != NULL) {
      if (name[0] != '.')
        g_ptr_array_add (names, g_build_filename (argv[i], name, NULL));
    }
    g_dir_close (dir);
    g_ptr_array_sort (names, compare_names);
    for (guint k = 0; k < names->len; k++) {
      const char *path = g_ptr_array_index (names, k);
      if (g_file_test (path, G_FILE_TEST_IS_REGULAR)) {
        if (!replay_file (path))
          return 1;
        n_inputs++;
      }
    }
    g_ptr_array_unref (names);
  }
  printf ("%u inputs replayed without a crash\n", n_inputs);
  return n_inputs > 0 ? 0 : 1;
}
