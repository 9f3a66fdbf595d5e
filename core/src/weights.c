/* weights.c: the memory-mapped weights file, its tensor table and the dtype
 * conversions every parser and the binder share (see weights.h).
 *
 * The mapping is read-only and private: tensors that are already contiguous
 * float32 are used in place, and pages whose contents were converted or packed
 * elsewhere can be dropped (cnclip_weight_file_release) without losing
 * anything, because the kernel re-reads them from the file if ever touched.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cnclip.h"
#include "weights.h"

/* Tensors are read in place as little-endian data. */
#if G_BYTE_ORDER != G_LITTLE_ENDIAN
#error "gst-cnclip reads weights in place and needs a little-endian host"
#endif

struct _CnclipWeightFile
{
  char *path;
  const guint8 *data;
  gsize size;
  GPtrArray *tensors;            /* CnclipTensorInfo *, insertion order */
  GHashTable *by_name;           /* name -> CnclipTensorInfo * (name owned by the info) */
  GHashTable *unusable;          /* name -> dtype string, both owned */
  int fd;                        /* kept open for cnclip_weight_file_read() */
};

gsize
cnclip_dtype_size (CnclipDType dtype)
{
  switch (dtype) {
    case CNCLIP_DTYPE_F64:
    case CNCLIP_DTYPE_I64:
      return 8;
    case CNCLIP_DTYPE_F32:
    case CNCLIP_DTYPE_I32:
      return 4;
    case CNCLIP_DTYPE_F16:
    case CNCLIP_DTYPE_BF16:
      return 2;
    case CNCLIP_DTYPE_I8:
    case CNCLIP_DTYPE_U8:
    case CNCLIP_DTYPE_BOOL:
      return 1;
    default:
      return 0;
  }
}

const char *
cnclip_dtype_to_string (CnclipDType dtype)
{
  switch (dtype) {
    case CNCLIP_DTYPE_F32: return "F32";
    case CNCLIP_DTYPE_F16: return "F16";
    case CNCLIP_DTYPE_BF16: return "BF16";
    case CNCLIP_DTYPE_F64: return "F64";
    case CNCLIP_DTYPE_I64: return "I64";
    case CNCLIP_DTYPE_I32: return "I32";
    case CNCLIP_DTYPE_I8: return "I8";
    case CNCLIP_DTYPE_U8: return "U8";
    case CNCLIP_DTYPE_BOOL: return "BOOL";
    default: return "unknown";
  }
}

gboolean
cnclip_dtype_is_float (CnclipDType dtype)
{
  return dtype == CNCLIP_DTYPE_F32 || dtype == CNCLIP_DTYPE_F16 || dtype == CNCLIP_DTYPE_BF16
      || dtype == CNCLIP_DTYPE_F64;
}

static void
tensor_info_free (gpointer data)
{
  CnclipTensorInfo *info = data;
  g_free (info->name);
  g_free (info);
}

CnclipWeightFile *
cnclip_weight_file_map (const char *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);

  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO, "%s: cannot open: %s", path,
        g_strerror (e));
    return NULL;
  }
  struct stat st;
  if (fstat (fd, &st) != 0) {
    int e = errno;
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO, "%s: cannot stat: %s", path,
        g_strerror (e));
    close (fd);
    return NULL;
  }
  if (!S_ISREG (st.st_mode)) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO, "%s: not a regular file", path);
    close (fd);
    return NULL;
  }
  if (st.st_size <= 0) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO, "%s: file is empty", path);
    close (fd);
    return NULL;
  }
  if ((guint64) st.st_size > G_MAXSIZE / 2) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_TOO_LARGE, "%s: file too large to map", path);
    close (fd);
    return NULL;
  }
  void *data = mmap (NULL, (gsize) st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (data == MAP_FAILED) {
    int e = errno;
    close (fd);
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO, "%s: cannot map: %s", path,
        g_strerror (e));
    return NULL;
  }

  CnclipWeightFile *file = g_new0 (CnclipWeightFile, 1);
  file->path = g_strdup (path);
  file->data = data;
  file->size = (gsize) st.st_size;
  file->fd = fd;
  file->tensors = g_ptr_array_new_with_free_func (tensor_info_free);
  file->by_name = g_hash_table_new (g_str_hash, g_str_equal);
  file->unusable = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  return file;
}

