/* cli-bench.c: not written yet (placeholder). */
#include "cli.h"

int
cnclip_cmd_bench (int argc, char **argv)
{
  return cli_failf (argv[0], "not implemented yet");
}

