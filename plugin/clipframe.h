/* clipframe.h: a mapped GstVideoFrame seen as a CnclipImage.
 *
 * No pixels are copied: the CnclipImage points into the frame's planes with the
 * frame's strides (which GstVideoMeta may make larger than the row size), so it
 * is valid only while the frame stays mapped.
 */
#ifndef CLIP_FRAME_H
#define CLIP_FRAME_H

#include <gst/video/video.h>
#include "cnclip.h"

G_BEGIN_DECLS

/* The formats clipclassify accepts, as a caps format list string. */
#define CLIP_FRAME_FORMATS "{ RGB, BGR, RGBA, BGRA, RGBx, BGRx, xRGB, xBGR, GRAY8, I420, NV12 }"

/* The CnclipPixelFormat of @format; FALSE when unsupported. Thread-safe. */
gboolean clip_frame_pixel_format (GstVideoFormat format, CnclipPixelFormat *out);

/* The core's YUV matrix for a GStreamer colorimetry (matrix and range);
 * matrices the core lacks map to the nearest one. Thread-safe. */
CnclipYuvMatrix clip_frame_yuv_matrix (const GstVideoColorimetry *colorimetry);

/* Fills @image (zeroing it first) from the mapped @frame, including the YUV
 * matrix from the frame's colorimetry. FALSE when the format is unsupported
 * or the frame is larger than a CnclipImage can describe. Thread-safe. */
gboolean clip_frame_to_image (const GstVideoFrame *frame, CnclipImage *image);

G_END_DECLS

#endif /* CLIP_FRAME_H */
