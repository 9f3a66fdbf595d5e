/* pickle.c: the restricted unpickler described in pickle.h.
 *
 * Design: a value stack (fixed size), a mark stack whose top is the "fence"
 * no pop may cross (as CPython's _pickle does), and a memo array that grows
 * on demand up to a cap. Every value is allocated through the arena of the
 * CnclipPickle being built, so an error anywhere just frees the arena.
 * Containers reference values, never copy them: BINGET costs O(1), and the
 * total work is linear in the input.
 */
#include <string.h>

#include "cnclip.h"
#include "pickle.h"

struct _CnclipPickle
{
  GPtrArray *arena;              /* CnclipPickleValue *, freed with value_free */
  gsize bytes;                   /* allocated for values and their item arrays */
  const CnclipPickleValue *root;
  guint counts[256];
  guint32 globals;
};

/* Opcode bytes (pickletools names). */
enum
{
  OP_MARK = '(',
  OP_STOP = '.',
  OP_POP = '0',
  OP_POP_MARK = '1',
  OP_DUP = '2',
  OP_FLOAT = 'F',
  OP_INT = 'I',
  OP_BININT = 'J',
  OP_BININT1 = 'K',
  OP_LONG = 'L',
  OP_BININT2 = 'M',
  OP_NONE = 'N',
  OP_PERSID = 'P',
  OP_BINPERSID = 'Q',
  OP_REDUCE = 'R',
  OP_STRING = 'S',
  OP_BINSTRING = 'T',
  OP_SHORT_BINSTRING = 'U',
  OP_UNICODE = 'V',
  OP_BINUNICODE = 'X',
  OP_APPEND = 'a',
  OP_BUILD = 'b',
  OP_GLOBAL = 'c',
  OP_DICT = 'd',
  OP_EMPTY_DICT = '}',
  OP_APPENDS = 'e',
  OP_GET = 'g',
  OP_BINGET = 'h',
  OP_INST = 'i',
  OP_LONG_BINGET = 'j',
  OP_LIST = 'l',
  OP_EMPTY_LIST = ']',
  OP_OBJ = 'o',
  OP_PUT = 'p',
  OP_BINPUT = 'q',
  OP_LONG_BINPUT = 'r',
  OP_SETITEM = 's',
  OP_TUPLE = 't',
  OP_EMPTY_TUPLE = ')',
  OP_SETITEMS = 'u',
  OP_BINFLOAT = 'G',
  OP_BINBYTES = 'B',
  OP_SHORT_BINBYTES = 'C',
  OP_PROTO = 0x80,
  OP_NEWOBJ = 0x81,
  OP_EXT1 = 0x82,
  OP_EXT2 = 0x83,
  OP_EXT4 = 0x84,
  OP_TUPLE1 = 0x85,
  OP_TUPLE2 = 0x86,
  OP_TUPLE3 = 0x87,
  OP_NEWTRUE = 0x88,
  OP_NEWFALSE = 0x89,
  OP_LONG1 = 0x8a,
  OP_LONG4 = 0x8b,
  OP_SHORT_BINUNICODE = 0x8c,
  OP_BINUNICODE8 = 0x8d,
  OP_BINBYTES8 = 0x8e,
  OP_EMPTY_SET = 0x8f,
  OP_ADDITEMS = 0x90,
  OP_FROZENSET = 0x91,
  OP_NEWOBJ_EX = 0x92,
  OP_STACK_GLOBAL = 0x93,
  OP_MEMOIZE = 0x94,
  OP_FRAME = 0x95,
  OP_BYTEARRAY8 = 0x96,
  OP_NEXT_BUFFER = 0x97,
  OP_READONLY_BUFFER = 0x98,
};

const char *
cnclip_pickle_opcode_name (guint8 opcode)
{
  switch (opcode) {
    case OP_MARK: return "MARK";
    case OP_STOP: return "STOP";
    case OP_POP: return "POP";
    case OP_POP_MARK: return "POP_MARK";
    case OP_DUP: return "DUP";
    case OP_FLOAT: return "FLOAT";
    case OP_INT: return "INT";
    case OP_BININT: return "BININT";
    case OP_BININT1: return "BININT1";
    case OP_LONG: return "LONG";
    case OP_BININT2: return "BININT2";
    case OP_NONE: return "NONE";
    case OP_PERSID: return "PERSID";
    case OP_BINPERSID: return "BINPERSID";
    case OP_REDUCE: return "REDUCE";
    case OP_STRING: return "STRING";
    case OP_BINSTRING: return "BINSTRING";
    case OP_SHORT_BINSTRING: return "SHORT_BINSTRING";
    case OP_UNICODE: return "UNICODE";
    case OP_BINUNICODE: return "BINUNICODE";
    case OP_APPEND: return "APPEND";
    case OP_BUILD: return "BUILD";
    case OP_GLOBAL: return "GLOBAL";
    case OP_DICT: return "DICT";
    case OP_EMPTY_DICT: return "EMPTY_DICT";
    case OP_APPENDS: return "APPENDS";
    case OP_GET: return "GET";
    case OP_BINGET: return "BINGET";
    case OP_INST: return "INST";
    case OP_LONG_BINGET: return "LONG_BINGET";
    case OP_LIST: return "LIST";
    case OP_EMPTY_LIST: return "EMPTY_LIST";
    case OP_OBJ: return "OBJ";
    case OP_PUT: return "PUT";
    case OP_BINPUT: return "BINPUT";
    case OP_LONG_BINPUT: return "LONG_BINPUT";
    case OP_SETITEM: return "SETITEM";
    case OP_TUPLE: return "TUPLE";
    case OP_EMPTY_TUPLE: return "EMPTY_TUPLE";
    case OP_SETITEMS: return "SETITEMS";
    case OP_BINFLOAT: return "BINFLOAT";
    case OP_BINBYTES: return "BINBYTES";
    case OP_SHORT_BINBYTES: return "SHORT_BINBYTES";
    case OP_PROTO: return "PROTO";
    case OP_NEWOBJ: return "NEWOBJ";
    case OP_EXT1: return "EXT1";
    case OP_EXT2: return "EXT2";
    case OP_EXT4: return "EXT4";
    case OP_TUPLE1: return "TUPLE1";
    case OP_TUPLE2: return "TUPLE2";
    case OP_TUPLE3: return "TUPLE3";
    case OP_NEWTRUE: return "NEWTRUE";
    case OP_NEWFALSE: return "NEWFALSE";
    case OP_LONG1: return "LONG1";
    case OP_LONG4: return "LONG4";
    case OP_SHORT_BINUNICODE: return "SHORT_BINUNICODE";
    case OP_BINUNICODE8: return "BINUNICODE8";
    case OP_BINBYTES8: return "BINBYTES8";
    case OP_EMPTY_SET: return "EMPTY_SET";
    case OP_ADDITEMS: return "ADDITEMS";
    case OP_FROZENSET: return "FROZENSET";
    case OP_NEWOBJ_EX: return "NEWOBJ_EX";
    case OP_STACK_GLOBAL: return "STACK_GLOBAL";
    case OP_MEMOIZE: return "MEMOIZE";
    case OP_FRAME: return "FRAME";
    case OP_BYTEARRAY8: return "BYTEARRAY8";
    case OP_NEXT_BUFFER: return "NEXT_BUFFER";
    case OP_READONLY_BUFFER: return "READONLY_BUFFER";
    default: return NULL;
  }
}

