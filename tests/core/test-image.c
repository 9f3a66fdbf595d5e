/* test-image.c: conversion to RGB and Pillow-identical bicubic resizing
 * (FIXTURES.md section 2), checked against the golden resized images, against
 * literal re-implementations of the spec written here (the resampler, the
 * textbook YUV formula in exact arithmetic), and (when GStreamer's
 * command-line tools are installed) against videoconvert, within measured
 * bounds. */
#include "config.h"

#include <math.h>
#include <string.h>
#include <glib/gstdio.h>

#include "test-util.h"
#include "image-convert.h"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

typedef struct
{
  guint8 *rgb;
  int width;
  int height;
} Rgb;

static Rgb
load_golden_rgb (int index, gboolean resized)
{
  const TestGoldenImage *im = test_golden_image (index);
  char *rel = g_build_filename ("cnclip-tiny", "golden", resized ? im->resized_rgb : im->rgb, NULL);
  char *path = test_data_path (rel);
  gsize len;
  Rgb out = { test_read_file (path, &len), resized ? 224 : im->width, resized ? 224 : im->height };
  g_assert_cmpuint (len, ==, (gsize) out.width * out.height * 3);
  g_free (path);
  g_free (rel);
  return out;
}

static void
fill_random (GRand *rand, guint8 *p, gsize n)
{
  for (gsize i = 0; i < n; i++)
    p[i] = (guint8) g_rand_int_range (rand, 0, 256);
}

/* Index of the first differing byte, or -1. */
static gssize
first_difference (const guint8 *a, const guint8 *b, gsize n)
{
  for (gsize i = 0; i < n; i++)
    if (a[i] != b[i])
      return (gssize) i;
  return -1;
}

#define assert_same_bytes(a, b, n, what) \
  G_STMT_START { \
    gssize d_ = first_difference ((a), (b), (n)); \
    if (d_ >= 0) \
      g_error ("%s: byte %" G_GSSIZE_FORMAT " differs: %d != %d", (what), d_, (a)[d_], (b)[d_]); \
  } G_STMT_END

/* FIXTURES.md 2.1, transcribed as literally as possible (no blocks, no
 * tables shared with the library), to check the optimised passes on sizes
 * the golden set does not cover. */
static double
spec_kernel (double t)
{
  const double a = -0.5;
  t = fabs (t);
  if (t < 1)
    return ((a + 2) * t - (a + 3)) * t * t + 1;
  if (t < 2)
    return (((t - 5) * t + 8) * t - 4) * a;
  return 0;
}

/* One pass over @n_lines lines of @in samples each (3 channels); sample i of
 * line l is at base + l * line_step + i * sample_step. */
static void
spec_pass (const guint8 *src, gsize src_line, gsize src_sample, int in, int n_lines, guint8 *dst,
    gsize dst_line, gsize dst_sample, int out)
{
  const double scale = (double) in / out;
  const double filterscale = MAX (scale, 1.0);
  const double support = 2.0 * filterscale;
  const double ss = 1.0 / filterscale;
  for (int xx = 0; xx < out; xx++) {
    const double center = (xx + 0.5) * scale;
    int xmin = (int) (center - support + 0.5);
    if (xmin < 0)
      xmin = 0;
    int xmax = (int) (center + support + 0.5);
    if (xmax > in)
      xmax = in;
    const int n = xmax - xmin;
    double w[n > 0 ? n : 1], sum = 0;
    gint32 kfix[n > 0 ? n : 1];
    for (int x = 0; x < n; x++) {
      w[x] = spec_kernel ((x + xmin - center + 0.5) * ss);
      sum += w[x];
    }
    for (int x = 0; x < n; x++) {
      if (sum != 0)
        w[x] /= sum;
      kfix[x] = w[x] < 0 ? (int) (-0.5 + w[x] * (1 << 22)) : (int) (0.5 + w[x] * (1 << 22));
    }
    for (int l = 0; l < n_lines; l++) {
      for (int c = 0; c < 3; c++) {
        gint32 acc = 1 << 21;
        for (int x = 0; x < n; x++)
          acc += kfix[x] * (int) src[l * src_line + (gsize) (xmin + x) * src_sample + c];
        int v = acc >> 22;
        dst[l * dst_line + (gsize) xx * dst_sample + c] = (guint8) CLAMP (v, 0, 255);
      }
    }
  }
}

static guint8 *
spec_resize (const guint8 *in, int w, int h, int ow, int oh)
{
  guint8 *cur = g_memdup2 (in, (gsize) w * h * 3);
  if (ow != w) {
    guint8 *tmp = g_malloc ((gsize) ow * h * 3);
    spec_pass (cur, (gsize) w * 3, 3, w, h, tmp, (gsize) ow * 3, 3, ow);
    g_free (cur);
    cur = tmp;
  }
  if (oh != h) {
    guint8 *tmp = g_malloc ((gsize) ow * oh * 3);
    /* columns as lines: a line step of one pixel, a sample step of one row */
    spec_pass (cur, 3, (gsize) ow * 3, h, ow, tmp, 3, (gsize) ow * 3, oh);
    g_free (cur);
    cur = tmp;
  }
  return cur;
}

/* The YUV matrices as the standards define them: Kr and Kb (in units of
 * 1e-4, so that the reference below can be exact) and the range. */
static const struct
{
  const char *name;
  int kr, kb;                    /* 1e-4 */
  gboolean full;
  const char *colorimetry;       /* GStreamer's name, for videoconvert */
} matrices[] = {
  [CNCLIP_YUV_BT601] = {"BT.601", 2990, 1140, FALSE, "bt601"},
  [CNCLIP_YUV_BT709] = {"BT.709", 2126, 722, FALSE, "bt709"},
  [CNCLIP_YUV_BT601_FULL] = {"BT.601 full", 2990, 1140, TRUE, "1:4:0:0"},  /* range 0-255 */
  [CNCLIP_YUV_BT709_FULL] = {"BT.709 full", 2126, 722, TRUE, "1:3:0:0"},
};

G_STATIC_ASSERT (G_N_ELEMENTS (matrices) == CNCLIP_YUV_N_MATRICES);

/* The textbook formula in double precision, unrounded:
 *   limited: Y' = (Y - 16) / 219, Pb = (U - 128) / 224, Pr = (V - 128) / 224
 *   full:    Y' = Y / 255,        Pb = (U - 128) / 255, Pr = (V - 128) / 255
 *   R = 255 (Y' + 2 (1 - Kr) Pr)
 *   G = 255 (Y' - 2 Kb (1 - Kb) / Kg Pb - 2 Kr (1 - Kr) / Kg Pr)
 *   B = 255 (Y' + 2 (1 - Kb) Pb) */
