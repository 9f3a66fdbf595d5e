/* test-pickle.c: opcode-level tests of the restricted unpickler (pickle.c).
 *
 * Tables of hand-assembled pickles: each either unpickles to a value whose
 * Python-like rendering is given, or fails with a given CNCLIP_ERROR code.
 * Opcode bytes are written as in pickletools: '}' EMPTY_DICT, '(' MARK,
 * 'X' BINUNICODE (u32 length), 'K' BININT1, 'M' BININT2, 'J' BININT,
 * 'q'/'r' BINPUT/LONG_BINPUT, 'h'/'j' BINGET/LONG_BINGET, 'c' GLOBAL,
 * 'R' REDUCE, 'Q' BINPERSID, 't' TUPLE, 's'/'u' SETITEM(S), 'a'/'e'
 * APPEND(S), 'b' BUILD, '.' STOP, 0x80 PROTO, 0x85..0x87 TUPLE1..3,
 * 0x88/0x89 NEWTRUE/NEWFALSE, 0x8a LONG1, 'G' BINFLOAT, 'N' NONE.
 */
#include "config.h"

#include <string.h>

#include "test-util.h"
#include "pickle.h"

/* A byte string with an explicit length (pickles contain NUL bytes). */
#define B(s) (const guint8 *) (s), sizeof (s) - 1

/* ------------------------------------------------------------------------ */
/* Rendering values as text, close to Python's repr                         */

static void
describe_into (GString *out, const CnclipPickleValue *v, int depth)
{
  if (depth > 16) {
    g_string_append (out, "...");
    return;
  }
  switch (v->kind) {
    case CNCLIP_PICKLE_NONE:
      g_string_append (out, "None");
      break;
    case CNCLIP_PICKLE_BOOL:
      g_string_append (out, v->v.boolean ? "True" : "False");
      break;
    case CNCLIP_PICKLE_INT:
      g_string_append_printf (out, "%" G_GINT64_FORMAT, v->v.integer);
      break;
    case CNCLIP_PICKLE_FLOAT:
      g_string_append_printf (out, "%g", v->v.real);
      break;
    case CNCLIP_PICKLE_STR:
      g_string_append_printf (out, "'%s'", v->v.str.str);
      break;
    case CNCLIP_PICKLE_TUPLE:
    case CNCLIP_PICKLE_LIST:
      g_string_append_c (out, v->kind == CNCLIP_PICKLE_TUPLE ? '(' : '[');
      for (guint i = 0; i < v->v.seq.n; i++) {
        if (i > 0)
          g_string_append (out, ", ");
        describe_into (out, v->v.seq.items[i], depth + 1);
      }
      if (v->kind == CNCLIP_PICKLE_TUPLE && v->v.seq.n == 1)
        g_string_append_c (out, ',');
      g_string_append_c (out, v->kind == CNCLIP_PICKLE_TUPLE ? ')' : ']');
      break;
    case CNCLIP_PICKLE_DICT:
      g_string_append (out, v->v.dict.ordered ? "OrderedDict{" : "{");
      for (guint i = 0; i < v->v.dict.n_pairs; i++) {
        if (i > 0)
          g_string_append (out, ", ");
        describe_into (out, v->v.dict.items[2 * i], depth + 1);
        g_string_append (out, ": ");
        describe_into (out, v->v.dict.items[2 * i + 1], depth + 1);
      }
      g_string_append_c (out, '}');
      if (v->v.dict.state) {
        g_string_append (out, " state=");
        describe_into (out, v->v.dict.state, depth + 1);
      }
      break;
    case CNCLIP_PICKLE_GLOBAL:
      g_string_append (out, cnclip_pickle_global_name (v->v.global));
      break;
    case CNCLIP_PICKLE_STORAGE:
      g_string_append_printf (out, "storage(%s, '%s', '%s', %" G_GINT64_FORMAT ")",
          cnclip_dtype_to_string (v->v.storage->dtype), v->v.storage->key,
          v->v.storage->location, v->v.storage->numel);
      break;
    case CNCLIP_PICKLE_TENSOR: {
      const CnclipPickleTensor *t = v->v.tensor;
      g_string_append_printf (out, "tensor(%s, '%s', off=%" G_GINT64_FORMAT ", size=(",
          cnclip_dtype_to_string (t->storage->dtype), t->storage->key, t->offset);
      for (int k = 0; k < t->ndim; k++)
        g_string_append_printf (out, "%s%" G_GINT64_FORMAT, k ? "," : "", t->size[k]);
      g_string_append (out, "), stride=(");
      for (int k = 0; k < t->ndim; k++)
        g_string_append_printf (out, "%s%" G_GINT64_FORMAT, k ? "," : "", t->stride[k]);
      g_string_append_printf (out, "), n=%" G_GINT64_FORMAT "%s)", t->n_elements,
          t->requires_grad ? ", grad" : "");
      break;
    }
  }
}

static char *
describe (const CnclipPickleValue *v)
{
  GString *out = g_string_new (NULL);
  describe_into (out, v, 0);
  return g_string_free (out, FALSE);
}

/* ------------------------------------------------------------------------ */
/* Tables                                                                   */

typedef struct
{
  const char *name;
  const guint8 *bytes;
  gsize len;
  const char *expected;          /* rendering of the result */
} OkCase;

/* Building blocks. */
#define STORAGE_F32_6 \
    "(X\x07\0\0\0storagectorch\nFloatStorage\nX\x01\0\0\0" "0X\x03\0\0\0cpuK\x06tQ"
#define REBUILD "ctorch._utils\n_rebuild_tensor_v2\n"
#define ODICT "ccollections\nOrderedDict\n)R"

