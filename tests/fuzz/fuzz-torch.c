/* fuzz-torch.c: the PyTorch checkpoint loader on arbitrary bytes.
 *
 * An input that starts with a pickle PROTO opcode (0x80) goes straight to
 * the restricted unpickler (cnclip_pickle_load), which is the densest attack
 * surface; anything else is a zip: cnclip_torch_checkpoint_parse() (zip
 * directory, data.pkl, storages) and cnclip_torch_checkpoint_to_hf() on an
 * exact-size heap copy, then, when that succeeds, cnclip_torch_open() on the
 * same bytes as a file. Seeds store CRC 0 for data.pkl ("not computed"), so
 * mutated pickles inside a zip are not all refused by the CRC check. */
#include "config.h"

#include "fuzz-common.h"
#include "pickle.h"
#include "torchzip.h"

static const int allowed[] = {
  CNCLIP_ERROR_FORMAT, CNCLIP_ERROR_UNSAFE, CNCLIP_ERROR_UNSUPPORTED, CNCLIP_ERROR_TOO_LARGE,
  CNCLIP_ERROR_SHAPE, -1
};

/* Walks a value tree (bounded: shared and cyclic references are legal). */
static void
walk (const CnclipPickleValue *v, int depth, guint *budget)
{
  if (v == NULL || depth > 64 || *budget == 0)
    return;
  (*budget)--;
  switch (v->kind) {
    case CNCLIP_PICKLE_STR:
      FUZZ_CHECK (strlen (v->v.str.str) == v->v.str.len);
      FUZZ_CHECK (g_utf8_validate (v->v.str.str, (gssize) v->v.str.len, NULL));
      break;
    case CNCLIP_PICKLE_TUPLE:
    case CNCLIP_PICKLE_LIST:
      for (guint i = 0; i < v->v.seq.n; i++)
        walk (v->v.seq.items[i], depth + 1, budget);
      break;
    case CNCLIP_PICKLE_DICT:
      for (guint i = 0; i < 2 * v->v.dict.n_pairs; i++)
        walk (v->v.dict.items[i], depth + 1, budget);
      break;
    case CNCLIP_PICKLE_GLOBAL:
      FUZZ_CHECK (cnclip_pickle_global_name (v->v.global) != NULL);
      break;
    case CNCLIP_PICKLE_STORAGE:
      FUZZ_CHECK (v->v.storage->numel >= 0 && v->v.storage->key != NULL);
      break;
    case CNCLIP_PICKLE_TENSOR:{
      const CnclipPickleTensor *t = v->v.tensor;
      FUZZ_CHECK (t->ndim >= 0 && t->ndim <= CNCLIP_MAX_DIMS && t->offset >= 0);
      gint64 last = t->offset;
      for (int d = 0; d < t->ndim; d++) {
        FUZZ_CHECK (t->size[d] >= 0 && t->stride[d] >= 0);
        if (t->n_elements > 0)
          last += (t->size[d] - 1) * t->stride[d];
      }
      if (t->n_elements > 0)
        FUZZ_CHECK (last < t->storage->numel);
      break;
    }
    default:
      break;
  }
}

static void
fuzz_pickle (const uint8_t *data, size_t size)
{
  GError *error = NULL;
  CnclipPickle *pickle = cnclip_pickle_load (data, size, &error);
  fuzz_check_error (pickle != NULL, &error, allowed);
  if (pickle == NULL)
    return;
  guint budget = 100000;
  walk (cnclip_pickle_get_root (pickle), 0, &budget);
  cnclip_pickle_free (pickle);
}

static void
fuzz_zip (const uint8_t *data, size_t size)
{
  GError *error = NULL;
  CnclipTorchCheckpoint *ckpt = cnclip_torch_checkpoint_parse (data, size, &error);
  fuzz_check_error (ckpt != NULL, &error, allowed);
  if (ckpt == NULL)
    return;
  for (guint i = 0; i < ckpt->n_tensors; i++) {
    const CnclipTorchTensor *t = &ckpt->tensors[i];
    const CnclipZipEntry *e = t->entry;
    FUZZ_CHECK (e->data_offset <= size && e->size <= size - e->data_offset);
    FUZZ_CHECK (t->data >= data + e->data_offset);
    if (t->n_elements > 0) {
      CnclipTensorInfo info = { 0 };
      info.dtype = t->dtype;
      info.ndim = t->ndim;
      memcpy (info.shape, t->shape, sizeof info.shape);
      memcpy (info.strides, t->strides, sizeof info.strides);
      info.data = t->data;
      gint64 n, span;
      FUZZ_CHECK (cnclip_tensor_span (&info, &n, &span));
      FUZZ_CHECK (n == t->n_elements);
      FUZZ_CHECK ((guint64) span <= e->size - (guint64) (t->data - (data + e->data_offset)));
    }
  }
  gboolean crc_ok = cnclip_torch_checkpoint_verify_crc (ckpt, data, &error);
  fuzz_check_error (crc_ok, &error, allowed);

  GArray *infos = cnclip_torch_checkpoint_to_hf (ckpt, &error);
  fuzz_check_error (infos != NULL, &error, allowed);
  if (infos != NULL) {
    for (guint i = 0; i < infos->len; i++) {
      const CnclipTensorInfo *info = &g_array_index (infos, CnclipTensorInfo, i);
      gint64 n, span;
      FUZZ_CHECK (info->name != NULL);
      FUZZ_CHECK (cnclip_tensor_span (info, &n, &span));
      if (n > 0)
        FUZZ_CHECK (info->data >= data && (guint64) span <= size - (gsize) (info->data - data));
    }
    g_array_free (infos, TRUE);
  }
  cnclip_torch_checkpoint_free (ckpt);
  if (infos == NULL)
    return;

  /* The whole loader on a file: the same checks plus the weights table. */
  const char *path = fuzz_file_set (data, size);
  CnclipWeightFile *file = cnclip_torch_open (path, &error);
  fuzz_check_error (file != NULL, &error, allowed);
  if (file != NULL) {
    fuzz_check_tensors (file, cnclip_weight_file_get_data (file), size);
    cnclip_weight_file_free (file);
  }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size > 0 && data[0] == 0x80)
    fuzz_pickle (data, size);
  else
    fuzz_zip (data, size);
  return 0;
}
