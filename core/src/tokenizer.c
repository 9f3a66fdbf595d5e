/* tokenizer.c: the official Chinese-CLIP tokenizer (cn_clip's FullTokenizer:
 * BERT BasicTokenizer with lower-casing, then WordPiece with a 200-character
 * word limit) and the cn_clip.tokenize() row layout. FIXTURES.md sections 3
 * and 7 describe every step; tests/data/tokenizer/cases.json checks them.
 *
 * Tokenizing streams over the validated UTF-8 once and does not allocate:
 * lower-casing, NFD and accent stripping are done per code point as the
 * words go by, and the only buffer is the current word piece, of which at
 * most 201 code points matter (a longer piece is [UNK] whatever it holds).
 * Unicode data: see tokenizer-unicode.c.
 */
#include "cnclip.h"
#include "tokenizer-unicode.h"

#include <errno.h>
#include <string.h>
#include <glib/gstdio.h>

/* WordpieceTokenizer.max_input_chars_per_word in cn_clip (Hugging Face: 100). */
#define MAX_CHARS_PER_WORD 200
#define PIECE_CAP (MAX_CHARS_PER_WORD + 1)

/* Limits that refuse absurd vocab files before anything big is allocated.
 * Real BERT vocabularies have 21k to 250k entries and a few MB. */
#define MAX_VOCAB_FILE_SIZE (16 * 1024 * 1024)
#define MAX_VOCAB_ENTRIES (1 << 20)

/* Every input byte yields at most 4 tokens (lower-casing then NFD turns one
 * code point into at most 4), so this keeps the returned count in an int. */
#define MAX_TEXT_BYTES ((gsize) G_MAXINT / 4)

#define FNV_OFFSET 2166136261u
#define FNV_PRIME 16777619u

typedef struct
{
  const char *str;               /* NUL-terminated, inside tokenizer->data */
  guint32 len;
  guint32 hash;
  gint32 id;                     /* -1: empty slot */
} VocabSlot;

struct _CnclipTokenizer
{
  char *data;                    /* the vocab file; each token NUL-terminated in place */
  const char **tokens;           /* [n_tokens], by id */
  int n_tokens;
  VocabSlot *slots;              /* open addressing, power-of-two size */
  guint32 mask;
  guint32 hash_hashhash;         /* FNV state after "##" */
  gsize max_len;                 /* longest entry, in bytes */
  gsize max_cont_len;            /* longest "##" entry without the "##" */
  gint32 pad_id;
  gint32 unk_id;
  gint32 cls_id;
  gint32 sep_id;
};

/* ------------------------------------------------------------------------ */
/* UTF-8                                                                    */

/* Length of the well-formed UTF-8 sequence at @p (Unicode table 3-7), or 0
 * with @problem set. */
static gsize
utf8_sequence_length (const guint8 *p, gsize avail, const char **problem)
{
  guint8 b0 = p[0];
  guint8 lo = 0x80, hi = 0xBF;
  gsize need;

  if (b0 < 0x80)
    return 1;
  if (b0 < 0xC0) {
    *problem = "unexpected continuation byte";
    return 0;
  }
  if (b0 < 0xC2) {
    *problem = "overlong encoding";
    return 0;
  }
  if (b0 < 0xE0) {
    need = 2;
  } else if (b0 < 0xF0) {
    need = 3;
    if (b0 == 0xE0)
      lo = 0xA0;
    else if (b0 == 0xED)
      hi = 0x9F;
  } else if (b0 < 0xF5) {
    need = 4;
    if (b0 == 0xF0)
      lo = 0x90;
    else if (b0 == 0xF4)
      hi = 0x8F;
  } else if (b0 < 0xF8) {
    *problem = "code point above U+10FFFF";
    return 0;
  } else {
    *problem = "byte that never occurs in UTF-8";
    return 0;
  }

  for (gsize i = 1; i < need; i++) {
    if (i >= avail) {
      *problem = "sequence cut short by the end of the text";
      return 0;
    }
    guint8 b = p[i];
    if (b < 0x80 || b > 0xBF) {
      *problem = "sequence cut short (missing continuation byte)";
      return 0;
    }
    if (i == 1 && (b < lo || b > hi)) {
      if (b0 == 0xED)
        *problem = "UTF-16 surrogate";
      else if (b0 == 0xF4)
        *problem = "code point above U+10FFFF";
      else
        *problem = "overlong encoding";
      return 0;
    }
  }
  return need;
}

