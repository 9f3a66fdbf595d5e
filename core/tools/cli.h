/* cli.h: subcommands of the cnclip tool and the helpers they share.
 *
 * Each subcommand is `int cnclip_cmd_NAME (int argc, char **argv)` with argv[0]
 * the subcommand name; it returns the process exit status. Errors are one
 * line on stderr ("cnclip NAME: message") and a non-zero status.
 */
#ifndef CNCLIP_CLI_H
#define CNCLIP_CLI_H

#include <glib.h>
#include <stdio.h>
#include "cnclip.h"

G_BEGIN_DECLS

typedef int (*CliCommandFunc) (int argc, char **argv);

int cnclip_cmd_tokenize (int argc, char **argv);
int cnclip_cmd_embed_text (int argc, char **argv);
int cnclip_cmd_embed_image (int argc, char **argv);
int cnclip_cmd_classify (int argc, char **argv);
int cnclip_cmd_make_random_model (int argc, char **argv);
int cnclip_cmd_convert (int argc, char **argv);
int cnclip_cmd_bench (int argc, char **argv);
int cnclip_cmd_index (int argc, char **argv);
int cnclip_cmd_search (int argc, char **argv);
int cnclip_cmd_watch (int argc, char **argv);

/* Prints "cnclip CMD: message" on stderr and returns 1 (an exit status).
 * Frees @error when not NULL. */
int cli_fail (const char *cmd, GError *error);
int cli_failf (const char *cmd, const char *format, ...) G_GNUC_PRINTF (2, 3);

/* Parses @argc/@argv with @entries; on error prints it and returns FALSE.
 * Leaves positional arguments in argv (argv[0] is kept). */
gboolean cli_parse (const char *cmd, const char *parameter_string, const char *summary,
    GOptionEntry *entries, int *argc, char ***argv);

/* Appends @str as a JSON string literal (quotes and escapes, UTF-8 kept). */
void cli_json_append_string (GString *out, const char *str);
/* Appends a float array with %.9g (round-trips float32). */
void cli_json_append_floats (GString *out, const float *values, int n);
void cli_json_append_ints (GString *out, const gint32 *values, int n);

/* Reads standard input as JSON Lines, each line one JSON string; returns a
 * NULL-terminated array of strings or NULL with @error set (line number named). */
char **cli_read_jsonl_strings (FILE *in, GError **error);

/* Loads a model with the common options (-m, --backend, --precision,
 * --threads) already parsed. */
CnclipModel *cli_load_model (const char *model_dir, const char *backend,
    const char *precision, gboolean need_vision, gboolean need_text, GError **error);

/* Decodes an image file with GStreamer into packed RGB (g_free @rgb). With
 * @raw_width/@raw_height > 0 the file is read as packed 8-bit RGB of that size.
 * Errors: CNCLIP_ERROR_IO, CNCLIP_ERROR_FORMAT. */
gboolean cli_load_image (const char *path, int raw_width, int raw_height, guint8 **rgb,
    int *width, int *height, GError **error);

G_END_DECLS

#endif /* CNCLIP_CLI_H */
