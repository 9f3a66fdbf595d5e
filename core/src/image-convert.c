/* image-convert.c: see image-convert.h. */
#include "config.h"

#include <string.h>

#include "image-convert.h"
#include "image-simd.h"

/* The YUV loops run on 16-bit lanes, which AVX-512 has only with AVX512BW,
 * and GCC keeps plain avx512f code at 256 bits: the x86-64-v4 clone (F, BW,
 * DQ, VL) is about twice as fast here. */
#if defined(__x86_64__) && defined(__linux__) && defined(__GLIBC__) \
    && (defined(__clang__) ? __clang_major__ >= 14 : __GNUC__ >= 12)
#define YUV_MULTIVERSION __attribute__ ((target_clones ("arch=x86-64-v4", "avx2", "default")))
#else
#define YUV_MULTIVERSION CNCLIP_MULTIVERSION
#endif

/* The chroma factors of image-convert.h, times 219: 219 * 255 / 224 in
 * limited range (the chroma scale 255 / 224 and the 219 of H), 219 in full
 * range. The constant parts of z: 219 / 2 for the rounding, -O, the 2^-28
 * margin and the truncation bias. */
#define CHROMA_SCALE_LIMITED (219.0 * 255.0 / 224.0)
#define CHROMA_SCALE_FULL 219.0
#define H_CONSTANT(offset) \
  (219.0 / 2.0 - (offset) + 0x1p-28 + CNCLIP_YUV_TRUNC_BIAS)

/* R, G and B factors of U - 128 and of V - 128 (image-convert.h: R' and B'
 * each use one chroma signal, G' both), from Kr, Kb and the chroma scale. */
#define YUV_FACTORS(kr, kb, scale) \
  .ku = {0.0, -(scale) * 2.0 * (kb) * (1.0 - (kb)) / (1.0 - (kr) - (kb)), \
        (scale) * 2.0 * (1.0 - (kb))}, \
  .kv = {(scale) * 2.0 * (1.0 - (kr)), \
        -(scale) * 2.0 * (kr) * (1.0 - (kr)) / (1.0 - (kr) - (kb)), 0.0}

static const struct
{
  double ku[3];
  double kv[3];
  double k0;
  gint32 luma_mul;
} yuv_matrices[CNCLIP_YUV_N_MATRICES] = {
  [CNCLIP_YUV_BT601] = {YUV_FACTORS (0.299, 0.114, CHROMA_SCALE_LIMITED),
      .k0 = H_CONSTANT (255 * 16), .luma_mul = 255},
  [CNCLIP_YUV_BT709] = {YUV_FACTORS (0.2126, 0.0722, CHROMA_SCALE_LIMITED),
      .k0 = H_CONSTANT (255 * 16), .luma_mul = 255},
  [CNCLIP_YUV_BT601_FULL] = {YUV_FACTORS (0.299, 0.114, CHROMA_SCALE_FULL),
      .k0 = H_CONSTANT (0), .luma_mul = 219},
  [CNCLIP_YUV_BT709_FULL] = {YUV_FACTORS (0.2126, 0.0722, CHROMA_SCALE_FULL),
      .k0 = H_CONSTANT (0), .luma_mul = 219},
};

static const char *
format_name (CnclipPixelFormat format)
{
  static const char *const names[] = {
    "RGB", "BGR", "RGBA", "BGRA", "RGBx", "BGRx", "xRGB", "xBGR", "GRAY8", "I420", "NV12",
  };
  if ((guint) format < G_N_ELEMENTS (names))
    return names[format];
  return "unknown";
}

static gboolean
check_plane (const CnclipImage *image, int plane, gint64 row_size, GError **error)
{
  if (image->planes[plane] == NULL) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT,
        "%s image: plane %d is NULL", format_name (image->format), plane);
    return FALSE;
  }
  if ((gint64) image->strides[plane] < row_size) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT,
        "%s image of width %d: stride %d of plane %d is less than the row size %"
        G_GINT64_FORMAT, format_name (image->format), image->width, image->strides[plane],
        plane, row_size);
    return FALSE;
  }
  return TRUE;
}

