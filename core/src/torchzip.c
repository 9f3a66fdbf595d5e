/* torchzip.c: PyTorch zip checkpoints (pytorch_model.bin, cn_clip *.pt).
 *
 * torch.save writes an uncompressed zip: P/data.pkl (the pickled object,
 * tensors referring to storages by key), P/data/<key> (raw little-endian
 * storages, 64-byte aligned), P/version, and with torch >= 2 P/byteorder
 * and P/.data/. We read the central directory, unpickle data.pkl with the
 * allow-list unpickler and describe every tensor as a strided view of its
 * storage inside the mapping: no tensor byte is copied here.
 *
 * Format references: PKWARE APPNOTE (zip, zip64), FIXTURES.md section 9.
 */
#include <string.h>

#include "cnclip.h"
#include "weights.h"
#include "pickle.h"
#include "torchzip.h"

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_ZIP64_EOCD 0x06064b50u
#define SIG_ZIP64_LOCATOR 0x07064b50u

#define EOCD_SIZE 22
#define ZIP64_LOCATOR_SIZE 20
#define ZIP64_EOCD_MIN_SIZE 56
#define CENTRAL_SIZE 46
#define LOCAL_SIZE 30

static guint16
rd16 (const guint8 *p)
{
  return (guint16) (p[0] | (p[1] << 8));
}

static guint32
rd32 (const guint8 *p)
{
  return (guint32) p[0] | ((guint32) p[1] << 8) | ((guint32) p[2] << 16) | ((guint32) p[3] << 24);
}

static guint64
rd64 (const guint8 *p)
{
  return (guint64) rd32 (p) | ((guint64) rd32 (p + 4) << 32);
}

/* ------------------------------------------------------------------------ */
/* CRC-32, slicing by 8 (tables built once)                                 */

static guint32 crc_table[8][256];

static gpointer
crc_init (gpointer unused)
{
  for (guint i = 0; i < 256; i++) {
    guint32 c = i;
    for (int k = 0; k < 8; k++)
      c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
    crc_table[0][i] = c;
  }
  for (guint i = 0; i < 256; i++)
    for (int t = 1; t < 8; t++)
      crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
  return NULL;
}

guint32
cnclip_crc32 (guint32 crc, const void *data, gsize size)
{
  static GOnce once = G_ONCE_INIT;
  g_once (&once, crc_init, NULL);

  const guint8 *p = data;
  guint32 c = ~crc;
  while (size >= 8) {
    guint32 lo = c ^ rd32 (p), hi = rd32 (p + 4);
    c = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff]
        ^ crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24]
        ^ crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff]
        ^ crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
    p += 8;
    size -= 8;
  }
  while (size-- > 0)
    c = crc_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
  return ~c;
}

/* ------------------------------------------------------------------------ */
/* Zip container                                                            */

void
cnclip_zip_free (CnclipZip *zip)
{
  if (zip == NULL)
    return;
  if (zip->index != NULL)
    g_hash_table_unref (zip->index);
  for (guint i = 0; i < zip->n_entries; i++)
    g_free (zip->entries[i].name);
  g_free (zip->entries);
  g_free (zip);
}

const CnclipZipEntry *
cnclip_zip_lookup (const CnclipZip *zip, const char *name)
{
  g_return_val_if_fail (zip != NULL && name != NULL, NULL);
  return g_hash_table_lookup (zip->index, name);
}

static gboolean G_GNUC_PRINTF (3, 4)
zip_fail (GError **error, CnclipError code, const char *format, ...)
{
  va_list args;
  va_start (args, format);
  char *msg = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error (error, CNCLIP_ERROR, code, "zip: %s", msg);
  g_free (msg);
  return FALSE;
}

/* Finds the classic EOCD: the last "PK\5\6" whose comment ends exactly at
 * the end of the file. The comment is at most 65535 bytes, which bounds the
 * scan. */
static gboolean
find_eocd (const guint8 *data, gsize size, guint64 *offset, GError **error)
{
  if (size < EOCD_SIZE)
    return zip_fail (error, CNCLIP_ERROR_FORMAT, "file of %" G_GSIZE_FORMAT
        " bytes is too short for a zip end record", size);
  gsize lowest = size - EOCD_SIZE > 65535 ? size - EOCD_SIZE - 65535 : 0;
  for (gsize pos = size - EOCD_SIZE + 1; pos-- > lowest;) {
    if (rd32 (data + pos) == SIG_EOCD && pos + EOCD_SIZE + rd16 (data + pos + 20) == size) {
      *offset = pos;
      return TRUE;
    }
  }
  return zip_fail (error, CNCLIP_ERROR_FORMAT,
      "no end-of-central-directory record (truncated or not a zip file)");
}

/* Reads the zip64 EOCD through the locator just before the classic EOCD.
 * Fills *present = FALSE when there is no locator. */
