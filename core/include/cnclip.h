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
  CNCLIP_PIXEL_I420,             /* planes Y, U, V (4:2:0); matrix from yuv_matrix */
  CNCLIP_PIXEL_NV12,             /* planes Y, UV (4:2:0);   matrix from yuv_matrix */
} CnclipPixelFormat;

/* How I420/NV12 samples map to RGB: the colour matrix (Kr, Kb) and the
 * range. Limited ("video", "TV", "MPEG") range has black at Y = 16, white at
 * Y = 235 and chroma 16..240; full ("JPEG", "PC") range uses 0..255 for all
 * three. Broadcast and camera video is almost always limited range: BT.601
 * for SD (up to 576 lines), BT.709 for HD. Full range BT.601 is JPEG/JFIF
 * and most MJPEG webcams. */
typedef enum
{
  CNCLIP_YUV_BT601 = 0,          /* Kr 0.299, Kb 0.114, limited range (the default) */
  CNCLIP_YUV_BT709,              /* Kr 0.2126, Kb 0.0722, limited range */
  CNCLIP_YUV_BT601_FULL,         /* BT.601, full range */
  CNCLIP_YUV_BT709_FULL,         /* BT.709, full range */
} CnclipYuvMatrix;

/* An 8-bit frame in caller memory. Packed formats use planes[0]/strides[0].
 * Strides are in bytes and may exceed the row size. Each plane must hold
 * at least stride * rows bytes (for the last row: its row size).
 *
 * Callers must zero-initialise it (designated initialisers as below,
 * `= { 0 }`, memset or g_new0): members a caller does not set, such as
 * yuv_matrix or members added later, then hold 0, their default.
 *
 *   CnclipImage im = { .format = CNCLIP_PIXEL_I420, .width = w, .height = h,
 *                      .planes = { y, u, v }, .strides = { w, cw, cw },
 *                      .yuv_matrix = CNCLIP_YUV_BT709 };
 */
typedef struct
{
  CnclipPixelFormat format;
  int width;
  int height;
  const guint8 *planes[3];
  int strides[3];
  CnclipYuvMatrix yuv_matrix;    /* I420/NV12 only (ignored otherwise, but must be a
                                  * valid value); 0 = CNCLIP_YUV_BT601 */
} CnclipImage;

/* Bytes per pixel of a packed format (3 or 4, 1 for GRAY8), 0 for planar. */
int cnclip_pixel_format_bytes_per_pixel (CnclipPixelFormat format);

/* Converts any CnclipImage to packed RGB (width * 3 bytes per row, no
 * padding) as PIL convert("RGB") does: alpha and x bytes dropped (no
 * compositing), grey replicated. I420/NV12: the textbook conversion for
 * image->yuv_matrix, rounded to nearest (halves up) exactly, as libjpeg/PIL
 * and ffmpeg's swscale aim for: BT.601 limited range gives
 *   R = 1.164383 (Y - 16) + 1.596027 (V - 128), and Y = 16 -> 0, 235 -> 255.
 * (GStreamer 1.22's videoconvert I420 -> RGB is about 2.4 levels darker in
 * limited range.) Each chroma sample covers its 2x2 block (nearest, no
 * interpolation), so I420 and NV12 of the same picture give the same RGB;
 * odd sizes are fine (chroma planes hold (width + 1) / 2 x (height + 1) / 2
 * samples). Sizes up to 32768 x 32768. Thread-safe; allocates nothing.
 * Errors: CNCLIP_ERROR_INVALID_ARGUMENT (size, format, yuv_matrix, NULL
 * plane, stride shorter than a row). */
gboolean cnclip_image_to_rgb (const CnclipImage *image, guint8 *rgb, GError **error);

/* Pillow-identical BICUBIC resize of packed RGB (@in_stride bytes per row)
 * to @out_width x @out_height packed RGB (no padding). Byte-exact with
 * PIL Image.resize(..., BICUBIC). Sizes 1 to 32768. Thread-safe; allocates
 * temporaries (about out_width * in_height * 3 bytes).
 * Errors: CNCLIP_ERROR_INVALID_ARGUMENT, CNCLIP_ERROR_NOMEM. */
gboolean cnclip_image_resize_rgb (const guint8 *in, int in_width, int in_height, int in_stride,
    guint8 *out, int out_width, int out_height, GError **error);

/* Converts and resizes any CnclipImage in one go (honouring yuv_matrix):
 * byte-identical to cnclip_image_to_rgb() followed by
 * cnclip_image_resize_rgb(), but the
 * horizontal pass reads (and converts) source rows directly, so no
 * full-frame RGB copy is made unless the width is unchanged.
 * Thread-safe. Errors: as cnclip_image_resize_rgb(). */
gboolean cnclip_image_resize (const CnclipImage *image, guint8 *rgb_out, int out_width,
    int out_height, GError **error);

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