/* Returns TRUE when @len bytes at @text are well-formed UTF-8; otherwise the
 * offset of the first byte of the first ill-formed sequence and why. */
static gboolean
utf8_validate (const guint8 *text, gsize len, gsize *bad_offset, const char **problem)
{
  gsize pos = 0;

  while (pos < len) {
    if (text[pos] < 0x80) {
      pos++;
      continue;
    }
    gsize n = utf8_sequence_length (text + pos, len - pos, problem);
    if (n == 0) {
      *bad_offset = pos;
      return FALSE;
    }
    pos += n;
  }
  return TRUE;
}

/* Decodes one code point of text already validated. */
static inline gunichar
utf8_decode (const guint8 *p, gsize *len)
{
  guint8 b = p[0];

  if (b < 0x80) {
    *len = 1;
    return b;
  }
  if (b < 0xE0) {
    *len = 2;
    return ((gunichar) (b & 0x1F) << 6) | (p[1] & 0x3F);
  }
  if (b < 0xF0) {
    *len = 3;
    return ((gunichar) (b & 0x0F) << 12) | ((gunichar) (p[1] & 0x3F) << 6) | (p[2] & 0x3F);
  }
  *len = 4;
  return ((gunichar) (b & 0x07) << 18) | ((gunichar) (p[1] & 0x3F) << 12)
      | ((gunichar) (p[2] & 0x3F) << 6) | (p[3] & 0x3F);
}

/* Offset of the code point that ends just before @pos (validated text). */
static inline gsize
utf8_prev (const guint8 *text, gsize pos)
{
  do
    pos--;
  while (pos > 0 && (text[pos] & 0xC0) == 0x80);
  return pos;
}

/* ------------------------------------------------------------------------ */
/* Vocabulary                                                               */

static inline guint32
fnv1a (guint32 h, const char *s, gsize len)
{
  for (gsize i = 0; i < len; i++)
    h = (h ^ (guint8) s[i]) * FNV_PRIME;
  return h;
}

/* The id of "##" + @s (when @continuation) or @s, or -1. */
static gint32
vocab_lookup (const CnclipTokenizer *tok, gboolean continuation, const char *s, gsize len)
{
  gsize prefix = continuation ? 2 : 0;
  guint32 h = fnv1a (continuation ? tok->hash_hashhash : FNV_OFFSET, s, len);

  for (guint32 i = h & tok->mask;; i = (i + 1) & tok->mask) {
    const VocabSlot *slot = &tok->slots[i];
    if (slot->id < 0)
      return -1;
    if (slot->hash == h && slot->len == len + prefix
        && (!continuation || (slot->str[0] == '#' && slot->str[1] == '#'))
        && memcmp (slot->str + prefix, s, len) == 0)
      return slot->id;
  }
}

/* Inserts with Python dict semantics: a repeated token keeps the id of its
 * LAST line, because the official load_vocab() does vocab[token] = index
 * for every line in order. */
static void
vocab_insert (CnclipTokenizer *tok, const char *str, gsize len, gint32 id)
{
  guint32 h = fnv1a (FNV_OFFSET, str, len);

  for (guint32 i = h & tok->mask;; i = (i + 1) & tok->mask) {
    VocabSlot *slot = &tok->slots[i];
    if (slot->id < 0) {
      slot->str = str;
      slot->len = (guint32) len;
      slot->hash = h;
      slot->id = id;
      return;
    }
    if (slot->hash == h && slot->len == len && memcmp (slot->str, str, len) == 0) {
      slot->id = id;
      return;
    }
  }
}

/* Python's str.strip() on the line [*start, *end) of validated UTF-8. */
static void
python_strip (const guint8 *data, gsize *start, gsize *end)
{
  gsize len;

  while (*start < *end && cnclip_uc_is_python_space (utf8_decode (data + *start, &len)))
    *start += len;
  while (*end > *start) {
    gsize prev = utf8_prev (data, *end);
    if (!cnclip_uc_is_python_space (utf8_decode (data + prev, &len)))
      break;
    *end = prev;
  }
}

