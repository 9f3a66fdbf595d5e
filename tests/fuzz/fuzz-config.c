/* fuzz-config.c: cnclip_config_parse() on arbitrary config.json,
 * preprocessor_config.json and tokenizer_config.json texts.
 *
 * The input holds up to three texts separated by two NUL bytes:
 * config.json [\0\0 preprocessor_config.json [\0\0 tokenizer_config.json]].
 * A single NUL stays inside a text, so NUL handling is fuzzed too. An
 * accepted config must satisfy what the binder relies on (positive sizes,
 * heads that divide widths, the context length within the positions), and
 * its tensor list must have sane shapes. */
#include "config.h"

#include "fuzz-common.h"
#include "model.h"

static const int allowed[] = { CNCLIP_ERROR_CONFIG, CNCLIP_ERROR_TOO_LARGE, -1 };

/* The next part of [*p, end), up to the separator or the end. */
static gboolean
next_part (const char **p, const char *end, const char **part, gssize *len)
{
  if (*p == NULL)
    return FALSE;
  const char *sep = memmem (*p, (size_t) (end - *p), "\0\0", 2);
  *part = *p;
  if (sep == NULL) {
    *len = end - *p;
    *p = NULL;
  } else {
    *len = sep - *p;
    *p = sep + 2;
  }
  return TRUE;
}

static void
check_specs (const CnclipConfig *c, gboolean vision, gboolean text)
{
  GArray *specs = cnclip_model_tensor_specs (c, vision, text);
  FUZZ_CHECK (specs != NULL && specs->len > 0);
  for (guint i = 0; i < specs->len; i++) {
    const CnclipTensorSpec *s = &g_array_index (specs, CnclipTensorSpec, i);
    FUZZ_CHECK (s->name[0] != '\0' && memchr (s->name, '\0', sizeof s->name) != NULL);
    FUZZ_CHECK (s->ndim >= 0 && s->ndim <= 4);
    for (int d = 0; d < s->ndim; d++)
      FUZZ_CHECK (s->shape[d] > 0);
  }
  g_array_unref (specs);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  /* The texts point into @data, an exact-size block: ASan sees any read past one. */
  const char *p = (const char *) data, *end = p + size;
  const char *texts[3] = { NULL, NULL, NULL };
  gssize lens[3] = { 0, 0, 0 };
  for (int i = 0; i < 3 && next_part (&p, end, &texts[i], &lens[i]); i++)
    ;
  /* NULL texts must not be read: give config.json a non-NULL empty text. */
  if (texts[0] == NULL)
    texts[0] = "";

  CnclipConfig c;
  GError *error = NULL;
  gboolean ok = cnclip_config_parse (texts[0], lens[0], texts[1], lens[1], texts[2], lens[2],
      &c, &error);
  fuzz_check_error (ok, &error, allowed);
  if (ok) {
    FUZZ_CHECK (c.projection_dim > 0);
    FUZZ_CHECK (c.vision.hidden_size > 0 && c.vision.num_heads > 0
        && c.vision.hidden_size % c.vision.num_heads == 0);
    FUZZ_CHECK (c.vision.num_layers > 0 && c.vision.intermediate_size > 0);
    FUZZ_CHECK (c.vision.patch_size > 0 && c.vision.image_size % c.vision.patch_size == 0);
    FUZZ_CHECK (c.vision.num_channels == 3);
    FUZZ_CHECK (c.text.hidden_size > 0 && c.text.num_heads > 0
        && c.text.hidden_size % c.text.num_heads == 0);
    FUZZ_CHECK (c.text.num_layers > 0 && c.text.intermediate_size > 0);
    FUZZ_CHECK (c.text.vocab_size > 0 && c.text.pad_token_id >= 0
        && c.text.pad_token_id < c.text.vocab_size);
    FUZZ_CHECK (c.text.type_vocab_size > 0);
    FUZZ_CHECK (c.context_length >= 2 && c.context_length <= c.text.max_position_embeddings);
    FUZZ_CHECK (c.image_height == c.vision.image_size && c.image_width == c.vision.image_size);
    for (int k = 0; k < 3; k++)
      FUZZ_CHECK (c.image_std[k] > 0.0f);
    check_specs (&c, TRUE, TRUE);
    check_specs (&c, TRUE, FALSE);
    check_specs (&c, FALSE, TRUE);
  }
  return 0;
}
