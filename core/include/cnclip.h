/* cnclip.h: Chinese-CLIP (OFA-Sys/chinese-clip-vit-*) inference in plain C.
 *
 * The only public header of libcnclip. No GStreamer; GLib for GError.
 *
 * Usage:
 *
 *   GError *error = NULL;
 *   CnclipModelParams mp = cnclip_model_default_params ();
 *   CnclipModel *model = cnclip_model_load ("chinese-clip-vit-base-patch16", &mp, &error);
 *   if (model == NULL) { g_printerr ("%s\n", error->message); ... }
 *
 *   CnclipContextParams cp = cnclip_context_default_params ();
 *   CnclipContext *ctx = cnclip_context_new (model, &cp, &error);
 *
 *   int dim = cnclip_model_get_projection_dim (model);          // 512
 *   float *image = g_new (float, dim), *texts = g_new (float, 2 * dim);
 *   CnclipImage im = { .format = CNCLIP_PIXEL_RGB, .width = w, .height = h,
 *                      .planes = { rgb }, .strides = { w * 3 } };
 *   cnclip_encode_images (ctx, &im, 1, image, &error);
 *   const char *prompts[] = { "一只猫", "一只狗" };
 *   cnclip_encode_texts (ctx, prompts, 2, texts, &error);
 *
 *   float probs[2];
 *   cnclip_score (image, 1, texts, 2, dim, cnclip_model_get_logit_scale (model),
 *                 NULL, NULL, probs);                            // softmax over texts
 *
 *   cnclip_context_free (ctx);
 *   cnclip_model_unref (model);
 *
 * Threading: a CnclipModel is immutable after loading and may be shared by any
 * number of threads (reference counted, atomically). A CnclipContext holds
 * scratch memory and must be used by one thread at a time; create one per
 * thread. Tokenizers are immutable and thread-safe.
 *
 * Errors: fallible functions take `GError **error` last and return FALSE or
 * NULL on failure, with an error in CNCLIP_ERROR. Caller bugs (NULL where a
 * pointer is required) are caught with g_return_val_if_fail.
 */
#ifndef CNCLIP_H
#define CNCLIP_H

#include <glib.h>

G_BEGIN_DECLS

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */

#define CNCLIP_ERROR (cnclip_error_quark ())
GQuark cnclip_error_quark (void);

typedef enum
{
  CNCLIP_ERROR_IO,               /* file or directory missing or unreadable */
  CNCLIP_ERROR_FORMAT,           /* corrupt or truncated file, bad header, bad offsets */
  CNCLIP_ERROR_CONFIG,           /* config.json / preprocessor_config.json invalid */
  CNCLIP_ERROR_MISSING_TENSOR,   /* a required tensor is absent */
  CNCLIP_ERROR_SHAPE,            /* a tensor has the wrong shape */
  CNCLIP_ERROR_DTYPE,            /* a tensor has a dtype we cannot use */
  CNCLIP_ERROR_VOCAB,            /* vocab.txt missing, empty or lacking special tokens */
  CNCLIP_ERROR_UTF8,             /* input text is not valid UTF-8 (message names the byte offset) */
  CNCLIP_ERROR_INVALID_ARGUMENT, /* bad image size, format, batch, context length */
  CNCLIP_ERROR_UNSAFE,           /* checkpoint asks for a forbidden pickle opcode or global */
  CNCLIP_ERROR_UNSUPPORTED,      /* valid but unsupported: compressed zip entry, unknown dtype */
  CNCLIP_ERROR_TOO_LARGE,        /* sizes beyond sane limits: refused before allocating */
  CNCLIP_ERROR_ABORTED,          /* the abort callback asked to stop */
  CNCLIP_ERROR_BACKEND,          /* the GEMM backend failed or is not built in */
  CNCLIP_ERROR_NOMEM,            /* an allocation failed */
} CnclipError;

/* ------------------------------------------------------------------------ */
/* Tokenizer (BERT basic tokenizer + WordPiece, exactly as cn_clip)         */

typedef struct _CnclipTokenizer CnclipTokenizer;