static void
double_formula (int m, int y, int u, int v, double rgb[3])
{
  const double kr = matrices[m].kr / 1e4, kb = matrices[m].kb / 1e4, kg = 1.0 - kr - kb;
  const gboolean full = matrices[m].full;
  const double yy = full ? y / 255.0 : (y - 16) / 219.0;
  const double pb = (u - 128) / (full ? 255.0 : 224.0), pr = (v - 128) / (full ? 255.0 : 224.0);
  rgb[0] = 255.0 * (yy + 2.0 * (1.0 - kr) * pr);
  rgb[1] = 255.0 * (yy - 2.0 * kb * (1.0 - kb) / kg * pb - 2.0 * kr * (1.0 - kr) / kg * pr);
  rgb[2] = 255.0 * (yy + 2.0 * (1.0 - kb) * pb);
}

static gint64
floor_div (gint64 a, gint64 b)
{
  const gint64 q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* The same formula in exact integer arithmetic, rounded half up and clamped:
 * with Kr = kr / 1e4 etc., every channel is Num / Den for
 *   Den = Yr Cr 1e4 kg   (Yr, Cr = 219, 224 limited; 255, 255 full)
 *   Num = 255 (Cr 1e4 kg y' + Yr (chroma numerators))
 * (|Num| < 2^51). Sets @ties[c] when channel c is exactly halfway. */
static void
exact_formula (int m, int y, int u, int v, guint8 rgb[3], gboolean ties[3])
{
  const gint64 kr = matrices[m].kr, kb = matrices[m].kb, kg = 10000 - kr - kb;
  const gboolean full = matrices[m].full;
  const gint64 yr = full ? 255 : 219, cr = full ? 255 : 224;
  const gint64 yy = y - (full ? 0 : 16), uu = u - 128, vv = v - 128;
  const gint64 den = yr * cr * 10000 * kg;
  const gint64 luma = cr * 10000 * kg * yy;
  const gint64 num[3] = {
    255 * (luma + yr * 2 * (10000 - kr) * kg * vv),
    255 * (luma - yr * 2 * kb * (10000 - kb) * uu - yr * 2 * kr * (10000 - kr) * vv),
    255 * (luma + yr * 2 * (10000 - kb) * kg * uu),
  };
  for (int c = 0; c < 3; c++) {
    /* floor (Num / Den + 1/2) */
    const gint64 t = 2 * num[c] + den;
    const gint64 q = floor_div (t, 2 * den);
    ties[c] = t - q * 2 * den == 0;
    rgb[c] = (guint8) CLAMP (q, 0, 255);
  }
}

/* A YUV 4:2:0 frame with padded strides (garbage in the padding). */
typedef struct
{
  CnclipImage image;
  guint8 *planes[3];
} Yuv;

static Yuv
make_yuv (GRand *rand, CnclipPixelFormat format, int w, int h, int pad)
{
  Yuv f = { {.format = format,.width = w,.height = h } };
  const int cw = (w + 1) / 2, ch = (h + 1) / 2;
  const int n_planes = format == CNCLIP_PIXEL_I420 ? 3 : 2;
  for (int p = 0; p < n_planes; p++) {
    const int row = p == 0 ? w : format == CNCLIP_PIXEL_NV12 ? 2 * cw : cw;
    const int rows = p == 0 ? h : ch;
    f.image.strides[p] = row + pad;
    f.planes[p] = g_malloc ((gsize) f.image.strides[p] * rows);
    fill_random (rand, f.planes[p], (gsize) f.image.strides[p] * rows);
    f.image.planes[p] = f.planes[p];
  }
  return f;
}

static void
yuv_free (Yuv *f)
{
  for (int p = 0; p < 3; p++)
    g_free (f->planes[p]);
}

/* Y, U, V of pixel (x, y), chroma repeated over 2x2 blocks. */
static void
yuv_sample (const Yuv *f, int x, int y, guint8 *yy, guint8 *u, guint8 *v)
{
  const CnclipImage *im = &f->image;
  *yy = im->planes[0][y * im->strides[0] + x];
  if (im->format == CNCLIP_PIXEL_I420) {
    *u = im->planes[1][(y / 2) * im->strides[1] + x / 2];
    *v = im->planes[2][(y / 2) * im->strides[2] + x / 2];
  } else {
    *u = im->planes[1][(y / 2) * im->strides[1] + 2 * (x / 2)];
    *v = im->planes[1][(y / 2) * im->strides[1] + 2 * (x / 2) + 1];
  }
}

/* ------------------------------------------------------------------------ */
/* Formats                                                                  */

static const struct
{
  CnclipPixelFormat format;
  int bpp;
  int r, g, b;                   /* byte offsets; -1 for planar */
} packed_formats[] = {
  {CNCLIP_PIXEL_RGB, 3, 0, 1, 2},
  {CNCLIP_PIXEL_BGR, 3, 2, 1, 0},
  {CNCLIP_PIXEL_RGBA, 4, 0, 1, 2},
  {CNCLIP_PIXEL_BGRA, 4, 2, 1, 0},
  {CNCLIP_PIXEL_RGBX, 4, 0, 1, 2},
  {CNCLIP_PIXEL_BGRX, 4, 2, 1, 0},
  {CNCLIP_PIXEL_XRGB, 4, 1, 2, 3},
  {CNCLIP_PIXEL_XBGR, 4, 3, 2, 1},
};

/* Test that bytes_per_pixel gives 3/4 for packed formats, 1 for GRAY8, 0 otherwise. */
static void
test_bytes_per_pixel (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (packed_formats); i++)
    g_assert_cmpint (cnclip_pixel_format_bytes_per_pixel (packed_formats[i].format), ==,
        packed_formats[i].bpp);
  g_assert_cmpint (cnclip_pixel_format_bytes_per_pixel (CNCLIP_PIXEL_GRAY8), ==, 1);
  g_assert_cmpint (cnclip_pixel_format_bytes_per_pixel (CNCLIP_PIXEL_I420), ==, 0);
  g_assert_cmpint (cnclip_pixel_format_bytes_per_pixel (CNCLIP_PIXEL_NV12), ==, 0);
  g_assert_cmpint (cnclip_pixel_format_bytes_per_pixel ((CnclipPixelFormat) 99), ==, 0);
}

/* Packs @rgb into @format with a stride @pad bytes longer than the row;
 * alpha/x bytes and padding get random values. */
static CnclipImage
make_packed (GRand *rand, const Rgb *rgb, int fmt_index, int pad, guint8 **storage)
{
  const int bpp = packed_formats[fmt_index].bpp;
  const int stride = rgb->width * bpp + pad;
  guint8 *p = g_malloc ((gsize) stride * rgb->height);
  fill_random (rand, p, (gsize) stride * rgb->height);
  for (int y = 0; y < rgb->height; y++) {
    for (int x = 0; x < rgb->width; x++) {
      const guint8 *s = rgb->rgb + ((gsize) y * rgb->width + x) * 3;
      guint8 *d = p + (gsize) y * stride + (gsize) x * bpp;
      d[packed_formats[fmt_index].r] = s[0];
      d[packed_formats[fmt_index].g] = s[1];
      d[packed_formats[fmt_index].b] = s[2];
    }
  }
  *storage = p;
  return (CnclipImage) {
  .format = packed_formats[fmt_index].format,.width = rgb->width,.height =
        rgb->height,.planes = {p},.strides = {stride}};
}

/* Test that every packed format (channels permuted, alpha/x and stride padding
 * filled with noise) converts back to exactly the golden RGB pixels. */
static void
test_to_rgb_packed (void)
{
  GRand *rand = g_rand_new_with_seed (11);
  const int images[] = { 5, 1, 7 };  /* tiny 33x47, checker 640x480, rgba 256x320 */
  for (guint i = 0; i < G_N_ELEMENTS (images); i++) {
    Rgb rgb = load_golden_rgb (images[i], FALSE);
    guint8 *out = g_malloc ((gsize) rgb.width * rgb.height * 3);
    for (guint f = 0; f < G_N_ELEMENTS (packed_formats); f++) {
      for (int pad = 0; pad <= 13; pad += 13) {
        guint8 *storage;
        CnclipImage im = make_packed (rand, &rgb, f, pad, &storage);
        GError *error = NULL;
        memset (out, 0x5a, (gsize) rgb.width * rgb.height * 3);
        g_assert_true (cnclip_image_to_rgb (&im, out, &error));
        g_assert_no_error (error);
        assert_same_bytes (out, rgb.rgb, (gsize) rgb.width * rgb.height * 3,
            test_golden_image (images[i])->name);
        g_free (storage);
      }
    }
    g_free (out);
    g_free (rgb.rgb);
  }
  g_rand_free (rand);
}

/* Test that GRAY8 replicates grey into R, G and B (the golden L-mode image). */
static void
test_to_rgb_gray (void)
{
  Rgb rgb = load_golden_rgb (6, FALSE);  /* grey_500x375, from an L-mode PNG */
  g_assert_cmpstr (test_golden_image (6)->name, ==, "grey_500x375");
  const int stride = rgb.width + 3;
  guint8 *grey = g_malloc0 ((gsize) stride * rgb.height);
  for (int y = 0; y < rgb.height; y++) {
    for (int x = 0; x < rgb.width; x++) {
      const guint8 *s = rgb.rgb + ((gsize) y * rgb.width + x) * 3;
      g_assert_cmpint (s[0], ==, s[1]);
      g_assert_cmpint (s[0], ==, s[2]);
      grey[(gsize) y * stride + x] = s[0];
    }
    grey[(gsize) y * stride + rgb.width] = 0xee;  /* padding must be ignored */
  }
  CnclipImage im = { .format = CNCLIP_PIXEL_GRAY8,.width = rgb.width,.height = rgb.height,
    .planes = {grey},.strides = {stride}
  };
  guint8 *out = g_malloc ((gsize) rgb.width * rgb.height * 3);
  GError *error = NULL;
  g_assert_true (cnclip_image_to_rgb (&im, out, &error));
  g_assert_no_error (error);
  assert_same_bytes (out, rgb.rgb, (gsize) rgb.width * rgb.height * 3, "grey");
  g_free (out);
  g_free (grey);
  g_free (rgb.rgb);
}

/* Test that hand-checked YUV colours convert to the textbook RGB values,
 * for I420 and NV12 and with cnclip_image_resize's one-pass copy. */
static void
test_to_rgb_yuv_colours (void)
{
  /* BT.601 limited range: R = 1.164383 (Y - 16) + 1.596027 (V - 128),
   * G = 1.164383 (Y - 16) - 0.391762 (U - 128) - 0.812968 (V - 128),
   * B = 1.164383 (Y - 16) + 2.017232 (U - 128); BT.709: 1.792741, 0.213249,
   * 0.532909, 2.112402. Full range: R = Y + 2 (1 - Kr) (V - 128), ...
   * Pure colours are RGB -> YUV rounded to bytes, so they come back a level
   * off at most: BT.601 red is Y = 16 + 219 * 0.299 = 81.48 -> 81,
   * U = 128 - 224 * 0.299 / 1.772 = 90.20 -> 90, V = 128 + 112 = 240; then
   * R = 1.164383 * 65 + 1.596027 * 112 = 75.685 + 178.755 = 254.44 -> 254,
   * G = 75.685 + 0.391762 * 38 - 0.812968 * 112 = 75.685 + 14.887 - 91.052
   *   = -0.48 -> 0,
   * B = 75.685 - 2.017232 * 38 = 75.685 - 76.655 = -0.97 -> 0. */
  static const struct
  {
    const char *name;
    CnclipYuvMatrix matrix;
    guint8 yuv[3];
    guint8 rgb[3];
  } cases[] = {
    /* 1.164383 * 0 = 0 */
    {"black", CNCLIP_YUV_BT601, {16, 128, 128}, {0, 0, 0}},
    /* 1.164383 * 219 = 255 */
    {"white", CNCLIP_YUV_BT601, {235, 128, 128}, {255, 255, 255}},
    /* 1.164383 * 112 = 130.41 (videoconvert: 128) */
    {"grey", CNCLIP_YUV_BT601, {128, 128, 128}, {130, 130, 130}},
    /* 1.164383 * 110 = 128.08 */
    {"grey 126", CNCLIP_YUV_BT601, {126, 128, 128}, {128, 128, 128}},
    /* 1.164383 * -16 = -18.6 */
    {"below black", CNCLIP_YUV_BT601, {0, 128, 128}, {0, 0, 0}},
    /* 1.164383 * 239 = 278.3 */
    {"above white", CNCLIP_YUV_BT601, {255, 128, 128}, {255, 255, 255}},
    /* see above */
    {"red", CNCLIP_YUV_BT601, {81, 90, 240}, {254, 0, 0}},
    /* Y 144.55, U 53.80, V 34.21; y' = 129, u' = -74, v' = -94:
     * R = 150.205 - 150.027 = 0.18, G = 150.205 + 28.990 + 76.419 = 255.61,
     * B = 150.205 - 149.275 = 0.93 */
    {"green", CNCLIP_YUV_BT601, {145, 54, 34}, {0, 255, 1}},
    /* Y 40.97, U 240, V 109.79; y' = 25, u' = 112, v' = -18:
     * R = 29.110 - 28.728 = 0.38, G = 29.110 - 43.877 + 14.633 = -0.13,
     * B = 29.110 + 225.930 = 255.04 */
    {"blue", CNCLIP_YUV_BT601, {41, 240, 110}, {0, 0, 255}},
    /* y' = 104, u' = -28, v' = 32: R = 121.096 + 51.073 = 172.17,
     * G = 121.096 + 10.969 - 26.015 = 106.05, B = 121.096 - 56.483 = 64.61 */
    {"mid", CNCLIP_YUV_BT601, {120, 100, 160}, {172, 106, 65}},
    /* extremes clamp: R = 130.41 - 204.29 = -73.9,
     * G = 130.41 + 50.15 + 104.06 = 284.6, B = 130.41 - 258.21 = -127.8 */
    {"chroma 0", CNCLIP_YUV_BT601, {128, 0, 0}, {0, 255, 0}},
    /* R = 130.41 + 202.70 = 333.1, G = 130.41 - 49.75 - 103.25 = -22.6,
     * B = 130.41 + 256.19 = 386.6 */
    {"chroma 255", CNCLIP_YUV_BT601, {128, 255, 255}, {255, 0, 255}},
    {"709 black", CNCLIP_YUV_BT709, {16, 128, 128}, {0, 0, 0}},
    {"709 white", CNCLIP_YUV_BT709, {235, 128, 128}, {255, 255, 255}},
    /* Y = 16 + 219 * 0.2126 = 62.56 -> 63, U = 128 - 224 * 0.2126 / 1.8556
     * = 102.34 -> 102, V = 240; y' = 47, u' = -26, v' = 112:
     * R = 54.726 + 200.787 = 255.51, G = 54.726 + 5.544 - 59.686 = 0.58,
     * B = 54.726 - 54.922 = -0.20 */
    {"709 red", CNCLIP_YUV_BT709, {63, 102, 240}, {255, 1, 0}},
    /* Y 172.63, U 41.66, V 26.27; y' = 157, u' = -86, v' = -102:
     * R = 182.808 - 182.860 = -0.05, G = 182.808 + 18.339 + 54.357 = 255.50,
     * B = 182.808 - 181.666 = 1.14 */
    {"709 green", CNCLIP_YUV_BT709, {173, 42, 26}, {0, 255, 1}},
    /* Y 31.81, U 240, V 117.73; y' = 16, u' = 112, v' = -10:
     * R = 18.630 - 17.927 = 0.70, G = 18.630 - 23.884 + 5.329 = 0.08,
     * B = 18.630 + 236.589 = 255.22 */
    {"709 blue", CNCLIP_YUV_BT709, {32, 240, 118}, {1, 0, 255}},
    /* R = 121.096 + 57.368 = 178.46, G = 121.096 + 5.971 - 17.053 = 110.01,
     * B = 121.096 - 59.147 = 61.95 */
    {"709 mid", CNCLIP_YUV_BT709, {120, 100, 160}, {178, 110, 62}},
    {"full black", CNCLIP_YUV_BT601_FULL, {0, 128, 128}, {0, 0, 0}},
    {"full white", CNCLIP_YUV_BT601_FULL, {255, 128, 128}, {255, 255, 255}},
    {"full grey", CNCLIP_YUV_BT601_FULL, {128, 128, 128}, {128, 128, 128}},
    /* R = 76 + 1.402 * 127 = 254.05, G = 76 + 0.344136 * 43 - 0.714136 * 127
     * = 76 + 14.798 - 90.695 = 0.10, B = 76 - 1.772 * 43 = -0.20 */
    {"full red", CNCLIP_YUV_BT601_FULL, {76, 85, 255}, {254, 0, 0}},
    /* R = 120 + 44.864 = 164.86, G = 120 + 9.636 - 22.852 = 106.78,
     * B = 120 - 49.616 = 70.38 */
    {"full mid", CNCLIP_YUV_BT601_FULL, {120, 100, 160}, {165, 107, 70}},
    /* a tie, rounded up: B = 230 - 1.772 * 125 = 8.5 exactly;
     * G = 230 + 0.344136 * 125 = 273.0 */
    {"full tie", CNCLIP_YUV_BT601_FULL, {230, 3, 128}, {230, 255, 9}},
    /* R = 120 + 1.5748 * 32 = 170.39, G = 120 + 0.187324 * 28 - 0.468124 * 32
     * = 120 + 5.245 - 14.980 = 110.27, B = 120 - 1.8556 * 28 = 68.04 */
    {"709 full mid", CNCLIP_YUV_BT709_FULL, {120, 100, 160}, {170, 110, 68}},
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    for (int nv12 = 0; nv12 <= 1; nv12++) {
      /* a 3x3 frame of one colour: odd sizes, chroma planes of 2x2 */
      guint8 y[9], u[4], v[4], uv[8];
      memset (y, cases[i].yuv[0], sizeof y);
      memset (u, cases[i].yuv[1], sizeof u);
      memset (v, cases[i].yuv[2], sizeof v);
      for (int k = 0; k < 4; k++) {
        uv[2 * k] = cases[i].yuv[1];
        uv[2 * k + 1] = cases[i].yuv[2];
      }
      CnclipImage im = nv12 ?
          (CnclipImage) { .format = CNCLIP_PIXEL_NV12,.width = 3,.height = 3,
        .planes = {y, uv},.strides = {3, 4},.yuv_matrix = cases[i].matrix
      } : (CnclipImage) {
      .format = CNCLIP_PIXEL_I420,.width = 3,.height = 3,.planes = {y, u, v},
            .strides = {3, 2, 2},.yuv_matrix = cases[i].matrix};
      guint8 out[27], copy[27];
      GError *error = NULL;
      g_assert_true (cnclip_image_to_rgb (&im, out, &error));
      g_assert_no_error (error);
      g_assert_true (cnclip_image_resize (&im, copy, 3, 3, &error));
      g_assert_no_error (error);
      for (int p = 0; p < 9; p++) {
        if (memcmp (out + 3 * p, cases[i].rgb, 3) != 0 || memcmp (copy + 3 * p, out + 3 * p, 3))
          g_error ("%s (%s): pixel %d is %d,%d,%d (resize %d,%d,%d), expected %d,%d,%d",
              cases[i].name, nv12 ? "NV12" : "I420", p, out[3 * p], out[3 * p + 1],
              out[3 * p + 2], copy[3 * p], copy[3 * p + 1], copy[3 * p + 2], cases[i].rgb[0],
              cases[i].rgb[1], cases[i].rgb[2]);
      }
    }
  }
}

/* I420 planes of @f re-laid as NV12 (same picture, interleaved chroma). */
static Yuv
yuv_to_nv12 (const Yuv *f, int pad)
{
  const CnclipImage *im = &f->image;
  const int w = im->width, h = im->height, cw = (w + 1) / 2, ch = (h + 1) / 2;
  Yuv n = { {.format = CNCLIP_PIXEL_NV12,.width = w,.height = h,
          .yuv_matrix = im->yuv_matrix} };
  n.image.strides[0] = im->strides[0];
  n.planes[0] = g_memdup2 (im->planes[0], (gsize) im->strides[0] * h);
  n.image.strides[1] = 2 * cw + pad;
  n.planes[1] = g_malloc0 ((gsize) n.image.strides[1] * ch);
  for (int y = 0; y < ch; y++) {
    for (int x = 0; x < cw; x++) {
      n.planes[1][(gsize) y * n.image.strides[1] + 2 * x] = im->planes[1][y * im->strides[1] + x];
      n.planes[1][(gsize) y * n.image.strides[1] + 2 * x + 1] =
          im->planes[2][y * im->strides[2] + x];
    }
  }
  n.image.planes[0] = n.planes[0];
  n.image.planes[1] = n.planes[1];
  return n;
}

/* Test that I420 and NV12 of many sizes (1x1, 3x5, odd, even, padded strides,
 * wider than a conversion chunk) convert every pixel to the exact textbook
 * value of its Y and its 2x2 block's U, V, for all matrices, and that the
 * NV12 layout of the same picture gives the same bytes. */
static void
test_to_rgb_yuv_reference (void)
{
  static const int sizes[][2] = {
    {1, 1}, {3, 5}, {2, 2}, {1, 7}, {8, 1}, {37, 23}, {64, 48}, {301, 3}, {514, 2}, {515, 5},
  };
  GRand *rand = g_rand_new_with_seed (7);
  for (guint s = 0; s < G_N_ELEMENTS (sizes); s++) {
    const int w = sizes[s][0], h = sizes[s][1];
    Yuv f = make_yuv (rand, CNCLIP_PIXEL_I420, w, h, (int) s);
    guint8 *out = g_malloc ((gsize) w * h * 3), *out_nv12 = g_malloc ((gsize) w * h * 3);
    for (int m = 0; m < CNCLIP_YUV_N_MATRICES; m++) {
      GError *error = NULL;
      f.image.yuv_matrix = m;
      Yuv n = yuv_to_nv12 (&f, 3);
      g_assert_true (cnclip_image_to_rgb (&f.image, out, &error));
      g_assert_no_error (error);
      g_assert_true (cnclip_image_to_rgb (&n.image, out_nv12, &error));
      g_assert_no_error (error);
      for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
          guint8 yy, u, v, expect[3];
          gboolean ties[3];
          yuv_sample (&f, x, y, &yy, &u, &v);
          exact_formula (m, yy, u, v, expect, ties);
          const guint8 *got = out + ((gsize) y * w + x) * 3;
          if (memcmp (got, expect, 3) != 0)
            g_error ("%dx%d %s pixel (%d,%d) yuv %d,%d,%d: got %d,%d,%d, expected %d,%d,%d",
                w, h, matrices[m].name, x, y, yy, u, v, got[0], got[1], got[2], expect[0],
                expect[1], expect[2]);
        }
      }
      assert_same_bytes (out_nv12, out, (gsize) w * h * 3, "NV12 vs I420");
      yuv_free (&n);
    }
    g_free (out_nv12);
    g_free (out);
    yuv_free (&f);
  }
  g_rand_free (rand);
}