typedef struct
{
  const char *module;
  const char *name;
  const char *full;
  CnclipDType dtype;             /* storages only */
} GlobalDesc;

static const GlobalDesc global_table[CNCLIP_PICKLE_N_GLOBALS] = {
  [CNCLIP_PICKLE_GLOBAL_ORDERED_DICT] =
      { "collections", "OrderedDict", "collections.OrderedDict", 0 },
  [CNCLIP_PICKLE_GLOBAL_REBUILD_TENSOR_V2] =
      { "torch._utils", "_rebuild_tensor_v2", "torch._utils._rebuild_tensor_v2", 0 },
  [CNCLIP_PICKLE_GLOBAL_REBUILD_PARAMETER] =
      { "torch._utils", "_rebuild_parameter", "torch._utils._rebuild_parameter", 0 },
  [CNCLIP_PICKLE_GLOBAL_FLOAT_STORAGE] =
      { "torch", "FloatStorage", "torch.FloatStorage", CNCLIP_DTYPE_F32 },
  [CNCLIP_PICKLE_GLOBAL_DOUBLE_STORAGE] =
      { "torch", "DoubleStorage", "torch.DoubleStorage", CNCLIP_DTYPE_F64 },
  [CNCLIP_PICKLE_GLOBAL_HALF_STORAGE] =
      { "torch", "HalfStorage", "torch.HalfStorage", CNCLIP_DTYPE_F16 },
  [CNCLIP_PICKLE_GLOBAL_BFLOAT16_STORAGE] =
      { "torch", "BFloat16Storage", "torch.BFloat16Storage", CNCLIP_DTYPE_BF16 },
  [CNCLIP_PICKLE_GLOBAL_LONG_STORAGE] =
      { "torch", "LongStorage", "torch.LongStorage", CNCLIP_DTYPE_I64 },
  [CNCLIP_PICKLE_GLOBAL_INT_STORAGE] =
      { "torch", "IntStorage", "torch.IntStorage", CNCLIP_DTYPE_I32 },
  [CNCLIP_PICKLE_GLOBAL_CHAR_STORAGE] =
      { "torch", "CharStorage", "torch.CharStorage", CNCLIP_DTYPE_I8 },
  [CNCLIP_PICKLE_GLOBAL_BYTE_STORAGE] =
      { "torch", "ByteStorage", "torch.ByteStorage", CNCLIP_DTYPE_U8 },
  [CNCLIP_PICKLE_GLOBAL_BOOL_STORAGE] =
      { "torch", "BoolStorage", "torch.BoolStorage", CNCLIP_DTYPE_BOOL },
};

const char *
cnclip_pickle_global_name (CnclipPickleGlobal global)
{
  if ((guint) global >= CNCLIP_PICKLE_N_GLOBALS)
    return NULL;
  return global_table[global].full;
}

static gboolean
global_is_storage (CnclipPickleGlobal global)
{
  return global >= CNCLIP_PICKLE_GLOBAL_FLOAT_STORAGE && global < CNCLIP_PICKLE_N_GLOBALS;
}

const char *
cnclip_pickle_kind_name (CnclipPickleKind kind)
{
  static const char *const names[] = {
    "None", "a bool", "an int", "a float", "a str", "a tuple", "a list", "a dict", "a global",
    "a storage", "a tensor",
  };
  if ((guint) kind >= G_N_ELEMENTS (names))
    return "?";
  return names[kind];
}

/* ------------------------------------------------------------------------ */
/* Values                                                                   */

static void
value_free (gpointer p)
{
  CnclipPickleValue *value = p;
  if (value->kind == CNCLIP_PICKLE_TUPLE || value->kind == CNCLIP_PICKLE_LIST)
    g_free (value->v.seq.items);
  else if (value->kind == CNCLIP_PICKLE_DICT)
    g_free (value->v.dict.items);
  g_free (value);
}

