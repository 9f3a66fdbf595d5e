/* cli-embed.c: not written yet (placeholder). */
#include "cli.h"

int
cnclip_cmd_embed_text (int argc, char **argv)
{
  return cli_failf (argv[0], "not implemented yet");
}

int
cnclip_cmd_embed_image (int argc, char **argv)
{
  return cli_failf (argv[0], "not implemented yet");
}

int
cnclip_cmd_classify (int argc, char **argv)
{
  return cli_failf (argv[0], "not implemented yet");
}