static const OkCase ok_cases[] = {
  { "empty dict", B ("\x80\x02}."), "{}" },
  { "no PROTO (protocol 1 stream)", B ("}."), "{}" },
  { "protocol 3", B ("\x80\x03}."), "{}" },
  { "None True False", B ("\x80\x02N\x88\x89\x87."), "(None, True, False)" },
  { "BININT1", B ("K\xff."), "255" },
  { "BININT2", B ("M\xff\xff."), "65535" },
  { "BININT negative", B ("J\xff\xff\xff\xff."), "-1" },
  { "BININT max", B ("J\xff\xff\xff\x7f."), "2147483647" },
  { "LONG1 zero bytes", B ("\x8a\x00."), "0" },
  { "LONG1 -1", B ("\x8a\x01\xff."), "-1" },
  { "LONG1 128", B ("\x8a\x02\x80\x00."), "128" },
  { "LONG1 int64 max", B ("\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7f."), "9223372036854775807" },
  { "LONG1 int64 min", B ("\x8a\x08\0\0\0\0\0\0\0\x80."), "-9223372036854775808" },
  { "BINFLOAT", B ("G\x3f\xf8\0\0\0\0\0\0."), "1.5" },
  { "BINUNICODE", B ("X\x03\0\0\0abc."), "'abc'" },
  { "BINUNICODE empty", B ("X\0\0\0\0."), "''" },
  { "BINUNICODE CJK", B ("X\x06\0\0\0\xe4\xb8\xad\xe6\x96\x87."), "'中文'" },
  { "EMPTY_TUPLE", B (")."), "()" },
  { "TUPLE1", B ("K\x01\x85."), "(1,)" },
  { "TUPLE2", B ("K\x01K\x02\x86."), "(1, 2)" },
  { "TUPLE3", B ("K\x01K\x02K\x03\x87."), "(1, 2, 3)" },
  { "MARK TUPLE", B ("(K\x01K\x02K\x03K\x04t."), "(1, 2, 3, 4)" },
  { "MARK TUPLE empty", B ("(t."), "()" },
  { "nested tuples", B ("(K\x01(K\x02\x85t\x86."), "(1, ((2,),))" },
  { "EMPTY_LIST APPEND", B ("]K\x01" "aK\x02" "a."), "[1, 2]" },
  { "APPENDS", B ("](K\x01K\x02K\x03" "e."), "[1, 2, 3]" },
  { "APPENDS empty", B ("](e."), "[]" },
  { "SETITEM", B ("}X\x01\0\0\0" "aK\x01s."), "{'a': 1}" },
  { "SETITEMS", B ("}(X\x01\0\0\0" "aK\x01X\x01\0\0\0" "bK\x02u."), "{'a': 1, 'b': 2}" },
  { "SETITEMS int and tuple keys", B ("}(K\x01N)K\x02u."), "{1: None, (): 2}" },
  { "memo BINPUT BINGET", B ("X\x01\0\0\0xq\x00h\x00\x86."), "('x', 'x')" },
  { "memo LONG_BINPUT LONG_BINGET", B ("K\x07r\x10\x27\0\0j\x10\x27\0\0\x86."), "(7, 7)" },
  { "list containing itself", B ("]q\x00h\x00" "a."), "[[[[[[[[[[[[[[[[[...]]]]]]]]]]]]]]]]]" },
  { "OrderedDict()", B (ODICT "."), "OrderedDict{}" },
  { "OrderedDict with BUILD state", B (ODICT "}X\x09\0\0\0_metadataK\x01sb."),
    "OrderedDict{} state={'_metadata': 1}" },
  { "storage", B (STORAGE_F32_6 "."), "storage(F32, '0', 'cpu', 6)" },
  { "tensor [2,3]",
    B (REBUILD "(" STORAGE_F32_6 "K\x00K\x02K\x03\x86K\x03K\x01\x86\x89" ODICT "tR."),
    "tensor(F32, '0', off=0, size=(2,3), stride=(3,1), n=6)" },
  { "tensor transposed view",
    B (REBUILD "(" STORAGE_F32_6 "K\x00K\x03K\x02\x86K\x01K\x03\x86\x89" ODICT "tR."),
    "tensor(F32, '0', off=0, size=(3,2), stride=(1,3), n=6)" },
  { "tensor scalar at the last element",
    B (REBUILD "(" STORAGE_F32_6 "K\x05))\x89" ODICT "tR."),
    "tensor(F32, '0', off=5, size=(), stride=(), n=1)" },
  { "tensor empty at the end",
    B (REBUILD "(" STORAGE_F32_6 "K\x06K\x00\x85K\x01\x85\x89" ODICT "tR."),
    "tensor(F32, '0', off=6, size=(0), stride=(1), n=0)" },
  { "tensor stride 0 (expanded)",
    B (REBUILD "(" STORAGE_F32_6 "K\x00K\x04\x85K\x00\x85\x89" ODICT "tR."),
    "tensor(F32, '0', off=0, size=(4), stride=(0), n=4)" },
  { "tensor requires_grad",
    B (REBUILD "(" STORAGE_F32_6 "K\x00K\x06\x85K\x01\x85\x88}tR."),
    "tensor(F32, '0', off=0, size=(6), stride=(1), n=6, grad)" },
  { "tensor with empty metadata",
    B (REBUILD "(" STORAGE_F32_6 "K\x00K\x06\x85K\x01\x85\x89" ODICT "}tR."),
    "tensor(F32, '0', off=0, size=(6), stride=(1), n=6)" },
  { "tensor 8 dims", B (REBUILD "(" STORAGE_F32_6 "K\x00(K\x01K\x01K\x01K\x01K\x01K\x01K\x02K\x03t"
          "(K\x06K\x06K\x06K\x06K\x06K\x06K\x03K\x01t\x89" ODICT "tR."),
    "tensor(F32, '0', off=0, size=(1,1,1,1,1,1,2,3), stride=(6,6,6,6,6,6,3,1), n=6)" },
  { "_rebuild_parameter", B ("ctorch._utils\n_rebuild_parameter\n(" REBUILD "(" STORAGE_F32_6
          "K\x00K\x06\x85K\x01\x85\x89" ODICT "tR\x88" ODICT "tR."),
    "tensor(F32, '0', off=0, size=(6), stride=(1), n=6)" },
  { "every storage class",
    B ("(ctorch\nFloatStorage\nctorch\nDoubleStorage\nctorch\nHalfStorage\n"
        "ctorch\nBFloat16Storage\nctorch\nLongStorage\nctorch\nIntStorage\n"
        "ctorch\nCharStorage\nctorch\nByteStorage\nctorch\nBoolStorage\nt."),
    "(torch.FloatStorage, torch.DoubleStorage, torch.HalfStorage, torch.BFloat16Storage, "
    "torch.LongStorage, torch.IntStorage, torch.CharStorage, torch.ByteStorage, "
    "torch.BoolStorage)" },
  { "bytes after STOP are ignored", B ("K\x01.garbage\xff"), "1" },
};

