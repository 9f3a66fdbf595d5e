/* safetensors.c: the safetensors format (8-byte little-endian header length,
 * JSON header, data section), validated as untrusted input.
 *
 * Policy, so that files written by any tool load when they are sound:
 * - header keys and data may come in any order; "__metadata__" is ignored;
 * - tensors may leave holes or overlap in the data section (they are only
 *   read), but every tensor must lie inside it and its byte size must equal
 *   its element count times its dtype size;
 * - a dtype we cannot compute with (F8_*, U16, U32, U64, I16, or a name we
 *   have never heard of) does not fail the file: the tensor is recorded as
 *   unusable (cnclip_weight_file_add_unusable) and only a model that needs it
 *   fails, with CNCLIP_ERROR_DTYPE;
 * - everything else that is malformed is CNCLIP_ERROR_FORMAT naming the file
 *   and the tensor, and a header beyond CNCLIP_SAFETENSORS_MAX_HEADER is
 *   CNCLIP_ERROR_TOO_LARGE before it is parsed.
 */
#include "config.h"

#include <string.h>

#include <json-glib/json-glib.h>

#include "cnclip.h"
#include "weights.h"

/* The real model's header is 40 KB, large language model shards stay below
 * 1 MB. json-glib needs ~30 bytes per header byte and ~40 us per tensor
 * entry here, so a hostile 100 MB header (the limit of the reference
 * implementation) would cost 2.7 GB and 85 s; 8 MB bounds it at 230 MB, 5 s. */
#define CNCLIP_SAFETENSORS_MAX_HEADER (8 * 1000 * 1000)
/* json-glib parses recursively: bound the nesting so that a hostile file
 * cannot exhaust the stack. Real headers and configs nest 3 deep. */
#define CNCLIP_JSON_MAX_DEPTH 64
/* Integers json-glib would wrap around (it reads them with 64-bit
 * arithmetic) are turned into doubles before parsing. Hugging Face writes
 * model_max_length 1000000000000000019884624838656 ("no limit"). */
#define CNCLIP_JSON_MAX_INT_DIGITS 18

/* Scans JSON text for nesting depth and for numbers json-glib would mangle.
 * It follows json-glib's lexer where that lexer is lenient (single-quoted
 * strings without escapes, C comments), so that nothing can hide nesting
 * from it. */
static gboolean
json_scan (const char *text, gsize length, char **rewritten, const char *what, int code,
    GError **error)
{
  int depth = 0;
  gsize i = 0;
  while (i < length) {
    char c = text[i];
    if (c == '"') {
      for (i++; i < length && text[i] != '"'; i++) {
        if (text[i] == '\\')
          i++;
      }
      i++;
    } else if (c == '\'') {
      for (i++; i < length && text[i] != '\''; i++)
        ;
      i++;
    } else if (c == '/' && i + 1 < length && text[i + 1] == '*') {
      for (i += 2; i + 1 < length && !(text[i] == '*' && text[i + 1] == '/'); i++)
        ;
      i += 2;
    } else if (c == '{' || c == '[') {
      if (++depth > CNCLIP_JSON_MAX_DEPTH) {
        g_set_error (error, CNCLIP_ERROR, code, "%s: JSON nested deeper than %d levels", what,
            CNCLIP_JSON_MAX_DEPTH);
        return FALSE;
      }
      i++;
    } else if (c == '}' || c == ']') {
      depth--;
      i++;
    } else if (c == '-' || g_ascii_isdigit (c)) {
      gsize start = i, digits = 0;
      gboolean integer = TRUE;
      if (c == '-')
        i++;
      gsize first = i;
      for (; i < length && g_ascii_isdigit (text[i]); i++)
        digits++;
      /* json-glib also reads 0x1F and 017; JSON has neither. */
      gboolean odd = (digits > 1 && text[first] == '0') || (i < length && (text[i] == 'x'
              || text[i] == 'X'));
      for (; i < length && (g_ascii_isalnum (text[i]) || text[i] == '.' || text[i] == '+'
              || text[i] == '-'); i++)
        integer = FALSE;
      if (odd) {
        g_set_error (error, CNCLIP_ERROR, code,
            "%s: number %.*s at byte %" G_GSIZE_FORMAT " is not a JSON number", what,
            (int) MIN (i - start, 24), text + start, start);
        return FALSE;
      }
      if (integer && digits > CNCLIP_JSON_MAX_INT_DIGITS) {
        /* Rewrite it as a shorter double literal, so it reaches the caller
         * as a huge non-integer instead of wrapping (a longer literal is
         * cut: the value only needs to stay huge). */
        char literal[32], repl[32];
        g_strlcpy (literal, text + start, MIN (i - start + 1, sizeof (literal)));
        double v = g_ascii_strtod (literal, NULL);
        g_ascii_formatd (repl, sizeof (repl), "%.6e", v);
        if (*rewritten == NULL)
          *rewritten = g_memdup2 (text, length);
        memset (*rewritten + start, ' ', i - start);
        memcpy (*rewritten + start, repl, strlen (repl));
      }
    } else {
      i++;
    }
  }
  return TRUE;
}