/* Test that every (Y, U, V) in 0..255^3 converts, for every matrix, to the
 * exact textbook value rounded half up, and that the plain double-precision
 * formula rounded to nearest agrees everywhere except at exact ties (where
 * its representation error decides). One 4096x4096 frame holds all 2^24
 * triples: chroma sample k has U = k & 255, V = k >> 8 & 255 and its 2x2
 * block the four Y values 4 (k >> 16) + 0..3. I420 and NV12 agree. */
static void
test_to_rgb_yuv_exhaustive (void)
{
  const int w = 4096, h = 4096, cw = w / 2, ch = h / 2;
  guint8 *yp = g_malloc ((gsize) w * h), *up = g_malloc ((gsize) cw * ch);
  guint8 *vp = g_malloc ((gsize) cw * ch), *uvp = g_malloc ((gsize) w * ch);
  for (int cy = 0; cy < ch; cy++) {
    for (int cx = 0; cx < cw; cx++) {
      const guint k = (guint) cy * cw + cx;
      const guint8 u = k & 255, v = (k >> 8) & 255, y0 = (guint8) (4 * (k >> 16));
      up[(gsize) cy * cw + cx] = uvp[(gsize) cy * w + 2 * cx] = u;
      vp[(gsize) cy * cw + cx] = uvp[(gsize) cy * w + 2 * cx + 1] = v;
      for (int j = 0; j < 4; j++)
        yp[(gsize) (2 * cy + j / 2) * w + 2 * cx + j % 2] = y0 + j;
    }
  }
  guint8 *out = g_malloc ((gsize) w * h * 3), *out_nv12 = g_malloc ((gsize) w * h * 3);
  for (int m = 0; m < CNCLIP_YUV_N_MATRICES; m++) {
    const CnclipImage i420 = {.format = CNCLIP_PIXEL_I420,.width = w,.height = h,
      .planes = {yp, up, vp},.strides = {w, cw, cw},.yuv_matrix = m
    };
    const CnclipImage nv12 = {.format = CNCLIP_PIXEL_NV12,.width = w,.height = h,
      .planes = {yp, uvp},.strides = {w, w},.yuv_matrix = m
    };
    GError *error = NULL;
    g_assert_true (cnclip_image_to_rgb (&i420, out, &error));
    g_assert_no_error (error);
    g_assert_true (cnclip_image_to_rgb (&nv12, out_nv12, &error));
    g_assert_no_error (error);
    assert_same_bytes (out_nv12, out, (gsize) w * h * 3, "NV12 vs I420");

    /* per (U, V): all 256 Y, through the pixel that holds each */
    gsize n_ties = 0, n_tie_differences = 0;
    for (guint k = 0; k < (guint) cw * ch; k++) {
      const int u = k & 255, v = (k >> 8) & 255, cx = k % cw, cy = k / cw;
      for (int j = 0; j < 4; j++) {
        const gsize px = (gsize) (2 * cy + j / 2) * w + 2 * cx + j % 2;
        const int y = yp[px];
        guint8 expect[3];
        gboolean ties[3];
        double d[3];
        exact_formula (m, y, u, v, expect, ties);
        double_formula (m, y, u, v, d);
        for (int c = 0; c < 3; c++) {
          const guint8 rounded = (guint8) CLAMP (floor (d[c] + 0.5), 0, 255);
          n_ties += ties[c];
          if (ties[c])
            n_tie_differences += rounded != expect[c];
          else if (rounded != expect[c])
            g_error ("%s: yuv %d,%d,%d channel %d: double formula %.12f, exact %d",
                matrices[m].name, y, u, v, c, d[c], expect[c]);
          if (out[3 * px + c] != expect[c])
            g_error ("%s: yuv %d,%d,%d channel %d is %d, expected %d (%.9f)", matrices[m].name,
                y, u, v, c, out[3 * px + c], expect[c], d[c]);
        }
      }
    }
    if (g_test_verbose ())
      g_printerr ("  %s: all 2^24 triples exact; %" G_GSIZE_FORMAT " exact ties (the double "
          "formula rounds %" G_GSIZE_FORMAT " of them down)\n", matrices[m].name, n_ties,
          n_tie_differences);
    /* BT.601 full range has ties (1.772 * 125 = 221.5, ...); the others none */
    if (m == CNCLIP_YUV_BT601_FULL)
      g_assert_cmpuint (n_ties, >, 0);
    else
      g_assert_cmpuint (n_ties, ==, 0);
  }
  g_free (out_nv12);
  g_free (out);
  g_free (uvp);
  g_free (vp);
  g_free (up);
  g_free (yp);
}