static gboolean
read_zip64 (const guint8 *data, guint64 eocd, CnclipZip *zip, guint64 *n_entries,
    gboolean *present, GError **error)
{
  *present = FALSE;
  if (eocd < ZIP64_LOCATOR_SIZE || rd32 (data + eocd - ZIP64_LOCATOR_SIZE) != SIG_ZIP64_LOCATOR)
    return TRUE;
  const guint8 *loc = data + eocd - ZIP64_LOCATOR_SIZE;
  guint64 locator_offset = eocd - ZIP64_LOCATOR_SIZE;
  if (rd32 (loc + 4) != 0 || rd32 (loc + 16) > 1)
    return zip_fail (error, CNCLIP_ERROR_UNSUPPORTED, "multi-disk zip archives are not supported");
  guint64 z = rd64 (loc + 8);
  if (z > locator_offset || locator_offset - z < ZIP64_EOCD_MIN_SIZE)
    return zip_fail (error, CNCLIP_ERROR_FORMAT, "zip64 end record offset %" G_GUINT64_FORMAT
        " is outside the file", z);
  const guint8 *r = data + z;
  if (rd32 (r) != SIG_ZIP64_EOCD)
    return zip_fail (error, CNCLIP_ERROR_FORMAT, "no zip64 end record at offset %"
        G_GUINT64_FORMAT, z);
  guint64 record_size = rd64 (r + 4);
  if (record_size < ZIP64_EOCD_MIN_SIZE - 12 || record_size > locator_offset - z - 12)
    return zip_fail (error, CNCLIP_ERROR_FORMAT, "zip64 end record has a bad size");
  if (rd32 (r + 16) != 0 || rd32 (r + 20) != 0 || rd64 (r + 24) != rd64 (r + 32))
    return zip_fail (error, CNCLIP_ERROR_UNSUPPORTED, "multi-disk zip archives are not supported");
  *n_entries = rd64 (r + 32);
  zip->cd_size = rd64 (r + 40);
  zip->cd_offset = rd64 (r + 48);
  zip->zip64 = TRUE;
  zip->zip64_eocd_offset = z;
  *present = TRUE;
  return TRUE;
}

/* Applies the zip64 extra field (id 1) of a central entry: the 64-bit values
 * are present only for fields whose 32-bit value is saturated, in this order. */
static gboolean
apply_zip64_extra (const guint8 *extra, guint extra_len, gboolean need_size, gboolean need_csize,
    gboolean need_offset, CnclipZipEntry *e, GError **error)
{
  guint pos = 0;
  while (pos + 4 <= extra_len) {
    guint id = rd16 (extra + pos), len = rd16 (extra + pos + 2);
    if (len > extra_len - pos - 4)
      break;
    if (id == 1) {
      const guint8 *f = extra + pos + 4;
      guint need = 8 * (need_size + need_csize + need_offset);
      if (len < need)
        return zip_fail (error, CNCLIP_ERROR_FORMAT, "entry %s: short zip64 extra field", e->name);
      if (need_size) {
        e->size = rd64 (f);
        f += 8;
      }
      if (need_csize) {
        e->compressed_size = rd64 (f);
        f += 8;
      }
      if (need_offset)
        e->header_offset = rd64 (f);
      return TRUE;
    }
    pos += 4 + len;
  }
  return zip_fail (error, CNCLIP_ERROR_FORMAT, "entry %s: 32-bit field saturated but no zip64 "
      "extra field", e->name);
}

static gboolean
valid_name (const guint8 *p, guint len)
{
  /* g_utf8_validate_len() refuses NUL too. */
  return g_utf8_validate_len ((const char *) p, len, NULL);
}

/* Reads one central entry at data + pos (inside the central directory,
 * which ends at @cd_end) into @e and advances *pos. */