gboolean
cnclip_row_reader_init (CnclipRowReader *reader, const CnclipImage *image, GError **error)
{
  g_return_val_if_fail (reader != NULL, FALSE);
  g_return_val_if_fail (image != NULL, FALSE);

  const int w = image->width, h = image->height;
  if (w <= 0 || h <= 0 || w > CNCLIP_IMAGE_MAX_SIZE || h > CNCLIP_IMAGE_MAX_SIZE) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT,
        "image size %dx%d: width and height must be 1 to %d", w, h, CNCLIP_IMAGE_MAX_SIZE);
    return FALSE;
  }
  /* Checked for every format: a garbage value means the caller did not
   * zero-initialise the struct, which is worth hearing about early. */
  const CnclipYuvMatrix matrix = image->yuv_matrix;
  if ((guint) matrix >= CNCLIP_YUV_N_MATRICES) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT,
        "unknown YUV matrix %d (is the CnclipImage zero-initialised?)", (int) matrix);
    return FALSE;
  }

  memset (reader, 0, sizeof (*reader));
  reader->image = *image;
  const gint64 chroma_width = (w + 1) / 2;

  switch (image->format) {
    case CNCLIP_PIXEL_RGB:
    case CNCLIP_PIXEL_BGR:
    case CNCLIP_PIXEL_RGBA:
    case CNCLIP_PIXEL_BGRA:
    case CNCLIP_PIXEL_RGBX:
    case CNCLIP_PIXEL_BGRX:
    case CNCLIP_PIXEL_XRGB:
    case CNCLIP_PIXEL_XBGR:
    case CNCLIP_PIXEL_GRAY8:
      return check_plane (image, 0,
          (gint64) w * cnclip_pixel_format_bytes_per_pixel (image->format), error);
    case CNCLIP_PIXEL_I420:
      if (!check_plane (image, 0, w, error) || !check_plane (image, 1, chroma_width, error)
          || !check_plane (image, 2, chroma_width, error))
        return FALSE;
      break;
    case CNCLIP_PIXEL_NV12:
      if (!check_plane (image, 0, w, error) || !check_plane (image, 1, 2 * chroma_width, error))
        return FALSE;
      break;
    default:
      g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT,
          "unknown pixel format %d", (int) image->format);
      return FALSE;
  }

  for (int c = 0; c < 3; c++) {
    reader->ku[c] = yuv_matrices[matrix].ku[c];
    reader->kv[c] = yuv_matrices[matrix].kv[c];
  }
  reader->k0 = yuv_matrices[matrix].k0;
  reader->luma_mul = yuv_matrices[matrix].luma_mul;
  return TRUE;
}

/* YUV rows are converted in chunks of this many pixels, in two element-wise
 * loops the compiler vectorises: the chroma terms of each chroma sample
 * (double lanes), written twice (one per pixel of the pair), then the pixels
 * (16-bit lanes). */
#define YUV_CHUNK 256

/* H = 219 hq + hr with 0 <= hr < 219, so that
 *   floor ((L Y + H) / 219) = hq + floor ((L Y + hr) / 219)
 * where L Y + hr < 2^16 fits 16-bit lanes. Both come from z = 219 C + ...
 * (H = floor (z)): hq = floor (z / 219), hr = floor (z) - 219 hq, computed
 * with a bias that is a multiple of 219 and cancels in hr. z / 219 is at
 * least 1.6e-11 away from an integer (image-convert.h: z is at least 3.6e-9
 * away) while the product by 1/219 errs by less than 1e-12. Ranges: hq is
 * -289..270, so hq + floor (...) fits 16 bits too. */
static inline void
split_h (double z, gint16 *hq, gint16 *hr)
{
  const gint32 q = (gint32) (z * (1.0 / 219.0));
  *hq = (gint16) (q - CNCLIP_YUV_TRUNC_BIAS / 219);
  *hr = (gint16) ((gint32) z - 219 * q);
}