/* ------------------------------------------------------------------------ */
/* Index records                                                            */
/*
 * A record is one JSON Lines line per inference (docs/record.schema.json).
 * Keys are always present and always in this order; absent values are null:
 *
 *   {"version":1,"source":"file:///v.mp4","frame":42,"timestamp":42000000000,
 *    "pts":42000000000,"running_time":42000000000,
 *    "wallclock":"2025-01-02T03:04:05.678Z","resolution":{"width":1920,"height":1080},
 *    "model":{"name":"chinese-clip-vit-base-patch16","dim":512,"score_mode":"softmax"},
 *    "classification":[{"label":"猫","label_id":0,"score":0.9,"cosine":0.31,"matched":true}],
 *    "top":{"label":"猫","label_id":0,"score":0.9},
 *    "embedding":{"dtype":"f32","encoding":"base64","data":"..."}}
 *
 * Times are nanoseconds (null when unknown); "top" is null without labels;
 * "embedding" is null when not recorded, else the little-endian f32 or IEEE
 * half (f16, round-to-nearest-even) values, base64 with padding. Floats are
 * printed with 9 significant digits (they round-trip float32); NaN and
 * infinities, which JSON lacks, are written as null. Strings are escaped
 * (quote, backslash, control characters) and kept as UTF-8; invalid UTF-8
 * is replaced by U+FFFD, so every line is valid UTF-8 JSON.
 *
 * Usage (the element's side):
 *
 *   CnclipRecordWriter *w = cnclip_record_writer_open (path, CNCLIP_RECORD_SYNC_DEFAULT, &error);
 *   CnclipRecord r;
 *   cnclip_record_init (&r);
 *   r.source = uri; r.frame = n; r.timestamp = stream_time; ...
 *   r.embedding_dtype = CNCLIP_EMBEDDING_F32; r.embedding = embed; r.dim = 512;
 *   if (!cnclip_record_writer_write (w, &r, &error)) ... post an error
 *   cnclip_record_writer_close (w, &error);
 */

#define CNCLIP_RECORD_VERSION 1
/* An unknown time (same value as GST_CLOCK_TIME_NONE). */
#define CNCLIP_TIME_NONE G_MAXUINT64

typedef enum
{
  CNCLIP_EMBEDDING_NONE,         /* "embedding": null */
  CNCLIP_EMBEDDING_F32,          /* little-endian float32 */
  CNCLIP_EMBEDDING_F16,          /* little-endian IEEE half, round-to-nearest-even */
} CnclipEmbeddingDtype;

/* "none", "f32", "f16"; from_string returns FALSE for anything else. */
const char *cnclip_embedding_dtype_to_string (CnclipEmbeddingDtype dtype);
gboolean cnclip_embedding_dtype_from_string (const char *str, CnclipEmbeddingDtype *dtype);

/* One entry of "classification". */
typedef struct
{
  const char *label;
  int label_id;
  float score;                   /* after score_mode (softmax probability, ...) */
  float cosine;
  gboolean matched;
} CnclipRecordLabel;

/* A record in caller memory; the writer only reads it. Strings may be NULL
 * (written as ""). */
typedef struct
{
  const char *source;            /* URI or source id */
  guint64 frame;                 /* frame number (always written) */
  guint64 timestamp;             /* stream time, ns, or CNCLIP_TIME_NONE */
  guint64 pts;                   /* ns, or CNCLIP_TIME_NONE */
  guint64 running_time;          /* ns, or CNCLIP_TIME_NONE */
  gint64 wallclock;              /* microseconds since 1970 UTC (g_get_real_time), < 0 = null */
  int width;                     /* frame resolution */
  int height;
  const char *model_name;
  int dim;                       /* projection dim: "model"."dim" and the embedding's length */
  const char *score_mode;        /* "softmax", ... */
  const CnclipRecordLabel *labels;
  int n_labels;
  int top;                       /* index into @labels for "top", or -1 for null */
  CnclipEmbeddingDtype embedding_dtype;
  const float *embedding;        /* @dim floats (required unless dtype is NONE) */
  /* Hook for later members: written verbatim after "embedding", e.g.
   * "\"events\":[...]" (one or more `"key":value` members, no leading
   * comma). The caller must pass valid JSON; CR and LF are written as spaces
   * so the record stays one line. */
  const char *extra_members;
} CnclipRecord;

/* Sets every time to CNCLIP_TIME_NONE, wallclock to -1, top to -1,
 * embedding_dtype to NONE and everything else to 0/NULL. */
void cnclip_record_init (CnclipRecord *record);

/* Appends @record as one JSON line, "\n" included, to @out. Thread-safe
 * (reads only @record). Allocates nothing beyond @out's growth. */
void cnclip_record_format (const CnclipRecord *record, GString *out);