static gboolean
read_central_entry (const guint8 *data, gsize size, guint64 cd_end, guint64 *pos,
    CnclipZipEntry *e, GError **error)
{
  const guint8 *h = data + *pos;
  if (cd_end - *pos < CENTRAL_SIZE)
    return zip_fail (error, CNCLIP_ERROR_FORMAT, "central directory ends before its last "
        "entry (entry count and directory size disagree)");
  if (rd32 (h) != SIG_CENTRAL)
    return zip_fail (error, CNCLIP_ERROR_FORMAT, "bad central directory entry signature at "
        "offset %" G_GUINT64_FORMAT, *pos);
  guint name_len = rd16 (h + 28), extra_len = rd16 (h + 30), comment_len = rd16 (h + 32);
  if (cd_end - *pos - CENTRAL_SIZE < (guint64) name_len + extra_len + comment_len)
    return zip_fail (error, CNCLIP_ERROR_FORMAT, "central directory entry at offset %"
        G_GUINT64_FORMAT " overruns the directory", *pos);
  if (!valid_name (h + CENTRAL_SIZE, name_len))
    return zip_fail (error, CNCLIP_ERROR_FORMAT, "entry name at offset %" G_GUINT64_FORMAT
        " is not valid UTF-8 (or contains NUL)", *pos);
  e->name = g_strndup ((const char *) h + CENTRAL_SIZE, name_len);
  e->flags = rd16 (h + 8);
  e->method = rd16 (h + 10);
  e->crc32 = rd32 (h + 16);
  e->compressed_size = rd32 (h + 20);
  e->size = rd32 (h + 24);
  e->header_offset = rd32 (h + 42);
  gboolean need_csize = e->compressed_size == 0xffffffffu;
  gboolean need_size = e->size == 0xffffffffu;
  gboolean need_offset = e->header_offset == 0xffffffffu;
  if ((need_csize || need_size || need_offset)
      && !apply_zip64_extra (h + CENTRAL_SIZE + name_len, extra_len, need_size, need_csize,
          need_offset, e, error))
    return FALSE;
  if (rd16 (h + 34) != 0 && rd16 (h + 34) != 0xffff)
    return zip_fail (error, CNCLIP_ERROR_UNSUPPORTED, "entry %s is on another disk", e->name);
  if (e->flags & 1)
    return zip_fail (error, CNCLIP_ERROR_UNSUPPORTED, "entry %s is encrypted", e->name);
  if (e->method == 0 && e->compressed_size != e->size)
    return zip_fail (error, CNCLIP_ERROR_FORMAT, "stored entry %s has compressed size %"
        G_GUINT64_FORMAT " but size %" G_GUINT64_FORMAT, e->name, e->compressed_size, e->size);

  /* The local header gives the data start (its extra field differs from the
   * central one: torch pads there to align the data to 64 bytes). Local
   * headers and data must precede the central directory. */
  guint64 lh = e->header_offset;
  if (lh > size || size - lh < LOCAL_SIZE || rd32 (data + lh) != SIG_LOCAL)
    return zip_fail (error, CNCLIP_ERROR_FORMAT, "entry %s: no local header at offset %"
        G_GUINT64_FORMAT, e->name, lh);
  guint local_name = rd16 (data + lh + 26), local_extra = rd16 (data + lh + 28);
  guint64 start = lh + LOCAL_SIZE + local_name + local_extra;
  if (start > size)
    return zip_fail (error, CNCLIP_ERROR_FORMAT, "entry %s: local header runs past the end of "
        "the file", e->name);
  if (local_name != name_len || memcmp (data + lh + LOCAL_SIZE, e->name, name_len) != 0)
    return zip_fail (error, CNCLIP_ERROR_FORMAT, "entry %s: local header names another file",
        e->name);
  e->data_offset = start;
  *pos += CENTRAL_SIZE + name_len + extra_len + comment_len;
  return TRUE;
}

