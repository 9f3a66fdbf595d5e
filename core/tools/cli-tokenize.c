/* cli-tokenize.c: `cnclip tokenize`, the official Chinese-CLIP tokenizer on
 * the command line.
 *
 *   cnclip tokenize -m MODEL_DIR [-l CONTEXT_LENGTH] [TEXT ...]
 *
 * Contract (other tools parse this output; keep it stable):
 * - Only MODEL_DIR/vocab.txt is needed; weights are never loaded.
 * - The context length is -l, else tokenizer_config.json's model_max_length
 *   when it is an integer in [2, 512] (the rule the model loader uses, with
 *   BERT's 512 positions; Hugging Face writes 1e30 for "no limit"), else 52.
 * - Without TEXT arguments, standard input is read as JSON Lines, one JSON
 *   string per line (blank lines skipped).
 * - One line per input, in input order:
 *     {"text": "一只猫", "input_ids": [101,671,1372,4344,102,0,...], "tokens": ["一","只","猫"]}
 *   input_ids is the cn_clip row (context length entries); tokens are the
 *   WordPiece strings of the whole text, untruncated, without [CLS]/[SEP].
 * - Exit status 0 on success. On any error (missing vocab, invalid UTF-8,
 *   a line that is not a JSON string, bad option) nothing goes to standard
 *   output, one line "cnclip tokenize: ..." goes to standard error, and the
 *   status is 1.
 */
#include "config.h"

#include <string.h>
#include <json-glib/json-glib.h>

#include "cli.h"

#define CMD "tokenize"
/* BERT's position embeddings: the largest row the text tower can take. */
#define MAX_CONFIG_CONTEXT_LENGTH 512
/* -l may ask for more (the tokenizer does not care), within reason. */
#define MAX_CONTEXT_LENGTH 65536

/* The default context length for @model_dir; FALSE on an unreadable or
 * malformed tokenizer_config.json. */
static gboolean
read_context_length (const char *model_dir, int *context_length, GError **error)
{
  char *path = g_build_filename (model_dir, "tokenizer_config.json", NULL);
  JsonParser *parser = NULL;
  GError *local = NULL;
  gboolean ok = FALSE;

  *context_length = CNCLIP_DEFAULT_CONTEXT_LENGTH;
  if (!g_file_test (path, G_FILE_TEST_EXISTS)) {
    ok = TRUE;
    goto out;
  }
  parser = json_parser_new ();
  if (!json_parser_load_from_file (parser, path, &local)) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_CONFIG, "%s: %s", path, local->message);
    g_error_free (local);
    goto out;
  }
  JsonNode *root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root)) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_CONFIG, "%s: not a JSON object", path);
    goto out;
  }
  JsonNode *node = json_object_get_member (json_node_get_object (root), "model_max_length");
  if (node && JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_INT64) {
    gint64 v = json_node_get_int (node);
    if (v >= 2 && v <= MAX_CONFIG_CONTEXT_LENGTH)
      *context_length = (int) v;
  }
  ok = TRUE;

out:
  g_clear_object (&parser);
  g_free (path);
  return ok;
}

/* Appends the output line of @text; FALSE (nothing appended) on error. */
static gboolean
append_line (GString *out, const CnclipTokenizer *tokenizer, const char *text,
    int context_length, GError **error)
{
  int n = cnclip_tokenizer_tokenize (tokenizer, text, -1, NULL, 0, error);
  if (n < 0)
    return FALSE;
  gint32 *ids = g_new (gint32, MAX (n, 1));
  gint32 *row = g_new (gint32, context_length);
  gboolean ok = cnclip_tokenizer_tokenize (tokenizer, text, -1, ids, n, error) == n
      && cnclip_tokenizer_encode (tokenizer, text, -1, context_length, row, NULL, error);

  if (ok) {
    g_string_append (out, "{\"text\": ");
    cli_json_append_string (out, text);
    g_string_append (out, ", \"input_ids\": ");
    cli_json_append_ints (out, row, context_length);
    g_string_append (out, ", \"tokens\": [");
    for (int i = 0; i < n; i++) {
      if (i)
        g_string_append_c (out, ',');
      cli_json_append_string (out, cnclip_tokenizer_id_to_token (tokenizer, ids[i]));
    }
    g_string_append (out, "]}\n");
  }
  g_free (row);
  g_free (ids);
  return ok;
}

int
cnclip_cmd_tokenize (int argc, char **argv)
{
  char *model_dir = NULL;
  int context_length = 0;
  GOptionEntry entries[] = {
    { "model", 'm', 0, G_OPTION_ARG_FILENAME, &model_dir,
      "Model directory (only vocab.txt and tokenizer_config.json are read)", "MODEL_DIR" },
    { "context-length", 'l', 0, G_OPTION_ARG_INT, &context_length,
      "Row length (default: tokenizer_config.json model_max_length, else 52)", "N" },
    { NULL },
  };
  GError *error = NULL;
  CnclipTokenizer *tokenizer = NULL;
  char **texts = NULL;
  GString *out = NULL;
  int status = 1;

  if (!cli_parse (CMD, "[TEXT...]",
          "Prints the token ids of the official Chinese-CLIP tokenizer, one JSON object per "
          "text.\nWithout TEXT, reads JSON Lines (one JSON string per line) from standard input.",
          entries, &argc, &argv))
    goto out;
  if (model_dir == NULL) {
    status = cli_failf (CMD, "no model directory given (-m MODEL_DIR)");
    goto out;
  }
  if (context_length != 0 && (context_length < 2 || context_length > MAX_CONTEXT_LENGTH)) {
    status = cli_failf (CMD, "context length %d is out of range (2 to %d)", context_length,
        MAX_CONTEXT_LENGTH);
    goto out;
  }
  if (context_length == 0 && !read_context_length (model_dir, &context_length, &error)) {
    status = cli_fail (CMD, error);
    goto out;
  }

  char *vocab = g_build_filename (model_dir, "vocab.txt", NULL);
  tokenizer = cnclip_tokenizer_load (vocab, &error);
  g_free (vocab);
  if (tokenizer == NULL) {
    status = cli_fail (CMD, error);
    goto out;
  }

  gboolean from_stdin = argc < 2;
  if (from_stdin) {
    texts = cli_read_jsonl_strings (stdin, &error);
    if (texts == NULL) {
      status = cli_fail (CMD, error);
      goto out;
    }
  } else {
    texts = g_new0 (char *, argc);
    for (int i = 1; i < argc; i++)
      texts[i - 1] = g_strdup (argv[i]);
  }

  /* Everything is tokenized before anything is printed, so that an error
   * leaves standard output empty. */
  out = g_string_new (NULL);
  for (int i = 0; texts[i]; i++) {
    if (!append_line (out, tokenizer, texts[i], context_length, &error)) {
      status = cli_failf (CMD, "%s %d: %s", from_stdin ? "input string" : "argument", i + 1,
          error->message);
      g_clear_error (&error);
      goto out;
    }
  }
  if (fwrite (out->str, 1, out->len, stdout) != out->len || fflush (stdout) != 0) {
    status = cli_failf (CMD, "cannot write to standard output");
    goto out;
  }
  status = 0;

out:
  if (out)
    g_string_free (out, TRUE);
  g_strfreev (texts);
  cnclip_tokenizer_free (tokenizer);
  g_free (model_dir);
  return status;
}