static gboolean
vocab_parse (CnclipTokenizer *tok, const char *path, gsize size, GError **error)
{
  const guint8 *data = (const guint8 *) tok->data;
  gsize bad_offset = 0;
  const char *problem = NULL;

  if (!utf8_validate (data, size, &bad_offset, &problem)) {
    int line = 1;
    for (gsize i = 0; i < bad_offset; i++)
      line += data[i] == '\n';
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_VOCAB,
        "%s: not valid UTF-8 at byte offset %" G_GSIZE_FORMAT " (line %d): %s", path, bad_offset,
        line, problem);
    return FALSE;
  }

  /* Lines end at "\n", "\r\n" or "\r", as Python's universal-newline
   * readline() reads them; a last line without an end counts. */
  gsize n_lines = 0;
  for (gsize pos = 0; pos < size;) {
    const guint8 *eol = memchr (data + pos, '\n', size - pos);
    const guint8 *cr = memchr (data + pos, '\r', (eol ? (gsize) (eol - data) : size) - pos);
    gsize end = cr ? (gsize) (cr - data) : eol ? (gsize) (eol - data) : size;
    pos = end + 1 + (end + 1 < size && data[end] == '\r' && data[end + 1] == '\n');
    n_lines++;
    if (n_lines > MAX_VOCAB_ENTRIES) {
      g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_TOO_LARGE,
          "%s: more than %d lines", path, MAX_VOCAB_ENTRIES);
      return FALSE;
    }
  }
  if (n_lines == 0) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_VOCAB, "%s: the vocabulary is empty", path);
    return FALSE;
  }

  guint32 capacity = 16;
  while (capacity < 2 * n_lines)
    capacity *= 2;
  tok->n_tokens = (int) n_lines;
  tok->tokens = g_new (const char *, n_lines);
  tok->slots = g_new (VocabSlot, capacity);
  for (guint32 i = 0; i < capacity; i++)
    tok->slots[i].id = -1;
  tok->mask = capacity - 1;
  tok->hash_hashhash = fnv1a (FNV_OFFSET, "##", 2);

  gsize id = 0;
  for (gsize pos = 0; pos < size; id++) {
    const guint8 *eol = memchr (data + pos, '\n', size - pos);
    const guint8 *cr = memchr (data + pos, '\r', (eol ? (gsize) (eol - data) : size) - pos);
    gsize end = cr ? (gsize) (cr - data) : eol ? (gsize) (eol - data) : size;
    gsize next = end + 1 + (end + 1 < size && data[end] == '\r' && data[end + 1] == '\n');
    gsize start = pos;

    python_strip (data, &start, &end);
    /* Safe: end is at most the line end (a terminator or the NUL that
     * g_file_get_contents() appends), and the next line starts after it. */
    tok->data[end] = '\0';
    const char *str = tok->data + start;
    gsize len = end - start;
    tok->tokens[id] = str;
    vocab_insert (tok, str, len, (gint32) id);
    tok->max_len = MAX (tok->max_len, len);
    if (len >= 2 && str[0] == '#' && str[1] == '#')
      tok->max_cont_len = MAX (tok->max_cont_len, len - 2);
    pos = next;
  }

  static const struct
  {
    const char *token;
    gsize offset;
  } specials[] = {
    { "[PAD]", G_STRUCT_OFFSET (CnclipTokenizer, pad_id) },
    { "[UNK]", G_STRUCT_OFFSET (CnclipTokenizer, unk_id) },
    { "[CLS]", G_STRUCT_OFFSET (CnclipTokenizer, cls_id) },
    { "[SEP]", G_STRUCT_OFFSET (CnclipTokenizer, sep_id) },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (specials); i++) {
    gint32 special = vocab_lookup (tok, FALSE, specials[i].token, strlen (specials[i].token));
    if (special < 0) {
      g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_VOCAB, "%s: no %s token", path,
          specials[i].token);
      return FALSE;
    }
    G_STRUCT_MEMBER (gint32, tok, specials[i].offset) = special;
  }
  return TRUE;
}