void
cnclip_pickle_free (CnclipPickle *pickle)
{
  if (pickle == NULL)
    return;
  g_ptr_array_free (pickle->arena, TRUE);
  g_free (pickle);
}

const CnclipPickleValue *
cnclip_pickle_get_root (const CnclipPickle *pickle)
{
  g_return_val_if_fail (pickle != NULL, NULL);
  return pickle->root;
}

guint
cnclip_pickle_get_opcode_count (const CnclipPickle *pickle, guint8 opcode)
{
  g_return_val_if_fail (pickle != NULL, 0);
  return pickle->counts[opcode];
}

guint32
cnclip_pickle_get_globals (const CnclipPickle *pickle)
{
  g_return_val_if_fail (pickle != NULL, 0);
  return pickle->globals;
}

const CnclipPickleValue *
cnclip_pickle_dict_lookup (const CnclipPickleValue *dict, const char *key)
{
  g_return_val_if_fail (dict != NULL && key != NULL, NULL);
  if (dict->kind != CNCLIP_PICKLE_DICT)
    return NULL;
  gsize len = strlen (key);
  for (guint i = dict->v.dict.n_pairs; i-- > 0;) {
    const CnclipPickleValue *k = dict->v.dict.items[2 * i];
    if (k->kind == CNCLIP_PICKLE_STR && k->v.str.len == len && memcmp (k->v.str.str, key, len) == 0)
      return dict->v.dict.items[2 * i + 1];
  }
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* The machine                                                              */

typedef struct
{
  const guint8 *data;
  gsize size;
  gsize pos;                     /* next byte to read */
  gsize op_pos;                  /* offset of the opcode being executed */
  guint8 op;
  CnclipPickle *pk;
  CnclipPickleValue **stack;     /* CNCLIP_PICKLE_MAX_STACK entries */
  guint sp;
  guint marks[CNCLIP_PICKLE_MAX_MARKS];
  guint n_marks;
  CnclipPickleValue **memo;
  guint memo_len;
} Unpickler;

static gboolean G_GNUC_PRINTF (4, 5)
fail (Unpickler *u, GError **error, CnclipError code, const char *format, ...)
{
  va_list args;
  va_start (args, format);
  char *msg = g_strdup_vprintf (format, args);
  va_end (args);
  const char *name = cnclip_pickle_opcode_name (u->op);
  if (name != NULL)
    g_set_error (error, CNCLIP_ERROR, code, "pickle offset %" G_GSIZE_FORMAT " (%s): %s",
        u->op_pos, name, msg);
  else
    g_set_error (error, CNCLIP_ERROR, code, "pickle offset %" G_GSIZE_FORMAT ": %s", u->op_pos,
        msg);
  g_free (msg);
  return FALSE;
}

/* Accounts for @n more bytes of values; refuses going past the limit. */
static gboolean
charge (Unpickler *u, gsize n, GError **error)
{
  if (n > CNCLIP_PICKLE_MAX_BYTES - u->pk->bytes)
    return fail (u, error, CNCLIP_ERROR_TOO_LARGE, "values need more than %u MB",
        CNCLIP_PICKLE_MAX_BYTES >> 20);
  u->pk->bytes += n;
  return TRUE;
}

static CnclipPickleValue *
new_value (Unpickler *u, CnclipPickleKind kind, gsize extra, GError **error)
{
  if (u->pk->arena->len >= CNCLIP_PICKLE_MAX_VALUES) {
    fail (u, error, CNCLIP_ERROR_TOO_LARGE, "more than %d values", CNCLIP_PICKLE_MAX_VALUES);
    return NULL;
  }
  /* extra <= the pickle size (strings) or a small struct: no overflow. */
  if (!charge (u, sizeof (CnclipPickleValue) + extra, error))
    return NULL;
  CnclipPickleValue *value = g_malloc0 (sizeof (CnclipPickleValue) + extra);
  value->kind = kind;
  g_ptr_array_add (u->pk->arena, value);
  return value;
}

static gboolean
need (Unpickler *u, gsize n, GError **error)
{
  if (u->size - u->pos < n)
    return fail (u, error, CNCLIP_ERROR_FORMAT, "truncated: needs %" G_GSIZE_FORMAT
        " bytes, %" G_GSIZE_FORMAT " left", n, u->size - u->pos);
  return TRUE;
}

static guint
fence (const Unpickler *u)
{
  return u->n_marks > 0 ? u->marks[u->n_marks - 1] : 0;
}

static gboolean
push (Unpickler *u, CnclipPickleValue *value, GError **error)
{
  if (value == NULL)
    return FALSE;
  if (u->sp >= CNCLIP_PICKLE_MAX_STACK)
    return fail (u, error, CNCLIP_ERROR_TOO_LARGE, "value stack deeper than %d",
        CNCLIP_PICKLE_MAX_STACK);
  u->stack[u->sp++] = value;
  return TRUE;
}

/* Checks that @n values lie above the fence. */
static gboolean
have (Unpickler *u, guint n, GError **error)
{
  if (u->sp - fence (u) < n)
    return fail (u, error, CNCLIP_ERROR_FORMAT, "stack underflow");
  return TRUE;
}

static gboolean
push_new (Unpickler *u, CnclipPickleKind kind, GError **error)
{
  return push (u, new_value (u, kind, 0, error), error);
}

static gboolean
push_int (Unpickler *u, gint64 v, GError **error)
{
  CnclipPickleValue *value = new_value (u, CNCLIP_PICKLE_INT, 0, error);
  if (value == NULL)
    return FALSE;
  value->v.integer = v;
  return push (u, value, error);
}

static gboolean
push_bool (Unpickler *u, gboolean v, GError **error)
{
  CnclipPickleValue *value = new_value (u, CNCLIP_PICKLE_BOOL, 0, error);
  if (value == NULL)
    return FALSE;
  value->v.boolean = v;
  return push (u, value, error);
}

static guint32
read_u32 (const guint8 *p)
{
  return (guint32) p[0] | ((guint32) p[1] << 8) | ((guint32) p[2] << 16) | ((guint32) p[3] << 24);
}

/* Pops the values above the top mark into a new tuple; pops the mark. */
static gboolean
pop_mark (Unpickler *u, guint *first, GError **error)
{
  if (u->n_marks == 0)
    return fail (u, error, CNCLIP_ERROR_FORMAT, "no MARK on the stack");
  *first = u->marks[--u->n_marks];
  return TRUE;
}

/* Makes a sequence of stack[first .. sp) and pops those values. */
static CnclipPickleValue *
make_seq (Unpickler *u, CnclipPickleKind kind, guint first, GError **error)
{
  CnclipPickleValue *value = new_value (u, kind, 0, error);
  if (value == NULL)
    return NULL;
  guint n = u->sp - first;
  if (!charge (u, n * sizeof (CnclipPickleValue *), error))
    return NULL;
  if (n > 0) {
    value->v.seq.items = g_new (CnclipPickleValue *, n);
    memcpy (value->v.seq.items, u->stack + first, n * sizeof (CnclipPickleValue *));
  }
  value->v.seq.n = value->v.seq.cap = n;
  u->sp = first;
  return value;
}

/* Appends @n pointers to a growable array (list items or dict pairs). The
 * stack limit bounds @n, and the array doubles, so appends are amortised O(1);
 * the byte limit bounds the total (so *len cannot overflow). */
static gboolean
grow_append (Unpickler *u, CnclipPickleValue ***items, guint *len, guint *cap,
    CnclipPickleValue **src, guint n, GError **error)
{
  if (n == 0)
    return TRUE;
  if (*len + n > *cap) {
    guint new_cap = MAX (*cap * 2, *len + n);
    new_cap = MAX (new_cap, 8);
    if (!charge (u, (gsize) (new_cap - *cap) * sizeof (CnclipPickleValue *), error))
      return FALSE;
    *items = g_renew (CnclipPickleValue *, *items, new_cap);
    *cap = new_cap;
  }
  memcpy (*items + *len, src, n * sizeof (CnclipPickleValue *));
  *len += n;
  return TRUE;
}

static gboolean
key_is_hashable (const CnclipPickleValue *key)
{
  return key->kind != CNCLIP_PICKLE_LIST && key->kind != CNCLIP_PICKLE_DICT;
}

/* dict[stack[first + 2i]] = stack[first + 2i + 1]; pops them. Duplicate keys
 * are kept as pairs; readers take the last one, as Python would. */
static gboolean
set_items (Unpickler *u, CnclipPickleValue *dict, guint first, GError **error)
{
  if (dict->kind != CNCLIP_PICKLE_DICT)
    return fail (u, error, CNCLIP_ERROR_FORMAT, "setting items of %s",
        cnclip_pickle_kind_name (dict->kind));
  guint n = u->sp - first;
  if (n % 2 != 0)
    return fail (u, error, CNCLIP_ERROR_FORMAT, "odd number of values (%u) for dict items", n);
  for (guint i = first; i < u->sp; i += 2)
    if (!key_is_hashable (u->stack[i]))
      return fail (u, error, CNCLIP_ERROR_FORMAT, "unhashable dict key (%s)",
          cnclip_pickle_kind_name (u->stack[i]->kind));
  guint len = dict->v.dict.n_pairs * 2, cap = dict->v.dict.cap;
  gboolean ok = grow_append (u, &dict->v.dict.items, &len, &cap, u->stack + first, n, error);
  dict->v.dict.n_pairs = len / 2;
  dict->v.dict.cap = cap;
  u->sp = first;
  return ok;
}

static gboolean
append_items (Unpickler *u, CnclipPickleValue *list, guint first, GError **error)
{
  if (list->kind != CNCLIP_PICKLE_LIST)
    return fail (u, error, CNCLIP_ERROR_FORMAT, "appending to %s",
        cnclip_pickle_kind_name (list->kind));
  gboolean ok = grow_append (u, &list->v.seq.items, &list->v.seq.n, &list->v.seq.cap,
      u->stack + first, u->sp - first, error);
  u->sp = first;
  return ok;
}

static gboolean
do_global (Unpickler *u, GError **error)
{
  /* Two lines, "module\nname\n". Bounded so garbage cannot make us scan far. */
  const char *line[2];
  gsize len[2];
  for (int i = 0; i < 2; i++) {
    gsize avail = MIN (u->size - u->pos, 256);
    const guint8 *nl = memchr (u->data + u->pos, '\n', avail);
    if (nl == NULL)
      return fail (u, error, CNCLIP_ERROR_FORMAT, "unterminated or overlong global name");
    line[i] = (const char *) u->data + u->pos;
    len[i] = nl - (u->data + u->pos);
    u->pos += len[i] + 1;
  }
  for (int g = 0; g < CNCLIP_PICKLE_N_GLOBALS; g++) {
    const GlobalDesc *d = &global_table[g];
    if (strlen (d->module) == len[0] && memcmp (d->module, line[0], len[0]) == 0
        && strlen (d->name) == len[1] && memcmp (d->name, line[1], len[1]) == 0) {
      CnclipPickleValue *value = new_value (u, CNCLIP_PICKLE_GLOBAL, 0, error);
      if (value == NULL)
        return FALSE;
      value->v.global = g;
      u->pk->globals |= 1u << g;
      return push (u, value, error);
    }
  }
  /* Escape: the name is attacker-controlled and goes into a log message. */
  char *module = g_strndup (line[0], len[0]), *name = g_strndup (line[1], len[1]);
  char *em = g_strescape (module, NULL), *en = g_strescape (name, NULL);
  fail (u, error, CNCLIP_ERROR_UNSAFE, "forbidden global '%s.%s' (only torch tensor and "
      "storage rebuilding and collections.OrderedDict are allowed)", em, en);
  g_free (module);
  g_free (name);
  g_free (em);
  g_free (en);
  return FALSE;
}

static gboolean
do_binunicode (Unpickler *u, GError **error)
{
  if (!need (u, 4, error))
    return FALSE;
  guint32 len = read_u32 (u->data + u->pos);
  u->pos += 4;
  if (!need (u, len, error))
    return FALSE;
  const char *src = (const char *) u->data + u->pos;
  /* g_utf8_validate_len() also refuses NUL, which our C strings cannot hold. */
  if (!g_utf8_validate_len (src, len, NULL))
    return fail (u, error, CNCLIP_ERROR_FORMAT, "string is not valid UTF-8 (or contains NUL)");
  CnclipPickleValue *value = new_value (u, CNCLIP_PICKLE_STR, (gsize) len + 1, error);
  if (value == NULL)
    return FALSE;
  char *dst = (char *) (value + 1);
  memcpy (dst, src, len);
  dst[len] = '\0';
  value->v.str.str = dst;
  value->v.str.len = len;
  u->pos += len;
  return push (u, value, error);
}

static gboolean
do_long1 (Unpickler *u, GError **error)
{
  if (!need (u, 1, error))
    return FALSE;
  guint n = u->data[u->pos++];
  if (!need (u, n, error))
    return FALSE;
  if (n > 8)
    return fail (u, error, CNCLIP_ERROR_UNSUPPORTED, "integer of %u bytes (more than 64 bits)",
        n);
  guint64 bits = 0;
  for (guint i = 0; i < n; i++)
    bits |= (guint64) u->data[u->pos + i] << (8 * i);
  /* Sign-extend the two's complement number of n bytes. */
  if (n > 0 && n < 8 && (u->data[u->pos + n - 1] & 0x80))
    bits |= ~(guint64) 0 << (8 * n);
  u->pos += n;
  gint64 v;
  memcpy (&v, &bits, sizeof v);
  return push_int (u, v, error);
}

static gboolean
do_binfloat (Unpickler *u, GError **error)
{
  if (!need (u, 8, error))
    return FALSE;
  guint64 bits = 0;
  for (int i = 0; i < 8; i++)   /* big-endian */
    bits = (bits << 8) | u->data[u->pos + i];
  u->pos += 8;
  CnclipPickleValue *value = new_value (u, CNCLIP_PICKLE_FLOAT, 0, error);
  if (value == NULL)
    return FALSE;
  memcpy (&value->v.real, &bits, sizeof (double));
  return push (u, value, error);
}

static gboolean
do_put (Unpickler *u, guint32 index, GError **error)
{
  if (!have (u, 1, error))
    return FALSE;
  if (index >= CNCLIP_PICKLE_MAX_MEMO)
    return fail (u, error, CNCLIP_ERROR_TOO_LARGE, "memo index %u beyond the limit of %d", index,
        CNCLIP_PICKLE_MAX_MEMO);
  if (index >= u->memo_len) {
    guint new_len = MAX (index + 1, MIN (u->memo_len * 2, CNCLIP_PICKLE_MAX_MEMO));
    new_len = MAX (new_len, 64);
    new_len = MIN (new_len, CNCLIP_PICKLE_MAX_MEMO);
    u->memo = g_renew (CnclipPickleValue *, u->memo, new_len);
    memset (u->memo + u->memo_len, 0, (new_len - u->memo_len) * sizeof (CnclipPickleValue *));
    u->memo_len = new_len;
  }
  u->memo[index] = u->stack[u->sp - 1];
  return TRUE;
}

static gboolean
do_get (Unpickler *u, guint32 index, GError **error)
{
  if (index >= u->memo_len || u->memo[index] == NULL)
    return fail (u, error, CNCLIP_ERROR_FORMAT, "memo index %u is not set", index);
  return push (u, u->memo[index], error);
}

/* BINPERSID: torch's persistent id ('storage', StorageClass, key, location, numel). */
static gboolean
do_persid (Unpickler *u, GError **error)
{
  if (!have (u, 1, error))
    return FALSE;
  const CnclipPickleValue *pid = u->stack[--u->sp];
  if (pid->kind != CNCLIP_PICKLE_TUPLE || pid->v.seq.n != 5)
    return fail (u, error, CNCLIP_ERROR_FORMAT,
        "persistent id is not a ('storage', type, key, location, numel) tuple");
  CnclipPickleValue *const *it = pid->v.seq.items;
  if (it[0]->kind != CNCLIP_PICKLE_STR || strcmp (it[0]->v.str.str, "storage") != 0)
    return fail (u, error, CNCLIP_ERROR_FORMAT, "persistent id is not a 'storage' record");
  if (it[1]->kind != CNCLIP_PICKLE_GLOBAL || !global_is_storage (it[1]->v.global))
    return fail (u, error, CNCLIP_ERROR_FORMAT, "storage type is not a storage class");
  if (it[2]->kind != CNCLIP_PICKLE_STR || it[2]->v.str.len == 0)
    return fail (u, error, CNCLIP_ERROR_FORMAT, "storage key is not a non-empty string");
  if (it[3]->kind != CNCLIP_PICKLE_STR)
    return fail (u, error, CNCLIP_ERROR_FORMAT, "storage location is not a string");
  if (it[4]->kind != CNCLIP_PICKLE_INT || it[4]->v.integer < 0)
    return fail (u, error, CNCLIP_ERROR_FORMAT, "storage size is not a non-negative integer");
  CnclipDType dtype = global_table[it[1]->v.global].dtype;
  gint64 numel = it[4]->v.integer;
  if (numel > G_MAXINT64 / (gint64) cnclip_dtype_size (dtype))
    return fail (u, error, CNCLIP_ERROR_FORMAT, "storage of %" G_GINT64_FORMAT
        " elements overflows", numel);

  CnclipPickleValue *value = new_value (u, CNCLIP_PICKLE_STORAGE, sizeof (CnclipPickleStorage),
      error);
  if (value == NULL)
    return FALSE;
  CnclipPickleStorage *storage = (CnclipPickleStorage *) (value + 1);
  storage->type = it[1]->v.global;
  storage->dtype = dtype;
  storage->key = it[2]->v.str.str;
  storage->location = it[3]->v.str.str;
  storage->numel = numel;
  value->v.storage = storage;
  return push (u, value, error);
}

/* Reads a tuple of non-negative ints into @out; FALSE with an error otherwise. */
static gboolean
int_tuple (Unpickler *u, const CnclipPickleValue *t, const char *what, gint64 *out, int *n,
    GError **error)
{
  if (t->kind != CNCLIP_PICKLE_TUPLE)
    return fail (u, error, CNCLIP_ERROR_FORMAT, "tensor %s is %s, not a tuple", what,
        cnclip_pickle_kind_name (t->kind));
  if (t->v.seq.n > CNCLIP_MAX_DIMS)
    return fail (u, error, CNCLIP_ERROR_UNSUPPORTED, "tensor with %u dimensions (at most %d)",
        t->v.seq.n, CNCLIP_MAX_DIMS);
  for (guint i = 0; i < t->v.seq.n; i++) {
    const CnclipPickleValue *x = t->v.seq.items[i];
    if (x->kind != CNCLIP_PICKLE_INT || x->v.integer < 0)
      return fail (u, error, CNCLIP_ERROR_FORMAT, "tensor %s[%u] is not a non-negative integer",
          what, i);
    out[i] = x->v.integer;
  }
  *n = t->v.seq.n;
  return TRUE;
}

/* _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
 * backward_hooks[, metadata]) */
static CnclipPickleValue *
rebuild_tensor (Unpickler *u, const CnclipPickleValue *args, GError **error)
{
  guint n = args->v.seq.n;
  CnclipPickleValue *const *a = args->v.seq.items;
  CnclipPickleTensor t = { 0 };
  int n_size = 0, n_stride = 0;

  if (n != 6 && n != 7) {
    fail (u, error, CNCLIP_ERROR_FORMAT, "_rebuild_tensor_v2 takes 6 arguments, got %u", n);
    return NULL;
  }
  if (a[0]->kind != CNCLIP_PICKLE_STORAGE) {
    fail (u, error, CNCLIP_ERROR_FORMAT, "tensor storage is %s",
        cnclip_pickle_kind_name (a[0]->kind));
    return NULL;
  }
  t.storage = a[0]->v.storage;
  if (a[1]->kind != CNCLIP_PICKLE_INT || a[1]->v.integer < 0) {
    fail (u, error, CNCLIP_ERROR_FORMAT, "tensor storage offset is not a non-negative integer");
    return NULL;
  }
  t.offset = a[1]->v.integer;
  if (!int_tuple (u, a[2], "size", t.size, &n_size, error)
      || !int_tuple (u, a[3], "stride", t.stride, &n_stride, error))
    return NULL;
  if (n_size != n_stride) {
    fail (u, error, CNCLIP_ERROR_FORMAT, "tensor has %d sizes but %d strides", n_size, n_stride);
    return NULL;
  }
  t.ndim = n_size;
  if (a[4]->kind != CNCLIP_PICKLE_BOOL) {
    fail (u, error, CNCLIP_ERROR_FORMAT, "requires_grad is %s",
        cnclip_pickle_kind_name (a[4]->kind));
    return NULL;
  }
  t.requires_grad = a[4]->v.boolean;
  /* Backward hooks are only stored by Python, never run at load; any dict will do. */
  if (a[5]->kind != CNCLIP_PICKLE_DICT) {
    fail (u, error, CNCLIP_ERROR_FORMAT, "backward hooks are %s",
        cnclip_pickle_kind_name (a[5]->kind));
    return NULL;
  }
  /* Newer torch appends tensor metadata only when it is non-empty (e.g. for
   * conjugate/negative views), which would change the values: refuse it. */
  if (n == 7 && a[6]->kind != CNCLIP_PICKLE_NONE
      && !(a[6]->kind == CNCLIP_PICKLE_DICT && a[6]->v.dict.n_pairs == 0)) {
    fail (u, error, CNCLIP_ERROR_UNSUPPORTED, "tensor with metadata");
    return NULL;
  }

  /* Element count and the last element the view addresses, overflow-safe. */
  gint64 count = 1, last = t.offset;
  for (int k = 0; k < t.ndim; k++) {
    if (t.size[k] != 0 && count > G_MAXINT64 / t.size[k]) {
      fail (u, error, CNCLIP_ERROR_FORMAT, "tensor element count overflows");
      return NULL;
    }
    count *= t.size[k];
  }
  if (count > 0) {
    for (int k = 0; k < t.ndim; k++) {
      gint64 span = t.size[k] - 1;
      if (span > 0 && t.stride[k] > (G_MAXINT64 - last) / span) {
        fail (u, error, CNCLIP_ERROR_FORMAT, "tensor view offset overflows");
        return NULL;
      }
      last += span * t.stride[k];
    }
    if (last >= t.storage->numel) {
      fail (u, error, CNCLIP_ERROR_FORMAT, "tensor view reaches element %" G_GINT64_FORMAT
          " of a storage of %" G_GINT64_FORMAT " elements", last, t.storage->numel);
      return NULL;
    }
  } else if (t.offset > t.storage->numel) {
    fail (u, error, CNCLIP_ERROR_FORMAT, "empty tensor offset %" G_GINT64_FORMAT
        " beyond its storage of %" G_GINT64_FORMAT " elements", t.offset, t.storage->numel);
    return NULL;
  }
  t.n_elements = count;

  CnclipPickleValue *value = new_value (u, CNCLIP_PICKLE_TENSOR, sizeof (CnclipPickleTensor),
      error);
  if (value == NULL)
    return NULL;
  CnclipPickleTensor *dst = (CnclipPickleTensor *) (value + 1);
  *dst = t;
  value->v.tensor = dst;
  return value;
}

static gboolean
do_reduce (Unpickler *u, GError **error)
{
  if (!have (u, 2, error))
    return FALSE;
  CnclipPickleValue *args = u->stack[--u->sp];
  CnclipPickleValue *callable = u->stack[--u->sp];
  CnclipPickleValue *result = NULL;

  if (callable->kind != CNCLIP_PICKLE_GLOBAL)
    return fail (u, error, CNCLIP_ERROR_UNSAFE, "calling %s",
        cnclip_pickle_kind_name (callable->kind));
  if (args->kind != CNCLIP_PICKLE_TUPLE)
    return fail (u, error, CNCLIP_ERROR_FORMAT, "arguments are %s, not a tuple",
        cnclip_pickle_kind_name (args->kind));

  switch (callable->v.global) {
    case CNCLIP_PICKLE_GLOBAL_ORDERED_DICT:
      if (args->v.seq.n != 0)
        return fail (u, error, CNCLIP_ERROR_FORMAT, "OrderedDict called with arguments");
      result = new_value (u, CNCLIP_PICKLE_DICT, 0, error);
      if (result == NULL)
        return FALSE;
      result->v.dict.ordered = TRUE;
      break;
    case CNCLIP_PICKLE_GLOBAL_REBUILD_TENSOR_V2:
      result = rebuild_tensor (u, args, error);
      if (result == NULL)
        return FALSE;
      break;
    case CNCLIP_PICKLE_GLOBAL_REBUILD_PARAMETER:
      /* (tensor, requires_grad, backward_hooks): a Parameter is its tensor to us. */
      if (args->v.seq.n != 3 || args->v.seq.items[0]->kind != CNCLIP_PICKLE_TENSOR
          || args->v.seq.items[1]->kind != CNCLIP_PICKLE_BOOL
          || args->v.seq.items[2]->kind != CNCLIP_PICKLE_DICT)
        return fail (u, error, CNCLIP_ERROR_FORMAT,
            "_rebuild_parameter needs (tensor, bool, dict) arguments");
      result = args->v.seq.items[0];
      break;
    default:
      return fail (u, error, CNCLIP_ERROR_UNSAFE, "calling %s is not allowed",
          global_table[callable->v.global].full);
  }
  return push (u, result, error);
}

static gboolean
do_build (Unpickler *u, GError **error)
{
  if (!have (u, 2, error))
    return FALSE;
  CnclipPickleValue *state = u->stack[--u->sp];
  CnclipPickleValue *target = u->stack[u->sp - 1];
  /* torch.save gives an OrderedDict state dict its _metadata attribute this
   * way. On anything else BUILD would run __setstate__: refuse. */
  if (target->kind != CNCLIP_PICKLE_DICT || !target->v.dict.ordered)
    return fail (u, error, CNCLIP_ERROR_UNSAFE, "BUILD on %s (only OrderedDict state is "
        "accepted)", target->kind == CNCLIP_PICKLE_DICT ? "a plain dict" :
        cnclip_pickle_kind_name (target->kind));
  if (state->kind != CNCLIP_PICKLE_DICT)
    return fail (u, error, CNCLIP_ERROR_UNSAFE, "BUILD with %s state",
        cnclip_pickle_kind_name (state->kind));
  target->v.dict.state = state;
  return TRUE;
}

/* One opcode. Returns FALSE on error; sets *stop at STOP. */
static gboolean
step (Unpickler *u, gboolean *stop, GError **error)
{
  guint first = 0;

  switch (u->op) {
    case OP_PROTO:
      if (!need (u, 1, error))
        return FALSE;
      if (u->data[u->pos] > 3)
        return fail (u, error, CNCLIP_ERROR_UNSUPPORTED, "pickle protocol %u is not supported "
            "(torch.save writes protocol 2; re-save without pickle_protocol or convert to "
            "safetensors)", u->data[u->pos]);
      u->pos++;
      return TRUE;
    case OP_STOP:
      if (!have (u, 1, error))
        return FALSE;
      u->pk->root = u->stack[--u->sp];
      *stop = TRUE;
      return TRUE;
    case OP_MARK:
      if (u->n_marks >= CNCLIP_PICKLE_MAX_MARKS)
        return fail (u, error, CNCLIP_ERROR_TOO_LARGE, "more than %d nested MARKs",
            CNCLIP_PICKLE_MAX_MARKS);
      u->marks[u->n_marks++] = u->sp;
      return TRUE;
    case OP_NONE:
      return push_new (u, CNCLIP_PICKLE_NONE, error);
    case OP_NEWTRUE:
      return push_bool (u, TRUE, error);
    case OP_NEWFALSE:
      return push_bool (u, FALSE, error);
    case OP_EMPTY_TUPLE:
      return push_new (u, CNCLIP_PICKLE_TUPLE, error);
    case OP_EMPTY_LIST:
      return push_new (u, CNCLIP_PICKLE_LIST, error);
    case OP_EMPTY_DICT:
      return push_new (u, CNCLIP_PICKLE_DICT, error);
    case OP_BININT:
      if (!need (u, 4, error))
        return FALSE;
      first = read_u32 (u->data + u->pos);
      u->pos += 4;
      return push_int (u, (gint32) first, error);
    case OP_BININT1:
      if (!need (u, 1, error))
        return FALSE;
      return push_int (u, u->data[u->pos++], error);
    case OP_BININT2:
      if (!need (u, 2, error))
        return FALSE;
      u->pos += 2;
      return push_int (u, u->data[u->pos - 2] | (u->data[u->pos - 1] << 8), error);
    case OP_LONG1:
      return do_long1 (u, error);
    case OP_BINFLOAT:
      return do_binfloat (u, error);
    case OP_BINUNICODE:
      return do_binunicode (u, error);
    case OP_GLOBAL:
      return do_global (u, error);
    case OP_TUPLE:
      if (!pop_mark (u, &first, error))
        return FALSE;
      return push (u, make_seq (u, CNCLIP_PICKLE_TUPLE, first, error), error);
    case OP_TUPLE1:
    case OP_TUPLE2:
    case OP_TUPLE3:
      if (!have (u, u->op - OP_TUPLE1 + 1, error))
        return FALSE;
      return push (u, make_seq (u, CNCLIP_PICKLE_TUPLE, u->sp - (u->op - OP_TUPLE1 + 1), error),
          error);
    case OP_APPEND:
      if (!have (u, 2, error))
        return FALSE;
      return append_items (u, u->stack[u->sp - 2], u->sp - 1, error);
    case OP_APPENDS:
      if (!pop_mark (u, &first, error))
        return FALSE;
      if (first == 0 || first - 1 < fence (u))
        return fail (u, error, CNCLIP_ERROR_FORMAT, "stack underflow");
      return append_items (u, u->stack[first - 1], first, error);
    case OP_SETITEM:
      if (!have (u, 3, error))
        return FALSE;
      return set_items (u, u->stack[u->sp - 3], u->sp - 2, error);
    case OP_SETITEMS:
      if (!pop_mark (u, &first, error))
        return FALSE;
      if (first == 0 || first - 1 < fence (u))
        return fail (u, error, CNCLIP_ERROR_FORMAT, "stack underflow");
      return set_items (u, u->stack[first - 1], first, error);
    case OP_BINPUT:
      if (!need (u, 1, error))
        return FALSE;
      return do_put (u, u->data[u->pos++], error);
    case OP_LONG_BINPUT:
      if (!need (u, 4, error))
        return FALSE;
      u->pos += 4;
      return do_put (u, read_u32 (u->data + u->pos - 4), error);
    case OP_BINGET:
      if (!need (u, 1, error))
        return FALSE;
      return do_get (u, u->data[u->pos++], error);
    case OP_LONG_BINGET:
      if (!need (u, 4, error))
        return FALSE;
      u->pos += 4;
      return do_get (u, read_u32 (u->data + u->pos - 4), error);
    case OP_BINPERSID:
      return do_persid (u, error);
    case OP_REDUCE:
      return do_reduce (u, error);
    case OP_BUILD:
      return do_build (u, error);
    case OP_FRAME:
      return fail (u, error, CNCLIP_ERROR_UNSUPPORTED, "framed pickle (protocol 4) is not "
          "supported; re-save with torch.save defaults or convert to safetensors");
    default:
      if (cnclip_pickle_opcode_name (u->op) == NULL)
        return fail (u, error, CNCLIP_ERROR_FORMAT, "invalid opcode 0x%02x", u->op);
      return fail (u, error, CNCLIP_ERROR_UNSAFE, "opcode is not allowed in a weights file");
  }
}

CnclipPickle *
cnclip_pickle_load (const guint8 *data, gsize size, GError **error)
{
  g_return_val_if_fail (data != NULL || size == 0, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  Unpickler u = { .data = data, .size = size };
  u.pk = g_new0 (CnclipPickle, 1);
  u.pk->arena = g_ptr_array_new_with_free_func (value_free);
  u.stack = g_new (CnclipPickleValue *, CNCLIP_PICKLE_MAX_STACK);

  gboolean stop = FALSE, ok = TRUE;
  while (ok && !stop) {
    u.op_pos = u.pos;
    if (u.pos >= u.size) {
      u.op = 0;
      ok = fail (&u, error, CNCLIP_ERROR_FORMAT, "truncated: no STOP opcode");
      break;
    }
    u.op = u.data[u.pos++];
    u.pk->counts[u.op]++;
    ok = step (&u, &stop, error);
  }

  g_free (u.stack);
  g_free (u.memo);
  if (!ok) {
    cnclip_pickle_free (u.pk);
    return NULL;
  }
  return u.pk;
}