/* Appends @str as a JSON string literal with the record's escaping (for
 * callers building extra_members). NULL is written as null. */
void cnclip_json_append_string (GString *out, const char *str);

/* Appends records to a file, one write() per line on a descriptor opened
 * O_APPEND, so concurrent writers and a crash never interleave or split
 * records: a record is in the file whole, or not at all. A short write
 * (disk full) is undone by truncating the partial line when the file is a
 * regular file that nobody else extended meanwhile; the writer then refuses
 * further records, so a half record can only ever be the last line. When
 * opening an existing file whose last line is unterminated (an earlier
 * writer was killed mid-line on a filesystem that allowed it), a "\n" is
 * written first so new records start on a line of their own.
 *
 * Durability: write() puts each line in the kernel at once (a crash of the
 * process loses nothing written). fdatasync() follows according to
 * @sync_interval_ms: 0 after every record, > 0 after a record when at least
 * that long has passed since the last sync, < 0 never before close. Close
 * always syncs. Sync errors (EIO, ENOSPC on writeback) are reported like
 * write errors; descriptors that cannot sync (pipes, terminals) are fine.
 *
 * Thread-safety: one writer may be shared by threads (writes are
 * serialised by a mutex). */
typedef struct _CnclipRecordWriter CnclipRecordWriter;

#define CNCLIP_RECORD_SYNC_ALWAYS 0
#define CNCLIP_RECORD_SYNC_DEFAULT 1000
#define CNCLIP_RECORD_SYNC_ON_CLOSE (-1)

/* Opens (creating, mode 0666 & ~umask) @location for appending; "-" is
 * standard output (never closed). Errors: CNCLIP_ERROR_IO naming the file
 * (missing directory, permission, a directory). */
CnclipRecordWriter *cnclip_record_writer_open (const char *location, int sync_interval_ms,
    GError **error);

/* Formats and appends one record. After an error the writer is failed and
 * every later call returns the same kind of error.
 * Errors: CNCLIP_ERROR_IO naming the file and the errno text (ENOSPC, EIO, ...). */
gboolean cnclip_record_writer_write (CnclipRecordWriter *writer, const CnclipRecord *record,
    GError **error);

/* Appends a caller-formatted line (@length bytes, or -1; a missing final
 * "\n" is added) with the same guarantees. Errors: as above. */
gboolean cnclip_record_writer_write_line (CnclipRecordWriter *writer, const char *line,
    gssize length, GError **error);

/* The location given to open (owned by the writer). */
const char *cnclip_record_writer_get_location (const CnclipRecordWriter *writer);

/* Syncs, closes and frees @writer (NULL is ignored). Returns FALSE with
 * CNCLIP_ERROR_IO when the final sync or close failed; @writer is freed
 * either way. */
gboolean cnclip_record_writer_close (CnclipRecordWriter *writer, GError **error);

/* ------------------------------------------------------------------------ */
/* Index: loading records and searching them                                */
/*
 * An index is one or more record files loaded into memory: the embeddings as
 * one contiguous row-major float32 matrix [n, dim], each row L2-normalised
 * at load, with each row's source (interned), timestamp and frame.
 *
 * Loading policy (an index is written while it is read, and writers die):
 * - A record needs "version":1 and a string "source". Its time is
 *   "timestamp", else "pts"; records with neither are skipped (counted).
 * - Records whose "embedding" is null (or dtype "none") are skipped and
 *   counted; their sources are still listed.
 * - An unterminated last line of a file that does not parse is a record cut
 *   by an interrupted writer: tolerated, counted as truncated.
 * - Any other line that is not a valid record (bad JSON, bad base64, a
 *   base64 length that is not "model"."dim" values of the dtype, non-finite
 *   values) is skipped and counted as invalid; the first one is kept as a
 *   "FILE:LINE: reason" message for a warning. A line where a killed writer's
 *   half record was continued by a new one is recovered from its last
 *   `{"version":`.
 * - A non-empty file without a single valid record is not an index:
 *   CNCLIP_ERROR_FORMAT.
 * - All embeddings must have one dim: a valid record with another dim is
 *   CNCLIP_ERROR_FORMAT naming FILE:LINE (two models in one index).
 *
 * Sampling interval: per source, the lower median of the positive gaps
 * between its sorted record timestamps (robust to dropped or repeated
 * frames); 1 s when a source has fewer than two distinct timestamps.
 *
 * Thread-safety: an index is immutable after loading; any number of threads
 * may search it at once.
 */
typedef struct _CnclipIndex CnclipIndex;

typedef struct
{
  gsize n_lines;                 /* non-blank lines read */
  gsize n_records;               /* records held (with embeddings) */
  gsize n_no_embedding;          /* valid records without an embedding (skipped) */
  gsize n_no_time;               /* valid records with neither timestamp nor pts (skipped) */
  gsize n_invalid;               /* lines that are not records (skipped) */
  gsize n_truncated;             /* unterminated, unparsable last lines (tolerated) */
} CnclipIndexStats;