CnclipTokenizer *
cnclip_tokenizer_load (const char *vocab_path, GError **error)
{
  GStatBuf st;
  char *contents = NULL;
  gsize size = 0;
  GError *local = NULL;

  g_return_val_if_fail (vocab_path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (g_stat (vocab_path, &st) != 0) {
    int saved = errno;
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO, "%s: %s", vocab_path, g_strerror (saved));
    return NULL;
  }
  if (!S_ISREG (st.st_mode)) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO, "%s: not a regular file", vocab_path);
    return NULL;
  }
  if (st.st_size > MAX_VOCAB_FILE_SIZE) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_TOO_LARGE,
        "%s: %" G_GINT64_FORMAT " bytes is too large for a vocabulary (limit %d)", vocab_path,
        (gint64) st.st_size, MAX_VOCAB_FILE_SIZE);
    return NULL;
  }
  if (!g_file_get_contents (vocab_path, &contents, &size, &local)) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO, "%s", local->message);
    g_error_free (local);
    return NULL;
  }
  if (size > MAX_VOCAB_FILE_SIZE) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_TOO_LARGE,
        "%s: %" G_GSIZE_FORMAT " bytes is too large for a vocabulary", vocab_path, size);
    g_free (contents);
    return NULL;
  }

  CnclipTokenizer *tok = g_new0 (CnclipTokenizer, 1);
  tok->data = contents;
  if (!vocab_parse (tok, vocab_path, size, error)) {
    cnclip_tokenizer_free (tok);
    return NULL;
  }
  return tok;
}

void
cnclip_tokenizer_free (CnclipTokenizer *tokenizer)
{
  if (tokenizer == NULL)
    return;
  g_free (tokenizer->slots);
  g_free (tokenizer->tokens);
  g_free (tokenizer->data);
  g_free (tokenizer);
}

int
cnclip_tokenizer_get_vocab_size (const CnclipTokenizer *tokenizer)
{
  g_return_val_if_fail (tokenizer != NULL, 0);
  return tokenizer->n_tokens;
}

const char *
cnclip_tokenizer_id_to_token (const CnclipTokenizer *tokenizer, int id)
{
  g_return_val_if_fail (tokenizer != NULL, NULL);
  if (id < 0 || id >= tokenizer->n_tokens)
    return NULL;
  return tokenizer->tokens[id];
}

/* ------------------------------------------------------------------------ */
/* Tokenizing                                                               */

typedef struct
{
  const CnclipTokenizer *tok;
  gint32 *ids;
  gint64 max_ids;
  gint64 count;

  /* The word piece being built. Only its first PIECE_CAP code points are
   * stored; piece_chars counts them all. */
  gunichar piece[PIECE_CAP];
  guint8 ccc[PIECE_CAP];
  gint64 piece_chars;
  /* Canonical reordering may move a code point back to here, no further:
   * the position after the last character of combining class 0. */
  int run_start;

  /* WordPiece scratch */
  char utf8[PIECE_CAP * 4];
  int offsets[PIECE_CAP + 1];
  gint32 sub_ids[PIECE_CAP];
} TokenizeState;

static inline void
emit (TokenizeState *st, gint32 id)
{
  if (st->count < st->max_ids)
    st->ids[st->count] = id;
  st->count++;
}

/* WordpieceTokenizer.tokenize() on one piece of @n <= 200 code points:
 * greedy longest match first; if any position has no match the whole piece
 * is [UNK]. Candidates longer than the longest vocab entry cannot match, so
 * they are skipped instead of looked up. */
static void
wordpiece (TokenizeState *st, const gunichar *chars, int n)
{
  const CnclipTokenizer *tok = st->tok;
  int n_bytes = 0, n_sub = 0;

  for (int i = 0; i < n; i++) {
    st->offsets[i] = n_bytes;
    n_bytes += g_unichar_to_utf8 (chars[i], st->utf8 + n_bytes);
  }
  st->offsets[n] = n_bytes;

  for (int start = 0; start < n;) {
    gsize limit = start > 0 ? tok->max_cont_len : tok->max_len;
    int end = n;
    gint32 id = -1;

    while (end > start && (gsize) (st->offsets[end] - st->offsets[start]) > limit)
      end--;
    for (; end > start; end--) {
      id = vocab_lookup (tok, start > 0, st->utf8 + st->offsets[start],
          (gsize) (st->offsets[end] - st->offsets[start]));
      if (id >= 0)
        break;
    }
    if (id < 0) {
      emit (st, tok->unk_id);
      return;
    }
    st->sub_ids[n_sub++] = id;
    start = end;
  }
  for (int i = 0; i < n_sub; i++)
    emit (st, st->sub_ids[i]);
}