#define CNCLIP_TOKEN_PAD 0
#define CNCLIP_TOKEN_UNK 100
#define CNCLIP_TOKEN_CLS 101
#define CNCLIP_TOKEN_SEP 102
#define CNCLIP_TOKEN_MASK 103
#define CNCLIP_DEFAULT_CONTEXT_LENGTH 52

/* Loads vocab.txt (one token per line, id = 0-based line number).
 * Errors: CNCLIP_ERROR_IO, CNCLIP_ERROR_VOCAB. Free with cnclip_tokenizer_free(). */
CnclipTokenizer *cnclip_tokenizer_load (const char *vocab_path, GError **error);
void cnclip_tokenizer_free (CnclipTokenizer *tokenizer);
int cnclip_tokenizer_get_vocab_size (const CnclipTokenizer *tokenizer);

/* The token string of @id (owned by the tokenizer), or NULL when out of range. */
const char *cnclip_tokenizer_id_to_token (const CnclipTokenizer *tokenizer, int id);

/* Tokenizes @text (@length bytes, or -1 for NUL-terminated) into untruncated
 * WordPiece ids without [CLS]/[SEP]. Writes at most @max_ids ids into @ids
 * (may be NULL when @max_ids is 0) and returns the total count, which may be
 * larger than @max_ids (like snprintf); returns -1 on error.
 * Errors: CNCLIP_ERROR_UTF8 naming the byte offset of the first invalid byte.
 * Thread-safe. */
int cnclip_tokenizer_tokenize (const CnclipTokenizer *tokenizer, const char *text,
    gssize length, gint32 *ids, int max_ids, GError **error);

/* Writes one model input row: [CLS] + first (context_length - 2) ids + [SEP],
 * padded with [PAD] (0) to @context_length (>= 2) entries of @input_ids.
 * If @n_tokens is not NULL it receives the untruncated WordPiece count (so a
 * caller can warn about truncation). Errors as cnclip_tokenizer_tokenize(). */
gboolean cnclip_tokenizer_encode (const CnclipTokenizer *tokenizer, const char *text,
    gssize length, int context_length, gint32 *input_ids, int *n_tokens, GError **error);

/* ------------------------------------------------------------------------ */
/* Images                                                                   */

typedef enum
{
  CNCLIP_PIXEL_RGB,
  CNCLIP_PIXEL_BGR,
  CNCLIP_PIXEL_RGBA,
  CNCLIP_PIXEL_BGRA,
  CNCLIP_PIXEL_RGBX,
  CNCLIP_PIXEL_BGRX,
  CNCLIP_PIXEL_XRGB,
  CNCLIP_PIXEL_XBGR,
  CNCLIP_PIXEL_GRAY8,
  CNCLIP_PIXEL_I420,             /* planes Y, U, V; BT.601 limited range */
  CNCLIP_PIXEL_NV12,             /* planes Y, UV;   BT.601 limited range */
} CnclipPixelFormat;

/* An 8-bit frame in caller memory. Packed formats use planes[0]/strides[0].
 * Strides are in bytes and may exceed the row size. Each plane must hold
 * at least stride * rows bytes (for the last row: its row size). */
typedef struct
{
  CnclipPixelFormat format;
  int width;
  int height;
  const guint8 *planes[3];
  int strides[3];
} CnclipImage;

/* Bytes per pixel of a packed format (3 or 4, 1 for GRAY8), 0 for planar. */
int cnclip_pixel_format_bytes_per_pixel (CnclipPixelFormat format);

/* Converts any CnclipImage to packed RGB (width * 3 bytes per row, no
 * padding) as PIL convert("RGB") does: alpha dropped, grey replicated.
 * YUV uses BT.601 limited range as GStreamer's videoconvert does.
 * Errors: CNCLIP_ERROR_INVALID_ARGUMENT. */
gboolean cnclip_image_to_rgb (const CnclipImage *image, guint8 *rgb, GError **error);

