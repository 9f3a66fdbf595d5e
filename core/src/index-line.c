/* index-line.c: see index-line.h. */
#include "config.h"

#include <string.h>

#include "index-line.h"

/* Deeper nesting is not a record; the limit bounds the recursion. */
#define MAX_DEPTH 32

typedef struct
{
  const char *p;
  const char *end;
  const char *reason;
  CnclipIndexLineScratch *scratch;
} Scan;

static gboolean
fail (Scan *s, const char *reason)
{
  if (s->reason == NULL)
    s->reason = reason;
  return FALSE;
}

static void
skip_ws (Scan *s)
{
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\r' || *s->p == '\n'))
    s->p++;
}

static gboolean
expect (Scan *s, char c, const char *reason)
{
  skip_ws (s);
  if (s->p >= s->end || *s->p != c)
    return fail (s, reason);
  s->p++;
  return TRUE;
}

static int
hex_value (char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

static gboolean
read_hex4 (const char *p, guint32 *value)
{
  guint32 v = 0;
  for (int i = 0; i < 4; i++) {
    int h = hex_value (p[i]);
    if (h < 0)
      return FALSE;
    v = (v << 4) | (guint32) h;
  }
  *value = v;
  return TRUE;
}

/* At a '"': checks the string's grammar and returns its raw content. */
static gboolean
scan_string (Scan *s, const char **start, gsize *length, gboolean *escaped)
{
  skip_ws (s);
  if (s->p >= s->end || *s->p != '"')
    return fail (s, "expected a string");
  const char *p = s->p + 1;
  *start = p;
  *escaped = FALSE;

  /* Fast path for long plain strings (base64): find the closing quote and
   * check the span with loops the compiler vectorises. */
  const char *quote = memchr (p, '"', (gsize) (s->end - p));
  if (quote != NULL && memchr (p, '\\', (gsize) (quote - p)) == NULL) {
    unsigned char control = 0;
    for (const unsigned char *q = (const unsigned char *) p; q < (const unsigned char *) quote; q++)
      control |= *q < 0x20;
    if (!control) {
      *length = (gsize) (quote - p);
      s->p = quote + 1;
      return TRUE;
    }
  }

  while (p < s->end) {
    const unsigned char c = (unsigned char) *p;
    if (c == '"') {
      *length = (gsize) (p - *start);
      s->p = p + 1;
      return TRUE;
    }
    if (c < 0x20)
      return fail (s, "control character in a string");
    if (c == '\\') {
      *escaped = TRUE;
      if (p + 1 >= s->end)
        break;
      switch (p[1]) {
        case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
          p += 2;
          continue;
        case 'u': {
          guint32 v;
          if (s->end - p < 6 || !read_hex4 (p + 2, &v))
            return fail (s, "bad \\u escape");
          p += 6;
          continue;
        }
        default:
          return fail (s, "bad escape in a string");
      }
    }
    p++;
  }
  return fail (s, "unterminated string");
}

static void
append_utf8 (GString *out, guint32 cp)
{
  char buf[6];
  int n = g_unichar_to_utf8 (cp, buf);
  g_string_append_len (out, buf, n);
}

/* Resolves the escapes of a string scan_string() accepted. Lone surrogates
 * and NUL are refused: they cannot be part of a UTF-8 C string. */
static gboolean
unescape (Scan *s, const char *in, gsize length, GString *out)
{
  g_string_truncate (out, 0);
  const char *end = in + length;
  for (const char *p = in; p < end;) {
    if (*p != '\\') {
      const char *q = memchr (p, '\\', (gsize) (end - p));
      if (q == NULL)
        q = end;
      g_string_append_len (out, p, q - p);
      p = q;
      continue;
    }
    char c = p[1];
    p += 2;
    switch (c) {
      case 'b': g_string_append_c (out, '\b'); break;
      case 'f': g_string_append_c (out, '\f'); break;
      case 'n': g_string_append_c (out, '\n'); break;
      case 'r': g_string_append_c (out, '\r'); break;
      case 't': g_string_append_c (out, '\t'); break;
      case 'u': {
        guint32 cp = 0, low = 0;
        read_hex4 (p, &cp);
        p += 4;
        if (cp >= 0xdc00 && cp <= 0xdfff)
          return fail (s, "lone low surrogate in a string");
        if (cp >= 0xd800 && cp <= 0xdbff) {
          if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || !read_hex4 (p + 2, &low) ||
              low < 0xdc00 || low > 0xdfff)
            return fail (s, "lone high surrogate in a string");
          cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
          p += 6;
        }
        if (cp == 0)
          return fail (s, "NUL in a string");
        append_utf8 (out, cp);
        break;
      }
      default: g_string_append_c (out, c); break;    /* " \ / */
    }
  }
  return TRUE;
}