/* ------------------------------------------------------------------------ */
/* videoconvert itself                                                      */

static gboolean
gst_tool_has_element (const char *inspect, const char *element)
{
  const char *argv[] = { inspect, "--exists", element, NULL };
  int status = -1;
  if (!g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL |
          G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL, NULL, NULL, &status, NULL))
    return FALSE;
  return g_spawn_check_wait_status (status, NULL);
}

/* Test how far GStreamer 1.22's videoconvert (I420 -> RGB, gst-launch-1.0
 * ... videoconvert ! video/x-raw,format=RGB) is from us, for each
 * colorimetry, on a random frame (skipped without GStreamer's tools,
 * rawvideoparse or capssetter). videoconvert's fast path (video-orc.orc
 * video_orc_convert_I420_ARGB) measures Y from 128 instead of 16 in limited
 * range, so it is about 2.4 levels darker there (Y = 235 gives 253, Y = 128
 * gives 128 instead of 130.4), and it truncates each of its 8-bit-precision
 * products (each truncation makes it darker still, by half a level on
 * average), with coefficients of 8-bit precision. Measured (GStreamer 1.22.0,
 * this 301x203 frame), diff = ours - videoconvert over all bytes, and the
 * mean signed diff over the bytes that neither side clamped:
 *   colorimetry        max |diff|  mean |diff|  mean diff (unclamped)
 *   bt601              6           1.649        +2.733
 *   bt709              6           1.614        +2.671
 *   1:4:0:0 (full)     3           0.598        +0.437
 *   1:3:0:0 (full)     3           0.596        +0.361
 * The bounds below are a little above these; the signed mean pins the
 * direction (we are brighter, by the luma offset in limited range). */