/* Test that valid pickles built from every accepted opcode give the expected values. */
static void
test_pickle_ok_table (void)
{
  for (gsize i = 0; i < G_N_ELEMENTS (ok_cases); i++) {
    const OkCase *c = &ok_cases[i];
    if (c->expected == NULL)
      continue;
    GError *error = NULL;
    CnclipPickle *pk = cnclip_pickle_load (c->bytes, c->len, &error);
    if (error)
      g_printerr ("case '%s': %s\n", c->name, error->message);
    g_assert_no_error (error);
    g_assert_nonnull (pk);
    char *got = describe (cnclip_pickle_get_root (pk));
    if (g_strcmp0 (got, c->expected) != 0)
      g_printerr ("case '%s': got %s\n", c->name, got);
    g_assert_cmpstr (got, ==, c->expected);
    g_free (got);
    cnclip_pickle_free (pk);
  }
}

typedef struct
{
  const char *name;
  const guint8 *bytes;
  gsize len;
  CnclipError code;
  const char *message_part;      /* must occur in the message (NULL: no check) */
} ErrCase;

static const ErrCase err_cases[] = {
  /* Framing and truncation. */
  { "empty input", B (""), CNCLIP_ERROR_FORMAT, "no STOP" },
  { "no STOP", B ("\x80\x02}"), CNCLIP_ERROR_FORMAT, "no STOP" },
  { "PROTO without argument", B ("\x80"), CNCLIP_ERROR_FORMAT, "truncated" },
  { "protocol 4", B ("\x80\x04}."), CNCLIP_ERROR_UNSUPPORTED, "protocol 4" },
  { "protocol 5", B ("\x80\x05}."), CNCLIP_ERROR_UNSUPPORTED, "protocol 5" },
  { "FRAME", B ("\x95\x08\0\0\0\0\0\0\0}."), CNCLIP_ERROR_UNSUPPORTED, "FRAME" },
  { "invalid opcode 0xff", B ("\xff."), CNCLIP_ERROR_FORMAT, "invalid opcode 0xff" },
  { "invalid opcode 0x00", B ("\0."), CNCLIP_ERROR_FORMAT, "invalid opcode 0x00" },
  { "BININT truncated", B ("J\x01\x02"), CNCLIP_ERROR_FORMAT, "truncated" },
  { "BININT1 truncated", B ("K"), CNCLIP_ERROR_FORMAT, "truncated" },
  { "BININT2 truncated", B ("M\x01"), CNCLIP_ERROR_FORMAT, "truncated" },
  { "LONG1 truncated", B ("\x8a\x04\x01\x02"), CNCLIP_ERROR_FORMAT, "truncated" },
  { "LONG1 wider than 64 bits", B ("\x8a\x09\0\0\0\0\0\0\0\0\x01."), CNCLIP_ERROR_UNSUPPORTED,
    "64 bits" },
  { "BINFLOAT truncated", B ("G\x3f\xf8\0"), CNCLIP_ERROR_FORMAT, "truncated" },
  { "BINUNICODE length beyond the data", B ("X\x10\0\0\0abc."), CNCLIP_ERROR_FORMAT,
    "truncated" },
  { "BINUNICODE length 4 GiB", B ("X\xff\xff\xff\xff" "abc."), CNCLIP_ERROR_FORMAT, "truncated" },
  { "BINUNICODE invalid UTF-8", B ("X\x02\0\0\0\xc3\x28."), CNCLIP_ERROR_FORMAT, "UTF-8" },
  { "BINUNICODE overlong UTF-8", B ("X\x02\0\0\0\xc0\xaf."), CNCLIP_ERROR_FORMAT, "UTF-8" },
  { "BINUNICODE surrogate", B ("X\x03\0\0\0\xed\xa0\x80."), CNCLIP_ERROR_FORMAT, "UTF-8" },
  { "BINUNICODE with NUL", B ("X\x03\0\0\0a\0b."), CNCLIP_ERROR_FORMAT, "NUL" },
  { "GLOBAL without newline", B ("ctorch FloatStorage."), CNCLIP_ERROR_FORMAT, "global name" },
  { "GLOBAL name overlong",
    B ("ctorch\n"
       "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
       "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
       "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
       "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n."),
    CNCLIP_ERROR_FORMAT, "overlong" },

  /* Forbidden globals: refused at GLOBAL, before anything could be called. */
  { "os.system", B ("cos\nsystem\n."), CNCLIP_ERROR_UNSAFE, "'os.system'" },
  { "posix.system", B ("cposix\nsystem\n."), CNCLIP_ERROR_UNSAFE, "'posix.system'" },
  { "nt.system", B ("cnt\nsystem\n."), CNCLIP_ERROR_UNSAFE, "'nt.system'" },
  { "builtins.eval", B ("cbuiltins\neval\n."), CNCLIP_ERROR_UNSAFE, "'builtins.eval'" },
  { "builtins.exec", B ("cbuiltins\nexec\n."), CNCLIP_ERROR_UNSAFE, "'builtins.exec'" },
  { "__builtin__.eval", B ("c__builtin__\neval\n."), CNCLIP_ERROR_UNSAFE, "__builtin__.eval" },
  { "builtins.getattr", B ("cbuiltins\ngetattr\n."), CNCLIP_ERROR_UNSAFE, "getattr" },
  { "subprocess.Popen", B ("csubprocess\nPopen\n."), CNCLIP_ERROR_UNSAFE, "subprocess.Popen" },
  { "torch.load", B ("ctorch\nload\n."), CNCLIP_ERROR_UNSAFE, "'torch.load'" },
  { "torch.storage._load_from_bytes", B ("ctorch.storage\n_load_from_bytes\n."),
    CNCLIP_ERROR_UNSAFE, "_load_from_bytes" },
  { "torch._utils._rebuild_tensor (v1)", B ("ctorch._utils\n_rebuild_tensor\n."),
    CNCLIP_ERROR_UNSAFE, "_rebuild_tensor'" },
  { "numpy reconstruct", B ("cnumpy.core.multiarray\n_reconstruct\n."), CNCLIP_ERROR_UNSAFE,
    "numpy" },
  { "collections.defaultdict", B ("ccollections\ndefaultdict\n."), CNCLIP_ERROR_UNSAFE,
    "defaultdict" },
  { "allowed name, wrong module", B ("cos\nOrderedDict\n."), CNCLIP_ERROR_UNSAFE,
    "os.OrderedDict" },
  { "prefix of an allowed name", B ("ctorch\nFloatStorag\n."), CNCLIP_ERROR_UNSAFE,
    "FloatStorag'" },
  { "allowed name with a trailing space", B ("ctorch\nFloatStorage \n."), CNCLIP_ERROR_UNSAFE,
    NULL },
  { "global name with control bytes", B ("cos\nsys\x01tem\n."), CNCLIP_ERROR_UNSAFE, "\\001" },

  /* Opcodes outside the allow-list. */
  { "STACK_GLOBAL", B ("X\x02\0\0\0osX\x06\0\0\0system\x93."), CNCLIP_ERROR_UNSAFE,
    "STACK_GLOBAL" },
  { "INST", B ("(ios\nsystem\n."), CNCLIP_ERROR_UNSAFE, "INST" },
  { "OBJ", B ("(K\x01o."), CNCLIP_ERROR_UNSAFE, "OBJ" },
  { "NEWOBJ", B ("ccollections\nOrderedDict\n)\x81."), CNCLIP_ERROR_UNSAFE, "NEWOBJ" },
  { "NEWOBJ_EX", B ("ccollections\nOrderedDict\n)}\x92."), CNCLIP_ERROR_UNSAFE, "NEWOBJ_EX" },
  { "EXT1", B ("\x82\x01."), CNCLIP_ERROR_UNSAFE, "EXT1" },
  { "EXT2", B ("\x83\x01\0."), CNCLIP_ERROR_UNSAFE, "EXT2" },
  { "EXT4", B ("\x84\x01\0\0\0."), CNCLIP_ERROR_UNSAFE, "EXT4" },
  { "PERSID", B ("P0\n."), CNCLIP_ERROR_UNSAFE, "PERSID" },
  { "PUT and GET", B ("K\x01p0\ng0\n."), CNCLIP_ERROR_UNSAFE, "PUT" },
  { "POP", B ("K\x01K\x02" "0."), CNCLIP_ERROR_UNSAFE, "POP" },
  { "POP_MARK", B ("(K\x01" "1."), CNCLIP_ERROR_UNSAFE, "POP_MARK" },
  { "DUP", B ("K\x01" "2."), CNCLIP_ERROR_UNSAFE, "DUP" },
  { "LIST", B ("(l."), CNCLIP_ERROR_UNSAFE, "LIST" },
  { "DICT", B ("(d."), CNCLIP_ERROR_UNSAFE, "DICT" },
  { "INT", B ("I1\n."), CNCLIP_ERROR_UNSAFE, "INT" },
  { "LONG", B ("L1L\n."), CNCLIP_ERROR_UNSAFE, "LONG" },
  { "LONG4", B ("\x8b\x01\0\0\0\x01."), CNCLIP_ERROR_UNSAFE, "LONG4" },
  { "FLOAT", B ("F1.0\n."), CNCLIP_ERROR_UNSAFE, "FLOAT" },
  { "STRING", B ("S'a'\n."), CNCLIP_ERROR_UNSAFE, "STRING" },
  { "BINSTRING", B ("T\x01\0\0\0" "a."), CNCLIP_ERROR_UNSAFE, "BINSTRING" },
  { "SHORT_BINSTRING", B ("U\x01" "a."), CNCLIP_ERROR_UNSAFE, "SHORT_BINSTRING" },
  { "UNICODE", B ("Va\n."), CNCLIP_ERROR_UNSAFE, "UNICODE" },
  { "SHORT_BINUNICODE", B ("\x8c\x01" "a."), CNCLIP_ERROR_UNSAFE, "SHORT_BINUNICODE" },
  { "BINUNICODE8", B ("\x8d\x01\0\0\0\0\0\0\0" "a."), CNCLIP_ERROR_UNSAFE, "BINUNICODE8" },
  { "BINBYTES", B ("B\x01\0\0\0" "a."), CNCLIP_ERROR_UNSAFE, "BINBYTES" },
  { "SHORT_BINBYTES", B ("C\x01" "a."), CNCLIP_ERROR_UNSAFE, "SHORT_BINBYTES" },
  { "BINBYTES8", B ("\x8e\x01\0\0\0\0\0\0\0" "a."), CNCLIP_ERROR_UNSAFE, "BINBYTES8" },
  { "BYTEARRAY8", B ("\x96\x01\0\0\0\0\0\0\0" "a."), CNCLIP_ERROR_UNSAFE, "BYTEARRAY8" },
  { "EMPTY_SET", B ("\x8f."), CNCLIP_ERROR_UNSAFE, "EMPTY_SET" },
  { "ADDITEMS", B ("\x8f(K\x01\x90."), CNCLIP_ERROR_UNSAFE, "EMPTY_SET" },
  { "FROZENSET", B ("(\x91."), CNCLIP_ERROR_UNSAFE, "FROZENSET" },
  { "MEMOIZE", B ("K\x01\x94."), CNCLIP_ERROR_UNSAFE, "MEMOIZE" },
  { "NEXT_BUFFER", B ("\x97."), CNCLIP_ERROR_UNSAFE, "NEXT_BUFFER" },
  { "READONLY_BUFFER", B ("\x98."), CNCLIP_ERROR_UNSAFE, "READONLY_BUFFER" },

  /* REDUCE and BUILD accept only the allowed shapes. */
  { "REDUCE on a string", B ("X\x01\0\0\0" "a)R."), CNCLIP_ERROR_UNSAFE, "calling a str" },
  { "REDUCE on a storage class", B ("ctorch\nFloatStorage\n)R."), CNCLIP_ERROR_UNSAFE,
    "torch.FloatStorage" },
  { "REDUCE on a tensor rebuilt value",
    B (REBUILD "(" STORAGE_F32_6 "K\x00K\x06\x85K\x01\x85\x89" ODICT "tR)R."),
    CNCLIP_ERROR_UNSAFE, "calling a tensor" },
  { "REDUCE with a list of arguments", B ("ccollections\nOrderedDict\n]R."), CNCLIP_ERROR_FORMAT,
    "not a tuple" },
  { "OrderedDict with arguments", B ("ccollections\nOrderedDict\n)\x85R."), CNCLIP_ERROR_FORMAT,
    "arguments" },
  { "REDUCE underflow", B (")R."), CNCLIP_ERROR_FORMAT, "underflow" },
  { "BUILD on a plain dict", B ("}}b."), CNCLIP_ERROR_UNSAFE, "plain dict" },
  { "BUILD on a list", B ("]}b."), CNCLIP_ERROR_UNSAFE, "BUILD on a list" },
  { "BUILD on a tensor",
    B (REBUILD "(" STORAGE_F32_6 "K\x00K\x06\x85K\x01\x85\x89" ODICT "tR}b."), CNCLIP_ERROR_UNSAFE,
    "tensor" },
  { "BUILD with a tuple state", B (ODICT ")b."), CNCLIP_ERROR_UNSAFE, "tuple state" },

  /* Persistent ids. */
  { "BINPERSID of a string", B ("X\x01\0\0\0" "0Q."), CNCLIP_ERROR_FORMAT, "persistent id" },
  { "BINPERSID 4-tuple", B ("(X\x07\0\0\0storagectorch\nFloatStorage\nX\x01\0\0\0" "0K\x06tQ."),
    CNCLIP_ERROR_FORMAT, "persistent id" },
  { "BINPERSID 'module' record",
    B ("(X\x06\0\0\0modulectorch\nFloatStorage\nX\x01\0\0\0" "0X\x03\0\0\0cpuK\x06tQ."),
    CNCLIP_ERROR_FORMAT, "'storage'" },
  { "BINPERSID type not a storage",
    B ("(X\x07\0\0\0storageccollections\nOrderedDict\nX\x01\0\0\0" "0X\x03\0\0\0cpuK\x06tQ."),
    CNCLIP_ERROR_FORMAT, "storage class" },
  { "BINPERSID empty key",
    B ("(X\x07\0\0\0storagectorch\nFloatStorage\nX\0\0\0\0X\x03\0\0\0cpuK\x06tQ."),
    CNCLIP_ERROR_FORMAT, "key" },
  { "BINPERSID key is an int",
    B ("(X\x07\0\0\0storagectorch\nFloatStorage\nK\x00X\x03\0\0\0cpuK\x06tQ."),
    CNCLIP_ERROR_FORMAT, "key" },
  { "BINPERSID location is None",
    B ("(X\x07\0\0\0storagectorch\nFloatStorage\nX\x01\0\0\0" "0NK\x06tQ."),
    CNCLIP_ERROR_FORMAT, "location" },
  { "BINPERSID negative numel",
    B ("(X\x07\0\0\0storagectorch\nFloatStorage\nX\x01\0\0\0" "0X\x03\0\0\0cpu"
       "J\xff\xff\xff\xfftQ."),
    CNCLIP_ERROR_FORMAT, "size" },
  { "BINPERSID numel overflows bytes",
    B ("(X\x07\0\0\0storagectorch\nFloatStorage\nX\x01\0\0\0" "0X\x03\0\0\0cpu"
       "\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x3ftQ."),
    CNCLIP_ERROR_FORMAT, "overflows" },
  { "BINPERSID on an empty stack", B ("Q."), CNCLIP_ERROR_FORMAT, "underflow" },

  /* _rebuild_tensor_v2 arguments. */
  { "rebuild: 5 arguments", B (REBUILD "(" STORAGE_F32_6 "K\x00K\x06\x85K\x01\x85\x89tR."),
    CNCLIP_ERROR_FORMAT, "6 arguments" },
  { "rebuild: 8 arguments",
    B (REBUILD "(" STORAGE_F32_6 "K\x00K\x06\x85K\x01\x85\x89}}}tR."), CNCLIP_ERROR_FORMAT,
    "6 arguments" },
  { "rebuild: storage is a str",
    B (REBUILD "(X\x01\0\0\0" "0K\x00K\x06\x85K\x01\x85\x89}tR."), CNCLIP_ERROR_FORMAT, "storage" },
  { "rebuild: negative offset",
    B (REBUILD "(" STORAGE_F32_6 "J\xff\xff\xff\xffK\x06\x85K\x01\x85\x89}tR."),
    CNCLIP_ERROR_FORMAT, "offset" },
  { "rebuild: negative size",
    B (REBUILD "(" STORAGE_F32_6 "K\x00J\xfe\xff\xff\xff\x85K\x01\x85\x89}tR."),
    CNCLIP_ERROR_FORMAT, "size[0]" },
  { "rebuild: negative stride",
    B (REBUILD "(" STORAGE_F32_6 "K\x05K\x06\x85J\xff\xff\xff\xff\x85\x89}tR."),
    CNCLIP_ERROR_FORMAT, "stride[0]" },
  { "rebuild: size is a list", B (REBUILD "(" STORAGE_F32_6 "K\x00]K\x01\x85\x89}tR."),
    CNCLIP_ERROR_FORMAT, "not a tuple" },
  { "rebuild: size element is a bool",
    B (REBUILD "(" STORAGE_F32_6 "K\x00\x88\x85K\x01\x85\x89}tR."), CNCLIP_ERROR_FORMAT,
    "size[0]" },
  { "rebuild: sizes and strides differ in length",
    B (REBUILD "(" STORAGE_F32_6 "K\x00K\x02K\x03\x86K\x01\x85\x89}tR."), CNCLIP_ERROR_FORMAT,
    "2 sizes but 1 strides" },
  { "rebuild: 9 dimensions",
    B (REBUILD "(" STORAGE_F32_6 "K\x00(K\x01K\x01K\x01K\x01K\x01K\x01K\x01K\x02K\x03t"
       "(K\x06K\x06K\x06K\x06K\x06K\x06K\x06K\x03K\x01t\x89}tR."),
    CNCLIP_ERROR_UNSUPPORTED, "9 dimensions" },
  { "rebuild: view one past the storage",
    B (REBUILD "(" STORAGE_F32_6 "K\x01K\x06\x85K\x01\x85\x89}tR."), CNCLIP_ERROR_FORMAT,
    "element 6 of a storage of 6" },
  { "rebuild: strides reach past the storage",
    B (REBUILD "(" STORAGE_F32_6 "K\x00K\x02K\x03\x86K\x04K\x01\x86\x89}tR."),
    CNCLIP_ERROR_FORMAT, "element 6 of a storage of 6" },
  { "rebuild: scalar past the storage", B (REBUILD "(" STORAGE_F32_6 "K\x06))\x89}tR."),
    CNCLIP_ERROR_FORMAT, "element 6" },
  { "rebuild: empty tensor offset past the storage",
    B (REBUILD "(" STORAGE_F32_6 "K\x07K\x00\x85K\x01\x85\x89}tR."), CNCLIP_ERROR_FORMAT,
    "empty tensor offset" },
  { "rebuild: element count overflows",
    B (REBUILD "(" STORAGE_F32_6 "K\x00(J\xff\xff\xff\x7fJ\xff\xff\xff\x7fJ\xff\xff\xff\x7f"
       "J\xff\xff\xff\x7ft(K\x00K\x00K\x00K\x00t\x89}tR."),
    CNCLIP_ERROR_FORMAT, "count overflows" },
  { "rebuild: view offset overflows",
    B (REBUILD "(" STORAGE_F32_6 "K\x00(J\xff\xff\xff\x7fJ\xff\xff\xff\x7ft"
       "(\x8a\x08\0\0\0\0\0\0\0\x40\x8a\x08\0\0\0\0\0\0\0\x40t\x89}tR."),
    CNCLIP_ERROR_FORMAT, "overflows" },
  { "rebuild: requires_grad is an int",
    B (REBUILD "(" STORAGE_F32_6 "K\x00K\x06\x85K\x01\x85K\x00}tR."), CNCLIP_ERROR_FORMAT,
    "requires_grad" },
  { "rebuild: hooks are a list",
    B (REBUILD "(" STORAGE_F32_6 "K\x00K\x06\x85K\x01\x85\x89]tR."), CNCLIP_ERROR_FORMAT,
    "hooks" },
  { "rebuild: non-empty metadata",
    B (REBUILD "(" STORAGE_F32_6 "K\x00K\x06\x85K\x01\x85\x89}}X\x03\0\0\0negK\x01stR."),
    CNCLIP_ERROR_UNSUPPORTED, "metadata" },
  { "_rebuild_parameter of an int", B ("ctorch._utils\n_rebuild_parameter\n(K\x01\x89}tR."),
    CNCLIP_ERROR_FORMAT, "_rebuild_parameter" },

  /* Stack, marks and memo. */
  { "STOP on an empty stack", B ("."), CNCLIP_ERROR_FORMAT, "underflow" },
  { "STOP with only a mark", B ("(."), CNCLIP_ERROR_FORMAT, "underflow" },
  { "TUPLE without MARK", B ("K\x01t."), CNCLIP_ERROR_FORMAT, "no MARK" },
  { "TUPLE2 across a MARK", B ("K\x01(K\x02\x86."), CNCLIP_ERROR_FORMAT, "underflow" },
  { "TUPLE1 on an empty stack", B ("\x85."), CNCLIP_ERROR_FORMAT, "underflow" },
  { "APPEND to a dict", B ("}K\x01" "a."), CNCLIP_ERROR_FORMAT, "appending to a dict" },
  { "APPEND to a tuple", B (")K\x01" "a."), CNCLIP_ERROR_FORMAT, "appending to a tuple" },
  { "APPENDS without container", B ("(K\x01" "e."), CNCLIP_ERROR_FORMAT, "underflow" },
  { "APPENDS container below an older mark", B ("]((e."), CNCLIP_ERROR_FORMAT,
    "underflow" },
  { "SETITEM on a list", B ("]K\x01K\x02s."), CNCLIP_ERROR_FORMAT, "setting items of a list" },
  { "SETITEM underflow", B ("}K\x01s."), CNCLIP_ERROR_FORMAT, "underflow" },
  { "SETITEMS odd count", B ("}(K\x01K\x02K\x03u."), CNCLIP_ERROR_FORMAT, "odd" },
  { "SETITEMS on a tuple", B (")(K\x01K\x02u."), CNCLIP_ERROR_FORMAT, "setting items of a tuple" },
  { "SETITEMS without container", B ("(K\x01K\x02u."), CNCLIP_ERROR_FORMAT, "underflow" },
  { "unhashable key", B ("}]K\x01s."), CNCLIP_ERROR_FORMAT, "unhashable" },
  { "BINGET unset", B ("h\x05."), CNCLIP_ERROR_FORMAT, "memo index 5 is not set" },
  { "BINGET gap", B ("K\x01q\x02h\x01."), CNCLIP_ERROR_FORMAT, "memo index 1 is not set" },
  { "LONG_BINGET far away", B ("K\x01q\x00j\x00\x00\x00\x80."), CNCLIP_ERROR_FORMAT,
    "memo index 2147483648 is not set" },
  { "BINGET truncated", B ("h"), CNCLIP_ERROR_FORMAT, "truncated" },
  { "LONG_BINPUT beyond the memo limit", B ("K\x01r\x40\x42\x0f\x00."), CNCLIP_ERROR_TOO_LARGE,
    "memo index 1000000" },
  { "LONG_BINPUT 2^32-1", B ("K\x01r\xff\xff\xff\xff."), CNCLIP_ERROR_TOO_LARGE, "memo" },
  { "BINPUT on an empty stack", B ("q\x00."), CNCLIP_ERROR_FORMAT, "underflow" },
  { "BINPUT across a mark", B ("K\x01(q\x00."), CNCLIP_ERROR_FORMAT, "underflow" },
};