/* A JSON number; @is_integer when it has no fraction or exponent. */
static gboolean
scan_number (Scan *s, const char **start, gsize *length, gboolean *is_integer)
{
  skip_ws (s);
  const char *p = s->p;
  *start = p;
  *is_integer = TRUE;
  if (p < s->end && *p == '-')
    p++;
  if (p >= s->end || !g_ascii_isdigit (*p))
    return fail (s, "bad number");
  if (*p == '0')
    p++;
  else
    while (p < s->end && g_ascii_isdigit (*p))
      p++;
  if (p < s->end && *p == '.') {
    *is_integer = FALSE;
    p++;
    if (p >= s->end || !g_ascii_isdigit (*p))
      return fail (s, "bad number");
    while (p < s->end && g_ascii_isdigit (*p))
      p++;
  }
  if (p < s->end && (*p == 'e' || *p == 'E')) {
    *is_integer = FALSE;
    p++;
    if (p < s->end && (*p == '+' || *p == '-'))
      p++;
    if (p >= s->end || !g_ascii_isdigit (*p))
      return fail (s, "bad number");
    while (p < s->end && g_ascii_isdigit (*p))
      p++;
  }
  *length = (gsize) (p - *start);
  s->p = p;
  return TRUE;
}

static gboolean
scan_literal (Scan *s, const char *word)
{
  gsize n = strlen (word);
  if ((gsize) (s->end - s->p) < n || memcmp (s->p, word, n) != 0)
    return fail (s, "bad JSON value");
  s->p += n;
  return TRUE;
}

static gboolean skip_value (Scan *s, int depth);

static gboolean
skip_container (Scan *s, int depth, char close, gboolean object)
{
  if (depth > MAX_DEPTH)
    return fail (s, "nesting too deep");
  s->p++;    /* the opening bracket */
  skip_ws (s);
  if (s->p < s->end && *s->p == close) {
    s->p++;
    return TRUE;
  }
  for (;;) {
    if (object) {
      const char *k;
      gsize kl;
      gboolean esc;
      if (!scan_string (s, &k, &kl, &esc) || !expect (s, ':', "expected ':'"))
        return FALSE;
    }
    if (!skip_value (s, depth + 1))
      return FALSE;
    skip_ws (s);
    if (s->p < s->end && *s->p == ',') {
      s->p++;
      continue;
    }
    return expect (s, close, object ? "expected ',' or '}'" : "expected ',' or ']'");
  }
}

static gboolean
skip_value (Scan *s, int depth)
{
  skip_ws (s);
  if (s->p >= s->end)
    return fail (s, "missing value");
  const char *start;
  gsize length;
  gboolean flag;
  switch (*s->p) {
    case '"': return scan_string (s, &start, &length, &flag);
    case '{': return skip_container (s, depth, '}', TRUE);
    case '[': return skip_container (s, depth, ']', FALSE);
    case 't': return scan_literal (s, "true");
    case 'f': return scan_literal (s, "false");
    case 'n': return scan_literal (s, "null");
    default: return scan_number (s, &start, &length, &flag);
  }
}

static gboolean
peek_null (Scan *s)
{
  skip_ws (s);
  if (s->p < s->end && *s->p == 'n')
    return scan_literal (s, "null");
  return FALSE;
}

/* A non-negative integer member, or null (-1). */
static gboolean
read_count (Scan *s, gint64 *value, const char *reason)
{
  if (peek_null (s)) {
    *value = -1;
    return TRUE;
  }
  if (s->reason)
    return FALSE;
  const char *start;
  gsize length;
  gboolean is_integer;
  if (!scan_number (s, &start, &length, &is_integer) || !is_integer || start[0] == '-')
    return fail (s, reason);
  gint64 v = 0;
  for (gsize i = 0; i < length; i++) {
    int d = start[i] - '0';
    if (v > (G_MAXINT64 - d) / 10)
      return fail (s, reason);
    v = v * 10 + d;
  }
  *value = v;
  return TRUE;
}

/* Reads the key at the scanner into a NUL-free string for comparison. */
static gboolean
read_key (Scan *s, const char **key, gsize *length)
{
  gboolean escaped;
  if (!scan_string (s, key, length, &escaped) || !expect (s, ':', "expected ':'"))
    return FALSE;
  if (escaped) {
    if (!unescape (s, *key, *length, s->scratch->key))
      return FALSE;
    *key = s->scratch->key->str;
    *length = s->scratch->key->len;
  }
  return TRUE;
}