typedef struct
{
  GHashTable *counts;            /* JsonObject * -> members seen */
  char *duplicate;
} DuplicateCheck;

static void
on_object_member (JsonParser *parser, JsonObject *object, const char *name, gpointer user_data)
{
  DuplicateCheck *check = user_data;
  guint seen = GPOINTER_TO_UINT (g_hash_table_lookup (check->counts, object)) + 1;
  g_hash_table_insert (check->counts, object, GUINT_TO_POINTER (seen));
  /* The signal comes after the member was stored: a duplicate replaced an
   * earlier member, so the object did not grow. */
  if (seen != json_object_get_size (object) && check->duplicate == NULL)
    check->duplicate = g_strdup (name);
}

struct _JsonNode *
cnclip_json_parse (const char *text, gsize length, const char *what, int error_code,
    GError **error)
{
  g_return_val_if_fail (text != NULL || length == 0, NULL);
  if (length > G_MAXSSIZE) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_TOO_LARGE, "%s: too large", what);
    return NULL;
  }
  if (!g_utf8_validate (text, (gssize) length, NULL)) {
    g_set_error (error, CNCLIP_ERROR, error_code,
        "%s: not valid UTF-8 text (or contains a NUL byte)", what);
    return NULL;
  }
  char *rewritten = NULL;
  if (!json_scan (text, length, &rewritten, what, error_code, error)) {
    g_free (rewritten);
    return NULL;
  }
  if (rewritten)
    text = rewritten;

  DuplicateCheck check = { g_hash_table_new (NULL, NULL), NULL };
  JsonParser *parser = json_parser_new ();
  g_signal_connect (parser, "object-member", G_CALLBACK (on_object_member), &check);
  GError *local = NULL;
  JsonNode *root = NULL;
  if (!json_parser_load_from_data (parser, text, (gssize) length, &local)) {
    g_set_error (error, CNCLIP_ERROR, error_code, "%s: invalid JSON: %s", what, local->message);
    g_error_free (local);
  } else if (check.duplicate) {
    g_set_error (error, CNCLIP_ERROR, error_code, "%s: key \"%s\" appears twice", what,
        check.duplicate);
  } else if (json_parser_get_root (parser) == NULL) {
    g_set_error (error, CNCLIP_ERROR, error_code, "%s: empty JSON document", what);
  } else {
    root = json_node_ref (json_parser_get_root (parser));
  }
  g_object_unref (parser);
  g_hash_table_unref (check.counts);
  g_free (check.duplicate);
  g_free (rewritten);
  return root;
}

typedef struct
{
  const char *name;
  CnclipDType dtype;             /* meaningful when usable */
  gsize size;
  gboolean usable;
} DTypeName;