/* Test that malformed, truncated and forbidden pickles fail with the exact error code and a
 * message naming the problem. */
static void
test_pickle_error_table (void)
{
  for (gsize i = 0; i < G_N_ELEMENTS (err_cases); i++) {
    const ErrCase *c = &err_cases[i];
    GError *error = NULL;
    CnclipPickle *pk = cnclip_pickle_load (c->bytes, c->len, &error);
    if (pk != NULL || error == NULL || error->code != (int) c->code)
      g_printerr ("case '%s': %s\n", c->name, error ? error->message : "(no error)");
    g_assert_null (pk);
    g_assert_error (error, CNCLIP_ERROR, (int) c->code);
    if (c->message_part && strstr (error->message, c->message_part) == NULL)
      g_printerr ("case '%s': message '%s' lacks '%s'\n", c->name, error->message,
          c->message_part);
    if (c->message_part)
      g_assert_nonnull (strstr (error->message, c->message_part));
    if (g_test_verbose ())
      g_printerr ("  %s: %s\n", c->name, error->message);
    g_clear_error (&error);
  }
}

/* Test that BINGET returns the memoised object itself, so later mutation is visible through
 * every reference (Python semantics). */
static void
test_pickle_memo_shares (void)
{
  /* EMPTY_LIST BINPUT 1, BINGET 1, NONE, APPEND (to the copy on top), TUPLE2 */
  static const guint8 bytes[] = "]q\x01h\x01N" "a\x86.";
  GError *error = NULL;
  CnclipPickle *pk = cnclip_pickle_load (bytes, sizeof (bytes) - 1, &error);
  g_assert_no_error (error);
  const CnclipPickleValue *root = cnclip_pickle_get_root (pk);
  g_assert_cmpint (root->kind, ==, CNCLIP_PICKLE_TUPLE);
  g_assert_true (root->v.seq.items[0] == root->v.seq.items[1]);
  char *s = describe (root);
  g_assert_cmpstr (s, ==, "([None], [None])");
  g_free (s);
  cnclip_pickle_free (pk);
}