void
cnclip_weight_file_free (CnclipWeightFile *file)
{
  if (file == NULL)
    return;
  if (file->data)
    munmap ((void *) file->data, file->size);
  if (file->fd >= 0)
    close (file->fd);
  g_hash_table_unref (file->by_name);
  g_hash_table_unref (file->unusable);
  g_ptr_array_unref (file->tensors);
  g_free (file->path);
  g_free (file);
}

const char *
cnclip_weight_file_get_path (const CnclipWeightFile *file)
{
  g_return_val_if_fail (file != NULL, NULL);
  return file->path;
}

const guint8 *
cnclip_weight_file_get_data (const CnclipWeightFile *file)
{
  g_return_val_if_fail (file != NULL, NULL);
  return file->data;
}

gsize
cnclip_weight_file_get_size (const CnclipWeightFile *file)
{
  g_return_val_if_fail (file != NULL, 0);
  return file->size;
}

gboolean
cnclip_tensor_span (const CnclipTensorInfo *info, gint64 *n_elements, gint64 *span_bytes)
{
  gsize esize = cnclip_dtype_size (info->dtype);
  if (esize == 0 || info->ndim < 0 || info->ndim > CNCLIP_MAX_DIMS)
    return FALSE;
  gint64 n = 1, last = 0;
  for (int k = 0; k < info->ndim; k++) {
    if (info->shape[k] < 0 || info->strides[k] < 0)
      return FALSE;
    if (__builtin_mul_overflow (n, info->shape[k], &n))
      return FALSE;
  }
  if (n > 0) {
    /* Highest element index reachable: sum of (size - 1) * stride. */
    for (int k = 0; k < info->ndim; k++) {
      gint64 term;
      if (__builtin_mul_overflow (info->shape[k] - 1, info->strides[k], &term)
          || __builtin_add_overflow (last, term, &last))
        return FALSE;
    }
    gint64 bytes;
    if (__builtin_add_overflow (last, (gint64) 1, &bytes)
        || __builtin_mul_overflow (bytes, (gint64) esize, &bytes))
      return FALSE;
    last = bytes;
  }
  if (n_elements)
    *n_elements = n;
  if (span_bytes)
    *span_bytes = n > 0 ? last : 0;
  return TRUE;
}

static gboolean
strides_are_row_major (const CnclipTensorInfo *info)
{
  gint64 expected = 1;
  for (int k = info->ndim - 1; k >= 0; k--) {
    /* The stride of a dimension of size 1 never matters. */
    if (info->shape[k] != 1 && info->strides[k] != expected)
      return FALSE;
    expected *= info->shape[k];
  }
  return TRUE;
}

gboolean
cnclip_weight_file_add_tensor (CnclipWeightFile *file, const CnclipTensorInfo *info,
    GError **error)
{
  g_return_val_if_fail (file != NULL, FALSE);
  g_return_val_if_fail (info != NULL && info->name != NULL, FALSE);

  gint64 n = 0, span = 0;
  if (!cnclip_tensor_span (info, &n, &span)) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT,
        "%s: tensor %s: invalid dtype, shape or strides", file->path, info->name);
    return FALSE;
  }
  if (n != info->n_elements) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT,
        "%s: tensor %s: element count %" G_GINT64_FORMAT " does not match its shape (%"
        G_GINT64_FORMAT ")", file->path, info->name, info->n_elements, n);
    return FALSE;
  }
  /* Pointer comparisons only within the mapping: compare as integers. */
  guintptr base = (guintptr) file->data, p = (guintptr) info->data;
  if (p < base || p - base > file->size || (guint64) span > file->size - (p - base)) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT,
        "%s: tensor %s: data outside the file", file->path, info->name);
    return FALSE;
  }
  if (g_hash_table_contains (file->by_name, info->name)
      || g_hash_table_contains (file->unusable, info->name)) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT, "%s: tensor %s appears twice",
        file->path, info->name);
    return FALSE;
  }

  CnclipTensorInfo *copy = g_new (CnclipTensorInfo, 1);
  *copy = *info;
  copy->name = g_strdup (info->name);
  copy->contiguous = strides_are_row_major (info);
  for (int k = info->ndim; k < CNCLIP_MAX_DIMS; k++)
    copy->shape[k] = copy->strides[k] = 0;
  g_ptr_array_add (file->tensors, copy);
  g_hash_table_insert (file->by_name, copy->name, copy);
  return TRUE;
}