/* The dtypes of the safetensors specification. */
static const DTypeName dtype_names[] = {
  { "F32", CNCLIP_DTYPE_F32, 4, TRUE },
  { "F16", CNCLIP_DTYPE_F16, 2, TRUE },
  { "BF16", CNCLIP_DTYPE_BF16, 2, TRUE },
  { "F64", CNCLIP_DTYPE_F64, 8, TRUE },
  { "I64", CNCLIP_DTYPE_I64, 8, TRUE },
  { "I32", CNCLIP_DTYPE_I32, 4, TRUE },
  { "I8", CNCLIP_DTYPE_I8, 1, TRUE },
  { "U8", CNCLIP_DTYPE_U8, 1, TRUE },
  { "BOOL", CNCLIP_DTYPE_BOOL, 1, TRUE },
  { "I16", 0, 2, FALSE },
  { "U16", 0, 2, FALSE },
  { "U32", 0, 4, FALSE },
  { "U64", 0, 8, FALSE },
  { "F8_E4M3", 0, 1, FALSE },
  { "F8_E5M2", 0, 1, FALSE },
};

static const DTypeName *
dtype_lookup (const char *name)
{
  for (gsize i = 0; i < G_N_ELEMENTS (dtype_names); i++) {
    if (strcmp (dtype_names[i].name, name) == 0)
      return &dtype_names[i];
  }
  return NULL;
}

/* A JSON integer >= 0 (json-glib gives integers as gint64, other numbers as
 * double: 2.0 is refused like 2.5). */
static gboolean
get_count (JsonNode *node, gint64 *value)
{
  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node)
      || json_node_get_value_type (node) != G_TYPE_INT64)
    return FALSE;
  *value = json_node_get_int (node);
  return *value >= 0;
}

static gboolean
parse_entry (CnclipWeightFile *file, const char *name, JsonNode *node, const guint8 *data,
    gsize data_size, GError **error)
{
  const char *path = cnclip_weight_file_get_path (file);
#define FAIL(...) G_STMT_START { \
    char *msg_ = g_strdup_printf (__VA_ARGS__); \
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT, "%s: tensor %s: %s", path, name, msg_); \
    g_free (msg_); \
    return FALSE; \
  } G_STMT_END

  if (!JSON_NODE_HOLDS_OBJECT (node))
    FAIL ("entry is not a JSON object");
  JsonObject *entry = json_node_get_object (node);

  JsonNode *dtype_node = json_object_get_member (entry, "dtype");
  if (dtype_node == NULL)
    FAIL ("no \"dtype\"");
  if (!JSON_NODE_HOLDS_VALUE (dtype_node) || json_node_get_value_type (dtype_node) != G_TYPE_STRING)
    FAIL ("\"dtype\" is not a string");
  const char *dtype_str = json_node_get_string (dtype_node);

  JsonNode *shape_node = json_object_get_member (entry, "shape");
  if (shape_node == NULL)
    FAIL ("no \"shape\"");
  if (!JSON_NODE_HOLDS_ARRAY (shape_node))
    FAIL ("\"shape\" is not an array");
  JsonArray *shape = json_node_get_array (shape_node);
  guint ndim = json_array_get_length (shape);
  if (ndim > CNCLIP_MAX_DIMS)
    FAIL ("%u dimensions, at most %d are supported", ndim, CNCLIP_MAX_DIMS);

  CnclipTensorInfo info = { 0 };
  info.name = (char *) name;
  info.ndim = (int) ndim;
  gint64 n = 1;
  for (guint k = 0; k < ndim; k++) {
    if (!get_count (json_array_get_element (shape, k), &info.shape[k]))
      FAIL ("shape[%u] is not a non-negative integer", k);
    if (__builtin_mul_overflow (n, info.shape[k], &n))
      FAIL ("shape has too many elements");
  }
  info.n_elements = n;
  gint64 stride = 1;
  for (int k = info.ndim - 1; k >= 0; k--) {
    info.strides[k] = stride;
    stride *= info.shape[k];
  }
  info.contiguous = TRUE;

  JsonNode *offsets_node = json_object_get_member (entry, "data_offsets");
  if (offsets_node == NULL)
    FAIL ("no \"data_offsets\"");
  if (!JSON_NODE_HOLDS_ARRAY (offsets_node)
      || json_array_get_length (json_node_get_array (offsets_node)) != 2)
    FAIL ("\"data_offsets\" is not an array of two integers");
  JsonArray *offsets = json_node_get_array (offsets_node);
  gint64 begin, end;
  if (!get_count (json_array_get_element (offsets, 0), &begin)
      || !get_count (json_array_get_element (offsets, 1), &end))
    FAIL ("\"data_offsets\" are not non-negative integers");
  if (end < begin)
    FAIL ("data_offsets [%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT "] end before begin", begin, end);
  if ((guint64) end > data_size)
    FAIL ("data_offsets [%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT "] beyond the data section (%"
        G_GSIZE_FORMAT " bytes; file truncated?)", begin, end, data_size);

  const DTypeName *dt = dtype_lookup (dtype_str);
  if (dt != NULL) {
    gint64 bytes;
    if (__builtin_mul_overflow (n, (gint64) dt->size, &bytes))
      FAIL ("shape has too many elements");
    if (bytes != end - begin)
      FAIL ("%" G_GINT64_FORMAT " bytes in data_offsets, but shape and dtype %s need %"
          G_GINT64_FORMAT, end - begin, dt->name, bytes);
  }