/* Pillow-identical BICUBIC resize of packed RGB (@in_stride bytes per row)
 * to @out_width x @out_height packed RGB (no padding). Byte-exact with
 * PIL Image.resize(..., BICUBIC). Errors: CNCLIP_ERROR_INVALID_ARGUMENT. */
gboolean cnclip_image_resize_rgb (const guint8 *in, int in_width, int in_height, int in_stride,
    guint8 *out, int out_width, int out_height, GError **error);

/* ------------------------------------------------------------------------ */
/* Model                                                                    */

typedef struct _CnclipModel CnclipModel;

typedef enum
{
  CNCLIP_BACKEND_AUTO,           /* $CNCLIP_BACKEND, else oneDNN when built, else OpenBLAS */
  CNCLIP_BACKEND_ONEDNN,
  CNCLIP_BACKEND_OPENBLAS,
} CnclipBackendKind;

typedef enum
{
  CNCLIP_PRECISION_FP32,         /* default, matches the reference within 1e-4 */
  CNCLIP_PRECISION_BF16,         /* opt-in; gated by cosine >= 0.999 vs fp32 */
  CNCLIP_PRECISION_INT8,         /* experimental; unvalidated on real weights */
} CnclipPrecision;

typedef struct
{
  const char *weights_file;      /* explicit weights file; NULL = pick in the directory:
                                  * model.safetensors, pytorch_model.bin, a single *.pt */
  CnclipBackendKind backend;
  CnclipPrecision precision;
  gboolean load_vision;          /* default TRUE */
  gboolean load_text;            /* default TRUE */
  int context_length;            /* 0 = tokenizer_config.json model_max_length, else 52 */
} CnclipModelParams;

CnclipModelParams cnclip_model_default_params (void);

/* Loads a Hugging Face model directory (config.json, weights, vocab.txt,
 * optional preprocessor_config.json / tokenizer_config.json).
 * Weights files are untrusted: every offset, size, dtype and shape is checked.
 * Returns a new reference. Errors: any CNCLIP_ERROR code; messages name the
 * file and, for tensors, the tensor with expected and actual shapes. */
CnclipModel *cnclip_model_load (const char *model_dir, const CnclipModelParams *params,
    GError **error);
CnclipModel *cnclip_model_ref (CnclipModel *model);
void cnclip_model_unref (CnclipModel *model);

const char *cnclip_model_get_name (const CnclipModel *model);          /* directory base name */
const char *cnclip_model_get_path (const CnclipModel *model);          /* directory */
const char *cnclip_model_get_weights_path (const CnclipModel *model);  /* file actually loaded */
int cnclip_model_get_projection_dim (const CnclipModel *model);
int cnclip_model_get_image_size (const CnclipModel *model);
int cnclip_model_get_context_length (const CnclipModel *model);
float cnclip_model_get_logit_scale (const CnclipModel *model);        /* exp(logit_scale) */
CnclipBackendKind cnclip_model_get_backend (const CnclipModel *model);
CnclipPrecision cnclip_model_get_precision (const CnclipModel *model);
gboolean cnclip_model_has_vision (const CnclipModel *model);
gboolean cnclip_model_has_text (const CnclipModel *model);
const CnclipTokenizer *cnclip_model_get_tokenizer (const CnclipModel *model);

const char *cnclip_backend_kind_to_string (CnclipBackendKind kind);   /* "onednn", "openblas", "auto" */
gboolean cnclip_backend_kind_from_string (const char *str, CnclipBackendKind *kind);
gboolean cnclip_backend_available (CnclipBackendKind kind);
const char *cnclip_precision_to_string (CnclipPrecision precision);    /* "fp32", "bf16", "int8" */
gboolean cnclip_precision_from_string (const char *str, CnclipPrecision *precision);

/* Writes the loaded weights as model.safetensors (F32, Hugging Face names).
 * Errors: CNCLIP_ERROR_IO. */
gboolean cnclip_model_save_safetensors (const CnclipModel *model, const char *path, GError **error);

/* Pixel normalisation with the model's mean/std (preprocessor_config.json,
 * CLIP defaults when absent): packed RGB image_size x image_size bytes ->
 * float32 planar CHW [3, S, S]. */