static void
test_to_rgb_videoconvert (void)
{
  char *launch = g_find_program_in_path ("gst-launch-1.0");
  char *inspect = g_find_program_in_path ("gst-inspect-1.0");
  if (launch == NULL || inspect == NULL) {
    g_test_skip ("gst-launch-1.0 / gst-inspect-1.0 not installed");
    goto out;
  }
  char *dir = test_make_temp_dir ();
  /* a registry of our own: the tests' one also scans this build's plugin */
  char **env = g_get_environ ();
  char *registry = g_build_filename (dir, "registry.bin", NULL);
  env = g_environ_setenv (env, "GST_REGISTRY_1_0", registry, TRUE);
  env = g_environ_unsetenv (env, "GST_PLUGIN_PATH_1_0");
  env = g_environ_unsetenv (env, "GST_PLUGIN_PATH");
  g_free (registry);
  const char *needed[] = { "rawvideoparse", "capssetter", "videoconvert", "filesink" };
  for (guint i = 0; i < G_N_ELEMENTS (needed); i++) {
    if (!gst_tool_has_element (inspect, needed[i])) {
      char *msg = g_strdup_printf ("GStreamer element %s not available", needed[i]);
      g_test_skip (msg);
      g_free (msg);
      g_strfreev (env);
      g_free (dir);
      goto out;
    }
  }

  GRand *rand = g_rand_new_with_seed (23);
  const int w = 301, h = 203, cw = (w + 1) / 2, ch = (h + 1) / 2;
  Yuv f = make_yuv (rand, CNCLIP_PIXEL_I420, w, h, 0);
  GByteArray *frame = g_byte_array_new ();
  g_byte_array_append (frame, f.planes[0], w * h);
  g_byte_array_append (frame, f.planes[1], cw * ch);
  g_byte_array_append (frame, f.planes[2], cw * ch);
  char *in_path = g_build_filename (dir, "in.yuv", NULL);
  char *out_path = g_build_filename (dir, "out.rgb", NULL);
  GError *error = NULL;
  g_file_set_contents (in_path, (const char *) frame->data, frame->len, &error);
  g_assert_no_error (error);

  for (int m = 0; m < CNCLIP_YUV_N_MATRICES; m++) {
    char *src = g_strdup_printf ("location=%s", in_path);
    char *dst = g_strdup_printf ("location=%s", out_path);
    char *size = g_strdup_printf ("width=%d", w);
    char *height = g_strdup_printf ("height=%d", h);
    char *strides = g_strdup_printf ("plane-strides=<%d,%d,%d>", w, cw, cw);
    char *offsets = g_strdup_printf ("plane-offsets=<0,%d,%d>", w * h, w * h + cw * ch);
    char *frame_size = g_strdup_printf ("frame-size=%u", frame->len);
    char *caps = g_strdup_printf ("caps=video/x-raw,colorimetry=%s", matrices[m].colorimetry);
    const char *argv[] = { launch, "-q", "filesrc", src, "!", "rawvideoparse", "format=i420",
      size, height, "framerate=1/1", strides, offsets, frame_size, "!", "capssetter", caps,
      "!", "videoconvert", "!", "video/x-raw,format=RGB", "!", "filesink", dst, NULL
    };
    char *err_out = NULL;
    int status = -1;
    g_assert_true (g_spawn_sync (NULL, (char **) argv, env, G_SPAWN_STDOUT_TO_DEV_NULL, NULL,
            NULL, NULL, &err_out, &status, &error));
    g_assert_no_error (error);
    if (!g_spawn_check_wait_status (status, NULL))
      g_error ("gst-launch-1.0 failed: %s", err_out);
    g_free (err_out);

    gsize len;
    guint8 *gst = test_read_file (out_path, &len);
    const int gst_stride = (w * 3 + 3) & ~3;   /* GStreamer's default RGB stride */
    g_assert_cmpuint (len, ==, (gsize) gst_stride * h);
    guint8 *ours = g_malloc ((gsize) w * h * 3);
    f.image.yuv_matrix = m;
    g_assert_true (cnclip_image_to_rgb (&f.image, ours, &error));
    g_assert_no_error (error);
    int max_diff = 0;
    double sum_abs = 0, sum_inner = 0;
    gsize n_inner = 0;
    for (int y = 0; y < h; y++) {
      for (int x = 0; x < w * 3; x++) {
        const int a = ours[(gsize) y * w * 3 + x], b = gst[(gsize) y * gst_stride + x];
        max_diff = MAX (max_diff, ABS (a - b));
        sum_abs += ABS (a - b);
        if (a > 0 && a < 255 && b > 0 && b < 255) {
          sum_inner += a - b;
          n_inner++;
        }
      }
    }
    const double mean_abs = sum_abs / ((double) w * h * 3), mean_inner = sum_inner / n_inner;
    if (g_test_verbose ())
      g_printerr ("  videoconvert %-8s max |diff| %d, mean |diff| %.3f, mean diff unclamped "
          "%+.3f (%" G_GSIZE_FORMAT " values)\n", matrices[m].colorimetry, max_diff, mean_abs,
          mean_inner, n_inner);
    if (matrices[m].full) {
      g_assert_cmpint (max_diff, <=, 4);
      g_assert_cmpfloat (mean_abs, <=, 0.7);
      g_assert_cmpfloat (mean_inner, >=, 0.2);
      g_assert_cmpfloat (mean_inner, <=, 0.6);
    } else {
      g_assert_cmpint (max_diff, <=, 7);
      g_assert_cmpfloat (mean_abs, <=, 1.8);
      g_assert_cmpfloat (mean_inner, >=, 2.4);
      g_assert_cmpfloat (mean_inner, <=, 3.0);
    }
    g_free (ours);
    g_free (gst);
    g_free (src);
    g_free (dst);
    g_free (size);
    g_free (height);
    g_free (strides);
    g_free (offsets);
    g_free (frame_size);
    g_free (caps);
  }
  g_free (in_path);
  g_free (out_path);
  g_byte_array_unref (frame);
  yuv_free (&f);
  g_rand_free (rand);
  g_strfreev (env);
  g_free (dir);
out:
  g_free (launch);
  g_free (inspect);
}