/* hq, hr of R, G and B for @n chroma samples (@step bytes apart), each
 * written twice. */
static inline void
chroma_terms (const CnclipRowReader *r, const guint8 *us, const guint8 *vs, const int step,
    int n, gint16 (*hq)[YUV_CHUNK], gint16 (*hr)[YUV_CHUNK])
{
  const double kvr = r->kv[0], kug = r->ku[1], kvg = r->kv[1], kub = r->ku[2], k0 = r->k0;
  for (int i = 0; i < n; i++) {
    const double u = (int) us[step * i] - 128, v = (int) vs[step * i] - 128;
    gint16 q, m;
    split_h (kvr * v + k0, &q, &m);
    hq[0][2 * i] = hq[0][2 * i + 1] = q;
    hr[0][2 * i] = hr[0][2 * i + 1] = m;
    split_h (kug * u + kvg * v + k0, &q, &m);
    hq[1][2 * i] = hq[1][2 * i + 1] = q;
    hr[1][2 * i] = hr[1][2 * i + 1] = m;
    split_h (kub * u + k0, &q, &m);
    hq[2][2 * i] = hq[2][2 * i + 1] = q;
    hr[2][2 * i] = hr[2][2 * i + 1] = m;
  }
}

YUV_MULTIVERSION static void
chroma_terms_i420 (const CnclipRowReader *r, const guint8 *us, const guint8 *vs, int n,
    gint16 (*hq)[YUV_CHUNK], gint16 (*hr)[YUV_CHUNK])
{
  chroma_terms (r, us, vs, 1, n, hq, hr);
}

/* NV12: deinterleaved first, which vectorises better than strided loads in
 * the double-precision loop. */
YUV_MULTIVERSION static void
chroma_terms_nv12 (const CnclipRowReader *r, const guint8 *uv, int n, gint16 (*hq)[YUV_CHUNK],
    gint16 (*hr)[YUV_CHUNK])
{
  guint8 us[YUV_CHUNK / 2], vs[YUV_CHUNK / 2];
  for (int i = 0; i < n; i++) {
    us[i] = uv[2 * i];
    vs[i] = uv[2 * i + 1];
  }
  chroma_terms (r, us, vs, 1, n, hq, hr);
}

/* hq + floor ((L Y + hr) / 219), clamped to 0..255 */
static inline guint8
channel (guint16 l, gint16 hq, gint16 hr)
{
  const gint16 v = hq + (gint16) ((guint16) (l + hr) / 219);
  return (guint8) CLAMP (v, 0, 255);
}

YUV_MULTIVERSION static void
luma_to_rgb (guint16 luma_mul, const guint8 *ys, gint16 (*hq)[YUV_CHUNK],
    gint16 (*hr)[YUV_CHUNK], int n, guint8 *rgb)
{
  for (int x = 0; x < n; x++) {
    const guint16 l = luma_mul * ys[x];
    rgb[3 * x + 0] = channel (l, hq[0][x], hr[0][x]);
    rgb[3 * x + 1] = channel (l, hq[1][x], hr[1][x]);
    rgb[3 * x + 2] = channel (l, hq[2][x], hr[2][x]);
  }
}

/* Rows @y and (when @rgb1 is not NULL) @y + 1 of a YUV image, which share
 * chroma row @y / 2: the chroma terms are computed once for both. */
