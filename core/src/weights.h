/* weights.h: a read-only, memory-mapped weights file and its tensor table.
 *
 * Every format parser (safetensors.c, torchzip.c) produces a CnclipWeightFile:
 * the mapping plus one CnclipTensorInfo per tensor, under Hugging Face
 * ChineseCLIPModel names. Parsers validate that every element a tensor can
 * address lies inside the mapping before adding it, so users of the table
 * never re-check bounds. Binding (model.c) converts what it needs to
 * contiguous float32.
 */
#ifndef CNCLIP_WEIGHTS_H
#define CNCLIP_WEIGHTS_H

#include <glib.h>

G_BEGIN_DECLS

#define CNCLIP_MAX_DIMS 8

typedef enum
{
  CNCLIP_DTYPE_F32,
  CNCLIP_DTYPE_F16,
  CNCLIP_DTYPE_BF16,
  CNCLIP_DTYPE_F64,
  CNCLIP_DTYPE_I64,
  CNCLIP_DTYPE_I32,
  CNCLIP_DTYPE_I8,
  CNCLIP_DTYPE_U8,
  CNCLIP_DTYPE_BOOL,
} CnclipDType;

typedef struct
{
  char *name;                    /* Hugging Face name */
  CnclipDType dtype;
  int ndim;                      /* 0 for a scalar */
  gint64 shape[CNCLIP_MAX_DIMS];
  gint64 strides[CNCLIP_MAX_DIMS];     /* in elements; row-major for contiguous tensors */
  const guint8 *data;            /* element (0, ..., 0) inside the mapping */
  gint64 n_elements;             /* product of shape (1 for a scalar) */
  gboolean contiguous;           /* strides are row-major */
} CnclipTensorInfo;

typedef struct _CnclipWeightFile CnclipWeightFile;

/* Size in bytes of one element, 0 for an unknown dtype. */
gsize cnclip_dtype_size (CnclipDType dtype);
const char *cnclip_dtype_to_string (CnclipDType dtype);
/* TRUE for F32, F16, BF16, F64. */
gboolean cnclip_dtype_is_float (CnclipDType dtype);

/* Checks @info's ndim, shape and strides (non-negative, no gint64 overflow)
 * and computes the element count and the bytes from @info->data to just past
 * the highest addressed element (0 for an empty tensor). FALSE when invalid. */
gboolean cnclip_tensor_span (const CnclipTensorInfo *info, gint64 *n_elements,
    gint64 *span_bytes);

/* Maps @path read-only. Errors: CNCLIP_ERROR_IO (missing, unreadable, empty). */
CnclipWeightFile *cnclip_weight_file_map (const char *path, GError **error);
void cnclip_weight_file_free (CnclipWeightFile *file);

const char *cnclip_weight_file_get_path (const CnclipWeightFile *file);
const guint8 *cnclip_weight_file_get_data (const CnclipWeightFile *file);
gsize cnclip_weight_file_get_size (const CnclipWeightFile *file);

/* Adds a tensor; @info is copied (name duplicated). The caller has already
 * checked that the addressed bytes lie inside the mapping; this function
 * checks it again (cheap, and the one place that matters) and refuses
 * duplicates. Errors: CNCLIP_ERROR_FORMAT. */
gboolean cnclip_weight_file_add_tensor (CnclipWeightFile *file, const CnclipTensorInfo *info,
    GError **error);

const CnclipTensorInfo *cnclip_weight_file_lookup (const CnclipWeightFile *file, const char *name);

/* A tensor whose dtype the file format allows but this library cannot use
 * (safetensors F8_E4M3, U16, ..., or an unknown dtype string). It is not in
 * the table; recording it lets the binder answer CNCLIP_ERROR_DTYPE instead of
 * "missing" when the model needs it, while files that merely carry such extra
 * tensors still load. Names are unique across both kinds.
 * Errors: CNCLIP_ERROR_FORMAT (duplicate). */
gboolean cnclip_weight_file_add_unusable (CnclipWeightFile *file, const char *name,
    const char *dtype, GError **error);
/* The dtype string of the unusable tensor @name, or NULL. */
const char *cnclip_weight_file_lookup_unusable (const CnclipWeightFile *file, const char *name);
guint cnclip_weight_file_get_n_tensors (const CnclipWeightFile *file);
/* Tensors in insertion order. */
const CnclipTensorInfo *cnclip_weight_file_get_tensor (const CnclipWeightFile *file, guint index);

/* Copies @size bytes at @data (inside the mapping) to @out with pread(),
 * which does not fault the source pages into the mapping: for data that is
 * copied once and never read in place again (fused q/k/v). */
void cnclip_weight_file_read (const CnclipWeightFile *file, const void *data, gsize size,
    void *out);

/* Tells the kernel the pages of [data, data + size) are no longer needed
 * (after weights were packed or converted), so they leave the resident set. */
void cnclip_weight_file_release (CnclipWeightFile *file, const void *data, gsize size);

/* Parsers. Both return a file whose tensors carry HF names.
 * safetensors: Errors CNCLIP_ERROR_IO, CNCLIP_ERROR_FORMAT, CNCLIP_ERROR_DTYPE. */
CnclipWeightFile *cnclip_safetensors_open (const char *path, GError **error);

/* PyTorch zip checkpoints (pytorch_model.bin, official cn_clip *.pt); official
 * names are mapped to HF names (in_proj split into q/k/v views, projections
 * as transposed views). Errors: CNCLIP_ERROR_IO, CNCLIP_ERROR_FORMAT,
 * CNCLIP_ERROR_UNSAFE, CNCLIP_ERROR_UNSUPPORTED. */
CnclipWeightFile *cnclip_torch_open (const char *path, GError **error);

/* Reads element @index (in row-major logical order) of a tensor and returns it
 * as float; works for every float dtype and any strides. */
float cnclip_tensor_get_float (const CnclipTensorInfo *info, gint64 index);

/* Copies a whole tensor into contiguous float32 (converting F16/BF16/F64 and
 * following strides). @out holds info->n_elements floats.
 * Errors: CNCLIP_ERROR_DTYPE for non-float dtypes. */
gboolean cnclip_tensor_to_f32 (const CnclipTensorInfo *info, float *out, GError **error);

/* Parses @length bytes of untrusted JSON (config files, safetensors headers)
 * with json-glib, guarding against what json-glib would silently get wrong:
 * NUL bytes and invalid UTF-8, duplicate keys in any object (json-glib keeps
 * the last), hex/octal literals, nesting deeper than 64 (its parser
 * recurses) are refused; integers of more than 18 digits (json-glib wraps
 * them around) are handed over as huge doubles. @what names the input in
 * messages. Returns the root node (free with json_node_unref) or NULL with
 * @error_code in CNCLIP_ERROR. Thread-safe. */
struct _JsonNode *cnclip_json_parse (const char *text, gsize length, const char *what,
    int error_code, GError **error);

G_END_DECLS

#endif /* CNCLIP_WEIGHTS_H */