static void
piece_flush (TokenizeState *st)
{
  if (st->piece_chars > MAX_CHARS_PER_WORD)
    emit (st, st->tok->unk_id);
  else if (st->piece_chars > 0)
    wordpiece (st, st->piece, (int) st->piece_chars);
  st->piece_chars = 0;
  st->run_start = 0;
}

/* Appends a code point of the NFD text. Canonical ordering is a stable sort
 * by combining class of each run of non-starters; inserting each one in
 * place does exactly that. It runs after the Mn marks are dropped: filtering
 * commutes with a stable sort, and the run boundaries that dropped marks of
 * class 0 make are kept by piece_break(). */
static inline void
piece_push (TokenizeState *st, gunichar c, guint8 ccc)
{
  if (st->piece_chars < PIECE_CAP) {
    int i = (int) st->piece_chars;
    if (ccc != 0) {
      while (i > st->run_start && st->ccc[i - 1] > ccc) {
        st->piece[i] = st->piece[i - 1];
        st->ccc[i] = st->ccc[i - 1];
        i--;
      }
    }
    st->piece[i] = c;
    st->ccc[i] = ccc;
  }
  st->piece_chars++;
  if (ccc == 0)
    st->run_start = (int) MIN (st->piece_chars, PIECE_CAP);
}

static inline void
piece_break (TokenizeState *st)
{
  st->run_start = (int) MIN (st->piece_chars, PIECE_CAP);
}

/* Python's handle_capital_sigma(): U+03A3 lower-cases to final sigma when a
 * cased letter precedes it and none follows, skipping case-ignorable code
 * points. The context is the word as str.lower() sees it, i.e. after
 * cleaning: dropped code points do not count. */
static gboolean
is_final_sigma (const guint8 *text, gsize length, gsize word_start, gsize pos, gsize next)
{
  gboolean final = FALSE;
  gsize len;

  while (pos > word_start) {
    pos = utf8_prev (text, pos);
    gunichar c = utf8_decode (text + pos, &len);
    if (cnclip_uc_clean_class (c) == CNCLIP_UC_DROP)
      continue;
    CnclipUcSigmaClass cls = cnclip_uc_sigma_class (c);
    if (cls == CNCLIP_UC_SIGMA_IGNORABLE)
      continue;
    final = cls == CNCLIP_UC_SIGMA_CASED;
    break;
  }
  if (!final)
    return FALSE;

  while (next < length) {
    gunichar c = utf8_decode (text + next, &len);
    CnclipUcCleanClass clean = cnclip_uc_clean_class (c);
    if (clean == CNCLIP_UC_SPACE || clean == CNCLIP_UC_CJK)
      break;
    next += len;
    if (clean == CNCLIP_UC_DROP)
      continue;
    CnclipUcSigmaClass cls = cnclip_uc_sigma_class (c);
    if (cls == CNCLIP_UC_SIGMA_IGNORABLE)
      continue;
    return cls != CNCLIP_UC_SIGMA_CASED;
  }
  return TRUE;
}

/* Steps 4 and 5 for the code point at [pos, next) of the word starting at
 * @word_start: lower-case, NFD, drop Mn, split off punctuation. */
static void
process_char (TokenizeState *st, gunichar c, const guint8 *text, gsize length, gsize word_start,
    gsize pos, gsize next)
{
  gunichar out[CNCLIP_UC_MAX_EXPANSION];
  int n;

  if (G_UNLIKELY (c == CNCLIP_UC_CAPITAL_SIGMA)) {
    out[0] = is_final_sigma (text, length, word_start, pos, next) ? 0x03C2 : 0x03C3;
    n = 1;
  } else {
    n = cnclip_uc_lower_nfd (c, out);
  }

  for (int i = 0; i < n; i++) {
    guint8 ccc;
    switch (cnclip_uc_piece_class (out[i], &ccc)) {
      case CNCLIP_UC_PIECE_MARK:
        if (ccc == 0)
          piece_break (st);
        break;
      case CNCLIP_UC_PIECE_PUNCT:
        piece_flush (st);
        wordpiece (st, &out[i], 1);
        break;
      case CNCLIP_UC_PIECE_CHAR:
        piece_push (st, out[i], ccc);
        break;
    }
  }
}