/* Test that opcode counts and the set of named globals are recorded. */
static void
test_pickle_stats (void)
{
  static const guint8 bytes[] =
      "\x80\x02}q\x00(X\x01\0\0\0aq\x01" REBUILD "q\x02(" STORAGE_F32_6
      "K\x00K\x06\x85K\x01\x85\x89" ODICT "tRX\x01\0\0\0" "bh\x01u.";
  GError *error = NULL;
  CnclipPickle *pk = cnclip_pickle_load (bytes, sizeof (bytes) - 1, &error);
  g_assert_no_error (error);
  static const struct { guint8 op; guint count; } expected[] = {
    { 0x80, 1 }, { '}', 1 }, { 'q', 3 }, { '(', 3 }, { 'X', 5 }, { 'c', 3 }, { 'K', 4 },
    { 't', 2 }, { 'Q', 1 }, { 0x85, 2 }, { 0x89, 1 }, { ')', 1 }, { 'R', 2 }, { 'h', 1 },
    { 'u', 1 }, { '.', 1 },
  };
  guint total = 0;
  for (gsize i = 0; i < G_N_ELEMENTS (expected); i++) {
    g_assert_cmpuint (cnclip_pickle_get_opcode_count (pk, expected[i].op), ==, expected[i].count);
    total += expected[i].count;
  }
  guint all = 0;
  for (guint op = 0; op < 256; op++)
    all += cnclip_pickle_get_opcode_count (pk, op);
  g_assert_cmpuint (all, ==, total);
  g_assert_cmphex (cnclip_pickle_get_globals (pk), ==,
      (1u << CNCLIP_PICKLE_GLOBAL_REBUILD_TENSOR_V2) | (1u << CNCLIP_PICKLE_GLOBAL_FLOAT_STORAGE)
      | (1u << CNCLIP_PICKLE_GLOBAL_ORDERED_DICT));
  char *s = describe (cnclip_pickle_get_root (pk));
  g_assert_cmpstr (s, ==, "{'a': tensor(F32, '0', off=0, size=(6), stride=(1), n=6), 'b': 'a'}");
  g_free (s);
  cnclip_pickle_free (pk);
}