void cnclip_model_normalize_pixels (const CnclipModel *model, const guint8 *rgb, float *pixel_values);

/* Full preprocessing: convert to RGB, bicubic resize to image_size, normalise.
 * @pixel_values: 3 * S * S floats. Allocates a temporary RGB buffer only when
 * the frame is not already packed RGB of the right size.
 * Errors: CNCLIP_ERROR_INVALID_ARGUMENT. */
gboolean cnclip_model_preprocess (const CnclipModel *model, const CnclipImage *image,
    float *pixel_values, GError **error);

/* ------------------------------------------------------------------------ */
/* Context: per-thread scratch and encoding                                 */

typedef struct _CnclipContext CnclipContext;

/* Return TRUE to abort the encode call in progress (polled between layers). */
typedef gboolean (*CnclipAbortFunc) (gpointer user_data);

typedef struct
{
  int n_threads;                 /* 0 = all cores */
  int max_image_batch;           /* images per forward pass; larger batches are chunked (default 1) */
  int max_text_batch;            /* texts per forward pass (default 16) */
  CnclipAbortFunc abort_func;
  gpointer abort_user_data;
} CnclipContextParams;

CnclipContextParams cnclip_context_default_params (void);

/* Sizes the scratch arena once; encode calls do not allocate. Takes a
 * reference on @model. Errors: CNCLIP_ERROR_NOMEM, CNCLIP_ERROR_INVALID_ARGUMENT. */
CnclipContext *cnclip_context_new (CnclipModel *model, const CnclipContextParams *params,
    GError **error);
void cnclip_context_free (CnclipContext *ctx);
CnclipModel *cnclip_context_get_model (CnclipContext *ctx);
void cnclip_context_set_n_threads (CnclipContext *ctx, int n_threads);

/* Image embeddings (projected, NOT normalised): @embeds receives n * P floats.
 * Errors: CNCLIP_ERROR_INVALID_ARGUMENT, CNCLIP_ERROR_ABORTED,
 * CNCLIP_ERROR_UNSUPPORTED (model loaded without the vision tower). */
gboolean cnclip_encode_images (CnclipContext *ctx, const CnclipImage *images, int n,
    float *embeds, GError **error);

/* Same from preprocessed pixel_values, NCHW float32 [n, 3, S, S]. */
gboolean cnclip_encode_pixels (CnclipContext *ctx, const float *pixel_values, int n,
    float *embeds, GError **error);

/* Text embeddings (projected, NOT normalised) of @n UTF-8 strings.
 * Texts longer than the context length are truncated (see cnclip_tokenizer_encode).
 * Errors: CNCLIP_ERROR_UTF8, CNCLIP_ERROR_ABORTED, CNCLIP_ERROR_UNSUPPORTED. */
gboolean cnclip_encode_texts (CnclipContext *ctx, const char *const *texts, int n,
    float *embeds, GError **error);

/* Same from token rows: @n rows of @row_length ids as cnclip_tokenizer_encode()
 * writes them. Only the non-padding prefix of each row is computed. */
gboolean cnclip_encode_token_ids (CnclipContext *ctx, const gint32 *input_ids, int n,
    int row_length, float *embeds, GError **error);

/* ------------------------------------------------------------------------ */
/* Scores                                                                   */

/* Normalises @n rows of @dim floats to unit L2 norm in place (zero rows stay zero). */
void cnclip_l2_normalize (float *vectors, int n, int dim);

/* Scores @n_images x @n_texts. Embeddings need not be normalised.
 * Outputs may be NULL; each is row-major [n_images, n_texts]:
 * cosines, logits = @logit_scale * cosine, probs = softmax over texts. */
void cnclip_score (const float *image_embeds, int n_images, const float *text_embeds,
    int n_texts, int dim, float logit_scale, float *cosines, float *logits, float *probs);

/* Softmax of @n values in place (numerically stable). */
void cnclip_softmax (float *values, int n);

G_END_DECLS

#endif /* CNCLIP_H */