static gboolean
key_is (const char *key, gsize length, const char *name)
{
  return strlen (name) == length && memcmp (key, name, length) == 0;
}

/* Calls @member for each key of the object at the scanner. */
typedef gboolean (*MemberFunc) (Scan *s, const char *key, gsize length, gpointer data);

static gboolean
read_object (Scan *s, MemberFunc member, gpointer data)
{
  if (!expect (s, '{', "expected an object"))
    return FALSE;
  skip_ws (s);
  if (s->p < s->end && *s->p == '}') {
    s->p++;
    return TRUE;
  }
  for (;;) {
    const char *key;
    gsize length;
    if (!read_key (s, &key, &length) || !member (s, key, length, data))
      return FALSE;
    skip_ws (s);
    if (s->p < s->end && *s->p == ',') {
      s->p++;
      continue;
    }
    return expect (s, '}', "expected ',' or '}'");
  }
}

static gboolean
model_member (Scan *s, const char *key, gsize length, gpointer data)
{
  CnclipIndexLine *out = data;
  if (key_is (key, length, "dim")) {
    gint64 dim;
    if (!read_count (s, &dim, "model.dim is not a count"))
      return FALSE;
    out->model_dim = dim > G_MAXINT ? G_MAXINT : (int) dim;
    return TRUE;
  }
  return skip_value (s, 2);
}

typedef struct
{
  CnclipIndexLine *out;
  gboolean have_dtype;
  gboolean base64;
  gboolean have_data;
} EmbeddingState;

static gboolean
read_short_string (Scan *s, char *buf, gsize size, const char *reason)
{
  const char *str;
  gsize length;
  gboolean escaped;
  if (!scan_string (s, &str, &length, &escaped))
    return FALSE;
  if (escaped || length >= size)
    return fail (s, reason);
  memcpy (buf, str, length);
  buf[length] = '\0';
  return TRUE;
}

static gboolean
embedding_member (Scan *s, const char *key, gsize length, gpointer data)
{
  EmbeddingState *st = data;
  char buf[16];
  if (key_is (key, length, "dtype")) {
    if (!read_short_string (s, buf, sizeof (buf), "unknown embedding dtype"))
      return FALSE;
    if (!cnclip_embedding_dtype_from_string (buf, &st->out->dtype))
      return fail (s, "unknown embedding dtype");
    st->have_dtype = TRUE;
  } else if (key_is (key, length, "encoding")) {
    if (!read_short_string (s, buf, sizeof (buf), "unknown embedding encoding"))
      return FALSE;
    if (strcmp (buf, "base64") != 0)
      return fail (s, "unknown embedding encoding");
    st->base64 = TRUE;
  } else if (key_is (key, length, "data")) {
    gboolean escaped;
    if (!scan_string (s, &st->out->data, &st->out->data_len, &escaped))
      return FALSE;
    if (escaped) {
      if (!unescape (s, st->out->data, st->out->data_len, s->scratch->data))
        return FALSE;
      st->out->data = s->scratch->data->str;
      st->out->data_len = s->scratch->data->len;
    }
    st->have_data = TRUE;
  } else {
    return skip_value (s, 2);
  }
  return TRUE;
}

typedef struct
{
  CnclipIndexLine *out;
  gint64 version;
  gboolean have_source;
} RootState;