CnclipZip *
cnclip_zip_parse (const guint8 *data, gsize size, GError **error)
{
  g_return_val_if_fail (data != NULL || size == 0, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  CnclipZip *zip = g_new0 (CnclipZip, 1);
  guint64 eocd = 0, n_entries = 0;
  gboolean has_zip64;

  if (!find_eocd (data, size, &eocd, error))
    goto fail;
  zip->eocd_offset = eocd;
  const guint8 *r = data + eocd;
  if (rd16 (r + 4) != 0 || rd16 (r + 6) != 0 || rd16 (r + 8) != rd16 (r + 10)) {
    zip_fail (error, CNCLIP_ERROR_UNSUPPORTED, "multi-disk zip archives are not supported");
    goto fail;
  }
  guint64 classic_n = rd16 (r + 10), classic_size = rd32 (r + 12), classic_offset = rd32 (r + 16);
  if (!read_zip64 (data, eocd, zip, &n_entries, &has_zip64, error))
    goto fail;
  guint64 cd_limit;              /* the directory must end before this */
  if (has_zip64) {
    /* Classic fields are either saturated or equal to the zip64 ones. */
    if ((classic_n != 0xffff && classic_n != n_entries)
        || (classic_size != 0xffffffffu && classic_size != zip->cd_size)
        || (classic_offset != 0xffffffffu && classic_offset != zip->cd_offset)) {
      zip_fail (error, CNCLIP_ERROR_FORMAT, "zip64 and classic end records disagree");
      goto fail;
    }
    cd_limit = zip->zip64_eocd_offset;
  } else {
    if (classic_n == 0xffff || classic_size == 0xffffffffu || classic_offset == 0xffffffffu) {
      zip_fail (error, CNCLIP_ERROR_FORMAT, "zip64 values announced but no zip64 locator");
      goto fail;
    }
    n_entries = classic_n;
    zip->cd_size = classic_size;
    zip->cd_offset = classic_offset;
    cd_limit = eocd;
  }
  if (zip->cd_offset > cd_limit || cd_limit - zip->cd_offset < zip->cd_size) {
    zip_fail (error, CNCLIP_ERROR_FORMAT, "central directory (offset %" G_GUINT64_FORMAT
        ", size %" G_GUINT64_FORMAT ") is outside the file", zip->cd_offset, zip->cd_size);
    goto fail;
  }
  if (n_entries > zip->cd_size / CENTRAL_SIZE) {
    zip_fail (error, CNCLIP_ERROR_FORMAT, "%" G_GUINT64_FORMAT " entries cannot fit in a "
        "central directory of %" G_GUINT64_FORMAT " bytes", n_entries, zip->cd_size);
    goto fail;
  }
  if (n_entries > CNCLIP_ZIP_MAX_ENTRIES) {
    zip_fail (error, CNCLIP_ERROR_TOO_LARGE, "%" G_GUINT64_FORMAT " entries (limit %d)",
        n_entries, CNCLIP_ZIP_MAX_ENTRIES);
    goto fail;
  }

  zip->entries = g_new0 (CnclipZipEntry, n_entries);
  zip->index = g_hash_table_new (g_str_hash, g_str_equal);
  guint64 pos = zip->cd_offset, cd_end = zip->cd_offset + zip->cd_size;
  for (guint64 i = 0; i < n_entries; i++) {
    CnclipZipEntry *e = &zip->entries[i];
    zip->n_entries = i + 1;      /* so cnclip_zip_free() frees the name */
    if (!read_central_entry (data, size, cd_end, &pos, e, error))
      goto fail;
    /* Entry data (and local headers) live before the central directory. */
    if (e->header_offset >= zip->cd_offset || e->data_offset > zip->cd_offset
        || zip->cd_offset - e->data_offset < e->compressed_size) {
      zip_fail (error, CNCLIP_ERROR_FORMAT, "entry %s: data (offset %" G_GUINT64_FORMAT
          ", %" G_GUINT64_FORMAT " bytes) runs outside the file data", e->name, e->data_offset,
          e->compressed_size);
      goto fail;
    }
    if (g_hash_table_contains (zip->index, e->name)) {
      zip_fail (error, CNCLIP_ERROR_FORMAT, "entry %s appears twice", e->name);
      goto fail;
    }
    g_hash_table_insert (zip->index, e->name, e);
  }
  if (pos != cd_end) {
    zip_fail (error, CNCLIP_ERROR_FORMAT, "central directory has %" G_GUINT64_FORMAT
        " bytes after its %" G_GUINT64_FORMAT " entries (entry count wrong)", cd_end - pos,
        n_entries);
    goto fail;
  }
  return zip;

fail:
  cnclip_zip_free (zip);
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* Checkpoint: data.pkl + storages                                          */

gboolean
cnclip_strides_are_contiguous (int ndim, const gint64 *shape, const gint64 *strides)
{
  for (int k = 0; k < ndim; k++)
    if (shape[k] == 0)
      return TRUE;
  gint64 expected = 1;
  for (int k = ndim - 1; k >= 0; k--) {
    if (shape[k] != 1 && strides[k] != expected)
      return FALSE;
    expected *= shape[k];
  }
  return TRUE;
}

void
cnclip_torch_checkpoint_free (CnclipTorchCheckpoint *ckpt)
{
  if (ckpt == NULL)
    return;
  cnclip_zip_free (ckpt->zip);
  cnclip_pickle_free (ckpt->pickle);
  g_free (ckpt->prefix);
  g_free (ckpt->tensors);
  g_free (ckpt);
}

/* Explains files that are not zip archives. */
static void
not_a_zip (const guint8 *data, gsize size, GError **error)
{
  if (size == 0)
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT, "empty file");
  else if (data[0] == 0x80 || (size >= 262 && memcmp (data + 257, "ustar", 5) == 0))
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_UNSUPPORTED,
        "legacy (non-zip) torch.save format, written by PyTorch < 1.6 or with "
        "_use_new_zipfile_serialization=False, is not supported: re-save it with a current "
        "torch.save or convert it to safetensors");
  else
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT,
        "not a PyTorch checkpoint (no zip signature)");
}

static gboolean
compressed_error (const CnclipZipEntry *e, GError **error)
{
  g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_UNSUPPORTED, "entry %s is compressed "
      "(method %u); re-save with torch.save or convert to safetensors", e->name, e->method);
  return FALSE;
}

/* Finds P/data.pkl (the folder P is the base name at save time, not the
 * current file name) and checks the archive is a torch.save one. */
