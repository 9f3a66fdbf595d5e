/* image.c: the "Images" functions of cnclip.h: conversion to RGB and
 * Pillow-identical bicubic resizing (FIXTURES.md section 2). The pixel
 * arithmetic lives in image-convert.c (formats, YUV) and image-resize.c
 * (the two resampling passes). */
#include "config.h"

#include <string.h>

#include "cnclip.h"
#include "image-convert.h"
#include "image-resize.h"

int
cnclip_pixel_format_bytes_per_pixel (CnclipPixelFormat format)
{
  switch (format) {
    case CNCLIP_PIXEL_RGB:
    case CNCLIP_PIXEL_BGR:
      return 3;
    case CNCLIP_PIXEL_RGBA:
    case CNCLIP_PIXEL_BGRA:
    case CNCLIP_PIXEL_RGBX:
    case CNCLIP_PIXEL_BGRX:
    case CNCLIP_PIXEL_XRGB:
    case CNCLIP_PIXEL_XBGR:
      return 4;
    case CNCLIP_PIXEL_GRAY8:
      return 1;
    default:
      return 0;
  }
}

/* Bytes of a packed RGB image, or 0 when they would not fit in memory. */
static gsize
rgb_size (int width, int height)
{
  const guint64 n = (guint64) width * (guint64) height * 3;
  return n <= G_MAXSIZE ? (gsize) n : 0;
}

gboolean
cnclip_image_to_rgb (const CnclipImage *image, guint8 *rgb, GError **error)
{
  g_return_val_if_fail (image != NULL, FALSE);
  g_return_val_if_fail (rgb != NULL, FALSE);

  CnclipRowReader reader;
  if (!cnclip_row_reader_init (&reader, image, error))
    return FALSE;
  const gsize row_bytes = (gsize) image->width * 3;
  for (int y = 0; y < image->height; y += 2) {
    guint8 *row = rgb + (gsize) y * row_bytes;
    cnclip_row_reader_read_pair (&reader, y, row, y + 1 < image->height ? row + row_bytes : NULL);
  }
  return TRUE;
}

/* Rows for the horizontal pass, which asks for them in order: YUV rows are
 * converted in pairs (one chroma row, image-convert.h) and the second row is
 * kept in @next until asked for. */
typedef struct
{
  const CnclipRowReader *reader;
  guint8 *next;                  /* width * 3 bytes, or NULL: no pairs */
  int next_y;                    /* the row held in @next, or -1 */
} RowSource;

static const guint8 *
reader_row (gpointer user_data, int y, guint8 *scratch)
{
  RowSource *src = user_data;
  const CnclipRowReader *reader = src->reader;
  if (cnclip_row_reader_is_rgb (reader))
    return cnclip_row_reader_plane_row (reader, y);
  if (y == src->next_y)
    return src->next;
  if (src->next != NULL && y % 2 == 0 && y + 1 < reader->image.height) {
    cnclip_row_reader_read_pair (reader, y, scratch, src->next);
    src->next_y = y + 1;
  } else {
    cnclip_row_reader_read (reader, y, scratch);
  }
  return scratch;
}

/* Pillow's ImagingResample for an 8-bit RGB image: horizontal pass first
 * (rounded to 8 bits), then vertical; a pass whose size is unchanged is
 * skipped. The horizontal pass reads rows straight from the reader, so a
 * frame in any format is never converted as a whole unless only the vertical
 * pass runs (then the image is already as narrow as the output). */
