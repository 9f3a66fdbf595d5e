/* cnclip: command-line front over libcnclip. See README.md for the contract
 * of each subcommand; other tools depend on its output, so keep it stable. */
#include "config.h"

#include <locale.h>
#include <string.h>

#include "cli.h"

typedef struct
{
  const char *name;
  CliCommandFunc func;
  const char *summary;
} CliCommand;

static const CliCommand commands[] = {
  { "tokenize", cnclip_cmd_tokenize, "Chinese text to token ids, as the official tokenizer" },
  { "embed-text", cnclip_cmd_embed_text, "text embeddings" },
  { "embed-image", cnclip_cmd_embed_image, "image embeddings" },
  { "classify", cnclip_cmd_classify, "score images against prompts" },
  { "make-random-model", cnclip_cmd_make_random_model, "write a model directory with random weights" },
  { "convert", cnclip_cmd_convert, "write a model's weights as model.safetensors" },
  { "bench", cnclip_cmd_bench, "time the encoders" },
  { "index", cnclip_cmd_index, "index videos for text search" },
  { "search", cnclip_cmd_search, "search an index by Chinese text or an image" },
  { "watch", cnclip_cmd_watch, "print alerts when described scenes begin and end" },
};

static void
usage (FILE *out)
{
  fprintf (out, "Usage: cnclip COMMAND [OPTION...]\n\nCommands:\n");
  for (gsize i = 0; i < G_N_ELEMENTS (commands); i++)
    fprintf (out, "  %-18s %s\n", commands[i].name, commands[i].summary);
  fprintf (out, "\nRun 'cnclip COMMAND --help' for the options of a command.\n");
}

int
main (int argc, char **argv)
{
  setlocale (LC_ALL, "");
  /* JSON and numbers must not follow the user's decimal separator. */
  setlocale (LC_NUMERIC, "C");

  if (argc < 2) {
    usage (stderr);
    return 2;
  }
  if (strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0 || strcmp (argv[1], "help") == 0) {
    usage (stdout);
    return 0;
  }
  if (strcmp (argv[1], "--version") == 0) {
    printf ("cnclip %s\n", VERSION);
    return 0;
  }
  for (gsize i = 0; i < G_N_ELEMENTS (commands); i++) {
    if (strcmp (argv[1], commands[i].name) == 0)
      return commands[i].func (argc - 1, argv + 1);
  }
  fprintf (stderr, "cnclip: unknown command '%s'\n", argv[1]);
  usage (stderr);
  return 2;
}