static const CnclipZipEntry *
find_data_pkl (CnclipTorchCheckpoint *ckpt, GError **error)
{
  const CnclipZip *zip = ckpt->zip;
  const CnclipZipEntry *found = NULL;
  static const char suffix[] = "/data.pkl";
  const gsize suffix_len = sizeof (suffix) - 1;

  for (guint i = 0; i < zip->n_entries; i++) {
    const CnclipZipEntry *e = &zip->entries[i];
    gsize len = strlen (e->name);
    if (len <= suffix_len || strcmp (e->name + len - suffix_len, suffix) != 0)
      continue;
    if (found != NULL) {
      g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT, "two pickles (%s and %s) in one "
          "checkpoint", found->name, e->name);
      return NULL;
    }
    found = e;
  }
  if (found == NULL) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT,
        "zip archive without a data.pkl entry: not a torch.save checkpoint");
    return NULL;
  }
  ckpt->prefix = g_strndup (found->name, strlen (found->name) - suffix_len);

  char *constants = g_strconcat (ckpt->prefix, "/constants.pkl", NULL);
  gboolean script = cnclip_zip_lookup (zip, constants) != NULL;
  g_free (constants);
  if (script) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_UNSUPPORTED, "TorchScript archive "
        "(torch.jit.save) is not supported: save the state dict with torch.save or convert "
        "to safetensors");
    return NULL;
  }
  if (found->method != 0) {
    compressed_error (found, error);
    return NULL;
  }
  if (found->size > CNCLIP_TORCH_MAX_PICKLE_SIZE) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_TOO_LARGE, "%s has %" G_GUINT64_FORMAT
        " bytes (limit %u)", found->name, found->size, CNCLIP_TORCH_MAX_PICKLE_SIZE);
    return NULL;
  }
  return found;
}

/* torch >= 2 records the byte order of the storages. */
static gboolean
check_byteorder (const CnclipTorchCheckpoint *ckpt, const guint8 *data, GError **error)
{
  char *name = g_strconcat (ckpt->prefix, "/byteorder", NULL);
  const CnclipZipEntry *e = cnclip_zip_lookup (ckpt->zip, name);
  g_free (name);
  if (e == NULL)
    return TRUE;
  if (e->method != 0)
    return compressed_error (e, error);
  if (e->size == 6 && memcmp (data + e->data_offset, "little", 6) == 0)
    return TRUE;
  if (e->size == 3 && memcmp (data + e->data_offset, "big", 3) == 0) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_UNSUPPORTED,
        "big-endian checkpoint is not supported");
    return FALSE;
  }
  g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT, "%s holds neither 'little' nor 'big'",
      e->name);
  return FALSE;
}

/* Ties a tensor record to its storage entry and describes it as a view. */
static gboolean
resolve_tensor (const CnclipTorchCheckpoint *ckpt, const guint8 *data, const char *name,
    const CnclipPickleTensor *pt, CnclipTorchTensor *t, GError **error)
{
  const CnclipPickleStorage *s = pt->storage;
  gsize elsize = cnclip_dtype_size (s->dtype);
  char *entry_name = g_strconcat (ckpt->prefix, "/data/", s->key, NULL);
  const CnclipZipEntry *e = cnclip_zip_lookup (ckpt->zip, entry_name);

  if (e == NULL) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT, "tensor %s: storage '%s' (entry %s) "
        "is missing", name, s->key, entry_name);
    g_free (entry_name);
    return FALSE;
  }
  g_free (entry_name);
  if (e->method != 0)
    return compressed_error (e, error);
  /* numel * elsize cannot overflow: the unpickler checked it. */
  if (e->size != (guint64) s->numel * elsize) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT, "tensor %s: storage entry %s has %"
        G_GUINT64_FORMAT " bytes, but %" G_GINT64_FORMAT " elements of %s need %"
        G_GUINT64_FORMAT, name, e->name, e->size, s->numel, cnclip_dtype_to_string (s->dtype),
        (guint64) s->numel * elsize);
    return FALSE;
  }
  if (e->data_offset % elsize != 0) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_UNSUPPORTED, "tensor %s: storage entry %s is "
        "not aligned to its %" G_GSIZE_FORMAT "-byte elements; re-save with torch.save",
        name, e->name, elsize);
    return FALSE;
  }

  t->name = name;
  t->dtype = s->dtype;
  t->storage_type = s->type;
  t->storage_key = s->key;
  t->location = s->location;
  t->storage_numel = s->numel;
  t->storage_offset = pt->offset;
  t->ndim = pt->ndim;
  memcpy (t->shape, pt->size, sizeof (t->shape));
  memcpy (t->strides, pt->stride, sizeof (t->strides));
  t->n_elements = pt->n_elements;
  t->contiguous = cnclip_strides_are_contiguous (t->ndim, t->shape, t->strides);
  t->entry = e;
  /* offset <= numel was checked, so this stays inside the entry. */
  t->data = data + e->data_offset + (gsize) pt->offset * elsize;
  return TRUE;
}

/* Picks the name -> tensor dict: the top level itself (pytorch_model.bin) or
 * its 'state_dict' (cn_clip training checkpoints). */
