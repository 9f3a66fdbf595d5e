/* cli-model.c: not written yet (placeholder). */
#include "cli.h"

int
cnclip_cmd_make_random_model (int argc, char **argv)
{
  return cli_failf (argv[0], "not implemented yet");
}

int
cnclip_cmd_convert (int argc, char **argv)
{
  return cli_failf (argv[0], "not implemented yet");
}