gboolean
cnclip_weight_file_add_unusable (CnclipWeightFile *file, const char *name, const char *dtype,
    GError **error)
{
  g_return_val_if_fail (file != NULL && name != NULL && dtype != NULL, FALSE);
  if (g_hash_table_contains (file->by_name, name)
      || g_hash_table_contains (file->unusable, name)) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_FORMAT, "%s: tensor %s appears twice",
        file->path, name);
    return FALSE;
  }
  g_hash_table_insert (file->unusable, g_strdup (name), g_strdup (dtype));
  return TRUE;
}

const char *
cnclip_weight_file_lookup_unusable (const CnclipWeightFile *file, const char *name)
{
  g_return_val_if_fail (file != NULL && name != NULL, NULL);
  return g_hash_table_lookup (file->unusable, name);
}

const CnclipTensorInfo *
cnclip_weight_file_lookup (const CnclipWeightFile *file, const char *name)
{
  g_return_val_if_fail (file != NULL && name != NULL, NULL);
  return g_hash_table_lookup (file->by_name, name);
}

guint
cnclip_weight_file_get_n_tensors (const CnclipWeightFile *file)
{
  g_return_val_if_fail (file != NULL, 0);
  return file->tensors->len;
}

const CnclipTensorInfo *
cnclip_weight_file_get_tensor (const CnclipWeightFile *file, guint index)
{
  g_return_val_if_fail (file != NULL, NULL);
  g_return_val_if_fail (index < file->tensors->len, NULL);
  return g_ptr_array_index (file->tensors, index);
}

void
cnclip_weight_file_release (CnclipWeightFile *file, const void *data, gsize size)
{
  g_return_if_fail (file != NULL);
  guintptr base = (guintptr) file->data, p = (guintptr) data;
  if (data == NULL || size == 0 || p < base || p - base >= file->size
      || size > file->size - (p - base))
    return;
  /* Only whole pages inside the range: neighbouring tensors may share the
   * first and last page. */
  guintptr page = (guintptr) sysconf (_SC_PAGESIZE);
  guintptr start = (p + page - 1) & ~(page - 1);
  guintptr end = (p + size) & ~(page - 1);
  if (end > start)
    madvise ((void *) start, end - start, MADV_DONTNEED);
}

void
cnclip_weight_file_read (const CnclipWeightFile *file, const void *data, gsize size, void *out)
{
  g_return_if_fail (file != NULL && out != NULL);
  guintptr base = (guintptr) file->data, p = (guintptr) data;
  g_return_if_fail (p >= base && p - base <= file->size && size <= file->size - (p - base));
  gsize done = 0;
  /* pread copies from the page cache without faulting the pages into the
   * mapping; whatever it cannot deliver comes from the mapping. */
  while (done < size) {
    ssize_t n = pread (file->fd, (guint8 *) out + done, size - done, (off_t) (p - base + done));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    done += (gsize) n;
  }
  if (done < size)
    memcpy ((guint8 *) out + done, (const guint8 *) data + done, size - done);
}

/* IEEE binary16 -> binary32, exact for every value (subnormals, inf, NaN). */
static inline float
half_to_float (guint16 h)
{
  guint32 sign = (guint32) (h & 0x8000) << 16;
  guint32 exp = (h >> 10) & 0x1f;
  guint32 mant = h & 0x3ff;
  guint32 bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {
      /* mant * 2^-24, exact in float32 */
      float f = (float) mant * 5.9604644775390625e-8f;
      return sign ? -f : f;
    }
  } else {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  }
  float f;
  memcpy (&f, &bits, 4);
  return f;
}

static inline float
bf16_to_float (guint16 h)
{
  guint32 bits = (guint32) h << 16;
  float f;
  memcpy (&f, &bits, 4);
  return f;
}