static const CnclipPickleValue *
find_state_dict (CnclipTorchCheckpoint *ckpt, GError **error)
{
  const CnclipPickleValue *root = cnclip_pickle_get_root (ckpt->pickle);
  if (root->kind != CNCLIP_PICKLE_DICT) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT, "the pickled object is %s, not a "
        "state dict", cnclip_pickle_kind_name (root->kind));
    return NULL;
  }
  const CnclipPickleValue *sd = cnclip_pickle_dict_lookup (root, "state_dict");
  if (sd == NULL || sd->kind == CNCLIP_PICKLE_TENSOR)
    return root;
  if (sd->kind != CNCLIP_PICKLE_DICT) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT, "'state_dict' is %s, not a dict",
        cnclip_pickle_kind_name (sd->kind));
    return NULL;
  }
  ckpt->has_state_dict = TRUE;
  return sd;
}

CnclipTorchCheckpoint *
cnclip_torch_checkpoint_parse (const guint8 *data, gsize size, GError **error)
{
  g_return_val_if_fail (data != NULL || size == 0, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (size < 4 || memcmp (data, "PK\3\4", 4) != 0) {
    not_a_zip (data, size, error);
    return NULL;
  }

  CnclipTorchCheckpoint *ckpt = g_new0 (CnclipTorchCheckpoint, 1);
  GHashTable *seen = NULL;
  ckpt->zip = cnclip_zip_parse (data, size, error);
  if (ckpt->zip == NULL)
    goto fail;
  const CnclipZipEntry *pkl = find_data_pkl (ckpt, error);
  if (pkl == NULL || !check_byteorder (ckpt, data, error))
    goto fail;
  const guint8 *pkl_data = data + pkl->data_offset;
  /* torch.save with compute_crc32=False stores 0: "not computed". */
  if (pkl->crc32 != 0 && cnclip_crc32 (0, pkl_data, pkl->size) != pkl->crc32) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT, "%s: CRC-32 mismatch (corrupt file)",
        pkl->name);
    goto fail;
  }
  ckpt->pickle = cnclip_pickle_load (pkl_data, pkl->size, error);
  if (ckpt->pickle == NULL) {
    g_prefix_error (error, "%s: ", pkl->name);
    goto fail;
  }

  const CnclipPickleValue *sd = find_state_dict (ckpt, error);
  if (sd == NULL)
    goto fail;
  ckpt->state_dict_ordered = sd->v.dict.ordered;
  if (sd->v.dict.n_pairs > CNCLIP_TORCH_MAX_TENSORS) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_TOO_LARGE, "%u tensors (limit %d)",
        sd->v.dict.n_pairs, CNCLIP_TORCH_MAX_TENSORS);
    goto fail;
  }
  ckpt->tensors = g_new0 (CnclipTorchTensor, MAX (sd->v.dict.n_pairs, 1));
  seen = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; i < sd->v.dict.n_pairs; i++) {
    const CnclipPickleValue *key = sd->v.dict.items[2 * i];
    const CnclipPickleValue *value = sd->v.dict.items[2 * i + 1];
    if (key->kind != CNCLIP_PICKLE_STR) {
      g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT, "state dict key %u is %s, not a "
          "string", i, cnclip_pickle_kind_name (key->kind));
      goto fail;
    }
    if (value->kind != CNCLIP_PICKLE_TENSOR) {
      g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT, "'%s' is %s, not a tensor "
          "(expected a state dict, or a dict with a 'state_dict' entry)", key->v.str.str,
          cnclip_pickle_kind_name (value->kind));
      goto fail;
    }
    if (!g_hash_table_add (seen, (gpointer) key->v.str.str)) {
      g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT, "tensor %s appears twice",
          key->v.str.str);
      goto fail;
    }
    if (!resolve_tensor (ckpt, data, key->v.str.str, value->v.tensor,
            &ckpt->tensors[ckpt->n_tensors], error))
      goto fail;
    ckpt->n_tensors++;
  }
  g_hash_table_unref (seen);
  return ckpt;

fail:
  if (seen != NULL)
    g_hash_table_unref (seen);
  cnclip_torch_checkpoint_free (ckpt);
  return NULL;
}

gboolean
cnclip_torch_checkpoint_verify_crc (const CnclipTorchCheckpoint *ckpt, const guint8 *data,
    GError **error)
{
  g_return_val_if_fail (ckpt != NULL && data != NULL, FALSE);
  GHashTable *done = g_hash_table_new (NULL, NULL);
  gboolean ok = TRUE;
  for (guint i = 0; i < ckpt->n_tensors && ok; i++) {
    const CnclipZipEntry *e = ckpt->tensors[i].entry;
    if (!g_hash_table_add (done, (gpointer) e) || (e->crc32 == 0 && e->size > 0))
      continue;
    if (cnclip_crc32 (0, data + e->data_offset, e->size) != e->crc32) {
      g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT, "%s: CRC-32 mismatch (corrupt "
          "file)", e->name);
      ok = FALSE;
    }
  }
  g_hash_table_unref (done);
  return ok;
}

/* ------------------------------------------------------------------------ */
/* cn_clip names -> Hugging Face names                                      */

typedef struct
{
  const char *from;
  const char *to;
} Rename;

