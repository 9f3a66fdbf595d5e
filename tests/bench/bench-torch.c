/* bench-torch.c: time to open PyTorch zip checkpoints.
 *
 * Usage: bench-torch [FILE...]   (default: the two tests/data fixtures)
 *
 * Per file, the best and the median of 7 rounds of:
 *   open    cnclip_torch_open + cnclip_weight_file_free (mmap, zip, pickle,
 *           name mapping, tensor table): what a model load pays;
 *   parse   cnclip_torch_checkpoint_parse on the already mapped file;
 *   crc     one CRC-32 pass over every storage (what checking all CRCs at
 *           load would cost; the loader only checks data.pkl's).
 * The target: opening the 753 MB real pytorch_model.bin in well under 100 ms
 * and without reading the tensor data.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "test-util.h"
#include "weights.h"
#include "torchzip.h"

#define ROUNDS 7

static int
compare_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

static void
report (const char *what, double *ms, const char *extra)
{
  qsort (ms, ROUNDS, sizeof (double), compare_double);
  printf ("  %-6s best %9.3f ms  median %9.3f ms%s\n", what, ms[0], ms[ROUNDS / 2],
      extra ? extra : "");
}

static void
bench_file (const char *path)
{
  GError *error = NULL;
  double open_ms[ROUNDS], parse_ms[ROUNDS], crc_ms[ROUNDS];
  guint n_tensors = 0;
  gsize size = 0;

  for (int r = 0; r < ROUNDS; r++) {
    gint64 t0 = g_get_monotonic_time ();
    CnclipWeightFile *file = cnclip_torch_open (path, &error);
    gint64 t1 = g_get_monotonic_time ();
    if (file == NULL) {
      printf ("%s: %s\n", path, error->message);
      g_clear_error (&error);
      return;
    }
    n_tensors = cnclip_weight_file_get_n_tensors (file);
    const guint8 *data = cnclip_weight_file_get_data (file);
    size = cnclip_weight_file_get_size (file);
    CnclipTorchCheckpoint *ckpt = cnclip_torch_checkpoint_parse (data, size, &error);
    gint64 t2 = g_get_monotonic_time ();
    g_assert_no_error (error);
    gboolean ok = cnclip_torch_checkpoint_verify_crc (ckpt, data, &error);
    gint64 t3 = g_get_monotonic_time ();
    g_assert_no_error (error);
    g_assert_true (ok);
    cnclip_torch_checkpoint_free (ckpt);
    cnclip_weight_file_free (file);
    open_ms[r] = (t1 - t0) / 1e3;
    parse_ms[r] = (t2 - t1) / 1e3;
    crc_ms[r] = (t3 - t2) / 1e3;
  }
  printf ("%s: %.1f MB, %u tensors\n", path, size / 1e6, n_tensors);
  report ("open", open_ms, NULL);
  report ("parse", parse_ms, NULL);
  qsort (crc_ms, ROUNDS, sizeof (double), compare_double);
  char *rate = g_strdup_printf ("  (%.2f GB/s)", size / (crc_ms[0] / 1e3) / 1e9);
  report ("crc", crc_ms, rate);
  g_free (rate);
}

int
main (int argc, char **argv)
{
  if (argc > 1) {
    for (int i = 1; i < argc; i++)
      bench_file (argv[i]);
    return 0;
  }
  static const char *const fixtures[] = {
    TEST_TINY_BIN_MODEL "/pytorch_model.bin", TEST_TINY_OFFICIAL_MODEL "/model.pt",
  };
  for (gsize i = 0; i < G_N_ELEMENTS (fixtures); i++) {
    char *path = test_data_path (fixtures[i]);
    bench_file (path);
    g_free (path);
  }
  return 0;
}
