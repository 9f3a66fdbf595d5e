/* pickle.h: a restricted unpickler for the data.pkl of torch.save files (internal).
 *
 * This is not a Python unpickler. It understands the protocol-2 subset that
 * torch.save writes for state dicts and builds a tree of plain values. The
 * only "callables" are tokens for an allow-list of globals, and REDUCE only
 * accepts a few (callable, arguments) shapes, which it turns into values
 * (tensor records, empty OrderedDicts). Nothing is imported or executed:
 * every other global or code-running opcode is refused with
 * CNCLIP_ERROR_UNSAFE.
 *
 * Accepted opcodes: PROTO (protocols 0..3), STOP, MARK, EMPTY_DICT,
 * EMPTY_LIST, EMPTY_TUPLE, TUPLE, TUPLE1, TUPLE2, TUPLE3, NONE, NEWTRUE,
 * NEWFALSE, BININT, BININT1, BININT2, LONG1 (<= 8 bytes), BINFLOAT,
 * BINUNICODE, GLOBAL, REDUCE, BUILD, BINPERSID, BINPUT, LONG_BINPUT, BINGET,
 * LONG_BINGET, APPEND, APPENDS, SETITEM, SETITEMS.
 *
 * Accepted globals: collections.OrderedDict, torch._utils._rebuild_tensor_v2,
 * torch._utils._rebuild_parameter and the storage classes torch.FloatStorage,
 * DoubleStorage, HalfStorage, BFloat16Storage, LongStorage, IntStorage,
 * CharStorage, ByteStorage, BoolStorage.
 *
 * Values are owned by the CnclipPickle (an arena freed at once), so no error
 * path leaks and shared or even cyclic references are harmless. Work and
 * memory are linear in the input size, bounded by the limits below.
 */
#ifndef CNCLIP_PICKLE_H
#define CNCLIP_PICKLE_H

#include <glib.h>
#include "weights.h"

G_BEGIN_DECLS

/* Limits; exceeding one is CNCLIP_ERROR_TOO_LARGE. */
#define CNCLIP_PICKLE_MAX_STACK 10000
#define CNCLIP_PICKLE_MAX_MARKS 1000
#define CNCLIP_PICKLE_MAX_MEMO 1000000
#define CNCLIP_PICKLE_MAX_VALUES 2000000
/* Memory of all values together (a real 401-tensor state dict needs ~2 MB). */
#define CNCLIP_PICKLE_MAX_BYTES (64u * 1024 * 1024)

typedef enum
{
  CNCLIP_PICKLE_NONE,
  CNCLIP_PICKLE_BOOL,
  CNCLIP_PICKLE_INT,
  CNCLIP_PICKLE_FLOAT,
  CNCLIP_PICKLE_STR,
  CNCLIP_PICKLE_TUPLE,
  CNCLIP_PICKLE_LIST,
  CNCLIP_PICKLE_DICT,            /* dict or OrderedDict (see .ordered) */
  CNCLIP_PICKLE_GLOBAL,          /* a token for one allowed global */
  CNCLIP_PICKLE_STORAGE,         /* a BINPERSID storage reference */
  CNCLIP_PICKLE_TENSOR,          /* a _rebuild_tensor_v2 record */
} CnclipPickleKind;

typedef enum
{
  CNCLIP_PICKLE_GLOBAL_ORDERED_DICT,
  CNCLIP_PICKLE_GLOBAL_REBUILD_TENSOR_V2,
  CNCLIP_PICKLE_GLOBAL_REBUILD_PARAMETER,
  CNCLIP_PICKLE_GLOBAL_FLOAT_STORAGE,
  CNCLIP_PICKLE_GLOBAL_DOUBLE_STORAGE,
  CNCLIP_PICKLE_GLOBAL_HALF_STORAGE,
  CNCLIP_PICKLE_GLOBAL_BFLOAT16_STORAGE,
  CNCLIP_PICKLE_GLOBAL_LONG_STORAGE,
  CNCLIP_PICKLE_GLOBAL_INT_STORAGE,
  CNCLIP_PICKLE_GLOBAL_CHAR_STORAGE,
  CNCLIP_PICKLE_GLOBAL_BYTE_STORAGE,
  CNCLIP_PICKLE_GLOBAL_BOOL_STORAGE,
  CNCLIP_PICKLE_N_GLOBALS
} CnclipPickleGlobal;

