/* tokenizer-unicode.c: Unicode 14.0 character properties for the tokenizer.
 *
 * The reference tokenizer is Python 3.11 code (unicodedata 14.0.0); utf8proc
 * 2.8 on Debian 12 carries Unicode 15.0. Compared code point by code point,
 * the two agree on general category, canonical combining class, simple
 * lowercase and canonical decomposition for every code point assigned in
 * 14.0, and differ only on the 4,489 code points assigned in 15.0 (Python
 * 3.11 sees those as Cn: kept, never punctuation, control or Mn, no case,
 * no decomposition). None of the 476 reference cases contains such a code
 * point, but treating them as 15.0 does would change ids, e.g.
 * "a" U+10EFD (Mn in 15.0: dropped there, [UNK] in 14.0) or U+13439 (Cf in
 * 15.0: dropped there). So utf8proc is only asked about code points in the
 * generated `uc14_assigned` table, which also keeps results stable when a
 * newer utf8proc assigns more code points.
 *
 * utf8proc has no Cased / Case_Ignorable properties and only simple case
 * mappings; the final-sigma rule and U+0130 (the only code point whose
 * str.lower() is two code points in 14.0) are handled here with tables read
 * back from CPython (scripts/gen-tokenizer-unicode.py).
 */
#include "tokenizer-unicode.h"

#include <utf8proc.h>

typedef struct
{
  guint32 first;
  guint32 last;
} CnclipUcRange;

#include "tokenizer-unicode-tables.h"

static gboolean
in_ranges (const CnclipUcRange *ranges, gsize n, gunichar c)
{
  gsize lo = 0, hi = n;

  while (lo < hi) {
    gsize mid = lo + (hi - lo) / 2;
    if (c < ranges[mid].first)
      hi = mid;
    else if (c > ranges[mid].last)
      lo = mid + 1;
    else
      return TRUE;
  }
  return FALSE;
}

/* The common CJK block: assigned in 14.0, category Lo, no case, no
 * decomposition. Checked first so Chinese text skips the table searches. */
static inline gboolean
is_cjk_unified (gunichar c)
{
  return c >= 0x4E00 && c <= 0x9FFF;
}

/* BasicTokenizer._is_chinese_char: by code point range, assigned or not. */
static gboolean
is_cjk (gunichar c)
{
  return is_cjk_unified (c) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF)
      || (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F)
      || (c >= 0x2B820 && c <= 0x2CEAF) || (c >= 0xF900 && c <= 0xFAFF)
      || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* BasicTokenizer._is_punctuation for ASCII: every printable non-alphanumeric. */
static inline gboolean
is_ascii_punct (gunichar c)
{
  return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96)
      || (c >= 123 && c <= 126);
}

gboolean
cnclip_uc_is_assigned (gunichar c)
{
  if (c < 0x378 || is_cjk_unified (c))
    return TRUE;
  return in_ranges (uc14_assigned, G_N_ELEMENTS (uc14_assigned), c);
}

CnclipUcCleanClass
cnclip_uc_clean_class (gunichar c)
{
  if (c < 0x80) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
      return CNCLIP_UC_SPACE;
    if (c < 0x20 || c == 0x7F)
      return CNCLIP_UC_DROP;
    return CNCLIP_UC_WORD;
  }
  if (is_cjk (c))
    return CNCLIP_UC_CJK;
  if (c == 0xFFFD)
    return CNCLIP_UC_DROP;
  if (!cnclip_uc_is_assigned (c))
    return CNCLIP_UC_WORD;
  switch (utf8proc_category ((utf8proc_int32_t) c)) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
      return CNCLIP_UC_DROP;
    case UTF8PROC_CATEGORY_ZS:
      /* Zl and Zp (U+2028, U+2029) survive cleaning but str.split() splits
       * on them, so for word boundaries they are spaces too. */
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
      return CNCLIP_UC_SPACE;
    default:
      return CNCLIP_UC_WORD;
  }
}

int
cnclip_uc_lower_nfd (gunichar c, gunichar out[CNCLIP_UC_MAX_EXPANSION])
{
  if (c < 0x80) {
    out[0] = (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
    return 1;
  }
  if (is_cjk_unified (c) || !cnclip_uc_is_assigned (c)) {
    out[0] = c;
    return 1;
  }
  if (c == 0x0130) {
    /* SpecialCasing: LATIN CAPITAL LETTER I WITH DOT ABOVE -> i + COMBINING
     * DOT ABOVE (already in NFD). */
    out[0] = 'i';
    out[1] = 0x0307;
    return 2;
  }

  utf8proc_int32_t lower = utf8proc_tolower ((utf8proc_int32_t) c);
  utf8proc_int32_t buf[CNCLIP_UC_MAX_EXPANSION];
  int boundclass = 0;
  /* A single code point's full canonical decomposition (Hangul included)
   * comes out in canonical order; reordering across code points is the
   * caller's job. */
  utf8proc_ssize_t n = utf8proc_decompose_char (lower, buf, CNCLIP_UC_MAX_EXPANSION,
      UTF8PROC_DECOMPOSE, &boundclass);
  if (n < 1 || n > CNCLIP_UC_MAX_EXPANSION) {
    /* Not reachable with Unicode 14 data (the generator checks the bound). */
    out[0] = (gunichar) lower;
    return 1;
  }
  for (utf8proc_ssize_t i = 0; i < n; i++)
    out[i] = (gunichar) buf[i];
  return (int) n;
}

CnclipUcPieceClass
cnclip_uc_piece_class (gunichar c, guint8 *ccc)
{
  *ccc = 0;
  if (c < 0x80)
    return is_ascii_punct (c) ? CNCLIP_UC_PIECE_PUNCT : CNCLIP_UC_PIECE_CHAR;
  if (is_cjk_unified (c) || !cnclip_uc_is_assigned (c))
    return CNCLIP_UC_PIECE_CHAR;

  const utf8proc_property_t *prop = utf8proc_get_property ((utf8proc_int32_t) c);
  *ccc = (guint8) prop->combining_class;
  switch (prop->category) {
    case UTF8PROC_CATEGORY_MN:
      return CNCLIP_UC_PIECE_MARK;
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
      return CNCLIP_UC_PIECE_PUNCT;
    default:
      return CNCLIP_UC_PIECE_CHAR;
  }
}

CnclipUcSigmaClass
cnclip_uc_sigma_class (gunichar c)
{
  if (is_cjk_unified (c))
    return CNCLIP_UC_SIGMA_OTHER;
  if (in_ranges (uc14_case_ignorable, G_N_ELEMENTS (uc14_case_ignorable), c))
    return CNCLIP_UC_SIGMA_IGNORABLE;
  if (in_ranges (uc14_cased, G_N_ELEMENTS (uc14_cased), c))
    return CNCLIP_UC_SIGMA_CASED;
  return CNCLIP_UC_SIGMA_OTHER;
}

gboolean
cnclip_uc_is_python_space (gunichar c)
{
  /* Py_UNICODE_ISSPACE in Unicode 14.0 (the generator checks this list). */
  if (c < 0x80)
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20);
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028
      || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}