static gboolean
root_member (Scan *s, const char *key, gsize length, gpointer data)
{
  RootState *st = data;
  CnclipIndexLine *out = st->out;

  if (key_is (key, length, "version"))
    return read_count (s, &st->version, "version is not a count");
  if (key_is (key, length, "frame"))
    return read_count (s, &out->frame, "frame is not a count");
  if (key_is (key, length, "timestamp"))
    return read_count (s, &out->timestamp, "timestamp is not a count of ns");
  if (key_is (key, length, "pts"))
    return read_count (s, &out->pts, "pts is not a count of ns");
  if (key_is (key, length, "source")) {
    gboolean escaped;
    skip_ws (s);
    if (s->p >= s->end || *s->p != '"')
      return fail (s, "source is not a string");
    if (!scan_string (s, &out->source, &out->source_len, &escaped))
      return FALSE;
    if (escaped) {
      if (!unescape (s, out->source, out->source_len, s->scratch->source))
        return FALSE;
      out->source = s->scratch->source->str;
      out->source_len = s->scratch->source->len;
    }
    if (!g_utf8_validate_len (out->source, out->source_len, NULL))
      return fail (s, "source is not UTF-8");
    st->have_source = TRUE;
    return TRUE;
  }
  if (key_is (key, length, "model")) {
    if (peek_null (s))
      return TRUE;
    return s->reason == NULL && read_object (s, model_member, out);
  }
  if (key_is (key, length, "embedding")) {
    out->dtype = CNCLIP_EMBEDDING_NONE;
    out->data = NULL;
    out->data_len = 0;
    if (peek_null (s))
      return TRUE;
    EmbeddingState es = { out, FALSE, FALSE, FALSE };
    if (s->reason != NULL || !read_object (s, embedding_member, &es))
      return FALSE;
    if (!es.have_dtype)
      return fail (s, "embedding has no dtype");
    if (out->dtype != CNCLIP_EMBEDDING_NONE && (!es.base64 || !es.have_data))
      return fail (s, "embedding lacks encoding \"base64\" or data");
    return TRUE;
  }
  return skip_value (s, 1);
}

gboolean
cnclip_index_line_parse (const char *line, gsize length, CnclipIndexLine *out,
    CnclipIndexLineScratch *scratch, const char **reason)
{
  Scan s = { line, line + length, NULL, scratch };
  RootState st = { out, -1, FALSE };

  memset (out, 0, sizeof (*out));
  out->frame = out->timestamp = out->pts = -1;
  out->model_dim = -1;
  out->dtype = CNCLIP_EMBEDDING_NONE;

  if (!read_object (&s, root_member, &st))
    goto bad;
  skip_ws (&s);
  if (s.p != s.end) {
    fail (&s, "text after the record");
    goto bad;
  }
  if (st.version != CNCLIP_RECORD_VERSION) {
    fail (&s, st.version < 0 ? "no \"version\": not a record" : "unsupported record version");
    goto bad;
  }
  if (!st.have_source) {
    fail (&s, "no \"source\"");
    goto bad;
  }
  return TRUE;

bad:
  *reason = s.reason;
  return FALSE;
}

void
cnclip_index_line_scratch_init (CnclipIndexLineScratch *scratch)
{
  scratch->source = g_string_new (NULL);
  scratch->data = g_string_new (NULL);
  scratch->key = g_string_new (NULL);
}

void
cnclip_index_line_scratch_clear (CnclipIndexLineScratch *scratch)
{
  g_string_free (scratch->source, TRUE);
  g_string_free (scratch->data, TRUE);
  g_string_free (scratch->key, TRUE);
}

/* ------------------------------------------------------------------------ */
/* Base64 */

static const gint8 *
base64_table (void)
{
  static gint8 table[256];
  static gsize initialised;
  if (g_once_init_enter (&initialised)) {
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    memset (table, -1, sizeof (table));
    for (int i = 0; i < 64; i++)
      table[(guint8) alphabet[i]] = (gint8) i;
    g_once_init_leave (&initialised, 1);
  }
  return table;
}

gssize
cnclip_base64_decoded_length (const char *text, gsize length)
{
  if (length % 4 != 0)
    return -1;
  if (length == 0)
    return 0;
  gsize pad = text[length - 1] == '=' ? (text[length - 2] == '=' ? 2 : 1) : 0;
  return (gssize) (length / 4 * 3 - pad);
}

gboolean
cnclip_base64_decode (const char *text, gsize length, guint8 *out)
{
  const gint8 *table = base64_table ();
  if (length % 4 != 0)
    return FALSE;
  for (gsize i = 0; i < length; i += 4) {
    const guint8 *q = (const guint8 *) text + i;
    const gboolean last = i + 4 == length;
    int a = table[q[0]], b = table[q[1]];
    int c = table[q[2]], d = table[q[3]];
    if (a < 0 || b < 0)
      return FALSE;
    if (last && q[2] == '=' && q[3] == '=') {
      *out++ = (guint8) ((a << 2) | (b >> 4));
      break;
    }
    if (c < 0)
      return FALSE;
    if (last && q[3] == '=') {
      *out++ = (guint8) ((a << 2) | (b >> 4));
      *out++ = (guint8) ((b << 4) | (c >> 2));
      break;
    }
    if (d < 0)
      return FALSE;
    *out++ = (guint8) ((a << 2) | (b >> 4));
    *out++ = (guint8) ((b << 4) | (c >> 2));
    *out++ = (guint8) ((c << 6) | d);
  }
  return TRUE;
}
