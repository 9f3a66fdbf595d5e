/* golden-dump: prints the golden fixtures as plain text for the shell tests,
 * which may only use bash, coreutils and awk.
 *
 *   golden-dump tensor NAME   one line per index of the first dimension,
 *                             values separated by spaces (%.9g)
 *   golden-dump texts         the golden texts, one per line, raw UTF-8
 *   golden-dump texts-jsonl   the same as JSON strings (cnclip embed-text stdin)
 *   golden-dump images        NAME, PNG, RGB, WIDTH, HEIGHT per image, tab-separated, paths
 *                             absolute
 *
 * Reads tests/data through test-util ($CNCLIP_TEST_DATA).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <json-glib/json-glib.h>

#include "test-util.h"

static int
dump_tensor (const char *name)
{
  int ndim = 0;
  gint64 shape[8];
  float *values = test_golden_tensor (name, &ndim, shape);
  gint64 total = 1;
  for (int d = 0; d < ndim; d++)
    total *= shape[d];
  gint64 rows = ndim > 1 ? shape[0] : 1;
  gint64 cols = rows ? total / rows : 0;
  for (gint64 r = 0; r < rows; r++) {
    for (gint64 c = 0; c < cols; c++)
      printf (c ? " %.9g" : "%.9g", (double) values[r * cols + c]);
    printf ("\n");
  }
  g_free (values);
  return 0;
}

static int
dump_texts (gboolean jsonl)
{
  for (int i = 0; i < test_golden_n_texts (); i++) {
    const char *text = test_golden_text (i)->text;
    if (jsonl) {
      JsonNode *node = json_node_init_string (json_node_alloc (), text);
      char *json = json_to_string (node, FALSE);
      printf ("%s\n", json);
      g_free (json);
      json_node_unref (node);
    } else {
      printf ("%s\n", text);
    }
  }
  return 0;
}

static int
dump_images (void)
{
  for (int i = 0; i < test_golden_n_images (); i++) {
    const TestGoldenImage *im = test_golden_image (i);
    char *png_rel = g_build_filename (TEST_TINY_MODEL, "golden", im->png, NULL);
    char *rgb_rel = g_build_filename (TEST_TINY_MODEL, "golden", im->rgb, NULL);
    char *png = test_data_path (png_rel);
    char *rgb = test_data_path (rgb_rel);
    printf ("%s\t%s\t%s\t%d\t%d\n", im->name, png, rgb, im->width, im->height);
    g_free (png_rel);
    g_free (rgb_rel);
    g_free (png);
    g_free (rgb);
  }
  return 0;
}

int
main (int argc, char **argv)
{
  if (argc == 3 && strcmp (argv[1], "tensor") == 0)
    return dump_tensor (argv[2]);
  if (argc == 2 && strcmp (argv[1], "texts") == 0)
    return dump_texts (FALSE);
  if (argc == 2 && strcmp (argv[1], "texts-jsonl") == 0)
    return dump_texts (TRUE);
  if (argc == 2 && strcmp (argv[1], "images") == 0)
    return dump_images ();
  fprintf (stderr, "usage: golden-dump tensor NAME | texts | texts-jsonl | images\n");
  return 2;
}