static gboolean
check_text (const char *text, gsize length, GError **error)
{
  gsize bad_offset = 0;
  const char *problem = NULL;

  if (length > MAX_TEXT_BYTES) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_TOO_LARGE,
        "text of %" G_GSIZE_FORMAT " bytes is too long to tokenize (limit %" G_GSIZE_FORMAT ")",
        length, MAX_TEXT_BYTES);
    return FALSE;
  }
  if (!utf8_validate ((const guint8 *) text, length, &bad_offset, &problem)) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_UTF8,
        "text is not valid UTF-8 at byte offset %" G_GSIZE_FORMAT ": %s", bad_offset, problem);
    return FALSE;
  }
  return TRUE;
}

int
cnclip_tokenizer_tokenize (const CnclipTokenizer *tokenizer, const char *text, gssize length,
    gint32 *ids, int max_ids, GError **error)
{
  g_return_val_if_fail (tokenizer != NULL, -1);
  g_return_val_if_fail (text != NULL || length == 0, -1);
  g_return_val_if_fail (max_ids >= 0, -1);
  g_return_val_if_fail (ids != NULL || max_ids == 0, -1);
  g_return_val_if_fail (error == NULL || *error == NULL, -1);

  gsize len = length < 0 ? strlen (text) : (gsize) length;
  if (!check_text (text, len, error))
    return -1;

  const guint8 *bytes = (const guint8 *) text;
  TokenizeState st;
  st.tok = tokenizer;
  st.ids = ids;
  st.max_ids = max_ids;
  st.count = 0;
  st.piece_chars = 0;
  st.run_start = 0;

  gboolean in_word = FALSE;
  gsize word_start = 0;
  for (gsize pos = 0, next; pos < len; pos = next) {
    gsize n;
    gunichar c = utf8_decode (bytes + pos, &n);
    next = pos + n;
    switch (cnclip_uc_clean_class (c)) {
      case CNCLIP_UC_DROP:
        break;
      case CNCLIP_UC_SPACE:
        if (in_word)
          piece_flush (&st);
        in_word = FALSE;
        break;
      case CNCLIP_UC_CJK:
        if (in_word)
          piece_flush (&st);
        in_word = FALSE;
        process_char (&st, c, bytes, len, pos, pos, next);
        piece_flush (&st);
        break;
      case CNCLIP_UC_WORD:
        if (!in_word) {
          in_word = TRUE;
          word_start = pos;
        }
        process_char (&st, c, bytes, len, word_start, pos, next);
        break;
    }
  }
  piece_flush (&st);

  return (int) st.count;
}

gboolean
cnclip_tokenizer_encode (const CnclipTokenizer *tokenizer, const char *text, gssize length,
    int context_length, gint32 *input_ids, int *n_tokens, GError **error)
{
  g_return_val_if_fail (tokenizer != NULL, FALSE);
  g_return_val_if_fail (text != NULL || length == 0, FALSE);
  g_return_val_if_fail (input_ids != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (context_length < 2) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT,
        "context length %d is too small: [CLS] and [SEP] need 2", context_length);
    return FALSE;
  }

  /* The WordPiece ids go straight into the row; tokenize() stops writing
   * after the first context_length - 2 but keeps counting. */
  int n = cnclip_tokenizer_tokenize (tokenizer, text, length, input_ids + 1, context_length - 2,
      error);
  if (n < 0)
    return FALSE;

  int kept = MIN (n, context_length - 2);
  input_ids[0] = tokenizer->cls_id;
  input_ids[1 + kept] = tokenizer->sep_id;
  /* cn_clip pads with zeros; for any vocab where [PAD] is not id 0 the
   * [PAD] id is what the attention mask (input_ids != [PAD]) expects. */
  for (int i = kept + 2; i < context_length; i++)
    input_ids[i] = tokenizer->pad_id;
  if (n_tokens)
    *n_tokens = n;
  return TRUE;
}