/* Test that dict lookup finds string keys only and that the last of duplicate keys wins. */
static void
test_pickle_dict_lookup (void)
{
  static const guint8 bytes[] = "}(X\x01\0\0\0aK\x01K\x07K\x02X\x01\0\0\0aK\x03u.";
  GError *error = NULL;
  CnclipPickle *pk = cnclip_pickle_load (bytes, sizeof (bytes) - 1, &error);
  g_assert_no_error (error);
  const CnclipPickleValue *root = cnclip_pickle_get_root (pk);
  const CnclipPickleValue *a = cnclip_pickle_dict_lookup (root, "a");
  g_assert_nonnull (a);
  g_assert_cmpint (a->v.integer, ==, 3);
  g_assert_null (cnclip_pickle_dict_lookup (root, "7"));
  g_assert_null (cnclip_pickle_dict_lookup (root, "b"));
  g_assert_null (cnclip_pickle_dict_lookup (a, "a"));
  cnclip_pickle_free (pk);
}

/* Test that every byte value is either a named pickle opcode or refused as invalid, and that
 * the names match pickletools. */
static void
test_pickle_opcode_names (void)
{
  guint named = 0;
  for (guint op = 0; op < 256; op++)
    named += cnclip_pickle_opcode_name (op) != NULL;
  g_assert_cmpuint (named, ==, 68);      /* len(pickletools.opcodes), protocol 5 */
  g_assert_cmpstr (cnclip_pickle_opcode_name ('X'), ==, "BINUNICODE");
  g_assert_cmpstr (cnclip_pickle_opcode_name (0x93), ==, "STACK_GLOBAL");
  g_assert_cmpstr (cnclip_pickle_opcode_name (0x98), ==, "READONLY_BUFFER");
  g_assert_null (cnclip_pickle_opcode_name (0x99));
  g_assert_cmpstr (cnclip_pickle_global_name (CNCLIP_PICKLE_GLOBAL_REBUILD_TENSOR_V2), ==,
      "torch._utils._rebuild_tensor_v2");
  g_assert_null (cnclip_pickle_global_name (CNCLIP_PICKLE_N_GLOBALS));
}

