/* image-convert.h: any CnclipImage to packed 8-bit RGB, one row at a time.
 *
 * Internal to libcnclip (image.c and its tests). A CnclipRowReader checks an
 * image once and then converts any of its rows; the whole-frame conversion
 * (cnclip_image_to_rgb) and the fused convert-and-resize path use the same
 * reader, so they give the same bytes.
 *
 * YUV -> RGB is the textbook conversion (ITU-R BT.601 / BT.709 equations,
 * JFIF for full range), rounded to nearest with halves up, exactly: the
 * result equals the formula below evaluated in exact arithmetic for every
 * (Y, U, V) in 0..255^3 and every matrix (tests/core/test-image.c checks all
 * 4 x 2^24 triples).
 *
 * Derivation. With Kg = 1 - Kr - Kb and normalised signals
 *   limited range: Y' = (Y - 16) / 219, Pb = (U - 128) / 224, Pr = (V - 128) / 224
 *   full range:    Y' = Y / 255,        Pb = (U - 128) / 255, Pr = (V - 128) / 255
 * the inverse of Y' = Kr R' + Kg G' + Kb B', Pb = (B' - Y') / (2 (1 - Kb)),
 * Pr = (R' - Y') / (2 (1 - Kr)) is
 *   R' = Y' + 2 (1 - Kr) Pr
 *   G' = Y' - 2 Kb (1 - Kb) / Kg Pb - 2 Kr (1 - Kr) / Kg Pr
 *   B' = Y' + 2 (1 - Kb) Pb
 * and each output byte is clamp (floor (255 X' + 1/2), 0, 255). For BT.601
 * limited range (Kr 0.299, Kb 0.114) the factors 255/219 and 255/224 give the
 * familiar R = 1.164383 (Y - 16) + 1.596027 (V - 128),
 * G = 1.164383 (Y - 16) - 0.391762 (U - 128) - 0.812968 (V - 128),
 * B = 1.164383 (Y - 16) + 2.017232 (U - 128); BT.709 (Kr 0.2126, Kb 0.0722)
 * gives 1.792741, 0.213249, 0.532909 and 2.112402.
 *
 * Exact evaluation. Write 255 X' = (L Y - O) / 219 + C, with L = 255 and
 * O = 255 * 16 in limited range, L = 219 and O = 0 in full range (there
 * 255 Y' = Y = 219 Y / 219), and C = ku (U - 128) + kv (V - 128) the chroma
 * term. Since floor ((n + z) / m) = floor ((n + floor (z)) / m) for integers
 * n and m > 0:
 *   floor (255 X' + 1/2) = floor ((L Y + H) / 219),  H = floor (z),
 *   z = 219 C + 219/2 - O
 * H depends on the chroma sample only, so it is computed once per sample
 * (in double precision, see below) and the per-pixel work is integer: with
 * H = 219 hq + hr (0 <= hr < 219) the result is hq + floor ((L Y + hr) / 219),
 * where L Y + hr < 2^16 (16-bit lanes; the compiler turns the division by
 * the constant into a multiply-high), clamped to 0..255.
 *
 * H in double: 219 C + 219/2 is a rational whose denominator divides
 * Q <= 133504000 (the largest, BT.709 limited G), so when it is not an integer
 * it lies at least 1/Q = 7.49e-9 below the next one. Rounding errors of the
 * double coefficients and of the sum stay below 1e-10 (|219 C| < 2^16), so
 * adding 2^-28 = 3.73e-9 before truncating lands on floor () exactly, exact
 * integers (ties of the rounding) included, and leaves the sum at least
 * 3.6e-9 away from any integer.
 *
 * Why not a fixed-point sum with rounded coefficients: the formula comes
 * within 1.0e-7 of a half (BT.601 limited G), so coefficients with 16
 * fractional bits get 5800 to 7900 of the 2^24 triples wrong by one level per
 * matrix, and 24 bits (which overflow int32 sums) still leave 45 to 270.
 *
 * Chroma: each 4:2:0 sample covers its 2x2 block of pixels (nearest, no
 * interpolation between samples), for I420 and NV12 alike: both layouts of
 * the same picture give the same RGB.
 */
#ifndef CNCLIP_IMAGE_CONVERT_H
#define CNCLIP_IMAGE_CONVERT_H

#include "cnclip.h"

G_BEGIN_DECLS

/* Largest accepted width or height of an input or output image. */
#define CNCLIP_IMAGE_MAX_SIZE 32768

#define CNCLIP_YUV_N_MATRICES 4

typedef struct
{
  CnclipImage image;
  /* YUV: z + CNCLIP_YUV_TRUNC_BIAS = ku[c] (U - 128) + kv[c] (V - 128) + k0 for
   * c = R, G, B (k0 holds 219/2, -O, 2^-28 and the bias) */
  double ku[3];
  double kv[3];
  double k0;
  gint32 luma_mul;               /* L: 255 limited range, 219 full range */
} CnclipRowReader;

/* Added to z so that truncation is floor (|z| < 2^17, so the sum stays
 * positive); a multiple of 219 (see image-convert.c). */
#define CNCLIP_YUV_TRUNC_BIAS (219 * 600)

/* Checks @image (format, sizes up to CNCLIP_IMAGE_MAX_SIZE, yuv_matrix,
 * planes present, strides at least the row size) and prepares @reader.
 * @image is copied, the pixels are not: they must outlive the reader.
 * Errors: CNCLIP_ERROR_INVALID_ARGUMENT. Thread-safe. */
gboolean cnclip_row_reader_init (CnclipRowReader *reader, const CnclipImage *image,
    GError **error);

/* TRUE when the image is packed RGB, so rows can be used in place. */
static inline gboolean
cnclip_row_reader_is_rgb (const CnclipRowReader *reader)
{
  return reader->image.format == CNCLIP_PIXEL_RGB;
}

/* TRUE when the image is I420 or NV12. */
static inline gboolean
cnclip_row_reader_is_yuv (const CnclipRowReader *reader)
{
  return reader->image.format == CNCLIP_PIXEL_I420 || reader->image.format == CNCLIP_PIXEL_NV12;
}

/* Address of row @y of plane 0. */
static inline const guint8 *
cnclip_row_reader_plane_row (const CnclipRowReader *reader, int y)
{
  return reader->image.planes[0] + (gsize) y * (gsize) reader->image.strides[0];
}

/* Writes row @y (0 <= y < height) as width * 3 bytes of packed RGB to @rgb
 * and, when @rgb_next is not NULL, row @y + 1 (< height) to @rgb_next. For
 * I420/NV12 an even @y is cheaper per row that way: both rows share one row
 * of chroma samples, whose terms are then computed once. */
void cnclip_row_reader_read_pair (const CnclipRowReader *reader, int y, guint8 *rgb,
    guint8 *rgb_next);

/* Writes row @y (0 <= y < height) as width * 3 bytes of packed RGB. */
static inline void
cnclip_row_reader_read (const CnclipRowReader *reader, int y, guint8 *rgb)
{
  cnclip_row_reader_read_pair (reader, y, rgb, NULL);
}

G_END_DECLS

#endif /* CNCLIP_IMAGE_CONVERT_H */