static gboolean
resize (const CnclipRowReader *reader, guint8 *out, int out_width, int out_height,
    GError **error)
{
  const int w = reader->image.width, h = reader->image.height;
  if (out_width <= 0 || out_height <= 0 || out_width > CNCLIP_IMAGE_MAX_SIZE
      || out_height > CNCLIP_IMAGE_MAX_SIZE) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT,
        "output size %dx%d: width and height must be 1 to %d", out_width, out_height,
        CNCLIP_IMAGE_MAX_SIZE);
    return FALSE;
  }

  const gsize out_row = (gsize) out_width * 3;
  CnclipResampler hrs = { 0 }, vrs = { 0 };
  RowSource source = { reader, NULL, -1 };
  guint8 *tmp = NULL;
  gint32 *acc = NULL;
  gboolean ok = FALSE;

  if (out_height != h && !cnclip_resampler_init (&vrs, h, out_height, error))
    goto out;

  if (out_width != w) {
    if (!cnclip_resampler_init (&hrs, w, out_width, error))
      goto out;
    if (cnclip_row_reader_is_yuv (reader)
        && (source.next = g_try_malloc ((gsize) w * 3)) == NULL)
      goto nomem;
    if (out_height == h) {
      ok = cnclip_resample_horizontal (&hrs, 0, h, reader_row, &source, out,
          out_row, error);
      goto out;
    }
    /* Only the rows the vertical filter reads (as Pillow): all of them
     * unless the image is cropped by rounding at the bottom. */
    const int y_begin = vrs.first[0];
    const int y_end = vrs.first[out_height - 1] + vrs.count[out_height - 1];
    const gsize tmp_size = rgb_size (out_width, MAX (y_end - y_begin, 1));
    if (tmp_size == 0 || (tmp = g_try_malloc (tmp_size)) == NULL)
      goto nomem;
    if (!cnclip_resample_horizontal (&hrs, y_begin, y_end, reader_row, &source, tmp,
            out_row, error))
      goto out;
    if ((acc = g_try_new (gint32, (gsize) out_width * 3)) == NULL)
      goto nomem;
    cnclip_resample_vertical (&vrs, tmp, y_begin, out_row, out_width, out, out_row, acc);
    ok = TRUE;
    goto out;
  }

  /* Width unchanged: the vertical pass (or a copy) needs whole RGB rows. */
  const guint8 *src;
  gsize src_stride;
  if (cnclip_row_reader_is_rgb (reader)) {
    src = reader->image.planes[0];
    src_stride = (gsize) reader->image.strides[0];
  } else {
    const gsize tmp_size = rgb_size (w, h);
    if (tmp_size == 0 || (tmp = g_try_malloc (tmp_size)) == NULL)
      goto nomem;
    for (int y = 0; y < h; y += 2) {
      guint8 *row = tmp + (gsize) y * out_row;
      cnclip_row_reader_read_pair (reader, y, row, y + 1 < h ? row + out_row : NULL);
    }
    src = tmp;
    src_stride = out_row;
  }
  if (out_height == h) {
    for (int y = 0; y < h; y++)
      memcpy (out + (gsize) y * out_row, src + (gsize) y * src_stride, out_row);
  } else {
    if ((acc = g_try_new (gint32, (gsize) out_width * 3)) == NULL)
      goto nomem;
    cnclip_resample_vertical (&vrs, src, 0, src_stride, w, out, out_row, acc);
  }
  ok = TRUE;
  goto out;

nomem:
  g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_NOMEM,
      "cannot allocate a temporary image to resize %dx%d to %dx%d", w, h, out_width,
      out_height);
out:
  cnclip_resampler_clear (&hrs);
  cnclip_resampler_clear (&vrs);
  g_free (source.next);
  g_free (tmp);
  g_free (acc);
  return ok;
}

gboolean
cnclip_image_resize (const CnclipImage *image, guint8 *rgb_out, int out_width, int out_height,
    GError **error)
{
  g_return_val_if_fail (image != NULL, FALSE);
  g_return_val_if_fail (rgb_out != NULL, FALSE);

  CnclipRowReader reader;
  if (!cnclip_row_reader_init (&reader, image, error))
    return FALSE;
  return resize (&reader, rgb_out, out_width, out_height, error);
}

gboolean
cnclip_image_resize_rgb (const guint8 *in, int in_width, int in_height, int in_stride,
    guint8 *out, int out_width, int out_height, GError **error)
{
  g_return_val_if_fail (out != NULL, FALSE);

  const CnclipImage image = {
    .format = CNCLIP_PIXEL_RGB,
    .width = in_width,
    .height = in_height,
    .planes = {in},
    .strides = {in_stride},
  };
  return cnclip_image_resize (&image, out, out_width, out_height, error);
}