static const Rename top_renames[] = {
  { "logit_scale", "logit_scale" },
  { "visual.class_embedding", "vision_model.embeddings.class_embedding" },
  { "visual.positional_embedding", "vision_model.embeddings.position_embedding.weight" },
  { "visual.conv1.weight", "vision_model.embeddings.patch_embedding.weight" },
  { "visual.ln_pre.weight", "vision_model.pre_layrnorm.weight" },
  { "visual.ln_pre.bias", "vision_model.pre_layrnorm.bias" },
  { "visual.ln_post.weight", "vision_model.post_layernorm.weight" },
  { "visual.ln_post.bias", "vision_model.post_layernorm.bias" },
};

/* Inside "visual.transformer.resblocks.{i}." -> "vision_model.encoder.layers.{i}." */
static const Rename block_renames[] = {
  { "attn.out_proj.weight", "self_attn.out_proj.weight" },
  { "attn.out_proj.bias", "self_attn.out_proj.bias" },
  { "ln_1.weight", "layer_norm1.weight" },
  { "ln_1.bias", "layer_norm1.bias" },
  { "ln_2.weight", "layer_norm2.weight" },
  { "ln_2.bias", "layer_norm2.bias" },
  { "mlp.c_fc.weight", "mlp.fc1.weight" },
  { "mlp.c_fc.bias", "mlp.fc1.bias" },
  { "mlp.c_proj.weight", "mlp.fc2.weight" },
  { "mlp.c_proj.bias", "mlp.fc2.bias" },
};

static void
clear_info (gpointer p)
{
  CnclipTensorInfo *info = p;
  g_free (info->name);
}

static void
add_view (GArray *out, const CnclipTorchTensor *t, char *name)
{
  CnclipTensorInfo info = { 0 };
  info.name = name;
  info.dtype = t->dtype;
  info.ndim = t->ndim;
  memcpy (info.shape, t->shape, sizeof (info.shape));
  memcpy (info.strides, t->strides, sizeof (info.strides));
  info.data = t->data;
  info.n_elements = t->n_elements;
  info.contiguous = t->contiguous;
  g_array_append_val (out, info);
}

static CnclipTensorInfo *
last_info (GArray *out)
{
  return &g_array_index (out, CnclipTensorInfo, out->len - 1);
}

static const char *
strip_prefix (const char *s, const char *prefix)
{
  gsize n = strlen (prefix);
  return strncmp (s, prefix, n) == 0 ? s + n : NULL;
}

/* [H, P] -> [P, H] with swapped strides: element [p][h] stays storage[h*P + p]. */
static gboolean
add_transposed (GArray *out, const CnclipTorchTensor *t, const char *hf_name, GError **error)
{
  if (t->ndim != 2) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_SHAPE, "%s has %d dimensions, expected 2",
        t->name, t->ndim);
    return FALSE;
  }
  add_view (out, t, g_strdup (hf_name));
  CnclipTensorInfo *info = last_info (out);
  info->shape[0] = t->shape[1];
  info->shape[1] = t->shape[0];
  info->strides[0] = t->strides[1];
  info->strides[1] = t->strides[0];
  info->contiguous = cnclip_strides_are_contiguous (2, info->shape, info->strides);
  return TRUE;
}

/* in_proj_weight [3W, W] / in_proj_bias [3W]: rows [0,W) q, [W,2W) k, [2W,3W) v,
 * exactly as nn.MultiheadAttention slices them. */
static gboolean
add_qkv (GArray *out, const CnclipTorchTensor *t, const char *layer, const char *kind,
    GError **error)
{
  int want = strcmp (kind, "weight") == 0 ? 2 : 1;
  if (t->ndim != want || t->shape[0] % 3 != 0 || (want == 2 && t->shape[0] != 3 * t->shape[1])) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_SHAPE, "%s must have shape %s, has %d "
        "dimensions of sizes %" G_GINT64_FORMAT ", %" G_GINT64_FORMAT, t->name,
        want == 2 ? "[3W, W]" : "[3W]", t->ndim, t->ndim > 0 ? t->shape[0] : 0,
        t->ndim > 1 ? t->shape[1] : 0);
    return FALSE;
  }
  static const char *const parts[3] = { "q", "k", "v" };
  gint64 w = t->shape[0] / 3;
  gsize elsize = cnclip_dtype_size (t->dtype);
  for (int j = 0; j < 3; j++) {
    add_view (out, t, g_strdup_printf ("vision_model.encoder.layers.%s.self_attn.%s_proj.%s",
            layer, parts[j], kind));
    CnclipTensorInfo *info = last_info (out);
    info->shape[0] = w;
    info->n_elements = t->n_elements / 3;
    /* An empty view addresses nothing; keep its pointer where it is valid. */
    if (info->n_elements > 0)
      info->data = t->data + (gsize) (j * w * t->strides[0]) * elsize;
    info->contiguous = cnclip_strides_are_contiguous (info->ndim, info->shape, info->strides);
  }
  return TRUE;
}

