/* tokenizer-unicode.h: the character properties of the BERT basic tokenizer,
 * as Python 3.11 (Unicode 14.0) computes them (internal).
 *
 * All functions are pure and thread-safe. Code points must be valid Unicode
 * scalar values (the tokenizer validates UTF-8 first).
 */
#ifndef CNCLIP_TOKENIZER_UNICODE_H
#define CNCLIP_TOKENIZER_UNICODE_H

#include <glib.h>

G_BEGIN_DECLS

/* What text cleaning, CJK spacing and str.split() do with a code point of the
 * input (steps 1 to 3 of FIXTURES.md section 3). */
typedef enum
{
  CNCLIP_UC_WORD,                /* kept as part of a word */
  CNCLIP_UC_DROP,                /* removed: 0, U+FFFD, Cc and Cf except TAB, LF, CR */
  CNCLIP_UC_SPACE,               /* ends a word: " \t\n\r", Zs, U+2028, U+2029 */
  CNCLIP_UC_CJK,                 /* a word of its own (the _is_chinese_char ranges) */
} CnclipUcCleanClass;

/* What accent stripping and the punctuation split do with a code point of a
 * lower-cased, NFD-decomposed word (steps 4 and 5). */
typedef enum
{
  CNCLIP_UC_PIECE_CHAR,          /* part of a word piece */
  CNCLIP_UC_PIECE_MARK,          /* category Mn: removed */
  CNCLIP_UC_PIECE_PUNCT,         /* a word piece of its own */
} CnclipUcPieceClass;

/* The final-sigma context classes of str.lower(). */
typedef enum
{
  CNCLIP_UC_SIGMA_OTHER,
  CNCLIP_UC_SIGMA_IGNORABLE,     /* Case_Ignorable: skipped */
  CNCLIP_UC_SIGMA_CASED,         /* Cased and not Case_Ignorable */
} CnclipUcSigmaClass;

#define CNCLIP_UC_CAPITAL_SIGMA 0x03A3
/* At most this many code points come out of lower-casing and then
 * NFD-decomposing one code point. */
#define CNCLIP_UC_MAX_EXPANSION 4

CnclipUcCleanClass cnclip_uc_clean_class (gunichar c);

/* TRUE when @c had a general category other than Cn in Unicode 14.0. */
gboolean cnclip_uc_is_assigned (gunichar c);

/* str.lower() followed by NFD of one code point other than U+03A3 (whose
 * lower case depends on its context, see cnclip_uc_sigma_class()): writes
 * 1 to CNCLIP_UC_MAX_EXPANSION code points to @out in canonical order and
 * returns the count. */
int cnclip_uc_lower_nfd (gunichar c, gunichar out[CNCLIP_UC_MAX_EXPANSION]);

/* Classifies a code point produced by cnclip_uc_lower_nfd() and returns its
 * canonical combining class in @ccc. */
CnclipUcPieceClass cnclip_uc_piece_class (gunichar c, guint8 *ccc);

CnclipUcSigmaClass cnclip_uc_sigma_class (gunichar c);

/* TRUE for the code points Python's str.strip() removes (Py_UNICODE_ISSPACE). */
gboolean cnclip_uc_is_python_space (gunichar c);

G_END_DECLS

#endif /* CNCLIP_TOKENIZER_UNICODE_H */
