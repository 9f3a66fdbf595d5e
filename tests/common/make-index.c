/* make-index: writes index records for the search tests with the core's
 * record writer, from embeddings given as text (no model needed here).
 *
 * Usage: make-index [--dtype f32|f16|none] OUT.jsonl < SPEC
 *
 * Each SPEC line is SOURCE <TAB> TIMESTAMP_NS <TAB> EMBEDDING, where
 * EMBEDDING is a JSON array of floats or an object with an "embedding" array
 * (a line of `cnclip embed-image` output). The frame number is the record's
 * position within its source. Records are appended to OUT ("-": stdout).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-glib/json-glib.h>

#include "cnclip.h"

static int
die (const char *what, const char *detail, int line_no)
{
  fprintf (stderr, "make-index: line %d: %s%s\n", line_no, what, detail);
  return 1;
}

int
main (int argc, char **argv)
{
  CnclipEmbeddingDtype dtype = CNCLIP_EMBEDDING_F32;
  int arg = 1;
  if (argc > 2 && strcmp (argv[1], "--dtype") == 0) {
    if (!cnclip_embedding_dtype_from_string (argv[2], &dtype)) {
      fprintf (stderr, "make-index: unknown dtype %s\n", argv[2]);
      return 2;
    }
    arg = 3;
  }
  if (arg + 1 != argc) {
    fprintf (stderr, "usage: make-index [--dtype f32|f16|none] OUT.jsonl < SPEC\n");
    return 2;
  }

  GError *error = NULL;
  CnclipRecordWriter *w = cnclip_record_writer_open (argv[arg], CNCLIP_RECORD_SYNC_ON_CLOSE,
      &error);
  if (w == NULL) {
    fprintf (stderr, "make-index: %s\n", error->message);
    return 1;
  }
  GHashTable *frames = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  JsonParser *parser = json_parser_new ();
  char *buf = NULL;
  size_t cap = 0;
  ssize_t len;
  int line_no = 0, status = 0;

  while (status == 0 && (len = getline (&buf, &cap, stdin)) >= 0) {
    line_no++;
    if (len > 0 && buf[len - 1] == '\n')
      buf[--len] = '\0';
    if (len == 0)
      continue;
    char **fields = g_strsplit (buf, "\t", 3);
    if (g_strv_length (fields) != 3) {
      status = die ("expected SOURCE<TAB>TIMESTAMP_NS<TAB>EMBEDDING", "", line_no);
      g_strfreev (fields);
      break;
    }
    char *end = NULL;
    guint64 timestamp = g_ascii_strtoull (fields[1], &end, 10);
    JsonNode *root = NULL;
    if (end == fields[1] || *end != '\0')
      status = die ("bad timestamp ", fields[1], line_no);
    else if (!json_parser_load_from_data (parser, fields[2], -1, &error))
      status = die ("", error->message, line_no);
    else
      root = json_parser_get_root (parser);
    if (root && JSON_NODE_HOLDS_OBJECT (root))
      root = json_object_get_member (json_node_get_object (root), "embedding");
    if (status == 0 && (root == NULL || !JSON_NODE_HOLDS_ARRAY (root)))
      status = die ("no embedding array", "", line_no);
    if (status == 0) {
      JsonArray *array = json_node_get_array (root);
      const int dim = (int) json_array_get_length (array);
      float *embedding = g_new (float, MAX (dim, 1));
      for (int i = 0; i < dim; i++)
        embedding[i] = (float) json_array_get_double_element (array, (guint) i);
      gpointer frame = g_hash_table_lookup (frames, fields[0]);
      g_hash_table_insert (frames, g_strdup (fields[0]),
          GSIZE_TO_POINTER (GPOINTER_TO_SIZE (frame) + 1));

      CnclipRecord r;
      cnclip_record_init (&r);
      r.source = fields[0];
      r.frame = GPOINTER_TO_SIZE (frame);
      r.timestamp = r.pts = r.running_time = timestamp;
      r.wallclock = g_get_real_time ();
      r.width = 224;
      r.height = 224;
      r.model_name = "make-index";
      r.dim = dim;
      r.score_mode = "softmax";
      r.embedding_dtype = dtype;
      r.embedding = embedding;
      if (!cnclip_record_writer_write (w, &r, &error))
        status = die ("", error->message, line_no);
      g_free (embedding);
    }
    g_clear_error (&error);
    g_strfreev (fields);
  }
  free (buf);
  g_object_unref (parser);
  g_hash_table_destroy (frames);
  if (!cnclip_record_writer_close (w, &error)) {
    fprintf (stderr, "make-index: %s\n", error->message);
    g_error_free (error);
    status = 1;
  }
  return status;
}