/* Loads the record files of the NULL-terminated @paths into one index.
 * Files are read in 1 MiB chunks (pipes work too); memory is about
 * n * (dim * 4 + 20) bytes. Lines over 16 MiB and embeddings over 65536
 * values are invalid lines.
 * Errors: CNCLIP_ERROR_IO (unreadable), CNCLIP_ERROR_FORMAT (not an index,
 * mixed dims), CNCLIP_ERROR_TOO_LARGE (more than 2^31 - 1 records),
 * CNCLIP_ERROR_NOMEM. */
CnclipIndex *cnclip_index_load (const char *const *paths, GError **error);
void cnclip_index_free (CnclipIndex *index);

/* The sources of the record file @path in order of first appearance
 * (NULL-terminated, g_strfreev), records without embeddings included, and
 * without decoding embeddings (so without dim checks): how `cnclip index`
 * finds the inputs already indexed. Errors as cnclip_index_load(): a
 * missing file is CNCLIP_ERROR_IO, a file without a valid record
 * CNCLIP_ERROR_FORMAT. */
char **cnclip_index_list_sources (const char *path, GError **error);

/* Embedding dim (0 when no record has an embedding) and record count. */
int cnclip_index_get_dim (const CnclipIndex *index);
gsize cnclip_index_get_n_records (const CnclipIndex *index);
const CnclipIndexStats *cnclip_index_get_stats (const CnclipIndex *index);
/* "FILE:LINE: reason" of the first invalid line, or NULL. Owned by the index. */
const char *cnclip_index_get_first_problem (const CnclipIndex *index);

/* Sources in order of first appearance, records without embeddings
 * included (for `cnclip index` to skip inputs already indexed). */
int cnclip_index_get_n_sources (const CnclipIndex *index);
const char *cnclip_index_get_source (const CnclipIndex *index, int source_id);
/* The inferred sampling interval of a source, ns. */
gint64 cnclip_index_get_source_interval (const CnclipIndex *index, int source_id);

/* Record @i in load order: its normalised embedding row (dim floats, owned
 * by the index), source id, time in ns and frame (-1 when null). */
const float *cnclip_index_get_embedding (const CnclipIndex *index, gsize i);
void cnclip_index_get_record (const CnclipIndex *index, gsize i, int *source_id,
    gint64 *timestamp, gint64 *frame);

/* Cosines of every record with @query (@dim floats, need not be normalised)
 * into @cosines (n floats), with one BLAS matrix-vector product.
 * Errors: CNCLIP_ERROR_INVALID_ARGUMENT (dim mismatch, non-finite query). */
gboolean cnclip_index_score (const CnclipIndex *index, const float *query, int dim,
    float *cosines, GError **error);

typedef struct
{
  int k;                         /* ranges wanted (default 10) */
  float min_cosine;              /* hits need cosine >= this (default -G_MAXFLOAT: none) */
} CnclipSearchParams;

CnclipSearchParams cnclip_search_default_params (void);

/* A time range of one source. */
typedef struct
{
  int source_id;
  const char *source;            /* owned by the index */
  gint64 start;                  /* ns: first hit - interval / 2, not below 0 */
  gint64 end;                    /* ns: last hit + interval / 2 */
  gint64 timestamp;              /* ns: time of the best hit */
  gint64 frame;                  /* frame of the best hit, -1 when null */
  gsize best_record;             /* record index of the best hit */
  float score;                   /* best cosine */
  int n_hits;                    /* records merged into the range */
} CnclipSearchRange;

/* Searches @index for @query and writes up to @params->k ranges, best first,
 * into @ranges (room for k); returns their number, or -1 on error.
 *
 * Records are taken as hits in order of decreasing cosine (ties: load
 * order), skipping those under min_cosine. A hit of a source joins a range
 * of the same source when it lies within two sampling intervals of it (gap
 * <= 2 * interval, so a chain of hits makes one range, and a hit can bridge
 * two ranges). Hits are added until there are k ranges or no hits are left,
 * so a range extends over neighbouring records only while they score at
 * least as high as the hit that founded the k-th range (a small k gives
 * tight ranges around the peaks). Ranges are ranked by their best cosine
 * (ties: the earlier best record). Scores come from one cblas_sgemv over the
 * matrix; hits are picked by partial selection, not a full sort.
 * Thread-safe. Errors: as cnclip_index_score(), CNCLIP_ERROR_NOMEM. */
int cnclip_index_search (const CnclipIndex *index, const float *query, int dim,
    const CnclipSearchParams *params, CnclipSearchRange *ranges, GError **error);

G_END_DECLS

#endif /* CNCLIP_H */
