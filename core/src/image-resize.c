/* image-resize.c: see image-resize.h.
 *
 * Speed: the horizontal pass of a 1920 -> 224 resize costs 35 taps per output
 * sample; the vertical pass is cheap (it runs on the narrowed image). To get
 * the horizontal pass vectorised without changing its arithmetic (exact int32
 * products, as Pillow), rows are handled in blocks of BLOCK_ROWS: the block is
 * stored column-major (for each input x: BLOCK_ROWS pixels of 3 bytes), so one
 * output x is a sum over taps of coefficient * contiguous 48-byte vector,
 * which the compiler turns into plain SIMD multiply-adds. */
#include "config.h"

#include <math.h>
#include <string.h>

#include "cnclip.h"
#include "image-resize.h"
#include "image-simd.h"

#define PRECISION_BITS 22        /* 32 - 8 - 2, as Pillow's 8-bit resampler */
#define BLOCK_ROWS 16
#define BLOCK_BYTES (BLOCK_ROWS * 3)

/* Pillow's bicubic kernel, a = -0.5. */
static double
bicubic (double t)
{
  const double a = -0.5;
  t = fabs (t);
  if (t < 1.0)
    return ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0;
  if (t < 2.0)
    return (((t - 5.0) * t + 8.0) * t - 4.0) * a;
  return 0.0;
}

gboolean
cnclip_resampler_init (CnclipResampler *rs, int in_size, int out_size, GError **error)
{
  g_return_val_if_fail (rs != NULL, FALSE);
  g_return_val_if_fail (in_size > 0 && out_size > 0, FALSE);

  memset (rs, 0, sizeof (*rs));
  const double scale = (double) in_size / out_size;
  const double filterscale = MAX (scale, 1.0);
  const double support = 2.0 * filterscale;
  const double ss = 1.0 / filterscale;
  /* Callers limit both sizes to CNCLIP_IMAGE_MAX_SIZE (2^15), so ksize stays
   * below 2^17 and the table below 2^32 entries. */
  const int ksize = (int) ceil (support) * 2 + 1;

  rs->in_size = in_size;
  rs->out_size = out_size;
  rs->ksize = ksize;
  rs->first = g_try_new (int, out_size);
  rs->count = g_try_new (int, out_size);
  rs->coeffs = g_try_new0 (gint32, (gsize) out_size * ksize);
  double *w = g_try_new (double, ksize);
  if (rs->first == NULL || rs->count == NULL || rs->coeffs == NULL || w == NULL) {
    g_free (w);
    cnclip_resampler_clear (rs);
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_NOMEM,
        "cannot allocate resampling coefficients for %d -> %d pixels", in_size, out_size);
    return FALSE;
  }

  for (int xx = 0; xx < out_size; xx++) {
    const double center = (xx + 0.5) * scale;
    int xmin = (int) (center - support + 0.5);
    if (xmin < 0)
      xmin = 0;
    int xmax = (int) (center + support + 0.5);
    if (xmax > in_size)
      xmax = in_size;
    const int n = MIN (xmax - xmin, ksize);
    double sum = 0.0;
    for (int x = 0; x < n; x++) {
      w[x] = bicubic ((x + xmin - center + 0.5) * ss);
      sum += w[x];
    }
    gint32 *k = rs->coeffs + (gsize) xx * ksize;
    for (int x = 0; x < n; x++) {
      const double v = sum != 0.0 ? w[x] / sum : w[x];
      k[x] = v < 0 ? (int) (-0.5 + v * (1 << PRECISION_BITS))
          : (int) (0.5 + v * (1 << PRECISION_BITS));
    }
    rs->first[xx] = xmin;
    rs->count[xx] = MAX (n, 0);
  }
  g_free (w);
  return TRUE;
}

void
cnclip_resampler_clear (CnclipResampler *rs)
{
  g_free (rs->first);
  g_free (rs->count);
  g_free (rs->coeffs);
  memset (rs, 0, sizeof (*rs));
}

/* (1 << 21) + sum, shifted with rounding by the bias, clamped: Pillow's clip8. */
static inline guint8
clip8 (gint32 acc)
{
  const gint32 v = acc >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : (guint8) v;
}