typedef struct _CnclipPickleValue CnclipPickleValue;

typedef struct
{
  CnclipPickleGlobal type;       /* one of the *_STORAGE globals */
  CnclipDType dtype;
  const char *key;               /* the K of zip entry P/data/K */
  const char *location;          /* "cpu", "cuda:0", ...: informational */
  gint64 numel;                  /* elements of the whole storage */
} CnclipPickleStorage;

/* Validated: offset >= 0, sizes and strides >= 0, and for a non-empty tensor
 * offset + sum ((size[k] - 1) * stride[k]) < storage->numel. */
typedef struct
{
  const CnclipPickleStorage *storage;
  gint64 offset;                 /* in elements */
  int ndim;
  gint64 size[CNCLIP_MAX_DIMS];
  gint64 stride[CNCLIP_MAX_DIMS];
  gint64 n_elements;
  gboolean requires_grad;
} CnclipPickleTensor;

struct _CnclipPickleValue
{
  CnclipPickleKind kind;
  union
  {
    gboolean boolean;
    gint64 integer;
    double real;
    struct
    {
      const char *str;           /* NUL-terminated, valid UTF-8 without NUL */
      gsize len;
    } str;
    struct
    {
      CnclipPickleValue **items;
      guint n;
      guint cap;
    } seq;                       /* TUPLE, LIST */
    struct
    {
      CnclipPickleValue **items; /* key 2i, value 2i + 1, in insertion order */
      guint n_pairs;
      guint cap;
      gboolean ordered;          /* made by collections.OrderedDict */
      const CnclipPickleValue *state;   /* BUILD state (OrderedDict only), ignored */
    } dict;
    CnclipPickleGlobal global;
    const CnclipPickleStorage *storage;
    const CnclipPickleTensor *tensor;
  } v;
};

typedef struct _CnclipPickle CnclipPickle;

/* Unpickles @data (@size bytes; only read during the call, every string is
 * copied into the result). Stops at the first STOP; later bytes are
 * ignored, as Python does.
 * Errors: CNCLIP_ERROR_FORMAT (truncated or malformed), CNCLIP_ERROR_UNSAFE
 * (an opcode or global outside the allow-list, REDUCE/BUILD on anything but
 * the accepted shapes), CNCLIP_ERROR_UNSUPPORTED (protocol >= 4, FRAME,
 * integers wider than 64 bits, more than 8 dimensions),
 * CNCLIP_ERROR_TOO_LARGE (a limit above). Messages give the byte offset.
 * Thread-safe (no shared state). Free with cnclip_pickle_free(). */
CnclipPickle *cnclip_pickle_load (const guint8 *data, gsize size, GError **error);
void cnclip_pickle_free (CnclipPickle *pickle);

/* The object STOP returned; owned by @pickle. */
const CnclipPickleValue *cnclip_pickle_get_root (const CnclipPickle *pickle);

/* How often @opcode was executed (for diagnostics and tests). */
guint cnclip_pickle_get_opcode_count (const CnclipPickle *pickle, guint8 opcode);

/* Bit (1 << g) is set for every CnclipPickleGlobal g a GLOBAL opcode named. */
guint32 cnclip_pickle_get_globals (const CnclipPickle *pickle);

/* "torch.FloatStorage" style names; NULL for an invalid value. */
const char *cnclip_pickle_global_name (CnclipPickleGlobal global);

/* The pickletools name of @opcode ("BINUNICODE"), NULL for a byte that is
 * no pickle opcode. */
const char *cnclip_pickle_opcode_name (guint8 opcode);

/* "a dict", "an int", "None", ... for messages. */
const char *cnclip_pickle_kind_name (CnclipPickleKind kind);

/* The value of the last pair of @dict whose key is the string @key, or NULL. */
const CnclipPickleValue *cnclip_pickle_dict_lookup (const CnclipPickleValue *dict,
    const char *key);

G_END_DECLS

#endif /* CNCLIP_PICKLE_H */