/* One element at @p (possibly unaligned). */
static inline float
read_float (const guint8 *p, CnclipDType dtype)
{
  switch (dtype) {
    case CNCLIP_DTYPE_F32: {
      float v;
      memcpy (&v, p, 4);
      return v;
    }
    case CNCLIP_DTYPE_F16: {
      guint16 v;
      memcpy (&v, p, 2);
      return half_to_float (v);
    }
    case CNCLIP_DTYPE_BF16: {
      guint16 v;
      memcpy (&v, p, 2);
      return bf16_to_float (v);
    }
    case CNCLIP_DTYPE_F64: {
      double v;
      memcpy (&v, p, 8);
      return (float) v;
    }
    case CNCLIP_DTYPE_I64: {
      gint64 v;
      memcpy (&v, p, 8);
      return (float) v;
    }
    case CNCLIP_DTYPE_I32: {
      gint32 v;
      memcpy (&v, p, 4);
      return (float) v;
    }
    case CNCLIP_DTYPE_I8:
      return (float) (gint8) * p;
    case CNCLIP_DTYPE_U8:
    case CNCLIP_DTYPE_BOOL:
      return (float) *p;
    default:
      return 0.0f;
  }
}

float
cnclip_tensor_get_float (const CnclipTensorInfo *info, gint64 index)
{
  g_return_val_if_fail (info != NULL, 0.0f);
  g_return_val_if_fail (index >= 0 && index < info->n_elements, 0.0f);
  gint64 offset = 0;
  if (info->contiguous) {
    offset = index;
  } else {
    for (int k = info->ndim - 1; k >= 0; k--) {
      offset += (index % info->shape[k]) * info->strides[k];
      index /= info->shape[k];
    }
  }
  return read_float (info->data + offset * (gint64) cnclip_dtype_size (info->dtype), info->dtype);
}

/* Converts @n elements @stride elements apart into @out. */
static void
convert_run (const guint8 *src, gint64 stride, gint64 n, CnclipDType dtype, float *out)
{
  const gint64 step = stride * (gint64) cnclip_dtype_size (dtype);
  if (dtype == CNCLIP_DTYPE_F32 && stride == 1) {
    memcpy (out, src, (gsize) n * 4);
    return;
  }
  switch (dtype) {
    case CNCLIP_DTYPE_F16:
      for (gint64 i = 0; i < n; i++, src += step) {
        guint16 v;
        memcpy (&v, src, 2);
        out[i] = half_to_float (v);
      }
      break;
    case CNCLIP_DTYPE_BF16:
      for (gint64 i = 0; i < n; i++, src += step) {
        guint16 v;
        memcpy (&v, src, 2);
        out[i] = bf16_to_float (v);
      }
      break;
    default:
      for (gint64 i = 0; i < n; i++, src += step)
        out[i] = read_float (src, dtype);
      break;
  }
}

gboolean
cnclip_tensor_to_f32 (const CnclipTensorInfo *info, float *out, GError **error)
{
  g_return_val_if_fail (info != NULL, FALSE);
  g_return_val_if_fail (out != NULL || info->n_elements == 0, FALSE);

  if (!cnclip_dtype_is_float (info->dtype)) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_DTYPE,
        "tensor %s has dtype %s, a float type is needed", info->name,
        cnclip_dtype_to_string (info->dtype));
    return FALSE;
  }
  if (info->n_elements == 0)
    return TRUE;
  if (info->contiguous || info->ndim == 0) {
    convert_run (info->data, 1, info->n_elements, info->dtype, out);
    return TRUE;
  }

  /* Strided: walk the outer dimensions with an index counter and convert
   * one innermost run at a time. */
  const int last = info->ndim - 1;
  const gint64 esize = (gint64) cnclip_dtype_size (info->dtype);
  const gint64 run = info->shape[last];
  gint64 idx[CNCLIP_MAX_DIMS] = { 0 };
  gint64 offset = 0;
  for (gint64 done = 0; done < info->n_elements; done += run) {
    convert_run (info->data + offset * esize, info->strides[last], run, info->dtype, out + done);
    for (int k = last - 1; k >= 0; k--) {
      idx[k]++;
      offset += info->strides[k];
      if (idx[k] < info->shape[k])
        break;
      offset -= idx[k] * info->strides[k];
      idx[k] = 0;
    }
  }
  return TRUE;
}