/* ------------------------------------------------------------------------ */
/* Resizing                                                                 */

/* Test that all 10 golden images resize to exactly resized/NAME.rgb (Pillow),
 * with packed rows and with a stride longer than the row. */
static void
test_resize_golden (void)
{
  const int n = test_golden_n_images ();
  g_assert_cmpint (n, ==, 10);
  guint8 *out = g_malloc (224 * 224 * 3);
  for (int i = 0; i < n; i++) {
    Rgb in = load_golden_rgb (i, FALSE);
    Rgb expect = load_golden_rgb (i, TRUE);
    const char *name = test_golden_image (i)->name;
    GError *error = NULL;

    memset (out, 0, 224 * 224 * 3);
    g_assert_true (cnclip_image_resize_rgb (in.rgb, in.width, in.height, in.width * 3, out,
            224, 224, &error));
    g_assert_no_error (error);
    assert_same_bytes (out, expect.rgb, 224 * 224 * 3, name);

    const int stride = in.width * 3 + 5;
    guint8 *padded = g_malloc ((gsize) stride * in.height);
    memset (padded, 0xff, (gsize) stride * in.height);
    for (int y = 0; y < in.height; y++)
      memcpy (padded + (gsize) y * stride, in.rgb + (gsize) y * in.width * 3,
          (gsize) in.width * 3);
    memset (out, 0, 224 * 224 * 3);
    g_assert_true (cnclip_image_resize_rgb (padded, in.width, in.height, stride, out, 224, 224,
            &error));
    g_assert_no_error (error);
    assert_same_bytes (out, expect.rgb, 224 * 224 * 3, name);

    g_free (padded);
    g_free (in.rgb);
    g_free (expect.rgb);
  }
  g_free (out);
}