/* Repeats @unit @n times after @head and before @tail. */
static guint8 *
repeat (const char *head, const char *unit, gsize unit_len, gsize n, const char *tail,
    gsize *len)
{
  gsize hl = strlen (head), tl = strlen (tail);
  *len = hl + unit_len * n + tl;
  guint8 *buf = g_malloc (*len);
  memcpy (buf, head, hl);
  for (gsize i = 0; i < n; i++)
    memcpy (buf + hl + i * unit_len, unit, unit_len);
  memcpy (buf + hl + unit_len * n, tail, tl);
  return buf;
}

typedef struct
{
  const char *name;
  const char *head;
  const char *unit;
  gsize n;
  const char *tail;
  CnclipError code;              /* or -1 for success */
} DeepCase;

static const DeepCase deep_cases[] = {
  { "100,000 MARKs", "", "(", 100000, ".", CNCLIP_ERROR_TOO_LARGE },
  { "1,000 MARKs are fine", "", "(", 1000, "K\x01.", -1 },
  { "1,001 MARKs", "", "(", 1001, "K\x01.", CNCLIP_ERROR_TOO_LARGE },
  { "100,000 pushes", "", "N", 100000, ".", CNCLIP_ERROR_TOO_LARGE },
  { "10,000 pushes are fine", "", "N", 10000, ".", -1 },
  { "10,001 pushes", "", "N", 10001, ".", CNCLIP_ERROR_TOO_LARGE },
  { "100,000 nested tuples", ")", "\x85", 100000, ".", -1 },
  { "100,000 nested lists", "", "]", 100000, ".", CNCLIP_ERROR_TOO_LARGE },
  { "100,000 nested MARK TUPLEs", "", "(", 100000, ")t.", CNCLIP_ERROR_TOO_LARGE },
  { "2,000,000 values", "]", "Na", 2000000, ".", CNCLIP_ERROR_TOO_LARGE },
  { "999,000 appended values are fine", "]", "Na", 999000, ".", -1 },
  { "400,000 levels of a shared tuple DAG", "K\x01", "r\x00\x00\x00\x00j\x00\x00\x00\x00\x86",
    400000, ".", -1 },
};