/* One block of rows: @cols is column-major (input x, then row, then channel);
 * writes @n_rows rows of rs->out_size pixels. */
CNCLIP_MULTIVERSION static void
horizontal_block (const CnclipResampler *rs, const guint8 *cols, int n_rows, guint8 *out,
    gsize out_stride)
{
  const int ksize = rs->ksize;
  for (int xx = 0; xx < rs->out_size; xx++) {
    gint32 acc[BLOCK_BYTES];
    for (int i = 0; i < BLOCK_BYTES; i++)
      acc[i] = 1 << (PRECISION_BITS - 1);
    const gint32 *k = rs->coeffs + (gsize) xx * ksize;
    const guint8 *s = cols + (gsize) rs->first[xx] * BLOCK_BYTES;
    const int n = rs->count[xx];
    for (int j = 0; j < n; j++, s += BLOCK_BYTES) {
      const gint32 kj = k[j];
      for (int i = 0; i < BLOCK_BYTES; i++)
        acc[i] += kj * s[i];
    }
    guint8 px[BLOCK_BYTES];
    for (int i = 0; i < BLOCK_BYTES; i++)
      px[i] = clip8 (acc[i]);
    guint8 *o = out + (gsize) xx * 3;
    for (int r = 0; r < n_rows; r++, o += out_stride)
      memcpy (o, px + 3 * r, 3);
  }
}

gboolean
cnclip_resample_horizontal (const CnclipResampler *rs, int y_begin, int y_end,
    CnclipRowFunc row_func, gpointer user_data, guint8 *out, gsize out_stride, GError **error)
{
  const gsize w = (gsize) rs->in_size;
  /* zeroed: rows past the end of the last block are computed, never stored */
  guint8 *cols = g_try_malloc0 (w * BLOCK_BYTES);
  guint8 *scratch = g_try_malloc (w * 3);
  if (cols == NULL || scratch == NULL) {
    g_free (cols);
    g_free (scratch);
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_NOMEM,
        "cannot allocate resampling buffers for a width of %d pixels", rs->in_size);
    return FALSE;
  }

  for (int y0 = y_begin; y0 < y_end; y0 += BLOCK_ROWS) {
    const int n_rows = MIN (BLOCK_ROWS, y_end - y0);
    for (int r = 0; r < n_rows; r++) {
      const guint8 *src = row_func (user_data, y0 + r, scratch);
      guint8 *d = cols + 3 * r;
      gsize x = 0;
      /* 4-byte moves: the extra byte lands on row r + 1 of the same column,
       * which is written afterwards (so not for the last row, and never
       * reading past the last pixel of the source row) */
      if (r < BLOCK_ROWS - 1) {
        for (; x + 1 < w; x++, d += BLOCK_BYTES, src += 3) {
          guint32 v;
          memcpy (&v, src, 4);
          memcpy (d, &v, 4);
        }
      }
      for (; x < w; x++, d += BLOCK_BYTES, src += 3)
        memcpy (d, src, 3);
    }
    horizontal_block (rs, cols, n_rows, out + (gsize) (y0 - y_begin) * out_stride, out_stride);
  }
  g_free (cols);
  g_free (scratch);
  return TRUE;
}

CNCLIP_MULTIVERSION void
cnclip_resample_vertical (const CnclipResampler *rs, const guint8 *in, int in_row0,
    gsize in_stride, int width, guint8 *out, gsize out_stride, gint32 *acc)
{
  const int n_bytes = width * 3;
  for (int yy = 0; yy < rs->out_size; yy++) {
    for (int i = 0; i < n_bytes; i++)
      acc[i] = 1 << (PRECISION_BITS - 1);
    const gint32 *k = rs->coeffs + (gsize) yy * rs->ksize;
    const guint8 *row = in + (gsize) (rs->first[yy] - in_row0) * in_stride;
    const int n = rs->count[yy];
    for (int j = 0; j < n; j++, row += in_stride) {
      const gint32 kj = k[j];
      for (int i = 0; i < n_bytes; i++)
        acc[i] += kj * row[i];
    }
    guint8 *o = out + (gsize) yy * out_stride;
    for (int i = 0; i < n_bytes; i++)
      o[i] = clip8 (acc[i]);
  }
}