/* Test that the fused cnclip_image_resize of every packed format built from a
 * golden image gives exactly that image's golden resize. */
static void
test_resize_golden_formats (void)
{
  GRand *rand = g_rand_new_with_seed (3);
  guint8 *out = g_malloc (224 * 224 * 3);
  for (int i = 0; i < test_golden_n_images (); i++) {
    Rgb in = load_golden_rgb (i, FALSE);
    Rgb expect = load_golden_rgb (i, TRUE);
    for (guint f = 0; f < G_N_ELEMENTS (packed_formats); f++) {
      guint8 *storage;
      CnclipImage im = make_packed (rand, &in, f, 7, &storage);
      GError *error = NULL;
      memset (out, 0, 224 * 224 * 3);
      g_assert_true (cnclip_image_resize (&im, out, 224, 224, &error));
      g_assert_no_error (error);
      assert_same_bytes (out, expect.rgb, 224 * 224 * 3, test_golden_image (i)->name);
      g_free (storage);
    }
    g_free (in.rgb);
    g_free (expect.rgb);
  }
  g_free (out);
  g_rand_free (rand);
}

/* Test that resizing random images between many sizes (1 pixel, sizes that
 * are not multiples of the row block, up and down, one axis) gives what the
 * literal transcription of FIXTURES.md 2.1 gives. */
static void
test_resize_reference (void)
{
  static const int sizes[][4] = {
    {1, 1, 1, 1}, {1, 1, 5, 3}, {5, 3, 1, 1}, {2, 1, 1, 2}, {17, 33, 17, 5},
    {33, 17, 9, 17}, {70, 40, 31, 47}, {31, 47, 70, 40}, {100, 3, 7, 100}, {16, 16, 15, 17},
    {300, 31, 224, 224}, {224, 31, 224, 224}, {225, 224, 224, 224}, {640, 19, 32, 19},
  };
  GRand *rand = g_rand_new_with_seed (5);
  for (guint s = 0; s < G_N_ELEMENTS (sizes); s++) {
    const int w = sizes[s][0], h = sizes[s][1], ow = sizes[s][2], oh = sizes[s][3];
    guint8 *in = g_malloc ((gsize) w * h * 3);
    fill_random (rand, in, (gsize) w * h * 3);
    /* some flat areas too: sums that land exactly on rounding boundaries */
    for (gsize i = 0; i < (gsize) w * h * 3 / 3; i++)
      in[i] = 255;
    guint8 *expect = spec_resize (in, w, h, ow, oh);
    guint8 *out = g_malloc ((gsize) ow * oh * 3);
    GError *error = NULL;
    g_assert_true (cnclip_image_resize_rgb (in, w, h, w * 3, out, ow, oh, &error));
    g_assert_no_error (error);
    char *what = g_strdup_printf ("%dx%d -> %dx%d", w, h, ow, oh);
    assert_same_bytes (out, expect, (gsize) ow * oh * 3, what);
    g_free (what);
    g_free (out);
    g_free (expect);
    g_free (in);
  }
  g_rand_free (rand);
}

/* Test that the fused resize of I420, NV12 and GRAY8 frames equals to_rgb
 * followed by resize_rgb, for every YUV matrix, for both passes, one pass
 * (rows converted in pairs or not: odd heights and first rows), and a plain
 * copy. */
static void
test_resize_fused_yuv (void)
{
  static const int sizes[][4] = {
    {301, 203, 224, 224}, {224, 301, 224, 224}, {301, 224, 224, 224}, {224, 224, 224, 224},
    {33, 47, 224, 224}, {1, 1, 3, 2}, {3, 5, 2, 9}, {640, 7, 224, 3}, {97, 1001, 31, 5},
  };
  GRand *rand = g_rand_new_with_seed (9);
  for (guint s = 0; s < G_N_ELEMENTS (sizes); s++) {
    const int w = sizes[s][0], h = sizes[s][1], ow = sizes[s][2], oh = sizes[s][3];
    const CnclipPixelFormat formats[] = { CNCLIP_PIXEL_I420, CNCLIP_PIXEL_NV12,
      CNCLIP_PIXEL_GRAY8
    };
    for (guint f = 0; f < G_N_ELEMENTS (formats); f++) {
      Yuv frame = make_yuv (rand, formats[f] == CNCLIP_PIXEL_GRAY8 ? CNCLIP_PIXEL_I420 : formats[f],
          w, h, 3);
      frame.image.format = formats[f];
      guint8 *rgb = g_malloc ((gsize) w * h * 3);
      guint8 *expect = g_malloc ((gsize) ow * oh * 3);
      guint8 *out = g_malloc ((gsize) ow * oh * 3);
      guint8 *first = g_malloc ((gsize) ow * oh * 3);
      for (int m = 0; m < CNCLIP_YUV_N_MATRICES; m++) {
        GError *error = NULL;
        frame.image.yuv_matrix = m;
        g_assert_true (cnclip_image_to_rgb (&frame.image, rgb, &error));
        g_assert_true (cnclip_image_resize_rgb (rgb, w, h, w * 3, expect, ow, oh, &error));
        g_assert_true (cnclip_image_resize (&frame.image, out, ow, oh, &error));
        g_assert_no_error (error);
        char *what = g_strdup_printf ("format %d %s %dx%d -> %dx%d", formats[f],
            matrices[m].name, w, h, ow, oh);
        assert_same_bytes (out, expect, (gsize) ow * oh * 3, what);
        g_free (what);
        /* the matrix is honoured (GRAY8 ignores it) */
        if (m == 0)
          memcpy (first, out, (gsize) ow * oh * 3);
        else if (formats[f] == CNCLIP_PIXEL_GRAY8)
          g_assert_cmpmem (out, (gsize) ow * oh * 3, first, (gsize) ow * oh * 3);
        else
          g_assert_true (memcmp (out, first, (gsize) ow * oh * 3) != 0);
      }
      g_free (first);
      g_free (out);
      g_free (expect);
      g_free (rgb);
      yuv_free (&frame);
    }
  }
  g_rand_free (rand);
}