#undef FAIL

  if (dt == NULL || !dt->usable)
    return cnclip_weight_file_add_unusable (file, name, dtype_str, error);
  info.dtype = dt->dtype;
  info.data = data + begin;
  return cnclip_weight_file_add_tensor (file, &info, error);
}

CnclipWeightFile *
cnclip_safetensors_open (const char *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);

  CnclipWeightFile *file = cnclip_weight_file_map (path, error);
  if (file == NULL)
    return NULL;
  const guint8 *bytes = cnclip_weight_file_get_data (file);
  gsize size = cnclip_weight_file_get_size (file);
  JsonNode *root = NULL;

  if (size < 8) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT,
        "%s: %" G_GSIZE_FORMAT " bytes, shorter than the 8-byte safetensors header length",
        path, size);
    goto fail;
  }
  guint64 header_len;
  memcpy (&header_len, bytes, 8);
  header_len = GUINT64_FROM_LE (header_len);
  if (header_len > size - 8) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT,
        "%s: header length %" G_GUINT64_FORMAT " exceeds the file (%" G_GSIZE_FORMAT
        " bytes); not a safetensors file or truncated", path, header_len, size);
    goto fail;
  }
  if (header_len > CNCLIP_SAFETENSORS_MAX_HEADER) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_TOO_LARGE,
        "%s: header of %" G_GUINT64_FORMAT " bytes exceeds the limit of %d", path, header_len,
        CNCLIP_SAFETENSORS_MAX_HEADER);
    goto fail;
  }

  char *what = g_strdup_printf ("%s: header", path);
  root = cnclip_json_parse ((const char *) bytes + 8, (gsize) header_len, what,
      CNCLIP_ERROR_FORMAT, error);
  g_free (what);
  if (root == NULL)
    goto fail;
  if (!JSON_NODE_HOLDS_OBJECT (root)) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT,
        "%s: header is not a JSON object", path);
    goto fail;
  }

  JsonObject *object = json_node_get_object (root);
  const guint8 *data = bytes + 8 + header_len;
  gsize data_size = size - 8 - (gsize) header_len;
  GList *members = json_object_get_members (object);
  gboolean ok = TRUE;
  for (GList *l = members; l && ok; l = l->next) {
    const char *name = l->data;
    if (strcmp (name, "__metadata__") == 0)
      continue;
    ok = parse_entry (file, name, json_object_get_member (object, name), data, data_size, error);
  }
  g_list_free (members);
  if (!ok)
    goto fail;
  json_node_unref (root);
  return file;

fail:
  if (root)
    json_node_unref (root);
  cnclip_weight_file_free (file);
  return NULL;
}