static void
yuv_rows (const CnclipRowReader *reader, int y, guint8 *rgb0, guint8 *rgb1)
{
  const CnclipImage *im = &reader->image;
  const int n = im->width;
  const gsize cy = (gsize) (y / 2);
  const guint8 *us = im->planes[1] + cy * (gsize) im->strides[1];
  const guint8 *vs = im->format == CNCLIP_PIXEL_I420 ?
      im->planes[2] + cy * (gsize) im->strides[2] : NULL;
  const guint8 *ys0 = cnclip_row_reader_plane_row (reader, y);
  const guint8 *ys1 = rgb1 != NULL ? cnclip_row_reader_plane_row (reader, y + 1) : NULL;
  gint16 hq[3][YUV_CHUNK], hr[3][YUV_CHUNK];

  for (int x0 = 0; x0 < n; x0 += YUV_CHUNK) {
    const int m = MIN (YUV_CHUNK, n - x0);
    /* x0 is even: the chunk starts at chroma sample x0 / 2 */
    if (vs == NULL)
      chroma_terms_nv12 (reader, us + x0, (m + 1) / 2, hq, hr);
    else
      chroma_terms_i420 (reader, us + x0 / 2, vs + x0 / 2, (m + 1) / 2, hq, hr);
    luma_to_rgb (reader->luma_mul, ys0 + x0, hq, hr, m, rgb0 + 3 * (gsize) x0);
    if (rgb1 != NULL)
      luma_to_rgb (reader->luma_mul, ys1 + x0, hq, hr, m, rgb1 + 3 * (gsize) x0);
  }
}

/* Packed formats: one function per channel order, so that the byte offsets
 * are constants and the copy loop vectorises. */
static inline void
packed_row (const guint8 *src, int w, guint8 *rgb, const int bpp, const int r, const int g,
    const int b)
{
  for (int x = 0; x < w; x++) {
    rgb[3 * x + 0] = src[bpp * x + r];
    rgb[3 * x + 1] = src[bpp * x + g];
    rgb[3 * x + 2] = src[bpp * x + b];
  }
}

#define DEFINE_PACKED_ROW(name, bpp, r, g, b) \
  CNCLIP_MULTIVERSION static void \
  name (const guint8 *src, int w, guint8 *rgb) \
  { \
    packed_row (src, w, rgb, bpp, r, g, b); \
  }

DEFINE_PACKED_ROW (row_bgr, 3, 2, 1, 0)
DEFINE_PACKED_ROW (row_rgbx, 4, 0, 1, 2)
DEFINE_PACKED_ROW (row_bgrx, 4, 2, 1, 0)
DEFINE_PACKED_ROW (row_xrgb, 4, 1, 2, 3)
DEFINE_PACKED_ROW (row_xbgr, 4, 3, 2, 1)
DEFINE_PACKED_ROW (row_gray, 1, 0, 0, 0)

void
cnclip_row_reader_read_pair (const CnclipRowReader *reader, int y, guint8 *rgb,
    guint8 *rgb_next)
{
  const CnclipImage *im = &reader->image;
  const int w = im->width;
  const guint8 *src = cnclip_row_reader_plane_row (reader, y);

  switch (im->format) {
    case CNCLIP_PIXEL_RGB:
      memcpy (rgb, src, (gsize) w * 3);
      break;
    case CNCLIP_PIXEL_GRAY8:
      row_gray (src, w, rgb);
      break;
    case CNCLIP_PIXEL_BGR:
      row_bgr (src, w, rgb);
      break;
    case CNCLIP_PIXEL_RGBA:
    case CNCLIP_PIXEL_RGBX:
      row_rgbx (src, w, rgb);
      break;
    case CNCLIP_PIXEL_BGRA:
    case CNCLIP_PIXEL_BGRX:
      row_bgrx (src, w, rgb);
      break;
    case CNCLIP_PIXEL_XRGB:
      row_xrgb (src, w, rgb);
      break;
    case CNCLIP_PIXEL_XBGR:
      row_xbgr (src, w, rgb);
      break;
    case CNCLIP_PIXEL_I420:
    case CNCLIP_PIXEL_NV12:
      if (y % 2 == 0) {
        yuv_rows (reader, y, rgb, rgb_next);
        return;
      }
      yuv_rows (reader, y, rgb, NULL);
      break;
    default:
      g_return_if_reached ();
  }
  if (rgb_next != NULL)
    cnclip_row_reader_read_pair (reader, y + 1, rgb_next, NULL);
}
