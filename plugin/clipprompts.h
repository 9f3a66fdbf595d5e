/* clipprompts.h: prompt lists, templates and the encoded prompt set.
 *
 * Three layers:
 *  - parsing: a prompts file (one prompt per line) and template substitution;
 *  - ClipPromptSet: an immutable, reference-counted snapshot of the labels, the
 *    negative prompts and their L2-normalised text embeddings. The element swaps
 *    the pointer to its current set under its object lock, and each inference
 *    holds a reference to the set it scored against, so a swap never disturbs a
 *    running inference;
 *  - ClipPromptEncoder: encodes sets with a text context of its own, either in
 *    the caller's thread (start()) or on its own thread (changes while playing,
 *    so that the streaming thread never waits for the text tower).
 */
#ifndef CLIP_PROMPTS_H
#define CLIP_PROMPTS_H

#include <glib.h>
#include "cnclip.h"

G_BEGIN_DECLS

/* Refuse absurd inputs before tokenizing or allocating for them. */
#define CLIP_PROMPTS_MAX_COUNT 4096
#define CLIP_PROMPTS_MAX_FILE_SIZE (4 * 1024 * 1024)

/* Splits prompts-file @contents into prompts: UTF-8 (an initial BOM is
 * skipped), one prompt per line (LF or CRLF), surrounding white space trimmed,
 * blank lines and lines whose first non-blank character is '#' ignored.
 * Returns a NULL-terminated array (transfer full; g_strfreev).
 * Errors: CNCLIP_ERROR_UTF8 (message names the line), CNCLIP_ERROR_TOO_LARGE. */
gchar **clip_prompts_parse (const gchar *contents, gsize length, GError **error);

/* Reads and parses @path (see clip_prompts_parse). Errors: G_FILE_ERROR
 * (message names the file), CNCLIP_ERROR_TOO_LARGE, CNCLIP_ERROR_UTF8. */
gchar **clip_prompts_read_file (const gchar *path, GError **error);

/* @tmpl with every "{}" replaced by @prompt (transfer full). */
gchar *clip_prompts_apply_template (const gchar *tmpl, const gchar *prompt);

/* What the element's properties ask for. Owned strings; copied by the encoder. */
typedef struct
{
  gchar **prompts;     /* `prompts` (may be NULL) */
  gchar *prompts_file; /* `prompts-file` (may be NULL or "") */
  gchar *template_;    /* `prompt-template`; must contain "{}" */
  gchar **negatives;   /* `negative-prompts` (may be NULL) */
} ClipPromptSpec;

ClipPromptSpec *clip_prompt_spec_new (const gchar *const *prompts, const gchar *prompts_file,
                                      const gchar *template_, const gchar *const *negatives);
void clip_prompt_spec_free (ClipPromptSpec *spec);

typedef struct
{
  guint generation; /* increases with every requested change */
  guint n_labels;   /* reported prompts: `prompts`, then the file's */
  gchar **labels;   /* NULL-terminated; as written, before the template */
  guint n_negatives;
  gchar **negatives; /* NULL-terminated */
  gchar *template_;
  gchar **truncated; /* prompts longer than the context length */
  int dim;
  /* (n_labels + n_negatives) x dim, L2-normalised; labels first. NULL when
   * there are no prompts at all. */
  float *embeds;
  guint64 encode_time; /* ns spent in the text tower */
} ClipPromptSet;

ClipPromptSet *clip_prompt_set_ref (ClipPromptSet *set);
void clip_prompt_set_unref (ClipPromptSet *set);

/* Encodes @spec with @ctx (used by this thread only for the call). Prompts
 * longer than the model's context length are truncated by the tokenizer and
 * listed in the set's `truncated`. Returns a new set (transfer full).
 * Errors: file errors as clip_prompts_read_file(), CNCLIP_ERROR_INVALID_ARGUMENT
 * (template without "{}"), CNCLIP_ERROR_TOO_LARGE, CNCLIP_ERROR_UTF8, the
 * encoder's errors (CNCLIP_ERROR_ABORTED when the context's abort fired). */
ClipPromptSet *clip_prompt_set_build (CnclipContext *ctx, const ClipPromptSpec *spec,
                                      guint generation, GError **error);

typedef struct _ClipPromptEncoder ClipPromptEncoder;

/* Called in the encoder thread when a requested set is ready (@set, transfer
 * none: ref it to keep it) or failed (@error). Never called for a request that
 * was superseded by a newer one or aborted by clip_prompt_encoder_free(). */
typedef void (*ClipPromptEncoderFunc) (ClipPromptSet *set, const GError *error, guint generation,
                                       gpointer user_data);

/* Creates an encoder with its own text context on @model (@n_threads as in
 * CnclipContextParams). The thread starts with the first request.
 * Errors: those of cnclip_context_new(). */
ClipPromptEncoder *clip_prompt_encoder_new (CnclipModel *model, int n_threads,
                                            ClipPromptEncoderFunc func, gpointer user_data,
                                            GError **error);

/* Encodes @spec in the calling thread (waits while the encoder thread is
 * busy with a request). Same contract as clip_prompt_set_build(). */
ClipPromptSet *clip_prompt_encoder_build (ClipPromptEncoder *enc, const ClipPromptSpec *spec,
                                          guint generation, GError **error);

/* Queues @spec (transfer full) for the encoder thread. A request that has not
 * started yet is replaced (the latest change wins). Does not block on an
 * encode in progress. Thread-safe. */
void clip_prompt_encoder_request (ClipPromptEncoder *enc, ClipPromptSpec *spec, guint generation);

/* Blocks until no request is queued or running (tests, EOS). */
void clip_prompt_encoder_wait_idle (ClipPromptEncoder *enc);

/* Aborts an encode in progress, drops a queued request, joins the thread and
 * frees. NULL is ignored. */
void clip_prompt_encoder_free (ClipPromptEncoder *enc);

G_END_DECLS

#endif /* CLIP_PROMPTS_H */
