/* clipframe.c: see clipframe.h. */
#include "clipframe.h"

#include <string.h>

static const struct
{
  GstVideoFormat gst;
  CnclipPixelFormat cnclip;
} format_table[] = {
  { GST_VIDEO_FORMAT_RGB, CNCLIP_PIXEL_RGB },     { GST_VIDEO_FORMAT_BGR, CNCLIP_PIXEL_BGR },
  { GST_VIDEO_FORMAT_RGBA, CNCLIP_PIXEL_RGBA },   { GST_VIDEO_FORMAT_BGRA, CNCLIP_PIXEL_BGRA },
  { GST_VIDEO_FORMAT_RGBx, CNCLIP_PIXEL_RGBX },   { GST_VIDEO_FORMAT_BGRx, CNCLIP_PIXEL_BGRX },
  { GST_VIDEO_FORMAT_xRGB, CNCLIP_PIXEL_XRGB },   { GST_VIDEO_FORMAT_xBGR, CNCLIP_PIXEL_XBGR },
  { GST_VIDEO_FORMAT_GRAY8, CNCLIP_PIXEL_GRAY8 }, { GST_VIDEO_FORMAT_I420, CNCLIP_PIXEL_I420 },
  { GST_VIDEO_FORMAT_NV12, CNCLIP_PIXEL_NV12 },
};

gboolean
clip_frame_pixel_format (GstVideoFormat format, CnclipPixelFormat *out)
{
  for (guint i = 0; i < G_N_ELEMENTS (format_table); i++) {
    if (format_table[i].gst == format) {
      *out = format_table[i].cnclip;
      return TRUE;
    }
  }
  return FALSE;
}

CnclipYuvMatrix
clip_frame_yuv_matrix (const GstVideoColorimetry *colorimetry)
{
  gboolean full = colorimetry->range == GST_VIDEO_COLOR_RANGE_0_255;

  switch (colorimetry->matrix) {
    case GST_VIDEO_COLOR_MATRIX_BT709:
    /* The core knows two matrices; these wide-gamut or old HD ones are
     * closest to BT.709 (a few levels off in saturated colours). */
    case GST_VIDEO_COLOR_MATRIX_SMPTE240M:
    case GST_VIDEO_COLOR_MATRIX_BT2020:
      return full ? CNCLIP_YUV_BT709_FULL : CNCLIP_YUV_BT709;
    default:
      /* BT601, FCC (nearly the same) and UNKNOWN: gst_video_info_from_caps()
       * already replaced a missing colorimetry by the size's default. */
      return full ? CNCLIP_YUV_BT601_FULL : CNCLIP_YUV_BT601;
  }
}

gboolean
clip_frame_to_image (const GstVideoFrame *frame, CnclipImage *image)
{
  guint n_planes = GST_VIDEO_FRAME_N_PLANES (frame);

  /* Zeroed first: members added to CnclipImage later default to 0. */
  memset (image, 0, sizeof (*image));

  if (!clip_frame_pixel_format (GST_VIDEO_FRAME_FORMAT (frame), &image->format))
    return FALSE;
  if (GST_VIDEO_FRAME_WIDTH (frame) > G_MAXINT || GST_VIDEO_FRAME_HEIGHT (frame) > G_MAXINT
      || n_planes > G_N_ELEMENTS (image->planes))
    return FALSE;

  if (GST_VIDEO_INFO_IS_YUV (&frame->info))
    image->yuv_matrix = clip_frame_yuv_matrix (&GST_VIDEO_INFO_COLORIMETRY (&frame->info));
  image->width = GST_VIDEO_FRAME_WIDTH (frame);
  image->height = GST_VIDEO_FRAME_HEIGHT (frame);
  for (guint p = 0; p < G_N_ELEMENTS (image->planes); p++) {
    if (p < n_planes) {
      gint stride = GST_VIDEO_FRAME_PLANE_STRIDE (frame, p);
      /* Negative strides (bottom-up layouts) never occur for these raw
       * formats in GStreamer, and the core expects top-down rows. */
      if (stride <= 0)
        return FALSE;
      image->planes[p] = GST_VIDEO_FRAME_PLANE_DATA (frame, p);
      image->strides[p] = stride;
    } else {
      image->planes[p] = NULL;
      image->strides[p] = 0;
    }
  }
  return TRUE;
}