/* ------------------------------------------------------------------------ */
/* Invalid arguments                                                        */

/* Test that bad sizes, formats, YUV matrices, NULL planes and short strides
 * are refused with CNCLIP_ERROR_INVALID_ARGUMENT by to_rgb, resize and
 * resize_rgb. */
static void
test_invalid (void)
{
  static guint8 buf[64 * 64 * 4];
  guint8 *out = g_malloc (224 * 224 * 3);
  static const struct
  {
    const char *name;
    CnclipImage image;
  } cases[] = {
    {"width 0", {CNCLIP_PIXEL_RGB, 0, 4, {buf}, {12}}},
    {"height 0", {CNCLIP_PIXEL_RGB, 4, 0, {buf}, {12}}},
    {"negative width", {CNCLIP_PIXEL_RGB, -4, 4, {buf}, {12}}},
    {"negative height", {CNCLIP_PIXEL_BGRX, 4, -1, {buf}, {16}}},
    {"huge width", {CNCLIP_PIXEL_GRAY8, 40000, 1, {buf}, {40000}}},
    {"huge height", {CNCLIP_PIXEL_GRAY8, 1, 32769, {buf}, {1}}},
    {"unknown format", {(CnclipPixelFormat) 42, 4, 4, {buf}, {16}}},
    {"NULL plane", {CNCLIP_PIXEL_RGBA, 4, 4, {NULL}, {16}}},
    {"RGB stride short", {CNCLIP_PIXEL_RGB, 4, 4, {buf}, {11}}},
    {"xRGB stride short", {CNCLIP_PIXEL_XRGB, 4, 4, {buf}, {12}}},
    {"negative stride", {CNCLIP_PIXEL_RGB, 4, 4, {buf}, {-12}}},
    {"GRAY8 stride short", {CNCLIP_PIXEL_GRAY8, 5, 4, {buf}, {4}}},
    {"I420 no U", {CNCLIP_PIXEL_I420, 4, 4, {buf, NULL, buf}, {4, 2, 2}}},
    {"I420 no V", {CNCLIP_PIXEL_I420, 4, 4, {buf, buf, NULL}, {4, 2, 2}}},
    {"I420 Y stride short", {CNCLIP_PIXEL_I420, 4, 4, {buf, buf, buf}, {3, 2, 2}}},
    {"I420 V stride short", {CNCLIP_PIXEL_I420, 5, 4, {buf, buf, buf}, {5, 3, 2}}},
    {"NV12 no UV", {CNCLIP_PIXEL_NV12, 4, 4, {buf, NULL}, {4, 4}}},
    {"NV12 UV stride short", {CNCLIP_PIXEL_NV12, 5, 4, {buf, buf}, {5, 5}}},
    {"I420 matrix 4", {CNCLIP_PIXEL_I420, 4, 4, {buf, buf, buf}, {4, 2, 2}, 4}},
    {"NV12 matrix -1", {CNCLIP_PIXEL_NV12, 4, 4, {buf, buf}, {4, 4}, (CnclipYuvMatrix) - 1}},
    {"RGB matrix 99", {CNCLIP_PIXEL_RGB, 4, 4, {buf}, {12}, (CnclipYuvMatrix) 99}},
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    GError *error = NULL;
    if (g_test_verbose ())
      g_printerr ("  %s\n", cases[i].name);
    g_assert_false (cnclip_image_to_rgb (&cases[i].image, out, &error));
    test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT);
    g_assert_false (cnclip_image_resize (&cases[i].image, out, 224, 224, &error));
    test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT);
    /* (resize_rgb has no matrix to get wrong) */
    if (cases[i].image.format == CNCLIP_PIXEL_RGB && cases[i].image.yuv_matrix == 0) {
      g_assert_false (cnclip_image_resize_rgb (cases[i].image.planes[0], cases[i].image.width,
              cases[i].image.height, cases[i].image.strides[0], out, 224, 224, &error));
      test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT);
    }
  }

  /* output sizes */
  static const int outs[][2] = { {0, 224}, {224, 0}, {-1, 5}, {32769, 1}, {1, 100000} };
  const CnclipImage ok = { CNCLIP_PIXEL_RGB, 4, 4, {buf}, {12} };
  for (guint i = 0; i < G_N_ELEMENTS (outs); i++) {
    GError *error = NULL;
    g_assert_false (cnclip_image_resize (&ok, out, outs[i][0], outs[i][1], &error));
    test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT);
    g_assert_false (cnclip_image_resize_rgb (buf, 4, 4, 12, out, outs[i][0], outs[i][1], &error));
    test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT);
  }
  g_free (out);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/image/bytes-per-pixel", test_bytes_per_pixel);
  g_test_add_func ("/image/to-rgb/packed", test_to_rgb_packed);
  g_test_add_func ("/image/to-rgb/gray", test_to_rgb_gray);
  g_test_add_func ("/image/to-rgb/yuv-colours", test_to_rgb_yuv_colours);
  g_test_add_func ("/image/to-rgb/yuv-reference", test_to_rgb_yuv_reference);
  g_test_add_func ("/image/to-rgb/yuv-exhaustive", test_to_rgb_yuv_exhaustive);
  g_test_add_func ("/image/to-rgb/videoconvert", test_to_rgb_videoconvert);
  g_test_add_func ("/image/resize/golden", test_resize_golden);
  g_test_add_func ("/image/resize/golden-formats", test_resize_golden_formats);
  g_test_add_func ("/image/resize/reference", test_resize_reference);
  g_test_add_func ("/image/resize/fused-yuv", test_resize_fused_yuv);
  g_test_add_func ("/image/invalid", test_invalid);
  return g_test_run ();
}
