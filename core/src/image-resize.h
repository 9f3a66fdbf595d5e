/* image-resize.h: Pillow's BICUBIC resampling, bit-exact (FIXTURES.md 2.1).
 *
 * Internal to libcnclip. A CnclipResampler holds the fixed-point filter of
 * one pass (one axis, in_size -> out_size samples); image.c runs the
 * horizontal pass, rounding to 8 bits, then the vertical pass, skipping a
 * pass whose size does not change, exactly as Pillow's ImagingResample.
 *
 * All functions are thread-safe; the passes only read the resampler.
 */
#ifndef CNCLIP_IMAGE_RESIZE_H
#define CNCLIP_IMAGE_RESIZE_H

#include <glib.h>

G_BEGIN_DECLS

typedef struct
{
  int in_size;
  int out_size;
  int ksize;                     /* coefficients stored per output sample */
  int *first;                    /* [out_size]: first input sample used */
  int *count;                    /* [out_size]: number of input samples used (<= ksize) */
  gint32 *coeffs;                /* [out_size][ksize]: weights * 2^22, rounded */
} CnclipResampler;

/* Computes the filter for @in_size -> @out_size samples (both >= 1).
 * Errors: CNCLIP_ERROR_NOMEM. Free with cnclip_resampler_clear(). */
gboolean cnclip_resampler_init (CnclipResampler *rs, int in_size, int out_size, GError **error);
void cnclip_resampler_clear (CnclipResampler *rs);

/* Supplies packed RGB row @y (rs->in_size pixels): either a pointer into the
 * caller's image or @scratch (rs->in_size * 3 bytes) after writing it. */
typedef const guint8 *(*CnclipRowFunc) (gpointer user_data, int y, guint8 *scratch);

/* Horizontal pass over rows [@y_begin, @y_end): writes rs->out_size packed RGB
 * pixels of each row y to @out + (y - y_begin) * @out_stride.
 * Allocates two small buffers (about 48 * in_size bytes).
 * Errors: CNCLIP_ERROR_NOMEM. */
gboolean cnclip_resample_horizontal (const CnclipResampler *rs, int y_begin, int y_end,
    CnclipRowFunc row_func, gpointer user_data, guint8 *out, gsize out_stride, GError **error);

/* Vertical pass: @in holds rows [@in_row0, ...) of the rs->in_size rows of
 * @width packed RGB pixels (row stride @in_stride), at least the rows the
 * filter reads; writes rs->out_size rows to @out (stride @out_stride).
 * @acc: scratch of @width * 3 gint32. */
void cnclip_resample_vertical (const CnclipResampler *rs, const guint8 *in, int in_row0,
    gsize in_stride, int width, guint8 *out, gsize out_stride, gint32 *acc);

G_END_DECLS

#endif /* CNCLIP_IMAGE_RESIZE_H */