/* One resblock tensor; @rest follows "visual.transformer.resblocks.". */
static gboolean
map_block (GArray *out, const CnclipTorchTensor *t, const char *stripped, const char *rest,
    GError **error)
{
  gsize digits = 0;
  while (g_ascii_isdigit (rest[digits]))
    digits++;
  if (digits == 0 || digits > 6 || rest[digits] != '.') {
    add_view (out, t, g_strdup (stripped));
    return TRUE;
  }
  char *layer = g_strndup (rest, digits);
  const char *field = rest + digits + 1;
  gboolean ok = TRUE;
  if (strcmp (field, "attn.in_proj_weight") == 0)
    ok = add_qkv (out, t, layer, "weight", error);
  else if (strcmp (field, "attn.in_proj_bias") == 0)
    ok = add_qkv (out, t, layer, "bias", error);
  else {
    const char *to = NULL;
    for (guint i = 0; i < G_N_ELEMENTS (block_renames); i++)
      if (strcmp (field, block_renames[i].from) == 0)
        to = block_renames[i].to;
    if (to != NULL)
      add_view (out, t, g_strdup_printf ("vision_model.encoder.layers.%s.%s", layer, to));
    else
      add_view (out, t, g_strdup (stripped));
  }
  g_free (layer);
  return ok;
}

static gboolean
map_official (GArray *out, const CnclipTorchTensor *t, const char *stripped, GError **error)
{
  const char *rest;
  if (strstr (stripped, "bert.pooler") != NULL)
    return TRUE;                 /* cn_clip's loader drops the unused pooler */
  if (strcmp (stripped, "text_projection") == 0)
    return add_transposed (out, t, "text_projection.weight", error);
  if (strcmp (stripped, "visual.proj") == 0)
    return add_transposed (out, t, "visual_projection.weight", error);
  if ((rest = strip_prefix (stripped, "visual.transformer.resblocks.")) != NULL)
    return map_block (out, t, stripped, rest, error);
  if ((rest = strip_prefix (stripped, "bert.")) != NULL) {
    add_view (out, t, g_strconcat ("text_model.", rest, NULL));
    return TRUE;
  }
  for (guint i = 0; i < G_N_ELEMENTS (top_renames); i++) {
    if (strcmp (stripped, top_renames[i].from) == 0) {
      add_view (out, t, g_strdup (top_renames[i].to));
      return TRUE;
    }
  }
  add_view (out, t, g_strdup (stripped));
  return TRUE;
}

static const char *
strip_module (const char *name)
{
  const char *rest = strip_prefix (name, "module.");
  return rest != NULL ? rest : name;
}

GArray *
cnclip_torch_checkpoint_to_hf (const CnclipTorchCheckpoint *ckpt, GError **error)
{
  g_return_val_if_fail (ckpt != NULL, NULL);
  GArray *out = g_array_sized_new (FALSE, TRUE, sizeof (CnclipTensorInfo), ckpt->n_tensors + 16);
  g_array_set_clear_func (out, clear_info);

  gboolean official = FALSE;
  for (guint i = 0; i < ckpt->n_tensors && !official; i++) {
    const char *s = strip_module (ckpt->tensors[i].name);
    official = g_str_has_prefix (s, "visual.") || g_str_has_prefix (s, "bert.")
        || strcmp (s, "text_projection") == 0;
  }
  for (guint i = 0; i < ckpt->n_tensors; i++) {
    const CnclipTorchTensor *t = &ckpt->tensors[i];
    const char *stripped = strip_module (t->name);
    if (!official)
      add_view (out, t, g_strdup (stripped));
    else if (!map_official (out, t, stripped, error)) {
      g_array_free (out, TRUE);
      return NULL;
    }
  }
  return out;
}

/* ------------------------------------------------------------------------ */

CnclipWeightFile *
cnclip_torch_open (const char *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  CnclipWeightFile *file = cnclip_weight_file_map (path, error);
  if (file == NULL)
    return NULL;
  const guint8 *data = cnclip_weight_file_get_data (file);
  gsize size = cnclip_weight_file_get_size (file);
  CnclipTorchCheckpoint *ckpt = cnclip_torch_checkpoint_parse (data, size, error);
  GArray *infos = ckpt != NULL ? cnclip_torch_checkpoint_to_hf (ckpt, error) : NULL;
  gboolean ok = infos != NULL;
  for (guint i = 0; ok && i < infos->len; i++)
    ok = cnclip_weight_file_add_tensor (file, &g_array_index (infos, CnclipTensorInfo, i), error);
  if (infos != NULL)
    g_array_free (infos, TRUE);
  cnclip_torch_checkpoint_free (ckpt);
  if (!ok) {
    g_prefix_error (error, "%s: ", path);
    cnclip_weight_file_free (file);
    return NULL;
  }
  return file;
}