/* Test that deep nesting and huge value counts end in a clear error (or succeed within the
 * limits) without recursion or stack overflow. */
static void
test_pickle_deep (void)
{
  for (gsize i = 0; i < G_N_ELEMENTS (deep_cases); i++) {
    const DeepCase *c = &deep_cases[i];
    gsize unit_len = c->unit[0] == 'r' ? 11 : strlen (c->unit);
    gsize len;
    guint8 *buf = repeat (c->head, c->unit, unit_len, c->n, c->tail, &len);
    GError *error = NULL;
    CnclipPickle *pk = cnclip_pickle_load (buf, len, &error);
    if ((int) c->code == -1) {
      if (error)
        g_printerr ("case '%s': %s\n", c->name, error->message);
      g_assert_no_error (error);
      g_assert_nonnull (pk);
    } else {
      g_assert_null (pk);
      if (g_test_verbose () && error)
        g_printerr ("  %s: %s\n", c->name, error->message);
      g_assert_error (error, CNCLIP_ERROR, (int) c->code);
      g_clear_error (&error);
    }
    cnclip_pickle_free (pk);
    g_free (buf);
  }
}

/* Builds @head + @n copies of @unit + @tail (all with explicit lengths). */
static GByteArray *
repeat_bytes (const guint8 *head, gsize head_len, const guint8 *unit, gsize unit_len, gsize n,
    const guint8 *tail, gsize tail_len)
{
  GByteArray *b = g_byte_array_sized_new (head_len + unit_len * n + tail_len);
  g_byte_array_append (b, head, head_len);
  for (gsize i = 0; i < n; i++)
    g_byte_array_append (b, unit, unit_len);
  g_byte_array_append (b, tail, tail_len);
  return b;
}

/* Test that the memory of all values is capped: one memoised _rebuild_tensor_v2 call repeated
 * 400,000 times (6 bytes each) is refused with TOO_LARGE, 150,000 times is fine. */
static void
test_pickle_memory_cap (void)
{
  /* memo 1 = the global, memo 2 = its argument tuple; then a list of calls. */
  static const guint8 head[] = REBUILD "q\x01(" STORAGE_F32_6 "K\x00K\x06\x85K\x01\x85\x89" ODICT
      "tq\x02]";
  static const guint8 unit[] = "h\x01h\x02R" "a";
  static const struct
  {
    gsize n;
    int code;
  } cases[] = { { 150000, -1 }, { 400000, CNCLIP_ERROR_TOO_LARGE } };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    GByteArray *b = repeat_bytes (head, sizeof (head) - 1, unit, sizeof (unit) - 1, cases[i].n,
        (const guint8 *) ".", 1);
    GError *error = NULL;
    CnclipPickle *pk = cnclip_pickle_load (b->data, b->len, &error);
    if (cases[i].code == -1) {
      g_assert_no_error (error);
      const CnclipPickleValue *root = cnclip_pickle_get_root (pk);
      g_assert_cmpint (root->kind, ==, CNCLIP_PICKLE_LIST);
      g_assert_cmpuint (root->v.seq.n, ==, cases[i].n);
      g_assert_cmpint (root->v.seq.items[cases[i].n - 1]->kind, ==, CNCLIP_PICKLE_TENSOR);
    } else {
      g_assert_null (pk);
      g_assert_error (error, CNCLIP_ERROR, cases[i].code);
      g_assert_nonnull (strstr (error->message, "more than 64 MB"));
      g_clear_error (&error);
    }
    cnclip_pickle_free (pk);
    g_byte_array_unref (b);
  }
}

/* Test that random byte strings over the opcode alphabet never crash the unpickler and that
 * every failure carries a CNCLIP_ERROR code. */
static void
test_pickle_random (void)
{
  static const char alphabet[] = "}])(tuseahqjKMJXNQRbc.\x85\x86\x87\x88\x89\x8a\x80G";
  GRand *rand = g_rand_new_with_seed (20240601);
  guint ok = 0;
  for (int iter = 0; iter < 20000; iter++) {
    guint8 buf[64];
    gsize len = g_rand_int_range (rand, 1, sizeof (buf));
    for (gsize i = 0; i < len; i++)
      buf[i] = g_rand_boolean (rand) ? alphabet[g_rand_int_range (rand, 0, sizeof (alphabet) - 1)]
          : (guint8) g_rand_int_range (rand, 0, 8);
    GError *error = NULL;
    CnclipPickle *pk = cnclip_pickle_load (buf, len, &error);
    if (pk == NULL) {
      g_assert_nonnull (error);
      g_assert_true (error->domain == CNCLIP_ERROR);
      g_clear_error (&error);
    } else {
      g_assert_no_error (error);
      g_assert_nonnull (cnclip_pickle_get_root (pk));
      ok++;
    }
    cnclip_pickle_free (pk);
  }
  /* The alphabet makes some inputs valid; a loop that only ever failed would test little. */
  g_assert_cmpuint (ok, >, 50);
  g_rand_free (rand);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/pickle/ok-table", test_pickle_ok_table);
  g_test_add_func ("/pickle/error-table", test_pickle_error_table);
  g_test_add_func ("/pickle/memo-shares", test_pickle_memo_shares);
  g_test_add_func ("/pickle/stats", test_pickle_stats);
  g_test_add_func ("/pickle/dict-lookup", test_pickle_dict_lookup);
  g_test_add_func ("/pickle/opcode-names", test_pickle_opcode_names);
  g_test_add_func ("/pickle/deep", test_pickle_deep);
  g_test_add_func ("/pickle/memory-cap", test_pickle_memory_cap);
  g_test_add_func ("/pickle/random", test_pickle_random);
  return g_test_run ();
}
