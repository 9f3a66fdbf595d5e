/* fuzz-tokenizer.c: cnclip_tokenizer_tokenize() and _encode() with the real
 * vocab (tests/data/cnclip-tiny/vocab.txt, loaded once) on arbitrary bytes.
 *
 * Checks the documented contract: valid UTF-8 (as GLib defines it) always
 * tokenizes and anything refused is CNCLIP_ERROR_UTF8; the count does not
 * depend on the room given (snprintf style) and a shorter buffer receives a
 * prefix of the same ids; every id names a vocab token; an encoded row is
 * [CLS] ids [SEP] [PAD]... for several context lengths. */
#include "config.h"

#include "fuzz-common.h"

static CnclipTokenizer *tokenizer;
static int vocab_size;

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  const char *data_dir = g_getenv ("CNCLIP_TEST_DATA");
  char *path = data_dir != NULL ? g_build_filename (data_dir, "cnclip-tiny", "vocab.txt", NULL)
      : g_build_filename (CNCLIP_SOURCE_DIR, "tests", "data", "cnclip-tiny", "vocab.txt", NULL);
  GError *error = NULL;
  tokenizer = cnclip_tokenizer_load (path, &error);
  if (tokenizer == NULL) {
    fprintf (stderr, "%s\n", error->message);
    abort ();
  }
  g_free (path);
  vocab_size = cnclip_tokenizer_get_vocab_size (tokenizer);
  return 0;
}

static const int utf8_only[] = { CNCLIP_ERROR_UTF8, -1 };

static void
check_encode (const char *text, gsize size, int context_length, const gint32 *ids, int n)
{
  gint32 *row = g_new (gint32, context_length);
  int n_tokens = -1;
  GError *error = NULL;
  gboolean ok = cnclip_tokenizer_encode (tokenizer, text, (gssize) size, context_length, row,
      &n_tokens, &error);
  fuzz_check_error (ok, &error, NULL);
  FUZZ_CHECK (ok);
  FUZZ_CHECK (n_tokens == n);
  int kept = MIN (n, context_length - 2);
  FUZZ_CHECK (row[0] == CNCLIP_TOKEN_CLS);
  FUZZ_CHECK (memcmp (row + 1, ids, kept * sizeof (gint32)) == 0);
  FUZZ_CHECK (row[kept + 1] == CNCLIP_TOKEN_SEP);
  for (int i = kept + 2; i < context_length; i++)
    FUZZ_CHECK (row[i] == CNCLIP_TOKEN_PAD);
  g_free (row);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  const char *text = (const char *) data;
  GError *error = NULL;
  int n = cnclip_tokenizer_tokenize (tokenizer, text, (gssize) size, NULL, 0, &error);
  fuzz_check_error (n >= 0, &error, utf8_only);
  if (n < 0) {
    FUZZ_CHECK (!g_utf8_validate_len (text, size, NULL));
    /* encode refuses it the same way */
    gint32 row[4];
    gboolean ok = cnclip_tokenizer_encode (tokenizer, text, (gssize) size, 4, row, NULL, &error);
    FUZZ_CHECK (!ok);
    fuzz_check_error (ok, &error, utf8_only);
    return 0;
  }
  /* A token needs at least one input byte. */
  FUZZ_CHECK ((size_t) n <= size);

  gint32 *ids = g_new (gint32, n + 1);
  ids[n] = -12345;               /* must stay untouched */
  FUZZ_CHECK (cnclip_tokenizer_tokenize (tokenizer, text, (gssize) size, ids, n, NULL) == n);
  FUZZ_CHECK (ids[n] == -12345);
  for (int i = 0; i < n; i++) {
    FUZZ_CHECK (ids[i] >= 0 && ids[i] < vocab_size);
    FUZZ_CHECK (cnclip_tokenizer_id_to_token (tokenizer, ids[i]) != NULL);
  }
  if (n > 1) {
    int half = n / 2;
    gint32 *prefix = g_new (gint32, half + 1);
    prefix[half] = -12345;
    FUZZ_CHECK (cnclip_tokenizer_tokenize (tokenizer, text, (gssize) size, prefix, half, NULL)
        == n);
    FUZZ_CHECK (prefix[half] == -12345);
    FUZZ_CHECK (memcmp (prefix, ids, half * sizeof (gint32)) == 0);
    g_free (prefix);
  }

  check_encode (text, size, 2, ids, n);
  check_encode (text, size, 5, ids, n);
  check_encode (text, size, CNCLIP_DEFAULT_CONTEXT_LENGTH, ids, n);
  g_free (ids);
  return 0;
}
