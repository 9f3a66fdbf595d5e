/* torchzip.h: PyTorch zip checkpoints (torch.save >= 1.6), internal layers.
 *
 * Three layers, each usable on its own (tests, fuzzing, diagnostics):
 *
 *   cnclip_zip_parse()               the zip container: central directory,
 *                                    local headers, data ranges
 *   cnclip_torch_checkpoint_parse()  data.pkl (pickle.h) + storages: tensor
 *                                    records under the names stored in the file
 *   cnclip_torch_checkpoint_to_hf()  official cn_clip names -> Hugging Face
 *                                    ChineseCLIPModel names, as views
 *
 * cnclip_torch_open() (weights.h) runs all three on a mapped file.
 * Nothing is copied: every tensor is a strided view into the caller's buffer,
 * which must outlive the results.
 */
#ifndef CNCLIP_TORCHZIP_H
#define CNCLIP_TORCHZIP_H

#include <glib.h>
#include "weights.h"
#include "pickle.h"

G_BEGIN_DECLS

/* Limits; exceeding one is CNCLIP_ERROR_TOO_LARGE. */
#define CNCLIP_ZIP_MAX_ENTRIES 1000000
#define CNCLIP_TORCH_MAX_PICKLE_SIZE (256u * 1024 * 1024)
#define CNCLIP_TORCH_MAX_TENSORS 100000     /* the real model has 401 */

typedef struct
{
  char *name;
  guint64 header_offset;         /* local file header */
  guint64 data_offset;           /* header_offset + 30 + name length + local extra length */
  guint64 size;                  /* uncompressed, from the central directory */
  guint64 compressed_size;
  guint32 crc32;
  guint16 method;                /* 0 = stored */
  guint16 flags;
} CnclipZipEntry;

typedef struct
{
  guint64 eocd_offset;           /* classic end-of-central-directory record */
  gboolean zip64;                /* a zip64 locator and record are present */
  guint64 zip64_eocd_offset;
  guint64 cd_offset;
  guint64 cd_size;
  guint n_entries;
  CnclipZipEntry *entries;       /* central-directory order */
  GHashTable *index;             /* name -> CnclipZipEntry * */
} CnclipZip;

/* Parses the zip structure of @data (@size bytes). Checks that the central
 * directory, every local header and every entry's data range lie inside the
 * file (data before the central directory), that names are unique UTF-8
 * without NUL, and that stored entries have compressed size == size.
 * Entry data is neither decompressed nor CRC-checked here.
 * Errors: CNCLIP_ERROR_FORMAT, CNCLIP_ERROR_UNSUPPORTED (multi-disk,
 * encrypted), CNCLIP_ERROR_TOO_LARGE. Free with cnclip_zip_free(). */
CnclipZip *cnclip_zip_parse (const guint8 *data, gsize size, GError **error);
void cnclip_zip_free (CnclipZip *zip);
const CnclipZipEntry *cnclip_zip_lookup (const CnclipZip *zip, const char *name);

/* Standard CRC-32 (zip, IEEE 802.3). Start with @crc = 0; chain calls by
 * passing the previous result. Thread-safe. */
guint32 cnclip_crc32 (guint32 crc, const void *data, gsize size);

/* One tensor record as stored in the file. */
typedef struct
{
  const char *name;              /* the key in the file's state dict */
  CnclipDType dtype;
  CnclipPickleGlobal storage_type;
  const char *storage_key;
  const char *location;
  gint64 storage_numel;
  gint64 storage_offset;         /* in elements */
  int ndim;
  gint64 shape[CNCLIP_MAX_DIMS];
  gint64 strides[CNCLIP_MAX_DIMS];
  gint64 n_elements;
  gboolean contiguous;           /* as torch's is_contiguous() */
  const CnclipZipEntry *entry;   /* P/data/<storage_key> */
  const guint8 *data;            /* element (0, ..., 0) */
} CnclipTorchTensor;

typedef struct
{
  CnclipZip *zip;
  CnclipPickle *pickle;
  char *prefix;                  /* P: the folder of P/data.pkl */
  gboolean has_state_dict;       /* top level {'state_dict': ..., 'epoch': ...} (cn_clip) */
  gboolean state_dict_ordered;   /* the tensors' dict is an OrderedDict */
  guint n_tensors;
  CnclipTorchTensor *tensors;    /* state-dict order */
} CnclipTorchCheckpoint;

/* Parses a torch.save zip checkpoint held in @data (@size bytes). The top
 * level is either a dict/OrderedDict of name -> tensor, or a dict with a
 * 'state_dict' entry holding one (other top-level keys are ignored, but
 * their pickle must still pass the allow-list). The CRC-32 of data.pkl is
 * checked (unless the file stores 0, as torch.save with compute_crc32=False
 * does); storage CRCs are not (torch.load does not check them either; see
 * cnclip_torch_checkpoint_verify_crc()).
 * Errors: CNCLIP_ERROR_FORMAT, CNCLIP_ERROR_UNSAFE, CNCLIP_ERROR_UNSUPPORTED
 * (compressed entries, legacy non-zip torch files, TorchScript archives,
 * big-endian storages, misaligned storages, protocol 4),
 * CNCLIP_ERROR_TOO_LARGE. Free with cnclip_torch_checkpoint_free(). */
CnclipTorchCheckpoint *cnclip_torch_checkpoint_parse (const guint8 *data, gsize size,
    GError **error);
void cnclip_torch_checkpoint_free (CnclipTorchCheckpoint *ckpt);

/* Checks the CRC-32 of every storage a tensor uses (one pass over the data).
 * Errors: CNCLIP_ERROR_FORMAT naming the first bad entry. */
gboolean cnclip_torch_checkpoint_verify_crc (const CnclipTorchCheckpoint *ckpt,
    const guint8 *data, GError **error);

/* The tensors under Hugging Face ChineseCLIPModel names (FIXTURES.md 9.4):
 * a leading "module." is stripped; when the file uses cn_clip names (keys
 * under "visual." or "bert.", or a bare "text_projection"), "bert.pooler" keys are dropped, in_proj
 * weights/biases become q/k/v views and the projections transposed views.
 * Unknown keys are passed through (without "module."). Returns a GArray of
 * CnclipTensorInfo whose names it owns (freed with the array).
 * Errors: CNCLIP_ERROR_SHAPE (a tensor that must be split or transposed has
 * the wrong rank or size). */
GArray *cnclip_torch_checkpoint_to_hf (const CnclipTorchCheckpoint *ckpt, GError **error);

/* TRUE when @strides are row-major for @shape, ignoring size-1 dimensions
 * (torch's definition); empty tensors are contiguous. */
gboolean cnclip_strides_are_contiguous (int ndim, const gint64 *shape, const gint64 *strides);

G_END_DECLS

#endif /* CNCLIP_TORCHZIP_H */
