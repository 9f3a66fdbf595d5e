/* cli-watch.c: not written yet (placeholder). */
#include "cli.h"

int
cnclip_cmd_watch (int argc, char **argv)
{
  return cli_failf (argv[0], "not implemented yet");
}

